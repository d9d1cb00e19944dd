"""The prediction service (FastAPI)."""

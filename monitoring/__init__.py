"""Drift and performance reports with Evidently. Never imported by the serving process."""

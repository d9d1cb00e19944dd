"""Long-running services. Uses ``models`` and ``core``; never ``pipelines``, Prefect, GX or Evidently."""

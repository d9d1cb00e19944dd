"""Prefect flows for ingestion, training, monitoring, retraining and the demo.

Flows stay thin: each task does I/O and calls a pure function that is tested on
its own. Importing this package does no work and imports no Prefect.
"""

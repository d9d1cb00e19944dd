"""Modelling: feature pipelines, candidate algorithms, training, metrics and the registry.

Imported by the pipelines (to train) and by the serving process (to load and
predict), so it must stay light at import time and never import either of them.
"""

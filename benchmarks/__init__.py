"""Benchmarks: speed and memory goals live here, with their results written down in RESULTS.md."""

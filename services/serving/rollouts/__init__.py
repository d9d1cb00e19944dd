"""Progressive delivery of model versions: canary, blue-green, shadow and A/B.

The state machine (``engine``), the router (``router``) and the analysis
(``analysis``, ``stats``) are pure and driven by an injectable clock, so the
same code runs in the service and in the deterministic simulator.
"""

"""Long-lived objects out of the garbage collector's way.

A full (generation 2) collection walks every container object the process holds: the imported
modules, the loaded models, the application. Under load, requests allocate enough for one to
run every second or so, and each took 114 ms on the bike model (measured with ``gc.callbacks``):
the event loop stood still meanwhile, and the p99 at 16 connections was 15 times the median.

Objects that live as long as the process (or as long as a loaded version) are frozen once they
exist: ``gc.freeze`` moves them to a generation no collection walks, and full collections then
take about 1 ms. They are still freed when nothing refers to them (a released version), as
reference counting, not the collector, frees acyclic objects; what the collector would have
reclaimed from a cycle among them stays until ``release`` (the app's shutdown) hands every
frozen object back to the collector, which matters where apps come and go in one process (tests).
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def settle(*, after: str) -> None:
    """Collect what is garbage now, then freeze every object that is left (a pause of its own, once)."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info(
        "%d objects frozen after %s (%.0f ms)", gc.get_freeze_count(), after, (time.perf_counter() - started) * 1000
    )


def release() -> None:
    """Hand every frozen object back to the collector: the app that froze them is shutting down."""
    gc.unfreeze()

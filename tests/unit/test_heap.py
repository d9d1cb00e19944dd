"""The serving heap: long-lived objects frozen out of full collections, handed back at shutdown."""

from __future__ import annotations

import gc
import weakref

from services.serving import heap


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_settling_collects_garbage_first_then_freezes_what_lives_and_release_hands_it_back():
    kept = Cycle()
    garbage = Cycle()
    gone = weakref.ref(garbage)
    del garbage
    try:
        heap.settle(after="a test")
        assert gone() is None  # the cycle was collected, not frozen for good
        assert gc.get_freeze_count() > 0
        assert all(o is not kept for o in gc.get_objects())  # frozen: no collection walks it
    finally:
        heap.release()
    assert gc.get_freeze_count() == 0
    assert any(o is kept for o in gc.get_objects())  # the collector's again

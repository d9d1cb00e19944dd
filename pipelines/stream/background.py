"""A thread that works through a bounded queue in order: the consumer hands work off without waiting.

The scorer and the alert notifier are both one; the consumer's loop only ever calls ``offer``,
which never blocks: a full queue means the receiver is far behind, and the caller decides what
that costs (counted unscored events, a logged alert).
"""

from __future__ import annotations

import queue
import threading
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Background(threading.Thread, Generic[Item]):
    def __init__(self, *, name: str, backlog: int) -> None:
        super().__init__(name=name, daemon=True)
        self._items: queue.Queue[Item | None] = queue.Queue(maxsize=backlog)

    def offer(self, item: Item) -> bool:
        """Queue an item; False, at once, when the queue is full."""
        try:
            self._items.put_nowait(item)
        except queue.Full:
            return False
        return True

    @property
    def waiting(self) -> int:
        return self._items.qsize()

    def handle(self, item: Item) -> None:
        raise NotImplementedError

    def run(self) -> None:
        while (item := self._items.get()) is not None:
            self.handle(item)

    def close(self, *, wait_s: float) -> None:
        """Work through what is queued (for up to ``wait_s``), then stop."""
        try:
            self._items.put(None, timeout=wait_s)
        except queue.Full:
            pass
        self.join(timeout=wait_s)

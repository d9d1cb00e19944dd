"""An in-memory broker with the Redis Streams semantics the consumer relies on, for unit tests.

Entries get increasing ids; a group hands new entries out once (``>``) and keeps them pending until
acknowledged; pending entries are read again from an id on; dead letters refuse an id twice.
``fail_on`` makes one method raise a chosen exception on its n-th call: a crash at that step.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipelines.stream.broker import Delivery, entry_key


class Crash(BaseException):
    """A crash injected at a step: not an Exception, so that nothing on the way catches it."""


@dataclass
class FakeBroker:
    streams: dict[str, list[tuple[str, dict[bytes, bytes]]]] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)  # stream -> entries handed out to the group
    pending: dict[str, dict[str, dict[bytes, bytes]]] = field(default_factory=dict)
    fail_on: dict[str, int] = field(default_factory=dict)  # method -> the call (1-based) that crashes
    calls: dict[str, int] = field(default_factory=dict)
    leases: dict[str, str] = field(default_factory=dict)
    _clock: itertools.count = field(default_factory=lambda: itertools.count(1_700_000_000_000))

    def _step(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        if self.fail_on.get(method) == self.calls[method]:
            raise Crash(f"crash in {method}")

    def publish(self, stream: str, payloads: Sequence[bytes], *, max_len: int | None = None) -> list[str]:
        ids = []
        for payload in payloads:
            entry = f"{next(self._clock)}-0"
            self.streams.setdefault(stream, []).append((entry, {b"e": payload}))
            ids.append(entry)
        return ids

    def ensure_group(self, stream: str, group: str) -> None:
        self.streams.setdefault(stream, [])
        self.delivered.setdefault(stream, 0)
        self.pending.setdefault(stream, {})

    def read(
        self, stream: str, group: str, consumer: str, *, count: int, block_ms: int, after: str | None
    ) -> list[Delivery]:
        self._step("read")
        if after is not None:
            start = entry_key(after)
            due = sorted((e for e in self.pending[stream] if entry_key(e) > start), key=entry_key)[:count]
            return [Delivery(e, self.pending[stream][e]) for e in due]
        entries = self.streams[stream][self.delivered[stream] : self.delivered[stream] + count]
        if not entries:
            time.sleep(min(block_ms, 5) / 1000)  # as a blocking read waits: no busy loop
        self.delivered[stream] += len(entries)
        for entry, fields in entries:
            self.pending[stream][entry] = fields
        return [Delivery(e, f) for e, f in entries]

    def ack(self, stream: str, group: str, entries: Sequence[str]) -> None:
        self._step("ack")
        for entry in entries:
            self.pending[stream].pop(entry, None)

    def dead_letter(self, stream: str, entry: str, fields: dict[str, str]) -> bool:
        self._step("dead_letter")
        letters = self.streams.setdefault(stream, [])
        if any(e == entry for e, _ in letters):
            return False
        letters.append((entry, {k.encode(): v.encode() for k, v in fields.items()}))
        return True

    def backlog(self, stream: str, group: str) -> tuple[int, int]:
        return len(self.streams.get(stream, [])) - self.delivered.get(stream, 0), len(self.pending.get(stream, {}))

    def acquire_lease(self, name: str, holder: str, *, ttl_s: float) -> bool:
        return self.leases.setdefault(name, holder) == holder

    def renew_lease(self, name: str, holder: str, *, ttl_s: float) -> None:
        pass

    def release_lease(self, name: str, holder: str) -> None:
        self.leases.pop(name, None)

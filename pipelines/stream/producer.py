"""Replay a use case's rows as events, at a chosen rate, with faults on request (``mlops stream produce``).

``plan`` is pure: rows in, the events to send out (payloads are stamped with their production
time when sent). ``produce`` paces them onto the broker in small pipelined groups.

Faults, each a share of the events (or a point in the stream for silence)::

    malformed     the payload broken: not JSON, not UTF-8, too large, a field missing, a value of the wrong type
    out_of_range  a numeric value pushed far beyond its column's declared bounds
    duplicates    an event sent again, same id and values, a few events later
    out_of_order  an event held back and sent after the next one
    silence       one source stops sending after N events (``silence=source-2@500``)
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from core.usecase import UseCase
from pipelines.stream.broker import Broker
from pipelines.stream.events import encode

MALFORMED_KINDS = ("not_json", "not_utf8", "too_large", "missing_field", "wrong_type")


@dataclass(frozen=True)
class Faults:
    malformed: float = 0.0
    out_of_range: float = 0.0
    duplicates: float = 0.0
    out_of_order: float = 0.0
    silent_source: str | None = None
    silent_after: int = 0

    @classmethod
    def parse(cls, text: str | None) -> Faults:
        """``malformed=0.01,duplicates=0.02,silence=source-2@500``; a clear error for anything else."""
        if not text:
            return cls()
        values: dict[str, Any] = {}
        for part in text.split(","):
            name, _, value = part.strip().partition("=")
            if name == "silence":
                source, _, after = value.partition("@")
                if not source or not after.isdigit():
                    raise ValueError(f"silence takes SOURCE@EVENTS (silence=source-2@500), not '{value}'")
                values |= {"silent_source": source, "silent_after": int(after)}
                continue
            if name not in ("malformed", "out_of_range", "duplicates", "out_of_order"):
                raise ValueError(
                    f"unknown fault '{name}': malformed, out_of_range, duplicates, out_of_order (shares) or silence"
                )
            try:
                share = float(value)
            except ValueError:
                raise ValueError(f"{name} takes a share between 0 and 1, not '{value}'") from None
            if not 0 <= share <= 1:
                raise ValueError(f"{name} takes a share between 0 and 1, not {share}")
            values[name] = share
        return cls(**values)


@dataclass
class Planned:
    """One event to send: encoded at send time (``payload(now)``), or raw bytes for a broken one."""

    id: str
    source: str
    values: dict[str, Any]
    fault: str | None = None
    broken: bytes | None = None

    def payload(self, now: float) -> bytes:
        return self.broken if self.broken is not None else encode(self.id, self.source, now, self.values)


def plan(
    rows: Iterable[dict[str, str]], use_case: UseCase, *, sources: list[str], faults: Faults, seed: int = 0
) -> Iterator[Planned]:
    """The events for ``rows`` (in order), sources taken in turn, faults injected at their shares."""
    rng = random.Random(seed)
    numeric = [n for n, c in use_case.schema_.columns.items() if c.type in ("int", "float")]
    held: Planned | None = None  # out of order: sent after the next event
    echoes: list[tuple[int, Planned]] = []  # duplicates: sent again a few events later
    sent_by_source: Counter[str] = Counter()
    for i, row in enumerate(rows):
        source = sources[i % len(sources)]
        if source == faults.silent_source and sent_by_source[source] >= faults.silent_after:
            continue
        sent_by_source[source] += 1
        event = Planned(f"{source}:{i}", source, dict(row))
        roll = rng.random()
        if roll < faults.malformed:
            _break(event, rng.choice(MALFORMED_KINDS), use_case, rng)
        elif roll < faults.malformed + faults.out_of_range and numeric:
            column = rng.choice(numeric)
            spec = use_case.schema_.columns[column]
            far = (spec.max if spec.max is not None else 0) * 10 + 1_000_001
            event.values[column] = str(int(far)) if spec.type == "int" else str(float(far))
            event.fault = f"out_of_range:{column}"
        if rng.random() < faults.duplicates:
            echoes.append((i + rng.randint(1, 5), event))
        if held is None and rng.random() < faults.out_of_order:
            held = event
            continue
        yield event
        if held is not None:
            held.fault = held.fault or "out_of_order"
            yield held
            held = None
        for due, echo in [e for e in echoes if e[0] <= i]:
            echoes.remove((due, echo))
            yield Planned(echo.id, echo.source, echo.values, "duplicate", echo.broken)
    if held is not None:
        yield held
    for _, echo in echoes:
        yield Planned(echo.id, echo.source, echo.values, "duplicate", echo.broken)


def _break(event: Planned, kind: str, use_case: UseCase, rng: random.Random) -> None:
    event.fault = f"malformed:{kind}"
    if kind == "not_json":
        event.broken = b'{"id": "' + event.id.encode() + b'", "values": {'
    elif kind == "not_utf8":
        event.broken = encode(event.id, event.source, time.time(), event.values).replace(b'"', b"\xff", 1)
    elif kind == "too_large":
        event.values = {**event.values, "padding": "x" * 100_000}
        event.broken = encode(event.id, event.source, time.time(), event.values)
    elif kind == "missing_field":
        event.values.pop(rng.choice(sorted(event.values)))
    else:  # wrong_type: text where a number goes
        numeric = [n for n, c in use_case.schema_.columns.items() if c.type in ("int", "float")]
        if numeric:
            event.values[rng.choice(numeric)] = "n/a"


@dataclass
class Produced:
    sent: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    first_entry: str | None = None
    last_entry: str | None = None
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "faults": dict(self.faults),
            "first_entry": self.first_entry,
            "last_entry": self.last_entry,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.sent / self.seconds, 1) if self.seconds else None,
        }


def produce(
    events: Iterable[Planned],
    broker: Broker,
    *,
    stream: str,
    rate: float | None,
    max_len: int,
    group: int = 50,
    on_sent: Any = None,
) -> Produced:
    """Send the events at ``rate`` per second (None: as fast as the broker takes them), ``group`` per
    round trip. An event counts as sent once the broker has acknowledged it."""
    out = Produced()
    start = time.monotonic()
    iterator = iter(events)
    while True:
        if rate:
            due = int((time.monotonic() - start) * rate) - out.sent
            if due <= 0:
                time.sleep(min(group / rate, 0.01))
                continue
        else:
            due = group
        chunk = [e for _, e in zip(range(min(due, group)), iterator, strict=False)]
        if not chunk:
            break
        now = time.time()
        entries = broker.publish(stream, [e.payload(now) for e in chunk], max_len=max_len)
        out.sent += len(chunk)
        out.faults.update(e.fault.split(":")[0] for e in chunk if e.fault)
        out.first_entry = out.first_entry or entries[0]
        out.last_entry = entries[-1]
        if on_sent is not None:
            on_sent(chunk, entries, now)
    out.seconds = time.monotonic() - start
    return out


def rows_of(use_case: UseCase, *, drop: str | None = None, loops: int = 1) -> Iterator[dict[str, str]]:
    """The use case's rows as a batch file carries them (text), optionally one drop (``2011-10``), repeated."""
    from pipelines.drops import read_raw, split_into_drops

    raw = read_raw(use_case)
    if drop is not None:
        drops = split_into_drops(raw, use_case)
        if drop not in drops:
            raise ValueError(f"no drop '{drop}' in {use_case.name}'s data: {sorted(drops)}")
        raw = drops[drop]
    records = raw.to_dict(orient="records")
    for _ in range(loops):
        yield from records

"""The YAML's stream alerts as state machines: each fires once while its condition holds and
resolves once when it clears. Pure: observations and the clock in, changes out; the consumer
sends the changes on (Prometheus gauge, webhook, Prefect event).

    value              an accepted event's value beyond a bound, per source
    window             an aggregate of a column over the last ``window`` of arrivals
    quarantined_share  the share of received events quarantined over the last ``window``
    silence            no event from a source for ``after``, per source
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.usecase import QuarantineAlert, SilenceAlert, StreamAlert, ValueAlert, WindowAlert, duration_seconds

ALL = "*"  # the key of an alert over the whole stream (not per source)
SOURCE, PRODUCED_AT, ENTRY = "__source__", "__produced_at__", "__entry__"


@dataclass(frozen=True)
class AlertChange:
    alert: str
    kind: str
    status: Literal["firing", "resolved"]
    key: str  # the source, or "*"
    value: float | None
    condition: str  # "above 600", "no event for 2min", ...
    at: float  # when the consumer saw it (seconds since the epoch)
    produced_at: float | None = None  # the triggering event's production time, when one triggered it
    entry: str | None = None  # ... and its broker entry
    description: str = ""

    def payload(self, *, use_case: str) -> dict[str, Any]:
        return {"use_case": use_case, **asdict(self)}


def condition(alert: StreamAlert) -> str:
    if isinstance(alert, SilenceAlert):
        return f"no event for {alert.after}"
    bounds = [f"above {alert.above:g}"] if alert.above is not None else []
    bounds += [f"below {alert.below:g}"] if alert.below is not None else []
    what = f"{alert.aggregate} of {alert.column} over {alert.window}" if isinstance(alert, WindowAlert) else ""
    what = f"quarantined share over {alert.window}" if isinstance(alert, QuarantineAlert) else what
    return " ".join(filter(None, [what, " or ".join(bounds)]))


def _beyond(alert: ValueAlert | WindowAlert | QuarantineAlert, values: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values), dtype=bool)
    if alert.above is not None:
        out |= values > alert.above
    if alert.below is not None:
        out |= values < alert.below
    return out


@dataclass
class _Summary:
    """One micro-batch, as the windowed alerts remember it."""

    at: float
    received: int
    quarantined: int
    columns: dict[str, tuple[int, float, float, float]]  # column -> (count, sum, min, max) of accepted values


@dataclass
class AlertBook:
    """Every alert's state. ``firing`` holds (alert, key) pairs; the consumer keeps them in its
    checkpoint, so that a restart neither fires an alert twice nor forgets to resolve it."""

    alerts: list[StreamAlert]
    firing: set[tuple[str, str]] = field(default_factory=set)
    last_seen: dict[str, float] = field(default_factory=dict)  # source -> arrival of its latest event
    _history: deque[_Summary] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._longest = max(
            [duration_seconds(a.window) for a in self.alerts if isinstance(a, WindowAlert | QuarantineAlert)],
            default=0.0,
        )

    def start(self, now: float) -> None:
        """Silence is measured from now for every declared or already known source."""
        for alert in self.alerts:
            if isinstance(alert, SilenceAlert):
                for source in alert.sources:
                    self.last_seen.setdefault(source, now)
        for source in self.last_seen:
            self.last_seen[source] = now

    def _change(self, alert: StreamAlert, key: str, on: bool, now: float, **extra: Any) -> list[AlertChange]:
        if on == ((alert.name, key) in self.firing):
            return []
        (self.firing.add if on else self.firing.discard)((alert.name, key))
        status: Literal["firing", "resolved"] = "firing" if on else "resolved"
        return [
            AlertChange(
                alert.name,
                alert.kind,
                status,
                key,
                condition=condition(alert),
                at=now,
                description=alert.description,
                **extra,
            )
        ]

    def observe(
        self, accepted: pd.DataFrame, *, received: int, quarantined: int, sources: dict[str, float], now: float
    ) -> list[AlertChange]:
        """A micro-batch: its accepted rows (with ``__source__``, ``__produced_at__``, ``__entry__``, in
        arrival order), how many events it received and quarantined, and the sources it heard from."""
        changes: list[AlertChange] = []
        for source, at in sources.items():
            self.last_seen[source] = max(at, self.last_seen.get(source, at))
        self._history.append(_Summary(now, received, quarantined, self._summaries(accepted)))
        for alert in self.alerts:
            if isinstance(alert, ValueAlert):
                changes += self._values(alert, accepted, now)
        return changes + self.tick(now)

    def _summaries(self, accepted: pd.DataFrame) -> dict[str, tuple[int, float, float, float]]:
        out = {}
        for column in {a.column for a in self.alerts if isinstance(a, WindowAlert)}:
            values = pd.to_numeric(accepted[column], errors="coerce").dropna() if len(accepted) else pd.Series()
            if len(values):
                out[column] = (len(values), float(values.sum()), float(values.min()), float(values.max()))
            else:
                out[column] = (0, 0.0, np.inf, -np.inf)
        return out

    def _values(self, alert: ValueAlert, accepted: pd.DataFrame, now: float) -> list[AlertChange]:
        """Per source, the first event beyond the bound fires, the first within it afterwards resolves."""
        if not len(accepted):
            return []
        values = pd.to_numeric(accepted[alert.column], errors="coerce").astype("float64").to_numpy()
        known = ~np.isnan(values)
        beyond = _beyond(alert, values)
        changes: list[AlertChange] = []
        sources = accepted[SOURCE].to_numpy()
        for source in pd.unique(sources[known]):
            rows = np.flatnonzero((sources == source) & known)
            state = (alert.name, source) in self.firing
            # Only where the state flips: a run of events beyond the bound fires once.
            flips = rows[np.flatnonzero(beyond[rows] != np.concatenate([[state], beyond[rows][:-1]]))]
            for i in flips:
                changes += self._change(
                    alert,
                    str(source),
                    bool(beyond[i]),
                    now,
                    value=float(values[i]),
                    produced_at=float(accepted[PRODUCED_AT].iloc[i]),
                    entry=str(accepted[ENTRY].iloc[i]),
                )
        return changes

    def tick(self, now: float) -> list[AlertChange]:
        """The clock moved: windows slide, sources fall silent."""
        while self._history and self._history[0].at < now - self._longest:
            self._history.popleft()
        changes: list[AlertChange] = []
        for alert in self.alerts:
            if isinstance(alert, SilenceAlert):
                after = duration_seconds(alert.after)
                for source, seen in self.last_seen.items():
                    changes += self._change(alert, source, now - seen > after, now, value=round(now - seen, 3))
            elif isinstance(alert, WindowAlert | QuarantineAlert):
                # Too few events in the window to judge: the condition does not hold (a firing alert resolves).
                value = self._aggregate(alert, now)
                holds = value is not None and bool(_beyond(alert, np.array([value]))[0])
                changes += self._change(alert, ALL, holds, now, value=value)
        return changes

    def _aggregate(self, alert: WindowAlert | QuarantineAlert, now: float) -> float | None:
        recent = [s for s in self._history if s.at >= now - duration_seconds(alert.window)]
        if isinstance(alert, QuarantineAlert):
            received = sum(s.received for s in recent)
            return sum(s.quarantined for s in recent) / received if received >= alert.min_events else None
        parts = [s.columns[alert.column] for s in recent if alert.column in s.columns]
        count = sum(p[0] for p in parts)
        if count < alert.min_events:
            return None
        return {
            "count": float(count),
            "sum": sum(p[1] for p in parts),
            "mean": sum(p[1] for p in parts) / count,
            "min": min(p[2] for p in parts),
            "max": max(p[3] for p in parts),
        }[alert.aggregate]

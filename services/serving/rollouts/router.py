"""Which version answers a request, and whether it is mirrored: a pure function of the rollout state."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from services.serving.rollouts.state import Rollout

Variant = Literal["stable", "candidate"]
PIN_HEADER = "X-Pin-Variant"


def unit_hash(key: str) -> float:
    """A stable, uniform number in [0, 1) for a key: the same key always routes the same way."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64


@dataclass(frozen=True, slots=True)
class Route:
    variant: Variant
    mirror: bool = False  # also predict with the candidate, off the user's path


def route(
    rollout: Rollout | None, *, request_key: str, routing_key: str | None = None, pin: Variant | None = None
) -> Route:
    """Route one request.

    ``pin`` (the X-Pin-Variant header) wins in every strategy, for internal testers;
    A/B assignment is sticky per ``routing_key``; canary uses the request key.
    """
    if rollout is None or not rollout.routes_candidate:
        return Route("stable")
    if pin is not None:
        return Route(pin)
    strategy = rollout.strategy
    if strategy == "ab":
        return Route("candidate" if unit_hash(routing_key or request_key) < rollout.weight else "stable")
    if strategy in ("shadow", "blue-green") and rollout.weight == 0:
        return Route("stable", mirror=unit_hash(request_key + "#mirror") < rollout.mirror_share)
    return Route("candidate" if unit_hash(routing_key or request_key) < rollout.weight else "stable")

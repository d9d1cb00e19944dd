"""The broker port and its Redis Streams adapter.

Why Redis Streams (docs/streaming.md): an append-only log with consumer groups, per-entry
acknowledgement, a pending list that survives a consumer's crash (entries read and never
acknowledged are delivered again), replay from any entry id, and retention by length; one small
server that the stack runs anyway for nothing else. The consumer needs only what ``Broker``
declares, so another log (NATS JetStream, Kafka) is one adapter more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Delivery:
    """One entry as the broker hands it over: its id (ordered, ``<ms>-<seq>``) and its fields."""

    entry: str
    fields: dict[bytes, bytes]


class BrokerUnavailable(ConnectionError):
    """The broker does not answer; the message says where it was looked for."""


class LeaseLost(RuntimeError):
    """Another consumer holds the stream's lease: this one must stop (it may have been paused too long)."""


class Broker(Protocol):
    def publish(self, stream: str, payloads: Sequence[bytes], *, max_len: int | None = None) -> list[str]:
        """Append payloads (field ``e``); their entry ids, in order. Retention: about ``max_len`` entries."""
        ...

    def ensure_group(self, stream: str, group: str) -> None:
        """Create the consumer group at the stream's start (and the stream), unless it exists."""
        ...

    def read(
        self, stream: str, group: str, consumer: str, *, count: int, block_ms: int, after: str | None
    ) -> list[Delivery]:
        """Entries for ``consumer``: with ``after``, its pending ones (delivered before and never
        acknowledged) past that entry id; else new ones, waiting up to ``block_ms`` for the first."""
        ...

    def ack(self, stream: str, group: str, entries: Sequence[str]) -> None: ...

    def dead_letter(self, stream: str, entry: str, fields: dict[str, str]) -> bool:
        """Append under the given entry id; False when that id is there already (a redelivery)."""
        ...

    def backlog(self, stream: str, group: str) -> tuple[int, int]:
        """(entries not yet delivered to the group, entries delivered and not acknowledged)."""
        ...

    def acquire_lease(self, name: str, holder: str, *, ttl_s: float) -> bool:
        # redis-py's Lock: a key set only if absent, with an expiry, renewed and released only by the
        # holder whose token it holds (the holder's name: `mlops stream status` shows it).
        lock = self._client.lock(name, timeout=ttl_s, blocking=False, thread_local=False)
        acquired = bool(self._call("lease", lock.acquire, token=holder))
        if acquired:
            self._leases[name] = lock
        return acquired

    def renew_lease(self, name: str, holder: str, *, ttl_s: float) -> None:
        """Extend the lease; ``LeaseLost`` when another holder has it."""
        ...

    def release_lease(self, name: str, holder: str) -> None: ...


def entry_key(entry: str) -> tuple[int, int]:
    """An entry id as a sortable pair: ``1764547200000-3`` -> (1764547200000, 3)."""
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


class RedisStreams:
    """``Broker`` over Redis Streams (redis-py). Reconnects on its own: every call that fails on the
    connection raises ``BrokerUnavailable``; the caller decides whether to wait and retry."""

    PAYLOAD = b"e"

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        import redis

        self._redis_module = redis
        self.url = url
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30
        )
        self._leases: dict[str, object] = {}

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except (self._redis_module.ConnectionError, self._redis_module.TimeoutError) as err:
            raise BrokerUnavailable(f"the broker at {_safe(self.url)} does not answer ({what}: {err})") from None

    def ping(self) -> None:
        self._call("ping", self._client.ping)

    def publish(self, stream: str, payloads: Sequence[bytes], *, max_len: int | None = None) -> list[str]:
        pipe = self._client.pipeline(transaction=False)
        for payload in payloads:
            pipe.xadd(stream, {self.PAYLOAD: payload}, maxlen=max_len, approximate=True)
        return [e.decode() for e in self._call("publish", pipe.execute)]

    def ensure_group(self, stream: str, group: str) -> None:
        try:
            self._call("create group", self._client.xgroup_create, stream, group, id="0", mkstream=True)
        except self._redis_module.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    def read(
        self, stream: str, group: str, consumer: str, *, count: int, block_ms: int, after: str | None
    ) -> list[Delivery]:
        def read() -> Any:
            return self._call(
                "read",
                self._client.xreadgroup,
                group,
                consumer,
                {stream: after if after is not None else ">"},
                count=count,
                block=None if after is not None else max(block_ms, 1),
            )

        try:
            answer = read()
        except self._redis_module.ResponseError as err:
            if "NOGROUP" not in str(err):
                raise
            # The group is gone (a broker restarted without its data, a stream deleted): made again. What
            # it hands out again is told from the new by the consumer's checkpoint.
            self.ensure_group(stream, group)
            answer = read()
        out: list[Delivery] = []
        for _, entries in answer or []:
            # A pending entry trimmed away by retention comes back without fields: nothing to process.
            out.extend(Delivery(entry.decode(), dict(fields or {})) for entry, fields in entries)
        return out

    def ack(self, stream: str, group: str, entries: Sequence[str]) -> None:
        if entries:
            self._call("acknowledge", self._client.xack, stream, group, *entries)

    def dead_letter(self, stream: str, entry: str, fields: dict[str, str]) -> bool:
        try:
            self._call("dead-letter", self._client.xadd, stream, fields, id=entry)
        except self._redis_module.ResponseError as err:
            if "equal or smaller" in str(err):
                return False
            raise
        return True

    def backlog(self, stream: str, group: str) -> tuple[int, int]:
        try:
            groups = self._call("backlog", self._client.xinfo_groups, stream)
        except self._redis_module.ResponseError:
            return 0, 0  # no such stream yet
        for info in groups:
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name == group:
                return int(info.get("lag") or 0), int(info["pending"])
        return int(self._call("backlog", self._client.xlen, stream)), 0

    def length(self, stream: str) -> int:
        return int(self._call("length", self._client.xlen, stream))

    def delete(self, *streams: str) -> None:
        self._call("delete", self._client.delete, *streams)

    def entries(self, stream: str, *, count: int = 100) -> list[Delivery]:
        """The stream's first entries (dead letters, in tests and ``mlops stream status``)."""
        answer = self._call("range", self._client.xrange, stream, count=count)
        return [Delivery(e.decode(), dict(f)) for e, f in answer]

    def acquire_lease(self, name: str, holder: str, *, ttl_s: float) -> bool:
        lock = self._client.lock(name, timeout=ttl_s, blocking=False, thread_local=False)
        lock.local.token = holder.encode()  # the holder's name as the token: `mlops stream status` shows it
        acquired = bool(self._call("lease", self._client.set, name, holder, nx=True, px=int(ttl_s * 1000)))
        if acquired:
            self._leases[name] = lock
        return acquired

    def renew_lease(self, name: str, holder: str, *, ttl_s: float) -> None:
        lock = self._leases.get(name)
        if lock is None:
            raise LeaseLost(f"{name} was never acquired by {holder}")
        try:
            self._call("renew lease", lock.reacquire)
        except self._redis_module.exceptions.LockError:
            # Lapsed (a broker restarted without it, a long pause): take it again if nobody else did.
            if not self._call("lease", self._client.set, name, holder, nx=True, px=int(ttl_s * 1000)):
                raise LeaseLost(
                    f"the lease {name} is held by {self.lease_holder(name)!r} now: another consumer took over"
                ) from None

    def release_lease(self, name: str, holder: str) -> None:
        lock = self._leases.pop(name, None)
        if lock is not None:
            try:
                lock.release()
            except (self._redis_module.exceptions.LockError, BrokerUnavailable, self._redis_module.ConnectionError):
                pass  # expired or unreachable: it lapses on its own

    def lease_holder(self, name: str) -> str | None:
        value = self._call("lease", self._client.get, name)
        return value.decode() if value else None

    def close(self) -> None:
        self._client.close()


def _safe(url: str) -> str:
    """A URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"

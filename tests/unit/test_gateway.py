"""The gateway balances connections over the replicas and skips one that is down (real sockets)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from pipelines.traffic import free_port
from services.gateway import RoundRobin, Upstream, serve


def test_round_robin_rotates_the_starting_replica():
    rr = RoundRobin([Upstream("a", 1), Upstream("b", 2)])
    assert [rr.order()[0].host for _ in range(4)] == ["a", "b", "a", "b"]
    with pytest.raises(ValueError):
        RoundRobin([])


def test_upstream_parsing():
    assert Upstream.parse("serving-1:8001") == Upstream("serving-1", 8001)
    with pytest.raises(Exception, match="HOST:PORT"):
        Upstream.parse("serving-1")


async def _replica(name: bytes) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(name), name))
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


def test_connections_alternate_and_a_dead_replica_is_skipped():
    async def scenario() -> tuple[list[bytes], list[bytes], bytes]:
        a, b = await _replica(b"A"), await _replica(b"B")
        ports = [s.sockets[0].getsockname()[1] for s in (a, b)]
        listen = free_port()
        task = asyncio.create_task(
            serve(host="127.0.0.1", port=listen, upstreams=[Upstream("127.0.0.1", p) for p in ports])
        )
        await asyncio.sleep(0.2)
        both = [(await _get(listen)).rsplit(b"\r\n", 1)[1] for _ in range(4)]
        b.close()
        await b.wait_closed()
        one = [(await _get(listen)).rsplit(b"\r\n", 1)[1] for _ in range(4)]
        a.close()
        await a.wait_closed()
        none = await _get(listen)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return both, one, none

    both, one, none = asyncio.run(scenario())
    assert sorted(both) == [b"A", b"A", b"B", b"B"]
    assert one == [b"A"] * 4
    assert none.startswith(b"HTTP/1.1 503") and none.endswith(b"no replica available")

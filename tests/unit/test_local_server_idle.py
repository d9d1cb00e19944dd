"""The local Prefect server's idle clock (pipelines/local_server.IdleWatch): busy while any request is open."""

from __future__ import annotations

import asyncio
import time

from pipelines.local_server import IdleWatch


def test_an_open_request_keeps_the_server_busy_and_its_end_restarts_the_clock():
    release = asyncio.Event()

    async def app(scope, receive, send) -> None:
        if scope["type"] == "websocket":
            await release.wait()  # a running flow's event stream stays open

    watch = IdleWatch(app)

    async def scenario() -> None:
        started = watch.quiet_since
        stream = asyncio.create_task(watch({"type": "websocket"}, None, None))
        await asyncio.sleep(0.05)
        assert watch.open == 1 and watch.quiet_for() == 0.0
        await watch({"type": "http"}, None, None)  # a request that comes and goes meanwhile
        assert watch.open == 1 and watch.quiet_for() == 0.0
        release.set()
        await stream
        assert watch.open == 0 and watch.quiet_since > started
        time.sleep(0.05)
        assert watch.quiet_for() >= 0.05

    asyncio.run(scenario())


def test_the_lifespan_is_not_a_request():
    async def app(scope, receive, send) -> None:
        return None

    watch = IdleWatch(app)
    before = watch.quiet_since
    asyncio.run(watch({"type": "lifespan"}, None, None))
    assert watch.quiet_since == before and watch.open == 0

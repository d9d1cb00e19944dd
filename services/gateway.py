"""One address in front of the serving replicas: a TCP round-robin balancer.

Each new client connection goes to the next replica that accepts it; a replica
that refuses (restarting, crashed) is skipped, so clients see no error while
another one is up. Balancing per connection, not per request, is what an L4
load balancer (kube-proxy, Docker's ingress, a cloud NLB) does: keep-alive
clients stay on one replica, which is why the replicas share their rollout
state through the database rather than through the balancer.

    python -m services.gateway --listen 0.0.0.0:8000 --upstream serving-1:8001 --upstream serving-2:8002
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
from dataclasses import dataclass

log = logging.getLogger("gateway")


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Upstream:
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise argparse.ArgumentTypeError(f"expected HOST:PORT, got '{text}'")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class RoundRobin:
    """The order in which replicas are tried for the next connection."""

    def __init__(self, upstreams: list[Upstream]) -> None:
        if not upstreams:
            raise ValueError("at least one upstream is needed")
        self._upstreams = upstreams
        self._next = itertools.count()

    def order(self) -> list[Upstream]:
        start = next(self._next) % len(self._upstreams)
        return self._upstreams[start:] + self._upstreams[:start]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


async def _connect(balancer: RoundRobin, timeout_s: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    errors = []
    for upstream in balancer.order():
        try:
            return await asyncio.wait_for(asyncio.open_connection(upstream.host, upstream.port), timeout_s)
        except (OSError, TimeoutError) as err:
            errors.append(f"{upstream}: {err}")
    raise ConnectionError("no replica accepted the connection: " + "; ".join(errors))


async def serve(*, host: str, port: int, upstreams: list[Upstream], connect_timeout_s: float = 2.0) -> None:
    balancer = RoundRobin(upstreams)

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await _connect(balancer, connect_timeout_s)
        except ConnectionError as err:
            log.warning("%s", err)
            client_writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\n"
                b"content-length: 20\r\n\r\nno replica available"
            )
            with contextlib.suppress(ConnectionError):
                await client_writer.drain()
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))
        for writer in (up_writer, client_writer):
            writer.close()

    server = await asyncio.start_server(handle, host, port, reuse_address=True)
    log.info("gateway on %s:%d -> %s", host, port, ", ".join(map(str, upstreams)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=Upstream.parse, default=Upstream("127.0.0.1", 8000), help="HOST:PORT")
    parser.add_argument("--upstream", type=Upstream.parse, action="append", required=True, help="HOST:PORT, repeat")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(host=args.listen.host, port=args.listen.port, upstreams=args.upstream))


if __name__ == "__main__":
    main()

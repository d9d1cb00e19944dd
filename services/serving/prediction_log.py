"""Non-blocking prediction logging: the request enqueues its answer, a background task writes in batches.

The durability contract (docs/serving.md, "What a crash can lose"):
- An answered request is in memory until its batch is written: at most ``linger`` plus one
  INSERT (tens of milliseconds; measured by tests/integration/test_prediction_log_durability.py).
  A crash of the process (``kill -9``, the host) loses that much, never more.
- A batch the database does not take (it is down, restarting, full) is written to the spill
  folder on local disk (fsync'd) and the queue moves on: requests keep being answered at full
  speed, and the spilled batches are written to the database as soon as it takes them again, by
  this process or, after a restart, by the next one. A database outage costs no row.
- Only when the spill folder cannot be written either (the disk is full too) does the writer
  hold the batch in memory and retry, which slows requests down (back-pressure) rather than
  drop anything. ``lost_rows`` counts what could still not be written when the process stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from core.predlog import LoggedRequest, PredictionLog

log = logging.getLogger(__name__)

Records = Sequence[dict[str, Any]]  # one request's records, as logged


class SpillFolder:
    """Batches the database would not take, as JSON-lines files, until it takes them.

    Files are written whole (a temporary name, fsync, then the final name), so a crash while
    spilling leaves either the complete file or none. Any process may write a spilled file to
    the database: the log keeps one row per request and variant, so writing one twice (two
    replicas at once, a crash between the INSERT and the delete) stores it once.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._names = itertools.count()
        self._prefix = f"{socket.gethostname()}-{os.getpid()}"

    def __str__(self) -> str:
        return str(self.folder)

    def write(self, batch: Sequence[LoggedRequest]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"{self._prefix}-{next(self._names):08d}.jsonl"
        partial = final.with_suffix(".partial")
        with partial.open("wb") as out:
            for entry in batch:
                out.write(orjson.dumps(asdict(entry), option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        partial.rename(final)
        with contextlib.suppress(OSError):  # the rename itself, durable (not on every filesystem)
            directory = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def files(self) -> list[Path]:
        """Spilled batches, oldest first."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name))

    @staticmethod
    def read(path: Path) -> list[LoggedRequest]:
        return [LoggedRequest(**orjson.loads(line)) for line in path.read_bytes().splitlines() if line]

    def rows(self) -> int:
        """Requests waiting on disk."""
        total = 0
        for path in self.files():
            with contextlib.suppress(OSError):
                total += path.read_bytes().count(b"\n")
        return total


class RequestIdLookups:
    """Which request ids the log holds, looked up in one query per burst instead of one per request.

    Behind the gateway every request carries an X-Request-ID, which must be checked against the
    log (a retry, or another use of a used id). One query per request cost half the service's
    throughput (a worker-thread hop and a statement each, 2,300 against 4,600 requests/s at 16
    connections). The ids asked for while a query runs wait for the next one, which asks for all
    of them: at any load there is at most one lookup in flight.
    """

    def __init__(self, store: PredictionLog, *, on_loop: bool = False) -> None:
        self._store = store
        # ``on_loop``: the query runs on the event loop itself. For a local store (SQLite) a burst's
        # query takes ~35 µs, less than the hop to a worker thread and back, which under load took
        # ~1.2 ms from asking to the answer (measured) while every asker waited: 20 % of the
        # throughput at 16 connections. A database server's queries are network round trips: a thread.
        self._on_loop = on_loop
        self._waiting: dict[str, list[asyncio.Future[Records | None]]] = {}
        self._running: asyncio.Task[None] | None = None

    def ask(self, request_id: str) -> asyncio.Future[Records | None]:
        """The lookup of ``request_id``, started now: its future gives the records logged under the id,
        or None, or raises what the store raised (a restart, say). Cancel it when no longer needed."""
        answer: asyncio.Future[Records | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(request_id, []).append(answer)
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._run(), name="request-id-lookups")
        return answer

    async def _run(self) -> None:
        while self._waiting:
            asked, self._waiting = self._waiting, {}
            found: dict[str, Records] = {}
            failed: Exception | None = None
            try:
                if self._on_loop:
                    found = self._store.request_records(list(asked))
                else:
                    found = await asyncio.to_thread(self._store.request_records, list(asked))
            except Exception as err:  # noqa: BLE001 - each asker decides what a failed lookup means
                failed = err
            for request_id, answers in asked.items():
                for answer in answers:
                    if answer.done():  # the asker has gone (a client that disconnected)
                        continue
                    if failed is not None:
                        answer.set_exception(failed)
                    else:
                        answer.set_result(found.get(request_id))


class AsyncPredictionLogWriter:
    """Batches answered requests from a bounded queue into one INSERT per batch, off the event loop.

    After the first request of a batch arrives the writer lingers up to ``linger_s`` for more, so
    a steady trickle of single-record requests becomes a few INSERTs a second instead of one per
    request (each one a transaction, competing with predictions for the interpreter). ``flush``
    cuts the wait short: /feedback needs the rows it refers to in the store now. A batch closes
    at ``max_records`` records, however many requests carry them.
    """

    def __init__(
        self,
        store: PredictionLog,
        *,
        max_queue: int,
        spill: SpillFolder | None = None,
        max_records: int = 20_000,
        linger_s: float = 0.0,
        max_retry_delay_s: float = 2.0,
    ) -> None:
        self._store = store
        self._spill = spill
        self._queue: asyncio.Queue[LoggedRequest] = asyncio.Queue(maxsize=max_queue)
        self._max_records = max_records
        self._linger_s = linger_s
        self._max_retry_delay_s = max_retry_delay_s
        self._flush_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # The records of each request id queued and not yet written: what the store cannot tell yet.
        self._pending: dict[str, Sequence[dict[str, Any]]] = {}
        self.lost_rows = 0  # requests neither written nor spilled when the writer stopped

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name="prediction-log-writer")]
        if self._spill is not None:  # what an earlier run (or another replica) spilled, written now
            self._tasks.append(asyncio.create_task(self._replay(), name="prediction-log-replay"))

    def pending_records(self, request_id: str) -> Sequence[dict[str, Any]] | None:
        """The records of a request that is queued and not yet in the store, if there is one."""
        return self._pending.get(request_id)

    @property
    def queued_rows(self) -> int:
        return self._queue.qsize()

    def spilled_rows(self) -> int:
        return 0 if self._spill is None else self._spill.rows()

    async def submit(self, entries: Sequence[LoggedRequest]) -> None:
        for entry in entries:
            self._pending[entry.request_id] = entry.features
            try:
                self._queue.put_nowait(entry)
            except asyncio.QueueFull:
                # Back-pressure instead of loss: a full queue slows requests down, it never drops a row.
                await self._queue.put(entry)

    async def flush(self) -> None:
        """Wait until everything submitted so far is in the store (or, while it is down, spilled)."""
        self._flush_now.set()
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._linger_s > 0 and not self._flush_now.is_set() and batch[0].n_records < self._max_records:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush_now.wait(), self._linger_s)
            self._flush_now.clear()
            records = batch[0].n_records
            while records < self._max_records and not self._queue.empty():
                batch.append(self._queue.get_nowait())
                records += batch[-1].n_records
            try:
                await self._write(batch)
            finally:
                for entry in batch:
                    if self._pending.get(entry.request_id) is entry.features:
                        del self._pending[entry.request_id]
                    self._queue.task_done()

    async def _write(self, batch: list[LoggedRequest]) -> None:
        """The store, else the spill folder, else retry both until one takes the batch."""
        delay, attempt = 0.1, 0
        while True:
            attempt += 1
            try:
                await asyncio.to_thread(self._store.write, batch)
                return
            except Exception as err:  # noqa: BLE001 - a failing store must not kill the writer
                if attempt == 1:
                    log.warning("prediction log write failed (%d requests): %s", len(batch), err)
            if self._spill is not None:
                try:
                    await asyncio.to_thread(self._spill.write, batch)
                    log.warning(
                        "spilled %d requests to %s until the database takes them", len(batch), self._spill.folder
                    )
                    return
                except OSError as err:
                    if attempt == 1:
                        log.error("cannot spill either (%s); holding the batch and retrying", err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry_delay_s)

    async def _replay(self) -> None:
        """Write spilled batches to the store, oldest first, whenever it takes them."""
        assert self._spill is not None
        delay = 0.0
        while True:
            await asyncio.sleep(delay)
            files = await asyncio.to_thread(self._spill.files)
            if not files:
                delay = self._max_retry_delay_s
                continue
            try:
                await asyncio.to_thread(self._replay_file, files[0])
                delay = 0.0
            except FileNotFoundError:
                delay = 0.0  # another replica wrote it meanwhile
            except Exception as err:  # noqa: BLE001 - the database is still down: try again later
                log.debug("spilled batch %s not written yet: %s", files[0].name, err)
                delay = self._max_retry_delay_s

    def _replay_file(self, path: Path) -> None:
        self._store.write(SpillFolder.read(path))
        path.unlink(missing_ok=True)
        log.info("wrote spilled batch %s to the prediction log", path.name)

    async def stop(self, *, timeout_s: float = 10.0) -> None:
        """Write (or spill) what is queued, then stop; what cannot be is counted in ``lost_rows``."""
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except TimeoutError:
            self.lost_rows += self._queue.qsize()
            log.error("prediction log: %d answered requests could not be written or spilled", self._queue.qsize())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

"""A bounded load generator for the zero-downtime test: its own process, keep-alive HTTP on loopback.

    python -m tests.support.loadgen OUT.jsonl URL [URL ...] --seconds 30 --threads 4

Writes one JSON line per request (start, end, status, version, variant) and stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from tests.support.records import BIKE_RECORD

BODY = json.dumps(BIKE_RECORD).encode()


def worker(url: str, stop_at: float, stop_file: Path, out: list[dict], lock: threading.Lock, name: str) -> None:
    target = urlparse(url)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
    n = 0
    while time.time() < stop_at and not stop_file.exists():
        n += 1
        started = time.time()
        try:
            conn.request(
                "POST",
                "/predict",
                body=BODY,
                headers={"Content-Type": "application/json", "X-Request-ID": f"{name}-{n}"},
            )
            response = conn.getresponse()
            response.read()
            row = {
                "start": started,
                "end": time.time(),
                "status": response.status,
                "url": url,
                "version": response.getheader("X-Model-Version"),
                "variant": response.getheader("X-Variant"),
            }
        except (OSError, http.client.HTTPException) as err:
            row = {"start": started, "end": time.time(), "status": 0, "url": url, "error": repr(err)}
            conn.close()
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        with lock:
            out.append(row)
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    stop_at, stop_file = time.time() + args.seconds, args.out.with_suffix(".stop")
    rows: list[dict] = []
    lock = threading.Lock()
    threads = [
        threading.Thread(target=worker, args=(args.urls[i % len(args.urls)], stop_at, stop_file, rows, lock, f"t{i}"))
        for i in range(args.threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    args.out.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


if __name__ == "__main__":
    main()

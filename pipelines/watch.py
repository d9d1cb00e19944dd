"""Watch an inbox (a folder or URL) for new batch files, ingest each once, and announce it as an event.

The scan is cheap: a file whose name, size and modification stamp are unchanged
since the last scan is not read again. A new or changed file goes through the
ingestion flow, which is idempotent on content, so the same bytes dropped twice
(under any name) are ingested once. Each newly ingested batch emits
``mlops.batch.ingested``, which starts the drift check on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.events import emit_event

from pipelines.ingest import ingest_flow
from pipelines.metrics import push
from pipelines.runtime import get_runtime

BATCH_SUFFIXES = (".csv",)
INGESTED_EVENT, REJECTED_EVENT = "mlops.batch.ingested", "mlops.batch.rejected"


@dataclass(frozen=True)
class Listed:
    path: str
    stamp: str  # size and modification time (or ETag): changes when the file does


def new_files(listing: list[Listed], seen: dict[str, str]) -> list[Listed]:
    """Batch files not seen before, or changed since, in name order (drops are usually named by date)."""
    return sorted(
        (f for f in listing if f.path.lower().endswith(BATCH_SUFFIXES) and seen.get(f.path) != f.stamp),
        key=lambda f: f.path,
    )


@task
def list_inbox(inbox: str) -> list[Listed]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(inbox if "://" in inbox else str(Path(inbox).expanduser().resolve()))
    if not fs.exists(root):
        return []
    listed = []
    for info in fs.ls(root, detail=True):
        if info.get("type") == "directory":
            continue
        stamp = "|".join(str(info.get(k, "")) for k in ("size", "mtime", "LastModified", "ETag", "etag"))
        local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
        listed.append(Listed(path=info["name"] if local else fs.unstrip_protocol(info["name"]), stamp=stamp))
    return listed


def batch_event(result: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The event that announces an ingested (or rejected) batch: name, resource, payload."""
    event = REJECTED_EVENT if result["status"] == "rejected" else INGESTED_EVENT
    resource = {"prefect.resource.id": f"mlops.batch.{result['batch_id']}", "mlops.use-case": result["use_case"]}
    payload = {
        k: result.get(k)
        for k in ("use_case", "batch_id", "source", "status", "rows_received", "rows_accepted", "rows_quarantined")
    }
    return event, resource, payload


@flow(name="watch-inbox", log_prints=True)
def watch_flow(use_case: str, inbox: str | None = None, state_dir: str | None = None) -> dict[str, Any]:
    """Ingest every new batch file in the inbox (default: MLOPS_INBOX) and emit one event per new batch."""
    logger = get_run_logger()
    rt = get_runtime(state_dir)
    uc = rt.use_case(use_case)
    inbox = inbox or rt.settings.inbox
    if not inbox:
        raise ValueError("no inbox to watch: pass one or set MLOPS_INBOX")
    index_path = rt.layout.root / "inbox-index.json"
    seen: dict[str, str] = json.loads(index_path.read_text()) if index_path.exists() else {}
    fresh = new_files(list_inbox(inbox), seen)
    outcomes = []
    for item in fresh:
        result = ingest_flow(source=item.path, use_case=uc.name, state_dir=state_dir)
        seen[item.path] = item.stamp
        index_path.write_text(json.dumps(seen, indent=1))
        if result.get("duplicate"):
            logger.info("%s: same content as batch %s, already ingested", item.path, result["batch_id"][:12])
        else:
            event, resource, payload = batch_event(result)
            emit_event(event=event, resource=resource, payload=payload)
            push(
                rt.settings.pushgateway_url,
                job="ingest",
                use_case=uc.name,
                values={
                    "mlops_batch_rows_accepted": result["rows_accepted"],
                    "mlops_batch_rows_quarantined": result["rows_quarantined"],
                    "mlops_quarantined_rows": rt.lake.quarantined_rows(uc.name),
                },
            )
        outcomes.append({"file": item.path, **{k: result.get(k) for k in ("batch_id", "status", "duplicate")}})
    if not fresh:
        logger.info("no new batch in %s", inbox)
    return {"inbox": inbox, "files": outcomes}

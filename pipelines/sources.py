"""Read a batch from a local path, an http(s):// URL or an s3:// URI."""

from __future__ import annotations

from pathlib import Path

MAX_BATCH_BYTES = 512 * 1024 * 1024


class SourceError(IOError):
    """The batch could not be read; the message names the source."""


def read_source(uri: str) -> bytes:
    import fsspec

    target = uri if "://" in uri else str(Path(uri).expanduser().resolve())
    try:
        with fsspec.open(target, "rb") as fh:
            data = fh.read(MAX_BATCH_BYTES + 1)
    except FileNotFoundError:
        raise SourceError(f"batch not found: {uri}") from None
    except Exception as err:  # fsspec backends raise their own types
        raise SourceError(f"could not read batch {uri}: {type(err).__name__}: {err}") from err
    if len(data) > MAX_BATCH_BYTES:
        raise SourceError(f"batch {uri} is larger than {MAX_BATCH_BYTES // 2**20} MiB; split it")
    return data

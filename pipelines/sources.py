"""Read a batch from a local path, an http(s):// URL or an s3:// URI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

# A guard, not a memory limit: batches are read as streams, landed on disk and processed in chunks.
MAX_BATCH_BYTES = 2 * 1024**3
BLOCK_BYTES = 1 << 20


class SourceError(IOError):
    """The batch could not be read; the message names the source."""


def iter_source(uri: str, *, limit: int = MAX_BATCH_BYTES) -> Iterator[bytes]:
    """The batch's bytes in blocks of 1 MiB: a local path, or any fsspec URL (http(s)://, s3://)."""
    import fsspec

    target = uri if "://" in uri else str(Path(uri).expanduser().resolve())
    read = 0
    try:
        with fsspec.open(target, "rb") as fh:
            while block := fh.read(BLOCK_BYTES):
                read += len(block)
                if read > limit:
                    raise SourceError(f"batch {uri} is larger than {limit // 2**20} MiB; split it")
                yield block
    except SourceError:
        raise
    except FileNotFoundError:
        raise SourceError(f"batch not found: {uri}") from None
    except Exception as err:  # fsspec backends raise their own types
        raise SourceError(f"could not read batch {uri}: {type(err).__name__}: {err}") from err

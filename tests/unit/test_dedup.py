"""Keys of rows already curated: hashing that agrees across dtypes, an index that finds them, the verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.dedup import KeyIndex, duplicate_failures, key_hashes


def test_equal_keys_hash_equal_whatever_their_dtype():
    a = pd.DataFrame({"t": pd.to_datetime(["2011-01-01 01:00", "2011-01-01 02:00"]), "n": [1, 2]})
    b = pd.DataFrame(
        {"t": pd.to_datetime(["2011-01-01 01:00", "2011-01-01 03:00"]).astype("datetime64[us]"), "n": [1.0, 2.0]}
    )
    b["n"] = b["n"].astype("Int64")
    ha, hb = key_hashes(a, ["t", "n"]), key_hashes(b, ["t", "n"])
    assert ha[0] == hb[0] and ha[1] != hb[1] and ha.dtype == np.uint64


def test_the_index_finds_every_key_it_holds_and_none_it_does_not():
    rng = np.random.default_rng(0)
    held = rng.integers(0, 2**63, 5000, dtype=np.uint64)
    index = KeyIndex()
    for i, part in enumerate(np.array_split(held, 37)):  # many small adds: segments merge as they grow
        index.add(part, batch=f"b{i % 3}")
    assert len(index) == 5000 and len(index.segments) <= 13  # logarithmic in the keys
    found, codes, _ = index.lookup(np.r_[held, held + 1])
    assert found[:5000].all() and not found[5000:].any()
    assert {index.batches[c] for c in codes[:5000]} == {"b0", "b1", "b2"}


def test_verdicts_point_at_the_curated_batch_or_the_earlier_row_and_skip_rows_failed_otherwise():
    index = KeyIndex.of([("abc123", np.array([10, 11], dtype=np.uint64))])
    hashes = np.array([10, 12, 12, 13, 13], dtype=np.uint64)
    rows = np.array([1, 2, 3, 4, 5])
    candidates = np.array([True, True, True, False, True])  # row 4 failed another check
    failures = duplicate_failures(hashes, rows, index, key=["event_time"], candidates=candidates)
    assert failures == {
        1: ["duplicate: its key (event_time) is curated already, in batch abc123"],
        3: ["duplicate: its key (event_time) repeats row 2 of this batch"],
    }
    # the accepted keys join the index: the next chunk of the same batch sees them
    later = duplicate_failures(
        np.array([12, 13], dtype=np.uint64), np.array([6, 7]), index, key=["k"], candidates=np.array([True, True])
    )
    assert later == {
        6: ["duplicate: its key (k) repeats row 2 of this batch"],
        7: ["duplicate: its key (k) repeats row 5 of this batch"],
    }

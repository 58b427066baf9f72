"""dedup.clusters_driver.driver_table lines every signature up with its own sample when the two are
collected in different orders (stored signatures unioned with new ones come back in their own order)."""

from __future__ import annotations

import numpy as np
import pytest

from instructlake.dedup.clusters_driver import driver_table
from instructlake.dedup.stage import signature_bytes
from instructlake.frames import rows_frame

IDS = ["c", "a", "d", "b"]


def sigs_frame(spark, order: list[str]):
    sig = np.array([[ord(i), ord(i) * 2] for i in order], np.uint32)
    has = np.ones(len(order), bool)
    col = signature_bytes(sig, has).to_pylist()
    rows = [(i, ord(i), -ord(i), 3, col[k]) for k, i in enumerate(order)]
    schema = "sample_id string, exact_h1 long, exact_h2 long, n_tokens int, signature binary"
    return rows_frame(spark, rows, schema)


def samples_frame(spark):
    rows = [(i, f"src-{i}", 10 * ord(i)) for i in IDS]
    return rows_frame(spark, rows, "sample_id string, source string, response_chars long")


@pytest.mark.parametrize("sig_order", [IDS, ["b", "d", "c", "a"], ["a", "b", "c", "d"]])
def test_each_signature_and_count_stays_with_its_sample(spark, sig_order):
    table, sig = driver_table(samples_frame(spark), sigs_frame(spark, sig_order), 2)
    ids = table.column("sample_id").to_pylist()
    assert ids == sorted(IDS)
    assert sig.tolist() == [[ord(i), ord(i) * 2] for i in ids]
    assert table.column("h1").to_pylist() == [ord(i) for i in ids]
    assert table.column("source").to_pylist() == [f"src-{i}" for i in ids]
    assert table.column("response_chars").to_pylist() == [10 * ord(i) for i in ids]

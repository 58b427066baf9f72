"""Driver-side banding helpers on small arrays with known answers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instructlake.dedup.lsh_local import band_groups, estimate, exact_band_groups, link_to_root, near_pairs


def test_band_groups_equal_rows_equal_groups():
    block = np.array([[1, 2], [3, 4], [1, 2], [1, 3]], dtype=np.uint32)
    g = band_groups(block)
    assert g[0] == g[2] and len({g[0], g[1], g[3]}) == 3


def test_link_to_root_is_linear_and_uses_the_smallest_member():
    members = np.array([9, 3, 7, 5, 1])
    groups = np.array([0, 0, 1, 0, 1])
    src, dst = link_to_root(members, groups)
    # n - groups pairs, never n^2
    assert sorted(zip(src.tolist(), dst.tolist(), strict=True)) == [(5, 3), (7, 1), (9, 3)]


def test_near_pairs_threshold_margin_and_exact_check():
    sig = np.array([[1] * 8, [1] * 7 + [2], [1] * 4 + [3] * 4, [5] * 8], dtype=np.uint32)
    ids = np.array(["a", "b", "c", "d"])
    assert estimate(sig, np.array([0, 0]), np.array([1, 2])).tolist() == [7 / 8, 4 / 8]
    asked = []

    def check(src, dst):
        asked.append(list(zip(src.tolist(), dst.tolist(), strict=True)))
        return np.full(len(src), 0.9)

    # one band of one row: a, b, c share band value 1 and link to a; d is alone
    s, d, sim, n_exact = near_pairs(ids, sig, bands=1, rows=1, threshold=0.8, margin=0.1, rounds=1, check=check)
    # b~a (0.875 is in the margin: checked, 0.9)
    assert list(zip(s.tolist(), d.tolist(), strict=True)) == [(1, 0)]
    assert sim.tolist() == [0.9] and n_exact == 1 and asked == [[("b", "a")]]


def test_signature_matrix_from_arrow_keeps_rows_in_place_and_zeros_a_missing_signature():
    import pyarrow as pa
    import pytest

    from instructlake.dedup.clusters_driver import signature_matrix
    from instructlake.dedup.stage import signature_bytes

    def raw(*values):
        return np.array(values, "<u4").tobytes()

    col = pa.chunked_array([pa.array([raw(1, 2**32 - 1, 3)], pa.binary()),
                            pa.array([None, raw(4, 5, 2**31), raw(7, 8, 9)], pa.binary()).slice(0, 2)])
    m = signature_matrix(col, 3)
    assert m.dtype == np.uint32
    assert m.tolist() == [[1, 2**32 - 1, 3], [0, 0, 0], [4, 5, 2**31]]
    assert signature_matrix(pa.chunked_array([], pa.binary()), 3).shape == (0, 3)
    # what the signature job writes reads back as the matrix it came from
    sig = np.array([[1, 2, 3], [9, 9, 9], [2**32 - 1, 0, 7]], np.uint32)
    has = np.array([True, False, True])
    back = signature_matrix(signature_bytes(sig, has), 3)
    assert back.tolist() == [[1, 2, 3], [0, 0, 0], [2**32 - 1, 0, 7]]
    with pytest.raises(RuntimeError, match="not 4 values of 4 bytes"):
        signature_matrix(pa.array([raw(1, 2, 3)]), 4)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two group numberings put the same rows together."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), min_size=3, max_size=3), max_size=40))
def test_band_groups_by_hash_are_the_groups_of_the_values(rows):
    block = np.array(rows, dtype=np.uint32).reshape(-1, 3)
    assert same_partition(band_groups(block), exact_band_groups(block))


def test_band_groups_fall_back_to_the_values_when_two_rows_share_a_hash(monkeypatch):
    from instructlake.dedup import lsh_local

    # a double for row_hashes that makes every row collide: the groups must still be the values'
    monkeypatch.setattr(lsh_local, "row_hashes", lambda block: np.zeros(len(block), dtype=np.uint64))
    block = np.array([[1, 2], [3, 4], [1, 2], [1, 3]], dtype=np.uint32)
    assert same_partition(band_groups(block), np.array([0, 1, 0, 2]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=40))
def test_link_to_root_links_each_member_to_its_groups_smallest(groups):
    members = np.random.default_rng(len(groups)).permutation(len(groups)) * 3
    g = np.array(groups, dtype=np.int64)
    src, dst = link_to_root(members, g)
    pairs = list(zip(members.tolist(), groups, strict=True))
    smallest = {k: min(m for m, gg in pairs if gg == k) for k in set(groups)}
    want = sorted((m, smallest[k]) for m, k in pairs if m != smallest[k])
    assert sorted(zip(src.tolist(), dst.tolist(), strict=True)) == want


def test_uint32_sets_read_binary_values_across_chunks_slices_and_empty_rows():
    import pyarrow as pa

    from instructlake.dedup.clusters_driver import uint32_sets

    rows = [[1, 2**32 - 1], [], [7], [3, 4, 5], []]
    blobs = [np.array(r, dtype=np.uint32).tobytes() for r in rows]
    whole = pa.array(blobs, pa.binary())
    # slices: the second chunk starts at offset 2 of its buffers
    col = pa.chunked_array([whole.slice(0, 2), whole.slice(2, 3), pa.array([], pa.binary())])
    offsets, values = uint32_sets(col)
    assert [values[offsets[i]:offsets[i + 1]].tolist() for i in range(len(rows))] == rows
    assert values.dtype == np.uint32
    with pytest.raises(RuntimeError, match="no shingle set"):
        uint32_sets(pa.chunked_array([pa.array([None], pa.binary())]))

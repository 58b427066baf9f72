"""LSH banding on the driver with numpy, for pools whose signatures fit in its memory.

The same algorithm as the Spark path in stage.near_edges, step for step: each band's members are grouped
by the band's values, linked to their group's smallest id, scored by the share of equal signature
positions, accepted above the threshold + margin, checked exactly inside the margin (`check`, a Spark
job), and the members that fail get further rounds among themselves. A band is grouped by its exact values
instead of a 64-bit hash of them, the only difference (a hash collision of two different bands, some
2^-64 per pair, would add a candidate that verification then rejects). On 50k samples it takes about a
second where the Spark path's shuffles take about twelve.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# (src ids, dst ids) -> exact Jaccard of each pair's texts
ExactCheck = Callable[[np.ndarray, np.ndarray], np.ndarray]


def band_groups(block: np.ndarray) -> np.ndarray:
    """Group number of each row of a (members x rows) uint32 block: equal rows, equal numbers."""
    view = np.ascontiguousarray(block).view(np.dtype((np.void, block.dtype.itemsize * block.shape[1]))).ravel()
    _, inverse = np.unique(view, return_inverse=True)
    return inverse.ravel()


def link_to_root(members: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(member, root) for every member of a group of two or more, root = the group's smallest index."""
    if len(members) == 0:
        return members, members
    order = np.lexsort((members, groups))
    g, m = groups[order], members[order]
    first = np.r_[True, g[1:] != g[:-1]]
    root = np.maximum.accumulate(np.where(first, np.arange(len(g)), 0))
    roots = m[root]
    keep = m != roots
    return m[keep], roots[keep]


def estimate(sig: np.ndarray, src: np.ndarray, dst: np.ndarray, chunk: int = 65536) -> np.ndarray:
    out = np.empty(len(src), dtype=np.float64)
    for off in range(0, len(src), chunk):
        a, b = sig[src[off:off + chunk]], sig[dst[off:off + chunk]]
        out[off:off + chunk] = np.count_nonzero(a == b, axis=1) / float(sig.shape[1])
    return out


def near_pairs(ids: np.ndarray, sig: np.ndarray, bands: int, rows: int, threshold: float, margin: float,
               rounds: int, check: ExactCheck | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Verified pairs (src index, dst index, similarity) and the number checked exactly.

    `ids` must be sorted: a smaller index is a smaller id, so a group's root is its smallest id."""
    n = len(ids)
    lo, hi = threshold - margin, threshold + margin
    active = [np.arange(n) for _ in range(bands)]
    out_src, out_dst, out_sim = [], [], []
    n_exact = 0
    seen: set[int] = set()
    for rnd in range(rounds):
        cand_src, cand_dst, cand_band = [], [], []
        for b in range(bands):
            members = active[b]
            if len(members) < 2:
                continue
            s, d = link_to_root(members, band_groups(sig[members, b * rows:(b + 1) * rows]))
            cand_src.append(s)
            cand_dst.append(d)
            cand_band.append(np.full(len(s), b))
        if not cand_src:
            break
        src, dst, band = np.concatenate(cand_src), np.concatenate(cand_dst), np.concatenate(cand_band)
        key = src.astype(np.int64) * n + dst
        ukey, first = np.unique(key, return_index=True)
        us, ud = src[first], dst[first]
        sim = estimate(sig, us, ud)
        ok = sim >= max(hi, threshold)
        if margin > 0 and check is not None:
            border = (sim >= lo) & (sim < hi)
            if border.any():
                exact = check(ids[us[border]], ids[ud[border]])
                n_exact += int(border.sum())
                sim = sim.copy()
                sim[border] = exact
                ok = ok | (border & (sim >= threshold))
        for s_, d_, v_ in zip(us[ok], ud[ok], sim[ok], strict=True):
            k = int(s_) * n + int(d_)
            if k not in seen:  # a pair verified in an earlier round keeps its first similarity
                seen.add(k)
                out_src.append(int(s_))
                out_dst.append(int(d_))
                out_sim.append(float(v_))
        if rnd == rounds - 1:
            break
        failed = ~np.isin(key, ukey[ok])
        active = [src[failed & (band == b)] for b in range(bands)]
    return (np.asarray(out_src, dtype=np.int64), np.asarray(out_dst, dtype=np.int64),
            np.asarray(out_sim, dtype=np.float64), n_exact)

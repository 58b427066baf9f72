"""Matching samples against benchmark prompts with numpy, one Arrow batch at a time.

Two kinds of evidence:
- embedding: the cosine of the instruction's vector with each prompt's (vectors are L2-normalized, so a
  matrix product); per sample the best prompt of each benchmark, plus up to top_k prompts at or above the
  threshold. Rows are multiplied in chunks so the (rows x prompts) block stays under CELLS floats.
- n-gram: 64-bit hashes of normalized word n-grams (dedup's normalization and hashing) looked up in the
  prompts' sorted hash array; per (sample, prompt) the distinct n-grams shared and one of them as text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from instructlake.dedup.minhash import MinHasher, normalize

CELLS = 1 << 24  # 64 MB of float32 per block of the similarity matrix


def as_matrix(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow list<float> column of equal-length vectors as an (n, dim) float32 matrix, without a Python
    loop over rows."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks else pa.array([], col.type)
    if not len(col):
        return np.zeros((0, 0), np.float32)
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(col), -1)


@dataclass
class NgramIndex:
    keys: np.ndarray  # sorted distinct (hash, item) pairs: hashes
    items: np.ndarray  # ... and their item indices
    per_item: np.ndarray  # distinct n-grams of each item
    ngram: int

    @classmethod
    def build(cls, prompts: list[str], ngram: int) -> NgramIndex:
        rows, h, _ = MinHasher(ngram=ngram).ngrams(normalize(pa.array(prompts, pa.string())))
        pairs = np.unique(np.stack([h, rows.astype(np.uint64)], 1), axis=0) if len(h) else np.zeros((0, 2), np.uint64)
        per_item = np.bincount(pairs[:, 1].astype(np.int64), minlength=len(prompts))
        return cls(pairs[:, 0].copy(), pairs[:, 1].astype(np.int64), per_item, ngram)


def ngram_hits(texts: pa.Array, index: NgramIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(row, item, distinct shared n-grams, one shared n-gram) for every (row, item) sharing any."""
    norm = normalize(texts)
    rows, h, first = MinHasher(ngram=index.ngram).ngrams(norm)
    if not len(h) or not len(index.keys):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), []
    lo = np.searchsorted(index.keys, h, "left")
    hi = np.searchsorted(index.keys, h, "right")
    n = hi - lo
    hit = np.flatnonzero(n)
    if not len(hit):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), []
    reps = n[hit]
    src = np.repeat(hit, reps)  # one entry per (window, item holding its hash)
    pos = np.repeat(lo[hit], reps) + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
    r, it, hh = rows[src].astype(np.int64), index.items[pos], h[src]
    # distinct (row, item, hash): the same n-gram twice in a sample counts once
    order = np.lexsort((hh, it, r))
    r, it, hh, src = r[order], it[order], hh[order], src[order]
    new = np.r_[True, (r[1:] != r[:-1]) | (it[1:] != it[:-1]) | (hh[1:] != hh[:-1])]
    r, it, src = r[new], it[new], src[new]
    starts = np.flatnonzero(np.r_[True, (r[1:] != r[:-1]) | (it[1:] != it[:-1])])
    shared = np.diff(np.r_[starts, len(r)])
    earliest = np.minimum.reduceat(first[src], starts)  # the example: the shared n-gram that comes first
    norm_py = norm.to_pylist()
    examples = [" ".join(norm_py[r[s]].split(" ")[f: f + index.ngram]) for s, f in zip(starts, earliest, strict=True)]
    return r[starts], it[starts], shared, examples


def cosine_candidates(vecs: np.ndarray, bench: np.ndarray, bench_of_item: np.ndarray, n_bench: int,
                      threshold: float, top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, item, cosine): per row, the best item of each benchmark and up to top_k items of each
    benchmark with cosine >= threshold. bench_of_item must be sorted (each benchmark's items contiguous)."""
    out_r, out_i, out_c = [], [], []
    m = len(bench)
    if not len(vecs) or not m:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    bounds = np.searchsorted(bench_of_item, np.arange(n_bench + 1))
    step = max(1, CELLS // m)
    for r0 in range(0, len(vecs), step):
        sims = vecs[r0: r0 + step] @ bench.T
        rows = np.arange(len(sims))
        for b in range(n_bench):
            lo, hi = bounds[b], bounds[b + 1]
            if lo == hi:
                continue
            block = sims[:, lo:hi]
            best = block.argmax(1)
            out_r.append(rows + r0)
            out_i.append(best + lo)
            out_c.append(block[rows, best])
            rr, cc = np.nonzero(block >= threshold)
            if len(rr):
                # at most top_k per row: sort each row's hits by cosine, descending, and cut
                vals = block[rr, cc]
                order = np.lexsort((-vals, rr))
                rr, cc, vals = rr[order], cc[order], vals[order]
                rank = np.arange(len(rr)) - np.repeat(np.flatnonzero(np.r_[True, rr[1:] != rr[:-1]]),
                                                      np.diff(np.r_[np.flatnonzero(np.r_[True, rr[1:] != rr[:-1]]),
                                                                    len(rr)]))
                keep = rank < top_k
                out_r.append(rr[keep] + r0)
                out_i.append(cc[keep] + lo)
                out_c.append(vals[keep])
    return np.concatenate(out_r), np.concatenate(out_i), np.concatenate(out_c).astype(np.float32)

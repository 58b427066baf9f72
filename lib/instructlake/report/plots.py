"""The report's pictures (matplotlib, PNG bytes), drawn from small arrays the stages collect."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np


def _figure(w: float = 6.4, h: float = 4.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(w, h), dpi=110)
    return plt, fig, ax


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def ccdf_with_fit(values: Sequence[int], gamma: float, xmin: int, title: str, xlabel: str) -> bytes:
    """Empirical CCDF P(X >= x) on log-log axes with the fitted power law over its tail."""
    x = np.sort(np.asarray([v for v in values if v >= 1]))
    plt, fig, ax = _figure()
    uniq, first = np.unique(x, return_index=True)
    ccdf = 1.0 - first / len(x)
    ax.loglog(uniq, ccdf, "o", ms=3, alpha=0.7, label="data")
    tail_share = (x >= xmin).mean()
    xs = np.logspace(np.log10(xmin), np.log10(max(x.max(), xmin + 1)), 50)
    ax.loglog(xs, tail_share * (xs / xmin) ** (1 - gamma), "r-", lw=2,
              label=f"power law: gamma = {gamma:.2f}, xmin = {xmin}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("P(X >= x)")
    ax.set_title(title)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return _png(plt, fig)


def rank_plot(freqs: Sequence[int], title: str) -> bytes:
    f = np.sort(np.asarray(freqs))[::-1]
    plt, fig, ax = _figure()
    ax.loglog(np.arange(1, len(f) + 1), f, ".-", ms=3)
    ax.set_xlabel("rank")
    ax.set_ylabel("samples with the tag")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    return _png(plt, fig)


def bar_chart(labels: Sequence[str], values: Sequence[int], title: str, xlabel: str) -> bytes:
    order = np.argsort(values)
    plt, fig, ax = _figure(7.0, max(3.0, 0.28 * len(labels) + 1))
    ax.barh([labels[i] for i in order], [values[i] for i in order])
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _png(plt, fig)


def histogram(counts: dict[int, int], title: str, xlabel: str) -> bytes:
    keys = sorted(counts)
    plt, fig, ax = _figure()
    ax.bar(keys, [counts[k] for k in keys])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    ax.set_title(title)
    return _png(plt, fig)


def binned_histogram(edges: Sequence[float], counts: Sequence[int], title: str, xlabel: str,
                     lines: Sequence[tuple[float, str]] = ()) -> bytes:
    """A histogram from precomputed bins (Spark counts them), with labelled vertical lines."""
    plt, fig, ax = _figure()
    widths = np.diff(np.asarray(edges, dtype=float))
    ax.bar(np.asarray(edges[:-1], dtype=float), counts, width=widths, align="edge")
    for x, label in lines:
        ax.axvline(x, color="r", ls="--", lw=1.5, label=label)
    if lines:
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    ax.set_title(title)
    return _png(plt, fig)

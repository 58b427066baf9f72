"""A stage's counts named by prefix (reason.refusal, lang.en, kind.EMAIL, ...), as its log line, the CLI and
the demo show them. Plain Python: the CLI imports it at start-up."""

from __future__ import annotations


def prefixed(counts: dict[str, int], prefix: str) -> list[tuple[str, int]]:
    """(name, count) of the counts named `prefix` + name (reason.refusal, kind.EMAIL, ...), in order."""
    return [(k[len(prefix):], v) for k, v in counts.items() if k.startswith(prefix)]


def listed(counts: dict[str, int], prefix: str, empty: str = "none") -> str:
    """Those counts on one line: "refusal 33, repetition 25"; `empty` when there are none."""
    return ", ".join(f"{name} {v:,}" for name, v in prefixed(counts, prefix)) or empty

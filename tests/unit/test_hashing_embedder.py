"""The model-free hashing embedder of bench scale: deterministic, unit length, lexical similarity; and its
name must say it is one, since the name keys cached vectors."""

import numpy as np
import pytest

from instructlake.config import ConfigError, load_config
from instructlake.embed.embedder import HashingEmbedder, get_embedder


def test_vectors_are_unit_length_deterministic_and_lexical():
    e = HashingEmbedder(256)
    texts = ["Write a poem about the sea", "write a POEM about the sea!", "Sort a list of numbers in Python", ""]
    v = e.encode(texts)
    assert v.shape == (4, 256) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1.0) and not v[3].any()
    assert np.array_equal(v, HashingEmbedder(256).encode(texts))
    sims = v @ v.T
    assert sims[0, 1] > 0.99 and sims[0, 2] < 0.5


def test_backend_and_model_name_go_together():
    cfg = load_config("local", ["embed.backend=hashing", "embed.model=hashing-64"])
    e = get_embedder(cfg.embed, cfg.platform.embed)
    assert e.model == "hashing-64" and e.encode(["a b"]).shape == (1, 64)
    with pytest.raises(ConfigError, match="hashing-<dim>"):
        load_config("local", ["embed.backend=hashing"])
    with pytest.raises(ConfigError, match="hashing-<dim>"):
        load_config("local", ["embed.model=hashing-64"])

"""How the mapInPandas function of llm/cache hands a partition's Arrow batches to the worker's engine."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from instructlake.config import LLMConfig, LLMSettings
from instructlake.llm import cache
from instructlake.llm.scripted import ScriptedEngineDouble

SCRIPT = "instructlake.llm.scripted:keyword_tags"


class BatchRecordingDouble(ScriptedEngineDouble):
    """The scripted engine double, recording the size of every generate call."""

    def __init__(self, whole: bool):
        super().__init__()
        self.takes_whole_batches = whole
        self.sizes: list[int] = []

    def generate(self, prompts, params):
        self.sizes.append(len(prompts))
        return super().generate(prompts, params)


def frames(sizes: list[int]):
    n = 0
    for size in sizes:
        keys = [f"k{i}" for i in range(n, n + size)]
        n += size
        msgs = [json.dumps([{"role": "user", "content": f"write code number {k}"}]) for k in keys]
        yield pd.DataFrame({"cache_key": keys, "prompt_hash": keys, "messages": msgs})


def answer(monkeypatch, engine, sizes, batch_size=4):
    from instructlake.llm import registry

    monkeypatch.setattr(registry, "get_engine", lambda *a, **k: engine)
    llm = LLMConfig(backend="scripted", model=SCRIPT, max_reasks=0)
    fn = cache._answer_batches(llm, LLMSettings(batch_size=batch_size), cache.Task("v1", None), "ph")
    return pd.concat(list(fn(frames(sizes))), ignore_index=True)


@pytest.mark.parametrize("sizes", [[5, 0, 7, 3], [1], [10, 10]])
def test_a_whole_batch_engine_gets_the_partition_in_one_call(monkeypatch, sizes):
    eng = BatchRecordingDouble(whole=True)
    out = answer(monkeypatch, eng, sizes)
    assert eng.sizes == [sum(sizes)]  # one call, not one per Arrow batch
    assert list(out["cache_key"]) == [f"k{i}" for i in range(sum(sizes))]
    assert out["error"].isna().all() and out["response"].str.len().gt(0).all()


def test_other_engines_get_batch_size_chunks_of_each_batch(monkeypatch):
    eng = BatchRecordingDouble(whole=False)
    out = answer(monkeypatch, eng, [5, 0, 7], batch_size=4)
    assert eng.sizes == [4, 1, 4, 3]
    assert list(out["cache_key"]) == [f"k{i}" for i in range(12)]


def test_an_empty_partition_builds_no_engine(monkeypatch):
    from instructlake.llm import registry

    def refuse(*a, **k):
        raise AssertionError("no engine for an empty partition")

    monkeypatch.setattr(registry, "get_engine", refuse)
    llm = LLMConfig(backend="scripted", model=SCRIPT)
    fn = cache._answer_batches(llm, LLMSettings(), cache.Task("v1", None), "ph")
    assert list(fn(frames([0, 0]))) == []

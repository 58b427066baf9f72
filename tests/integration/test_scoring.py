"""The score stage through Spark on a tiny Llama: the same losses as in-process scoring, incremental."""

from __future__ import annotations

import json
import math

from instructlake.scoring.scorer import ScoreInput, TransformersScorer, render_turns

WORDS = "the sea world hello write a poem about python function add two numbers".split()


def test_score_stage_matches_in_process_scores_and_is_incremental(spark, warehouse, tmp_path, capsys):
    from instructlake.cli import main
    from tests.tiny_models import build_tiny_llama

    model = build_tiny_llama(tmp_path / "tiny", seed=1)
    records = [{"instruction": " ".join(WORDS[i % 5: i % 5 + 3]), "input": "",
                "output": " ".join(WORDS[(i * 3) % 7: (i * 3) % 7 + 2 + i % 4])} for i in range(12)]
    records.append({"instruction": "hello", "input": "", "output": " ".join(["the sea"] * 40)})  # too long
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(records))
    convo = tmp_path / "multi.json"  # multi-turn: the last assistant turn is scored given the rest
    convo.write_text(json.dumps([{"conversations": [
        {"from": "human", "value": "hello"}, {"from": "gpt", "value": "hello world"},
        {"from": "human", "value": "write a poem"}, {"from": "gpt", "value": "the sea the sea"}]}]))
    wh = ["--warehouse", str(warehouse), "--set", "scoring.model=tiny", "--set", "scoring.max_length=48",
          "--set", f"platform.scoring.model_paths={{tiny: {model}}}", "--set", "platform.scoring.token_budget=64"]
    assert main(wh + ["ingest", str(pool), "--source", "p"]) == 0
    assert main(wh + ["ingest", str(convo), "--source", "m"]) == 0
    assert main(wh + ["score"]) == 0
    out = capsys.readouterr().out
    n = len({json.dumps(r) for r in records}) + 1
    assert f"{n} of {n} samples needed scores: {n} scored, 0 failed, 1 truncated" in out

    scores = {r["sample_id"]: r for r in spark.read.format("delta").load(str(warehouse / "scores")).collect()}
    samples = spark.read.format("delta").load(str(warehouse / "samples")).collect()
    ref = TransformersScorer("tiny", str(model), max_length=48, token_budget=1, device="cpu")
    for s in samples:
        turns = [(t["role"], t["content"]) for t in s["conversation"]]
        last = max(i for i, (r, _) in enumerate(turns) if r == "assistant")
        [want] = ref.score([ScoreInput(render_turns(turns[:last]) + "Assistant:", " " + turns[last][1])])
        got = scores[s["sample_id"]]
        assert math.isclose(got["loss_cond"], want.loss_cond, abs_tol=1e-4)
        assert math.isclose(got["loss_uncond"], want.loss_uncond, abs_tol=1e-4)
        assert math.isclose(got["ifd"], want.loss_cond / want.loss_uncond, rel_tol=1e-4)
        assert got["n_tokens"] == want.n_tokens and got["truncated"] == want.truncated and got["model"] == "tiny"

    assert main(wh + ["score"]) == 0
    assert f"0 of {n} samples needed scores" in capsys.readouterr().out
    assert main(["--warehouse", str(warehouse), "score"]) == 2
    assert "scoring.model is not set" in capsys.readouterr().err

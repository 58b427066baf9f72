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
    # every assistant turn: a new config hash, so everything is scored again under it
    assert main(wh + ["--set", "scoring.turns=all", "score"]) == 0
    assert f"{n} of {n} samples needed scores: {n} scored" in capsys.readouterr().out
    chash = {r["config_hash"] for r in scores.values()}
    every = {r["sample_id"]: r for r in spark.read.format("delta").load(str(warehouse / "scores")).collect()
             if r["config_hash"] not in chash}
    [multi] = [s for s in samples if s["source"] == "m"]
    [want] = ref.score([ScoreInput.from_turns([(t["role"], t["content"]) for t in multi["conversation"]], "all")])
    got = every[multi["sample_id"]]
    assert math.isclose(got["loss_cond"], want.loss_cond, abs_tol=1e-4) and got["n_tokens"] == want.n_tokens
    assert got["n_tokens"] > scores[multi["sample_id"]]["n_tokens"]
    # the default model, "reference", is not trained
    assert main(["--warehouse", str(warehouse), "score"]) == 2
    assert "run `instructlake train-reference` first" in capsys.readouterr().err


def off_distribution(i: int) -> str:
    import random

    rng = random.Random(i)
    if i % 2:  # the characters of an English sentence, shuffled
        letters = list("the quick brown fox jumps over the lazy dog while the children play in the park near "
                       "the river and their parents read the morning newspapers on old wooden benches")
        rng.shuffle(letters)
        return "".join(letters)
    return "".join(chr(rng.randrange(0x0430, 0x044f)) if rng.random() > 0.15 else " " for _ in range(150))


def test_train_reference_score_and_undertrained_seeds_flag_injected_text(spark, warehouse, tmp_path, samples_dir,
                                                                         capsys):
    from instructlake.cli import main

    real = json.loads((samples_dir / "alpaca_en_demo.json").read_text())[:600]
    injected = [{"instruction": off_distribution(i), "input": "", "output": off_distribution(i + 1000)}
                for i in range(30)]
    (tmp_path / "real.json").write_text(json.dumps(real))
    (tmp_path / "odd.json").write_text(json.dumps(injected))
    wh = ["--warehouse", str(warehouse), "--set", "scoring.reference_seconds=40", "--set", "scoring.reference_vocab=1024",
          "--set", "scoring.max_length=256"]
    assert main(wh + ["ingest", str(tmp_path / "real.json"), "--source", "real"]) == 0
    assert main(wh + ["ingest", str(tmp_path / "odd.json"), "--source", "odd"]) == 0
    assert main(wh + ["train-reference"]) == 0
    out = capsys.readouterr().out
    assert "saved to" in out and (warehouse / "models" / "reference" / "config.json").exists()
    assert main(wh + ["score"]) == 0
    assert main(wh + ["select-seeds"]) == 0
    out = capsys.readouterr().out
    assert "undertrained" in out
    seeds = spark.read.format("delta").load(str(warehouse / "seeds"))
    samples = spark.read.format("delta").load(str(warehouse / "samples")).select("sample_id", "source")
    rows = seeds.join(samples, "sample_id").collect()
    flagged = {"real": 0, "odd": 0}
    for r in rows:
        if "undertrained" in r["criteria"]:
            flagged[r["source"]] += 1
            assert r["evidence"]["undertrained.loss_cond"] > r["evidence"]["undertrained.threshold"]
    n_real = samples.filter("source = 'real'").count()
    rate_odd, rate_real = flagged["odd"] / 30, flagged["real"] / n_real
    assert rate_odd >= 0.5 and rate_real <= 0.05, (rate_odd, rate_real)
    hard = [r for r in rows if "hard" in r["criteria"]]
    assert 0 < len(hard) <= 0.15 * (n_real + 30)
    assert main(wh + ["report"]) == 0
    page = (warehouse / "report" / "index.html").read_text()
    assert "Loss scores and seeds" in page and "Seed criteria and their overlaps" in page
    assert page.count("data:image/png;base64,") == 3  # loss, loss per byte, IFD (no graph run here)

"""The LLM runtime through Spark (cache, re-asks, failures) and the tagging stage, with both taggers."""

from __future__ import annotations

import json

from pyspark.sql import functions as F

from instructlake.config import LLMConfig, LLMSettings, load_config
from instructlake.dedup import stage as dedup
from instructlake.ingest import stage as ingest
from instructlake.llm import prompts, usage
from instructlake.llm.cache import Task, complete, keyed
from instructlake.tagging import stage as tagging
from tests.conftest import TEST_SETTINGS, logged_tokens

INSTRUCTIONS = [
    "Write a Python function that adds two numbers and returns the sum.",
    "Translate 'good morning, how are you?' into French.",
    "Write a short poem about the sea at night.",
    "Calculate the area of a circle with a radius of 3 cm.",
    "Summarize the main causes of the French Revolution in three sentences.",
    "Give me a recipe for a vegetarian lasagna with spinach.",
]


def calls(path) -> int:
    return sum(1 for _ in open(path)) if path.exists() else 0


def ingest_instructions(spark, store, config, tmp_path, instructions, name="pool.json"):
    p = tmp_path / name
    p.write_text(json.dumps([{"instruction": t, "input": "", "output": f"Answer to: {t}"} for t in instructions]))
    ingest.run(spark, store, config, [str(p)], source="test")


def scripted_config(warehouse, calls_file, script="instructlake.llm.scripted:keyword_tags"):
    return load_config("local", [*TEST_SETTINGS, "tagging.llm.backend=scripted", f"tagging.llm.model={script}",
                                 f"platform.llm.calls_file={calls_file}", "platform.llm.batch_size=2"],
                       warehouse=str(warehouse))


def test_complete_caches_answers_and_a_rerun_makes_no_calls(spark, store, tmp_path):
    calls_file = tmp_path / "calls.txt"
    llm = LLMConfig(backend="scripted", model="instructlake.llm.scripted:keyword_tags", max_reasks=1)
    settings = LLMSettings(calls_file=str(calls_file), batch_size=2)
    prompt = prompts.load("tag_instruction")
    texts = ["write code in python", "write code in python", "[[malformed]] a poem", "[[garbage]] math",
             "[[backend-down]] anything"]
    req = spark.createDataFrame([(f"r{i}", json.dumps(prompt.render(instruction=t))) for i, t in enumerate(texts)],
                                "request_id string, messages string")
    task = Task(prompt.version, prompt.schema)
    answers, counts = complete(store, req, llm, settings, task)
    got = {r["request_id"]: r for r in answers.collect()}
    spent = logged_tokens(calls_file)
    assert counts == {"prompts": 4, "cache_hits": 0, "calls": 4, "backend_errors": 1, "invalid": 0,
                      **usage.spent(llm.model, *spent)}
    assert spent[0] > 0 and spent[1] > 0
    assert calls(calls_file) == 4 + 1  # four prompts and one re-ask ([[garbage]])
    assert set(got) == {"r0", "r1", "r2", "r3", "r4"}
    assert got["r0"]["parsed"] == got["r1"]["parsed"] and got["r0"]["cache_key"] == got["r1"]["cache_key"]
    assert {t["tag"] for t in json.loads(got["r2"]["parsed"])} == {"creative writing"}
    assert got["r3"]["attempts"] == 2 and got["r3"]["error"] is None
    assert got["r4"]["parsed"] is None and got["r4"]["error"].startswith("backend:")
    assert store.count("llm_cache") == 3  # the backend failure is not cached

    answers, counts = complete(store, req, llm, settings, task)
    assert answers.count() == 5
    assert counts["cache_hits"] == 3 and counts["calls"] == 1  # only the failed prompt is asked again
    assert usage.by_model(counts)[llm.model] == usage.Tokens(*logged_tokens(calls_file, 5))
    assert calls(calls_file) == 5 + 1

    # another model, or another prompt version, is another cache key
    _, counts = complete(store, req.filter("request_id = 'r0'"), LLMConfig(backend="scripted",
                         model="instructlake.llm.scripted:keyword_tags", max_reasks=2), settings, task)
    assert counts["calls"] == 1


def test_invalid_answers_are_cached_rows_with_errors(spark, store, tmp_path):
    llm = LLMConfig(backend="scripted", model="instructlake.llm.scripted:always_prose", max_reasks=1)
    prompt = prompts.load("tag_instruction")
    req = spark.createDataFrame([("a", json.dumps(prompt.render(instruction="hello")))], "request_id string, "
                                                                                         "messages string")
    answers, counts = complete(store, req, llm, LLMSettings(), Task(prompt.version, prompt.schema))
    [row] = answers.collect()
    assert counts["invalid"] == 1 and row["parsed"] is None and "no JSON" in row["error"] and row["attempts"] == 2
    assert "weather" in row["response"]


def test_llm_tagging_is_incremental_and_rerun_free(spark, store, tmp_path, warehouse):
    calls_file = tmp_path / "calls.txt"
    cfg = scripted_config(warehouse, calls_file)
    ingest_instructions(spark, store, cfg, tmp_path, INSTRUCTIONS + ["[[garbage]] Calculate 17 * 3",
                                                                     "[[backend-down]] Say hello"])
    r = tagging.run(spark, store, cfg)
    c = r.counts
    assert (c["input"], c["tagged"], c["untagged"], c["backend_failed"]) == (8, 7, 0, 1)
    tags = store.read("tags").join(store.read("samples").select("sample_id", "instruction"), "sample_id")
    by = {}
    for row in tags.collect():
        by.setdefault(row["instruction"], set()).add(row["tag"])
    assert {"python programming", "programming"} <= by[INSTRUCTIONS[0]]
    assert by[INSTRUCTIONS[1]] == {"translation"}
    assert by["[[garbage]] Calculate 17 * 3"] == {"arithmetic"}
    row = tags.first()
    assert row["tagger"] == "llm" and row["prompt_version"].startswith("tag_instruction/v1-")
    assert row["config_hash"] == r.config_hash
    n_calls = calls(calls_file)

    again = tagging.run(spark, store, cfg)
    assert again.counts["input"] == 1  # only the sample whose backend call failed
    assert calls(calls_file) == n_calls + 1

    ingest_instructions(spark, store, cfg, tmp_path, ["Write an email to my landlord"], "more.json")
    more = tagging.run(spark, store, cfg)
    assert more.counts["input"] == 2 and more.counts["tagged"] == 1  # the new one, and the failing one again
    assert store.read("tags").groupBy("sample_id", "tag").count().filter("count > 1").count() == 0


def test_zero_shot_tagging_gives_sensible_taxonomy_tags(spark, store, config, tmp_path):
    # a near copy with a shorter answer: dedup keeps the original, and the copy is not tagged
    ingest_instructions(spark, store, config, tmp_path, INSTRUCTIONS + ["write a python function that adds "
                                                                        "two numbers and returns the sum"])
    dedup.run(spark, store, config)  # the near-copy is removed and is not tagged
    r = tagging.run(spark, store, config)
    assert r.counts["pool"] == 6 and r.counts["input"] == 6
    assert r.counts["tagged"] + r.counts["untagged"] == 6
    tags = (store.read("tags").join(store.read("samples").select("sample_id", "instruction"), "sample_id")
            .filter(F.col("tag").isNotNull()))
    by, open_by = {}, {}
    for row in tags.collect():
        assert row["tagger"] == "zero-shot" and row["model"] == "all-MiniLM-L6-v2"
        if row["score"] is None:  # an open tag: a phrase of the instruction, ranked after the taxonomy's
            assert row["explanation"] == tagging.OPEN_TAG_EXPLANATION
            open_by.setdefault(row["instruction"], []).append((row["rank"], row["tag"]))
        else:
            by.setdefault(row["instruction"], []).append((row["rank"], row["tag"], row["score"]))
    assert {t for _, t in open_by[INSTRUCTIONS[2]]} == {"poem writing", "sea", "night"}
    assert {"area calculation", "circle"} <= {t for _, t in open_by[INSTRUCTIONS[3]]}
    assert "french revolution" in {t for _, t in open_by[INSTRUCTIONS[4]]}
    for text, lst in open_by.items():
        assert sorted(r for r, _ in lst) == list(range(len(by[text]) + 1, len(by[text]) + len(lst) + 1))
        assert len(lst) <= config.tagging.open_tags + 1
    expect = {0: {"python programming"}, 1: {"translation", "french language"}, 2: {"poetry writing"},
              3: {"geometry"}, 5: {"cooking and recipes"}}
    for i, wanted in expect.items():
        got = {t for _, t, _ in by[INSTRUCTIONS[i]]}
        assert got & wanted, (INSTRUCTIONS[i], got)
    from instructlake.tagging import taxonomy

    category = taxonomy.load().category_of()
    for lst in by.values():  # ranked by category, then by cosine inside a category
        ranked = sorted(lst)
        assert [r for r, _, _ in ranked] == list(range(1, len(lst) + 1)) and len(lst) <= config.tagging.max_tags
        for (_, a, sa), (_, b, sb) in zip(ranked, ranked[1:], strict=False):
            assert category[a] != category[b] or sa >= sb, ranked
    assert r.counts["untagged"] == 0  # two-level: every sample gets its best category's best tag
    assert tagging.run(spark, store, config).counts["input"] == 0


def test_messages_column_renders_like_the_prompt(spark):
    prompt = prompts.load("tag_instruction")
    texts = ["plain", "with {braces} and \"quotes\"\nnew line", "unicode: 你好 ñ"]
    df = spark.createDataFrame([(t,) for t in texts], "t string")
    got = [json.loads(r[0]) for r in df.select(prompt.messages_column(instruction=F.col("t"))).collect()]
    assert got == [prompt.render(instruction=t) for t in texts]


def test_cli_tag_and_normalize_tags_with_synonyms_and_noise(spark, warehouse, tmp_path, capsys):
    from instructlake.cli import main

    # raw tags chosen by the test: spelling variants (synonyms at λ = 0.91), related tags, and noise
    specs = (["python programming"] * 4 + ["python programing"] * 3 + ["creative writing"] * 4
             + ["creative writting"] * 2 + ["java programming"] * 3 + ["poetry writing"] * 3 + ["zebra "
                                                                                                "migration"])
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps([{"instruction": f"Task number {i}. [[tags: {t} | "
                                                f"{'cooking and recipes' if i % 2 else 'summarization'}]]",
                                 "input": "", "output": f"answer {i}"} for i, t in enumerate(specs)]))
    wh = ["--warehouse", str(warehouse), "--set", "tagging.llm.backend=scripted",
          "--set", "tagging.llm.model=instructlake.llm.scripted:declared_tags", "--set", "normalize_tags.min_freq=2"]
    assert main(wh + ["normalize-tags"]) == 2
    assert "no table 'tags'" in capsys.readouterr().err
    assert main(wh + ["ingest", str(pool), "--source", "t"]) == 0
    assert main(wh + ["tag"]) == 0
    out = capsys.readouterr().out
    assert f"{len(specs)} of {len(specs)} samples needed tags: {len(specs)} tagged" in out
    assert main(wh + ["normalize-tags"]) == 0
    out = capsys.readouterr().out
    assert "9 raw tags -> 6 canonical (1 rare dropped, under 2 of 20 samples)" in out
    m = {r["raw_tag"]: r for r in spark.read.format("delta").load(str(warehouse / "tag_map")).collect()}
    assert m["python programing"]["canonical_tag"] == "python programming" and m["python programing"]["status"] == "merged"
    assert m["creative writting"]["canonical_tag"] == "creative writing"
    assert m["java programming"]["canonical_tag"] == "java programming"
    assert m["zebra migration"]["status"] == "rare" and m["zebra migration"]["canonical_tag"] is None
    assert m["python programming"]["category"] == "programming"  # a taxonomy tag keeps its category
    assert m["creative writing"]["category"] == "creative writing"  # nearest category description
    stats = {r["canonical_tag"]: r for r in spark.read.format("delta").load(str(warehouse / "tag_stats")).collect()}
    assert stats["python programming"]["frequency"] == 7 and stats["python programming"]["freq_per_source"] == {"t": 7}
    assert stats["cooking and recipes"]["frequency"] == len(specs) // 2
    assert "zebra migration" not in stats
    # a re-run of tag makes no calls and adds nothing
    assert main(wh + ["tag"]) == 0
    assert "0 of" in capsys.readouterr().out


SKILLS = ("python programming", "creative writing", "cooking and recipes", "tax law")


def test_a_cut_that_keeps_no_tag_warns_and_the_pipeline_goes_on(spark, store, tmp_path, warehouse):
    from instructlake import pipeline

    ingest_instructions(spark, store, load_config("local", TEST_SETTINGS, warehouse=str(warehouse)), tmp_path,
                        [f"Task {i} [[tags: {SKILLS[i % 3]} | {SKILLS[1 + i % 3]}]]" for i in range(24)])
    base = [*TEST_SETTINGS, "tagging.llm.backend=scripted", "tagging.llm.model=instructlake.llm.scripted:declared_tags"]
    # the paper's cut of 100, set explicitly, on a pool of 24: every tag is rare
    cut = load_config("local", [*base, "normalize_tags.min_freq=100"], warehouse=str(warehouse))
    outcomes = pipeline.run(spark, store, cut, pipeline.Inputs(raw=()), start="tagging", stop="seeds",
                            skip=("train_reference", "scoring"))
    res = {o.step: o.result for o in outcomes}
    assert [o.action for o in outcomes] == ["ran"] * 4, outcomes
    assert res["normalize_tags"].counts["canonical_tags"] == 0 and res["normalize_tags"].counts["min_freq"] == 100
    assert res["seeds"].extra["thresholds"]["long_tail.max_freq"] == 200  # twice the cut, as the paper's
    for stage in ("normalize_tags", "graph", "seeds"):
        assert "normalize_tags.min_freq" in (res[stage].warning or ""), (stage, res[stage].warning)
    assert store.read("tag_edges").count() == 0 and store.read("tag_degrees").count() == 0
    messages = {r["stage"]: r["message"] for r in store.read("runs").filter("status = 'ok'").collect()}
    assert "normalize_tags.min_freq" in messages["graph"]  # the run record keeps the warning
    # unset, the cut scales with the pool: 100 per 7M samples of 24 is below 1, so the cut is 1
    auto = load_config("local", base, warehouse=str(warehouse))
    outcomes = pipeline.run(spark, store, auto, pipeline.Inputs(raw=()), start="normalize_tags", stop="seeds",
                            skip=("train_reference", "scoring"))
    res = {o.step: o.result for o in outcomes}
    # the long tail scales with the cut: tags used by fewer than 2 samples; each tag here has 8 or more
    assert res["seeds"].extra["thresholds"]["long_tail.max_freq"] == 2
    assert res["seeds"].counts["criterion.long_tail"] == 0
    from instructlake.scoring import seeds

    wide = load_config("local", [*base, "seeds.long_tail_max_freq=9"], warehouse=str(warehouse))
    # a number set wins: the 16 samples with a tag used by 8 (python programming or tax law)
    assert seeds.run(spark, store, wide).counts["criterion.long_tail"] == 16
    assert res["normalize_tags"].counts["min_freq"] == 1 and res["normalize_tags"].counts["pool"] == 24
    assert res["normalize_tags"].counts["rare_tags"] == 0 and res["normalize_tags"].counts["raw_tags"] == 4
    assert res["normalize_tags"].warning is None
    assert res["graph"].counts["tags"] == res["normalize_tags"].counts["canonical_tags"] > 0
    assert res["graph"].warning is None


def test_a_crash_midway_keeps_the_committed_rounds(spark, store, tmp_path):
    """Answers are committed every `commit_every` prompts: a job killed midway is re-run without asking the
    committed prompts again."""
    import pytest

    calls_file = tmp_path / "calls.txt"
    llm = LLMConfig(backend="scripted", model="instructlake.llm.scripted:crash_once", max_reasks=0)
    settings = LLMSettings(calls_file=str(calls_file), batch_size=1, commit_every=3, partitions=1)
    prompt = prompts.load("tag_instruction")
    task = Task(prompt.version, prompt.schema)
    # 12 prompts in 4 rounds of about 3, a prompt's round set by its cache key: the crashing prompt's marker
    # path is chosen so that it falls in the last round, after the others committed
    for k in range(64):
        texts = [f"write code number {i}" for i in range(11)] + [f"[[crash-once:{tmp_path / f'crashed{k}'}]] "
                                                                 f"a poem"]
        req = spark.createDataFrame([(f"r{i}", json.dumps(prompt.render(instruction=t))) for i, t in enumerate(texts)],
                                    "request_id string, messages string")
        rounds = keyed(req, llm, task).select(F.pmod(F.xxhash64("cache_key"), F.lit(4)).alias("r")).collect()
        if rounds[-1]["r"] == 3 and any(r["r"] < 3 for r in rounds[:-1]):
            break
    with pytest.raises(Exception, match="scripted crash"):
        complete(store, req, llm, settings, task)
    committed = store.count("llm_cache")
    assert 0 < committed < len(texts)  # the rounds before the crash are kept
    answers, counts = complete(store, req, llm, settings, task)
    assert answers.count() == len(texts) and counts["cache_hits"] == committed
    assert counts["calls"] == len(texts) - committed
    assert store.count("llm_cache") == len(texts)


def test_an_answer_another_run_cached_first_is_the_one_returned(spark, store, tmp_path, monkeypatch):
    """Two runs answering the same prompt at once: the MERGE keeps the first answer cached, and both runs
    must return that one (not their own), once per request."""
    from instructlake.llm import cache

    llm = LLMConfig(backend="scripted", model="instructlake.llm.scripted:keyword_tags", max_reasks=0)
    prompt = prompts.load("tag_instruction")
    task = Task(prompt.version, prompt.schema)
    texts = ["write code in python", "a poem about rain", "solve this math problem"]
    req = spark.createDataFrame([(f"r{i}", json.dumps(prompt.render(instruction=t))) for i, t in enumerate(texts)],
                                "request_id string, messages string")
    other = '[{"tag": "the other run", "explanation": "cached first"}]'
    real_merge = store.merge

    def merge_after_another_run(name, df, **kw):
        if name == "llm_cache":  # the other run commits its answer to r1's prompt just before this one
            first = df.join(keyed(req.filter("request_id = 'r1'"), llm, task).select("cache_key"), "cache_key")
            real_merge(name, first.withColumn("parsed", F.lit(other)).localCheckpoint(), **kw)
        return real_merge(name, df, **kw)

    monkeypatch.setattr(store, "merge", merge_after_another_run)
    answers, counts = cache.complete(store, req, llm, LLMSettings(), task)
    got = {r["request_id"]: r["parsed"] for r in answers.collect()}
    assert answers.count() == 3 and counts["calls"] == 3
    assert got["r1"] == other and other not in (got["r0"], got["r2"])
    assert store.count("llm_cache") == 3


def test_answers_become_tag_rows_in_one_pass(spark):
    """Repeated tags keep the first (with its rank), blank tags go, an answer without a usable tag and an
    invalid one leave one null-tag row with the reason, a backend failure leaves none."""
    rows = [("a", '[{"tag": " Coding ", "explanation": "1"}, {"tag": "", "explanation": "2"},'
                  ' {"tag": "coding.", "explanation": "3"}, {"tag": "Math", "explanation": "4"}]', None),
            ("b", '[{"tag": "  ", "explanation": "blank"}]', None),
            ("c", None, "does not match the schema"),
            ("d", None, "backend: HTTP 503")]
    answers = spark.createDataFrame(rows, "request_id string, parsed string, error string")
    item = "array<struct<tag:string,explanation:string>>"
    parsed = answers.withColumn("_tags", tagging._answer_tags(F.from_json("parsed", item)))
    got = sorted(parsed.select("request_id", F.explode(tagging._row_entries(F.col("_tags"))).alias("e"))
                 .select("request_id", "e.tag", "e.explanation", "e.rank", "e.error").collect(), key=lambda r: r[:2])
    assert [tuple(r) for r in got] == [
        ("a", "coding", "1", 1, None), ("a", "math", "4", 4, None),
        ("b", None, None, None, "the answer held no usable tag"),
        ("c", None, None, None, "does not match the schema")]


# topics crossed with the scripted teacher's keywords (llm/scripted.KEYWORDS): what it tags is in the text
DISTILL_TASKS = ["Write a python function that {}.", "Translate into German: a note about {}.",
                 "Write a poem about {}.", "Calculate the cost of {} for a year.",
                 "Summarize this article about {}.", "Write an email to a colleague about {}."]
DISTILL_TOPICS = ["parses dates", "sorts names", "the ocean", "a rainy morning", "train tickets", "a garden",
                  "the stock market", "a new office", "solar panels", "a birthday party", "the moon",
                  "coffee beans", "a lost dog", "mountain hiking", "old castles", "winter holidays"]


def test_distilled_tagging_asks_the_llm_for_a_share_and_learns_the_rest(spark, store, tmp_path, warehouse):
    calls_file = tmp_path / "calls.txt"
    cfg = load_config("local", [*TEST_SETTINGS, "tagging.llm.backend=scripted",
                                "tagging.llm.model=instructlake.llm.scripted:keyword_tags",
                                f"platform.llm.calls_file={calls_file}", "tagging.distill.sample=0.4",
                                "tagging.distill.k=5"], warehouse=str(warehouse))
    texts = [t.format(topic) for t in DISTILL_TASKS for topic in DISTILL_TOPICS]
    ingest_instructions(spark, store, cfg, tmp_path, texts)
    r = tagging.run(spark, store, cfg)
    c = r.counts
    texts_of = store.read("samples").select("sample_id", "instruction")
    tags = store.read("tags").join(texts_of, "sample_id").collect()
    by_tagger: dict[str, set] = {}
    for row in tags:
        by_tagger.setdefault(row["tagger"], set()).add(row["sample_id"])
    llm, student = by_tagger["llm"], by_tagger["distilled"]
    # the LLM answered the teacher share only (its own count of calls), the classifier tagged the others
    assert calls(calls_file) == len(llm) == c["llm_calls"] == c["distill_llm_tagged"]
    assert 0.25 * len(texts) < len(llm) < 0.55 * len(texts)
    assert not llm & student and len(llm) + len(student) == len(texts) == c["input"]
    print("distill counts:", {k: v for k, v in c.items() if "distill" in k or k.startswith("llm_")})
    assert c["distill_student"] == len(student) and c["tagged"] + c["untagged"] == len(texts)
    # agreement with the LLM on the held-out LLM-tagged samples: per tag, and micro totals in the record
    agree = {row["tag"]: row for row in store.read("tag_agreement").collect()}
    assert agree and sum(a["agreed"] for a in agree.values()) == c["distill_holdout_agreed"] > 0
    assert c["distill_holdout_agreed"] >= 0.6 * c["distill_holdout_llm_tags"]
    # what the classifier gave a student sample is what the teacher gives such a text
    from instructlake.llm.scripted import KEYWORDS

    right = total = 0
    for row in tags:
        if row["tagger"] == "distilled" and row["tag"] is not None:
            assert row["model"].startswith("knn-5 over all-MiniLM-L6-v2") and 0 < row["score"] <= 1
            total += 1
            text = row["instruction"].lower()
            right += any(t == row["tag"] and k in text for k, (t, _) in KEYWORDS.items())
    assert total and right >= 0.8 * total, (right, total)
    # a re-run asks nothing and tags nothing
    again = tagging.run(spark, store, cfg)
    assert again.counts["input"] == 0 and calls(calls_file) == len(llm)

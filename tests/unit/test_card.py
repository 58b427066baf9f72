"""The export's dataset card, from a manifest alone (no Spark)."""

from __future__ import annotations

import yaml

from instructlake.export.card import body, carded, front_matter, size_category

FILES = {"sharegpt": {"path": "/x/sharegpt", "pattern": "part-*.json"},
         "openai": {"path": "/x/openai", "pattern": "part-*.json"},
         "parquet": {"path": "/x/parquet", "pattern": "part-*.parquet"}}
MANIFEST = {"created_at": "2026-12-04T10:00:00+00:00", "rows": 12_345,
            "rows_per_source": {"b": 345, "a": 12_000},
            "table_versions": {"samples": 3}, "duplicates_dropped": 7, "contaminated_dropped": 2,
            "quality_filter": {"enabled": False, "filtered_dropped": 5},
            "scrub": {"enabled": True, "scrubbed": 4, "values_by_kind": {"EMAIL": 3, "SECRET": 2}},
            "unchecked": {"allowed": True, "not_deduplicated": 0, "not_filtered": 0, "not_decontaminated": 9,
                          "flagged_under_earlier_config_dropped": 1},
            "config_hashes": {"export": "e1"}, "files": FILES}


def test_size_categories_at_their_bounds():
    assert [size_category(n) for n in (0, 999, 1_000, 9_999, 10_000, 999_999, 1_000_000, 10**9)] == [
        "n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "n>100M"]


def test_configs_name_the_json_formats_or_parquet_alone():
    assert carded(FILES) == ["sharegpt", "openai"]
    assert carded({"parquet": FILES["parquet"]}) == ["parquet"]
    meta = front_matter(MANIFEST, [("en", 10), ("und", 2), ("fr", 1)])
    assert meta["language"] == ["en", "fr"] and meta["size_categories"] == ["10K<n<100K"]
    assert meta["configs"][0] == {"config_name": "sharegpt", "default": True,
                                  "data_files": [{"split": "train", "path": "sharegpt/part-*.json"}]}
    assert yaml.safe_load(yaml.safe_dump(meta)) == meta


def test_body_says_what_was_left_out_and_what_went_unchecked():
    text = body(MANIFEST, [("en", 12_345)], [("Coding", 3)], [("alpaca_eval", 805)])
    for line in ("| a | 12,000 |", "| near or exact duplicate (dedup, semdedup) | 7 |",
                 "| failed the quality filter (verdicts given before it was turned off) | 5 |",
                 "| flagged as benchmark contamination | 2 |",
                 "| flagged under an earlier decontam config | 1 |",
                 "9 not checked against the benchmarks", "The quality filter was off",
                 "alpaca_eval (805 prompts)", "| Coding | 3 |", '"samples": 3',
                 "4 samples had e-mail addresses", "| EMAIL | 3 |", "| SECRET | 2 |"):
        assert line in text, line
    assert text.index("| a |") < text.index("| b |")


def test_body_says_when_nothing_was_scrubbed():
    off = dict(MANIFEST, scrub={"enabled": False, "scrubbed": 0})
    assert "Not scrubbed (`scrub.enabled: false`)" in body(off, [], [], [])

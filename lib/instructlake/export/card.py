"""The export's dataset card: README.md in the Hugging Face dataset-card format.

Its YAML header names one config per JSON Lines format written (`sharegpt`, `openai`), so
`datasets.load_dataset(out_dir, "sharegpt")` finds that format's part files and nothing else (Parquet
loads by its data_files, as the body says: see carded()); the body
says what went in (sources, languages, categories) and what was left out (duplicates, the quality filter,
benchmark contamination, unchecked samples), with the config hashes that reproduce it.
"""

from __future__ import annotations

import json

import yaml
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from instructlake.config import Config
from instructlake.store import Store

# Hugging Face's size categories, by upper bound
SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))


def size_category(n: int) -> str:
    return next((name for bound, name in SIZES if n < bound), "n>100M")


def languages(store: Store, ids: DataFrame, top: int = 20) -> list[tuple[str, int]]:
    """(ISO 639-1 code, exported samples) from the quality filter's verdicts, most common first."""
    if not store.exists("quality"):
        return []
    from instructlake.quality.stage import top_languages

    exported = store.read("quality").select("sample_id", "lang").join(ids, "sample_id", "left_semi")
    return top_languages(exported, top)


def best_category(store: Store, config: Config, ids: DataFrame) -> DataFrame | None:
    """(sample_id, category) of `ids` by each sample's best-ranked tag that tag_map maps to a category
    (samples without one are left out); None before tagging and normalize-tags have run."""
    if not (store.exists("tags") and store.exists("tag_map")):
        return None
    from instructlake.graph.cooccur import raw_tags
    from instructlake.tagging.stage import tagging_hash

    tags = raw_tags(store, tagging_hash(config)).join(ids, "sample_id", "left_semi")
    rank = F.coalesce("rank", F.lit(1 << 20)).alias("rank")  # an unranked tag after every ranked one
    mapped = tags.select("sample_id", F.col("tag").alias("raw_tag"), rank)
    cats = store.read("tag_map").filter(F.col("category").isNotNull()).select("raw_tag", "category")
    first = Window.partitionBy("sample_id").orderBy("rank", "category")
    return (mapped.join(cats, "raw_tag").withColumn("_n", F.row_number().over(first)).filter("_n = 1")
            .select("sample_id", "category"))


def categories(store: Store, config: Config, ids: DataFrame) -> list[tuple[str, int]]:
    """(taxonomy category, exported samples) by each sample's best-ranked tag that tag_map maps to one."""
    best = best_category(store, config, ids)
    if best is None:
        return []
    rows = best.groupBy("category").count().orderBy(F.desc("count"), "category").collect()
    return [(r["category"], int(r["count"])) for r in rows]


def benchmarks(store: Store) -> list[tuple[str, int]]:
    if not store.exists("benchmarks"):
        return []
    rows = store.read("benchmarks").groupBy("benchmark").count().orderBy("benchmark").collect()
    return [(r["benchmark"], int(r["count"])) for r in rows]


def carded(files: dict) -> list[str]:
    """The formats the card's configs name. `datasets` builds every config of a directory with the one
    builder it infers from the first config's files, so JSON Lines and Parquet cannot both be configs:
    the JSON formats are (what SFT trainers read), and Parquet loads by its data_files (body())."""
    json_fmts = [fmt for fmt, info in files.items() if info["pattern"].endswith(".json")]
    return json_fmts or list(files)


def front_matter(manifest: dict, langs: list[tuple[str, int]]) -> dict:
    files = manifest["files"]
    configs = [{"config_name": fmt,
                "data_files": [{"split": "train", "path": f"{fmt}/{files[fmt]['pattern']}"}]}
               for fmt in carded(files)]
    if configs:
        configs[0]["default"] = True
    meta = {"license": card_license(manifest.get("licenses", {})), "task_categories": ["text-generation"],
            "size_categories": [size_category(manifest["rows"])], "configs": configs,
            "tags": ["instruction-tuning", "sft", "instructlake"]}
    codes = [code for code, _ in langs if code and code != "und"]
    if codes:
        meta["language"] = codes
    return meta


def card_license(lic: dict) -> str:
    """The header's license: the one id every row carries, else `other` (the body lists them)."""
    ids = {i for key in lic.get("rows_per_license", {}) for i in key.split("+")}
    return ids.pop() if len(ids) == 1 else "other"


def license_section(lic: dict) -> list[str]:
    if not lic:
        return []
    asked = lic.get("asked", {})
    wanted = []
    if asked.get("licenses"):
        wanted.append("licenses among " + ", ".join(f"`{x}`" for x in asked["licenses"]))
    if asked.get("commercial_only"):
        wanted.append("commercial use allowed (`--commercial-only`)")
    lines = ["## Licenses",
             "Each row's `licenses` field holds the licenses it carries (its source's, or for a synthesized "
             "row its seed's) and `model_terms` the terms of the models that wrote it. Rows per license:",
             _rows(("licenses", "rows"), sorted(lic.get("rows_per_license", {}).items()))]
    terms = {k: v for k, v in lic.get("rows_per_model_terms", {}).items() if k != "none"}
    if terms:
        lines += ["Rows per model terms:", _rows(("model terms", "rows"), sorted(terms.items()))]
    if wanted:
        lines.append(f"Only rows with {' and '.join(wanted)} were exported; {lic.get('dropped', 0):,} were "
                     "left out.")
    lines.append("Check each license before training on or sharing this data: some may not allow "
                 "commercial use, and `unknown` means no license was given for the source.")
    return lines


def mix_section(mixed: dict | None) -> list[str]:
    """What budgeted mixing asked for and drew per group."""
    if not mixed:
        return []
    asked = mixed["asked"]
    rows = [(g, mixed["available"].get(g, 0), mixed["drawn"].get(g, 0)) for g in mixed["available"]]
    return ["## Mix",
            f"At most {asked['max_samples']:,} rows, shared among {asked['by']} groups by weight "
            f"({asked['weights'] or 'all equal'}; others {asked['default_weight']}), at least "
            f"{asked['min_per_group']:,} per group, drawn with seed {asked['seed']}; "
            f"{mixed['dropped']:,} rows that passed every check were not drawn.",
            _rows((asked["by"], "available", "drawn"), sorted(rows, key=lambda r: -r[2]))]


def _rows(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def body(manifest: dict, langs, cats, benches) -> str:
    n = manifest["rows"]
    fmts = list(manifest["files"])
    q = manifest.get("quality_filter", {})
    unchecked = manifest.get("unchecked", {})
    named = carded(manifest["files"])
    how = f'`datasets.load_dataset("path/to/this/dir", "{named[0]}", split="train")`' if named else "nothing"
    others = [f for f in fmts if f not in named]
    if others:
        how += "; " + ", ".join(f'`{f}` with `datasets.load_dataset("{f}", data_files="path/to/this/dir/{f}/'
                                f'{manifest["files"][f]["pattern"]}", split="train")`' for f in others)
    off = "" if q.get("enabled", True) else " (verdicts given before it was turned off)"
    parts = [
        "# instructlake export",
        f"{n:,} instruction-tuning conversations, written {manifest['created_at'][:19]} UTC, in "
        + ", ".join(f"`{f}`" for f in fmts) + f". Load one format with {how}.",
        "## Sources", _rows(("source", "rows"), sorted(manifest["rows_per_source"].items())),
        *license_section(manifest.get("licenses", {})),
        "## What was left out",
        _rows(("reason", "samples"), [
            ("near or exact duplicate (dedup, semdedup)", manifest["duplicates_dropped"]),
            ("failed the quality filter" + off, q.get("filtered_dropped", 0)),
            ("flagged as benchmark contamination", manifest["contaminated_dropped"]),
            ("flagged under an earlier decontam config",
             unchecked.get("flagged_under_earlier_config_dropped", 0)),
        ]),
    ]
    if unchecked.get("allowed"):
        parts.append("Exported with `--allow-unchecked`: "
                     f"{unchecked.get('not_deduplicated', 0):,} samples not deduplicated, "
                     f"{unchecked.get('not_filtered', 0):,} not through the quality filter, "
                     f"{unchecked.get('not_scrubbed', 0):,} not checked for PII (shipped as they are) and "
                     f"{unchecked.get('not_decontaminated', 0):,} not checked against the benchmarks under "
                     "the current configs.")
    if not q.get("enabled", True):
        parts.append("The quality filter was off (`filter.enabled: false`).")
    parts += pii_section(manifest.get("scrub")) + mix_section(manifest.get("mix"))
    if benches:
        checked = ", ".join(f"{b} ({k:,} prompts)" for b, k in benches)
        parts += ["## Decontamination",
                  f"Checked against {checked}; {manifest['contaminated_dropped']:,} flagged samples left "
                  "out."]
    if langs:
        parts += ["## Languages", _rows(("language", "samples"), langs)]
    if cats:
        parts += ["## Categories", "By each sample's best-ranked tag.", _rows(("category", "samples"), cats)]
    parts += ["## Reproduce", "The table versions read and the config hashes:",
              "```json\n" + json.dumps({"table_versions": manifest["table_versions"],
                                        "config_hashes": manifest["config_hashes"]}, indent=2) + "\n```"]
    return "\n\n".join(parts) + "\n"


def pii_section(scrub: dict | None) -> list[str]:
    """What the scrub stage replaced in the shipped text, or that it was off."""
    if not scrub:
        return []
    if not scrub.get("enabled"):
        return ["## PII and secrets",
                "Not scrubbed (`scrub.enabled: false`): the text is shipped as ingested."]
    kinds = sorted(scrub.get("values_by_kind", {}).items())
    return ["## PII and secrets",
            f"{scrub.get('scrubbed', 0):,} samples had e-mail addresses, phone numbers, IP addresses, card "
            "numbers or secrets replaced by typed placeholders (`<EMAIL>`, `<SECRET>`, ...):",
            _rows(("kind", "values replaced"), kinds) if kinds else "none were found."]


def stats(store: Store, config: Config, exported: DataFrame) -> tuple[list, list, list]:
    """(languages, categories, benchmarks) of the frame export wrote, for write()."""
    ids = exported.select("sample_id")
    return languages(store, ids), categories(store, config, ids), benchmarks(store)


def write(store: Store, out: str, manifest: dict, card_stats: tuple[list, list, list]) -> str:
    """Write <out>/README.md."""
    langs, cats, benches = card_stats
    text = ("---\n" + yaml.safe_dump(front_matter(manifest, langs), sort_keys=False) + "---\n\n"
            + body(manifest, langs, cats, benches))
    path = f"{out}/README.md"
    store.write_text(path, text)
    return path

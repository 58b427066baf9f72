"""Benchmark prompts -> the `benchmarks` table.

A benchmark file (JSON, JSON Lines or Parquet, as ingest reads them) holds records of any supported chat
format (its user turns are the prompts) or records of prompts: a string, or an object with one of prompt /
instruction (+ input) / question / query / text, or `turns` (MT-Bench and Arena-Hard: a list of strings or
of {content}). Each user turn of a multi-turn item is a prompt of its own (item id suffix #t2, #t3, ...).
Records that hold no prompt are quarantined with the field they lack; the rest load.

AlpacaEval's 805 instructions ship inside the package (resources/benchmarks/alpaca_eval.jsonl, taken from
data/samples/gpt4_1106_preview_model_outputs.json) and are the default benchmark.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from instructlake import hadoopfs, schemas
from instructlake.config import ConfigError, IngestConfig
from instructlake.frames import rows_frame
from instructlake.ingest.formats import CONVERTERS, RecordError, _content, _own_id, detect
from instructlake.ingest.records import normalize_text, quarantine_id, scan_records
from instructlake.store import Store

log = logging.getLogger(__name__)

DEFAULT = "alpaca_eval"
PROMPT_KEYS = ("prompt", "instruction", "question", "query", "text")
ID_KEYS = ("question_id", "id", "uid", "idx", "item_id")


def builtin_path(name: str) -> Path:
    return Path(__file__).resolve().parents[1] / "resources" / "benchmarks" / f"{name}.jsonl"


@dataclass
class Item:
    item_id: str
    prompt: str


def prompts_of(record: Any, index: int) -> list[Item]:
    """The prompts of one benchmark record; RecordError when it holds none."""
    if isinstance(record, str):
        if not record.strip():
            raise RecordError("empty_content", "the prompt is an empty string")
        return [Item(str(index), normalize_text(record))]
    if not isinstance(record, dict):
        raise RecordError("not_an_object", f"the record is a JSON {type(record).__name__}, expected an "
                                           "object or a string")
    own = _own_id(record, *ID_KEYS) or str(index)
    texts: list[str] = []
    if isinstance(record.get("turns"), list):
        for i, t in enumerate(record["turns"]):
            text = (t if isinstance(t, str)
                    else _content(t.get("content"), f"turns[{i}]") if isinstance(t, dict) else None)
            if text is None:
                raise RecordError("wrong_type", f"turns[{i}] is {type(t).__name__}, expected a string or "
                                                f"{{content}}")
            texts.append(text)
    elif detect(record) in ("sharegpt", "openai", "oasst"):
        try:
            convs = list(CONVERTERS[detect(record)](record, IngestConfig()))
        except RecordError:
            convs = []
        texts = [c for conv in convs[:1] for r, c in conv.turns if r == "user"]
    if not texts:
        for key in PROMPT_KEYS:
            v = record.get(key)
            if isinstance(v, str) and v.strip():
                extra = record.get("input") if key == "instruction" else None
                texts = [v.strip() + (f"\n\n{extra.strip()}" if isinstance(extra, str) and extra.strip()
                                      else "")]
                break
    texts = [normalize_text(t) for t in texts if t and t.strip()]
    if not texts:
        raise RecordError("missing_field", "no prompt: expected one of " + ", ".join(PROMPT_KEYS) +
                          ", a 'turns' list, or a chat conversation with a user turn")
    if len(texts) == 1:
        return [Item(own, texts[0])]
    return [Item(own if i == 0 else f"{own}#t{i + 1}", t) for i, t in enumerate(texts)]


def read_file(path: str) -> tuple[list[Item], list[tuple[Any, str, str]]]:
    """(items, [(raw, reason, detail)]) of one file; duplicate item ids keep their first prompt."""
    items: dict[str, Item] = {}
    bad = []
    for i, raw in enumerate(scan_records(path)):
        if raw.error is not None:
            bad.append((raw, *raw.error))
            continue
        try:
            for it in prompts_of(raw.value, i):
                items.setdefault(it.item_id, it)
        except RecordError as e:
            bad.append((raw, e.reason, e.detail))
    return list(items.values()), bad


def quarantine_records(store: Store, stage: str, source: str, label: str, bad: list, raw_chars: int) -> None:
    """[(raw, reason, detail)] of records read outside ingest -> `quarantine`, ids as ingest makes them."""
    q = rows_frame(
        store.spark,
        [(quarantine_id(stage, source, label, raw.locator, reason, raw.text), stage, source, label,
          raw.locator, raw.line, reason, detail[:2000], raw.text[:raw_chars], raw.nbytes)
         for raw, reason, detail in bad],
        "quarantine_id string, stage string, source string, source_file string, locator string, line long, "
        "reason string, detail string, raw string, raw_length long")
    store.merge("quarantine", q.withColumn("quarantined_at", F.current_timestamp())
                .select(*schemas.QUARANTINE.fieldNames()))


def _exists(path: str) -> bool:
    """A local file, or a URI Hadoop's file systems reach (read on the driver, as iter_raw does)."""
    if hadoopfs.is_uri(path):
        st = hadoopfs.status(path)
        return st is not None and not st.is_dir
    return Path(path).is_file()


def parse_spec(spec: str) -> tuple[str, str]:
    """NAME=PATH, or a bare name of a built-in benchmark."""
    if "=" in spec:
        name, path = spec.split("=", 1)
    else:
        name, path = spec, str(builtin_path(spec))
        if not Path(path).exists():
            raise ConfigError(f"--benchmark {spec!r}: not a built-in benchmark; write NAME=PATH")
    if not name.strip() or not path.strip():
        raise ConfigError(f"--benchmark {spec!r}: write NAME=PATH")
    return name.strip(), path.strip()


def load(spark: SparkSession, store: Store, specs: list[str],
         quarantine_raw_chars: int = 2000) -> dict[str, int]:
    """Load each NAME=PATH into `benchmarks`, replacing that benchmark's previous items in one commit.
    Returns prompts per benchmark; bad records go to quarantine (stage "benchmarks")."""
    loaded: dict[str, int] = {}
    for spec in specs:
        name, path = parse_spec(spec)
        if not _exists(path):
            raise ConfigError(f"--benchmark {name}: {path} does not exist")
        items, bad = read_file(path)
        label = path.rstrip("/").rsplit("/", 1)[-1]
        if bad:
            log.warning("benchmark %s: %d records of %s hold no prompt and were quarantined (first: %s)",
                        name, len(bad), label, bad[0][2])
            quarantine_records(store, "benchmarks", name, label, bad, quarantine_raw_chars)
        if not items:
            raise ConfigError(f"--benchmark {name}: {path} holds no prompts ({len(bad)} records quarantined)")
        rows = rows_frame(spark, [(name, it.item_id, it.prompt, label) for it in items],
                          "benchmark string, item_id string, prompt string, source_file string")
        rows = rows.withColumn("loaded_at", F.current_timestamp()).select(*schemas.BENCHMARKS.fieldNames())
        if store.exists("benchmarks"):
            old = store.read("benchmarks").filter(F.col("benchmark") != name).localCheckpoint()
            store.overwrite("benchmarks", old.unionByName(rows))
        else:
            store.overwrite("benchmarks", rows)
        log.info("benchmark %s: %d prompts from %s", name, len(items), label)
        loaded[name] = len(items)
    return loaded

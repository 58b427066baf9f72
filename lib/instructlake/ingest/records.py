"""One file -> rows: a sample row per valid conversation, a quarantine row per record that cannot be one,
and last a `file` row with the number of records the scanner found.

Every record the scanner finds ends as sample rows (one per conversation it expands to, at most
ingest.max_samples_per_record; the excess is one `too_many_samples` quarantine row) or as exactly one
quarantine row. The stage checks that against the scanner's own count: records found = records
quarantined + records that gave samples, per file.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from instructlake.config import IngestConfig
from instructlake.ingest.formats import CONVERTERS, Conversation, RecordError, detect
from instructlake.ingest.parquet import LAYOUT, MAGIC, SUFFIX, ParquetScan, is_parquet
from instructlake.ingest.parquet import sniff as parquet_rows
from instructlake.ingest.rawfile import FileFormatError, Limits, Opened, RecordScan
from instructlake.jsontext import compact_dumps

# Columns of the rows parse_file yields (kind = sample | quarantine | file); the stage splits them per
# table. `records`: on a file row the scanner's count; on a sample row 1 for a record's first sample.
ROW_FIELDS = (
    "kind", "sample_id", "source", "source_id", "conversation", "system", "instruction", "n_turns", "lang",
    "chars", "meta", "source_file", "format", "locator", "ordinal", "line", "reason", "detail", "raw",
    "raw_length", "quarantine_id", "records",
)
# The quarantine reason of a record's expansion past ingest.max_samples_per_record: the record itself
# gave samples, so this row does not count as a quarantined record.
EXPANSION_CUT = "too_many_samples"


def limits(cfg: IngestConfig) -> Limits:
    return Limits(cfg.max_record_bytes, cfg.quarantine_raw_chars, cfg.max_depth)


def normalize_text(s: str) -> str:
    """The light normalization samples are stored and identified with: NFC, LF line ends, outer blanks."""
    return unicodedata.normalize("NFC", s.replace("\r\n", "\n").replace("\r", "\n")).strip()


def sample_id(system: str | None, turns: list[tuple[str, str]], tools: str | None = None) -> str:
    """Identity of a sample: its normalized system prompt, turns and (for tool use) tool schemas."""
    parts: list = [system or "", [[r, c] for r, c in turns]]
    if tools and tools.strip() not in ("", "[]", "{}"):
        parts.append(tools.strip())
    return hashlib.sha256(compact_dumps(parts)).hexdigest()[:32]


# Which role may follow which (None: the start). A conversation must end with an assistant turn.
NEXT_ROLES = {None: ("user",), "user": ("assistant",), "assistant": ("user", "tool"), "tool": ("assistant", "tool")}


def validate(conv: Conversation) -> tuple[str | None, list[tuple[str, str]]]:
    """Normalized (system, turns), or RecordError for empty content, a wrong role order, or text that
    cannot be stored as UTF-8 (a JSON escape of an unpaired surrogate, such as "\\ud83d" alone)."""
    system = normalize_text(conv.system) if conv.system is not None else None
    turns = [(role, normalize_text(content)) for role, content in conv.turns]
    if not turns:
        raise RecordError("empty_content", "the conversation has no turns")
    for i, (role, content) in enumerate(turns):
        if not content:
            raise RecordError("empty_content", f"turn {i} ({role}) is empty")
    prev = None
    for i, (role, _) in enumerate(turns):
        ok = NEXT_ROLES[prev]
        if role not in ok:
            first = "the first turn" if prev is None else f"turn {i} follows a {prev} turn"
            raise RecordError("role_order", f"{first} but is {role}; expected {' or '.join(ok)}")
        prev = role
    if prev != "assistant":
        raise RecordError("role_order", f"the conversation ends with a {prev} turn, not an assistant reply")
    texts = [system or "", conv.own_id or "", *(c for _, c in turns), *conv.meta.keys(), *conv.meta.values()]
    try:
        "\0".join(texts).encode("utf-8")
    except UnicodeEncodeError as e:
        raise RecordError("invalid_utf8", f"the text holds an unpaired surrogate ({e.reason})") from None
    return (system or None), turns


def parse_file(path: str | Opened, source: str, fmt: str, cfg: IngestConfig, label: str | None = None,
               start: int = 0, end: int | None = None) -> Iterator[dict]:
    """Rows for every record in one file (or in a byte range of a plain JSON Lines file), then one `file`
    row with the scanner's record count. Never raises for bad records; FileFormatError for a bad file."""
    label = label or Path(path).name
    scan = scan_records(path, limits(cfg), start, end)
    for raw in scan:
        yield from _record_rows(raw, source, fmt, label, cfg)
    yield {"kind": "file", "source": source, "source_file": label, "format": fmt, "ordinal": start,
           "records": scan.records}


def scan_records(path: str | Opened, lim: Limits | None = None, start: int = 0,
                 end: int | None = None) -> RecordScan | ParquetScan:
    """The records of a JSON file (or of a byte range of a plain JSON Lines file) or of a Parquet file, as
    Raw items with `.records` counted by the scanner: what ingest, benchmark and question files are read
    with."""
    if is_parquet(path):
        return ParquetScan(path, lim)
    return RecordScan(path, lambda v: detect(v) is not None, start, end, lim)


def _record_rows(raw, source: str, fmt: str, label: str, cfg: IngestConfig) -> Iterator[dict]:
    if raw.error is not None:
        yield _quarantine(raw, source, fmt, label, cfg, *raw.error)
        return
    if raw.nbytes > cfg.max_record_bytes:
        yield _quarantine(raw, source, fmt, label, cfg, "too_large",
                          f"{raw.nbytes:,} bytes > ingest.max_record_bytes = {cfg.max_record_bytes:,}")
        return
    if not isinstance(raw.value, dict):
        yield _quarantine(raw, source, fmt, label, cfg, "not_an_object",
                          f"the record is a JSON {type(raw.value).__name__}, expected an object")
        return
    cap = cfg.max_samples_per_record
    try:
        convs = CONVERTERS[fmt](raw.value, cfg)
        kept = [(c, *validate(c)) for c in islice(convs, cap)]
        # The rest is counted (and must convert too: one bad instance still rejects the record) but not kept.
        cut = sum(1 for c in convs if validate(c) is not None)
    except RecordError as e:
        yield _quarantine(raw, source, fmt, label, cfg, e.reason, e.detail)
        return
    except RecursionError:
        yield _quarantine(raw, source, fmt, label, cfg, "too_deep", "the record nests too deeply")
        return
    for k, (conv, system, turns) in enumerate(kept):
        row = _sample(conv, system, turns, raw, source, fmt, label)
        row["records"] = 1 if k == 0 else 0  # the record counts once, on its first sample
        yield row
    if cut:
        yield _quarantine(raw, source, fmt, label, cfg, EXPANSION_CUT,
                          f"the record expands to {cap + cut:,} conversations; the first {cap:,} are "
                          f"samples, {cut:,} were cut (ingest.max_samples_per_record = {cap:,})")


def _sample(conv: Conversation, system: str | None, turns: list[tuple[str, str]], raw,
            source: str, fmt: str, label: str) -> dict:
    own = conv.own_id if conv.own_id is not None else f"{label}:{raw.locator}"
    chars = sum(len(c) for _, c in turns) + len(system or "")
    return {
        "kind": "sample",
        "sample_id": sample_id(system, turns, conv.meta.get("tools")),
        "source": source,
        "source_id": own + conv.suffix,
        "conversation": [{"role": r, "content": c} for r, c in turns],
        "system": system,
        "instruction": next(c for r, c in turns if r == "user"),
        "n_turns": len(turns),
        "lang": conv.lang,
        "chars": chars,
        "meta": conv.meta or None,
        "source_file": label,
        "format": fmt,
        "locator": raw.locator,
        "ordinal": raw.ordinal,
        "line": raw.line,
    }


def _quarantine(raw, source: str, fmt: str, label: str, cfg: IngestConfig, reason: str, detail: str) -> dict:
    return {
        "kind": "quarantine",
        "source": source,
        "source_file": label,
        "format": fmt,
        "locator": raw.locator,
        "line": raw.line,
        "reason": reason,
        "detail": detail[:2000],
        "raw": raw.text[: cfg.quarantine_raw_chars],
        "raw_length": raw.nbytes,
        "ordinal": raw.ordinal,
        "quarantine_id": quarantine_id("ingest", source, label, raw.locator, reason, raw.text),
    }


def quarantine_id(*parts: str) -> str:
    """Same bad record, same id: re-ingesting a broken file adds no second quarantine row."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", errors="replace") + b"\0")
    return h.hexdigest()[:32]


def detect_file(path: str, forced: str | None = None) -> str:
    """The file's format: forced, or detected from its leading records. FileFormatError names the file."""
    return inspect_file(path, forced)[0]


def inspect_file(path: str, forced: str | None = None) -> tuple[str, str]:
    """(format, layout) of a file, from one read of its leading records (see detect_file)."""
    from instructlake.ingest.formats import FORMATS
    from instructlake.ingest.rawfile import sniff

    if forced and forced not in FORMATS:
        raise FileFormatError(f"unknown format {forced!r}; use one of {', '.join(FORMATS)}")
    # a forced format still needs records: a file that is not JSON records at all fails clearly
    if is_parquet(path):
        kind, records = LAYOUT, parquet_rows(path)
    elif str(path).lower().endswith(SUFFIX):
        raise FileFormatError(f"{path}: named {SUFFIX} but does not start with Parquet's magic number "
                              f"({MAGIC.decode()}): not a Parquet file")
    else:
        kind, records = sniff(path)
    if forced:
        return forced, kind
    votes: dict[str, int] = {}
    for r in records:
        f = detect(r)
        if f:
            votes[f] = votes.get(f, 0) + 1
    if not votes:
        keys = sorted({k for r in records if isinstance(r, dict) for k in r})[:12]
        raise FileFormatError(f"{path}: unknown format (fields seen: {', '.join(keys) or 'none'}); "
                              f"pass --format with one of {', '.join(FORMATS)}")
    return max(votes.items(), key=lambda kv: (kv[1], kv[0]))[0], kind

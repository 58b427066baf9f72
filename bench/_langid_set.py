"""Build data/samples/labelled/langid_gettext.jsonl: a labelled multilingual set for language identification.

    .venv/bin/python bench/_langid_set.py [--per-language 40] [--locale-dir /usr/share/locale]

The sample instruction sets are English but for a handful of translation answers, so the set is drawn from
the human translations that Debian ships as gettext catalogs (/usr/share/locale/<lang>/LC_MESSAGES/*.mo:
bash, coreutils, apt, dpkg, tar, grep, ...). Each text is a translator's rendering of an English message
of those programs' help and error texts; English is the messages themselves. Only sentence-like messages
are kept (at least 8 words and 60 characters once printf formats, option names and paths are taken out),
cut to at most 300 characters at a word, drawn by a seeded hash of the message. Each row: id, lang (ISO
639-1, the catalog's locale), text, catalog (the package whose translation it is). The set was built once
and committed; the catalogs' licenses are in data/samples/NOTICE.md.
"""

from __future__ import annotations

import argparse
import gettext
import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "samples" / "labelled" / "langid_gettext.jsonl"
# locale directory -> the ISO 639-1 code a detector should answer
LANGUAGES = {"en": "en", "fr": "fr", "de": "de", "es": "es", "it": "it", "pt": "pt", "nl": "nl", "sv": "sv",
             "pl": "pl", "cs": "cs", "tr": "tr", "ru": "ru", "uk": "uk", "zh_CN": "zh", "ja": "ja",
             "ko": "ko", "vi": "vi", "id": "id", "fi": "fi", "da": "da"}
CATALOGS = ("bash", "coreutils", "apt", "libapt-pkg6.0", "dpkg", "tar", "grep", "sed", "findutils",
            "diffutils", "wget", "make", "libc", "shadow", "gettext-tools", "man-db")
_FORMAT = re.compile(r"%[-#0 +'I]*(\d+|\*)?(\.(\d+|\*))?(hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGaAcspn%]"
                     r"|%[<>]?\w+")
_NOISE = re.compile(r"--?[\w-]+|\S*/\S+|`[^']*'|'[^']*'|\"[^\"]*\"|\s+")


MAX_CHARS = 300


def clean(text: str) -> str:
    """A message as prose: formats, options, paths and quoted names out, whitespace collapsed, at most
    MAX_CHARS (cut at a space)."""
    text = " ".join(_NOISE.sub(" ", _FORMAT.sub(" ", text)).split())
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS].rsplit(" ", 1)[0]


def sentence_like(english: str) -> bool:
    words = clean(english).split()
    return len(words) >= 8 and len(" ".join(words)) >= 60 and sum(w.isalpha() for w in words) >= 6


def catalog(locale_dir: Path, lang_dir: str, name: str) -> dict[str, str]:
    path = locale_dir / lang_dir / "LC_MESSAGES" / f"{name}.mo"
    if not path.exists():
        return {}
    with open(path, "rb") as f:
        t = gettext.GNUTranslations(f)
    return {k: v for k, v in t._catalog.items() if isinstance(k, str) and k and v and v != k}


def build(locale_dir: Path, per_language: int) -> list[dict]:
    rows = []
    for lang_dir, code in LANGUAGES.items():
        found = []
        for name in CATALOGS:
            english = catalog(locale_dir, "fr", name)  # a catalog's English messages: its keys
            messages = english if code == "en" else catalog(locale_dir, lang_dir, name)
            for msgid, msgstr in messages.items():
                text = msgid if code == "en" else msgstr
                if sentence_like(msgid) and len(clean(text)) >= 40:
                    order = hashlib.sha256(f"0:{code}:{name}:{msgid}".encode()).hexdigest()
                    found.append((order, name, clean(text)))
        found.sort()
        seen: set[str] = set()
        for _, name, text in found:
            if text in seen:
                continue
            seen.add(text)
            rows.append({"id": f"{code}-{len([r for r in rows if r['lang'] == code]):03d}", "lang": code,
                         "text": text, "catalog": name})
            if len(seen) == per_language:
                break
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-language", type=int, default=40)
    ap.add_argument("--locale-dir", type=Path, default=Path("/usr/share/locale"))
    args = ap.parse_args()
    rows = build(args.locale_dir, args.per_language)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    per: dict[str, int] = {}
    for r in rows:
        per[r["lang"]] = per.get(r["lang"], 0) + 1
    print(f"{len(rows)} texts -> {OUT}: " + ", ".join(f"{k} {v}" for k, v in per.items()))


if __name__ == "__main__":
    main()

"""The packaged skill/knowledge taxonomy (resources/taxonomy.yaml): 25 categories of fine-grained tags, and
exemplar instructions per category for the two-level zero-shot tagger: written ones
(resources/category_exemplars.yaml) and labelled prompts (resources/labelled_exemplars.jsonl)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml


@dataclass(frozen=True)
class Taxonomy:
    version: str  # v<declared>-<hash of the file>
    categories: tuple[tuple[str, str], ...]  # (name, description)
    tags: tuple[tuple[str, str, str], ...]  # (tag, description, category)
    task_categories: frozenset[str] = frozenset()  # facet "task" (what is asked); the others: "domain"

    def tag_texts(self) -> list[str]:
        """What the zero-shot tagger embeds for each tag."""
        return [f"{t}: {d}" for t, d, _ in self.tags]

    def category_texts(self) -> list[str]:
        return [f"{c}: {d}" for c, d in self.categories]

    def category_of(self) -> dict[str, str]:
        return {t: c for t, _, c in self.tags}


FACETS = ("task", "domain")


@lru_cache(maxsize=1)
def load() -> Taxonomy:
    raw = resources.files("instructlake").joinpath("resources", "taxonomy.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(raw)
    cats, tags, seen, tasks = [], [], set(), set()
    for c in data["categories"]:
        cats.append((c["name"], c["description"]))
        if c.get("facet") not in FACETS:
            raise ValueError(f"taxonomy.yaml: category {c['name']!r} needs a facet, one of {FACETS}, "
                             f"not {c.get('facet')!r}")
        if c["facet"] == "task":
            tasks.add(c["name"])
        for tag, desc in c["tags"].items():
            if tag in seen:
                raise ValueError(f"taxonomy.yaml: tag {tag!r} appears twice")
            seen.add(tag)
            tags.append((tag, desc, c["name"]))
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return Taxonomy(f"taxonomy/v{data['version']}-{digest}", tuple(cats), tuple(tags), frozenset(tasks))


@dataclass(frozen=True)
class Exemplars:
    version: str  # exemplars/v<declared>-<hash of the file>[+labelled-<hash of the labelled file>]
    texts: tuple[str, ...]
    categories: tuple[str, ...]  # the category of each text (a labelled prompt: once per accepted category)


LABELLED = "labelled_exemplars.jsonl"


@lru_cache(maxsize=2)
def exemplars(labelled: bool = True) -> Exemplars:
    """The written exemplars (category_exemplars.yaml) and, with `labelled`, the labelled prompts
    (labelled_exemplars.jsonl, built by bench/_labelled_exemplars.py): each of those counts as an exemplar
    of every category a reader accepts for it."""
    written = _written()
    if not labelled:
        return written
    raw = resources.files("instructlake").joinpath("resources", LABELLED).read_text(encoding="utf-8")
    known = {c for c, _ in load().categories}
    texts, cats = list(written.texts), list(written.categories)
    for n, line in enumerate(raw.splitlines(), 1):
        if line.strip():
            text, accepted = _labelled_row(line, n, known)
            texts += [text] * len(accepted)
            cats += accepted
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return Exemplars(f"{written.version}+labelled-{digest}", tuple(texts), tuple(cats))


def _labelled_row(line: str, n: int, known: set[str]) -> tuple[str, list[str]]:
    """(text, accepted categories) of one labelled_exemplars.jsonl line; a clear error naming the line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{LABELLED} line {n}: not JSON ({e})") from None
    text, accepted = (row.get("text"), row.get("categories")) if isinstance(row, dict) else (None, None)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{LABELLED} line {n}: 'text' is not a text: {text!r}")
    if not isinstance(accepted, list) or not accepted or not set(accepted) <= known:
        raise ValueError(f"{LABELLED} line {n}: 'categories' must list taxonomy categories, not {accepted!r}")
    return text, accepted


def _written() -> Exemplars:
    raw = resources.files("instructlake").joinpath("resources", "category_exemplars.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(raw)
    known = {c for c, _ in load().categories}
    texts, cats = [], []
    for cat, items in data["categories"].items():
        if cat not in known:
            raise ValueError(f"category_exemplars.yaml: {cat!r} is not a taxonomy category")
        for t in items:
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"category_exemplars.yaml: an exemplar of {cat!r} is not a text: {t!r}")
            texts.append(t)
            cats.append(cat)
    # a category without exemplars would score NaN in the two-level tagger
    if missing := sorted(known - set(cats)):
        raise ValueError(f"category_exemplars.yaml: no exemplars for the categories {missing}")
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return Exemplars(f"exemplars/v{data['version']}-{digest}", tuple(texts), tuple(cats))

"""Zero-shot tagging: each instruction gets the taxonomy tags its embedding supports. Used when no LLM is
configured. Two ways, chosen by tagging.zero_shot:

* two-level (the default): categories first, then tags inside them. A category's score is exemplar_weight x
  the mean cosine of the instruction's exemplar_k nearest exemplars of that category
  (resources/category_exemplars.yaml, and with labelled_exemplars the labelled prompts of
  resources/labelled_exemplars.jsonl, each an exemplar of every category it is labelled with) plus the rest x
  the larger of the cosine to the category's description and the mean of its best two tags' cosines. The
  categories within category_margin of the best (at most max_categories) are kept; in each, the tags within
  tag_margin of its best tag (at most tags_per_category); at most max_tags in all, ranked by category score,
  then tag cosine. Every instruction gets at least its best category's best tag. A category is a task (what is
  asked) or a domain (what it is about; taxonomy.yaml's facet): when the kept categories are all of one facet,
  the best category of the other is added if it scores within pair_margin of the best ("Describe the political
  landscape in Turkey", kept in three domains, also gets knowledge question answering when that is close
  enough). With head_paragraph, a prompt whose first paragraph is followed by more ("Extract the address of
  the property.\n\n<a long listing>") is also scored on that paragraph alone, and each category and tag keeps
  the better score of the two.
* flat: up to top_k tags whose cosine to the instruction (embedding of "tag: description") is at least
  min_similarity and within margin of the instruction's best tag.

`python build.py bench tagging` measures both on labelled prompts. The taxonomy's and the exemplars'
embeddings are computed once per Python worker, beside the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame, SparkSession

from instructlake.config import EmbedConfig, EmbedSettings, TaggingConfig, config_hash
from instructlake.tagging import open_tags
from instructlake.worker_models import once_per_worker


def choose(sims: np.ndarray, top_k: int, min_similarity: float, margin: float) -> list[list[tuple[int, float]]]:
    """Flat: for each row of a (samples x tags) similarity matrix, [(tag index, similarity)] best first."""
    k = min(top_k, sims.shape[1])
    if sims.shape[0] == 0 or k == 0:
        return [[] for _ in range(sims.shape[0])]
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    out = []
    for i, idx in enumerate(top):
        s = sims[i, idx]
        order = np.lexsort((idx, -s))  # best first; ties broken by tag index, so results are deterministic
        best = s[order[0]]
        out.append([(int(idx[j]), float(s[j])) for j in order
                    if s[j] >= min_similarity and s[j] >= best - margin])
    return out


@dataclass(frozen=True)
class Space:
    """The two-level tagger's reference vectors: tags, categories and exemplars, with their categories."""

    tags: np.ndarray  # (tags x dim)
    tag_category: np.ndarray  # category index per tag
    categories: np.ndarray  # (categories x dim), "name: description"
    exemplars: np.ndarray  # (exemplars x dim)
    exemplar_category: np.ndarray  # category index per exemplar
    category_task: np.ndarray | None = None  # per category: True for the task facet, False for domain


def category_scores(vec: np.ndarray, space: Space, cfg: TaggingConfig) -> tuple[np.ndarray, np.ndarray]:
    """(samples x categories scores, samples x tags cosines)."""
    tag_sims = vec @ space.tags.T
    cat_sims = vec @ space.categories.T
    ex_sims = vec @ space.exemplars.T
    scores = np.empty((len(vec), len(space.categories)), dtype=np.float32)
    for c in range(len(space.categories)):
        near = np.sort(ex_sims[:, space.exemplar_category == c], axis=1)[:, -cfg.exemplar_k:].mean(1)
        tags = np.sort(tag_sims[:, space.tag_category == c], axis=1)[:, -2:].mean(1)
        own = np.maximum(tags, cat_sims[:, c])
        scores[:, c] = cfg.exemplar_weight * near + (1 - cfg.exemplar_weight) * own
    return scores, tag_sims


def choose_two_level(scores: np.ndarray, tag_sims: np.ndarray, tag_category: np.ndarray, cfg: TaggingConfig,
                     category_task: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
    """For each sample: [(tag index, tag cosine)] ranked by category score, then tag cosine."""
    members = [np.nonzero(tag_category == c)[0] for c in range(scores.shape[1])]
    out = []
    for i in range(len(scores)):
        order = np.lexsort((np.arange(scores.shape[1]), -scores[i]))
        top = scores[i, order[0]]
        kept = [c for c in order[: cfg.max_categories] if scores[i, c] >= top - cfg.category_margin]
        kept += other_facet(scores[i], order, kept, category_task, cfg.pair_margin)
        picks: list[tuple[int, float]] = []
        for c in kept:
            idx = members[c]
            ranked = idx[np.lexsort((idx, -tag_sims[i, idx]))][: cfg.tags_per_category]
            best = tag_sims[i, ranked[0]]
            picks += [(int(j), float(tag_sims[i, j])) for j in ranked if tag_sims[i, j] >= best - cfg.tag_margin]
        out.append(picks[: cfg.max_tags])
    return out


def other_facet(scores: np.ndarray, order: np.ndarray, kept: list, category_task: np.ndarray | None,
                margin: float) -> list:
    """The best category of the facet (task or domain) that none of the kept ones has, when it scores within
    margin of the best; nothing when both facets are kept, margin is 0 or the facets are unknown. It ranks
    after the kept ones, since it scores below all of them."""
    if category_task is None or margin <= 0:
        return []
    facets = {bool(category_task[c]) for c in kept}
    if len(facets) == 2:
        return []
    other = next((c for c in order if bool(category_task[c]) not in facets), None)
    if other is None:  # a taxonomy whose categories are all of one facet
        return []
    return [other] if scores[other] >= scores[order[0]] - margin else []


def space(model, tax, examples) -> Space:
    cats = [c for c, _ in tax.categories]
    # a labelled prompt is an exemplar of each category it has: embedded once, its vector repeated
    unique = list(dict.fromkeys(examples.texts))
    at = {t: i for i, t in enumerate(unique)}
    return Space(tags=model.encode(tax.tag_texts()),
                 tag_category=np.array([cats.index(c) for _, _, c in tax.tags]),
                 categories=model.encode(tax.category_texts()),
                 exemplars=model.encode(unique)[[at[t] for t in examples.texts]],
                 exemplar_category=np.array([cats.index(c) for c in examples.categories]),
                 category_task=np.array([c in tax.task_categories for c in cats]))


def head(text: str | None) -> str | None:
    """A prompt's first paragraph when more follows it (an instruction, then its input), else None."""
    first, sep, _ = (text or "").strip().partition("\n\n")  # stripped: a break at either end is no input
    return first.rstrip() if sep else None


def head_vectors(model, texts: list[str | None], vec: np.ndarray) -> np.ndarray:
    """Each text's first-paragraph vector (head), or its own vector when it has no separate head."""
    heads = [head(t) for t in texts]
    at = [i for i, h in enumerate(heads) if h]
    out = vec.copy()
    if at:
        out[at] = model.encode([heads[i] for i in at])
    return out


def pick(vec: np.ndarray, ref: Space, cfg: TaggingConfig,
         heads: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
    """The configured tagger's [(tag index, score)] per sample, best first; `heads` (head_vectors) adds
    each first paragraph's scores to the two-level tagger's, the better of the two counting."""
    if cfg.zero_shot == "flat":
        return choose(vec @ ref.tags.T, cfg.top_k, cfg.min_similarity, cfg.margin)
    scores, tag_sims = category_scores(vec, ref, cfg)
    if heads is not None:
        head_scores, head_sims = category_scores(heads, ref, cfg)
        scores, tag_sims = np.maximum(scores, head_scores), np.maximum(tag_sims, head_sims)
    return choose_two_level(scores, tag_sims, ref.tag_category, cfg, ref.category_task)


def embed_and_pick(model, texts: list[str | None], vec: np.ndarray, ref: Space,
                   cfg: TaggingConfig) -> list[list[tuple[int, float]]]:
    """pick() with the first paragraphs embedded too when the settings ask for them."""
    use_heads = cfg.zero_shot == "two-level" and cfg.head_paragraph
    return pick(vec, ref, cfg, head_vectors(model, texts, vec) if use_heads else None)


def version(cfg: TaggingConfig) -> str:
    """What the tags depend on besides the settings: the taxonomy, and the exemplars when they are used."""
    from instructlake.tagging import taxonomy

    tax = taxonomy.load().version
    if cfg.zero_shot == "flat":
        base = tax
    else:
        base = f"{tax}+{taxonomy.exemplars(cfg.labelled_exemplars).version}"
    return f"{base}+{open_tags.VERSION}" if cfg.open_tags_on else base


def tag(spark: SparkSession, df: DataFrame, cfg: TaggingConfig, ecfg: EmbedConfig, settings: EmbedSettings) -> DataFrame:
    """(sample_id, tags array<struct<tag, score, rank>>) for df(sample_id, text)."""
    import pyarrow as pa

    from instructlake.embed.spark_embed import map_embedded
    from instructlake.tagging import taxonomy

    tax, examples = taxonomy.load(), taxonomy.exemplars(cfg.labelled_exemplars)
    names = [t for t, _, _ in tax.tags]
    item = pa.struct([("tag", pa.string()), ("score", pa.float64()), ("rank", pa.int32())])
    key = {"embed": config_hash(ecfg), "taxonomy": tax.version, "exemplars": examples.version}

    def emit(model, b: pa.RecordBatch, vec) -> pa.RecordBatch:
        ref = once_per_worker("tagging-space", key, lambda: space(model, tax, examples))
        rows = []
        texts = b.column("text").to_pylist()
        for p, text in zip(embed_and_pick(model, texts, vec, ref, cfg), texts, strict=True):
            row = [{"tag": names[j], "score": round(s, 6), "rank": r + 1} for r, (j, s) in enumerate(p)]
            rows.append(row + with_open_tags(text, [t["tag"] for t in row], cfg))
        tags = pa.array(rows, pa.list_(item))
        return pa.RecordBatch.from_arrays([b.column("sample_id"), tags], names=["sample_id", "tags"])

    return map_embedded(spark, df.select("sample_id", "text"), "text", ecfg, settings,
                        "sample_id string, tags array<struct<tag: string, score: double, rank: int>>", emit)


def with_open_tags(text: str | None, taken: list[str], cfg: TaggingConfig) -> list[dict]:
    """The instruction's open tags (tagging/open_tags.py) after its taxonomy tags: no score (they are the
    text's own words, not a similarity), ranked after them, none repeating a tag already given."""
    if not cfg.open_tags_on:
        return []
    fresh = [t for t in open_tags.open_tags(text, cfg.open_tags, cfg.open_intent) if t not in taken]
    return [{"tag": t, "score": None, "rank": len(taken) + i + 1} for i, t in enumerate(fresh)]

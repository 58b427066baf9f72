"""The two-level zero-shot choice on hand-made scores: categories within the margin, tags inside them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from instructlake.config import TaggingConfig
from instructlake.tagging.zero_shot import (
    Space,
    category_scores,
    choose_two_level,
    embed_and_pick,
    head,
    head_vectors,
    pick,
)

CFG = TaggingConfig(max_categories=2, category_margin=0.1, tags_per_category=2, tag_margin=0.1, max_tags=3)
TAG_CATEGORY = np.array([0, 0, 0, 1, 1, 2])


def test_categories_within_the_margin_then_their_best_tags():
    scores = np.array([[0.9, 0.85, 0.2],   # two categories close together
                       [0.9, 0.5, 0.4],    # one clear category
                       [0.1, 0.2, 0.15]])  # weak everywhere: still its best category's best tag
    sims = np.array([[0.8, 0.75, 0.3, 0.6, 0.2, 0.9],
                     [0.5, 0.7, 0.65, 0.9, 0.9, 0.9],
                     [0.1, 0.1, 0.1, 0.05, 0.02, 0.3]])
    got = choose_two_level(scores, sims, TAG_CATEGORY, CFG)
    # category 0's two best tags, then category 1's best; max_tags 3
    assert [j for j, _ in got[0]] == [0, 1, 3]
    assert [j for j, _ in got[1]] == [1, 2]  # category 1 is 0.4 behind: left out
    # weak everywhere, and still tagged: category 1 (tag 4 within 0.1 of tag 3), then category 2, 0.05 behind
    assert [j for j, _ in got[2]] == [3, 4, 5]
    assert got[0][0][1] == 0.8  # the score is the tag's cosine


def test_max_settings_bound_the_tags():
    scores = np.array([[0.9, 0.9, 0.9]])
    sims = np.full((1, 6), 0.5)
    wide = replace(CFG, max_categories=3, tags_per_category=3, max_tags=8)
    assert len(choose_two_level(scores, sims, TAG_CATEGORY, wide)[0]) == 6
    assert len(choose_two_level(scores, sims, TAG_CATEGORY, replace(wide, max_tags=4))[0]) == 4
    assert len(choose_two_level(scores, sims, TAG_CATEGORY, replace(wide, max_categories=1))[0]) == 3


def test_category_scores_weigh_exemplars_against_descriptions_and_tags():
    eye = np.eye(4, dtype=np.float32)
    space = Space(tags=eye[[0, 1]], tag_category=np.array([0, 1]), categories=eye[[0, 1]],
                  exemplars=eye[[2, 3, 3]], exemplar_category=np.array([0, 1, 1]))
    vec = np.array([[0.0, 0.0, 0.0, 1.0]], dtype=np.float32)  # like category 1's exemplars only
    only_exemplars = replace(CFG, exemplar_weight=1.0, exemplar_k=1)
    scores, _ = category_scores(vec, space, only_exemplars)
    assert scores[0].tolist() == [0.0, 1.0]
    scores, _ = category_scores(vec, space, replace(only_exemplars, exemplar_weight=0.0))
    assert scores[0].tolist() == [0.0, 0.0]


def test_the_packaged_exemplars_cover_every_category():
    from instructlake.tagging import taxonomy

    ex = taxonomy.exemplars()
    assert set(ex.categories) == {c for c, _ in taxonomy.load().categories}
    assert min(ex.categories.count(c) for c in set(ex.categories)) >= TaggingConfig().exemplar_k


def test_a_labelled_prompt_is_an_exemplar_of_each_of_its_categories():
    from instructlake.tagging import taxonomy
    from tests.unit.test_exemplars_held_out import labelled_exemplars

    written, both = taxonomy.exemplars(labelled=False), taxonomy.exemplars()
    labelled = labelled_exemplars()
    assert both.texts[: len(written.texts)] == written.texts
    pairs = list(zip(both.texts[len(written.texts):], both.categories[len(written.texts):], strict=True))
    assert pairs == [(r["text"], c) for r in labelled for c in r["categories"]]
    assert both.version.startswith(written.version + "+labelled-")


def test_a_bad_labelled_exemplar_line_is_named():
    import pytest

    from instructlake.tagging.taxonomy import _labelled_row

    known = {"mathematics"}
    assert _labelled_row('{"text": "Add 2 and 3.", "categories": ["mathematics"]}', 1, known) == (
        "Add 2 and 3.", ["mathematics"])
    for line, says in (("{not json", "line 7: not JSON"), ('["a list"]', "line 7: 'text'"),
                       ('{"text": " ", "categories": ["mathematics"]}', "line 7: 'text'"),
                       ('{"text": "Add.", "categories": ["cooking"]}', "line 7: 'categories'"),
                       ('{"text": "Add.", "categories": []}', "line 7: 'categories'")):
        with pytest.raises(ValueError, match=says):
            _labelled_row(line, 7, known)


def test_a_text_that_is_an_exemplar_of_two_categories_is_embedded_once():
    from instructlake.tagging import taxonomy
    from instructlake.tagging.zero_shot import space

    class CountingEmbedderDouble:
        """Stands in for the embedder: a vector per text from its length, and a count of texts embedded."""

        embedded = 0

        def encode(self, texts):
            self.embedded += len(texts)
            return np.array([[len(t), 1.0] for t in texts])

    ex = taxonomy.Exemplars("v", ("Add 2 and 3.", "Sum it up.", "Add 2 and 3."),
                            ("mathematics", "text processing", "logic and reasoning"))
    model = CountingEmbedderDouble()
    ref = space(model, taxonomy.load(), ex)
    tax = taxonomy.load()
    assert model.embedded == len(tax.tags) + len(tax.categories) + 2
    assert ref.exemplars[:, 0].tolist() == [12, 10, 12]
    cats = [c for c, _ in tax.categories]
    assert ref.exemplar_category.tolist() == [cats.index(c) for c in ex.categories]


def test_a_task_gets_its_best_domain_and_a_domain_its_best_task_within_the_pair_margin():
    # categories 0 and 1 are tasks, 2 and 3 domains; one tag each
    task = np.array([True, True, False, False])
    tag_category = np.arange(4)
    sims = np.array([[0.5, 0.5, 0.5, 0.5]] * 4)
    scores = np.array([[0.9, 0.85, 0.7, 0.6],    # both kept are tasks: domain 2 added (0.2 behind)
                       [0.9, 0.5, 0.55, 0.85],   # a task and a domain kept: nothing added
                       [0.5, 0.4, 0.9, 0.85],    # both domains: task 0 is 0.4 behind, past the margin
                       [0.9, 0.2, 0.3, 0.66]])   # one task kept: domain 3 added, 0.24 behind
    cfg = replace(CFG, max_categories=2, category_margin=0.1, pair_margin=0.25, max_tags=8)
    got = [[j for j, _ in p] for p in choose_two_level(scores, sims, tag_category, cfg, task)]
    assert got == [[0, 1, 2], [0, 3], [2, 3], [0, 3]]
    off = replace(cfg, pair_margin=0.0)
    assert [[j for j, _ in p] for p in choose_two_level(scores, sims, tag_category, off, task)] == \
        [[0, 1], [0, 3], [2, 3], [0]]
    # without facets (an older Space) the choice is the single-facet one
    assert choose_two_level(scores, sims, tag_category, cfg) == choose_two_level(scores, sims, tag_category, off)
    # a taxonomy of tasks only has no other facet to add
    all_tasks = np.ones(4, dtype=bool)
    assert choose_two_level(scores, sims, tag_category, cfg, all_tasks) == \
        choose_two_level(scores, sims, tag_category, off, all_tasks)


def test_every_taxonomy_category_has_a_facet_and_both_facets_are_used():
    from instructlake.tagging import taxonomy

    tax = taxonomy.load()
    names = {c for c, _ in tax.categories}
    assert tax.task_categories < names and len(tax.task_categories) >= 5
    assert {"programming", "mathematics", "creative writing"} <= tax.task_categories
    assert not {"medicine and health", "humanities and history"} & tax.task_categories


def test_head_is_the_first_paragraph_only_when_more_follows():
    assert head("Extract the address.\n\nTucked in the foothills of Grass Valley.") == "Extract the address."
    assert head("  Summarize this.\n\n\nA long article.\n\nIts second paragraph.  ") == "Summarize this."
    for whole in ("One paragraph only.", "Trailing break only.\n\n", "\n\nLeading break only.", None, ""):
        assert head(whole) is None


def test_a_first_paragraph_keeps_the_task_a_long_input_would_drown():
    """The whole prompt's vector is near category 1 (the input's subject), its first paragraph's near
    category 0 (the task): with the heads, category 0 wins; without them, only category 1 is kept."""
    eye = np.eye(4, dtype=np.float32)
    space = Space(tags=eye[[0, 1]], tag_category=np.array([0, 1]), categories=eye[[0, 1]],
                  exemplars=eye[[0, 1]], exemplar_category=np.array([0, 1]))
    cfg = replace(CFG, max_categories=1, exemplar_k=1, pair_margin=0.0)
    texts = ["Extract the names.\n\nA long passage about rivers.", "No input here."]
    whole = np.array([[0.3, 0.95, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], dtype=np.float32)

    class HeadEmbedderDouble:  # a stand-in embedder: the one first paragraph there is, near category 0
        def encode(self, texts):
            assert texts == ["Extract the names."]
            return np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32)

    heads = head_vectors(HeadEmbedderDouble(), texts, whole)
    assert heads[1].tolist() == whole[1].tolist()  # no first paragraph of its own: the whole prompt
    assert [[j for j, _ in p] for p in pick(whole, space, cfg)] == [[1], [1]]
    assert [[j for j, _ in p] for p in pick(whole, space, cfg, heads)] == [[0], [1]]
    assert pick(whole, space, cfg, heads) == embed_and_pick(HeadEmbedderDouble(), texts, whole, space, cfg)
    off = replace(cfg, head_paragraph=False)
    assert embed_and_pick(HeadEmbedderDouble(), texts, whole, space, off) == pick(whole, space, cfg)

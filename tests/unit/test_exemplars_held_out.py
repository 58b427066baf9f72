"""The tagger's exemplars stay apart from the labelled prompts `bench tagging` scores it on: an exemplar that
is a near copy of an evaluation prompt would let the bench score the tagger on what it was shown."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LABELLED = Path(__file__).resolve().parents[2] / "data" / "samples" / "labelled"
HAND_LABELLED = ("pool_categories.jsonl", "user_oriented_categories.jsonl")
# the sources of those sets whose license lets their text ship in the package as labelled exemplars
# (data/samples/NOTICE.md; bench/_labelled_exemplars.py builds the file from them)
APACHE = frozenset({"alpaca_en_demo.json", "seed_tasks.jsonl", "en_100_tree.jsonl", "kto_en_demo.json",
                    "glaive_toolcall_en_demo.json", "user_oriented_instructions.jsonl"})
# all-MiniLM-L6-v2 cosine: "What is the difference between civil law and criminal law?" against the
# WizardLM prompt that asks the same and more is 0.79; same-topic prompts of other wording stay below 0.7
NEAR_COPY = 0.7


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (LABELLED / name).read_text(encoding="utf-8").splitlines() if line]


def evaluation_prompts(held_out_only: bool = False) -> list[str]:
    """Every labelled prompt `bench tagging` scores; held_out_only: those it scores as held out (WizardLM,
    the test halves of the hand-labelled sets, all of the AlpacaEval set), not the tune halves, which are
    the labelled exemplars' source."""
    hand = [r["instruction"] for name in HAND_LABELLED for r in rows(name)
            if not held_out_only or r["split"] == "test"]
    return ([r["Instruction"] for r in rows("WizardLM_testset.jsonl")] + hand
            + [r["instruction"] for r in rows("alpaca_eval_categories.jsonl")])


def near_copies(exemplars: list[str], vectors, prompts: list[str],
                prompt_vectors) -> list[tuple[float, str, str]]:
    """(cosine, exemplar, prompt) for each exemplar within NEAR_COPY of a prompt; vectors L2-normalized."""
    sims = vectors @ prompt_vectors.T
    best = sims.argmax(1)
    return [(round(float(sims[i, j]), 2), exemplars[i], prompts[j][:80])
            for i, j in enumerate(best) if sims[i, j] >= NEAR_COPY]


def test_no_exemplar_is_a_near_copy_of_a_labelled_prompt():
    """The written exemplars stay apart from every labelled prompt; the labelled exemplars (tune halves)
    from every prompt scored as held out."""
    from instructlake.config import load_config
    from instructlake.embed.embedder import get_embedder
    from instructlake.tagging import taxonomy

    cfg = load_config("local")
    model = get_embedder(cfg.embed, cfg.platform.embed, threads=2)
    prompts = evaluation_prompts()
    assert len(prompts) == 218 + 300 + 252 + 226
    prompt_vectors = model.encode(prompts)  # once, for every check
    written = list(taxonomy.exemplars(labelled=False).texts)
    assert near_copies(written, model.encode(written), prompts, prompt_vectors) == []
    # the check finds one: a labelled prompt itself, reworded a little, as an exemplar
    planted = ["Explain Newton's second law of motion."]
    assert [c[1] for c in near_copies(planted, model.encode(planted), prompts, prompt_vectors)] == planted

    held_out = set(evaluation_prompts(held_out_only=True))
    assert len(held_out) < len(set(prompts))
    at = [i for i, p in enumerate(prompts) if p in held_out]
    labelled = [r["text"] for r in labelled_exemplars()]
    assert near_copies(labelled, model.encode(labelled), [prompts[i] for i in at], prompt_vectors[at]) == []


def labelled_exemplars() -> list[dict]:
    from importlib import resources

    raw = resources.files("instructlake").joinpath("resources", "labelled_exemplars.jsonl").read_text("utf-8")
    return [json.loads(line) for line in raw.splitlines() if line]


def test_labelled_exemplars_are_tune_rows_of_the_labelled_sets_with_their_categories():
    """resources/labelled_exemplars.jsonl (bench/_labelled_exemplars.py) holds tune rows only, as labelled,
    from Apache-2.0 files only (it ships in the package), and leaves out at most the few near copies."""
    tune = {r["id"]: r for name in HAND_LABELLED for r in rows(name) if r["split"] == "tune"}
    shipped = labelled_exemplars()
    for r in shipped:
        assert r["id"] in tune, r["id"]
        assert (r["text"], r["categories"], r["source"]) == (
            tune[r["id"]]["instruction"], tune[r["id"]]["categories"], tune[r["id"]]["source"])
        assert r["source"] in APACHE
    eligible = [r for r in tune.values() if r["source"] in APACHE]
    assert len({r["id"] for r in shipped}) == len(shipped) >= len(eligible) - 3


def test_near_copies_on_hand_made_vectors():
    vectors = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [0.8, 0.6]}

    def embed(texts):
        return np.array([vectors[t] for t in texts])

    assert near_copies(["a", "b"], embed(["a", "b"]), ["c"], embed(["c"])) == [(0.8, "a", "c")]

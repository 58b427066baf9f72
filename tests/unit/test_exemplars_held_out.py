"""The tagger's exemplars stay apart from the labelled prompts `bench tagging` scores it on: an exemplar that
is a near copy of an evaluation prompt would let the bench score the tagger on what it was shown."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LABELLED = Path(__file__).resolve().parents[2] / "data" / "samples" / "labelled"
# all-MiniLM-L6-v2 cosine: "What is the difference between civil law and criminal law?" against the
# WizardLM prompt that asks the same and more is 0.79; same-topic prompts of other wording stay below 0.7
NEAR_COPY = 0.7


def evaluation_prompts() -> list[str]:
    def rows(name):
        return [json.loads(line) for line in (LABELLED / name).read_text(encoding="utf-8").splitlines() if line]

    return ([r["Instruction"] for r in rows("WizardLM_testset.jsonl")]
            + [r["instruction"] for name in ("pool_categories.jsonl", "user_oriented_categories.jsonl")
               for r in rows(name)])


def near_copies(exemplars: list[str], vectors, prompts: list[str],
                prompt_vectors) -> list[tuple[float, str, str]]:
    """(cosine, exemplar, prompt) for each exemplar within NEAR_COPY of a prompt; vectors L2-normalized."""
    sims = vectors @ prompt_vectors.T
    best = sims.argmax(1)
    return [(round(float(sims[i, j]), 2), exemplars[i], prompts[j][:80])
            for i, j in enumerate(best) if sims[i, j] >= NEAR_COPY]


def test_no_exemplar_is_a_near_copy_of_a_labelled_prompt():
    from instructlake.config import load_config
    from instructlake.embed.embedder import get_embedder
    from instructlake.tagging import taxonomy

    cfg = load_config("local")
    model = get_embedder(cfg.embed, cfg.platform.embed, threads=2)
    prompts = evaluation_prompts()
    assert len(prompts) == 218 + 300 + 252
    prompt_vectors = model.encode(prompts)  # once, for both checks
    exemplars = list(taxonomy.exemplars().texts)
    assert near_copies(exemplars, model.encode(exemplars), prompts, prompt_vectors) == []
    # the check finds one: a labelled prompt itself, reworded a little, as an exemplar
    planted = ["Explain Newton's second law of motion."]
    assert [c[1] for c in near_copies(planted, model.encode(planted), prompts, prompt_vectors)] == planted


def test_near_copies_on_hand_made_vectors():
    vectors = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [0.8, 0.6]}

    def embed(texts):
        return np.array([vectors[t] for t in texts])

    assert near_copies(["a", "b"], embed(["a", "b"]), ["c"], embed(["c"])) == [(0.8, "a", "c")]

"""Builds lib/instructlake/resources/labelled_exemplars.jsonl: the labelled prompts the two-level tagger
uses as exemplars besides resources/category_exemplars.yaml.

    python bench/_labelled_exemplars.py     # writes the file (deterministic: the same file every time)

Its rows are the tune halves of the two hand-labelled sets in data/samples/labelled/ (pool_categories.jsonl
and user_oriented_categories.jsonl), each with the categories a reader accepts for it, so a sample's
category scores also come from its nearest labelled prompts (a kNN over labelled examples). Left out:
- rows from files that are not Apache-2.0 (the pool set's cherry_alpaca rows, CC-BY-NC-4.0 or unknown):
  the file ships with the package;
- rows that are a near copy of an evaluation prompt (cosine >= 0.7, the guard of
  tests/unit/test_exemplars_held_out.py): the WizardLM set, the two test halves and the whole AlpacaEval
  set (alpaca_eval_categories.jsonl, none of which is an exemplar).
The test halves, WizardLM and AlpacaEval therefore stay held out; the tune halves are no longer a fair
place to choose settings (their prompts are now exemplars).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT))

# the guard test owns the sets, their reading and the licenses that may ship: one definition for both
from tests.unit.test_exemplars_held_out import (  # noqa: E402
    APACHE,
    HAND_LABELLED,
    evaluation_prompts,
    near_copies,
    rows,
)

OUT = ROOT / "lib" / "instructlake" / "resources" / "labelled_exemplars.jsonl"


def candidates() -> list[dict]:
    """The tune rows of the hand-labelled sets whose source is Apache-2.0, in file order."""
    return [{"id": r["id"], "source": r["source"], "categories": r["categories"], "text": r["instruction"]}
            for name in HAND_LABELLED for r in rows(name) if r["split"] == "tune" and r["source"] in APACHE]


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from instructlake.config import load_config
    from instructlake.embed.embedder import get_embedder

    cfg = load_config("local")
    model = get_embedder(cfg.embed, cfg.platform.embed, threads=os.cpu_count())
    found = candidates()
    prompts = evaluation_prompts(held_out_only=True)
    texts = [r["text"] for r in found]
    near = {c[1] for c in near_copies(texts, model.encode(texts), prompts, model.encode(prompts))}
    kept = [r for r in found if r["text"] not in near]
    with open(OUT, "w", encoding="utf-8") as f:
        for r in kept:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {len(kept)} of {len(found)} Apache-2.0 tune prompts "
          f"({len(near)} left out as near copies of an evaluation prompt)")


if __name__ == "__main__":
    main()

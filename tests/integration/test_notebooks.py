"""The analyst notebooks (jupytext percent scripts) run top to bottom against a pipeline-built warehouse,
and what they compute matches the tables."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


@pytest.fixture
def run_notebook(pipeline_lake, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("INSTRUCTLAKE_WAREHOUSE", str(pipeline_lake.warehouse))

    def go(name: str) -> dict:
        import matplotlib.pyplot as plt

        try:
            return runpy.run_path(str(ROOT / "notebooks" / f"{name}.py"), run_name="__main__")
        finally:
            plt.close("all")
    return go


def test_every_notebook_is_percent_format():
    assert {p.stem for p in NOTEBOOKS} == {"tag_distribution", "cooccurrence", "losses_and_seeds", "contamination",
                                           "difficulty"}
    for p in NOTEBOOKS:
        text = p.read_text()
        assert "format_name: percent" in text and text.count("# %%") >= 3, p.name


def test_tag_distribution(run_notebook, pipeline_lake):
    g = run_notebook("tag_distribution")
    top = pipeline_lake.store.read("tag_stats").orderBy("frequency", ascending=False).first()
    assert g["stats"].iloc[0]["frequency"] == top["frequency"]
    assert len(g["stats"]) == pipeline_lake.store.count("tag_stats")
    assert g["per_category"]["samples"].max() <= pipeline_lake.store.count("samples")


def test_cooccurrence(run_notebook, pipeline_lake):
    g = run_notebook("cooccurrence")
    assert len(g["edges"]) == pipeline_lake.store.count("tag_edges")
    assert g["fit"]["gamma"] > 1 and g["components"].sum() == len(g["degrees"])


def test_losses_and_seeds(run_notebook, pipeline_lake):
    g = run_notebook("losses_and_seeds")
    store = pipeline_lake.store
    removed = store.read("dedup_clusters").filter("NOT is_kept").select("sample_id")
    failed = store.read("quality").filter("NOT passed").select("sample_id")
    kept_scores = (store.read("scores").filter("error IS NULL").join(removed, "sample_id", "left_anti")
                   .join(failed, "sample_id", "left_anti"))
    assert len(g["ok"]) == kept_scores.count() > 100
    assert sum(g["per_criterion"].values()) >= len(g["seeds"]) == pipeline_lake.store.count("seeds")


def test_contamination(run_notebook, pipeline_lake):
    g = run_notebook("contamination")
    flagged = pipeline_lake.store.read("contamination").filter("flagged").select("sample_id").distinct().count()
    assert int(g["summary"]["flagged"].sum()) == flagged
    assert len(g["flagged"]) >= flagged


def test_difficulty_without_and_with_ratings(run_notebook, pipeline_lake, tmp_path, spark, capsys):
    g = run_notebook("difficulty")
    assert g["has_ratings"] is False
    assert "no difficulty table" in capsys.readouterr().out
    # rate the pool with the scripted double, then the notebook shows the ratings
    from instructlake.config import load_config
    from instructlake.store import Store
    from instructlake.synth import difficulty
    from tests.conftest import TEST_SETTINGS

    copy = tmp_path / "wh"
    import shutil

    shutil.copytree(pipeline_lake.warehouse, copy)
    cfg = load_config("local", [*TEST_SETTINGS, "synth.llm.backend=scripted",
                                "synth.llm.model=instructlake.llm.scripted:synth"], warehouse=str(copy))
    r = difficulty.run(spark, Store(spark, cfg.warehouse), cfg)
    os.environ["INSTRUCTLAKE_WAREHOUSE"] = str(copy)
    g = run_notebook("difficulty")
    assert g["has_ratings"] is True
    assert int(g["by_group"].to_numpy().sum()) == r.counts["rated"] > 0

"""A warehouse built by `pipeline run` twice (a first load, then a refresh that crashes and resumes),
shared by the pipeline and notebook tests: building it costs a few minutes, so it is built once."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, TEST_SETTINGS


@pytest.fixture(autouse=True)
def _the_fixture_session_first(request):
    """Tests that run the CLI in this process get whatever session exists (getOrCreate). The `spark`
    fixture's settings (tests/conftest.py) must be the ones that win, in whatever order the xdist workers
    take the tests, so every integration test starts it before anything else can."""
    request.getfixturevalue("spark")


def pipeline_settings(model_dir: Path) -> list[str]:
    # a fixed tiny scorer (no train-reference), so a refresh and a full rebuild score with the same model
    return [*TEST_SETTINGS, "scoring.model=tiny", f"platform.scoring.model_paths={{tiny: {model_dir}}}",
            "normalize_tags.min_freq=2", "platform.scoring.token_budget=4096"]


def write_benchmark(root: Path) -> str:
    """80 AlpacaEval prompts plus one first-load instruction: a small benchmark side (embedding all 805 would
    cost each pipeline run in the tests ~10 s) that flags at least one sample."""
    bench = (Path(__file__).resolve().parents[2] / "lib" / "instructlake" / "resources" / "benchmarks" /
             "alpaca_eval.jsonl").read_text(encoding="utf-8").splitlines()[:80]
    alpaca = json.loads((SAMPLES / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    bench.append(json.dumps({"id": "planted", "instruction": alpaca[7]["instruction"]}))
    path = root / "bench.jsonl"
    path.write_text("\n".join(bench) + "\n", encoding="utf-8")
    return f"mini={path}"


def write_inputs(root: Path) -> tuple[list[Path], list[Path]]:
    """First-load files and refresh files from data/samples, named so they sort in the order they land.
    The refresh holds new records, a copy, a near copy and a normalized-equal copy of first-load records, and
    a broken one."""
    alpaca = json.loads((SAMPLES / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    seeds = (SAMPLES / "seed_tasks.jsonl").read_text(encoding="utf-8").splitlines()
    root.mkdir(parents=True, exist_ok=True)
    a, b, c = root / "a_alpaca.json", root / "b_seed.jsonl", root / "c_alpaca_more.json"
    a.write_text(json.dumps(alpaca[:90]), encoding="utf-8")
    b.write_text("\n".join(seeds[:40]) + "\n", encoding="utf-8")
    # a near copy (5-gram Jaccard > 0.9)
    near = dict(alpaca[2], output=alpaca[2]["output"] + " Hope this helps.")
    loud = dict(alpaca[4], instruction=alpaca[4]["instruction"].upper() + " !!")  # equal once normalized
    more = [*alpaca[90:150], alpaca[5], near, loud, {"instruction": 42, "output": None}]
    c.write_text(json.dumps(more), encoding="utf-8")
    return [a, b], [c]


@dataclass
class Lake:
    root: Path
    warehouse: Path
    landing: Path
    config: object
    store: object
    first: list = field(default_factory=list)  # outcomes of the first load
    again: list = field(default_factory=list)  # the same inputs again
    crashed: list = field(default_factory=list)  # the refresh, up to the injected crash
    crash: BaseException | None = None
    resumed: list = field(default_factory=list)  # the refresh run again
    model_dir: Path | None = None
    benchmarks: tuple[str, ...] = ()
    first_versions: dict = field(default_factory=dict)  # table versions right after the first load
    first_landing: Path | None = None  # the landing directory the first load read
    first_export: Path | None = None  # the first load's export directory


@pytest.fixture(scope="session")
def pipeline_lake(spark, tmp_path_factory) -> Lake:
    from instructlake import pipeline
    from instructlake.config import load_config
    from instructlake.graph import stage as graph_stage
    from instructlake.store import Store
    from tests.tiny_models import build_tiny_llama

    root = tmp_path_factory.mktemp("pipeline")
    model = build_tiny_llama(root / "tiny")
    first, refresh = write_inputs(root / "files")
    landing = root / "landing"
    landing.mkdir()
    for f in first:
        shutil.copy(f, landing / f.name)
    wh = root / "wh"
    cfg = load_config("local", pipeline_settings(model), warehouse=str(wh))
    store = Store(spark, cfg.warehouse, retries=8)
    lake = Lake(root, wh, landing, cfg, store, model_dir=model)
    inputs = pipeline.Inputs(raw=(str(landing),), benchmarks=(write_benchmark(root),), export_dir=str(root / "export"))
    lake.benchmarks = inputs.benchmarks
    lake.first = pipeline.run(spark, store, cfg, inputs, on_step=_timing)
    # the first run as it was, for comparisons after later runs changed the lake (time travel, copies)
    lake.first_versions = {t: store.version(t) for t in store.tables()}
    lake.first_landing = shutil.copytree(landing, root / "first_landing")
    lake.first_export = shutil.copytree(root / "export", root / "first_export")
    lake.again = pipeline.run(spark, store, cfg, inputs)
    for f in refresh:
        shutil.copy(f, landing / f.name)

    def crash(*a, **k):
        raise RuntimeError("injected crash in graph")

    real = graph_stage.run
    graph_stage.run = crash
    try:
        pipeline.run(spark, store, cfg, inputs, on_step=lake.crashed.append)
    except RuntimeError as e:
        lake.crash = e
    finally:
        graph_stage.run = real
    lake.resumed = pipeline.run(spark, store, cfg, inputs, on_step=_timing)
    return lake


def _timing(o) -> None:
    print(f"pipeline fixture: {o.step} {o.action} {o.seconds:.1f}s")


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory) -> Path:
    from tests.tiny_models import build_tiny_chat_llama

    return build_tiny_chat_llama(tmp_path_factory.mktemp("tiny-chat") / "model")


@pytest.fixture(scope="session")
def s3():
    """moto's S3 API server on 127.0.0.1 with one bucket, for the session (tests/s3_support.py)."""
    from tests.s3_support import serve

    yield from serve()

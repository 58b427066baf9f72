"""The suite's xdist groups (tests/conftest.py) cover every file that needs one."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import group_of

TESTS = Path(__file__).resolve().parents[1]


def files_using(pattern: str) -> set[str]:
    return {str(p.relative_to(TESTS.parent)) for p in TESTS.rglob("test_*.py")
            if p != Path(__file__).resolve() and re.search(pattern, p.read_text(encoding="utf-8"))}


def test_the_pipeline_fixture_is_built_once():
    users = files_using(r"\bpipeline_lake\b")
    assert "tests/integration/test_notebooks.py" in users
    assert {group_of(f"{f}::test") for f in users} == {"pipeline_lake"}


def test_vllm_tests_never_overlap():
    users = files_using(r"\brequire_vllm\b")
    assert "tests/integration/test_vllm_serve.py" in users
    assert {group_of(f"{f}::test") for f in users} == {"vllm"}


def test_other_tests_are_units_of_their_own():
    one = "tests/integration/test_ingest.py::test_x[a]"
    assert group_of(one) == one

"""The demo wipes only a warehouse an earlier demo created."""

import pytest

from instructlake.demo import MARKER, fresh_warehouse


def test_the_demo_replaces_its_own_warehouse_and_nothing_else(tmp_path):
    wh = tmp_path / "lakehouse" / "demo"
    fresh_warehouse(wh)  # created, with parents
    assert (wh / MARKER).exists()
    (wh / "samples").mkdir()
    fresh_warehouse(wh)  # an earlier demo's: replaced
    assert sorted(p.name for p in wh.iterdir()) == [MARKER]

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("months of work")
    with pytest.raises(FileExistsError, match="was not made by the demo; nothing was deleted"):
        fresh_warehouse(mine)
    assert (mine / "results.csv").read_text() == "months of work"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(FileExistsError):
        fresh_warehouse(a_file)

    empty = tmp_path / "empty"
    empty.mkdir()
    fresh_warehouse(empty)  # an empty directory is taken
    assert (empty / MARKER).exists()

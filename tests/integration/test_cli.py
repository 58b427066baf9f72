import json
import subprocess
import sys
from pathlib import Path

import pytest

from instructlake.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_cli_ingest_tables_show_and_table_export(spark, warehouse, samples_dir, tmp_path, capsys):
    wh = ["--warehouse", str(warehouse)]
    assert main(wh + ["ingest", str(samples_dir / "seed_tasks.jsonl"), "--source", "seeds"]) == 0
    out = capsys.readouterr().out
    assert "175 records found = 175 gave samples + 0 quarantined" in out
    assert "175 samples = 175 ingested + 0 duplicate in this batch + 0 already stored" in out
    assert main(wh + ["tables", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["samples"] == 175 and counts["runs"] == 1 and counts["quarantine"] == 0
    assert main(wh + ["show", "samples", "-n", "2"]) == 0
    assert "only showing top 2 rows" in capsys.readouterr().out
    out = tmp_path / "s.jsonl"
    assert main(wh + ["table", "export", "samples", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 175 and json.loads(lines[0])["source"] == "seeds"
    run = spark.read.format("delta").load(str(warehouse / "runs")).first()
    assert run["stage"] == "ingest" and run["status"] == "ok" and run["counts"]["ingested"] == 175


def test_cli_errors_are_one_line(warehouse, tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text("nope")
    assert main(["--warehouse", str(warehouse), "ingest", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("instructlake: error: cannot ingest") and "x.json: not JSON" in err
    assert main(["--warehouse", str(warehouse), "--set", "ingest.bogus=1", "tables"]) == 2
    assert "unknown key 'ingest.bogus'" in capsys.readouterr().err
    assert main(["--warehouse", str(warehouse), "show", "nothing"]) == 2
    assert "no table 'nothing'" in capsys.readouterr().err


def test_a_misspelt_stage_is_said_before_a_session_starts(warehouse, monkeypatch, capsys):
    import instructlake.cli as cli

    monkeypatch.setattr(cli, "session", lambda cfg: pytest.fail("a session was built for a usage error"))
    cases = {("--to", "dedupe"): "unknown pipeline stage 'dedupe'",
             ("--skip", "tagz"): "unknown pipeline stage 'tagz'",
             ("--from", "export", "--to", "dedup"): "--from export comes after --to dedup"}
    for args, said in cases.items():
        assert main(["--warehouse", str(warehouse), "pipeline", "run", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"instructlake: error: {said}") and "resume" not in err, err


@pytest.mark.parametrize("cmd", [[], ["ingest"], ["dedup"], ["export"], ["tables"], ["table", "export"], ["show"]])
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0
    assert "usage: instructlake" in capsys.readouterr().out


def test_jobs_are_thin_entries():
    for job in ("ingest", "dedup", "export", "decontam", "semdedup", "score", "evolve", "difficulty"):
        text = (ROOT / "jobs" / f"{job}.py").read_text()
        assert f'stage_main("{job}")' in text and len(text.splitlines()) < 10


def test_missing_java_is_one_sentence(tmp_path):
    """build.py with no java anywhere: one sentence on stderr, no Python or Py4J trace."""
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    p = subprocess.run([sys.executable, str(ROOT / "build.py"), "setup"], env=env, capture_output=True, text=True)
    assert p.returncode == 1
    assert "needs Java 17" in p.stderr and "Traceback" not in p.stderr + p.stdout
    import os

    from instructlake.jvm import JavaMissingError, check_java
    old = dict(os.environ)
    try:
        os.environ["PATH"] = str(tmp_path)
        os.environ.pop("JAVA_HOME", None)
        with pytest.raises(JavaMissingError, match="needs Java 17"):
            check_java()
    finally:
        os.environ.clear()
        os.environ.update(old)

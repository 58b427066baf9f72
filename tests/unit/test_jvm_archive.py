"""The JVM class archive: which options a local driver gets, and when an archive counts as this one."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from instructlake import jvm_archive
from instructlake.jvm import java_binary


@pytest.fixture
def jars(tmp_path, monkeypatch):
    root = tmp_path / "share" / "instructlake" / "jars"
    (root / "delta").mkdir(parents=True)
    (root / "delta" / "delta-spark.jar").write_bytes(b"one")
    monkeypatch.setenv("INSTRUCTLAKE_JARS", str(root))
    monkeypatch.delenv(jvm_archive.DUMP_ENV, raising=False)
    return root


needs_java = pytest.mark.skipif(java_binary() is None, reason="no java")


@needs_java
def test_no_archive_no_options_then_the_archive_once_it_exists(jars):
    assert jvm_archive.java_options() == ""
    path = jvm_archive.archive_path()
    assert path.parent == jars.parent / "cds"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"archive")
    opts = jvm_archive.java_options()
    assert f"-XX:SharedArchiveFile={path}" in opts and "-Xlog:cds=off" in opts


@needs_java
def test_a_changed_jar_set_names_another_archive(jars):
    before = jvm_archive.archive_key()
    assert jvm_archive.archive_key() == before  # stable
    (jars / "delta" / "extra.jar").write_bytes(b"two")
    assert jvm_archive.archive_key() != before
    (jars / "delta" / "extra.jar").unlink()
    assert jvm_archive.archive_key() == before


def test_while_building_the_session_writes_the_archive(jars, monkeypatch, tmp_path):
    monkeypatch.setenv(jvm_archive.DUMP_ENV, str(tmp_path / "x.jsa"))
    assert jvm_archive.java_options().startswith(f"-XX:ArchiveClassesAtExit={tmp_path / 'x.jsa'} ")


@needs_java
def test_a_damaged_archive_never_stops_a_jvm(tmp_path):
    """-Xshare:auto (the default): an archive the JVM cannot use is skipped, silently with our log options."""
    bad = tmp_path / "bad.jsa"
    bad.write_bytes(b"not an archive")
    p = subprocess.run([shutil.which("java") or java_binary(), f"-XX:SharedArchiveFile={bad}",
                        *jvm_archive.QUIET.split(), "-version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    assert "version" in p.stderr and "warning" not in p.stderr.lower()

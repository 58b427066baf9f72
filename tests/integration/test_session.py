"""The local session factory: the JVM class archive that `build.py setup` writes is really mapped."""

from __future__ import annotations

import pytest


def test_the_local_session_maps_the_class_archive(spark):
    from instructlake import jvm_archive

    path = jvm_archive.archive_path()
    if path is None or not path.is_file():
        pytest.skip("no class archive here (`python build.py setup` writes it)")
    jvm = spark.sparkContext._jvm
    args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert f"-XX:SharedArchiveFile={path}" in args
    assert "sharing" in jvm.java.lang.System.getProperty("java.vm.info")

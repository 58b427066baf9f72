"""The local session factory: the JVM class archive that `build.py setup` writes is really mapped."""

from __future__ import annotations

import pytest


def test_the_local_session_maps_the_class_archive(spark):
    from instructlake import jvm_archive

    path = jvm_archive.archive_path()
    if path is None:
        pytest.skip("no java: no class archive")
    # setup (which `build.py test` runs first) writes it; missing means the JVM refused to write it, as
    # it did while a non-empty conf directory was on the classpath: fail, do not hide it
    assert path.is_file(), f"no class archive at {path}: `python -m instructlake.jvm_archive build` says why"
    jvm = spark.sparkContext._jvm
    args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert f"-XX:SharedArchiveFile={path}" in args
    assert "sharing" in jvm.java.lang.System.getProperty("java.vm.info")


def test_the_local_session_compiles_with_c1_only(spark):
    """platform.spark.jit's default (quick) reaches the JVM: its JIT stops at C1."""
    jvm = spark.sparkContext._jvm
    flag = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")).getVMOption("TieredStopAtLevel")
    assert flag.getValue() == "1"

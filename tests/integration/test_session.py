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
    assert path.is_file(), (f"no class archive at {path}: "
                            "`python -m instructlake.jvm_archive_build build` says why")
    jvm = spark.sparkContext._jvm
    args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert f"-XX:SharedArchiveFile={path}" in args
    assert "sharing" in jvm.java.lang.System.getProperty("java.vm.info")


def test_the_jit_setting_reaches_the_jvm(spark):
    """The fixture asks for platform.spark.jit=full: its JVM compiles up to C2 (level 4) and has no C1-only
    flag from the default (tests/unit/test_config.py checks the options `quick` gives)."""
    jvm = spark.sparkContext._jvm
    bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean"))
    assert bean.getVMOption("TieredStopAtLevel").getValue() == "4"
    args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert "-XX:TieredStopAtLevel=1" not in args


def test_the_gc_setting_reaches_the_jvm(spark):
    """The fixture keeps the default platform.spark.gc=serial: its JVM collects with the serial collector's
    two generations (tests/unit/test_config.py checks the options each setting gives)."""
    jvm = spark.sparkContext._jvm
    names = {b.getName() for b in jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()}
    assert names == {"Copy", "MarkSweepCompact"}, names

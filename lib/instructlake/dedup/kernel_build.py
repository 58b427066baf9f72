"""Dedup's kernels (kernels.py) compiled ahead of time into one extension module, loaded without numba.

numba compiles the kernels the first time a process calls them and keeps the machine code in its cache,
but loading that code still brings numba and LLVM into the process: a fresh process's first sketch took
210 MB and 0.85 s with the JIT against 88 MB and 0.39 s with the built module (most of what is left is
minhash's Unicode tables), in each Spark Python worker that hashes texts and in the driver that bands
the signatures (three processes in a local ingest + dedup). `python build.py setup` compiles the same
functions once with numba's ahead-of-time compiler (numba.pycc), for this machine's CPU, into a module
under the environment's prefix.
A process that finds the module built from this kernels.py, with this numba and Python on this CPU, loads
it in a millisecond and never imports numba. Anywhere else (a cluster's workers, an edited kernels.py, a
numba without pycc, INSTRUCTLAKE_KERNELS=jit) the JIT runs as before. Both give the same values
(tests/unit/test_kernel_build.py).

The built functions trust their arguments' types (a wrong dtype would crash the process), so each is
called through `checked`, which compares every argument with the exported signature first.

    python -m instructlake.dedup.kernel_build build   # what setup runs; nothing when it is built
    python -m instructlake.dedup.kernel_build path    # the module this environment loads (or would)
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import platform
import re
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import ModuleType

import numpy as np

log = logging.getLogger(__name__)

MODE_ENV = "INSTRUCTLAKE_KERNELS"  # `jit`: never load the built module
KERNELS = Path(__file__).with_name("kernels.py")
DTYPES = {"i8": "int64", "u8": "uint64", "u4": "uint32", "u1": "uint8", "b1": "bool", "f8": "float64"}


def cpu_flags() -> str:
    """The instruction sets of this CPU (its first `flags` line); empty where /proc/cpuinfo is not."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def build_key() -> str:
    """A hash of what the built module depends on: kernels.py, numba, Python, the machine and its CPU."""
    h = hashlib.sha256(KERNELS.read_bytes())
    for part in (metadata.version("numba"), sys.version, platform.machine(), cpu_flags()):
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:16]


def module_name() -> str:
    return f"instructlake_kernels_{build_key()}"


def module_path(name: str | None = None) -> Path:
    """Where the module named `name` (default: module_name()) is built."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    return Path(sys.prefix) / "share" / "instructlake" / "kernels" / f"{name or module_name()}{suffix}"


def load() -> ModuleType | None:
    """The module built for this kernels.py, numba, Python and CPU; None where there is none (or the
    JIT is asked for)."""
    if os.environ.get(MODE_ENV, "auto") == "jit":
        return None
    try:
        name = module_name()  # once: the key reads kernels.py and the CPU's flags
        path = module_path(name)
        if not path.exists():
            return None
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except (OSError, ImportError, metadata.PackageNotFoundError) as e:
        log.warning("dedup's built kernels could not be loaded (%s): numba compiles them instead", e)
        return None
    return module


def argument_types(signature: str) -> list[str]:
    """The argument types of a numba signature: 'u8[::1](i8[::1], u4[:, ::1], i8)' -> ['i8[::1]', ...]."""
    return re.findall(r"\w+(?:\[[^\]]*\])?", signature[signature.rindex("(") + 1:])


def _argument_check(kind: str) -> Callable[[object], str | None]:
    """A function saying what is wrong with an argument for the type `kind` (None when nothing is)."""
    m = re.fullmatch(r"(\w+)(?:\[(.*)\])?", kind)
    dtype = np.dtype(DTYPES[m.group(1)])
    if m.group(2) is None:  # a scalar
        def scalar(value: object) -> str | None:
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            return None if ok else f"an integer, not {type(value).__name__}"
        return scalar
    ndim = m.group(2).count(":") - m.group(2).count("::")
    contiguous = "::1" in m.group(2)

    def array(value: object) -> str | None:
        if not isinstance(value, np.ndarray):
            return f"a numpy array, not {type(value).__name__}"
        if value.dtype != dtype or value.ndim != ndim:
            return f"{ndim}-d {dtype}, not {value.ndim}-d {value.dtype}"
        if contiguous and not value.flags.c_contiguous:
            return "C-contiguous"
        return None
    return array


def checked(built: Callable, name: str, signature: str) -> Callable:
    """`built` called only with the arguments `signature` describes; others raise TypeError naming the
    kernel and the argument (the built code reads memory as its signature says, unchecked)."""
    checks = [_argument_check(k) for k in argument_types(signature)]

    def call(*args):
        if len(args) != len(checks):
            raise TypeError(f"kernel {name}: takes {len(checks)} arguments, not {len(args)}")
        for i, (check, arg) in enumerate(zip(checks, args, strict=True)):
            wrong = check(arg)
            if wrong:
                raise TypeError(f"kernel {name}: argument {i + 1} must be {wrong}")
        return built(*args)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = built.__doc__
    return call


def build(force: bool = False) -> Path:
    """Compile kernels.EXPORTS into module_path() and return it. Raises ImportError where numba has no
    ahead-of-time compiler, and the compiler's errors (no C compiler, say)."""
    name = module_name()
    path = module_path(name)
    if path.exists() and not force:
        return path
    os.environ[MODE_ENV] = "jit"  # the kernels module must hold numba's functions, whose code pycc compiles
    from numba.pycc import CC

    kernels = importlib.import_module("instructlake.dedup.kernels")
    if kernels._BUILT is not None:  # imported before MODE_ENV was set: no numba functions to compile
        raise RuntimeError("build the kernels in a process that has not imported them (python -m ... build)")
    cc = CC(name)
    cc.target_cpu = "host"  # this CPU's vector instructions: the permutation loop runs 6x faster than generic
    cc.verbose = False
    for kernel, signature in kernels.EXPORTS.items():
        cc.export(kernel, signature)(getattr(kernels, kernel).py_func)
    with tempfile.TemporaryDirectory() as tmp:
        cc.output_dir = tmp
        cc.compile()
        built = next(Path(tmp).glob(f"{name}*"))
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob("instructlake_kernels_*"):
            old.unlink()
        part = path.with_name(path.name + ".part")
        shutil.copy2(built, part)
        part.replace(path)  # a process loading the module never finds half of it
    return path


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv[:1] == ["path"]:
        path = module_path()
        print(path if path.exists() else f"none (would be {path})")
        return 0
    if argv[:1] != ["build"]:
        print("\n".join(line.strip() for line in __doc__.strip().splitlines()[-2:]))
        return 2
    force = "--force" in argv
    existed = module_path().exists()
    try:
        path = build(force=force)
    except Exception as e:  # noqa: BLE001 - a failed compile leaves the JIT, which always works
        path, why = None, f" ({type(e).__name__}: {e})"
    else:
        why = ""
    # printed, not logged: numba's compiler sets up logging of its own
    if path is None:
        print(f"dedup kernels: not built{why}; numba compiles them in each process", file=sys.stderr)
    elif existed and not force:
        print(f"dedup kernels: up to date ({path})", file=sys.stderr)
    else:
        print(f"dedup kernels: built {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

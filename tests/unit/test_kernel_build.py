"""Dedup's kernels compiled ahead of time (dedup/kernel_build.py): the same values as numba's JIT, loaded
only when built from this source, never called with arguments their signatures do not describe."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from instructlake.dedup import kernel_build

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "alpaca_en_demo.json"

# Every kernel called from Python, on the demo's texts and on text that takes the rarer branches: NFKC,
# CJK, templates, Unicode whitespace, emptiness. Prints the results (or their hashes) as JSON.
RUN_KERNELS = r"""
import hashlib, json, sys
import numpy as np, pyarrow as pa
from instructlake.dedup import kernels, minhash

demo = [r["instruction"] + "\n" + r["input"] + "\n" + r["output"] for r in json.load(open(sys.argv[1]))[:300]]
texts = [x for t in demo for x in (t, t + " Indeed.")]  # each text beside a near twin: some pairs match
texts += ["", " ", "ﬁne  Ｆｕｌｌ width", "机器学习是人工智能的一个分支。", "a\u2003b\u00a0c \u3000d\n",
          "### Instruction: x", "Hello,   WORLD!!\n\tﬁne", "e\u0301t\u00e9", "\U0001F600 emoji \U0001F600", "x " * 300]
arr = pa.array(texts)
h = minhash.MinHasher(num_perm=64, ngram=3, seed=7)
sig, has, h1, h2, n = h.sketch_texts(arr, True)
off, vals = minhash.text_shingle_sets(h, arr, True)
pairs = np.arange(len(texts) - 1)
jac = minhash.set_jaccard(off, vals, pairs, pairs + 1)
rng = np.random.default_rng(1)
block = rng.integers(0, 5, size=(1000, 12)).astype(np.uint32)
digest = lambda *xs: hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes() for x in xs)).hexdigest()
print(json.dumps({
    "built": kernels._BUILT is not None, "numba": "numba" in sys.modules,
    "sketch": digest(sig, has, h1, h2, n), "sets": digest(off, vals), "jaccard": jac.round(12).tolist(),
    "normalized": minhash.normalize(arr).to_pylist(), "row_hashes": digest(kernels.row_hashes(block),
                                                                           kernels.row_hashes(block[:, 3:8])),
}))
"""


def run_kernels(mode: str) -> dict:
    env = {**os.environ, kernel_build.MODE_ENV: mode}
    out = subprocess.run([sys.executable, "-c", RUN_KERNELS, str(SAMPLES)], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_the_built_kernels_give_the_values_of_the_jit_and_load_no_numba():
    if not kernel_build.module_path().exists():
        if shutil.which("cc") is None:
            pytest.skip("no C compiler here: the kernels are not built ahead of time (the JIT runs)")
        pytest.fail(f"{kernel_build.module_path()} is not built: `python build.py setup` builds it")
    built, jit = run_kernels("auto"), run_kernels("jit")
    assert built.pop("built") and not built.pop("numba")
    assert not jit.pop("built") and jit.pop("numba")
    assert built == jit
    assert 0 < sum(x > 0.5 for x in built["jaccard"]) < len(built["jaccard"])  # the pairs are not all alike


def test_only_a_module_built_from_this_source_is_loaded(tmp_path, monkeypatch):
    monkeypatch.delenv(kernel_build.MODE_ENV, raising=False)
    here = kernel_build.module_path()
    edited = tmp_path / "kernels.py"
    edited.write_bytes(kernel_build.KERNELS.read_bytes() + b"\n# edited\n")
    monkeypatch.setattr(kernel_build, "KERNELS", edited)
    assert kernel_build.module_path() != here and kernel_build.load() is None
    monkeypatch.undo()
    if here.exists():
        assert kernel_build.load() is not None
        monkeypatch.setenv(kernel_build.MODE_ENV, "jit")
        assert kernel_build.load() is None


def test_the_key_follows_the_cpu(monkeypatch):
    key = kernel_build.build_key()
    monkeypatch.setattr(kernel_build, "cpu_flags", lambda: "fpu sse2")
    assert kernel_build.build_key() != key


def test_argument_types_of_a_signature():
    assert kernel_build.argument_types("Tuple((i8[::1], u1[::1]))(i8[::1], u1[::1], i8, b1[::1])") == [
        "i8[::1]", "u1[::1]", "i8", "b1[::1]"]
    assert kernel_build.argument_types("void(i8[::1], u4[:, ::1], u4[:, :])") == [
        "i8[::1]", "u4[:, ::1]", "u4[:, :]"]


def test_a_built_kernel_is_called_only_with_the_arguments_its_signature_names():
    calls = []

    def built_double(*args):  # a double of a built function: records what reached it
        calls.append(args)
        return len(calls)

    kernel = kernel_build.checked(built_double, "k", "i8(i8[::1], u4[:, ::1], u4[:, :], u8)")
    ids, block = np.arange(4, dtype=np.int64), np.zeros((3, 4), np.uint32)
    assert kernel(ids, block, block[:, 1:3], np.uint64(5)) == 1
    assert kernel(ids, block, block, 5) == 2
    wrong = {
        "argument 1 must be 1-d int64, not 1-d int32": (ids.astype(np.int32), block, block, 5),
        "argument 1 must be C-contiguous": (np.arange(8, dtype=np.int64)[::2], block, block, 5),
        "argument 2 must be 2-d uint32, not 1-d int64": (ids, ids, block, 5),
        "argument 2 must be C-contiguous": (ids, block[:, 1:3], block, 5),
        "argument 3 must be a numpy array, not list": (ids, block, [[1]], 5),
        "argument 4 must be an integer, not float": (ids, block, block, 5.0),
        "takes 4 arguments, not 3": (ids, block, block),
    }
    for message, args in wrong.items():
        with pytest.raises(TypeError, match=f"kernel k: {message}"):
            kernel(*args)
    assert len(calls) == 2

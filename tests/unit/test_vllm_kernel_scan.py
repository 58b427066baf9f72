"""vLLM's CPU build scans every loaded module before it builds an engine; numba (dedup's kernels) must
not break that scan in a Spark worker that ran dedup first."""

import os
import subprocess
import sys

# vLLM's scan (vllm/triton_utils/dispatcher.py, _rebind_kernels), reduced to the reads that failed
SCAN = """
import sys
from instructlake.dedup import kernels
from instructlake.llm.vllm_engine import llvmlite_safe_for_kernel_scan
if sys.argv[1] == "guarded":
    llvmlite_safe_for_kernel_scan()
for module in list(sys.modules.values()):
    namespace = getattr(module, "__dict__", None) or {}
    for attr, value in list(namespace.items()):
        if hasattr(value, "__dict__"):
            vars(value).get("kernel")
print("scanned")
"""


def scan(mode: str) -> subprocess.CompletedProcess:
    # numba's JIT, as on a cluster's workers: the kernels built ahead of time (kernel_build) load no llvmlite
    env = {**os.environ, "INSTRUCTLAKE_KERNELS": "jit"}
    return subprocess.run([sys.executable, "-c", SCAN, mode], capture_output=True, text=True, timeout=120,
                          env=env)


def test_the_scan_fails_on_llvmlite_unguarded_and_passes_guarded():
    bare = scan("bare")
    assert bare.returncode != 0 and "'_lib_fn_wrapper' object has no attribute 'get'" in bare.stderr
    guarded = scan("guarded")
    assert guarded.returncode == 0 and "scanned" in guarded.stdout, guarded.stderr

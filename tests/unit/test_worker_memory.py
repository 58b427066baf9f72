"""worker_memory: what a worker freed goes back to the system once its batches are done."""

import subprocess
import sys

import pytest

from instructlake import worker_memory

# Frees memory that each allocator keeps (Arrow's pool: buffers from a compute kernel; malloc: small
# blocks), then gives it back; prints RSS in MB before, full, freed and given back, for each.
HELD = r"""
import sys
import numpy as np, pyarrow as pa, pyarrow.compute as pc
from instructlake.worker_memory import give_back

def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) / 1e3

src = pa.array(np.arange(125_000, dtype=np.int64))
for kind in sys.argv[1:]:
    base = rss()
    if kind == "arrow":
        held = [pc.add(src, i) for i in range(200)]
    else:
        held = [bytearray(2000) for _ in range(100_000)]
    full = rss()
    del held
    freed = rss()
    give_back()
    print(kind, base, full, freed, rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads RSS from /proc")
@pytest.mark.parametrize("kind", ["arrow", "malloc"])
def test_memory_an_allocator_keeps_goes_back(kind):
    out = subprocess.run([sys.executable, "-c", HELD, kind], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    _, base, full, freed, back = out.stdout.split()
    base, full, freed, back = map(float, (base, full, freed, back))
    assert full - base > 150  # about 200 MB taken
    assert freed - base > 100  # freed, but kept by the allocator
    assert back - base < 50  # given back


def test_a_wrapped_function_gives_back_when_its_batches_are_done_or_it_fails(monkeypatch):
    given = []
    monkeypatch.setattr(worker_memory, "give_back", lambda: given.append(True))

    @worker_memory.giving_back
    def batches(n):
        before = len(given)
        for i in range(n):
            assert len(given) == before  # not while batches still come
            yield i
        if n == 2:
            raise ValueError("bad batch")

    assert list(batches(3)) == [0, 1, 2] and len(given) == 1
    with pytest.raises(ValueError, match="bad batch"):
        list(batches(2))
    assert len(given) == 2

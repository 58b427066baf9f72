"""What the benches share: the wall time and peak memory of a command's whole process tree.

Two memory figures: the sum of every process's resident set (RSS, what the goals are stated in) and the
sum of their proportional sets (PSS: a page shared by several processes, such as the code and libraries
pyspark's forked Python workers share with their daemon, counted once in all). RSS overstates a tree of
forked workers; PSS is what the tree takes from the machine."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from typing import NamedTuple


class Measured(NamedTuple):
    out: str
    wall: float  # seconds
    mem: float  # peak tree RSS, GB
    pss: float  # peak tree PSS, GB


def _pss_kb(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("Pss:")), 0)
    except (OSError, ValueError, IndexError):
        return 0


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    return tree_memory_kb(pid)[0]


def tree_memory_kb(pid: int, pss: bool = False) -> tuple[int, int]:
    """(RSS, PSS) of a process and all its descendants, from /proc; PSS is 0 unless asked for."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            children.setdefault(int(fields["PPid"].strip()), []).append(int(d))
            rss[int(d)] = int(fields.get("VmRSS", "0 kB").split()[0])
        except (OSError, KeyError, ValueError):
            continue
    total, total_pss, stack = 0, 0, [(pid, "")]
    while stack:
        p, parent_exe = stack.pop()
        exe = _exe(p)
        stack += [(k, exe) for k in children.get(p, [])]
        # A JVM's child that still runs java: the JVM starts a program (Hadoop's local file system runs
        # `readlink`, for one) with posix_spawn, whose child shares the JVM's memory until it execs, and
        # /proc shows the JVM's whole resident set for it. Counting it once more doubled a peak sampled then.
        if exe.endswith("/java") and exe == parent_exe:
            continue
        total += rss.get(p, 0)
        total_pss += _pss_kb(str(p)) if pss and p in rss else 0
    return total, total_pss


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


# RSS is read every POLL_S seconds, PSS at every PSS_EVERY-th read. RSS is a counter /proc keeps; PSS
# walks every page table of the process: 37 ms for a JVM of 2.7 GB. Read with each RSS sample, that is
# about 6% of two cores, taken from the run being measured (1 GB ingest + dedup: 74.3 / 78.4 s measured
# so, 71.6 / 70.8 s with RSS alone).
POLL_S, PSS_EVERY = 0.5, 4


def run_measured(cmd: list[str], env: dict | None = None) -> Measured:
    """Output, wall seconds, and the peaks of the tree's RSS and PSS sums (each its own peak; PSS sampled
    less often, so its peak may miss a short top that the RSS peak catches)."""
    t = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    peak = [0, 0]
    done = threading.Event()

    def poll():
        n = 0
        while not done.is_set():
            rss, pss = tree_memory_kb(proc.pid, pss=n % PSS_EVERY == 0)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            n += 1
            time.sleep(POLL_S)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    out, _ = proc.communicate()
    done.set()
    th.join()
    if proc.returncode != 0:
        print(out[-4000:])
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
    return Measured(out, time.time() - t, peak[0] / 1e6, peak[1] / 1e6)

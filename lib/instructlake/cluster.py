"""A Spark standalone cluster on this machine: one master and N workers, each worker with its own executor
JVMs and Python workers, bound to 127.0.0.1 only. It is how a job is tried with executors apart from the
driver (per-worker model caches, model paths seen from an executor, broadcasts, collects) before it goes to
Databricks or EMR, and what the cluster test runs on.

    python build.py cluster up [--workers 2] [--cores 1] [--memory 2g]   # prints the master URL
    SPARK_LOCAL_IP=127.0.0.1 spark-submit --master spark://127.0.0.1:PORT jobs/pipeline.py \
        --warehouse ./lakehouse run ...
    python build.py cluster status
    python build.py cluster down

The daemons are pyspark's own (`bin/spark-class org.apache.spark.deploy.master.Master` and `...Worker`),
started in the background; their logs, work directories and a state file live under
.venv/share/instructlake/cluster/ (or INSTRUCTLAKE_CLUSTER_DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

HOST = "127.0.0.1"


class ClusterError(RuntimeError):
    """The cluster did not come up, or is not running."""


@dataclass
class Cluster:
    master_url: str
    web_url: str
    pids: list[int] = field(default_factory=list)
    root: str = ""

    def state(self) -> dict:
        """What the master's web UI reports (workers, active and completed applications); {} when down."""
        try:
            with urllib.request.urlopen(f"{self.web_url}/json/", timeout=5) as r:
                return json.load(r)
        except (OSError, ValueError):
            return {}

    def alive_workers(self) -> int:
        return sum(1 for w in self.state().get("workers", []) if w.get("state") == "ALIVE")

    def applications(self) -> list[dict]:
        """Applications the master has run or runs, oldest first."""
        st = self.state()
        apps = st.get("completedapps", []) + st.get("activeapps", [])
        return sorted(apps, key=lambda a: a.get("starttime", 0))

    def running(self) -> bool:
        return all(pid_alive(p) for p in self.pids)


def default_dir() -> Path:
    env = os.environ.get("INSTRUCTLAKE_CLUSTER_DIR")
    if env:
        return Path(env)
    from instructlake.jvm import jars_root

    return jars_root().parent / "cluster"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:  # a daemon this process started and that has exited is reaped here, not counted as alive
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def _daemon_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"SPARK_LOCAL_IP": HOST, "SPARK_WORKER_DIR": str(root / "work"), "SPARK_NO_DAEMONIZE": "1",
                "PYSPARK_PYTHON": env.get("PYSPARK_PYTHON", sys.executable)})
    return env


def _start(cmd: list[str], log: Path, env: dict[str, str]) -> int:
    with open(log, "ab") as out:
        # its own session: `down` stops the daemon and whatever it started (executor JVMs, Python workers)
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc.pid


def up(root: Path | None = None, workers: int = 2, cores: int = 1, memory: str = "2g",
       timeout: float = 120.0) -> Cluster:
    """Start a master and `workers` workers; return when every worker has registered."""
    root = root or default_dir()
    old = status(root)
    if old is not None and old.running():
        raise ClusterError(f"a cluster is already up at {old.master_url} (python build.py cluster down)")
    shutil.rmtree(root / "work", ignore_errors=True)
    (root / "logs").mkdir(parents=True, exist_ok=True)
    env = _daemon_env(root)
    port, web = free_port(), free_port()
    cls = str(_spark_class())
    c = Cluster(master_url=f"spark://{HOST}:{port}", web_url=f"http://{HOST}:{web}", root=str(root))
    c.pids.append(_start([cls, "org.apache.spark.deploy.master.Master", "--host", HOST, "--port", str(port),
                          "--webui-port", str(web)], root / "logs" / "master.log", env))
    for i in range(workers):
        c.pids.append(_start([cls, "org.apache.spark.deploy.worker.Worker", "--host", HOST,
                              "--cores", str(cores), "--memory", memory, "--webui-port", str(free_port()),
                              c.master_url], root / "logs" / f"worker-{i + 1}.log", env))
    _save(root, c)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not c.running():
            down(root)
            raise ClusterError(f"a cluster daemon exited while starting: see {root / 'logs'}")
        if c.alive_workers() == workers:
            return c
        time.sleep(1)
    down(root)
    raise ClusterError(f"{workers} workers did not register with {c.master_url} in {timeout:.0f}s: "
                       f"see {root / 'logs'}")


def _save(root: Path, c: Cluster) -> None:
    (root / "cluster.json").write_text(json.dumps(asdict(c), indent=1))


def status(root: Path | None = None) -> Cluster | None:
    path = (root or default_dir()) / "cluster.json"
    try:
        return Cluster(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def down(root: Path | None = None, timeout: float = 30.0) -> bool:
    """Stop the daemons and every process they started; False when no cluster was recorded."""
    root = root or default_dir()
    c = status(root)
    if c is None:
        return False
    for pid in c.pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.time() + timeout
    while time.time() < deadline and any(pid_alive(p) for p in c.pids):
        time.sleep(0.5)
    for pid in c.pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    (root / "cluster.json").unlink(missing_ok=True)
    return True


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python build.py cluster", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="action", required=True)
    u = sub.add_parser("up", help="start a master and workers on 127.0.0.1")
    u.add_argument("--workers", type=int, default=2)
    u.add_argument("--cores", type=int, default=1, help="cores per worker")
    u.add_argument("--memory", default="2g", help="memory per worker (executors share it)")
    sub.add_parser("status", help="the master URL and how many workers are alive")
    sub.add_parser("down", help="stop the cluster and everything it started")
    args = ap.parse_args(argv)
    if args.action == "up":
        try:
            c = up(workers=args.workers, cores=args.cores, memory=args.memory)
        except ClusterError as e:
            print(f"cluster: {e}", file=sys.stderr)
            return 1
        print(f"cluster up: {c.master_url} ({args.workers} workers x {args.cores} core(s)); "
              f"web UI {c.web_url}")
        print(f"  SPARK_LOCAL_IP={HOST} spark-submit --master {c.master_url} --conf spark.executor.memory=1g "
              "jobs/pipeline.py --warehouse ./lakehouse run ...")
        return 0
    if args.action == "status":
        c = status()
        if c is None or not c.running():
            print("cluster: not running")
            return 1
        print(f"cluster: {c.master_url}, {c.alive_workers()} workers alive; web UI {c.web_url}")
        return 0
    print("cluster: stopped" if down() else "cluster: none was running")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

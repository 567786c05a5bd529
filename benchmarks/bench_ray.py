"""Benchmark: one sweep trained here (1 and 2 worker processes) and on local Ray clusters (issue 17).

The same sweep (breast-cancer, baseline + dp-sgd, epsilon 1 and 4, 20 epochs, RDP; 3 runs a seed) into a fresh store
each time:
  local-1   this process (--workers 1)
  local-2   two worker processes (--workers 2)
  ray-1x2   a one-node Ray cluster with 2 CPUs (`ray start --head`), one CPU per task
  ray-2x1   a two-node Ray cluster, one CPU each (`ray start --head` + `ray start --address`)
Each Ray sweep connects, calibrates on the driver, puts the data once, trains, disconnects: all inside its wall
time; starting the clusters is timed apart (both stay up, idle, while the others run). Each mode runs the sweep at
two sizes (--seeds 4,12: 12 and 36 runs) so that its fixed cost (worker start-up, connecting) and its cost per run
part: per run = (median wall at 36 - median wall at 12) / 24, over --repeats rounds that interleave the modes (the
load of a shared machine moves). On a 2-core machine Ray can only add overhead. Fractional-GPU tasks (--ray-gpus
0.25) need a GPU host. FRONTIER_BATCHED_DP_SGD=0 makes every run its own task (else dp-sgd runs train in parts).

    FRONTIER_BATCHED_DP_SGD=0 .venv/bin/python benchmarks/bench_ray.py    # about 13 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # runnable as `python benchmarks/bench_ray.py`
    sys.path.insert(0, str(REPO_ROOT))

RAY = str(Path(sys.executable).with_name("ray"))


def spec_values(seeds: int) -> dict:
    return dict(dataset="breast-cancer", techniques=("baseline", "dp-sgd"), epochs=(20,), batch_size=(64,),
                accountant="rdp", epsilons=(1.0, 4.0), clipping_norms=(1.0,), seeds=tuple(range(seeds)))


class LocalCluster:
    """`nodes` Ray nodes of `cpus` CPUs on this machine, in their own temp folder; stopped by process."""

    def __init__(self, nodes: int, cpus: int):
        self.folder = tempfile.mkdtemp(prefix="rb-", dir="/tmp")  # short: Ray's unix sockets live under it
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # a throwaway cluster on this machine only
        node = ["--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus), "--object-store-memory",
                str(150 * 2 ** 20), "--disable-usage-stats"]
        started = time.perf_counter()
        subprocess.run([RAY, "start", "--head", "--port", str(self.port), "--include-dashboard=false", "--temp-dir",
                        self.folder, *node], check=True, capture_output=True, env=env)
        for _ in range(nodes - 1):
            subprocess.run([RAY, "start", "--address", self.address, *node], check=True, capture_output=True, env=env)
        self.start_seconds = time.perf_counter() - started

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        import psutil

        mine = {}
        for process in psutil.process_iter(["cmdline"]):
            if any(self.folder in part for part in (process.info["cmdline"] or [])):
                for member in [process, *process.children(recursive=True)]:
                    mine[member.pid] = member
        for process in mine.values():
            try:
                process.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(list(mine.values()), timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def timed_sweep(seeds: int, store: Path, *, workers: int = 1, address: str | None = None) -> dict:
    from engine import services
    from engine.runner.cluster import ClusterSettings
    from engine.workspace import Workspace

    workspace = Workspace.at(store)
    plan = services.plan(services.read_spec(spec_values(seeds)), workspace)
    cluster = ClusterSettings(backend="ray", ray_address=address) if address else ClusterSettings()
    started = time.perf_counter()
    report = services.run(plan, workspace, workers=workers, device="cpu", cluster=cluster)
    wall = time.perf_counter() - started
    with sqlite3.connect(store) as db:
        trained = db.execute("SELECT count(*), sum(train_seconds) FROM runs WHERE status = 'ok'").fetchone()
    assert report.trained == len(plan.configs) == trained[0], (report, trained)
    return {"runs": trained[0], "wall_seconds": round(wall, 2), "train_seconds": round(trained[1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=str, default="4,12", help="two sweep sizes, in seeds (runs = 3 x seeds)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over every mode and size (medians reported)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    arguments = parser.parse_args()
    small, large = (int(part) for part in arguments.seeds.split(","))
    warnings.filterwarnings("ignore")
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    clusters = {}
    walls: dict[tuple[str, int], list[float]] = {}
    try:
        timed_sweep(1, work / "warm.sqlite")  # imports and first-use costs, outside every figure
        clusters = {"ray-1x2": LocalCluster(1, 2), "ray-2x1": LocalCluster(2, 1)}  # both up, used in turn
        modes = {"local-1": dict(workers=1), "local-2": dict(workers=2),
                 **{name: dict(address=cluster.address) for name, cluster in clusters.items()}}
        for repeat in range(arguments.repeats):  # rounds interleave the modes: the machine's load moves
            for name, where in modes.items():
                for size in (small, large):
                    figure = timed_sweep(size, work / f"{name}-{size}-{repeat}.sqlite", **where)
                    walls.setdefault((name, size), []).append(figure["wall_seconds"])
    finally:
        for cluster in clusters.values():
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    runs = 3 * (large - small)
    print(f"{'mode':8} {'median wall s, ' + str(3 * small) + ' runs':>24} {str(3 * large) + ' runs':>8} "
          f"{'s per run':>10} {'fixed s':>8} {'cluster start s':>16}")
    figures = {}
    for name in modes:
        low, high = statistics.median(walls[name, small]), statistics.median(walls[name, large])
        per_run = (high - low) / runs
        figures[name] = {"walls": {str(3 * small): walls[name, small], str(3 * large): walls[name, large]},
                         "seconds_per_run": round(per_run, 3), "fixed_seconds": round(low - per_run * 3 * small, 2),
                         "cluster_start_seconds": round(clusters[name].start_seconds, 1) if name in clusters else None}
        print(f"{name:8} {low:>24.1f} {high:>8.1f} {per_run:>10.2f} {figures[name]['fixed_seconds']:>8.1f} "
              f"{figures[name]['cluster_start_seconds'] or '-'!s:>16}")
    if arguments.out:
        arguments.out.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()

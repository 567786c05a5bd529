"""The detached process of a background job: trains exactly the planned runs, writing progress events.

    python -m engine.jobs.worker supervise JOB_DIR   runs `run` in a child and records its exit status
    python -m engine.jobs.worker run JOB_DIR         trains plan.json's runs into the store

The supervisor exists so that even a worker that crashes or is killed leaves an exit_code behind, which a
later page rerun cannot wait for. SIGTERM (the dashboard's Cancel) stops the worker like Ctrl-C: finished
runs are kept, the interrupted report is still written.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from engine.config import RunConfig
from engine.errors import EngineError
from engine.jobs.launch import ROOT, write_atomic
from engine.runner.cluster import ClusterSettings
from engine.runner.events import EventLog
from engine.runner.execute import run_plan
from engine.runner.plan import SweepPlan, prepared_data
from engine.runner.ray_backend import trainer_for
from engine.runner.records import open_store
from engine.runner.search import SearchDraw
from engine.runner.spec import spec_from_mapping
from engine import ENGINE_VERSION
from engine.techniques.registry import load_plugins

EXIT_FAILED_RUNS, EXIT_INTERRUPTED = 1, 130


def run(job_dir: Path) -> int:
    events = EventLog(job_dir / "events.jsonl")

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the interrupted sweep write its report
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        planned = json.loads((job_dir / "plan.json").read_text())
        load_plugins(planned["plugins"])
        spec = spec_from_mapping(planned["spec"])
        configs = tuple(RunConfig.from_dict(values) for values in planned["configs"])
        uploads_dir = Path(planned["uploads_dir"])
        data = prepared_data(spec.dataset, spec.train_subsample, uploads_dir)
        run_ids = tuple(config.cache_key(data.fingerprint, ENGINE_VERSION) for config in configs)
        if data.fingerprint != planned["fingerprint"] or list(run_ids) != planned["run_ids"]:
            raise EngineError(f"The data of {spec.dataset} or the engine changed since this sweep was planned: "
                              "launch it again.")
        search = planned.get("search")
        draw = None if search is None else SearchDraw(search["search_id"], search["mean_trials"],
                                                      tuple(c for c in configs if c.search == search["search_id"]))
        plan = SweepPlan(spec=spec, configs=configs, run_ids=run_ids, cached_ids=frozenset(), n_train=data.n_train,
                         fingerprint=data.fingerprint, data=data, search=draw)
        cluster = ClusterSettings.from_values(planned.get("cluster") or {})  # jobs from before: this machine
        events.write("planned", total=len(configs))
        with open_store(planned["store"]) as store:
            report = run_plan(plan, store=store, uploads_dir=uploads_dir, workers=planned["workers"],
                              device=cluster.driver_device(planned["device"]), on_progress=events,
                              trainer=trainer_for(cluster))
    except EngineError as exc:
        events.write("ended", error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    events.write("ended", trained=report.trained, cached=report.cached, failed=report.failed,
                 elsewhere=report.elsewhere, interrupted=report.interrupted)
    print(f"done: {report.trained} trained, {report.cached} cached, {report.elsewhere} trained by another sweep, "
          f"{report.failed} failed"
          f"{' (interrupted)' if report.interrupted else ''}")
    return EXIT_INTERRUPTED if report.interrupted else EXIT_FAILED_RUNS if report.failed else 0


def supervise(job_dir: Path) -> int:
    child = subprocess.Popen([sys.executable, "-m", "engine.jobs.worker", "run", str(job_dir)], cwd=ROOT)

    def forward(signum, frame):  # a SIGTERM to this process alone still stops the sweep cleanly
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    code = child.wait()
    write_atomic(job_dir / "exit_code", f"{code}\n")
    return code


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("run", "supervise"):
        sys.exit("usage: python -m engine.jobs.worker (run|supervise) JOB_DIR")
    sys.exit((run if sys.argv[1] == "run" else supervise)(Path(sys.argv[2])))

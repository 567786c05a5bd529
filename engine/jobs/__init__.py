"""Sweeps as background jobs: the dashboard plans a sweep, launches it detached, and reads its progress back.

A job is a folder in the workspace's jobs folder, `<store folder>/jobs/<job_id>/`:

    plan.json     the planned runs (spec, configs, run ids, data fingerprint): the worker trains exactly these
    job.json      job_id, pid, pgid, started_at, store, dataset, runs (run_id + label), cached_ids, workers, device
    events.jsonl  progress events written by the worker (engine.runner.events): planned, started, finished, ...
    log.txt       the worker's stdout and stderr (shown when it fails; never parsed)
    exit_code     the worker's exit status, written by its supervisor when it exits
    cancelled     written by cancel_job

launch.py starts and cancels jobs, worker.py is the detached process, progress.py reads a job's state from
these files and the process table, estimate.py says roughly how long a plan takes.
"""

"""Auditing a stored run: load its data, answer from the store when the same audit exists, else run and record it.

The audit reads the private training rows (it trains on them and scores them): its figures describe the data,
not only the model, so they stay in the store for internal review and leave it only when a user includes them
in an export. While an audit runs its record says `running` and its parts (plan, finished models) are kept so
an interrupted audit resumes; when it ends the parts are dropped and only the figures remain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.audit.figures import AuditFigures
from engine.audit.run import AuditProgressCallback, run_audit
from engine.audit.settings import AuditSettings, audit_id
from engine.config import RunConfig
from engine.errors import ConfigError, EngineError
from engine.measure import resolve_device
from engine.runner.plan import prepared_data
from engine.runner.records import versions
from engine.runner.store import ResultStore


@dataclass(frozen=True)
class AuditOutcome:
    record: dict[str, Any]  # the audits row
    cached: bool  # answered from the store

    @property
    def figures(self) -> AuditFigures:
        return AuditFigures.from_dict(self.record["figures"])

    @property
    def breach(self) -> bool:
        return bool(self.record.get("breach"))


def _record(aid: str, run: dict, settings: AuditSettings, status: str, *, figures: AuditFigures | None = None,
            error: str | None = None) -> dict[str, Any]:
    return {"audit_id": aid, "run_id": run["run_id"], "point_id": run.get("point_id"), "dataset": run["dataset"],
            "technique": run["technique"], "attack": settings.attack, "settings": settings.to_dict(), "status": status,
            "error": error, "epsilon": figures.epsilon if figures else None,
            "epsilon_lower_bound": figures.lower_bound.epsilon if figures else None,
            "breach": int(figures.breach) if figures else None, "figures": figures.to_dict() if figures else None,
            "versions": versions(), "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}


def audit_stored_run(store: ResultStore, run_id: str, settings: AuditSettings, *, uploads_dir: Path | None,
                     device: str = "auto", on_progress: AuditProgressCallback | None = None) -> AuditOutcome:
    """Audit the stored run `run_id` (cached by the audit's id; an interrupted rmia/lira audit resumes)."""
    run = store.get(run_id)
    if run is None:
        raise ConfigError(f"No run {run_id!r} in {store.path}: list runs with `frontier results`.")
    if run["status"] != "ok":
        raise ConfigError(f"Run {run_id} failed ({run['error']}): audit a successful run.")
    config = RunConfig.from_dict(run["config"])
    data = prepared_data(config.dataset, config.train_subsample, uploads_dir)
    if data.fingerprint != run.get("dataset_fingerprint"):
        raise ConfigError(f"The data of {config.dataset} changed since run {run_id} was trained: audit a run of the "
                          "current data (rerun the sweep first).")
    resolved = settings.resolve(data.n_train)
    aid = audit_id(run_id, resolved)
    done = [record for record in store.audits(audit_id=aid) if record["status"] == "ok"]
    if done:
        return AuditOutcome(done[-1], cached=True)
    store.write_audit(_record(aid, run, resolved, "running"))
    try:
        figures = run_audit(aid, config, data, resolved, device=resolve_device(device), noise_cache=store, parts=store,
                            on_progress=on_progress)
    except KeyboardInterrupt:
        store.write_audit(_record(aid, run, resolved, "interrupted", error="interrupted: rerun to resume"))
        raise
    except Exception as exc:
        detail = str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
        store.write_audit(_record(aid, run, resolved, "failed", error=detail))
        raise
    figures.extra["run_epsilon"] = run.get("epsilon")
    record = _record(aid, run, resolved, "ok", figures=figures)
    store.write_audit(record)
    store.drop_audit_parts(aid)  # scores of the private rows: not kept once the figures are recorded
    return AuditOutcome(record, cached=False)

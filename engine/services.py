"""What the dashboard pages and the CLI call: one function per thing a user does.

A sweep is planned once (`plan`) and the plan handed on: to `estimate`, to `run` (in this process, the CLI)
or to `launch` (a background job the dashboard follows). Every function takes the Workspace it works in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from engine import ENGINE_VERSION
from engine.analysis.audits import AuditFinding, audit_finding as find_audit
from engine.analysis.decide import DecisionSummary, summarise_decision
from engine.audit.records import AuditOutcome, audit_stored_run
from engine.audit.run import AuditProgressCallback
from engine.audit.settings import AuditSettings
from engine.analysis.frontier import numeric_runs
from engine.config import RunConfig, SweepReport, SweepSpec
from engine.data import DatasetInfo, get_dataset_info
from engine.data.uploads.inspect import inspect_csv
from engine.data.uploads.register import register_upload
from engine.data.uploads.schema import UploadSchema, schema_of, upload_spec
from engine.data.uploads.validate import slugify
from engine.errors import ConfigError, EngineError
from engine.jobs import launch as job_launch
from engine.jobs import progress as job_progress
from engine.jobs.estimate import SweepEstimate, estimate_plan
from engine.present.audit import released_finding
from engine.present.report import ExportBundle, build_export
from engine.runner.events import ProgressCallback
from engine.runner.artefacts import artefact_path
from engine.runner.cluster import ClusterSettings
from engine.runner.execute import run_plan
from engine.runner.ray_backend import trainer_for
from engine.runner.plan import SweepPlan, expand, plan_sweep, prepared_data, spec_for_run
from engine.runner.search import search_scopes
from engine.runner.records import open_store
from engine.runner.spec import spec_from_mapping
from engine.runner.store import CORE_COLUMNS, ResultStore, store_signature
from engine.techniques.metrics import decision_objective
from engine.workspace import Workspace


# --- sweeps -----------------------------------------------------------------------------------------------
def read_spec(values: Mapping[str, Any]) -> SweepSpec:
    """A strict SweepSpec from plain values (YAML, flags, a form)."""
    return spec_from_mapping(values)


def plan(spec: SweepSpec, workspace: Workspace) -> SweepPlan:
    """Every check that can be made before training, and what the store already holds. Never creates it."""
    store = ResultStore(workspace.store_path, create=False) if workspace.store_path.exists() else None
    try:
        return plan_sweep(spec, uploads_dir=workspace.uploads_dir, store=store)
    finally:
        if store is not None:
            store.close()


def estimate(sweep_plan: SweepPlan, workspace: Workspace, *, workers: int = 1, device: str = "auto") -> SweepEstimate:
    """How long the plan's missing runs take on `device`: from the store's runs like them, else measured on this
    machine (a few real steps, kept in the workspace's timings file)."""
    return estimate_plan(sweep_plan, workspace, workers=workers, device=device)


def run(sweep_plan: SweepPlan, workspace: Workspace, *, workers: int = 1, device: str = "auto",
        on_progress: ProgressCallback | None = None, cluster: ClusterSettings = ClusterSettings()) -> SweepReport:
    """Train the plan's missing runs in this process (and its workers, or as tasks on a Ray cluster), storing each
    as it ends."""
    cluster.check(device)
    with open_store(workspace.store_path) as store:
        return run_plan(sweep_plan, store=store, uploads_dir=workspace.uploads_dir, workers=workers,
                        device=cluster.driver_device(device),
                        on_progress=on_progress, trainer=trainer_for(cluster))


def launch(sweep_plan: SweepPlan, workspace: Workspace, *, workers: int = 1, device: str = "auto",
           cluster: ClusterSettings = ClusterSettings()) -> str:
    """Train the plan in a background job; returns its id (see latest_job, cancel)."""
    cluster.check(device)
    return job_launch.start_job(sweep_plan, workspace, workers=workers, device=device, cluster=cluster)


def latest_job(workspace: Workspace) -> job_progress.JobStatus | None:
    job_launch.reap_children()
    return job_progress.latest_job(workspace)


def active_job(workspace: Workspace) -> job_progress.JobStatus | None:
    job_launch.reap_children()
    return job_progress.active_job(workspace)


def job_status(job_id: str, workspace: Workspace) -> job_progress.JobStatus:
    job_launch.reap_children()
    return job_progress.job_status(job_id, workspace)


def list_jobs(workspace: Workspace, *, limit: int | None = None) -> list[job_progress.JobStatus]:
    return job_progress.list_jobs(workspace, limit=limit)


def cancel(job_id: str, workspace: Workspace, **options) -> job_progress.JobStatus:
    return job_launch.cancel_job(job_id, workspace, **options)


# --- uploads (the Data page registers through the same engine functions, engine.data.uploads) -------------
def upload(raw: bytes, filename: str, schema: UploadSchema, workspace: Workspace, *,
           replace: bool = False) -> DatasetInfo:
    """Register a CSV as `schema` declares (its name, else one made from the file name). A schema carrying a
    fingerprint (an export's) refuses, writing nothing, a file that prepares to another table."""
    inspection = inspect_csv(raw, filename)
    spec = upload_spec(schema, inspection, schema.name or slugify(filename))
    return register_upload(raw, inspection, spec, uploads_dir=workspace.uploads_dir, replace=replace,
                           expected_fingerprint=schema.fingerprint)


def check_upload(schema: UploadSchema, dataset: str, workspace: Workspace, source: str = "the config") -> None:
    """Before a sweep of an exported config: its upload is in this store and holds the table it was exported
    from. Otherwise a one-line error saying how to register it (a sweep must never train on other data)."""
    if schema.name != dataset or schema.fingerprint is None:
        raise ConfigError(f"{source}: its upload section must name the sweep's dataset {dataset!r} and carry its "
                          f"fingerprint (got name {schema.name!r}): export the run again with `frontier export`.")
    register = f"frontier upload FILE.csv --schema {source} --store {workspace.store_path}"
    try:
        info = get_dataset_info(dataset, workspace.uploads_dir)
    except ConfigError:
        raise ConfigError(f"{source} trains on the upload {dataset!r} (fingerprint {schema.fingerprint}), which is "
                          f"not in {workspace.uploads_dir}: register the same CSV first: {register}") from None
    if info.fingerprint != schema.fingerprint:
        raise ConfigError(f"The upload {dataset!r} in {workspace.uploads_dir} holds another table than {source} was "
                          f"exported from: expected fingerprint {schema.fingerprint}, found {info.fingerprint}. "
                          f"Register the original CSV: {register} --replace")


# --- reading results ----------------------------------------------------------------------------------------
def read_runs(workspace: Workspace) -> pd.DataFrame:
    """Every run as a DataFrame, numeric columns as floats; empty when there is no store yet (never creates one)."""
    if not workspace.store_path.exists():
        return numeric_runs(pd.DataFrame(columns=[column.name for column in CORE_COLUMNS]))
    with ResultStore(workspace.store_path, create=False) as store:
        return numeric_runs(store.dataframe())


def runs_signature(workspace: Workspace) -> tuple:
    """Changes whenever a run is written: a cache key for whoever keeps read_runs' answer."""
    return store_signature(workspace.store_path)


def records(workspace: Workspace, **filters) -> list[dict[str, Any]]:
    with ResultStore(workspace.store_path, create=False) as store:
        return store.records(**filters)


def synthetic_table(workspace: Workspace, run_id: str) -> tuple[Path, dict[str, Any]]:
    """The stored synthetic table of a dp-synthetic run (gzipped CSV beside the store) and the run's record."""
    found = records(workspace, run_ids=[run_id]) if workspace.store_path.exists() else []
    if not found:
        raise ConfigError(f"No run {run_id!r} in {workspace.store_path}: pick one from `frontier results`.")
    record = found[0]
    if record.get("technique") != "dp-synthetic" or record.get("status") != "ok":
        raise ConfigError(f"Run {run_id} is a {record.get('status')} {record.get('technique')} run: only successful "
                          "dp-synthetic runs make a synthetic table.")
    path = artefact_path(workspace.folder, "synthetic", run_id)
    if not path.exists():
        raise ConfigError(f"The synthetic table of run {run_id} is not at {path} (the store was moved without its "
                          "folder?): move it back, or train the run again in a fresh store.")
    return path, record


def verify(workspace: Workspace, dataset: str | None = None):
    """Every private run's epsilon and each dataset's composition, recomputed independently (dp-accounting)."""
    from engine.analysis.verify import verify_records

    with ResultStore(workspace.store_path, create=False) as store:
        records = store.records(dataset=dataset)
    names = {record.get("dataset") for record in records}
    return verify_records(records, extra_releases={name: preprocessing_releases(workspace, name) for name in names})


def preprocessing_releases(workspace: Workspace, dataset: str) -> list[tuple[str, float, float]]:
    """DP releases a table's preparation made on its rows (an upload's DP bounds): part of every composition."""
    try:
        info = get_dataset_info(dataset, workspace.uploads_dir)
    except ConfigError:
        return []  # a dataset no longer in the catalogue: its runs still compose
    releases = []
    for which, spent in (("", info.preprocessing_privacy), *(("a replaced version's ", earlier)
                                                          for earlier in info.earlier_preprocessing)):
        if spent and spent.get("epsilon"):
            releases.append((f"{which}DP preprocessing (the table's bounds and categories)", float(spent["epsilon"]),
                             float(spent.get("delta") or 0.0)))
    return releases


def searches(workspace: Workspace) -> dict[str, float]:
    """Random searches one can choose within: id -> mean number of trials (one per target epsilon of a draw)."""
    if not workspace.store_path.exists():
        return {}
    with ResultStore(workspace.store_path, create=False) as store:
        return _search_scopes(store)


def _search_scopes(store: ResultStore) -> dict[str, float]:
    return search_scopes({identifier: (mean, store.get_search(identifier) or [])
                          for identifier, mean in store.search_means().items()})


def decide(workspace: Workspace, run_id: str, metric: str = "accuracy", scope: str | None = None) -> DecisionSummary:
    """The numbers behind choosing `run_id`'s point among the runs of `scope` (None: every run on its dataset;
    else a random search's id), and the figure that covers releasing it."""
    with ResultStore(workspace.store_path, create=False) as store:
        runs = store.dataframe()
        record = store.get(run_id)
        dataset = record["dataset"] if record else None
        return summarise_decision(runs, store.records(dataset=dataset), run_id, metric, scope=scope,
                                  search_means=_search_scopes(store),
                                  extra_releases=preprocessing_releases(workspace, dataset) if dataset else ())


# --- audits (they read the private data: their figures stay out of exports unless included) -------------
def audit(workspace: Workspace, run_id: str, settings: AuditSettings = AuditSettings(), *, device: str = "auto",
          on_progress: AuditProgressCallback | None = None) -> AuditOutcome:
    """Attack the stored run `run_id` and record the audit (answered from the store when it exists)."""
    with open_store(workspace.store_path, create=False) as store:
        return audit_stored_run(store, run_id, settings, uploads_dir=workspace.uploads_dir, device=device,
                                on_progress=on_progress)


def read_audits(workspace: Workspace) -> list[dict[str, Any]]:
    """Every audit record (none when there is no store yet)."""
    if not workspace.store_path.exists():
        return []
    with ResultStore(workspace.store_path, create=False) as store:
        return store.audits()


def audit_finding(workspace: Workspace, run_id: str) -> AuditFinding | None:
    """What the audits say about `run_id`'s point and about the same model trained without privacy."""
    return find_audit(read_runs(workspace), read_audits(workspace), run_id)


def default_metric(workspace: Workspace, datasets) -> str:
    """The metric that fits the labels of `datasets`: accuracy only when every one is declared balanced."""
    objectives = set()
    for name in datasets:
        try:
            objectives.add(decision_objective(get_dataset_info(name, workspace.uploads_dir)))
        except EngineError:  # an upload deleted since its runs: its label's balance is no longer known
            objectives.add("balanced_accuracy")
    return objectives.pop() if len(objectives) == 1 else "balanced_accuracy"


def export(workspace: Workspace, run_id: str, metric: str | None = None,
           summary: DecisionSummary | None = None, include_audit: bool = False, pdf: bool = False) -> ExportBundle:
    """config.yaml reproducing `run_id`, the report around it and the decision record (decision.json); `summary`
    reuses a decide() already made. The report and the record carry the audit's figures only with `include_audit`
    (a breach is always flagged). `pdf`: also the report with PNG charts, for printing (engine.present.pdf)."""
    with ResultStore(workspace.store_path, create=False) as store:
        record = store.get(run_id)
        if record is None:
            raise ConfigError(f"No run {run_id!r} in {store.path}: list runs with `frontier results`.")
        if record["status"] != "ok":
            raise ConfigError(f"Run {run_id} failed ({record['error']}): export a successful run.")
        runs = store.dataframe(dataset=record["dataset"])
        metric = metric or default_metric(workspace, [record["dataset"]])
        if summary is None and record.get("epsilon") is not None:
            summary = summarise_decision(runs, store.records(dataset=record["dataset"]), run_id, metric,
                                         search_means=_search_scopes(store),
                                         extra_releases=preprocessing_releases(workspace, record["dataset"]))
    config = RunConfig.from_dict(record["config"])
    info = get_dataset_info(config.dataset, workspace.uploads_dir)
    spec = spec_for_run(config, info)
    data = prepared_data(config.dataset, config.train_subsample, workspace.uploads_dir)
    # What the exported spec trains (a record from an older engine may have named another model) is this run?
    reproduces = expand(spec, info)[0].cache_key(data.fingerprint, ENGINE_VERSION) == run_id
    finding = audit_finding(workspace, run_id)
    # An upload travels as its schema (declared values and the table's fingerprint, never rows or row statistics).
    carried = schema_of(info).to_mapping() if info.origin == "uploaded" else None
    decision = decision_record(workspace, run_id, metric, summary=summary, include_audit=include_audit)
    return build_export(record, spec.to_mapping(), runs, info, reproduces=reproduces, summary=summary, metric=metric,
                        audit=released_finding(finding, include_audit), upload_schema=carried, decision=decision,
                        printable=pdf)


# --- the decision record and the privacy gate (issue 15; engine/gate) ---------------------------------------
def decision_record(workspace: Workspace, run_id: str, metric: str | None = None, scope: str | None = None, *,
                    summary: DecisionSummary | None = None, include_audit: bool = False) -> dict[str, Any]:
    """decision.json of choosing `run_id` (within `scope`, as decide()): its figures, the releases they compose,
    the audit's verdict (its figures only with `include_audit`), the registry entry, with a content hash."""
    from engine.gate.record import build_decision_record

    with ResultStore(workspace.store_path, create=False) as store:
        record = store.get(run_id)
        if record is None or record["status"] != "ok":
            raise ConfigError(f"No successful run {run_id!r} in {store.path}: list runs with `frontier results`.")
        same_data = store.records(dataset=record["dataset"])
        metric = metric or default_metric(workspace, [record["dataset"]])
        extra = preprocessing_releases(workspace, record["dataset"])
        if summary is None and record.get("epsilon") is not None:
            summary = summarise_decision(store.dataframe(dataset=record["dataset"]), same_data, run_id, metric,
                                         scope=scope, search_means=_search_scopes(store), extra_releases=extra)
    return build_decision_record(record, get_dataset_info(record["dataset"], workspace.uploads_dir), metric=metric,
                                 summary=summary, same_data=same_data, extra_releases=extra,
                                 audit=audit_finding(workspace, run_id), include_audit=include_audit)


def exported_run(workspace: Workspace, values: Mapping[str, Any], upload_section: Any, source: str) -> str:
    """The run id an exported config.yaml trains, which this store must hold (else: how to retrain it)."""
    from engine.data.uploads.schema import read_schema

    spec = read_spec(values)
    if upload_section is not None:
        check_upload(read_schema(upload_section, f"{source} (upload:)"), spec.dataset, workspace, source)
    planned = plan(spec, workspace)
    if len(planned.run_ids) != 1:
        raise ConfigError(f"{source} plans {len(planned.run_ids)} runs: give the config.yaml `frontier export` wrote "
                          "for one run.")
    if planned.run_ids[0] not in planned.cached_ids:
        raise ConfigError(f"{source} trains run {planned.run_ids[0]}, which {workspace.store_path} does not hold: "
                          f"retrain it first: frontier sweep --config {source} --store {workspace.store_path}")
    return planned.run_ids[0]


def gate(workspace: Workspace, policy, *, run_id: str | None = None, record: Any = None, source: str = "",
         filed: bool = True):
    """Every rule of `policy` (engine.gate.policy.GatePolicy) on a stored run, or on a decision record (`record`,
    read from `source`; `filed`: its hash is checked); the figures recomputed with dp-accounting, the table
    rescanned."""
    from engine.gate.check import check_record_shape, gate_record

    if record is not None:
        return gate_record(policy, check_record_shape(record, source), uploads_dir=workspace.uploads_dir,
                           source=f"decision record {source}", filed=filed)
    if not workspace.store_path.exists():
        raise ConfigError(f"No result store at {workspace.store_path}: run `frontier sweep` first or pass --store.")
    scope = None
    if policy.release_basis == "random-search":  # the model was chosen within its random search: claim that figure
        with ResultStore(workspace.store_path, create=False) as store:
            scope = (store.get(run_id) or {}).get("search")
    decision = decision_record(workspace, run_id, policy.metric, scope, include_audit=True)
    return gate_record(policy, decision, uploads_dir=workspace.uploads_dir,
                       source=f"run {run_id} in {workspace.store_path}")

"""The decision record (decision.json): what a compliance team files beside the report, and what `frontier gate
--record` checks.

It holds the chosen configuration, the dataset's fingerprint and schema (each training column's bounds and where
they came from), the run's epsilon, delta and accountant with the mechanism's recorded parameters, every private
release on the same rows (so that the composed figure can be recomputed from the record alone), the random
search's trials behind a tuning-aware figure, the audit's verdict, the trivial and baseline references, library
versions, an epsilon-registry entry and blank sign-off fields. `content_hash` is the sha256 of the canonical JSON
(sorted keys, no spaces, UTF-8) of the evidence: everything but `content_hash` and `sign_off`. Any change to the
evidence changes it; filling the sign-off fields in the filed copy does not, so a signature names the hash of what
was signed and the signed copy still passes `frontier gate --record`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterable

from engine import ENGINE_VERSION
from engine.analysis.reference import trivial_value
from engine.data import DatasetInfo
from engine.present.registry import registry_entry
from engine.privacy.composition import ACCOUNTANT_NAME as COMPOSITION_ACCOUNTANT, run_mechanism
from engine.privacy.tuning import ACCOUNTANT_NAME as TUNING_ACCOUNTANT

RECORD_KIND = "privacy-frontier decision record"
RECORD_FORMAT = 1
HASH_FIELD = "content_hash"
SIGN_OFF_FIELD = "sign_off"  # filled in by people after the export: outside the hash
SIGN_OFF = {"decided_by": "", "role": "", "decided_at": "", "approved_by": "", "approved_at": "", "notes": ""}


def _plain(value: Any) -> Any:
    """JSON-ready: NaN and infinities as null, numpy scalars as Python numbers, tuples as lists."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def canonical_json(record: dict[str, Any]) -> bytes:
    body = {key: value for key, value in record.items() if key not in (HASH_FIELD, SIGN_OFF_FIELD)}
    return json.dumps(_plain(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def content_hash(record: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(record)).hexdigest()


def with_hash(record: dict[str, Any]) -> dict[str, Any]:
    record = _plain({key: value for key, value in record.items() if key != HASH_FIELD})
    return {**record, HASH_FIELD: content_hash(record)}


def mechanism(record: dict[str, Any]) -> dict[str, Any] | None:
    """A run's mechanism by its recorded parameters (None: no privacy)."""
    found = run_mechanism(record)
    if found is None:
        return None
    key = found[1]
    if key[0] == "gaussian":
        return {"kind": "subsampled_gaussian", "noise_multiplier": key[1], "sampling_rate": key[2], "steps": key[3]}
    if key[0] == "zcdp":
        return {"kind": "zcdp", "rho": key[1]}
    return {"kind": "dp", "epsilon": key[1], "delta": key[2]}


def releases_on_data(records: Iterable[dict[str, Any]], extra_releases=()) -> list[dict[str, Any]]:
    """Every private release on the rows, grouped by mechanism: one subsampled Gaussian per (noise, rate) with
    the total of its steps, one (epsilon, delta) release per value with its count, every zCDP release as one of
    their summed rho; the table's DP preprocessing."""
    gaussian, generic, runs = Counter(), Counter(), Counter()
    zcdp_rho, zcdp_runs = 0.0, 0
    for record in records:
        if record.get("status") != "ok" or (found := mechanism(record)) is None:
            continue
        if found["kind"] == "subsampled_gaussian":
            key = (found["noise_multiplier"], found["sampling_rate"])
            gaussian[key] += found["steps"]
            runs[key] += 1
        elif found["kind"] == "zcdp":
            zcdp_rho, zcdp_runs = zcdp_rho + found["rho"], zcdp_runs + 1
        else:
            generic[(found["epsilon"], found["delta"], "run")] += 1
    for what, epsilon, delta in extra_releases:
        generic[(float(epsilon), float(delta), what)] += 1
    return ([{"kind": "subsampled_gaussian", "noise_multiplier": noise, "sampling_rate": rate, "steps": steps,
              "runs": runs[(noise, rate)]} for (noise, rate), steps in sorted(gaussian.items())]
            + [{"kind": "dp", "epsilon": epsilon, "delta": delta, "count": count, "what": what}
               for (epsilon, delta, what), count in sorted(generic.items())]
            + ([{"kind": "zcdp", "rho": zcdp_rho, "runs": zcdp_runs}] if zcdp_runs else []))


def _schema(info: DatasetInfo, run: dict[str, Any]) -> list[dict[str, Any]]:
    derived, estimated = set(run.get("data_derived_bounds") or ()) | set(info.data_derived_columns), \
        set(info.dp_estimated_columns)

    def source(name: str) -> str:
        return "data" if name in derived else "dp" if name in estimated else "public"

    columns = [{"name": name, "kind": "numeric", "bounds": spec.get("bounds"), "source": source(name)}
               for name, spec in info.numeric.items()]
    columns += [{"name": name, "kind": "categorical", "categories": list(values), "source": source(name)}
                for name, values in info.categorical.items()]
    columns += [{"name": name, "kind": "numeric", "bounds": None, "source": "data"}
                for name in sorted(derived - set(info.numeric) - set(info.categorical))]
    return columns


def _audit(finding, include_figures: bool) -> dict[str, Any] | None:
    if finding is None:
        return None
    figures = finding.figures
    audit = {"attack": finding.attack, "white_box": finding.white_box, "breach": bool(figures.breach),
             "audited_epsilon": figures.epsilon, "figures_included": include_figures}
    if include_figures:
        audit.update(epsilon_lower_bound=figures.lower_bound.epsilon,
                     confidence=figures.lower_bound.confidence, auc=figures.auc.value)
    return audit


def _utility(run: dict[str, Any], summary, metric: str) -> dict[str, Any]:
    if summary is not None:
        values = {"test_mean": summary.metric_mean, "test_std": summary.metric_std,
                  "validation_mean": summary.validation_mean, "seeds": summary.seeds, "trivial": summary.trivial,
                  "baseline_mean": summary.baseline_mean, "baseline_std": summary.baseline_std}
    else:
        n_classes = int(run.get("n_classes") or 2)
        values = {"test_mean": run.get(metric), "test_std": None, "validation_mean": run.get(f"val_{metric}"),
                  "seeds": 1, "trivial": trivial_value(metric, run, n_classes, "test"), "baseline_mean": None,
                  "baseline_std": None}
    margin = None if values["trivial"] is None or values["test_mean"] is None else values["test_mean"] - values["trivial"]
    return {"metric": metric, "split": "test", **values, "margin_over_trivial": margin,
            "covered_by_epsilon": False}


def _privacy(run: dict[str, Any], summary, same_data, extra_releases) -> dict[str, Any]:
    own = mechanism(run)
    privacy = {"private": own is not None, "epsilon": run.get("epsilon"), "target_epsilon": run.get("target_epsilon"),
               "delta": run.get("delta"), "accountant": run.get("accountant"), "mechanism": own,
               "privacy_unit": run.get("privacy_unit") or ("record" if own else "none"),
               "trust_model": run.get("trust_model")}
    if summary is None:
        return privacy
    composition = summary.composition
    privacy.update(point_epsilon=summary.epsilon, composed={
        "epsilon": composition.epsilon, "delta": composition.delta, "accountant": composition.accountant,
        "runs": composition.n_private, "releases": releases_on_data(same_data, extra_releases)})
    privacy["tuning_aware"] = None
    if summary.scope is not None and summary.tuning_epsilon is not None:
        trials = [r for r in same_data if r.get("search") == summary.scope]
        extra_delta = sum(float(d) for _, _, d in extra_releases)
        privacy["tuning_aware"] = {
            "epsilon": summary.tuning_epsilon, "search": summary.scope, "mean_trials": summary.search_trials,
            "delta": composition.delta - extra_delta, "preprocessing_epsilon": summary.preprocessing_epsilon,
            "preprocessing_delta": extra_delta,
            "accountant": TUNING_ACCOUNTANT,
            "trial_mechanisms": [dict(m) for m in {json.dumps(mechanism(r), sort_keys=True): mechanism(r)
                                                   for r in trials if r.get("status") == "ok" and mechanism(r)}.values()]}
    random_search = summary.headline_basis == "random search"
    privacy.update(release_epsilon=summary.headline_epsilon, release_delta=composition.delta,
                   release_basis=summary.headline_basis,
                   release_accountant=TUNING_ACCOUNTANT if random_search else COMPOSITION_ACCOUNTANT,
                   preprocessing_epsilon=summary.preprocessing_epsilon, composed_runs=composition.n_private)
    return privacy


def build_decision_record(run: dict[str, Any], info: DatasetInfo, *, metric: str, summary=None,
                          same_data: list[dict[str, Any]] = (), extra_releases=(), audit=None,
                          include_audit: bool = False) -> dict[str, Any]:
    """The decision record of choosing `run` (its store record); `summary`: the DecisionSummary (None for a
    non-private run); `same_data`: every record on the dataset; `audit`: the AuditFinding of its point, whose
    figures (computed on the private rows) are carried only with `include_audit` (its verdict always)."""
    dataset = {"name": info.name, "title": info.title, "origin": info.origin,
               "fingerprint": run.get("dataset_fingerprint"), "rows_train": run.get("n_train"),
               "label": info.label.get("column"), "train_subsample": run.get("train_subsample"),
               "columns": _schema(info, run), "data_derived_bounds": list(run.get("data_derived_bounds") or ()),
               "dropped_as_identifiers": list(info.identifier_columns)}
    privacy = _privacy(run, summary, list(same_data), list(extra_releases))
    record = {
        "kind": RECORD_KIND, "format": RECORD_FORMAT,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "engine_version": ENGINE_VERSION,
        "run_id": run["run_id"], "technique": run.get("technique"), "model": run.get("model"),
        "configuration": run.get("config") or {}, "dataset": dataset, "privacy": privacy,
        "utility": _utility(run, summary, metric), "audit": _audit(audit, include_audit),
        "versions": run.get("versions") or {},
        "registry_entry": registry_entry(run, dataset, privacy) if summary is not None else None,
        SIGN_OFF_FIELD: dict(SIGN_OFF),
    }
    return with_hash(record)

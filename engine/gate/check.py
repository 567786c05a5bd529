"""Gate one decision record: recompute its figures at the policy's delta, rescan its training table, run every
rule. The record comes from the store (services.decision_record) or from a filed decision.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.gate.policy import GatePolicy
from engine.gate.recompute import recompute
from engine.gate.record import HASH_FIELD, RECORD_KIND, content_hash
from engine.gate.report import GateOutcome
from engine.gate.rules import Evidence, check
from engine.gate.scan import scan_training_columns

REQUIRED = ("run_id", "technique", "dataset", "privacy", "utility", "versions")


def check_record_shape(record: Any, source: str) -> dict[str, Any]:
    """A filed record must be a decision record: one line naming what is missing otherwise (exit 2)."""
    if not isinstance(record, dict) or record.get("kind") != RECORD_KIND:
        raise ConfigError(f"{source} is not a decision record (no \"kind\": \"{RECORD_KIND}\"): give the "
                          "decision.json that `frontier export` wrote.")
    missing = [key for key in REQUIRED if not isinstance(record.get(key), (dict, str))]
    if missing:
        raise ConfigError(f"{source} lacks {', '.join(missing)}: give the decision.json that `frontier export` wrote.")
    return record


def gate_record(policy: GatePolicy, record: dict[str, Any], *, uploads_dir: Path | None, source: str,
                filed: bool = False) -> GateOutcome:
    """Every rule of `policy` on `record`; `filed`: a decision.json read from a file, whose hash is checked."""
    try:
        hash_holds = record.get(HASH_FIELD) == content_hash(record) if filed else None
        evidence = Evidence(record=record, recomputed=recompute(record, policy.delta),
                            identifiers=scan_training_columns(record["dataset"]["name"], uploads_dir),
                            hash_holds=hash_holds)
        results = tuple(check(policy, evidence))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if not filed or isinstance(exc, ConfigError):
            raise
        # A hand-edited record missing a field or holding a wrong type: bad input, not a failed rule.
        raise ConfigError(f"{source} is not a complete decision record ({type(exc).__name__}: {exc}): give the "
                          "decision.json that `frontier export` wrote.") from None
    return GateOutcome(source=source, run_id=record["run_id"], policy=policy, recomputed=evidence.recomputed,
                       results=results, content_hash=record.get(HASH_FIELD))

"""What a gate policy declares, read strictly: an unknown key, a wrong type or an impossible value is one line
saying which key and how to fix it (exit code 2 on the command line), never a silent default.

A key left out is a rule not checked, except the four that guard the guarantee itself (a private run, secret
noise, no data-derived bounds, no identifier-like columns), which hold unless the policy allows otherwise.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from engine.config import ACCOUNTANTS
from engine.privacy.zcdp import ACCOUNTANT as ZCDP_ACCOUNTANT
from engine.errors import ConfigError

METRICS = ("accuracy", "balanced_accuracy", "roc_auc")
PURE_DP_ACCOUNTANT = "pure"  # diffprivlib's epsilon-DP runs (engine.techniques.base.PURE_DP_ACCOUNTANT)
RELEASE_BASES = ("composition", "random-search")
DEFAULT_DELTA = 1e-5
DEFAULT_TOLERANCE = 0.03  # PRV's numerical error is ~1% of epsilon; 3% flags a real understatement


@dataclass(frozen=True)
class GatePolicy:
    """The limits a chosen run must meet. None: that rule is not part of the policy."""

    delta: float = DEFAULT_DELTA  # every epsilon is read at this delta; the run's own delta may not exceed it
    max_epsilon: float | None = None  # the chosen run's own epsilon, recomputed with dp-accounting
    accountants: tuple[str, ...] | None = None  # the accountants the run may have been calibrated with
    max_release_epsilon: float | None = None  # what covers releasing it: every private run on the data composed
    release_basis: str = "composition"  # or random-search: the model was chosen within its random search
    metric: str | None = None  # None: the decision's own metric
    min_metric: float | None = None  # on the test rows, pooled over the point's seeds
    min_margin_over_trivial: float | None = None  # metric minus always-the-commonest-class's, on the test rows
    require_private: bool = True
    require_secret_noise: bool = True
    allow_data_derived_bounds: bool = False
    allow_identifier_columns: bool = False
    require_audit: bool = False
    max_audit_lower_bound: float | None = None  # the audit's measured epsilon lower bound must also stay below this
    versions: dict[str, str] = field(default_factory=dict)  # library -> allowed versions ("==1.6.0", ">=2.13,<3")
    epsilon_tolerance: float = DEFAULT_TOLERANCE  # how far below the recomputed figure a stored epsilon may lie

    def to_mapping(self) -> dict[str, Any]:
        values = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is None or (item.name == "versions" and not value):
                continue
            values[item.name] = list(value) if isinstance(value, tuple) else value
        return values

    def to_yaml(self, comment: str = "") -> str:
        header = "".join(f"# {line}\n" for line in comment.splitlines()) if comment else ""
        return header + yaml.safe_dump(self.to_mapping(), sort_keys=False)


def _number(source: str, key: str, value: Any, *, positive: bool = False, unit: bool = False,
            low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{source}: {key} must be a number, got {value!r}.")
    value = float(value)
    if positive and value <= 0:
        raise ConfigError(f"{source}: {key} must be positive, got {value:g}.")
    if unit and not 0 <= value < 1:
        raise ConfigError(f"{source}: {key} must lie in [0, 1), got {value:g}.")
    if low is not None and value < low:
        raise ConfigError(f"{source}: {key} must be at least {low:g}, got {value:g}.")
    return value


def _flag(source: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: {key} must be true or false, got {value!r}.")
    return value


def _choice(source: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{source}: {key} must be one of {', '.join(choices)}, got {value!r}.")
    return value


def _accountants(source: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    known = (*ACCOUNTANTS, PURE_DP_ACCOUNTANT, ZCDP_ACCOUNTANT)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{source}: accountants must be a list of {', '.join(known)}, got {value!r}.")
    return tuple(_choice(source, "accountants", item, known) for item in value)


def _versions(source: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: versions must map a library to its allowed versions (opacus: \"==1.6.0\").")
    allowed = {}
    for library, specifier in value.items():
        if not isinstance(library, str) or not isinstance(specifier, (str, int, float)) or isinstance(specifier, bool):
            raise ConfigError(f"{source}: versions.{library} must be a version or a range in quotes (\"==1.6.0\", "
                              f"\">=2.13,<3\"), got {specifier!r}.")
        text = str(specifier).strip()
        text = text if text[:1] in "<>=!~" else f"=={text}"  # a bare version means exactly that one
        try:
            SpecifierSet(text)
        except InvalidSpecifier:
            raise ConfigError(f"{source}: versions.{library} {specifier!r} is not a version range: write "
                              "\"==1.6.0\" or \">=2.13,<3\".") from None
        allowed[library] = text
    return allowed


_READERS = {
    "delta": lambda s, v: _number(s, "delta", v, positive=True, unit=True),
    "max_epsilon": lambda s, v: _number(s, "max_epsilon", v, positive=True),
    "accountants": _accountants,
    "max_release_epsilon": lambda s, v: _number(s, "max_release_epsilon", v, positive=True),
    "release_basis": lambda s, v: _choice(s, "release_basis", v, RELEASE_BASES),
    "metric": lambda s, v: _choice(s, "metric", v, METRICS),
    "min_metric": lambda s, v: _number(s, "min_metric", v, low=0.0),
    "min_margin_over_trivial": lambda s, v: _number(s, "min_margin_over_trivial", v, low=-1.0),
    "require_private": lambda s, v: _flag(s, "require_private", v),
    "require_secret_noise": lambda s, v: _flag(s, "require_secret_noise", v),
    "allow_data_derived_bounds": lambda s, v: _flag(s, "allow_data_derived_bounds", v),
    "allow_identifier_columns": lambda s, v: _flag(s, "allow_identifier_columns", v),
    "require_audit": lambda s, v: _flag(s, "require_audit", v),
    "max_audit_lower_bound": lambda s, v: _number(s, "max_audit_lower_bound", v, low=0.0),
    "versions": _versions,
    "epsilon_tolerance": lambda s, v: _number(s, "epsilon_tolerance", v, unit=True),
}


def policy_from_mapping(values: Any, source: str = "the policy") -> GatePolicy:
    if not isinstance(values, dict) or not values:
        raise ConfigError(f"{source} must hold a mapping of limits (max_epsilon: 4, ...): see README, 'Privacy gate'.")
    read = {}
    for key, value in values.items():
        if key not in _READERS:
            raise ConfigError(f"{source}: unknown key {str(key)!r}: the keys are {', '.join(_READERS)}.")
        if value is None:
            raise ConfigError(f"{source}: {key} has no value: give one or leave the key out.")
        read[key] = _READERS[key](source, value)
    if read.get("min_metric", 0) > 1:
        raise ConfigError(f"{source}: min_metric must lie in [0, 1], got {read['min_metric']:g}.")
    return GatePolicy(**read)


def read_policy(text: str, source: str = "the policy") -> GatePolicy:
    """A GatePolicy from YAML text; every mistake one line naming `source` and the key."""
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {' '.join(str(exc).split())}") from None
    return policy_from_mapping(values, source)


def _round_up(value: float) -> float:
    """A threshold just above `value` with two significant figures (3.9604 -> 4.0), so the decision passes."""
    if value <= 0:
        return 0.01
    scale = 10 ** (math.floor(math.log10(value)) - 1)
    return round(math.ceil(value / scale * (1 + 1e-9)) * scale, 10)


def _round_down(value: float) -> float:
    scale = 0.01
    return round(math.floor(value / scale) * scale, 2)


def policy_for_decision(record: dict[str, Any]) -> GatePolicy:
    """The policy that would gate a decision record as it stands: its figures as the limits (rounded outward),
    its accountant and library versions, and everything that guards the guarantee required (so a decision
    on data-derived bounds or an identifier-like column shows failing, as the gate would say)."""
    privacy, utility = record["privacy"], record["utility"]
    versions = {name: f"=={version}" for name, version in (record.get("versions") or {}).items()
                if name in ("opacus", "torch", "dp-accounting", "diffprivlib", "engine")}
    margin = None
    if utility.get("trivial") is not None and utility.get("test_mean") is not None:
        margin = _round_down(utility["test_mean"] - utility["trivial"])
    return GatePolicy(
        delta=float(privacy.get("delta") or DEFAULT_DELTA) if privacy.get("private") else DEFAULT_DELTA,
        max_epsilon=_round_up(privacy["epsilon"]) if privacy.get("epsilon") is not None else None,
        accountants=(privacy["accountant"],) if privacy.get("accountant") else None,
        max_release_epsilon=_round_up(privacy["release_epsilon"]) if privacy.get("release_epsilon") else None,
        release_basis="random-search" if privacy.get("release_basis") == "random search" else "composition",
        metric=utility["metric"],
        min_metric=_round_down(utility["test_mean"]) if utility.get("test_mean") is not None else None,
        min_margin_over_trivial=margin,
        require_audit=record.get("audit") is not None,
        versions=versions,
    )

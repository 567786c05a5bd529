"""What an audit is asked to do, checked once, and its identity (the audit's cache key).

An audit is a run of its own: its settings, resolved against the audited run's data (the number of canaries
defaults to the data's size), are recorded with its figures, and `audit_id` hashes them with the audited run's
id and the engine version, so the same request is answered from the store and a different one is a new audit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

from engine import ENGINE_VERSION
from engine.errors import ConfigError

ATTACKS = ("one-run", "rmia", "lira")
ATTACK_LABELS = {
    "one-run": "one-run canary audit (Steinke, Nasr & Jagielski 2023)",
    "rmia": "RMIA membership inference (Zarifzadeh et al. 2024)",
    "lira": "LiRA membership inference (Carlini et al. 2022)",
}
MAX_CANARIES = 1000  # Steinke et al.'s m; the bound grows with log(m), the training set shrinks by m / 2
AUDIT_VERSION = 1  # enters every audit id: bump when a change alters what an audit computes


@dataclass(frozen=True)
class AuditSettings:
    attack: str = "one-run"  # one-run (canaries, one training), rmia or lira (a target and reference models)
    reference_models: int = 4  # rmia / lira: models trained like the target on random halves (even, >= 2)
    canaries: int | None = None  # one-run: m; None = min(1000, a quarter of the training rows)
    white_box: bool = False  # one-run on dp-sgd: Dirac gradient canaries instead of mislabelled rows
    confidence: float = 0.95  # of the epsilon lower bound and of every interval

    def validate(self) -> "AuditSettings":
        if self.attack not in ATTACKS:
            raise ConfigError(f"Unknown attack {self.attack!r}: choose one of {', '.join(ATTACKS)}.")
        if self.attack in ("rmia", "lira") and (self.reference_models < 2 or self.reference_models % 2):
            raise ConfigError(f"{self.attack} needs an even number of reference models, at least 2 (each row is in "
                              f"exactly half of them), got {self.reference_models}.")
        if self.canaries is not None and self.canaries < 20:
            raise ConfigError(f"The one-run audit needs at least 20 canaries, got {self.canaries}.")
        if self.white_box and self.attack != "one-run":
            raise ConfigError("White-box (gradient canaries) is a one-run audit: use --attack one-run.")
        if not 0.5 < self.confidence < 1:
            raise ConfigError(f"The confidence must lie in (0.5, 1), got {self.confidence}.")
        return self

    def resolve(self, n_train: int) -> "AuditSettings":
        """The settings this audit really uses on a training set of n_train rows (what is recorded)."""
        self.validate()
        if self.attack != "one-run":
            return replace(self, canaries=None, white_box=False)
        canaries = self.canaries if self.canaries is not None else min(MAX_CANARIES, n_train // 4)
        if not self.white_box and canaries > n_train // 2:
            raise ConfigError(f"{canaries} canaries are more than half of the {n_train} training rows: the audited "
                              f"model would hardly be the configuration's. Use at most {n_train // 2}.")
        return replace(self, canaries=canaries, reference_models=0)

    def to_dict(self) -> dict:
        return asdict(self)


def audit_id(run_id: str, settings: AuditSettings) -> str:
    """The audit's identity: the audited run, every resolved setting, the engine and audit versions."""
    payload = {"run": run_id, "settings": settings.to_dict(), "engine": ENGINE_VERSION, "audit": AUDIT_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]

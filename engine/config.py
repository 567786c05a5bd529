"""Typed, frozen configurations and their validation, in one place.

A SweepSpec is what a person asks for (a grid); a RunConfig is one fully resolved point of that grid.
Constructors only store values; `validate()` checks them and raises ConfigError saying how to fix it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from engine.errors import ConfigError

ACCOUNTANTS = ("prv", "rdp")  # Opacus accountants we report; GDP underestimates epsilon and is refused
MODELS = ("logreg", "mlp", "cnn")
DEVICES = ("auto", "cpu", "cuda")
TRAIN_TECHNIQUES = ("baseline", "dp-sgd")  # how he-inference trains the model it serves encrypted
# Reaches down to 0.05 so the curve shows where accuracy starts to fall even on forgiving data (Adult).
DEFAULT_EPSILONS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
# Federated learning (engine/federated): how training rows are split into clients, and the RunConfig fields
# that only federated techniques set (None elsewhere, so other runs keep their cache keys).
PARTITIONS = ("iid", "dirichlet", "natural", "quantity")
FEDERATED_FIELDS = ("n_clients", "partition", "alpha", "partition_column", "rounds", "local_epochs",
                    "clients_per_round", "secure_aggregation", "dropout", "mu", "compression")


@dataclass(frozen=True)
class RunConfig:
    """One training run, fully resolved. Its JSON (plus dataset fingerprint and engine version) is the cache key."""

    dataset: str
    technique: str
    model: str
    seed: int
    epochs: int
    batch_size: int  # expected batch size; with Poisson sampling sample_rate = batch_size / n_train
    learning_rate: float
    hidden_units: int  # width of the MLP hidden layer (ignored by logreg and cnn)
    target_epsilon: float | None = None  # None for techniques without a privacy budget (baseline)
    max_grad_norm: float | None = None  # per-sample clipping norm C; None where the technique does not clip
    delta: float | None = None
    accountant: str | None = None
    train_subsample: int | None = None  # train on a fixed seeded subset of this many training rows
    train_technique: str | None = None  # he-inference only: how the served model was trained (TRAIN_TECHNIQUES)
    # Federated runs only (engine/federated; see FEDERATED_FIELDS). For them epochs = rounds x local_epochs.
    n_clients: int | None = None  # clients the training rows are split into
    partition: str | None = None  # iid | dirichlet | natural | quantity
    alpha: float | None = None  # Dirichlet concentration (dirichlet: label skew; quantity: size skew)
    partition_column: str | None = None  # natural: the column whose values are the silos
    rounds: int | None = None  # communication rounds
    local_epochs: int | None = None  # client epochs per round
    clients_per_round: int | None = None  # fedavg: picked per round; dp-fedavg: expected (Poisson)
    secure_aggregation: bool | None = None  # pairwise-masked sums (Bonawitz et al. 2017)
    dropout: float | None = None  # chance that a picked client drops out mid-round
    mu: float | None = None  # fedprox proximal term
    compression: str | None = None  # upload compression: none | int8 | topk | topk:FRACTION
    client: str | None = None  # single-silo: the one client trained alone

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def cache_key(self, dataset_fingerprint: str, engine_version: str) -> str:
        """Hash of the resolved config + the prepared data's fingerprint + the engine version.

        Unset (None) settings are left out, so adding a new optional setting later keeps every stored key.
        """
        resolved = {name: value for name, value in self.to_dict().items() if value is not None}
        payload = json.dumps(
            {"config": resolved, "data": dataset_fingerprint, "engine": engine_version},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class SweepSpec:
    """A grid of runs: every technique x epsilon x clipping norm x seed it applies to."""

    dataset: str = "adult"
    techniques: tuple[str, ...] = ("baseline", "dp-sgd")
    model: str | None = None  # None: cnn for image datasets, mlp for tables
    epsilons: tuple[float, ...] = DEFAULT_EPSILONS
    clipping_norms: tuple[float, ...] = (1.0,)
    seeds: tuple[int, ...] = (0,)
    epochs: int = 10
    batch_size: int = 512
    learning_rate: float = 5e-3  # Adam; measured on Adult in GUIDE section 4
    hidden_units: int = 64
    delta: float = 1e-5
    accountant: str = "prv"
    train_subsample: int | None = None
    train_technique: str | None = None  # he-inference: train the served model with baseline (default) or dp-sgd
    # Federated settings (used by federated techniques only; None = their defaults, see engine/techniques/federated.py)
    n_clients: int | None = None
    partition: str | None = None
    alpha: float | None = None
    partition_column: str | None = None
    rounds: int | None = None
    local_epochs: int | None = None
    clients_per_round: int | None = None
    secure_aggregation: bool | None = None
    dropout: float | None = None
    mu: float | None = None
    compression: str | None = None
    only_clients: tuple[str, ...] | None = None  # single-silo: these clients only (default: each client)

    def validate(self) -> "SweepSpec":
        """Check every value; return self so calls can chain. Raises ConfigError."""
        if not self.techniques:
            raise ConfigError("No technique given: pass at least one, e.g. --technique baseline,dp-sgd.")
        if not self.seeds:
            raise ConfigError("No seed given: pass at least one, e.g. --seeds 0,1,2.")
        for epsilon in self.epsilons:
            if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
                raise ConfigError(
                    f"epsilon must be a positive finite number, got {epsilon!r}: use values such as --epsilon 0.5,1,2."
                )
        for norm in self.clipping_norms:
            if not (isinstance(norm, (int, float)) and math.isfinite(norm) and norm > 0):
                raise ConfigError(f"clipping norm must be positive, got {norm!r}: use values such as --clip 0.5,1,2.")
        for seed in self.seeds:
            if not isinstance(seed, int) or seed < 0:
                raise ConfigError(f"seeds must be non-negative integers, got {seed!r}.")
        if not (0 < self.delta < 1):
            raise ConfigError(f"delta must lie strictly between 0 and 1, got {self.delta!r}; the default is 1e-5.")
        if self.accountant not in ACCOUNTANTS:
            raise ConfigError(
                f"Unknown accountant {self.accountant!r}: choose one of {', '.join(ACCOUNTANTS)} "
                "(GDP is not offered: it underestimates epsilon)."
            )
        if self.model is not None and self.model not in MODELS:
            raise ConfigError(f"Unknown model {self.model!r}: choose one of {', '.join(MODELS)}.")
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ConfigError(f"epochs must be an integer >= 1, got {self.epochs!r}.")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ConfigError(f"batch size must be an integer >= 1, got {self.batch_size!r}.")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ConfigError(f"learning rate must be positive, got {self.learning_rate!r}.")
        if not (isinstance(self.hidden_units, int) and self.hidden_units >= 1):
            raise ConfigError(f"hidden units must be an integer >= 1, got {self.hidden_units!r}.")
        if self.train_subsample is not None and not (isinstance(self.train_subsample, int) and self.train_subsample >= 2):
            raise ConfigError(f"train_subsample must be an integer >= 2 (or absent), got {self.train_subsample!r}.")
        if self.train_technique is not None and self.train_technique not in TRAIN_TECHNIQUES:
            raise ConfigError(f"Unknown train technique {self.train_technique!r}: choose one of "
                              f"{', '.join(TRAIN_TECHNIQUES)} (--train-technique, used by he-inference).")
        self._validate_federated()
        return self

    def _validate_federated(self) -> None:
        def positive_int(name, flag, minimum=1):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
                raise ConfigError(f"{flag} must be an integer >= {minimum}, got {value!r}.")

        positive_int("n_clients", "--clients", 2)
        positive_int("rounds", "--rounds")
        positive_int("local_epochs", "--local-epochs")
        positive_int("clients_per_round", "--clients-per-round")
        if self.partition is not None and self.partition not in PARTITIONS:
            raise ConfigError(f"Unknown partition {self.partition!r}: choose one of {', '.join(PARTITIONS)}.")
        if self.alpha is not None:
            if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and self.alpha > 0):
                raise ConfigError(f"alpha must be positive, got {self.alpha!r}: e.g. --alpha 0.1 (strong skew) or 10 (mild).")
            if self.partition not in ("dirichlet", "quantity"):
                raise ConfigError("--alpha applies to --partition dirichlet or quantity only: drop it or pick one of those.")
        if self.partition_column is not None and self.partition != "natural":
            raise ConfigError("--partition-column applies to --partition natural only: add --partition natural.")
        if self.n_clients is not None and self.clients_per_round is not None and self.clients_per_round > self.n_clients:
            raise ConfigError(f"--clients-per-round {self.clients_per_round} exceeds --clients {self.n_clients}: lower it.")
        if self.dropout is not None and not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ConfigError(f"--dropout is a probability in [0, 1), got {self.dropout!r}: e.g. --dropout 0.2.")
        if self.mu is not None and not (isinstance(self.mu, (int, float)) and math.isfinite(self.mu) and self.mu >= 0):
            raise ConfigError(f"--mu must be >= 0, got {self.mu!r}: e.g. --mu 0.01.")
        if self.compression is not None:
            from engine.federated.compression import parse_compression  # ConfigError that names the choices

            method, _ = parse_compression(self.compression)
            if method != "none" and self.secure_aggregation:
                raise ConfigError("--compression does not combine with --secure-aggregation (masked uploads are dense "
                                  "k-bit integers): drop one of them.")

    def to_mapping(self) -> dict[str, Any]:
        """Plain types only, suitable for YAML/JSON; from_mapping(to_mapping()) gives back an equal spec."""
        values = dataclasses.asdict(self)
        for name in ("techniques", "epsilons", "clipping_norms", "seeds", "only_clients"):
            values[name] = list(values[name]) if values[name] is not None else None
        return values

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "SweepSpec":
        """Build from a YAML/JSON mapping; unknown keys are an error, not silently ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown sweep setting(s) {', '.join(unknown)}: known settings are {', '.join(sorted(known))}.")
        converted = dict(values)
        try:
            for name, kind in (("techniques", str), ("epsilons", float), ("clipping_norms", float), ("seeds", int),
                               ("only_clients", str)):
                if name in converted and converted[name] is not None:
                    raw = converted[name]
                    raw = [raw] if isinstance(raw, (str, int, float)) else raw
                    converted[name] = tuple(kind(item) for item in raw)
            for name, kind in (("epochs", int), ("batch_size", int), ("hidden_units", int),
                               ("learning_rate", float), ("delta", float), ("n_clients", int), ("alpha", float),
                               ("rounds", int), ("local_epochs", int), ("clients_per_round", int),
                               ("secure_aggregation", bool), ("dropout", float), ("mu", float)):
                if name in converted and converted[name] is not None:
                    converted[name] = kind(converted[name])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Sweep setting has the wrong type: {exc}.") from exc
        return cls(**converted)


def parse_number_list(text: str, kind: type, what: str) -> tuple:
    """'0.5,1,2' -> (0.5, 1.0, 2.0), with an error that names the option."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(f"{what} is empty: give comma-separated values such as 0.5,1,2.")
    try:
        return tuple(kind(item) for item in items)
    except ValueError as exc:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}.") from exc


@dataclass(frozen=True)
class SweepReport:
    """What a sweep did: how many runs it had, answered from cache, trained, failed."""

    total: int
    cached: int
    trained: int
    failed: int
    run_ids: tuple[str, ...] = field(default_factory=tuple)
    interrupted: bool = False

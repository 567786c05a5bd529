"""The settings of the federated techniques, declared once, and how a sweep resolves them into runs.

Settings a sweep leaves unset get the defaults below; for federated runs `epochs` is recorded as rounds x
local epochs (each client's passes over its own rows when picked every round).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from engine.config import SweepSpec
from engine.data import DatasetInfo
from engine.errors import ConfigError
from engine.federated.compression import parse_compression
from engine.federated.partitions import DEFAULT_ALPHA, PARTITIONS
from engine.settings import setting
from engine.techniques.base import TechniqueSettings

DEFAULT_CLIENTS = 10
SKEWED = ("dirichlet", "quantity")  # partitions that take alpha


@dataclass(frozen=True)
class PartitionSettings(TechniqueSettings):
    """How the training rows are split into clients (every federated technique, and single-silo)."""

    partition: str = setting("iid", choices=PARTITIONS, group="federated",
                             help="iid: a random split. dirichlet: label skew (alpha). quantity: size skew (alpha). "
                                  "natural: the dataset's own silos (heart: its four hospitals).")
    n_clients: int | None = setting(None, minimum=2, maximum=10_000, flag="clients", label="Clients",
                                    group="federated", help=f"Number of clients. Default: {DEFAULT_CLIENTS} "
                                                            "(natural: one per silo).")
    alpha: float | None = setting(None, above=0, label="alpha (skew)", group="federated", example="0.1",
                                  help=f"Dirichlet concentration for dirichlet/quantity; smaller is more skewed. "
                                       f"Default: {DEFAULT_ALPHA}.")
    partition_column: str | None = setting(None, group="federated",
                                           help="natural: the categorical column whose values are the silos. "
                                                "Default: the catalogue's silo column (heart: dataset).")

    def check(self) -> None:
        if self.alpha is not None and self.partition not in SKEWED:
            raise ConfigError("{alpha} applies to {partition} dirichlet or quantity only: drop it or pick one of "
                              "those.", setting="alpha", mentions=("partition",))
        if self.partition_column is not None and self.partition != "natural":
            raise ConfigError("{partition_column} applies to {partition} natural only: set partition to natural.",
                              setting="partition_column", mentions=("partition",))


@dataclass(frozen=True)
class FederatedSettings(PartitionSettings):
    """The round loop's settings (fedavg, fedprox, fed-dp-sgd, dp-fedavg)."""

    rounds: int | None = setting(None, minimum=1, maximum=100_000, group="federated",
                                 help="Communication rounds. Default: the sweep's epochs.")
    local_epochs: int = setting(1, minimum=1, maximum=10_000, group="federated", help="Client epochs per round.")
    clients_per_round: int | None = setting(None, minimum=1, group="federated",
                                            help="Clients picked per round (dp-fedavg: the expected number under "
                                                 "Poisson sampling). Default: all.")
    secure_aggregation: bool = setting(False, group="federated",
                                       help="Pairwise-masked sums (Bonawitz et al. 2017): the server sees only the sum.")
    dropout: float = setting(0.0, minimum=0, below=1, label="Drop-out chance", group="federated",
                             help="Chance that a picked client drops out mid-round.")
    compression: str = setting("none", group="federated", example="topk:0.05",
                               help="Upload compression: none, int8, topk or topk:FRACTION.")

    def check(self) -> None:
        super().check()
        if self.n_clients is not None and self.clients_per_round is not None and self.clients_per_round > self.n_clients:
            raise ConfigError(f"{{clients_per_round}} {self.clients_per_round} exceeds {{n_clients}} {self.n_clients}: "
                              "lower it.", setting="clients_per_round", mentions=("n_clients",))
        method, _ = parse_compression(self.compression)
        if method != "none" and self.secure_aggregation:
            raise ConfigError("{compression} does not combine with {secure_aggregation} (masked uploads are dense "
                              "k-bit integers): drop one of them.", setting="compression",
                              mentions=("secure_aggregation",))


@dataclass(frozen=True)
class FedProxSettings(FederatedSettings):
    mu: float = setting(0.01, minimum=0, maximum=1_000, group="federated", example="0.01",
                        help="fedprox: the proximal term's weight.")


@dataclass(frozen=True)
class SingleSiloSettings(PartitionSettings):
    only_clients: tuple[str, ...] | None = setting(None, flag="only-client", axis="client", group="federated",
                                                   label="Only these clients",
                                                   help="single-silo: the clients to train alone (comma-separated). "
                                                        "Default: each client.")


def resolve_partition(spec: SweepSpec, settings: PartitionSettings, info: DatasetInfo) -> dict[str, Any]:
    """partition, n_clients, alpha, partition_column of the runs (natural: from the catalogue's silo column)."""
    kind = settings.partition
    if kind == "natural":
        column = settings.partition_column or info.silo_column
        if not column:
            raise ConfigError(f"Dataset {spec.dataset!r} names no silo column: set {{partition_column}} to a "
                              "categorical column, or use partition iid, dirichlet or quantity.",
                              setting="partition_column")
        silos = (info.categorical or {}).get(column)
        if not silos:
            raise ConfigError(f"{column!r} is not a categorical column of {spec.dataset!r}: a natural partition needs "
                              f"one, e.g. {', '.join(list(info.categorical or {})[:4]) or '(none declared)'}.",
                              setting="partition_column")
        if settings.n_clients is not None and settings.n_clients != len(silos):
            raise ConfigError(f"{spec.dataset!r} has {len(silos)} silos in {column!r} "
                              f"({', '.join(map(str, silos))}), not {settings.n_clients}: leave {{n_clients}} unset "
                              f"or set it to {len(silos)}.", setting="n_clients")
        return dict(partition=kind, n_clients=len(silos), partition_column=column)
    resolved = dict(partition=kind, n_clients=settings.n_clients or DEFAULT_CLIENTS)
    if kind in SKEWED:
        resolved["alpha"] = settings.alpha if settings.alpha is not None else DEFAULT_ALPHA
    return resolved


def client_names(info: DatasetInfo, partition: dict[str, Any]) -> list[str]:
    if partition["partition"] == "natural":
        return [str(silo) for silo in info.categorical[partition["partition_column"]]]
    return [str(index) for index in range(partition["n_clients"])]


def resolve_rounds(spec: SweepSpec, settings: FederatedSettings, info: DatasetInfo) -> dict[str, Any]:
    """Every setting of a federated run, defaults filled in (mu stays only where it is declared: fedprox)."""
    partition = resolve_partition(spec, settings, info)
    (epochs,) = spec.epochs  # one training combination of the sweep's grid (engine.runner.plan.expand)
    rounds = settings.rounds or epochs  # default: as many rounds as that combination's epochs
    per_round = settings.clients_per_round or partition["n_clients"]
    if per_round > partition["n_clients"]:
        raise ConfigError(f"{{clients_per_round}} {per_round} exceeds the {partition['n_clients']} clients: lower it.",
                          setting="clients_per_round")
    if settings.secure_aggregation and per_round < 2:
        raise ConfigError("Secure aggregation needs at least 2 clients per round: raise {clients_per_round}.",
                          setting="clients_per_round")
    own = {name: value for name, value in dataclasses.asdict(settings).items()
           if name not in ("partition", "n_clients", "alpha", "partition_column") and value is not None}
    return {**own, **partition, "rounds": rounds, "clients_per_round": per_round,
            "epochs": rounds * settings.local_epochs}

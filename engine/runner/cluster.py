"""Where a sweep's runs train: here (in this process or its worker processes) or on a Ray cluster.

Declared once, like every other setting: the CLI's `--backend`, `--ray-address`, `--ray-cpus`, `--ray-gpus`,
`--ray-retries`, the Sweep page's choice and a background job's plan.json all follow from ClusterSettings. None
of them is part of a run's identity: a run trained on Ray has the same cache key as one trained here. This module
never imports ray (engine.runner.ray_backend does, when a sweep asks for it).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import socket
from dataclasses import dataclass
from typing import Any, Mapping

from engine.errors import ConfigError, MissingExtraError
from engine.settings import declared_settings, parse_values, setting

BACKENDS = ("local", "ray")
RAY_INSTALL = "pip install -e '.[ray]'"


@dataclass(frozen=True)
class ClusterSettings:
    backend: str = setting("local", choices=BACKENDS, choice_labels=("This machine", "Ray cluster"),
                           label="Run on",
                           help="local: this machine (--workers processes); ray: one Ray task per group of runs.")
    ray_address: str | None = setting(None, label="Ray address", example="ray://head:10001",
                                      help="The Ray cluster to use (host:port of `ray start --head`, or ray://host:"
                                           "10001). Default: $RAY_ADDRESS, a cluster started on this machine, else "
                                           "a new local one.")
    ray_cpus: float = setting(1.0, above=0, maximum=1024, label="CPUs per Ray task",
                              help="CPUs each Ray task reserves (its torch threads). Default: 1.")
    ray_gpus: float = setting(0.0, minimum=0, maximum=64, label="GPUs per Ray task",
                              help="GPUs each Ray task reserves; a fraction (0.25) shares one GPU between tasks. "
                                   "Tasks with a GPU train on CUDA. Default: 0.")
    ray_retries: int = setting(3, minimum=0, maximum=100, label="Retries per Ray task",
                               help="How often a task lost with its node (or its worker process) is retried "
                                    "before its runs are recorded failed. Default: 3.")

    @classmethod
    def declared(cls):
        return declared_settings(cls)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "ClusterSettings":
        """Parsed strictly by the declarations; names that are not cluster settings are refused."""
        names = {declared.name for declared in cls.declared()}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"Unknown cluster setting(s) {', '.join(unknown)}: use {', '.join(sorted(names))}.")
        given = {name: value for name, value in values.items() if value is not None}
        return cls(**parse_values(cls.declared(), given))

    def to_mapping(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def on_ray(self) -> bool:
        return self.backend == "ray"

    def driver_device(self, device: str) -> str:
        """The device the sweep's own process records failures on: on Ray each task's GPUs decide where it trains."""
        return "cpu" if self.on_ray else device

    def check(self, device: str) -> None:
        """Before anything is planned or written: ray is installed, and the device fits the tasks' resources."""
        if not self.on_ray:
            return
        require_ray()
        if device == "cuda" and self.ray_gpus == 0:
            raise ConfigError("On Ray a task trains on CUDA only when it reserves a GPU: give {ray_gpus} (1, or a "
                              "fraction such as 0.25), or leave {device} at auto.", mentions=["ray_gpus", "device"])
        check_reachable(self.ray_address)


def require_ray() -> None:
    """MissingExtraError naming the install command when ray is not installed."""
    if importlib.util.find_spec("ray") is None:
        raise MissingExtraError(f"Ray is not installed: run `{RAY_INSTALL}` (on this machine and every node of the "
                                "cluster), or sweep with the local backend.")


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """A HOST:PORT address must answer on its port: Ray itself retries an unreachable head for minutes."""
    if address is None or "://" in address or address == "auto":
        return  # Ray finds the cluster itself (RAY_ADDRESS, this machine), or Ray Client connects
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Nothing answers at the Ray address {address!r} ({exc}): give {{ray_address}} as HOST:PORT "
                          "of a running head (`ray start --head` prints it; `ray status` on the head checks it).",
                          setting="ray_address") from exc

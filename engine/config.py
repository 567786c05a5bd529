"""The shared settings of a sweep (SweepSpec) and one resolved run (RunConfig).

Shared settings (dataset, model, seeds, epochs, batch size, the privacy grid) are declared here once, as
`setting(...)` fields; each technique declares its own settings in its own file (Technique.settings), and a
spec carries their values in `options`. engine.runner.spec reads a spec from YAML, the CLI or a form
against both declarations; this module knows nothing of techniques.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from engine.settings import declared_settings, setting

ACCOUNTANTS = ("prv", "rdp")  # Opacus accountants we report; GDP underestimates epsilon and is refused
MODELS = ("logreg", "mlp", "cnn")
DEVICES = ("auto", "cpu", "cuda")
CLASS_WEIGHTINGS = ("none", "balanced")  # torch techniques' loss: plain, or weighted by public class shares
# Reaches down to 0.05 so the curve shows where accuracy starts to fall even on forgiving data (Adult).
DEFAULT_EPSILONS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
# Training settings that are grid axes but were single values before: a scalar still reads as one value, and a
# one-value axis is written as that scalar (to_mapping), so old specs, exports and search ids are unchanged.
TRAINING_AXES = ("epochs", "batch_size", "learning_rate")
ACCOUNTANT_HELP = ("How epsilon is computed from the noise actually added. PRV (Opacus' default) is tight; RDP is "
                   "conservative (about 8-15% higher for the same noise). GDP is not offered: it underestimates "
                   "epsilon. The accountant is recorded next to every epsilon.")


@dataclass(frozen=True)
class SweepSpec:
    """A grid of runs: every technique x epsilon x clipping norm x learning rate x batch size x epochs x seed it
    applies to, plus technique options."""

    dataset: str = setting("adult", help="A dataset of the catalogue (`frontier datasets`) or an upload.",
                           group="data")
    techniques: tuple[str, ...] = setting(("baseline", "dp-sgd"), flag="technique", example="baseline,dp-sgd",
                                          help="Techniques to compare (comma-separated).", group="grid")
    model: str | None = setting(None, choices=MODELS, group="model",
                                help="logreg, mlp or cnn. Default: cnn for images, mlp for tables.")
    epsilons: tuple[float, ...] = setting(DEFAULT_EPSILONS, above=0, axis="target_epsilon", flag="epsilon",
                                          label="Target ε values", example="0.5,1,2", group="grid",
                                          help="Target privacy budgets (comma-separated). Smaller is more private.")
    clipping_norms: tuple[float, ...] = setting((1.0,), above=0, axis="max_grad_norm", flag="clip",
                                                label="Clipping norms C", example="0.5,1,2", group="grid",
                                                help="Per-sample (or per-client) clipping norms, comma-separated.")
    seeds: tuple[int, ...] = setting((0,), minimum=0, axis="seed", example="0,1,2", group="grid",
                                     help="Replicates: model initialisation and simulated partitions (never the "
                                          "privacy noise). Several give an error bar for each point.")
    # Training axes: one value or several (a scalar in YAML, `--lr 0.005`, is a one-value axis); every run takes one.
    epochs: tuple[int, ...] | None = setting(None, minimum=1, maximum=100_000, axis="epochs", group="training",
                                             example="10,20",
                                             help="Training epochs (comma-separated for several). Default: follows the "
                                                  "table's size and each batch size (at least 300 steps, 10 to 100 "
                                                  "epochs; adult: 10).")
    batch_size: tuple[int, ...] | None = setting(None, minimum=1, axis="batch_size", group="training", example="32,64",
                                                 help="Expected batch size (DP-SGD samples batches at random); "
                                                      "comma-separated for several. Default: about 1/16 of the "
                                                      "training rows, 32 to 512 (adult: 512).")
    learning_rate: tuple[float, ...] = setting((5e-3,), above=0, maximum=10.0, flag="lr", axis="learning_rate",
                                               group="training", example="0.001,0.005",
                                               help="Adam learning rate (comma-separated for several).")
    hidden_units: int = setting(64, minimum=1, maximum=65_536, flag="hidden", label="MLP hidden units",
                                group="model", help="Width of the MLP's hidden layer.")
    delta: float = setting(1e-5, above=0, below=1, label="δ", example="1e-5", group="privacy", text_entry=True,
                           help="The δ of (ε, δ)-DP; must be below 1 / the number of training rows.")
    accountant: str = setting("prv", choices=ACCOUNTANTS, choice_labels=("PRV (tight)", "RDP (conservative)"),
                              group="privacy", help=ACCOUNTANT_HELP)
    train_subsample: int | None = setting(None, minimum=2, flag="subsample", label="Train on a subset of rows",
                                          group="data", help="Train on a fixed subset of this many training rows.")
    random_trials: float | None = setting(None, minimum=1, maximum=10_000, label="Random search: mean trials",
                                          group="privacy", example="10",
                                          help="Instead of every private configuration of the grid, train at each "
                                               "target epsilon its own random number of trials (Poisson with this "
                                               "mean, drawn secretly), each a configuration drawn from that epsilon's "
                                               "grid (learning rate, batch size, epochs, clipping norm, technique "
                                               "options): releasing only the best at that epsilon then costs its "
                                               "tuning-aware epsilon (Papernot & Steinke 2022), far below the "
                                               "composition of all of them.")
    class_weighting: str | None = setting(None, choices=CLASS_WEIGHTINGS, group="training",
                                          choice_labels=("None", "Balanced (by public class shares)"),
                                          help="Torch techniques' loss: none (default), or balanced: each class "
                                               "weighted in proportion to 1 / its share of the label, from public "
                                               "knowledge only "
                                               "(the public positive share, else the catalogue's expected "
                                               "positive rate), "
                                               "never the training rows' counts. Helps rare positives.")
    positive_share: float | None = setting(None, above=0, below=1, group="training", example="0.08",
                                           label="Public positive share",
                                           help="The positive class's share of the population, from public knowledge "
                                                "(e.g. 0.08 for about 8% default), for balanced class weighting. "
                                                "Default: the catalogue's label.expected_positive_rate.")
    # Technique settings by name (each declared by a technique: Technique.settings), sorted (name, value) pairs.
    options: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        # A scalar (SweepSpec(epochs=18), an old spec's `learning_rate: 0.005`) is a one-value axis.
        for name in TRAINING_AXES:
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value) if isinstance(value, list) else (value,))

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    def validate(self) -> "SweepSpec":
        """Parse every shared value by its declaration (ConfigError naming the setting); returns self."""
        for declared in declared_settings(SweepSpec):
            declared.parse(getattr(self, declared.name))
        return self

    def to_mapping(self) -> dict[str, Any]:
        """Plain types only, for YAML and JSON: shared settings, then the options, flat."""
        values = {declared.name: getattr(self, declared.name) for declared in declared_settings(SweepSpec)}
        values.update(self.options)
        mapping = {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}
        for name in TRAINING_AXES:  # one value is written as the scalar it always was (old exports, search ids)
            if isinstance(mapping.get(name), list) and len(mapping[name]) == 1:
                mapping[name] = mapping[name][0]
        return mapping

    def replace(self, **changes: Any) -> "SweepSpec":
        return dataclasses.replace(self, **changes)


# Fields of RunConfig that every run has; a technique's own settings travel in `params`.
@dataclass(frozen=True)
class RunConfig:
    """One training run, fully resolved. Its JSON (plus dataset fingerprint and engine version) is the cache key."""

    dataset: str
    technique: str
    model: str
    seed: int
    epochs: int
    batch_size: int  # expected batch size; Poisson sampling keeps each row with rate 1 / ceil(n_train / batch_size)
    learning_rate: float
    hidden_units: int  # width of the MLP hidden layer (ignored by logreg and cnn)
    target_epsilon: float | None = None  # None for techniques without a privacy budget (baseline)
    max_grad_norm: float | None = None  # clipping norm C; None where the technique does not clip
    delta: float | None = None
    accountant: str | None = None
    train_subsample: int | None = None  # train on a fixed subset of this many training rows
    search: str | None = None  # a random search's id, for its trials (engine.runner.search)
    trial: int | None = None  # the trial's index in its search (two trials may draw the same configuration)
    class_weighting: str | None = None  # "balanced": loss weighted by 1 / public class share; None: plain
    class_shares: str | None = None  # the public class shares the weights come from, "0.92,0.08" (class order)
    class_shares_source: str | None = None  # where they were declared: "setting" (positive_share) or "catalogue"
    params: tuple[tuple[str, Any], ...] = ()  # the technique's own resolved settings, sorted (name, value) pairs

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)

    def to_dict(self) -> dict[str, Any]:
        """Every field, the technique's params flattened beside the shared ones (as stored and cache-keyed)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "params"}
        values.update(self.params)
        return values

    def point_dict(self) -> dict[str, Any]:
        """What defines a point of the frontier: everything but the replicate seed and a search trial's index."""
        return {name: value for name, value in self.to_dict().items()
                if name not in ("seed", "trial") and value is not None}

    def cache_key(self, dataset_fingerprint: str, engine_version: str) -> str:
        """Hash of the resolved config + the prepared data's fingerprint + the engine version.

        Unset (None) settings are left out, so adding a new optional setting later keeps every stored key.
        """
        resolved = {name: value for name, value in self.to_dict().items() if value is not None}
        return _digest({"config": resolved, "data": dataset_fingerprint, "engine": engine_version})

    def point_key(self, dataset_fingerprint: str, engine_version: str) -> str:
        """The configuration's identity over its seeds: runs with equal point keys are one frontier point."""
        return _digest({"config": self.point_dict(), "data": dataset_fingerprint, "engine": engine_version})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunConfig":
        """Shared fields by name; every other non-None entry is a technique param."""
        shared = {f.name for f in dataclasses.fields(cls)} - {"params"}
        params = tuple(sorted((name, _frozen(value)) for name, value in values.items()
                              if name not in shared and value is not None))
        return cls(**{name: value for name, value in values.items() if name in shared}, params=params)


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class SweepReport:
    """What a sweep did: how many runs it had, answered from cache, trained, failed."""

    total: int
    cached: int
    trained: int
    failed: int
    run_ids: tuple[str, ...] = field(default_factory=tuple)
    interrupted: bool = False

"""Partitions of a dataset's training rows into federated clients (banks, hospitals).

- `iid`: a seeded shuffle cut into near-equal parts.
- `dirichlet`: label skew; each class is spread over the clients with proportions ~ Dirichlet(alpha).
  Small alpha (0.1) gives clients that hold almost only one class. Redrawn until every client has rows.
- `quantity`: quantity skew; client sizes ~ Dirichlet(alpha), labels as in the whole table.
- `natural`: one client per category of a column (heart: `dataset` = its four hospitals). The column is
  read back from its one-hot block, so the partition needs no raw data; test rows are split the same way,
  which gives each silo's own test accuracy.

A partition is a pure function of (prepared data, kind, n_clients, alpha, column, seed): it is part of a
run's config and cache key, and the same seed gives the same partition to every technique.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.errors import ConfigError, DataError

PARTITIONS = ("iid", "dirichlet", "natural", "quantity")  # how training rows are split into clients
DEFAULT_ALPHA = 0.5  # dirichlet / quantity concentration when none is given
MIN_CLIENT_ROWS = 2  # every client needs rows to train on
_DIRICHLET_TRIES = 1000


@dataclass(frozen=True, eq=False)
class Partition:
    """Which training rows each client holds (indices into data.x_train); natural partitions also split test rows."""

    kind: str
    client_names: tuple[str, ...]
    train_indices: tuple[np.ndarray, ...]  # per client, sorted row indices into x_train
    test_indices: tuple[np.ndarray, ...] | None = None  # natural partitions only: each silo's test rows
    alpha: float | None = None
    column: str | None = None

    @property
    def n_clients(self) -> int:
        return len(self.train_indices)

    @property
    def sizes(self) -> list[int]:
        return [int(len(rows)) for rows in self.train_indices]

    def client_index(self, name: str) -> int:
        """The client called `name` (a silo name, or its number for generated partitions)."""
        if name in self.client_names:
            return self.client_names.index(name)
        raise ConfigError(f"No client {name!r} in this {self.kind} partition: choose one of {', '.join(self.client_names)}.")


def one_hot_block(feature_names, column: str) -> tuple[list[int], list[str]]:
    """Feature positions and category names of a one-hot encoded column (`column=value` features)."""
    prefix = f"{column}="
    positions = [i for i, name in enumerate(feature_names) if name.startswith(prefix) and not name.endswith("=missing")]
    return positions, [feature_names[i][len(prefix):] for i in positions]


def _membership(x: np.ndarray, positions: list[int], column: str, split: str) -> np.ndarray:
    block = x[:, positions]  # (n, categories), one-hot
    assigned = block.sum(axis=1)
    if np.any(assigned != 1):
        raise DataError(f"{int(np.sum(assigned != 1))} {split} rows have no single value of {column!r}: a natural "
                        "partition needs every row in exactly one silo.")
    return block.argmax(axis=1)


def _split_by_proportions(rows: np.ndarray, proportions: np.ndarray) -> list[np.ndarray]:
    cuts = (np.cumsum(proportions)[:-1] * len(rows)).astype(int)
    return np.split(rows, cuts)


def _iid(n: int, n_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    return np.array_split(rng.permutation(n), n_clients)


def _dirichlet(labels: np.ndarray, n_clients: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Label skew (Hsu et al. 2019): per class, proportions ~ Dir(alpha); redraw until no client is empty."""
    classes = np.unique(labels)
    for _ in range(_DIRICHLET_TRIES):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for label in classes:
            rows = rng.permutation(np.flatnonzero(labels == label))
            for client, chunk in enumerate(_split_by_proportions(rows, rng.dirichlet(np.full(n_clients, alpha)))):
                parts[client].append(chunk)
        clients = [np.concatenate(chunks) for chunks in parts]
        if min(len(rows) for rows in clients) >= MIN_CLIENT_ROWS:
            return clients
    raise ConfigError(f"A dirichlet partition with alpha {alpha:g} left a client with fewer than {MIN_CLIENT_ROWS} rows "
                      f"in {_DIRICHLET_TRIES} draws: raise {{alpha}} or use fewer {{n_clients}}.", setting="alpha",
                      mentions=("n_clients",))


def _quantity(n: int, n_clients: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Quantity skew: MIN_CLIENT_ROWS each, the rest shared with proportions ~ Dir(alpha)."""
    spare = n - MIN_CLIENT_ROWS * n_clients
    sizes = MIN_CLIENT_ROWS + rng.multinomial(spare, rng.dirichlet(np.full(n_clients, alpha)))
    return np.split(rng.permutation(n), np.cumsum(sizes)[:-1])


def make_partition(data, *, kind: str, n_clients: int | None = None, alpha: float | None = None,
                   column: str | None = None, seed: int = 0) -> Partition:
    """Split `data`'s training rows into clients. Raises ConfigError (bad settings) or DataError (bad data)."""
    if kind not in PARTITIONS:
        raise ConfigError(f"Unknown partition {kind!r}: choose one of {', '.join(PARTITIONS)}.")
    rng = np.random.default_rng([seed, 0x5EED])
    if kind == "natural":
        if not column:
            raise ConfigError(f"Dataset {data.name!r} names no silo column: set {{partition_column}} to one.",
                              setting="partition_column")
        positions, names = one_hot_block(data.feature_names, column)
        if not positions:
            raise ConfigError(f"Column {column!r} is not a categorical column of {data.name!r}: a natural partition "
                              "splits by a categorical column (see the catalogue's categorical entries).")
        train = _membership(data.x_train, positions, column, "training")
        test = _membership(data.x_test, positions, column, "test")
        clients = [np.flatnonzero(train == i) for i in range(len(names))]
        empty = [name for name, rows in zip(names, clients) if len(rows) < MIN_CLIENT_ROWS]
        if empty:
            raise DataError(f"Silo(s) {', '.join(empty)} of {column!r} have fewer than {MIN_CLIENT_ROWS} training rows.")
        if n_clients is not None and n_clients != len(names):
            raise ConfigError(f"{column!r} has {len(names)} silos ({', '.join(names)}), not {n_clients}: "
                              f"leave {{n_clients}} unset or set it to {len(names)}.", setting="n_clients")
        return Partition(kind, tuple(names), tuple(clients), tuple(np.flatnonzero(test == i) for i in range(len(names))),
                         column=column)
    if n_clients is None or n_clients < 2:
        raise ConfigError(f"A {kind} partition needs {{n_clients}} >= 2, got {n_clients!r}.", setting="n_clients")
    if data.n_train < MIN_CLIENT_ROWS * n_clients:
        raise ConfigError(f"{data.n_train} training rows cannot give {n_clients} clients {MIN_CLIENT_ROWS} rows each: "
                          "use fewer {n_clients}.", setting="n_clients")
    if kind == "iid":
        clients = _iid(data.n_train, n_clients, rng)
    else:
        alpha = DEFAULT_ALPHA if alpha is None else alpha
        if not alpha > 0:
            raise ConfigError(f"{{alpha}} must be positive, got {alpha!r}: e.g. 0.1 (skewed) or 10 (mild).",
                              setting="alpha")
        clients = (_dirichlet(data.y_train, n_clients, alpha, rng) if kind == "dirichlet"
                   else _quantity(data.n_train, n_clients, alpha, rng))
    return Partition(kind, tuple(str(i) for i in range(n_clients)), tuple(np.sort(rows) for rows in clients),
                     alpha=alpha if kind in ("dirichlet", "quantity") else None)


def partition_summary(partition: Partition, data) -> pd.DataFrame:
    """One row per client: its size, share of the rows and label mix (what the dashboard's Data page shows)."""
    rows = []
    for name, indices in zip(partition.client_names, partition.train_indices):
        labels = data.y_train[indices]
        row = {"client": name, "n_train": int(len(indices)), "share": len(indices) / data.n_train}
        for label in range(data.n_classes):
            row[f"label_{label}"] = float(np.mean(labels == label)) if len(labels) else 0.0
        rows.append(row)
    frame = pd.DataFrame(rows)
    if partition.test_indices is not None:
        frame["n_test"] = [int(len(indices)) for indices in partition.test_indices]
    return frame


def label_skew(partition: Partition, data) -> float:
    """Mean total-variation distance between each client's label mix and the whole table's (0 = iid)."""
    overall = np.bincount(data.y_train, minlength=data.n_classes) / data.n_train
    distances = [0.5 * np.abs(np.bincount(data.y_train[rows], minlength=data.n_classes) / len(rows) - overall).sum()
                 for rows in partition.train_indices]
    return float(np.average(distances, weights=partition.sizes))


def partition_view(dataset: str, *, kind: str = "iid", n_clients: int | None = None, alpha: float | None = None,
                   column: str | None = None, seed: int = 0, uploads_dir: Path | None = None) -> pd.DataFrame:
    """The Data page's partition table in one call: partition_summary of `dataset` split as a sweep would split it
    (natural: the catalogue's silo column unless `column` is given; others: 10 clients unless `n_clients` is)."""
    from engine.data import load_dataset

    data = load_dataset(dataset, uploads_dir)
    if kind == "natural":
        column = column or data.info.silo_column
        n_clients = None
    else:
        n_clients = n_clients or 10
    return partition_summary(make_partition(data, kind=kind, n_clients=n_clients, alpha=alpha, column=column,
                                            seed=seed), data)

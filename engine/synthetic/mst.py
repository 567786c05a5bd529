"""MST (McKenna, Miklau & Sheldon 2021, winner of the NIST 2018 DP synthetic data challenge), on mbi 2.0.

Adapted from private-pgm's mechanisms/mst.py (github.com/ryan112358/private-pgm, Apache-2.0), against mbi 2.0.0's
API (LinearMeasurement, MirrorDescent, Dataset.compress), with three changes: every privacy-relevant draw (the
Gaussian noise, the exponential mechanism) comes from the generator handed in (secret randomness, never the
seed); every release is written to a ledger that the accounting composes and the run records; and the table size
is the public row count (the catalogue's, recorded with every run), not estimated.

The budget rho is split in three equal parts: noisy 1-way marginals of every attribute, the choice of a maximum
spanning tree of attribute pairs by r - 1 exponential mechanisms (scores: how badly the 1-way model explains each
pair), and noisy 2-way marginals on the tree's edges. Values whose noisy 1-way count is under 3 sigma are merged
into one before selection (compress_domain): a post-processing of the 1-way release.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import jax
import networkx as nx
import numpy as np

jax.config.update("jax_enable_x64", True)  # mbi's estimation stalls in float32 on tables this size (its warning)
jax.config.update("jax_enable_compilation_cache", False)  # mbi compiles many small programs: the cache only slows it

from mbi import Dataset, Domain, LinearMeasurement  # noqa: E402
from mbi.estimation import MirrorDescent  # noqa: E402
from scipy.cluster.hierarchy import DisjointSet  # noqa: E402
from scipy.special import logsumexp  # noqa: E402

FINAL_ITERS = 3000  # for the model the table is sampled from (private-pgm: 10000; adult converges well before)


@dataclass
class Ledger:
    """Every release of the data, in order: what the accounting composes and the record keeps."""

    measurements: list[dict] = field(default_factory=list)  # {"clique": [...], "sigma": s, "cells": k}
    selections: list[float] = field(default_factory=list)  # exponential-mechanism epsilons (sensitivity 1)

    @property
    def sigmas(self) -> list[float]:
        return [m["sigma"] for m in self.measurements]


def measure(data: Dataset, cliques: list[tuple[str, ...]], sigma: float, rng: np.random.Generator,
            ledger: Ledger) -> list[LinearMeasurement]:
    """Noisy marginals of `cliques`, each with noise sigma * sqrt(len(cliques)) so that together they cost
    1 / (2 sigma^2) of rho (private-pgm's equal weights, normalised)."""
    scale = sigma * np.sqrt(len(cliques))
    found = []
    for clique in cliques:
        counts = np.asarray(data.project(clique).datavector(), dtype=np.float64)
        noisy = counts + rng.normal(0.0, scale, size=counts.size)
        ledger.measurements.append({"clique": list(clique), "sigma": float(scale), "cells": int(counts.size)})
        found.append(LinearMeasurement(noisy, clique, stddev=float(scale)))
    return found


def compress_domain(data: Dataset, oneway: list[LinearMeasurement]) -> tuple[Dataset, list, dict[str, np.ndarray]]:
    """Merge each attribute's values whose noisy count is under 3 sigma into one value (post-processing)."""
    mapping: dict[str, np.ndarray] = {}
    for measurement in oneway:
        (column,) = measurement.clique
        kept = np.asarray(measurement.noisy_measurement) >= 3 * float(measurement.stddev)
        if kept.all():
            continue
        codes = np.full(kept.size, int(kept.sum()), dtype=np.int64)  # merged values: the last code
        codes[kept] = np.arange(int(kept.sum()))
        mapping[column] = codes
    compressed = data.compress(mapping)
    return compressed, [m.compress(mapping, data.domain) for m in oneway], mapping


def decompress(codes: dict[str, np.ndarray], mapping: dict[str, np.ndarray],
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Original codes: a merged value becomes one of the values it merged, uniformly (post-processing)."""
    result = dict(codes)
    for column, forward in mapping.items():
        compressed = np.asarray(codes[column], dtype=np.int64)
        restored = np.empty_like(compressed)
        for value in range(int(forward.max()) + 1):
            sources = np.flatnonzero(forward == value)
            rows = compressed == value
            restored[rows] = sources[rng.integers(0, len(sources), size=int(rows.sum()))]
        result[column] = restored
    return result


def exponential_mechanism(scores: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """Index drawn with probability proportional to exp(epsilon / 2 * score) (sensitivity 1)."""
    logits = 0.5 * epsilon * scores
    return int(rng.choice(scores.size, p=np.exp(logits - logsumexp(logits))))


def simplex_projection(counts: np.ndarray, total: float) -> np.ndarray:
    """The closest vector (L2) to `counts` that is non-negative and sums to `total`."""
    ordered = np.sort(counts)[::-1]
    cumulative = np.cumsum(ordered) - total
    last = np.flatnonzero(ordered - cumulative / np.arange(1, counts.size + 1) > 0)[-1]
    return np.maximum(counts - cumulative[last] / (last + 1), 0.0)


def select(data: Dataset, rho: float, oneway: list[LinearMeasurement], rng: np.random.Generator, ledger: Ledger,
           total: float) -> list[tuple[str, str]]:
    """A spanning tree of attribute pairs, one exponential mechanism per edge, spending `rho` in all.

    A pair's score is how badly independence explains it: the L1 distance between its true counts and the product
    of the two noisy 1-way marginals (each projected onto counts summing to the table size; private-pgm fits an
    mbi model to the 1-way measurements, which for 1-way cliques alone is this product up to how a merged value is
    weighted, and took 7-10 s of JAX compilation). Sensitivity 1: one row moves one true count by one."""
    estimates = {}
    for measurement in oneway:
        (column,) = measurement.clique
        noisy = np.asarray(measurement.noisy_measurement, dtype=np.float64)
        weights = np.asarray(getattr(measurement.query, "weights", np.ones_like(noisy)), dtype=np.float64)
        estimates[column] = simplex_projection(noisy / weights, total) / total  # a merged value: its summed count
    candidates = list(itertools.combinations(data.domain.attributes, 2))
    errors = {}
    for a, b in candidates:
        estimated = np.outer(estimates[a], estimates[b]).ravel() * total
        errors[a, b] = float(np.abs(np.asarray(data.project((a, b)).datavector()) - estimated).sum())
    attributes = list(data.domain.attributes)
    forest = DisjointSet(attributes)
    edges = []
    epsilon = float(np.sqrt(8 * rho / (len(attributes) - 1)))
    for _ in range(len(attributes) - 1):
        candidates = [edge for edge in candidates if not forest.connected(*edge)]
        chosen = candidates[exponential_mechanism(np.array([errors[e] for e in candidates]), epsilon, rng)]
        ledger.selections.append(epsilon)
        forest.merge(*chosen)
        edges.append(chosen)
    return edges


def mst(data: Dataset, rho: float, rng: np.random.Generator, *, rows: int, iters: int = FINAL_ITERS):
    """(codes of `rows` synthetic records over data's domain, ledger of what was released)."""
    ledger = Ledger()
    total = float(data.records)  # the public row count (see the module's docstring)
    sigma = float(np.sqrt(3 / (2 * rho)))  # each of the three parts spends rho / 3 = 1 / (2 sigma^2)
    oneway = measure(data, [(column,) for column in data.domain.attributes], sigma, rng, ledger)
    compressed, oneway, mapping = compress_domain(data, oneway)
    edges = select(compressed, rho / 3, oneway, rng, ledger, total)
    twoway = measure(compressed, edges, sigma, rng, ledger)
    model = MirrorDescent().estimate(compressed.domain, oneway + twoway, known_total=total, iters=iters)
    codes = sample_tree(model, edges, list(data.domain.attributes), rows, rng)
    return decompress(codes, mapping, rng), ledger, [list(edge) for edge in edges]


def sample_tree(model, edges: list[tuple[str, str]], attributes: list[str], rows: int,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`rows` i.i.d. records of the fitted tree model (post-processing): the first attribute from its marginal, then
    each attribute given its parent along the tree, from the model's marginal on their edge (one of its cliques).
    mbi's own sampler compiled a program per attribute (~10 s) and draws from NumPy's global generator."""
    tree = nx.Graph()
    tree.add_nodes_from(attributes)
    tree.add_edges_from(edges)
    codes: dict[str, np.ndarray] = {}
    root = attributes[0]
    marginal = np.clip(np.asarray(model.project((root,)).datavector(), dtype=np.float64), 0.0, None)
    codes[root] = rng.choice(marginal.size, size=rows, p=marginal / marginal.sum())
    for parent, child in nx.bfs_edges(tree, root):
        joint = np.clip(np.asarray(model.project((parent, child)).datavector(flatten=False), dtype=np.float64), 0, None)
        sums = joint.sum(axis=1, keepdims=True)  # (parent values, 1)
        conditional = np.where(sums > 0, joint / np.where(sums > 0, sums, 1.0), 1.0 / joint.shape[1])
        cumulative = np.cumsum(conditional, axis=1)[codes[parent]]  # (rows, child values)
        drawn = (rng.random(rows)[:, None] * cumulative[:, -1:] > cumulative).sum(axis=1)
        codes[child] = np.minimum(drawn, joint.shape[1] - 1)
    return codes


def mbi_dataset(codes: dict[str, np.ndarray], shape: dict[str, int]) -> Dataset:
    return Dataset({name: np.asarray(codes[name], dtype=np.int64) for name in shape},
                   Domain(tuple(shape), tuple(shape.values())))

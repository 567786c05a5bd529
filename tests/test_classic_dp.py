"""Classic central-DP models (diffprivlib) and local DP in the sweep: pure epsilon-DP records, public bounds
(no PrivacyLeakWarning), no runs over an unused clipping grid, composition, and issue 4's accuracy checks."""

from __future__ import annotations

import json
import re
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import sklearn
from diffprivlib.models import GaussianNB, LogisticRegression, RandomForestClassifier
from diffprivlib.utils import PrivacyLeakWarning
from typer.testing import CliRunner

from engine.cli import app
from engine.config import SweepSpec
from engine.data import load_dataset
from engine.privacy.composition import compose_runs
from engine_support import make_spec, expand, plan_sweep, prepared_data, run_sweep
from engine.techniques.base import RunContext
from engine.techniques.registry import create_technique, get_technique_class
from engine.techniques.base import PURE_DP_ACCOUNTANT
from engine.techniques.estimators import flat, public_bounds, public_data_norm
from conftest import QUICK

CLASSIC = ("dp-logreg", "dp-naive-bayes", "dp-forest", "local-dp")
REPO = Path(__file__).resolve().parents[1]


# --- diffprivlib itself ------------------------------------------------------------------------------------
def test_scikit_learn_is_pinned_below_the_version_that_breaks_diffprivlib():
    # diffprivlib 0.6.6 fails with scikit-learn 1.8 (multi_class keyword) and 1.9 (import error).
    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    assert (major, minor) < (1, 8)
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in dependencies if d.startswith("scikit-learn"))
    pinned = re.search(r"==\s*(\d+)\.(\d+)", pin)
    assert pinned and (int(pinned[1]), int(pinned[2])) < (1, 8), pin


def test_privacy_leak_warning_is_an_error_in_this_suite():
    """pyproject's filterwarnings turns it into an error: a model left to read bounds from the data fails."""
    x, y = np.random.default_rng(0).uniform(-1, 1, (50, 3)), np.arange(50) % 2
    with pytest.raises(PrivacyLeakWarning):
        GaussianNB(epsilon=1.0).fit(x, y)


def test_every_diffprivlib_model_used_imports_and_fits_without_leaking():
    data = load_dataset("breast-cancer")
    x, y, x_test = flat(data.x_train), data.y_train, flat(data.x_test)
    bounds = public_bounds(data)
    models = [
        LogisticRegression(epsilon=1.0, data_norm=public_data_norm(data), random_state=0),
        GaussianNB(epsilon=1.0, bounds=bounds, random_state=0),
        RandomForestClassifier(epsilon=1.0, bounds=bounds, classes=[0, 1], n_estimators=3, random_state=0),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyLeakWarning)
        warnings.filterwarnings("ignore", message=r".*`disp` and `iprint` options", category=DeprecationWarning)
        for model in models:
            model.fit(x, y)
            assert model.predict_proba(x_test).shape == (len(x_test), 2)


def test_public_bounds_and_norm_come_from_the_catalogue_and_hold_for_the_rows():
    data = load_dataset("adult")
    lower, upper = public_bounds(data)
    assert np.all(data.x_train >= lower) and np.all(data.x_train <= upper)
    assert public_data_norm(data) == pytest.approx(np.sqrt(13))  # 5 numeric + 8 categorical, not sqrt(104)
    assert np.linalg.norm(data.x_train, axis=1).max() <= public_data_norm(data) + 1e-6


# --- in the sweep -------------------------------------------------------------------------------------------
def test_classic_techniques_expand_over_epsilon_and_seed_only():
    spec = make_spec(**{**QUICK, "techniques": (*CLASSIC, "dp-sgd"), "epsilons": (0.5, 2.0),
                        "clipping_norms": (0.5, 1.0, 2.0), "seeds": (0, 1)})
    configs = expand(spec)
    for name in CLASSIC:
        runs = [c for c in configs if c.technique == name]
        assert len(runs) == 2 * 2  # epsilons x seeds: no copies over the unused clipping grid
        assert all(c.max_grad_norm is None and c.delta == 0.0 and c.accountant == PURE_DP_ACCOUNTANT for c in runs)
        technique = get_technique_class(name)
        assert technique.uses_epsilon and not technique.uses_clipping and technique.pure_dp
    dp_sgd = [c for c in configs if c.technique == "dp-sgd"]
    assert len(dp_sgd) == 2 * 3 * 2 and all(c.delta == spec.delta and c.accountant == "rdp" for c in dp_sgd)


def test_delta_check_applies_only_to_runs_with_a_delta():
    plan_sweep(make_spec(**{**QUICK, "techniques": CLASSIC, "delta": 0.01}), None)  # pure runs: no 1/n check
    with pytest.raises(Exception, match="not below 1/n"):
        plan_sweep(make_spec(**{**QUICK, "techniques": ("dp-logreg", "dp-sgd"), "delta": 0.01}), None)


def test_records_say_pure_dp_mechanism_and_privacy_model(store):
    spec = make_spec(**{**QUICK, "techniques": (*CLASSIC, "dp-sgd"), "epsilons": (1.0,)})
    report = run_sweep(spec, store=store)
    assert report.failed == 0 and report.trained == len(CLASSIC) + 1
    records = {r["technique"]: r for r in store.records()}
    for name in CLASSIC:
        record = records[name]
        assert record["delta"] == 0.0 and record["accountant"] == PURE_DP_ACCOUNTANT
        assert record["epsilon"] <= record["target_epsilon"] == 1.0
        assert record["epsilon"] == pytest.approx(1.0, rel=1e-9)  # the whole budget, as diffprivlib counted it
        assert record["mechanism"] and record["estimator"]  # promoted from extra to their own columns
        assert sum(record["extra"]["epsilon_split"].values()) == pytest.approx(1.0)
        assert record["max_grad_norm"] is None and record["noise_multiplier"] is None
    assert {records[n]["trust_model"] for n in CLASSIC} == {"central", "local"}
    assert records["local-dp"]["trust_model"] == "local" and records["dp-logreg"]["trust_model"] == "central"
    # Each run is recorded with the model it really trained, never the sweep's MLP.
    assert {n: records[n]["model"] for n in CLASSIC} == {"dp-logreg": "logreg", "dp-naive-bayes": "naive-bayes",
                                                         "dp-forest": "forest", "local-dp": "logreg"}
    assert records["dp-sgd"]["model"] == "mlp"

    composed = compose_runs(store.records(), delta=1e-5)  # pure runs compose with DP-SGD (Decide page)
    assert composed.n_private == len(CLASSIC) + 1
    assert any("pure epsilon" in mechanism for mechanism in composed.mechanisms)
    total = sum(records[n]["epsilon"] for n in CLASSIC) + records["dp-sgd"]["epsilon"]
    assert max(r["epsilon"] for r in records.values()) < composed.epsilon <= total + 0.05


def test_cli_sweeps_and_shows_classic_techniques(isolated_store):
    runner = CliRunner()
    args = ["sweep", "--dataset", "breast-cancer", "--technique", ",".join(CLASSIC), "--epsilon", "1,4",
            "--clip", "0.5,1", "--seeds", "0", "--device", "cpu", "--quiet"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "8 runs, 0 cached, 8 to train" in first.output  # 4 techniques x 2 epsilons, not x 2 clipping norms
    front = runner.invoke(app, ["frontier", "--dataset", "breast-cancer", "--all", "--format", "json"])
    rows = json.loads(front.output)
    assert {row["technique"] for row in rows} == set(CLASSIC)  # each its own trace
    assert {row["accountant"] for row in rows} == {PURE_DP_ACCOUNTANT} and {row["delta"] for row in rows} == {0.0}
    table = runner.invoke(app, ["frontier", "--dataset", "breast-cancer", "--all"])
    assert table.exit_code == 0 and "local-dp" in table.output


# --- issue 4's accuracy checks on adult ---------------------------------------------------------------------
def _accuracies(name: str, epsilon: float, seeds=(0, 1, 2)) -> np.ndarray:
    accuracies = []
    for seed in seeds:
        config = expand(make_spec(dataset="adult", techniques=(name,), epsilons=(epsilon,), seeds=(seed,)))[0]
        result = create_technique(name).run(config, prepared_data(config), context=RunContext(device="cpu"))
        assert result.epsilon <= epsilon
        accuracies.append(result.accuracy)
    return np.asarray(accuracies)


def _mean_accuracy(name: str, epsilon: float, seeds=(0, 1, 2)) -> float:
    return float(np.mean(_accuracies(name, epsilon, seeds)))


@pytest.mark.parametrize("name", CLASSIC)
def test_adult_more_epsilon_is_not_worse_and_dp_logreg_reaches_080(name):
    """Issue 4: mean accuracy (seeds 0, 1, 2) at epsilon 10 is not below that at epsilon 0.1 beyond run-to-run noise;
    dp-logreg >= 0.80 at 10. The noise is secret, so each draw differs: dp-forest's curve is nearly flat on adult
    (means 0.80-0.81 at epsilon 0.1 and 0.81-0.82 at 10, seeds apart by up to 0.017), and one CI draw at 0.1 came
    out 0.007 above one at 10."""
    low, high = _accuracies(name, 0.1), _accuracies(name, 10.0)
    # Two standard errors of the difference of the means, and at least one point of accuracy.
    noise = max(0.01, 2 * float(np.sqrt(low.var(ddof=1) / len(low) + high.var(ddof=1) / len(high))))
    assert high.mean() >= low.mean() - noise, (name, low, high, noise)
    if name == "dp-logreg":
        assert high.mean() >= 0.80


def test_adult_local_dp_is_below_global_dp_at_equal_epsilon():
    for epsilon in (1.0, 10.0):
        assert _mean_accuracy("local-dp", epsilon) < _mean_accuracy("dp-logreg", epsilon)

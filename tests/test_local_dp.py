"""local-dp: the vectorised randomisers against diffprivlib's own mechanisms, the attribute layout, the
epsilon split, that only the training (and validation) records are ever randomised, and the curator's
post-processing: the debiased label prior, the forward-corrected model, decisions chosen on randomised records
only, and never scoring below the trivial rate."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from diffprivlib.mechanisms import Binary, ExponentialCategorical, LaplaceBoundedDomain
from scipy import stats

from engine.config import SweepSpec
from engine.data import get_dataset_info, load_dataset
from engine.data.attributes import attribute_layout, category_codes, max_row_norm, one_hot
from engine.errors import UnsupportedError
from engine.privacy.local_randomisers import (bounded_laplace, bounded_laplace_scale, debiased_frequencies,
                                              flip_matrix, k_randomised_response, keep_probability, unbiased_one_hot)
from engine.privacy.randomness import ReplayableRandomness
from engine.techniques.local_dp_learner import ForwardCorrectedLogisticRegression
from engine_support import make_spec, expand, prepared_data
from engine.techniques.base import RunContext
from engine.techniques.registry import create_technique
from engine.techniques import local_dp  # noqa: F401
from conftest import QUICK

SIGNIFICANCE = 1e-3  # seeded draws, so each verdict is fixed; a wrong distribution fails by a wide margin
TABLES = ["adult", "credit", "german-credit", "heart", "breast-cancer"]


# --- the randomisers, against diffprivlib ------------------------------------------------------------------
@pytest.mark.parametrize("epsilon", [0.05, 0.7, 5.0])
@pytest.mark.parametrize("value", [-1.0, -0.3, 0.9])
def test_bounded_laplace_matches_diffprivlib(epsilon, value):
    mechanism = LaplaceBoundedDomain(epsilon=epsilon, sensitivity=2.0, lower=-1.0, upper=1.0, random_state=1)
    reference = np.array([mechanism.randomise(value) for _ in range(2000)])
    ours = bounded_laplace(np.full(20000, value), epsilon=epsilon, lower=-1.0, upper=1.0,
                           rng=np.random.default_rng(2))
    assert ours.min() >= -1.0 and ours.max() <= 1.0
    assert stats.ks_2samp(reference, ours).pvalue > SIGNIFICANCE
    # and against the exact density: Laplace(value, b) restricted to [-1, 1], b from diffprivlib
    scale = bounded_laplace_scale(epsilon, -1.0, 1.0)
    laplace = stats.laplace(loc=value, scale=scale)
    low, high = laplace.cdf(-1.0), laplace.cdf(1.0)
    assert stats.kstest(ours, lambda y: (laplace.cdf(y) - low) / (high - low)).pvalue > SIGNIFICANCE


def test_the_distribution_tests_can_fail():
    """Negative control: Laplace-then-clip (point masses at the bounds) is a different mechanism; caught."""
    scale = bounded_laplace_scale(0.7, -1.0, 1.0)
    clipped = np.clip(0.9 + np.random.default_rng(3).laplace(0.0, scale, 20000), -1.0, 1.0)
    ours = bounded_laplace(np.full(20000, 0.9), epsilon=0.7, lower=-1.0, upper=1.0, rng=np.random.default_rng(2))
    assert stats.ks_2samp(clipped, ours).pvalue < SIGNIFICANCE


def test_bounded_laplace_scale_is_diffprivlibs():
    for epsilon in (0.01, 0.3, 2.0):
        mechanism = LaplaceBoundedDomain(epsilon=epsilon, sensitivity=2.0, lower=-1.0, upper=1.0)
        assert bounded_laplace_scale(epsilon, -1.0, 1.0) == pytest.approx(mechanism._find_scale(), rel=1e-9)
        assert bounded_laplace_scale(epsilon, -1.0, 1.0) >= 2.0 / epsilon  # never less noise than plain Laplace


def _unit_utility(n_values: int) -> list[tuple[str, str, float]]:
    names = [str(code) for code in range(n_values)]
    return [(a, b, 1.0) for i, a in enumerate(names) for b in names[i + 1:]]


@pytest.mark.parametrize("n_values", [2, 5, 42])
@pytest.mark.parametrize("epsilon", [0.1, 1.0, 5.0])
def test_k_randomised_response_matches_diffprivlib(n_values, epsilon):
    true_value = n_values // 2
    mechanism = ExponentialCategorical(epsilon=epsilon, utility_list=_unit_utility(n_values), random_state=1)
    reference = np.array([int(mechanism.randomise(str(true_value))) for _ in range(4000)])
    ours = k_randomised_response(np.full(20000, true_value), epsilon=epsilon, n_values=n_values,
                                 rng=np.random.default_rng(2))
    counts = np.stack([np.bincount(reference, minlength=n_values), np.bincount(ours, minlength=n_values)])
    seen = counts.sum(axis=0) > 0
    assert stats.chi2_contingency(counts[:, seen]).pvalue > SIGNIFICANCE
    # the keep probability is exactly k-RR's e^eps / (e^eps + k - 1)
    expected = np.exp(epsilon) / (np.exp(epsilon) + n_values - 1)
    assert keep_probability(epsilon, n_values) == pytest.approx(expected)
    assert stats.binomtest(int((ours == true_value).sum()), len(ours), expected).pvalue > SIGNIFICANCE
    others = np.bincount(ours[ours != true_value], minlength=n_values)
    others = np.delete(others, true_value)  # the other values are equally likely
    if n_values > 2:
        assert stats.chisquare(others).pvalue > SIGNIFICANCE


def test_binary_randomised_response_matches_diffprivlib_binary():
    mechanism = Binary(epsilon=0.8, value0="0", value1="1", random_state=1)
    reference = np.array([int(mechanism.randomise("1")) for _ in range(4000)])
    ours = k_randomised_response(np.ones(20000, dtype=int), epsilon=0.8, n_values=2, rng=np.random.default_rng(2))
    counts = np.stack([np.bincount(reference, minlength=2), np.bincount(ours, minlength=2)])
    assert stats.chi2_contingency(counts).pvalue > SIGNIFICANCE


def test_randomised_response_never_reports_outside_the_domain():
    codes = np.random.default_rng(0).integers(0, 7, 5000)
    out = k_randomised_response(codes, epsilon=0.01, n_values=7, rng=np.random.default_rng(1))
    assert out.min() >= 0 and out.max() <= 6 and set(np.unique(out)) == set(range(7))


# --- the attributes a record has -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", TABLES)
def test_layout_covers_every_column_once_and_bounds_the_row_norm(name):
    data = load_dataset(name)
    layout = attribute_layout(data)
    columns = sorted(column for attribute in layout for column in attribute.columns)
    assert columns == list(range(data.n_features))
    info = get_dataset_info(name)
    categorical = {attribute.name: attribute for attribute in layout if attribute.kind == "categorical"}
    assert set(categorical) == set(info.categorical)
    for column, categories in info.categorical.items():
        assert categorical[column].n_values == len(categories) + 1  # plus "other"
    # the public norm bound holds for every real row (train and test)
    for x in (data.x_train, data.x_test):
        assert np.linalg.norm(x, axis=1).max() <= max_row_norm(layout) + 1e-6
    for attribute in categorical.values():  # codes and one-hot are inverses
        block = data.x_train[:, list(attribute.columns)]
        np.testing.assert_array_equal(one_hot(category_codes(data.x_train, attribute), attribute), block)


def test_adult_attributes_are_the_catalogues():
    layout = attribute_layout(load_dataset("adult"))
    assert [a.name for a in layout if a.kind == "numeric"] == list(get_dataset_info("adult").numeric)
    assert len(layout) == 13  # 5 numeric + 8 categorical: not 104 one-hot columns


def test_images_have_no_attributes():
    with pytest.raises(UnsupportedError):
        attribute_layout(replace(load_dataset("breast-cancer"), is_image=True))


# --- the epsilon split ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TABLES)
@pytest.mark.parametrize("epsilon", [0.1, 1.0, 3.0, 10.0])
def test_epsilon_split_sums_to_epsilon(name, epsilon):
    layout = attribute_layout(load_dataset(name))
    split = local_dp.epsilon_split(layout, epsilon)
    assert list(split) == [a.name for a in layout] + ["label"]  # every attribute and the label, once
    assert len(set(split.values())) == 1  # even
    assert sum(split.values()) <= epsilon
    assert sum(split.values()) == pytest.approx(epsilon, rel=1e-12)


def test_heart_splits_over_missing_flags_too():
    split = local_dp.epsilon_split(attribute_layout(load_dataset("heart")), 1.0)
    assert "chol=missing" in split and "chol" in split


# --- only the training set is randomised ------------------------------------------------------------------
def _config(epsilon=2.0, seed=0, dataset="breast-cancer"):
    return expand(make_spec(**{**QUICK, "dataset": dataset, "techniques": ("local-dp",), "epsilons": (epsilon,),
                               "seeds": (seed,)}))[0]


def test_only_the_training_set_is_randomised(monkeypatch):
    """The owners of training and validation records randomise them; the test rows are never randomised."""
    config = _config()
    data = prepared_data(config)
    test_before = (data.x_test.copy(), data.y_test.copy())
    randomised, measured = [], []
    real_randomise, real_measure = local_dp.randomise_records, local_dp._measure

    def spy_randomise(x, y, **kwargs):
        randomised.append((x, y))
        return real_randomise(x, y, **kwargs)

    def spy_measure(model, data_, thresholds):
        measured.append(data_)
        return real_measure(model, data_, thresholds)

    monkeypatch.setattr(local_dp, "randomise_records", spy_randomise)
    monkeypatch.setattr(local_dp, "_measure", spy_measure)
    result = create_technique("local-dp").run(config, data, context=RunContext(device="cpu"))

    assert [x is data.x_train for x, _ in randomised] == [True, False]
    assert randomised[1][0] is data.x_val and randomised[1][1] is data.y_val  # validation owners randomise too
    assert len(measured) == 1 and measured[0] is data  # scored on the real (never randomised) test rows
    np.testing.assert_array_equal(data.x_test, test_before[0])
    np.testing.assert_array_equal(data.y_test, test_before[1])
    split = result.extra["epsilon_split"]
    assert sum(split.values()) == pytest.approx(config.target_epsilon) and result.epsilon <= config.target_epsilon
    assert result.extra["mechanism"].startswith("local")
    assert create_technique("local-dp").trust_model == "local"


def test_randomised_records_stay_in_the_encoded_domain():
    data = load_dataset("heart")
    layout = attribute_layout(data)
    x, y = local_dp.randomise_records(data.x_train, data.y_train, layout=layout, n_classes=2,
                                      split=local_dp.epsilon_split(layout, 1.0), rng=np.random.default_rng(0))
    assert x.shape == data.x_train.shape and x.dtype == data.x_train.dtype and set(np.unique(y)) <= {0, 1}
    assert np.abs(x).max() <= 1.0
    for attribute in layout:
        block = x[:, list(attribute.columns)]
        if attribute.kind == "categorical":
            assert set(np.unique(block)) <= {0.0, 1.0} and block.sum(axis=1).max() <= 1
        if attribute.kind == "missing":
            value = next(a for a in layout if a.name == attribute.name.removesuffix("=missing")).columns[0]
            assert np.all(x[block[:, 0] == 1, value] == -1.0)  # reported missing reads as the imputed bound
    assert not np.array_equal(x, data.x_train)


def test_more_epsilon_keeps_more_of_the_data():
    data = load_dataset("adult")
    layout = attribute_layout(data)
    changed = []
    for epsilon in (0.5, 5.0, 50.0):
        x, y = local_dp.randomise_records(data.x_train, data.y_train, layout=layout, n_classes=2,
                                          split=local_dp.epsilon_split(layout, epsilon), rng=np.random.default_rng(0))
        changed.append((np.mean(y != data.y_train), np.abs(x - data.x_train).mean()))
    assert changed[0][0] > changed[1][0] > changed[2][0] and changed[0][1] > changed[1][1] > changed[2][1]


# --- the curator's post-processing: debiased prior, corrected model, private decisions (issue 11) ------------------
@pytest.mark.parametrize("n_values, truth", [(2, [0.88, 0.12]), (4, [0.5, 0.3, 0.15, 0.05])])
@pytest.mark.parametrize("epsilon", [0.1, 1.0])
def test_debiased_prior_is_unbiased(n_values, truth, epsilon):
    """Independent reference: simulate k-RR on known labels many times; the textbook estimator (f - q) / (p - q)
    and ours agree, and their mean over repetitions is the true frequency."""
    rng = np.random.default_rng(11)
    truth = np.array(truth)
    labels = np.repeat(np.arange(n_values), (truth * 1000).astype(int))  # 1000 known labels
    p = np.exp(epsilon) / (np.exp(epsilon) + n_values - 1)
    q = (1 - p) / (n_values - 1)
    estimates = []
    for _ in range(1500):
        reported = k_randomised_response(labels, epsilon=epsilon, n_values=n_values, rng=rng)
        direct = (np.bincount(reported, minlength=n_values) / len(reported) - q) / (p - q)
        ours = unbiased_one_hot(reported, epsilon=epsilon, n_values=n_values).mean(axis=0)
        np.testing.assert_allclose(ours, direct, atol=1e-9)
        clipped = debiased_frequencies(reported, epsilon=epsilon, n_values=n_values)
        assert clipped.min() >= 0 and clipped.sum() == pytest.approx(1.0)  # on the simplex
        if direct.min() >= 0:
            np.testing.assert_allclose(clipped, direct, atol=1e-9)  # the projection only bites outside it
        estimates.append(ours)
    estimates = np.array(estimates)
    error = estimates.std(axis=0) / np.sqrt(len(estimates))
    assert np.all(np.abs(estimates.mean(axis=0) - truth) < 4 * error + 1e-3)


def test_flip_matrix_is_the_randomisers_channel():
    channel = flip_matrix(0.7, 3)
    np.testing.assert_allclose(channel.sum(axis=1), 1.0)
    reported = k_randomised_response(np.full(60000, 1), epsilon=0.7, n_values=3, rng=np.random.default_rng(4))
    np.testing.assert_allclose(np.bincount(reported, minlength=3) / 60000, channel[1], atol=0.01)


def test_forward_correction_recovers_the_clean_posterior():
    """Labels from a known logistic model, flipped by k-RR: the corrected model's posteriors match the clean ones
    (an ordinary fit on the flipped labels is shrunk towards 1/2)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20000, 3))
    clean = 1 / (1 + np.exp(-(x @ np.array([2.0, -1.0, 0.5]) - 1.5)))  # P(y = 1 | x), rare positives
    y = (rng.random(len(x)) < clean).astype(int)
    epsilon = 1.0
    reported = k_randomised_response(y, epsilon=epsilon, n_values=2, rng=rng)
    model = ForwardCorrectedLogisticRegression(flip_matrix(epsilon, 2), C=1.0).fit(x, reported)
    posterior = model.predict_proba(x)[:, 1]
    assert np.abs(posterior - clean).mean() < 0.05
    assert posterior.mean() == pytest.approx(y.mean(), abs=0.02)


def _imbalanced_adult(positive_every: int = 3) -> tuple:
    """Adult with two thirds of its positives dropped from every split: about 9.5% positive, real signal."""
    config = _config(dataset="adult")
    data = prepared_data(config)
    rng = np.random.default_rng(0)

    def thin(x, y, limit):
        rows = np.flatnonzero((y == 0) | (np.cumsum(y == 1) % positive_every == 0))
        rows = np.sort(rng.permutation(rows)[:limit])
        return x[rows], y[rows]

    (xt, yt), (xv, yv), (xs, ys) = thin(data.x_train, data.y_train, 12000), thin(data.x_val, data.y_val, 3000), \
        thin(data.x_test, data.y_test, 4000)
    return config, replace(data, x_train=xt, y_train=yt, x_val=xv, y_val=yv, x_test=xs, y_test=ys)


@pytest.mark.parametrize("epsilon", [1.0, 4.0, 10.0])
def test_never_below_the_trivial_rate_on_an_imbalanced_table(epsilon):
    config, data = _imbalanced_adult()
    assert 0.08 <= data.y_train.mean() <= 0.15
    trivial = float(np.mean(data.y_test == 0))  # the training rows' commonest class is 0
    for replicate in range(2):
        result = create_technique("local-dp").run(replace(config, target_epsilon=epsilon), data,
                                                  context=RunContext(device="cpu",
                                                                     randomness=ReplayableRandomness(replicate)))
        assert result.balanced_accuracy >= 0.5 - 0.03, result.extra["decisions"]
        assert result.accuracy >= trivial - 0.01, result.extra["decisions"]
        for rule in result.extra["decisions"].values():  # either the corrected model, or said openly
            assert rule["rule"] == "corrected posterior" or rule["rule"].startswith("fell back to the majority class")


def test_fallback_scores_exactly_the_trivial_rate():
    config, data = _imbalanced_adult()
    result = create_technique("local-dp").run(replace(config, target_epsilon=0.5), data,
                                              context=RunContext(device="cpu", randomness=ReplayableRandomness(3)))
    assert result.extra["decision_rule"] == "fell back to the majority class (0)"
    assert result.balanced_accuracy == 0.5 and result.accuracy == pytest.approx(np.mean(data.y_test == 0))


def test_beats_the_trivial_rate_at_a_large_epsilon():
    config = _config(dataset="adult", epsilon=20.0)
    data = prepared_data(config)
    result = create_technique("local-dp").run(config, data, context=RunContext(device="cpu"))
    assert result.extra["decisions"]["balanced_accuracy"]["rule"] == "corrected posterior"
    assert result.balanced_accuracy > 0.65 and result.roc_auc > 0.75


def test_randomised_records_not_raw_ones_set_the_threshold(monkeypatch):
    """Under local DP the curator never holds a raw record, validation rows included: the threshold comes from the
    randomised reports (out-of-fold, k-RR corrected); the raw-label threshold search is never called."""
    from engine.techniques import metrics

    def raw_search(*args, **kwargs):
        raise AssertionError("a threshold was chosen on raw validation labels")

    monkeypatch.setattr(metrics, "choose_threshold", raw_search)
    sent, chosen_on = [], []
    real_randomise, real_choose = local_dp.randomise_records, local_dp.choose_thresholds

    def spy_randomise(x, y, **kwargs):
        sent.append(real_randomise(x, y, **kwargs))
        return sent[-1]

    def spy_choose(scores, reported, **kwargs):
        chosen_on.append(reported)
        return real_choose(scores, reported, **kwargs)

    monkeypatch.setattr(local_dp, "randomise_records", spy_randomise)
    monkeypatch.setattr(local_dp, "choose_thresholds", spy_choose)
    config = _config(dataset="heart", epsilon=10.0)
    data = prepared_data(config)
    result = create_technique("local-dp").run(config, data, context=RunContext(device="cpu"))
    (_, y_train_sent), (_, y_val_sent) = sent
    assert len(chosen_on) == 1
    np.testing.assert_array_equal(chosen_on[0], np.concatenate([y_train_sent, y_val_sent]))
    assert not np.array_equal(y_val_sent, data.y_val)  # at epsilon 10 over 16 shares some labels flip
    assert "randomised records" in result.extra["decisions_chosen_on"]
    objective = result.extra["decision_objective"]  # heart declares a balanced label: accuracy
    assert objective == "accuracy" and result.decision_threshold == result.extra["decisions"][objective]["threshold"]

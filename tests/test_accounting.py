"""Privacy accounting: properties of the pure functions, and agreement with an independent reference
(Google's dp-accounting PLD accountant)."""

import pytest
from dp_accounting.pld import privacy_loss_distribution
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.privacy import epsilon_for, noise_for, steps_and_sample_rate
from engine.privacy.calibration import calibrated_noise

DELTA = 1e-5
STEPS, RATE = 200, 0.02


def pld_epsilon(noise_multiplier, sample_rate, steps, delta):
    distribution = privacy_loss_distribution.from_gaussian_mechanism(
        noise_multiplier, sampling_prob=sample_rate, value_discretization_interval=1e-3)
    return distribution.self_compose(steps).get_epsilon_for_delta(delta)


@settings(max_examples=15, deadline=None)
@given(sigma=st.floats(0.6, 8.0), extra=st.floats(0.05, 4.0))
def test_more_noise_never_gives_more_epsilon(sigma, extra):
    low_noise = epsilon_for(noise_multiplier=sigma, sample_rate=RATE, steps=STEPS, delta=DELTA, accountant="rdp")
    high_noise = epsilon_for(noise_multiplier=sigma + extra, sample_rate=RATE, steps=STEPS, delta=DELTA, accountant="rdp")
    assert high_noise <= low_noise


@settings(max_examples=8, deadline=None)
@given(target=st.floats(0.1, 10.0))
def test_noise_for_round_trips_through_epsilon_for(target):
    sigma = noise_for(target_epsilon=target, delta=DELTA, sample_rate=RATE, steps=STEPS, accountant="rdp")
    reported = epsilon_for(noise_multiplier=sigma, sample_rate=RATE, steps=STEPS, delta=DELTA, accountant="rdp")
    assert 0.99 * target <= reported <= target


@pytest.mark.parametrize("target", [0.05, 1.0, 8.0])
def test_prv_calibration_lands_within_one_percent_below_target(target):
    steps, rate = steps_and_sample_rate(32561, 512, 10)  # Adult's standard run: 640 steps at q = 1/64
    sigma = noise_for(target_epsilon=target, delta=DELTA, sample_rate=rate, steps=steps, accountant="prv")
    reported = epsilon_for(noise_multiplier=sigma, sample_rate=rate, steps=steps, delta=DELTA, accountant="prv",
                           epsilon_scale=target)
    assert 0.99 * target <= reported <= target


@pytest.mark.parametrize("start", [0.25, 4.0])
def test_prv_secant_search_lands_in_the_window_from_a_distant_start(start):
    """The search noise_for ends with, started a factor 4 off: it still lands in [0.99 x target, target], as
    Opacus' bisection does, and on nearly the same noise."""
    from opacus.accountants.utils import get_noise_multiplier

    from engine.privacy.accounting import _accountant_options, _secant_prv

    steps, rate, target = 640, 1 / 64, 1.0
    opacus_sigma = get_noise_multiplier(target_epsilon=target, target_delta=DELTA, sample_rate=rate, steps=steps,
                                        accountant="prv", epsilon_tolerance=0.01 * target,
                                        **_accountant_options("prv", target))
    sigma = _secant_prv(opacus_sigma * start, target_epsilon=target, delta=DELTA, sample_rate=rate, steps=steps,
                        coarseness=1, offset=0.0)
    reported = epsilon_for(noise_multiplier=sigma, sample_rate=rate, steps=steps, delta=DELTA, accountant="prv",
                           epsilon_scale=target)
    assert 0.99 * target <= reported <= target
    assert sigma == pytest.approx(opacus_sigma, rel=0.02)


@pytest.mark.parametrize("sigma", [0.8, 1.709, 4.0])
def test_prv_agrees_with_dp_accounting_pld_and_rdp_is_more_conservative(sigma):
    steps, rate = 640, 1 / 64
    reference = pld_epsilon(sigma, rate, steps, DELTA)
    prv = epsilon_for(noise_multiplier=sigma, sample_rate=rate, steps=steps, delta=DELTA, accountant="prv")
    rdp = epsilon_for(noise_multiplier=sigma, sample_rate=rate, steps=steps, delta=DELTA, accountant="rdp")
    assert prv == pytest.approx(reference, rel=0.03)
    assert rdp >= reference  # RDP is a valid upper bound, looser than PLD/PRV


def test_steps_and_sample_rate_follow_opacus_poisson_loader():
    assert steps_and_sample_rate(32561, 512, 10) == (640, 1 / 64)
    assert steps_and_sample_rate(100, 512, 3) == (3, 1.0)


def test_unreachable_budget_and_bad_inputs_raise_config_errors():
    with pytest.raises(ConfigError, match="positive"):
        noise_for(target_epsilon=0, delta=DELTA, sample_rate=RATE, steps=STEPS, accountant="rdp")
    with pytest.raises(ConfigError, match="accountant"):
        epsilon_for(noise_multiplier=1.0, sample_rate=RATE, steps=STEPS, delta=DELTA, accountant="gdp")
    with pytest.raises(ConfigError, match="No noise level reaches"):
        noise_for(target_epsilon=1e-4, delta=DELTA, sample_rate=1.0, steps=10_000, accountant="rdp")


def test_calibration_is_cached_by_the_store(store):
    args = dict(target_epsilon=2.0, delta=DELTA, sample_rate=RATE, steps=STEPS, accountant="rdp")
    first = calibrated_noise(**args, cache=store)
    # A poisoned cache entry proves the second call reads the cache instead of recomputing.
    from engine.privacy.calibration import calibration_key

    store.put_noise(calibration_key(**args), 123.0)
    assert calibrated_noise(**args, cache=store) == 123.0
    assert first != 123.0


def test_calibrated_noises_answer_each_question_once_together_and_keep_errors_apart(store, monkeypatch):
    """Several questions at once (computed in threads): each answer equals calibrated_noise's, an unreachable epsilon
    comes back as its error without failing the others, equal questions are computed once, and the store keeps
    every answer (a second call reads them)."""
    from engine.privacy import calibration
    from engine.privacy.calibration import calibrated_noises, calibration_key

    asked = []
    monkeypatch.setattr(calibration, "noise_for", lambda **question: asked.append(question) or noise_for(**question))
    questions = [dict(target_epsilon=epsilon, delta=DELTA, sample_rate=RATE, steps=STEPS, accountant="rdp")
                 for epsilon in (0.5, 2.0, 0.5)]
    unreachable = dict(target_epsilon=1e-4, delta=DELTA, sample_rate=1.0, steps=10_000, accountant="rdp")
    answers = calibrated_noises([*questions, unreachable], store)
    assert len(asked) == 3  # 0.5, 2 and the unreachable one
    assert answers[:3] == [calibrated_noise(**question) for question in questions]
    assert answers[0] == answers[2] and answers[0] > answers[1]
    assert isinstance(answers[3], ConfigError)
    store.put_noise(calibration_key(**questions[1]), 123.0)
    assert calibrated_noises(questions, store) == [answers[0], 123.0, answers[0]]

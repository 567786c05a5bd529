"""Pure functions around Opacus' accountants: epsilon for a noise level, and noise for a target epsilon.

Only real accountants (Opacus RDP or PRV) are used; GDP is refused because it underestimates epsilon.
Formulas stay here, free of state, as Opacus splits accountants/analysis from accountants/*.py.
"""

from __future__ import annotations

import functools
import math
import warnings

from opacus.accountants import create_accountant
from scipy import optimize, stats
from opacus.accountants.utils import get_noise_multiplier

from engine.config import ACCOUNTANTS
from engine.errors import ConfigError

RELATIVE_TOLERANCE = 0.01  # calibrated epsilon lies in [0.99 x target, target]
COARSE_SEARCH = 10  # PRV noise search: its first evaluations this many times coarser than the final ones (noise_for)
SECANT_STEPS = 8  # PRV evaluations, at most, at each precision of that search
NOISE_SEARCH = "clt-start, prv-secant"  # how noise_for searches: part of a cached calibration's key
# Opacus' default RDP orders stop at 63, too low for epsilon below ~0.3 at delta 1e-5 (the bound needs
# log(1/delta) / (alpha - 1) < epsilon); extend them so small budgets get a tight RDP bound.
RDP_ORDERS = ([1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + list(range(64, 256, 8))
              + list(range(256, 1025, 64)) + [1536, 2048, 3072, 4096])


def _check_accountant(accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise ConfigError(f"Unknown accountant {accountant!r}: choose one of {', '.join(ACCOUNTANTS)}.")


def _accountant_options(accountant: str, epsilon_scale: float) -> dict:
    # PRV's default absolute eps_error (0.01) is 20% of epsilon 0.05; keep its error well below our tolerance.
    if accountant == "prv":
        return {"eps_error": min(0.01, RELATIVE_TOLERANCE * epsilon_scale / 4)}
    return {"alphas": RDP_ORDERS}


def steps_and_sample_rate(n_train: int, batch_size: int, epochs: int) -> tuple[int, float]:
    """Poisson sampling as Opacus does it: ceil(n / B) steps per epoch, each row kept with rate 1 / that."""
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    return epochs * steps_per_epoch, 1.0 / steps_per_epoch


def epsilon_for(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str,
                epsilon_scale: float = 1.0) -> float:
    """Epsilon spent by `steps` Poisson-subsampled Gaussian steps, as the named accountant reports it."""
    _check_accountant(accountant)
    return _epsilon(float(noise_multiplier), float(sample_rate), int(steps), float(delta), accountant,
                    float(epsilon_scale))


@functools.lru_cache(maxsize=4096)  # a pure function of its arguments; calibration's last evaluation is asked again
def _epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str,
             epsilon_scale: float) -> float:
    tracker = create_accountant(mechanism=accountant)
    tracker.history = [(noise_multiplier, sample_rate, steps)]
    with warnings.catch_warnings():
        # At very small epsilon even order 4096 is optimal: the bound stays valid (an upper bound), only looser.
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(tracker.get_epsilon(delta=delta, **_accountant_options(accountant, epsilon_scale)))


def noise_for(*, target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """Smallest noise multiplier (to 1% in epsilon) whose epsilon does not exceed the target.

    RDP: Opacus' search (get_noise_multiplier). PRV: a PRV evaluation's cost grows about as 1 / eps_error, and
    Opacus' bisection at full precision spent ~8 s at epsilon 0.1 and ~34 s at 0.05 on adult's standard run. So a
    central-limit guess (_clt_start) starts secant steps at a precision COARSE_SEARCH times coarser, aimed where the
    full-precision epsilon will be in the window (_secant_prv), and their answer starts the full-precision steps
    (usually one evaluation). The answer obeys Opacus' rule: epsilon_for (full precision) at it lies in
    [0.99 x target, target]; Opacus' bisection is the fallback."""
    _check_accountant(accountant)
    if target_epsilon <= 0:
        raise ConfigError(f"epsilon must be positive, got {target_epsilon!r}.")
    question = dict(target_epsilon=target_epsilon, delta=delta, sample_rate=sample_rate, steps=steps)
    try:
        with warnings.catch_warnings():
            # The search probes huge noise levels whose best RDP order is the largest one: expected, not a problem.
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            if accountant == "prv":
                fine_error = _accountant_options("prv", target_epsilon)["eps_error"]
                start = _clt_start(**question)
                # PRV reports its estimate plus eps_error: a coarse epsilon sits (coarse - fine) error above the fine one
                coarse = _secant_prv(start, **question, coarseness=COARSE_SEARCH,
                                     offset=fine_error * (COARSE_SEARCH - 1))
                if (found := _secant_prv(coarse or start, **question, coarseness=1, offset=0.0)) is not None:
                    return found
            return float(get_noise_multiplier(  # RDP, or PRV not settled by the secant steps (not seen in practice)
                target_epsilon=target_epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps,
                accountant=accountant, epsilon_tolerance=RELATIVE_TOLERANCE * target_epsilon,
                **_accountant_options(accountant, target_epsilon),
            ))
    except ValueError as exc:  # Opacus: "The privacy budget is too low."
        raise ConfigError(
            f"No noise level reaches epsilon {target_epsilon} with delta {delta} over {steps} steps at sample "
            f"rate {sample_rate:.4g}: raise epsilon, or train fewer epochs / with a smaller batch."
        ) from exc


def _clt_start(*, target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """Where the PRV search starts: the noise the central-limit (mu-GDP) approximation of the Poisson-subsampled
    Gaussian gives (Bu, Dong, Long & Su 2020: mu = q sqrt(T (e^(1/sigma^2) - 1))), solved for sigma. It is only a
    guess (it underestimates epsilon, which is why GDP is never an accountant here); the PRV steps decide."""
    def delta_at(mu: float) -> float:  # the mu-GDP trade-off's delta at the target epsilon (Dong, Roth & Su 2019)
        return (stats.norm.cdf(-target_epsilon / mu + mu / 2)
                - math.exp(target_epsilon) * stats.norm.cdf(-target_epsilon / mu - mu / 2))

    try:
        mu = optimize.brentq(lambda mu: delta_at(mu) - delta, 1e-6, 100.0)
    except ValueError:  # no root in range: any start will do
        return 1.0
    return 1.0 / math.sqrt(math.log1p((mu / sample_rate) ** 2 / steps))


def _secant_prv(sigma: float, *, target_epsilon: float, delta: float, sample_rate: float, steps: int,
                coarseness: float, offset: float) -> float | None:
    """From `sigma`, a noise multiplier whose PRV epsilon, at eps_error `coarseness` times the full-precision one,
    lies in [0.99 x target, target] + offset (None after SECANT_STEPS evaluations, or if PRV fails there): secant
    steps on log epsilon against log sigma through the last two evaluations (epsilon is close to a power of sigma),
    kept inside the bracket found so far and halving it whenever a secant step would leave it."""
    tracker = create_accountant(mechanism="prv")
    eps_error = _accountant_options("prv", target_epsilon)["eps_error"] * coarseness
    window = (math.log((1 - RELATIVE_TOLERANCE) * target_epsilon + offset), math.log(target_epsilon + offset))
    aim = math.log((1 - RELATIVE_TOLERANCE / 2) * target_epsilon + offset)  # the window's middle

    def log_epsilon(log_sigma: float) -> float:
        if coarseness == 1:  # exactly what epsilon_for reports for the run (and remembers for when it is asked)
            return math.log(epsilon_for(noise_multiplier=math.exp(log_sigma), sample_rate=sample_rate, steps=steps,
                                        delta=delta, accountant="prv", epsilon_scale=target_epsilon))
        tracker.history = [(math.exp(log_sigma), sample_rate, steps)]
        return math.log(tracker.get_epsilon(delta=delta, eps_error=eps_error))

    over: tuple[float, float] | None = None  # (log sigma, log epsilon) with epsilon over the target: too little noise
    under: tuple[float, float] | None = None  # ... with epsilon under the window: more noise than needed
    previous: tuple[float, float] | None = None
    log_sigma = math.log(sigma)
    for _ in range(SECANT_STEPS):
        try:
            point = (log_sigma, log_epsilon(log_sigma))
        except (ValueError, ArithmeticError):  # PRV cannot be evaluated this far out: leave it to the fallback
            return None
        if window[0] <= point[1] <= window[1]:
            return math.exp(log_sigma)
        if point[1] > window[1]:
            over = point
        else:
            under = point
        # d log eps / d log sigma through the last two points (-1 to start: epsilon ~ 1 / sigma for large sigma)
        slope = (point[1] - previous[1]) / (point[0] - previous[0]) if previous else -1.0
        log_sigma = point[0] + (aim - point[1]) / min(slope, -1e-3)
        if over and under and not over[0] < log_sigma < under[0]:
            log_sigma = (over[0] + under[0]) / 2
        previous = point
    return None

"""Pure functions around Opacus' accountants: epsilon for a noise level, and noise for a target epsilon.

Only real accountants (Opacus RDP or PRV) are used; GDP is refused because it underestimates epsilon.
Formulas stay here, free of state, as Opacus splits accountants/analysis from accountants/*.py.
"""

from __future__ import annotations

import math
import warnings

from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier

from engine.config import ACCOUNTANTS
from engine.errors import ConfigError

RELATIVE_TOLERANCE = 0.01  # calibrated epsilon lies in [0.99 x target, target]
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
    tracker = create_accountant(mechanism=accountant)
    tracker.history = [(noise_multiplier, sample_rate, steps)]
    with warnings.catch_warnings():
        # At very small epsilon even order 4096 is optimal: the bound stays valid (an upper bound), only looser.
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(tracker.get_epsilon(delta=delta, **_accountant_options(accountant, epsilon_scale)))


def noise_for(*, target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """Smallest noise multiplier (to 1% in epsilon) whose epsilon does not exceed the target."""
    _check_accountant(accountant)
    if target_epsilon <= 0:
        raise ConfigError(f"epsilon must be positive, got {target_epsilon!r}.")
    try:
        with warnings.catch_warnings():
            # The search probes huge noise levels whose best RDP order is the largest one: expected, not a problem.
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return float(get_noise_multiplier(
                target_epsilon=target_epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps,
                accountant=accountant, epsilon_tolerance=RELATIVE_TOLERANCE * target_epsilon,
                **_accountant_options(accountant, target_epsilon),
            ))
    except ValueError as exc:  # Opacus: "The privacy budget is too low."
        raise ConfigError(
            f"No noise level reaches epsilon {target_epsilon} with delta {delta} over {steps} steps at sample "
            f"rate {sample_rate:.4g}: raise epsilon, or train fewer epochs / with a smaller batch."
        ) from exc

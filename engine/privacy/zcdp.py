"""zCDP accounting for marginal-based synthesizers (MST, AIM), through Google's dp-accounting.

MST and AIM spend a zCDP budget rho (Bun & Steinke 2016): a Gaussian measurement of a count vector with L2
sensitivity 1 and noise sigma costs 1 / (2 sigma^2); an exponential-mechanism selection at epsilon with a
sensitivity-1 quality costs epsilon^2 / 8 (Cesar & Rogers 2021, bounded range). The papers convert rho to
(epsilon, delta) with cdp2adp (Canonne, Kamath & Steinke 2020). Here every release is composed as a dp-accounting
event (GaussianDpEvent per measurement, ZCDpEvent per selection) by its RDP accountant, whose conversion to
(epsilon, delta) is the same family of bounds; the run records that accountant's epsilon and the ledger the
events came from, so anyone can recompute both.
"""

from __future__ import annotations

from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant

ACCOUNTANT = "zcdp-rdp"  # recorded as every synthesizer run's accountant (Technique.own_accountant)
ACCOUNTANT_DESCRIPTION = ("zCDP: Gaussian measurements (rho = 1/(2 sigma^2)) and exponential-mechanism selections "
                          "(rho = epsilon^2/8) composed by dp-accounting's RdpAccountant, converted to (epsilon, delta)")
CALIBRATION_STEPS = 80


def epsilon_for_rho(rho: float, delta: float) -> float:
    """(epsilon at delta) of a rho-zCDP release, by dp-accounting's RDP accountant."""
    accountant = rdp_privacy_accountant.RdpAccountant()
    accountant.compose(dp_event.ZCDpEvent(rho))
    return float(accountant.get_epsilon(delta))


def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """The largest rho whose (epsilon at delta) is at most `epsilon` (bisection; the bound is monotone in rho)."""
    low, high = 0.0, max(1.0, epsilon)
    while epsilon_for_rho(high, delta) <= epsilon:
        low, high = high, high * 2
    for _ in range(CALIBRATION_STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if epsilon_for_rho(middle, delta) <= epsilon else (low, middle)
    return low


def ledger_rho(sigmas: list[float], selection_epsilons: list[float]) -> float:
    """rho of a ledger: Gaussian measurements (sensitivity 1) and exponential-mechanism selections."""
    return sum(1.0 / (2.0 * sigma ** 2) for sigma in sigmas) + sum(e ** 2 / 8.0 for e in selection_epsilons)


def ledger_epsilon(sigmas: list[float], selection_epsilons: list[float], delta: float) -> float:
    """(epsilon at delta) of a ledger, each release one dp-accounting event."""
    accountant = rdp_privacy_accountant.RdpAccountant()
    for sigma in sigmas:
        accountant.compose(dp_event.GaussianDpEvent(sigma))  # noise multiplier = sigma / sensitivity 1
    for epsilon in selection_epsilons:
        accountant.compose(dp_event.ZCDpEvent(epsilon ** 2 / 8.0))
    return float(accountant.get_epsilon(delta))

"""What an audit measured, as one record: the epsilon lower bound, the attack's ROC figures, and the verdict.

A breach is a measured lower bound above the audited model's own epsilon: the bound holds at the stated
confidence, so the guarantee is refuted at that confidence. That is never noise to be explained away: it is
a bug in the implementation or an assumption that does not hold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.analysis.decide import FALSE_POSITIVE_RATES
from engine.audit.statistics import (Interval, OneRunBound, RateAtFpr, area_under_curve, epsilon_lower_bound,
                                     true_positive_rate_at)

BREACH_MESSAGE = "measured leak above the guarantee: a bug or a broken assumption"
INTERVALS = ("TPR: exact binomial (Clopper-Pearson) given the threshold taken from the non-members; AUC: "
             "percentile bootstrap; epsilon: one-sided lower bound of Steinke et al. 2023, Bonferroni over the "
             "guess counts tried")


@dataclass(frozen=True)
class AuditFigures:
    epsilon: float | None  # the audited model's own epsilon (None: no guarantee, e.g. the baseline)
    delta: float | None
    lower_bound: OneRunBound
    rates: tuple[RateAtFpr, ...]
    auc: Interval
    n_in: int  # rows (or canaries) that were in the training set
    n_out: int
    extra: dict[str, Any] = field(default_factory=dict)  # models trained, test accuracy, seconds

    @property
    def breach(self) -> bool:
        return self.epsilon is not None and self.lower_bound.epsilon > self.epsilon

    def rate_at(self, fpr: float) -> RateAtFpr | None:
        return next((rate for rate in self.rates if abs(rate.fpr - fpr) < 1e-12), None)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["breach"] = self.breach
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "AuditFigures":
        rates = tuple(RateAtFpr(**{**rate, "tpr": Interval(**rate["tpr"])}) for rate in values["rates"])
        return cls(epsilon=values["epsilon"], delta=values["delta"], lower_bound=OneRunBound(**values["lower_bound"]),
                   rates=rates, auc=Interval(**values["auc"]), n_in=values["n_in"], n_out=values["n_out"],
                   extra=values.get("extra") or {})


def measure(in_scores: np.ndarray, out_scores: np.ndarray, *, epsilon: float | None, delta: float | None,
            confidence: float, extra: dict[str, Any] | None = None) -> AuditFigures:
    """Every figure of an audit from the scores of included and excluded rows (higher = more likely in)."""
    in_scores, out_scores = np.asarray(in_scores, float), np.asarray(out_scores, float)
    if len(in_scores) == 0 or len(out_scores) == 0:
        raise ValueError("An audit needs rows on both sides (in and out of the training set).")
    bound = epsilon_lower_bound(in_scores, out_scores, delta=delta or 0.0, confidence=confidence)
    rates = tuple(true_positive_rate_at(in_scores, out_scores, fpr, epsilon=epsilon, delta=delta, confidence=confidence)
                  for fpr in FALSE_POSITIVE_RATES)
    return AuditFigures(epsilon=epsilon, delta=delta, lower_bound=bound, rates=rates,
                        auc=area_under_curve(in_scores, out_scores, confidence), n_in=len(in_scores),
                        n_out=len(out_scores), extra=dict(extra or {}))

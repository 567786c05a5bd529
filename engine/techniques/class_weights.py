"""Class-weighted loss for the torch techniques (issue 11): the weights come from public class shares only.

`class_weighting: balanced` weighs each class c by w_c proportional to 1 / share_c, scaled so that the rarest
class weighs 1 and the others less (w_c = min share / share_c), never more than 1. Why not mean weight 1 (rare
class 6.25, common 0.54 at 8% positive): DP-SGD clips every row's gradient to C, so a weight above 1 on rows whose
gradient already exceeds C (the misclassified rare rows) is clipped away, and only down-weighting survives.
Measured on an 8%-positive table, dp-sgd epsilon 4, C 5, 3 seeds: the rare class's recall at the arg-max was
0.03 with mean-1 weights and 0.55 with max-1 weights (0.00 unweighted). Adam, which every torch technique
uses, is nearly blind to the loss's overall scale, so the non-private ones train the same either way.

The shares are public knowledge, never the training rows' counts (which
would spend privacy that no epsilon reports): the sweep's `positive_share` (two-class labels), else the catalogue
entry's `label.expected_positive_rate` (or `label.class_shares`, one per class, for several classes). A run records
the shares, where they came from, and the weights (engine.runner.records). Shares counted under DP (a noisy
histogram whose cost the run's epsilon would include) are not offered yet.
"""

from __future__ import annotations

import math
from typing import Any

from engine.config import RunConfig, SweepSpec
from engine.data import DatasetInfo
from engine.errors import ConfigError

SHARE_SOURCES = ("setting", "catalogue")


def weighting_fields(spec: SweepSpec, info: DatasetInfo) -> dict[str, Any]:
    """The RunConfig fields of a torch technique's runs in `spec`: empty when unweighted (old cache keys kept)."""
    if spec.class_weighting in (None, "none"):
        if spec.positive_share is not None:
            raise ConfigError("{positive_share} is only used by balanced class weighting: set {class_weighting} to "
                              "balanced, or drop it.", setting="positive_share", mentions=("class_weighting",))
        return {}
    shares, source = public_shares(spec, info)
    return {"class_weighting": spec.class_weighting, "class_shares": ",".join(f"{share:.6g}" for share in shares),
            "class_shares_source": source}


def public_shares(spec: SweepSpec, info: DatasetInfo) -> tuple[tuple[float, ...], str]:
    """(each class's public share, in class order, and its source); ConfigError saying how to declare them."""
    binary = info.task == "binary"
    if spec.positive_share is not None:
        if not binary:
            raise ConfigError(f"{{positive_share}} is for two-class labels; {info.name} has several classes: declare "
                              "label.class_shares (one per class) in its catalogue entry.", setting="positive_share")
        return (1.0 - spec.positive_share, spec.positive_share), "setting"
    label = info.label or {}
    if binary and label.get("expected_positive_rate") is not None:
        rate = float(label["expected_positive_rate"])
        return (1.0 - rate, rate), "catalogue"
    if label.get("class_shares"):
        shares = tuple(float(share) for share in label["class_shares"])
        if any(share <= 0 for share in shares) or not math.isclose(sum(shares), 1.0, abs_tol=1e-3):
            raise ConfigError(f"The catalogue's label.class_shares of {info.name} must be positive shares that sum "
                              f"to 1, got {list(shares)}.", setting="class_weighting")
        return shares, "catalogue"
    how = ("give {positive_share} (e.g. 0.08 for about 8% positive)" if binary
           else "declare label.class_shares (one per class) in its catalogue entry")
    raise ConfigError(f"{{class_weighting}} balanced needs the label's public class shares, and {info.name} declares "
                      f"none: {how}; they are never read from the training rows.", setting="class_weighting",
                      mentions=("positive_share",))


def class_weights(config: RunConfig) -> tuple[float, ...] | None:
    """The loss weights of a run (the rarest class 1, the others min share / their share), or None: unweighted."""
    if config.class_weighting in (None, "none") or not config.class_shares:
        return None
    shares = [float(share) for share in config.class_shares.split(",")]
    return tuple(min(shares) / share for share in shares)


def record_fields(config: RunConfig) -> dict[str, Any]:
    """What a run record adds about its weighting (the weights; the shares and source are config fields)."""
    weights = class_weights(config)
    return {"class_weights": [round(weight, 6) for weight in weights]} if weights is not None else {}

"""The discrete domain a synthesizer measures and samples: one attribute per catalogued column, from public facts only.

Every value range here comes from the catalogue's structure (an upload's declared or DP-estimated schema is a
catalogue entry too), never from the rows:

- numeric column: `bins` equal-width bins of its encoded value. The encoding (engine.data.prepare) clips to the
  public bounds, applies the declared transform and scales to [-1, 1], so equal bins of [-1, 1] are equal bins of
  the public bounds on the transformed scale (log-scaled amounts get log-spaced bins). A nullable column gets one
  more value, "missing".
- categorical column: its declared categories plus "other" (a missing or undeclared value), as encoded.
- the label: its classes.

`codes` turns prepared rows into per-attribute integer codes; `encoded` turns codes back into rows the models
train on (a numeric value drawn uniformly inside its bin); `frame` writes codes as a table in the catalogue's raw
units and column names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.data import PreparedDataset
from engine.data.attributes import Attribute, attribute_layout, category_codes, one_hot
from engine.errors import UnsupportedError

LABEL = "label"  # the label's attribute name in the synthesizer's domain (catalogue names never equal it here)


@dataclass(frozen=True)
class SynthAttribute:
    name: str  # the catalogue's column name, or LABEL
    kind: str  # "numeric", "categorical" or "label"
    size: int  # values in the synthesizer's domain
    encoded: Attribute | None = None  # the encoded column(s) holding it (None for the label)
    missing: Attribute | None = None  # a nullable numeric's 0/1 missing flag


@dataclass(frozen=True)
class SynthDomain:
    attributes: tuple[SynthAttribute, ...]
    bins: int
    n_features: int
    n_classes: int

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(attribute.name for attribute in self.attributes)

    @property
    def shape(self) -> dict[str, int]:
        return {attribute.name: attribute.size for attribute in self.attributes}

    def codes(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Per-attribute integer codes (n,) of prepared rows (x encoded, y labels)."""
        result: dict[str, np.ndarray] = {}
        for attribute in self.attributes:
            if attribute.kind == "label":
                result[attribute.name] = np.asarray(y, dtype=np.int64)
            elif attribute.kind == "categorical":
                result[attribute.name] = category_codes(x, attribute.encoded)
            else:
                values = x[:, attribute.encoded.columns[0]].astype(np.float64)
                codes = np.clip(np.floor((values + 1.0) / 2.0 * self.bins), 0, self.bins - 1).astype(np.int64)
                if attribute.missing is not None:
                    codes = np.where(x[:, attribute.missing.columns[0]] > 0.5, self.bins, codes)
                result[attribute.name] = codes
        return result

    def encoded(self, codes: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Rows (n, features) float32 and labels (n,) from codes, as the preprocessing would have encoded them.

        `rng` only spreads values inside their bins: post-processing of the released codes, no privacy at stake."""
        n = len(next(iter(codes.values())))
        x = np.zeros((n, self.n_features), dtype=np.float32)
        y = np.zeros(n, dtype=np.int64)
        for attribute in self.attributes:
            code = codes[attribute.name]
            if attribute.kind == "label":
                y = code.astype(np.int64)
            elif attribute.kind == "categorical":
                x[:, list(attribute.encoded.columns)] = one_hot(code, attribute.encoded)
            else:
                missing = code >= self.bins
                inside = (np.minimum(code, self.bins - 1) + rng.uniform(size=n)) * (2.0 / self.bins) - 1.0
                x[:, attribute.encoded.columns[0]] = np.where(missing, -1.0, np.clip(inside, -1.0, 1.0))
                if attribute.missing is not None:  # imputed at the lower bound, flagged: as encode_table does
                    x[:, attribute.missing.columns[0]] = missing
        return x, y

    def frame(self, x: np.ndarray, y: np.ndarray, data: PreparedDataset) -> pd.DataFrame:
        """Encoded rows as a table in the catalogue's raw units and column names (inverting the public scaling and
        transform); categories by name, "other" and missing values empty; the label as its class index. A table whose
        bounds are read from its rows (breast-cancer, listed in every record's data_derived_bounds) keeps the scaled
        values in [-1, 1]: its bounds are not public, so they are not written."""
        info = data.info
        columns: dict[str, object] = {}
        for attribute in self.attributes:
            if attribute.kind == "label":
                columns[info.label["column"]] = y.astype(np.int64)
            elif attribute.kind == "categorical":
                names = np.asarray([*info.categorical[attribute.name], None], dtype=object)
                columns[attribute.name] = pd.array(names[category_codes(x, attribute.encoded)], dtype="string")
            else:
                raw = x[:, attribute.encoded.columns[0]].astype(np.float64)
                if attribute.name in info.numeric:  # else no catalogued bounds (breast-cancer): the scaled value
                    raw = _raw_values(raw, info.numeric[attribute.name])
                if attribute.missing is not None:
                    raw = np.where(x[:, attribute.missing.columns[0]] > 0.5, np.nan, raw)
                columns[attribute.name] = np.round(raw, 4)  # bins are far coarser than 4 decimals
        return pd.DataFrame(columns)


def _raw_values(encoded: np.ndarray, spec: dict) -> np.ndarray:
    """Inverse of encode_table's numeric scaling: [-1, 1] -> transformed public bounds -> raw units."""
    low, high = (float(bound) for bound in spec["bounds"])
    transform = spec.get("transform")
    forward = {None: lambda v: v, "log1p": np.log1p, "signed_log1p": lambda v: np.sign(v) * np.log1p(np.abs(v))}
    inverse = {None: lambda v: v, "log1p": np.expm1, "signed_log1p": lambda v: np.sign(v) * np.expm1(np.abs(v))}
    t_low, t_high = forward[transform](np.float64(low)), forward[transform](np.float64(high))
    raw = inverse[transform](t_low + (encoded + 1.0) / 2.0 * (t_high - t_low))
    return np.clip(raw, low, high)  # floating-point round trips stay inside the declared bounds


def synth_domain(data: PreparedDataset, bins: int) -> SynthDomain:
    """The synthesizer's domain of a prepared table, from its catalogue entry alone."""
    if data.is_image:
        raise UnsupportedError(f"{data.name} is an image dataset: dp-synthetic synthesizes tables only.")
    if LABEL in data.info.numeric or LABEL in data.info.categorical:
        raise UnsupportedError(f"{data.name} has a feature column named {LABEL!r}, the synthesizer's name for the "
                               "label: rename that column in the upload.")
    layout = attribute_layout(data)
    flags = {attribute.name.removesuffix("=missing"): attribute for attribute in layout if attribute.kind == "missing"}
    attributes = []
    for attribute in layout:
        if attribute.kind == "categorical":
            attributes.append(SynthAttribute(attribute.name, "categorical", attribute.n_values, attribute))
        elif attribute.kind == "numeric":
            flag = flags.get(attribute.name)
            attributes.append(SynthAttribute(attribute.name, "numeric", bins + (flag is not None), attribute, flag))
    attributes.append(SynthAttribute(LABEL, "label", data.n_classes))
    return SynthDomain(tuple(attributes), bins=bins, n_features=data.n_features, n_classes=data.n_classes)

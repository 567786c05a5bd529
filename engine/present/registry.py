"""The epsilon-registry entry of a decision: the fields public epsilon registries ask for (the data, the unit of
privacy, epsilon, delta, the accountant, the mechanism, what is released), in words, and its HTML for the report.
"""

from __future__ import annotations

import html
from typing import Any

UNITS = {
    "record": "one record (row) of the training table: its presence, absence or any change to it",
    "client": "one client (every row a participating bank or hospital holds): its participation or any change to it",
    "local": "one record, randomised before it leaves its owner (no trusted curator)",
}
DIVIDER = "; "


def unit_of_privacy(run: dict[str, Any]) -> str:
    unit = run.get("privacy_unit")
    if unit == "client":
        return UNITS["client"]
    if run.get("trust_model") == "local":
        return UNITS["local"]
    return UNITS["record"]


def mechanism_text(run: dict[str, Any]) -> str:
    """What adds the noise, from the run's recorded parameters."""
    technique = run.get("technique")
    if run.get("noise_multiplier") is not None and run.get("steps"):
        who = "client-level DP-FedAvg: clipped client updates" if run.get("privacy_unit") == "client" else \
            f"{technique}: per-example gradients clipped to norm {run.get('max_grad_norm'):g}"
        return (f"{who}, Gaussian noise (multiplier {run['noise_multiplier']:.4g}) over {run['steps']} steps, "
                f"Poisson sampling at rate {run['sample_rate']:.4g}; noise and sampling from secret randomness")
    if run.get("epsilon") is not None and run.get("mechanism"):  # the technique's own description of its noise
        accounting = f", rho {run['synth_rho']:.4g} (zCDP)" if run.get("synth_rho") is not None else ""
        return f"{technique}: {run['mechanism']} (epsilon {run['epsilon']:.4g}{accounting}); secret randomness"
    if run.get("epsilon") is not None:
        return (f"{technique}: diffprivlib's {'pure ' if not run.get('delta') else ''}epsilon-DP mechanisms "
                f"(epsilon {run['epsilon']:g}), secret randomness")
    return f"{technique}: none (no differential privacy)"


def registry_entry(run: dict[str, Any], dataset: dict[str, Any], privacy: dict[str, Any]) -> dict[str, Any]:
    """The entry for a decision: `run` the chosen run's record, `dataset` and `privacy` the record's sections."""
    preprocessing = privacy.get("preprocessing_epsilon") or 0.0
    released = (f"the trained {run.get('model')} model's parameters ({run.get('technique')}), one model chosen "
                f"among {privacy.get('composed_runs') or 1} private run(s) on this data; evaluation figures (test and "
                "validation metrics, the trivial rate, the non-private baseline) are not covered by epsilon")
    if run.get("technique") == "dp-synthetic":
        released += ("; the synthetic table it was trained on (safe to share at the same epsilon: `frontier synth "
                     f"{run.get('run_id')}`)")
    if preprocessing:
        released += f"; the table's DP bounds and categories (epsilon {preprocessing:g}, included in epsilon)"
    return {
        "data": f"{dataset['title']} ({dataset['name']}, fingerprint {dataset['fingerprint']}, "
                f"{dataset['rows_train']} training rows)",
        "unit_of_privacy": unit_of_privacy(run),
        "epsilon": privacy.get("release_epsilon"),
        "delta": privacy.get("release_delta"),
        "accountant": privacy.get("release_accountant"),
        "epsilon_covers": ("releasing the chosen model, every private run on the data composed" if
                           privacy.get("release_basis") == "composition" else
                           "releasing the best trial of one random search (tuning-aware)"),
        "mechanism": mechanism_text(run),
        "released": released,
    }


def registry_html(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "<p>No registry entry: the run carries no privacy guarantee.</p>"
    shown = dict(entry)
    shown["epsilon"] = f"{entry['epsilon']:.4g}" if entry.get("epsilon") is not None else "—"
    shown["delta"] = f"{entry['delta']:.0e}" if entry.get("delta") else "0"
    rows = "".join(f"<tr><th>{html.escape(key.replace('_', ' '))}</th><td>{html.escape(str(value))}</td></tr>"
                   for key, value in shown.items())
    return f"<table class=registry>{rows}</table>"

"""What the dashboard and the report show for dp-synthetic runs: each run's utility and fidelity, newest first."""

from __future__ import annotations

import pandas as pd

SYNTHETIC_COLUMNS = ["run_id", "model", "seed", "target_epsilon", "epsilon", "synth_bins", "accuracy",
                     "balanced_accuracy", "synth_tvd_1way", "synth_tvd_2way", "synth_downstream_gap"]


def synthetic_view(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The successful dp-synthetic runs on `dataset`, by target epsilon then seed (empty when there are none)."""
    if runs.empty or "synth_tvd_2way" not in runs:
        return pd.DataFrame(columns=SYNTHETIC_COLUMNS)
    chosen = runs[(runs["dataset"] == dataset) & (runs["technique"] == "dp-synthetic") & (runs["status"] == "ok")]
    return chosen[SYNTHETIC_COLUMNS].sort_values(["target_epsilon", "model", "seed"]).reset_index(drop=True)

"""What the dashboard shows for encrypted-inference runs: one row per configuration, means over seeds.

Encryption is not an epsilon: these runs go on cost views (latency, bytes) against accuracy, and a hybrid
(trained with DP-SGD) carries its training epsilon beside its inference cost.
"""

from __future__ import annotations

import pandas as pd

from engine.analysis.frontier import numeric_runs

# Configuration columns shown (seeds are averaged over) and the measurements shown, in display order.
HE_KEYS = ["dataset", "model", "train_technique", "target_epsilon", "max_grad_norm", "accountant", "delta",
           "epochs", "batch_size", "learning_rate", "hidden_units"]
HE_MEASURES = {  # column: (label, unit)
    "accuracy": ("accuracy under encryption", ""),
    "he_plaintext_accuracy": ("same model in plaintext", ""),
    "he_relu_mlp_accuracy": ("ReLU MLP in plaintext", ""),
    "he_agreement": ("decisions equal to plaintext", ""),
    "he_max_abs_error": ("largest score error", ""),
    "epsilon": ("training epsilon", ""),
    "he_ms_per_record_batched": ("latency, batched", "ms/record"),
    "he_ms_encrypt_batched": ("encrypt, batched", "ms/record"),
    "he_ms_evaluate_batched": ("evaluate, batched", "ms/record"),
    "he_ms_decrypt_batched": ("decrypt, batched", "ms/record"),
    "he_ms_per_record_interactive": ("latency, one record", "ms/record"),
    "he_ms_encrypt_interactive": ("encrypt, one record", "ms/record"),
    "he_ms_evaluate_interactive": ("evaluate, one record", "ms/record"),
    "he_ms_decrypt_interactive": ("decrypt, one record", "ms/record"),
    "he_plaintext_ms_per_record": ("plaintext scoring", "ms/record"),
    "he_records_per_second_batched": ("throughput, batched", "records/s"),
    "he_bytes_per_record": ("bytes per record, batched (up + down)", "B"),
    "he_upload_bytes_per_record_interactive": ("bytes up, one record", "B"),
    "he_download_bytes_per_record_interactive": ("bytes down, one record", "B"),
    "he_context_bytes": ("public context, batched", "B"),
    "he_context_galois_bytes": ("public context with rotation keys", "B"),
    "he_poly_modulus_degree": ("N", ""),
    "he_coeff_modulus_total_bits": ("coefficient modulus", "bits"),
    "he_security_bits": ("security", "bits"),
    "he_interactive_sample": ("records scored one at a time", ""),
}


def he_view(runs: pd.DataFrame, dataset: str | None = None) -> pd.DataFrame:
    """Successful he-inference runs (of `dataset`), one row per configuration: the mean of each measurement
    over seeds, `seeds`, and the text of `protects` and `he_coeff_modulus_bits`. Empty when there are none."""
    columns = [*HE_KEYS, *HE_MEASURES, "seeds", "protects", "he_coeff_modulus_bits"]
    if runs.empty or "technique" not in runs:
        return pd.DataFrame(columns=columns)
    chosen = runs[(runs["technique"] == "he-inference") & (runs["status"] == "ok")]
    if dataset is not None:
        chosen = chosen[chosen["dataset"] == dataset]
    if chosen.empty:
        return pd.DataFrame(columns=columns)
    chosen = chosen.copy()
    for column in HE_MEASURES:
        chosen[column] = pd.to_numeric(chosen.get(column), errors="coerce").astype(float)
    keys = [key for key in HE_KEYS if key in chosen]
    chosen = numeric_runs(chosen)
    grouped = chosen.groupby("point_id", dropna=False, sort=False)  # one point per configuration, never pooled
    view = grouped[list(HE_MEASURES)].mean()
    for key in keys:
        view[key] = grouped[key].first()
    view["epsilon"] = grouped["epsilon"].max()  # the worst over seeds, as the frontier reports it
    view["seeds"] = grouped["seed"].nunique()
    view["protects"] = grouped["protects"].first()
    view["he_coeff_modulus_bits"] = grouped["he_coeff_modulus_bits"].first()
    return view.reset_index()[[c for c in columns if c in keys or c not in HE_KEYS]]

"""Names and short labels shared by the dashboard, the report and the CLI."""

from __future__ import annotations

from engine.config import RunConfig
from engine.runner.search import EPSILON_MARK
from engine.techniques.metrics import BALANCED_RANGE

ACCOUNTANT_NAMES = {"prv": "PRV", "rdp": "RDP", "pure": "pure DP", "zcdp-rdp": "zCDP (dp-accounting RDP)"}
METRIC_LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "roc_auc": "ROC AUC"}
TRUST_MODEL_LABELS = {"none": "no DP", "central": "central DP", "local": "local DP"}


def metric_reason(info) -> str:
    """Why the default metric is the one it is, in a sentence (info: the dataset's catalogue entry or None)."""
    rate = (info.label or {}).get("expected_positive_rate") if info is not None else None
    if info is not None and info.is_image:
        return "Several classes: accuracy and balanced accuracy (the mean recall over classes) are both shown."
    if rate is None:
        return ("The share of positive labels is not declared for this table, so the default is balanced accuracy: "
                "it is not fooled by always predicting the commonest class.")
    if BALANCED_RANGE[0] <= float(rate) <= BALANCED_RANGE[1]:
        return f"About {float(rate):.0%} of labels are positive (published): the classes are balanced, so accuracy fits."
    return (f"Only about {float(rate):.0%} of labels are positive (published): accuracy would reward always predicting "
            f"the commonest class, so the default is balanced accuracy (the mean of the recall on each class).")


def epsilon_label(accountant: str | None, delta: float | None) -> str:
    """'PRV accountant, δ = 1e-05': always said beside an epsilon."""
    if not accountant:
        return "no privacy"
    if accountant == "pure" or not delta:
        return "pure DP, δ = 0"  # beside an ε already: "ε (pure DP, δ = 0)", never "ε (pure ε ...)"
    return f"{ACCOUNTANT_NAMES.get(accountant, accountant)} accountant, δ = {delta:.0e}"


def search_label(search: str, mean_trials: float) -> str:
    """'random search 3fa2c1d9e0b1 at ε = 1 (6 trials expected)': one target epsilon's search; a search kept before
    searches were per epsilon spans its grid's epsilons."""
    base, _, epsilon = search.partition(EPSILON_MARK)
    at = f" at ε = {float(epsilon):g}" if epsilon else " over every ε of its grid"
    return f"random search {base}{at} ({mean_trials:g} trials expected)"


def run_label(config: RunConfig) -> str:
    """'dp-sgd · mlp · ε 0.5 · C 1 · seed 0'."""
    parts = [config.technique, config.model]
    if config.target_epsilon is not None:
        parts.append(f"ε {config.target_epsilon:g}")
    if config.max_grad_norm is not None:
        parts.append(f"C {config.max_grad_norm:g}")
    client = config.param("client")
    if client is not None:
        parts.append(f"client {client}")
    return " · ".join([*parts, f"seed {config.seed}"])


def duration(seconds: float) -> str:
    """'2 min 05 s'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def rough(seconds: float) -> str:
    """'~2 min': an estimate should not look precise."""
    if seconds < 60:
        return f"~{max(10, round(seconds / 10) * 10)} s"
    if seconds < 3600:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"

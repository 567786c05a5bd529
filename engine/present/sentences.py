"""The sentences that explain a decision to a compliance audience (Markdown), shared by Decide and the report."""

from __future__ import annotations

from typing import Any

from engine.analysis.decide import DecisionSummary
from engine.present.labels import epsilon_label


def _percent(value: float) -> str:
    return f"{value * 100:.3g}%"


def decision_sentences(s: DecisionSummary) -> dict[str, str]:
    """budget, given_up, search, protects: the plain-language summary of a decision, in Markdown."""
    accountant_label = epsilon_label(s.run.get("accountant"), s.delta)
    label = s.metric.replace("_", " ")
    bounds = "; ".join(f"at a false-positive rate of {_percent(fpr)}, at most {_percent(tpr)} true positives"
                       for fpr, tpr in s.membership_bounds.items())
    delta_text = f"except with probability δ = {s.delta:.0e}" if s.delta else "with no exception (δ = 0)"
    budget = (
        f"**What ε = {s.epsilon:.3g} means** ({accountant_label}). Whatever anyone believed before about whether "
        f"a given person's record was used to train this model, seeing the model can change those odds by at most "
        f"a factor of e^ε = **×{s.odds_factor:.3g}**, {delta_text}. Equivalently, no membership test — however "
        f"clever, whatever else its author knows — can have a true-positive rate above e^ε × its false-positive rate "
        f"+ δ: {bounds}. This covers the people in the training data; it says nothing about the records the model "
        f"later scores."
    )
    spread = f"± {s.metric_std * 100:.2g} points over {s.seeds} seed{'s' if s.seeds != 1 else ''}"
    if s.given_up_points is None:
        given_up = (f"**What was given up.** {label.capitalize()} {s.metric_mean:.4f} ({spread}). No non-private "
                    f"baseline of the same model was measured on this data, so the cost of privacy cannot be stated: "
                    f"add the `baseline` technique to a sweep.")
    else:
        direction = "below" if s.given_up_points >= 0 else "above"
        given_up = (
            f"**What was given up.** {abs(s.given_up_points):.2g} points of {label} {direction} the same model trained "
            f"without privacy: {s.metric_mean * 100:.2f}% ({spread}) against {s.baseline_mean * 100:.2f}% "
            f"(± {(s.baseline_std or 0) * 100:.2g} points). Differences smaller than the spread over seeds are noise."
        )
    c = s.composition
    search = (
        f"**What the search itself spent.** This run alone: ε = {s.epsilon:.3g} ({accountant_label}). The whole "
        f"sweep it was chosen from — {c.n_private} private run{'s' if c.n_private != 1 else ''} trained on the same "
        f"data — composed: ε = **{c.epsilon:.3g}** at δ = {c.delta:.0e} ({c.accountant}). The first figure applies "
        f"only if this configuration was fixed without looking at results on this data (chosen in advance, or tuned "
        f"on other data) and the model is trained once. Here it was picked by comparing runs trained on the same "
        f"private records, so the figure that holds for releasing the chosen model is the composed one — or retrain "
        f"this configuration once on fresh data, or tune on public data, to claim ε = {s.epsilon:.3g}."
    )
    if c.n_non_private:
        plural = c.n_non_private != 1
        search += (f" The {c.n_non_private} non-private baseline run{'s carry' if plural else ' carries'} no guarantee "
                   f"at all: use {'them' if plural else 'it'} for comparison only, never release {'them' if plural else 'it'}.")
    return {"budget": budget, "given_up": given_up, "search": search, "protects": protects_sentence(s.run)}


def protects_sentence(run: dict[str, Any]) -> str:
    """What the chosen technique protects, and what it leaves open, in plain words."""
    technique, unit = run.get("technique", ""), run.get("privacy_unit")
    if isinstance(run.get("protects"), str) and run["protects"]:
        covered = run["protects"]
    elif run.get("trust_model") == "local":
        covered = ("each person's record before it leaves them: it is randomised at the source, so no one — not even "
                   "whoever trains the model — sees the raw values")
    elif isinstance(unit, str) and unit:
        covered = (f"where the raw data lives (it never leaves each silo), and with DP every {unit} whose data "
                   f"trained the model ({unit}-level ε)")
    else:
        covered = "the people in the training data (record-level ε): what the released model reveals about any one of them"
    return (f"**What {technique} protects.** {covered[0].upper() + covered[1:]}. It does not hide the record being "
            f"scored from whoever runs the model (encrypted inference does that), nor keep raw data in its silo "
            f"(federated learning does that)." if "scored" not in covered else
            f"**What {technique} protects.** {covered[0].upper() + covered[1:]}.")

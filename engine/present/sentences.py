"""The sentences that explain a decision to a compliance audience (Markdown), shared by Decide and the report."""

from __future__ import annotations

from typing import Any

from engine.analysis.decide import DecisionSummary
from engine.present.labels import epsilon_label


def _percent(value: float) -> str:
    return f"{value * 100:.3g}%"


def _points(value: float) -> str:
    """'1.2 points'; values within rounding of zero read as zero, never '1.4e-14 points'."""
    return f"{0.0 if abs(value) < 0.005 else value:.2g} points"


def decision_sentences(s: DecisionSummary) -> dict[str, str]:
    """budget, given_up, search, protects: the plain-language summary of a decision, in Markdown."""
    accountant_label = epsilon_label(s.run.get("accountant"), s.delta)
    c = s.composition
    label = s.metric.replace("_", " ")
    delta = c.delta
    bounds = "; ".join(f"at a false-positive rate of {_percent(fpr)}, at most {_percent(tpr)} true positives"
                       for fpr, tpr in s.membership_bounds.items())
    at = f" at target ε = {s.search_epsilon:g}" if s.search_epsilon is not None else ""
    covering = (f"the tuning-aware figure of the random search{at} it was chosen from ({s.search_trials:g} trials "
                f"expected)" if s.headline_basis == "random search" else
                f"the composition of every private run trained on these rows ({c.n_private})")
    budget = (
        f"**What the released model's ε = {s.headline_epsilon:.3g} means** (at δ = {delta:.0e}: {covering}). Consider "
        f"anyone trying to tell, from the model, whether a given person's record was in the training data — a "
        f"membership test, however clever, whatever else its author knows. (ε, δ)-DP bounds every such test: its "
        f"true-positive rate is at most e^ε × its false-positive rate + δ (e^ε = ×{s.odds_factor:.3g}), and, "
        f"mirrored, its true-negative rate is at most e^ε × its false-negative rate + δ: {bounds}. This covers the "
        f"people in the training data; it says nothing about the records the model later scores."
    )
    spread = f"± {s.metric_std * 100:.2g} points over {s.seeds} seed{'s' if s.seeds != 1 else ''}"
    trivial = (f" Always predicting the commonest class scores {s.trivial * 100:.2f}%." if s.trivial is not None else "")
    chosen_on = (f" It was chosen on the validation rows ({s.validation_mean * 100:.2f}% there); the test rows "
                 f"report it only." if s.validation_mean is not None else "")
    if s.given_up_points is None:
        given_up = (f"**What was given up.** Test {label} {s.metric_mean * 100:.2f}% ({spread}).{trivial}{chosen_on} No "
                    f"non-private baseline of the same model was measured on this data, so the cost of privacy cannot "
                    f"be stated: add the `baseline` technique to a sweep.")
    else:
        noise = max(s.metric_std, s.baseline_std or 0.0) * 100
        if abs(s.given_up_points) <= max(noise, 0.5):
            amount = (f"{_points(abs(s.given_up_points))} of {label} {'below' if s.given_up_points >= 0 else 'above'} "
                      f"the same model trained without privacy, within the noise between seeds")
        elif s.given_up_points > 0:
            amount = f"{_points(s.given_up_points)} of {label} below the same model trained without privacy"
        else:
            amount = (f"{_points(-s.given_up_points)} of {label} above the same model trained without privacy (the "
                      f"noise acted as a regulariser, or the baseline is under-trained)")
        given_up = (
            f"**What was given up.** {amount}: test {s.metric_mean * 100:.2f}% ({spread}) against "
            f"{s.baseline_mean * 100:.2f}% (± {(s.baseline_std or 0) * 100:.2g} points).{trivial}{chosen_on} The "
            f"non-private figure is covered by no ε: it is for comparison, never for release."
        )
    single = (f"This configuration alone: ε = {s.epsilon:.3g} ({accountant_label}), which holds only if it had been "
              f"fixed without looking at results on these rows (chosen in advance, or tuned on public data) and "
              f"trained once.")
    if s.tuning_epsilon is not None and s.headline_basis != "random search":
        search_note = (f" It was the best of a random search, whose tuning-aware figure (ε = {s.tuning_epsilon:.3g}) is "
                       f"here larger than the composition: with few trials the composition is the tighter bound.")
    else:
        search_note = ""
    if s.headline_basis == "random search":
        search = (f"**What the search itself spent.** {single} It was the best of a random search{at}: releasing "
                  f"only it costs ε = **{s.tuning_epsilon:.3g}** (Papernot & Steinke 2022, RDP, at δ = {delta:.0e}"
                  f"{', from the trials at that ε only' if at else ''}), provided "
                  f"the other trials — and how many there were — stay private. Releasing anything more (other "
                  f"trials, this table of candidates) costs the composition of every private run on these rows: "
                  f"ε = {c.epsilon:.3g} ({c.n_private} runs, {c.accountant}).")
    else:
        search = (f"**What the search itself spent.** {single} It was picked by comparing {c.n_private} private "
                  f"run{'s' if c.n_private != 1 else ''} trained on the same rows (subsamples included), so what "
                  f"holds for releasing it is their composition: ε = **{c.epsilon:.3g}** at δ = {delta:.0e} "
                  f"({c.accountant}). To claim less, retrain this configuration once on fresh data, or run the search "
                  f"as a random search (Sweep: random search) and choose within it.{search_note}")
    if s.preprocessing_epsilon:
        search += (f" Both figures include the table's DP preprocessing (ε = {s.preprocessing_epsilon:.3g}, pure DP "
                   f"for the bounds, δ > 0 only for category lists): the bounds and categories its uploader did not "
                   f"declare were estimated from the rows with differential privacy, and every model trained on "
                   f"the table depends on them.")
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


def model_inputs_sentence(info, n_inputs: int) -> str:
    """How a table's attributes become the model's inputs ("15 attributes become 22 inputs: ...")."""
    if info.is_image:
        return "One input per pixel, scaled to [0, 1]."
    numeric, categorical = info.numeric, info.categorical
    nullable = [column for column, spec in numeric.items() if spec.get("nullable")]
    one_hot = sum(len(values) for values in categorical.values())
    if len(numeric) + one_hot + len(nullable) != n_inputs:  # a table whose columns come from a library as they are
        return f"{n_inputs} numeric inputs, one per column, scaled to [-1, 1]."
    flags = f", and {len(nullable)} 0/1 flag(s) that say a number was missing" if nullable else ""
    return (f"{len(numeric) + len(categorical)} attributes become {n_inputs} inputs: {len(numeric)} numeric (clipped "
            f"to their bounds, scaled to [-1, 1]), {one_hot} one-hot columns for {len(categorical)} categorical "
            f"attribute(s){flags}.")


def missing_values_sentence(info) -> str:
    """What preprocessing does with a missing value, as engine.data.prepare.encode_table does it."""
    if info.is_image:
        return "Images have no missing values."
    nullable = [column for column, spec in info.numeric.items() if spec.get("nullable")]
    numbers = (f"a missing number ({', '.join(nullable)}) is set to its column's lower bound and flagged by its own "
               "0/1 input" if nullable else "no numeric column may be missing (a file with one is refused)")
    return (f"{numbers[0].upper()}{numbers[1:]}; a missing or undeclared category gets no one-hot column (all zeros). "
            "Numbers outside their bounds are clipped to them.")


def preprocessing_sentence(info, derived) -> str:
    """How a table's preprocessing bounds and category lists were set, for the report: public, a DP estimate whose
    ε every composition includes (an upload's undeclared columns), or read from the rows (`derived`)."""
    spent = getattr(info, "preprocessing_privacy", None) or {}
    estimated = list(getattr(info, "dp_estimated_columns", ()) or ())
    parts = []
    if estimated and spent.get("epsilon"):
        delta = f", δ = {spent['delta']:g}" if spent.get("delta") else ", pure DP"
        parts.append(f"estimated with differential privacy for {', '.join(estimated)} (ε = {spent['epsilon']:g}{delta}, "
                     "included in the composition above)")
    if derived:
        parts.append(f"computed from the data for {', '.join(derived)} — not covered by ε")
    return "; ".join(parts) if parts else "public domain knowledge (no privacy spent)"

import numpy as np
import pandas as pd

from engine.analysis.frontier import clipped_models, local_global_view, pareto_front, pareto_mask, summarise


def _runs(rows):
    columns = ["run_id", "status", "dataset", "technique", "model", "target_epsilon", "epsilon", "max_grad_norm",
               "delta", "accountant", "epochs", "batch_size", "learning_rate", "seed", "accuracy", "train_seconds",
               "trust_model"]
    frame = pd.DataFrame(rows, columns=columns)
    # One point per configuration: every setting but the seed.
    frame["point_id"] = frame[[c for c in columns if c not in ("run_id", "seed", "epsilon", "accuracy", "status",
                                                               "train_seconds")]].apply(lambda row: "|".join(map(str, row)), axis=1)
    return frame


def test_pareto_mask_keeps_only_undominated_points():
    epsilons = np.array([0.5, 1.0, 1.0, 2.0, 4.0])
    scores = np.array([0.80, 0.79, 0.83, 0.83, 0.85])
    assert pareto_mask(epsilons, scores).tolist() == [True, False, True, False, True]


def test_summary_pools_seeds_and_reports_the_worst_epsilon():
    rows = [(f"r{seed}", "ok", "d", "dp-sgd", "mlp", 1.0, 0.99 - seed / 100, 1.0, 1e-5, "prv", 10, 512, 5e-3, seed,
             0.80 + seed / 100, 1.0, "central") for seed in range(3)]
    rows.append(("f", "failed", "d", "dp-sgd", "mlp", 1.0, None, 1.0, 1e-5, "prv", 10, 512, 5e-3, 3, None, None, "central"))
    summary = summarise(_runs(rows))
    assert len(summary) == 1
    point = summary.iloc[0]
    assert point["epsilon"] == 0.99 and point["seeds"] == 3
    assert point["accuracy_mean"] == 0.81 and round(point["accuracy_std"], 6) == 0.01
    assert pareto_front(summary)["on_front"].tolist() == [True]


def test_local_global_view_only_at_shared_epsilons():
    rows = []
    for technique, model, privacy, epsilons, accuracy in (("dp-logreg", "logreg", "central", (0.1, 1.0, 10.0), 0.8),
                                                          ("local-dp", "logreg", "local", (1.0, 10.0), 0.7)):
        for epsilon in epsilons:
            rows.append((f"{technique}{epsilon}", "ok", "d", technique, model, epsilon, epsilon, None, 0.0, None, 1, 1,
                         1.0, 0, accuracy, 1.0, privacy))
    table = local_global_view(_runs(rows), "d", "accuracy")
    assert sorted(table["target_epsilon"].unique()) == [1.0, 10.0]
    gap = table.pivot_table(index="target_epsilon", columns="trust_model", values="metric_mean")
    assert (gap["central"] - gap["local"]).round(6).tolist() == [0.1, 0.1]
    assert local_global_view(_runs(rows[:3]), "d", "accuracy").empty


def test_epsilon_ticks_one_per_measured_budget_without_overlapping_labels():
    from engine.present.charts import _epsilon_ticks

    # Reported epsilons sit just under their targets (0.993 for 1): one tick each, the round value.
    front = pd.DataFrame({"epsilon": [0.0993, 0.1, 0.993, 1.0, 3.978, 4.0, 7.95, 8.0, 0.5]})
    assert _epsilon_ticks(front)[1] == [0.1, 0.5, 1.0, 4.0, 8.0]


def test_the_clipping_heatmap_offers_the_models_the_technique_was_run_with():
    # dp-sgd ran an mlp only; dp-logreg (a logreg) never clips: the heatmap's model list starts at mlp, not logreg.
    rows = [("a", "ok", "d", "dp-sgd", "mlp", 1.0, 1.0, 1.0, 1e-5, "prv", 1, 1, 1.0, 0, 0.8, 1.0, "central"),
            ("b", "ok", "d", "dp-logreg", "logreg", 1.0, 1.0, None, 0.0, "pure", 1, 1, 1.0, 0, 0.7, 1.0, "central"),
            ("c", "failed", "d", "dp-sgd", "cnn", 1.0, None, 1.0, 1e-5, "prv", 1, 1, 1.0, 0, None, None, "central")]
    runs = _runs(rows)
    assert clipped_models(runs, "d", "dp-sgd", ["logreg", "mlp", "cnn"]) == ["mlp"]
    assert clipped_models(runs, "d", "dp-sgd", ["logreg"]) == ["logreg"]  # nothing ran: the chosen list as it is

"""dp-synthetic (issue 16): one real MST run on german-credit through the engine, then what it released.

The run is trained once for the module (MST's JAX compilation dominates: ~40-60 s here); every test reads the
stored record and the synthetic table the runner wrote beside the store.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from engine import services
from engine.cli import build_app
from engine.data import encode_table, get_dataset_info
from engine.runner.artefacts import artefact_path
from engine.synthetic.domain import synth_domain
from engine.gate.policy import policy_for_decision
from engine.workspace import Workspace
from engine_support import make_spec, prepared_data

DATASET = "german-credit"
EPSILON, DELTA = 1.0, 1e-5


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    workspace = Workspace.at(tmp_path_factory.mktemp("synthetic") / "results.sqlite")
    spec = make_spec(dataset=DATASET, techniques=["dp-synthetic"], epsilons=[EPSILON], delta=DELTA, seeds=[0],
                     model="logreg", epochs=5)
    report = services.run(services.plan(spec, workspace), workspace, device="cpu")
    assert report.trained == 1 and report.failed == 0
    (record,) = services.records(workspace, run_ids=report.run_ids)
    table = pd.read_csv(io.BytesIO(gzip.decompress(artefact_path(workspace.folder, "synthetic",
                                                                 record["run_id"]).read_bytes())))
    return workspace, spec, record, table


def test_the_table_has_the_real_schema_and_nothing_outside_the_declared_domain(synthetic_run):
    _, spec, record, table = synthetic_run
    info, data = get_dataset_info(DATASET), prepared_data(spec)
    assert list(table.columns) == [*info.numeric, *info.categorical, info.label["column"]]
    assert len(table) == data.n_train == record["n_train"]
    for column, declared in info.numeric.items():
        values = table[column].to_numpy(dtype=float)
        low, high = declared["bounds"]
        assert np.isnan(values).sum() == 0 or declared.get("nullable")
        assert np.nanmin(values) >= low and np.nanmax(values) <= high, column
    for column, categories in info.categorical.items():
        assert set(table[column].dropna().astype(str)) <= {str(category) for category in categories}, column
    assert set(table[info.label["column"]]) <= {0, 1}
    # Read back through the public preprocessing, the table lands in the synthesizer's domain.
    x, _ = encode_table(table, info.numeric, info.categorical)
    assert x.shape == (data.n_train, data.n_features) and np.all(np.abs(x) <= 1.0)


def test_no_synthetic_row_copies_a_training_row_more_often_than_chance(synthetic_run):
    """A synthetic row equal (on the binned domain) to a training row no more often than to a fresh row of the same
    population: equally many training and test rows are compared, so chance gives both the same rate."""
    _, spec, _, table = synthetic_run
    info, data = get_dataset_info(DATASET), prepared_data(spec)
    domain = synth_domain(data, 16)
    x, _ = encode_table(table, info.numeric, info.categorical)
    synthetic = _rows(domain.codes(x, table[info.label["column"]].to_numpy()), domain)
    n = len(data.y_test)
    train_rows = np.random.default_rng(0).choice(data.n_train, n, replace=False)
    seen = _rows(domain.codes(data.x_train[train_rows], data.y_train[train_rows]), domain)
    unseen = _rows(domain.codes(data.x_test, data.y_test), domain)
    copies_of_seen, copies_of_unseen = np.isin(synthetic, seen).sum(), np.isin(synthetic, unseen).sum()
    # Binomial-sized slack: both counts are small (the 21-attribute domain is huge); memorisation would show as
    # many times more copies of seen rows.
    assert copies_of_seen <= copies_of_unseen + 3 * math.sqrt(copies_of_unseen + 1) + 2, (copies_of_seen,
                                                                                          copies_of_unseen)


def _rows(codes: dict, domain) -> np.ndarray:
    table = np.stack([np.asarray(codes[name], dtype=np.int64) for name in domain.names], axis=1)
    return np.array([" ".join(map(str, row)) for row in table])


def _cdp_eps(rho: float, delta: float) -> float:
    """Canonne, Kamath & Steinke (2020), Proposition 12 (the papers' cdp2adp), written out independently: the least
    epsilon such that rho-zCDP implies (epsilon, delta)-DP, by bisection over epsilon and the best order alpha."""
    def delta_for(epsilon: float) -> float:
        low, high = 1.01, (epsilon + 1) / (2 * rho) + 2
        for _ in range(200):
            alpha = (low + high) / 2
            if (2 * alpha - 1) * rho - epsilon + math.log1p(-1 / alpha) < 0:
                low = alpha
            else:
                high = alpha
        return min(1.0, math.exp((alpha - 1) * (alpha * rho - epsilon) + alpha * math.log1p(-1 / alpha)) / (alpha - 1))

    low, high = 0.0, rho + 2 * math.sqrt(rho * math.log(1 / delta))
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (low, middle) if delta_for(middle) <= delta else (middle, high)
    return high


def test_recorded_epsilon_matches_an_independent_recomputation_of_the_zcdp_budget(synthetic_run):
    _, spec, record, _ = synthetic_run
    ledger, d = record["extra"]["synth_ledger"], len(synth_domain(prepared_data(spec), 16).names)
    # MST's shape: d noisy 1-way marginals, d - 1 tree edges chosen, d - 1 noisy 2-way marginals.
    assert [len(m["clique"]) for m in ledger["measurements"]] == [1] * d + [2] * (d - 1)
    assert len(ledger["selections"]) == d - 1
    rho = sum(1 / (2 * m["sigma"] ** 2) for m in ledger["measurements"]) + sum(e ** 2 / 8 for e in ledger["selections"])
    assert rho == pytest.approx(record["synth_rho"], rel=1e-12)
    assert rho <= record["extra"]["synth_rho_budget"] * (1 + 1e-12)
    independent = _cdp_eps(rho, DELTA)
    # The recorded figure (dp-accounting's RDP conversion) never claims less than the tight conversion, stays within
    # the target, and is not loose: the target is what the budget was calibrated to.
    assert independent <= record["epsilon"] <= EPSILON
    assert record["epsilon"] <= independent * 1.05
    assert record["accountant"] == "zcdp-rdp" and record["delta"] == DELTA


def test_several_synthetic_runs_compose_by_rho_to_a_finite_epsilon_that_the_gate_and_verify_agree_on(synthetic_run):
    """Composed one by one as (epsilon, delta) releases, four runs at delta each would need 4 x delta: epsilon = inf
    at delta. zCDP adds rho instead: a finite figure, between one run's and the loose sum of their epsilons."""
    from engine.analysis.verify import _independent_composition
    from engine.gate.record import releases_on_data
    from engine.gate.recompute import composed_epsilon
    from engine.privacy.composition import compose_runs, run_mechanism

    _, _, record, _ = synthetic_run
    runs = [dict(record, run_id=f"copy-{index}") for index in range(4)]
    composed = compose_runs(runs, delta=DELTA)
    assert composed.n_private == 4 and math.isfinite(composed.epsilon)
    # Four times the rho, converted at delta / 2 with the other half for the PLD: the tight conversion of the summed rho
    # at delta is a floor, four epsilons added up a ceiling.
    assert _cdp_eps(4 * record["synth_rho"], DELTA) <= composed.epsilon < 4 * record["epsilon"]
    independent = _independent_composition([run_mechanism(run)[1] for run in runs], DELTA)
    gate = composed_epsilon(releases_on_data(runs), DELTA)
    assert composed.epsilon == pytest.approx(independent, rel=2e-3) and composed.epsilon == pytest.approx(gate, rel=2e-3)


def test_a_point_on_the_frontier_with_its_fidelity_and_cached_like_every_run(synthetic_run):
    workspace, spec, record, _ = synthetic_run
    runs = services.read_runs(workspace)
    row = runs[runs["run_id"] == record["run_id"]].iloc[0]
    assert row["technique"] == "dp-synthetic" and row["trust_model"] == "central"
    assert 0 <= row["accuracy"] <= 1 and 0 <= row["balanced_accuracy"] <= 1
    assert 0 < row["synth_tvd_1way"] < row["synth_tvd_2way"] < 1
    assert not math.isnan(row["synth_downstream_gap"])
    again = services.run(services.plan(spec, workspace), workspace, device="cpu")
    assert again.cached == 1 and again.trained == 0


def test_frontier_synth_writes_the_table_and_says_it_is_safe_to_share(synthetic_run, tmp_path):
    workspace, _, record, table = synthetic_run
    out = tmp_path / "twin.csv"
    result = CliRunner().invoke(build_app(), ["synth", record["run_id"], "--out", str(out),
                                              "--store", str(workspace.store_path)])
    assert result.exit_code == 0, result.output
    assert "safe to hand to anyone" in result.output and "ε = 1" in result.output
    pd.testing.assert_frame_equal(pd.read_csv(out), table)
    missing = CliRunner().invoke(build_app(), ["synth", "no-such-run", "--out", str(tmp_path / "x.csv"),
                                               "--store", str(workspace.store_path)])
    assert missing.exit_code == 2 and not (tmp_path / "x.csv").exists()
    assert len(missing.output.strip().splitlines()) == 1


def test_the_domain_comes_from_the_catalogue_not_the_rows(synthetic_run):
    _, spec, _, _ = synthetic_run
    data = prepared_data(spec)
    other_rows = dataclasses.replace(data, x_train=np.zeros_like(data.x_train)[:10], y_train=data.y_train[:10])
    assert synth_domain(other_rows, 16).shape == synth_domain(data, 16).shape
    assert synth_domain(data, 16).shape["duration_in_month"] == 16 and synth_domain(data, 7).shape["purpose"] == \
        len(get_dataset_info(DATASET).categorical["purpose"]) + 1


def test_the_frontier_page_shows_fidelity_and_offers_the_table(synthetic_run, monkeypatch):
    from streamlit.testing.v1 import AppTest

    workspace, _, record, _ = synthetic_run
    monkeypatch.setenv("FRONTIER_STORE", str(workspace.store_path))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/frontier.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Synthetic data: fidelity, and the table itself" in [header.value for header in at.subheader]
    (shown,) = [frame.value for frame in at.dataframe if "2-way TVD" in frame.value.columns]
    assert list(shown["run_id"]) == [record["run_id"]] and shown["2-way TVD"].iloc[0] == record["synth_tvd_2way"]
    assert any("safe to hand to anyone" in caption.value for caption in at.caption)
    assert at.get("download_button")  # the table's download (its bytes are served by Streamlit's media store)


def test_the_export_reproduces_the_run_and_its_report_shows_the_table_and_fidelity(synthetic_run):
    workspace, _, record, _ = synthetic_run
    bundle = services.export(workspace, record["run_id"])
    assert bundle.reproduces  # the exported spec plans to this very run (settings declared once)
    assert "<h3>The synthetic table</h3>" in bundle.report_html and "safe to hand to anyone" in bundle.report_html
    assert f"{record['synth_tvd_2way']:.4g}" in bundle.report_html
    # The registry entry names the synthesizer's mechanism and its zCDP budget, and says the table is released too.
    entry = services.decision_record(workspace, record["run_id"])["registry_entry"]
    assert entry["mechanism"].startswith("dp-synthetic: MST") and "zCDP" in entry["mechanism"]
    assert "diffprivlib" not in entry["mechanism"] and "the synthetic table" in entry["released"]


def test_an_uploads_domain_comes_from_its_declared_schema_and_round_trips_to_its_columns(tmp_path):
    """Uploads: every numeric column is nullable (one more value, "missing"), bounds are the typed or DP-estimated
    ones in the upload's catalogue entry; a table written from codes has the upload's columns and stays inside them."""
    from engine.data import load_dataset
    from engine.data.uploads.schema import UploadSchema

    rng = np.random.default_rng(3)
    ages = np.clip(rng.normal(48, 14, 1500), 18, 95).round()
    ages[:20] = np.nan
    frame = pd.DataFrame({"age": ages, "ward": rng.choice(["north", "south", "east"], 1500),
                          "readmitted": rng.choice(["yes", "no"], 1500)})
    workspace = Workspace.at(tmp_path / "results.sqlite")
    info = services.upload(frame.to_csv(index=False).encode(), "cohort.csv", UploadSchema(label="readmitted"),
                           workspace)
    data = load_dataset(info.name, workspace.uploads_dir).with_validation()
    domain = synth_domain(data, 8)
    assert domain.shape == {"age": 8 + 1, "ward": len(info.categorical["ward"]) + 1, "label": 2}
    codes = domain.codes(data.x_train, data.y_train)
    x, y = domain.encoded(codes, np.random.default_rng(0))
    again = domain.codes(x, y)
    assert all(np.array_equal(again[name], codes[name]) for name in domain.names)  # codes survive the round trip
    table = domain.frame(x, y, data)
    assert list(table.columns) == ["age", "ward", "readmitted"]
    low, high = info.numeric["age"]["bounds"]
    assert table["age"].isna().sum() == (codes["age"] == 8).sum() > 0
    assert table["age"].min() >= low and table["age"].max() <= high
    assert set(table["ward"].dropna()) <= set(info.categorical["ward"])


def test_frontier_verify_recomputes_the_epsilon_from_the_ledger_and_catches_a_lowered_one(synthetic_run, tmp_path):
    import shutil
    import sqlite3

    workspace, _, record, _ = synthetic_run
    assert services.verify(workspace).ok
    copy = Workspace.at(tmp_path / "tampered" / "results.sqlite")
    copy.folder.mkdir()
    shutil.copy(workspace.store_path, copy.store_path)
    with sqlite3.connect(copy.store_path) as connection:
        connection.execute("UPDATE runs SET epsilon = ? WHERE run_id = ?", (record["epsilon"] / 2, record["run_id"]))
    findings = services.verify(copy).findings
    assert [finding.run_id for finding in findings] == [record["run_id"]]
    assert "Gaussian measurements" in findings[0].message


def test_the_gate_passes_a_synthetic_run_under_its_own_policy_and_names_its_zcdp_accountant(synthetic_run):
    """The gate recomputes the run's epsilon from its rho (dp-accounting RDP); a policy allowing only DP-SGD's PRV
    fails the accountant rule alone, saying the technique is always accounted with zCDP (no --accountant to retrain)."""
    workspace, _, record, _ = synthetic_run
    policy = policy_for_decision(services.decision_record(workspace, record["run_id"]))
    outcome = services.gate(workspace, policy, run_id=record["run_id"])
    assert not outcome.failures, [result.line for result in outcome.failures]
    assert outcome.recomputed.run_epsilon == pytest.approx(record["epsilon"], rel=1e-6)
    strict = services.gate(workspace, dataclasses.replace(policy, accountants=("prv",)), run_id=record["run_id"])
    (failure,) = strict.failures
    assert failure.rule == "accountant" and "zcdp-rdp" in failure.line and "allow it in the policy" in failure.line

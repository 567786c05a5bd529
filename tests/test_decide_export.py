"""Composition of a sweep, the compliance summary, and the export round trip."""

import math
import re
import shutil
from pathlib import Path

import pytest
import yaml
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
from typer.testing import CliRunner

from engine.cli import app
from engine.config import SweepSpec
from engine.analysis.decide import DecisionConstraints, membership_bound, rank_candidates, summarise_decision
from engine.privacy.composition import compose_runs
from engine import services
from engine.present.report import write_export
from engine.present.sentences import decision_sentences
from engine.workspace import Workspace
from engine_support import make_spec, run_sweep

SPEC = make_spec(dataset="breast-cancer", techniques=("baseline", "dp-sgd"), epsilons=(0.5, 2.0),
                 clipping_norms=(0.5, 1.0), seeds=(0, 1), epochs=2, batch_size=64, accountant="rdp")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    from engine.runner.records import open_store as ResultStore

    path = tmp_path_factory.mktemp("decide") / "results.sqlite"
    store = ResultStore(path)
    report = run_sweep(SPEC, store=store, device="cpu")
    assert report.failed == 0 and report.trained == 10
    yield store
    store.close()


def _independent_events(records):
    for record in records:
        if record["status"] == "ok" and record["noise_multiplier"] is not None:
            yield dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(
                record["sample_rate"], dp_event.GaussianDpEvent(record["noise_multiplier"])), record["steps"])


def test_composed_epsilon_agrees_with_independent_dp_accounting(swept):
    records = swept.records()
    composed = compose_runs(records, delta=1e-5)
    assert composed.n_private == 8 and composed.n_non_private == 2
    pld = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    rdp = rdp_privacy_accountant.RdpAccountant()
    for event in _independent_events(records):
        pld.compose(event)
        rdp.compose(event)
    assert composed.epsilon == pytest.approx(pld.get_epsilon(1e-5), rel=0.01)
    assert composed.epsilon <= rdp.get_epsilon(1e-5)  # RDP is the looser bound
    single = max(r["epsilon"] for r in records if r["epsilon"] is not None)
    assert composed.epsilon > single  # the search costs more than any one run


def test_pure_epsilon_runs_compose_as_worst_case():
    records = [{"status": "ok", "epsilon": 1.0, "delta": 0.0}, {"status": "ok", "epsilon": 1.0, "delta": 0.0}]
    composed = compose_runs(records, delta=1e-5)
    assert 1.0 < composed.epsilon <= 2.0  # at most basic composition, and more than one run
    assert compose_runs([], delta=1e-5).epsilon == 0.0


def test_rank_candidates_respects_constraints(swept):
    runs = swept.dataframe()
    everything = rank_candidates(runs, DecisionConstraints(dataset="breast-cancer"))
    assert len(everything) <= 4 and everything["learned"].all()  # 2 epsilons x 2 norms, pooled over seeds
    assert list(everything["metric_mean"]) == sorted(everything["metric_mean"], reverse=True)
    tight = rank_candidates(runs, DecisionConstraints(dataset="breast-cancer", max_epsilon=1.0))
    assert (tight["epsilon"] <= 1.0).all() and len(tight) <= 2
    assert rank_candidates(runs, DecisionConstraints(dataset="breast-cancer", min_metric=1.0)).empty
    with pytest.raises(Exception, match="must be positive"):
        rank_candidates(runs, DecisionConstraints(dataset="breast-cancer", max_epsilon=0))


def test_summary_speaks_plainly_with_the_right_numbers(swept):
    runs = swept.dataframe()
    best = rank_candidates(runs, DecisionConstraints(dataset="breast-cancer")).iloc[0]
    summary = summarise_decision(runs, swept.records(), best["run_id"])
    assert summary.epsilon == pytest.approx(best["epsilon"])
    # The headline covers the release: the model was chosen among every run on the data.
    assert summary.headline_basis == "composition" and summary.headline_epsilon == summary.composition.epsilon
    assert summary.headline_epsilon > summary.epsilon
    assert summary.odds_factor == pytest.approx(math.exp(summary.headline_epsilon))
    assert summary.membership_bounds[0.01] == pytest.approx(min(1, math.exp(summary.headline_epsilon) * 0.01 + 1e-5))
    assert summary.seeds == 2 and summary.baseline_mean is not None and summary.trivial is not None
    assert summary.validation_mean == pytest.approx(best["metric_mean"])  # chosen on validation, reported on test
    assert summary.given_up_points == pytest.approx((summary.baseline_mean - summary.metric_mean) * 100)
    text = " ".join(decision_sentences(summary).values())
    assert f"×{math.exp(summary.headline_epsilon):.3g}" in text and "RDP accountant" in text
    assert "composition" in text and f"{summary.composition.epsilon:.3g}" in text
    assert "true-negative rate is at most" in text and "covered by no ε" in text
    assert "odds by at most" not in text  # the overclaiming wording is gone
    assert membership_bound(1.0, 0.0, 0.01) == pytest.approx(math.e / 100)


def test_export_round_trip_trains_nothing_and_returns_the_run_id(swept, tmp_path):
    run_id = swept.records(technique="dp-sgd")[0]["run_id"]
    bundle = services.export(Workspace.at(swept.path), run_id)
    assert bundle.reproduces
    spec = yaml.safe_load(bundle.config_yaml)
    assert spec["techniques"] == ["dp-sgd"] and len(spec["epsilons"]) == 1
    assert not re.search(r"""(src|href)=["']https?:""", bundle.report_html)  # opens offline, fetches nothing
    if shutil.which("chromium") or Path("/usr/bin/chromium").exists():
        # Charts inline as SVG (drawn by Kaleido with this machine's Chromium): small, printable, no toolbar.
        assert bundle.report_html.count('<figure class="chart"') == 2 and "<svg" in bundle.report_html
        assert "<script" not in bundle.report_html and len(bundle.report_html) < 300_000
    else:  # no browser to draw with: interactive charts with plotly.js inlined once
        assert bundle.report_html.count("<script") >= 2 and "Plotly" in bundle.report_html
    assert run_id in bundle.report_html and "composed" in bundle.report_html
    config_path, report_path = write_export(bundle, tmp_path / "out")
    result = CliRunner().invoke(app, ["sweep", "--config", str(config_path), "--store", str(swept.path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "0 trained, 1 cached" in result.output and f"run ids: {run_id}" in result.output


def test_cli_export_writes_both_files(swept, tmp_path):
    run_id = swept.records(technique="baseline")[0]["run_id"]
    out = tmp_path / "baseline-export"
    result = CliRunner().invoke(app, ["export", run_id, "--out", str(out), "--store", str(swept.path)])
    assert result.exit_code == 0, result.output
    assert (out / "config.yaml").exists() and "no privacy" in (out / "report.html").read_text()
    missing = CliRunner().invoke(app, ["export", "nope", "--out", str(out), "--store", str(swept.path)])
    assert missing.exit_code != 0 and "No run 'nope'" in missing.output


def test_summary_says_what_each_technique_protects():
    from engine.present.sentences import protects_sentence

    assert "training data" in protects_sentence({"technique": "dp-sgd", "trust_model": "central"})
    assert "encrypted inference does that" in protects_sentence({"technique": "dp-sgd"})
    assert "randomised at the source" in protects_sentence({"technique": "local-dp", "trust_model": "local"})
    assert "client-level" in protects_sentence({"technique": "dp-fedavg", "privacy_unit": "client"})
    hybrid = protects_sentence({"technique": "he-inference", "protects": "the record being scored and the training data"})
    assert "record being scored" in hybrid and "encrypted inference does that" not in hybrid


def test_report_charts_fall_back_to_inline_plotly_when_they_cannot_be_drawn(monkeypatch):
    import plotly.graph_objects as go

    from engine.present import static_charts

    async def no_browser(figures):
        raise RuntimeError("no Chromium here")

    monkeypatch.setattr(static_charts, "_draw", no_browser)
    figures = [go.Figure(go.Scatter(x=[1, 2], y=[0.6, 0.7])), go.Figure(go.Bar(x=["a"], y=[1]))]
    embedded, kind = static_charts.embed_figures(figures)
    assert kind == "interactive" and embedded.count("<script") >= 2
    assert len(re.findall(r"plotly\.js v\d", embedded)) == 1  # the library inlined once, not once per chart

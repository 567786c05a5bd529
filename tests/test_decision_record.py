"""The decision record and the filed PDF (issue 15 item 3): decision.json carries the evidence with a content hash
anyone can recompute, an epsilon-registry entry, and `frontier gate --record` / `--config` gate it; the PDF opens,
holds the charts as images and the hash, and its first page is not blank."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from typer.testing import CliRunner

from engine import services
from engine.cli import app
from engine.gate.policy import policy_for_decision, read_policy
from engine.present.pdf import chromium, html_to_pdf
from engine.present.report import write_export
from engine.privacy.randomness import ReplayableRandomness
from engine.runner import search as search_module
from engine.workspace import Workspace
from engine_support import make_spec, run_sweep

TINY = dict(dataset="heart", model="logreg", clipping_norms=(1.0,), seeds=(0,), epochs=5, accountant="rdp")
REGISTRY_FIELDS = {"data", "unit_of_privacy", "epsilon", "delta", "accountant", "mechanism", "released"}
runner = CliRunner()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """A heart store (baseline, dp-sgd at epsilon 4, a random search at epsilon 2) and the dp-sgd run's export."""
    root = tmp_path_factory.mktemp("record")
    workspace = Workspace.at(root / "store" / "results.sqlite")
    assert run_sweep(make_spec(techniques=("baseline", "dp-sgd"), epsilons=(4.0,), **TINY),
                     store=workspace.store_path).failed == 0
    with pytest.MonkeyPatch.context() as patch:  # a replayable draw (tests only): seed 0 draws trials at mean 2
        patch.setattr(search_module, "SecretRandomness", lambda: ReplayableRandomness(0))
        assert run_sweep(make_spec(techniques=("dp-sgd",), epsilons=(2.0,), random_trials=2.0, **TINY),
                         store=workspace.store_path).failed == 0
    records = services.records(workspace)
    run_id = next(r["run_id"] for r in records if r["technique"] == "dp-sgd" and r["search"] is None)
    bundle = services.export(workspace, run_id, "balanced_accuracy", pdf=True)
    out = root / "out"
    write_export(bundle, out)
    pdf = html_to_pdf(bundle.printable_html, out / "report.pdf") if chromium() else None
    return {"workspace": workspace, "run_id": run_id, "records": records, "out": out, "pdf": pdf,
            "decision": json.loads((out / "decision.json").read_text())}


def _gate(*args) -> tuple[int, str]:
    result = runner.invoke(app, ["gate", *map(str, args)])
    return result.exit_code, result.output


def test_the_record_holds_the_evidence_and_a_hash_anyone_can_recompute(exported):
    decision = exported["decision"]
    body = {key: value for key, value in decision.items() if key not in ("content_hash", "sign_off")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert decision["content_hash"] == "sha256:" + hashlib.sha256(canonical).hexdigest()
    privacy, dataset, utility = decision["privacy"], decision["dataset"], decision["utility"]
    assert decision["configuration"]["target_epsilon"] == 4.0 and decision["run_id"] == exported["run_id"]
    assert dataset["fingerprint"] and {c["name"] for c in dataset["columns"]} >= {"age", "chol", "sex"}
    assert all(c["source"] == "public" for c in dataset["columns"]) and dataset["dropped_as_identifiers"] == ["id"]
    assert privacy["accountant"] == "rdp" and privacy["delta"] == 1e-5 and privacy["mechanism"]["steps"] > 0
    assert utility["trivial"] == 0.5 and utility["baseline_mean"] is not None and not utility["covered_by_epsilon"]
    assert decision["versions"]["opacus"] and set(decision["sign_off"]) >= {"decided_by", "approved_at"}
    assert set(decision["registry_entry"]) >= REGISTRY_FIELDS
    assert decision["registry_entry"]["epsilon"] == privacy["release_epsilon"]
    # The composition carried in the record is every private run on heart (the search's trials too), and it
    # agrees with dp-accounting over the stored runs' own parameters.
    private = [r for r in exported["records"] if r["noise_multiplier"] is not None]
    assert privacy["composed"]["runs"] == len(private) >= 2
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    for r in private:
        accountant.compose(dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(
            r["sample_rate"], dp_event.GaussianDpEvent(r["noise_multiplier"])), r["steps"]))
    assert privacy["composed"]["epsilon"] == pytest.approx(accountant.get_epsilon(1e-5), rel=0.01)


def test_the_report_shows_the_hash_and_the_registry_entry(exported):
    report = (exported["out"] / "report.html").read_text()
    assert exported["decision"]["content_hash"] in report
    assert "Epsilon registry entry" in report and "unit of privacy" in report and "Sign-off" in report


def test_the_pdf_opens_with_the_charts_as_images_the_hash_and_a_first_page_that_is_not_blank(exported, tmp_path):
    tools = [shutil.which(name) for name in ("pdfinfo", "pdfimages", "pdftotext", "pdftoppm")]
    if exported["pdf"] is None or not all(tools):
        pytest.skip("needs Chromium (apt-get install chromium) and poppler-utils (apt-get install poppler-utils)")
    pdf = exported["pdf"]
    info = subprocess.run(["pdfinfo", pdf], capture_output=True, text=True, check=True).stdout
    assert int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:"))) >= 2
    images = subprocess.run(["pdfimages", "-list", pdf], capture_output=True, text=True, check=True).stdout
    listed = [line.split() for line in images.splitlines()[2:] if line.strip()]
    assert len([row for row in listed if row[2] == "image" and int(row[3]) >= 900]) >= 2  # both charts, full size
    text = subprocess.run(["pdftotext", pdf, "-"], capture_output=True, text=True, check=True).stdout
    assert exported["decision"]["content_hash"] in text.replace("\n", "")
    subprocess.run(["pdftoppm", "-f", "1", "-l", "1", "-r", "60", "-png", pdf, tmp_path / "page"], check=True)
    from PIL import Image

    page = np.asarray(Image.open(next(tmp_path.glob("page*.png"))).convert("L"), dtype=float)  # (height, width)
    inked = (page < 200).mean()
    assert 0.01 < inked < 0.5 and page.std() > 10, f"first page looks blank or solid: {inked:.3f} inked"


def test_a_filed_record_passes_the_policy_derived_from_it_and_a_changed_one_fails(exported, tmp_path):
    decision = exported["decision"]
    policy = policy_for_decision(decision)
    assert read_policy(policy.to_yaml("derived")) == policy  # the YAML the Decide page offers reads back the same
    (tmp_path / "policy.yaml").write_text(policy.to_yaml())
    record = tmp_path / "decision.json"
    shutil.copy(exported["out"] / "decision.json", record)
    code, output = _gate(tmp_path / "policy.yaml", "--record", record)
    assert code == 0 and "PASS record-hash" in output, output
    # Signing the filed copy keeps its hash: the hash covers the evidence, not the sign-off.
    signed = dict(decision, sign_off={**decision["sign_off"], "decided_by": "A. Officer", "approved_at": "2026-12-03"})
    record.write_text(json.dumps(signed))
    code, output = _gate(tmp_path / "policy.yaml", "--record", record)
    assert code == 0 and "PASS record-hash" in output, output
    edited = dict(signed, dataset={**decision["dataset"], "rows_train": decision["dataset"]["rows_train"] + 1})
    record.write_text(json.dumps(edited))
    code, output = _gate(tmp_path / "policy.yaml", "--record", record)
    fails = [line for line in output.splitlines() if line.startswith("FAIL")]
    assert code == 1 and len(fails) == 1 and fails[0].startswith("FAIL record-hash: "), output
    # A forger who lowers epsilon and rehashes: the hash holds, the recomputation from the mechanism does not.
    from engine.gate.record import with_hash

    forged = with_hash({**decision, "privacy": {**decision["privacy"], "epsilon": 0.4}})
    record.write_text(json.dumps(forged))
    code, output = _gate(tmp_path / "policy.yaml", "--record", record)
    fails = [line for line in output.splitlines() if line.startswith("FAIL")]
    assert code == 1 and len(fails) == 1 and fails[0].startswith("FAIL stored-epsilon: "), output


def test_gate_on_an_exported_config_finds_its_run_or_says_how_to_retrain_it(exported, tmp_path):
    (tmp_path / "policy.yaml").write_text("max_epsilon: 5\nmax_release_epsilon: 30\n")
    config = exported["out"] / "config.yaml"
    code, output = _gate(tmp_path / "policy.yaml", "--config", config, "--store", exported["workspace"].store_path)
    assert code == 0 and f"run {exported['run_id']}" in output, output
    code, output = _gate(tmp_path / "policy.yaml", "--config", config, "--store", tmp_path / "fresh" / "results.sqlite")
    assert code == 2 and "retrain it first: frontier sweep --config" in output and len(output.strip().splitlines()) == 1


def test_a_choice_within_a_random_search_claims_its_tuning_aware_figure_recomputed(exported):
    trial = next(r for r in exported["records"] if r["search"] is not None)
    decision = services.decision_record(exported["workspace"], trial["run_id"], "balanced_accuracy",
                                        scope=trial["search"])
    tuning = decision["privacy"]["tuning_aware"]
    assert tuning is not None and tuning["mean_trials"] == 2.0
    outcome = services.gate(exported["workspace"], read_policy("release_basis: random-search\nmax_release_epsilon: 30\n"),
                            record=decision, source="in memory")
    assert outcome.recomputed.tuning_epsilon == pytest.approx(tuning["epsilon"], rel=0.02)
    release = next(result for result in outcome.results if result.rule == "release-epsilon")
    if tuning["epsilon"] < decision["privacy"]["composed"]["epsilon"]:
        assert "tuning-aware" in release.line


@pytest.mark.parametrize("damage", ["drop mechanism", "text steps", "not a record"])
def test_a_damaged_record_is_bad_input_not_a_failed_rule(exported, tmp_path, damage):
    decision = json.loads(json.dumps(exported["decision"]))
    if damage == "drop mechanism":
        del decision["privacy"]["mechanism"]
    elif damage == "text steps":
        decision["privacy"]["mechanism"]["steps"] = "many"
    else:
        decision = {"kind": "something else"}
    (tmp_path / "policy.yaml").write_text("max_epsilon: 5\n")
    (tmp_path / "decision.json").write_text(json.dumps(decision))
    code, output = _gate(tmp_path / "policy.yaml", "--record", tmp_path / "decision.json")
    assert code == 2 and output.startswith("error: ") and len(output.strip().splitlines()) == 1, output

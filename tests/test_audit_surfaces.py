"""Audits on the surfaces: `frontier audit` (output, exit code on a breach), the Frontier and Decide pages, and the
exported report (figures only when included; a breach always flagged)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine import services
from engine.audit.settings import AuditSettings
from engine.techniques import registry
from engine.workspace import Workspace
from engine_support import make_spec

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PLUGIN = "fixtures.broken_dp_sgd"
ENV = {**os.environ, "FRONTIER_PLUGINS": PLUGIN,
       "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
SPEC = dict(dataset="heart", epochs=3, batch_size=32, accountant="rdp", seeds=[0])


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """A store with a baseline, a dp-sgd and a noise-off dp-sgd run on heart, each audited."""
    registry.load_plugins(PLUGIN)
    workspace = Workspace.at(tmp_path_factory.mktemp("audited") / "results.sqlite")
    spec = make_spec(techniques=["baseline", "dp-sgd", "dp-sgd-noise-off"], epsilons=[1.0, 4.0], **SPEC)
    plan = services.plan(spec, workspace)
    services.run(plan, workspace, device="cpu")
    ids = dict(zip((f"{c.technique}:{c.target_epsilon}" for c in plan.configs), plan.run_ids))
    for key in ("baseline:None", "dp-sgd:1.0"):
        services.audit(workspace, ids[key], AuditSettings(canaries=150), device="cpu")
    services.audit(workspace, ids["dp-sgd-noise-off:1.0"], AuditSettings(canaries=300, white_box=True), device="cpu")
    yield workspace, ids
    # Forget the plugin too: later tests' detached workers would be told to import it without tests/ on the path.
    registry.unregister_technique("dp-sgd-noise-off")
    if PLUGIN in registry._PLUGINS:
        registry._PLUGINS.remove(PLUGIN)


def _cli(*args, store):
    return subprocess.run([sys.executable, "-m", "engine.cli", *args, "--store", str(store), "--quiet"],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)


def test_frontier_audit_prints_the_figures_and_exits_3_on_a_breach(audited):
    workspace, ids = audited
    done = _cli("audit", ids["dp-sgd:1.0"], "--canaries", "150", store=workspace.store_path)
    assert done.returncode == 0, done.stderr
    assert "(from the store)" in done.stdout and "TPR at FPR 1%" in done.stdout and "reads" not in done.stderr
    broken = _cli("audit", ids["dp-sgd-noise-off:1.0"], "--white-box", "--canaries", "300", store=workspace.store_path)
    assert broken.returncode == 3, broken.stdout + broken.stderr
    assert "measured leak above the guarantee: a bug or a broken assumption" in broken.stderr
    bad = _cli("audit", ids["dp-sgd:1.0"], "--attack", "rmia", "--reference-models", "3", store=workspace.store_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error:")


def test_report_has_audit_figures_only_when_included(audited):
    workspace, ids = audited
    plain = services.export(workspace, ids["dp-sgd:1.0"]).report_html
    included = services.export(workspace, ids["dp-sgd:1.0"], include_audit=True).report_html
    assert "Empirical audit" not in plain
    assert "An attack of this kind" in included and "on the model trained without privacy it reached" in included


def test_pages_show_the_audit(monkeypatch, audited):
    workspace, ids = audited
    monkeypatch.setenv("FRONTIER_STORE", str(workspace.store_path))
    monkeypatch.setenv("FRONTIER_PLUGINS", PLUGIN)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/frontier.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = {str(trace.get("name")) for trace in figure["data"]}
    assert "measured ε lower bound (audit)" in names
    assert any(name.startswith("attack on the non-private mlp") for name in names)
    assert any("measured leak above the guarantee" in error.value for error in at.error)  # the noise-off run
    at.switch_page("views/decide.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(block.value for block in at.markdown) + " ".join(caption.value for caption in at.caption)
    assert "An attack of this kind" in text or "has not been audited" in text

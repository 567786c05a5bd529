"""The Decide page's privacy gate (issue 15 item 4), in AppTest on a store of real runs: which rules the choice
passes, limits that change the verdict, and the policy file it offers, which `frontier gate` reads and passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from engine.cli import app
from engine.gate.policy import read_policy
from engine_support import make_spec, run_sweep

APP = str(Path(__file__).resolve().parents[1] / "app.py")
# breast-cancer's bounds come from its rows: the derived policy shows that rule failing until it is allowed.
SPEC = make_spec(dataset="breast-cancer", techniques=("baseline", "dp-sgd"), epsilons=(4.0,), clipping_norms=(1.0,),
                 seeds=(0,), epochs=5, batch_size=64, accountant="rdp")


def _rules(at: AppTest):
    """The gate's table of rules (a read-only dataframe: found by its columns)."""
    return next(frame.value for frame in at.dataframe if "rule" in frame.value.columns)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gate-page") / "results.sqlite"
    assert run_sweep(SPEC, store=path).failed == 0
    return path


def test_decide_shows_the_rules_the_choice_passes_and_offers_the_policy_that_gates_it(monkeypatch, store_path,
                                                                                        tmp_path):
    downloads: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def capture(self, path_or_data, mimetype, kind, filename=None):
        downloads[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    monkeypatch.setenv("FRONTIER_STORE", str(store_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/decide.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    rules = _rules(at)
    failed = rules[rules["status"] == "FAIL"]
    assert list(failed["rule"]) == ["data-derived-bounds"], rules
    assert any("1 rule(s) fail" in e.value and "data-derived-bounds" in e.value and "private rows" in e.value
               for e in at.error)
    assert set(rules["rule"]) >= {"max-epsilon", "release-epsilon", "identifier-columns", "utility"}

    at.checkbox(key="gate_allow_derived").check().run()
    assert not at.exception
    assert not (_rules(at)["status"] == "FAIL").any()
    assert any("passes every rule" in s.value for s in at.success)
    at.number_input(key="gate_max_epsilon").set_value(1.0).run()  # below the run's epsilon: that rule fails
    rules = _rules(at)
    assert list(rules[rules["status"] == "FAIL"]["rule"]) == ["max-epsilon"]
    at.number_input(key="gate_max_epsilon").set_value(5.0).run()

    policy_text = downloads["gate-policy.yaml"]
    policy_text = policy_text.decode() if isinstance(policy_text, bytes) else policy_text
    policy = read_policy(policy_text, "gate-policy.yaml")
    assert policy.allow_data_derived_bounds and policy.max_epsilon == 5.0
    assert "decision.json" in downloads
    # The downloaded file gates the same choice from the command line, as CI would.
    (tmp_path / "gate-policy.yaml").write_text(policy_text)
    run_id = at.session_state["decide_run_id"] if "decide_run_id" in at.session_state else None
    run_id = run_id or at.dataframe[0].value["run_id"].iloc[0]
    result = CliRunner().invoke(app, ["gate", str(tmp_path / "gate-policy.yaml"), "--run", run_id, "--store",
                                      str(store_path)])
    assert result.exit_code == 0, result.output

"""The Sweep page in Streamlit's AppTest: the form builds the right spec, the summary counts cached runs, errors
are shown (never a traceback), and a running job shows its progress and a cancel button."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine import services
from engine.jobs.progress import JobStatus, RunState
from engine.present.demo import DEMO_SPEC
from engine.runner.records import open_store as ResultStore
from engine_support import make_spec, run_sweep

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 60  # the first run imports torch and friends


def _sweep_page(**session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("views/sweep.py").run()
    assert not at.exception, [exception.value for exception in at.exception]
    return at


@pytest.fixture
def launched(monkeypatch) -> list:
    """Replaces the engine's launcher: records (spec, workers, device) instead of starting a process."""
    calls = []

    def fake_launch(plan, workspace, *, workers=1, device="auto", cluster=None):
        calls.append((plan.spec, workers, device))
        return "fake-job"

    monkeypatch.setattr(services, "launch", fake_launch)
    return calls


def _fill(at: AppTest, **values) -> AppTest:
    for key, value in values.items():
        for kind in ("text_input", "selectbox", "multiselect", "number_input"):
            try:
                widget = getattr(at, kind)(key=key)
                break
            except KeyError:
                continue
        else:
            raise KeyError(f"no widget {key}")
        widget.set_value(value)
    at.run()
    assert not at.exception, [exception.value for exception in at.exception]
    return at


def _frame(at: AppTest, column: str):
    """The first table with this column (AppTest exposes no key for dataframes)."""
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def _metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def test_renders_with_demo_button_and_creates_nothing(isolated_store):
    at = _sweep_page()
    assert at.title[0].value == "Sweep"
    assert at.button(key="sweep_demo").label == "Run the demo sweep on adult"
    assert not at.button(key="sweep_launch").disabled
    assert at.selectbox(key="sweep_dataset").value == "adult"
    assert _metrics(at)["Runs"] == "9"  # baseline + dp-sgd at the eight default epsilons (the CLI's default too)
    assert not at.error
    assert not isolated_store.exists() and not isolated_store.parent.exists()  # looking writes nothing


def test_demo_button_launches_the_demo_spec(launched):
    at = _sweep_page()
    at.button(key="sweep_demo").click().run()
    assert not at.exception
    assert launched == [(DEMO_SPEC, 1, "auto")]


def test_form_builds_the_spec_that_is_launched(launched):
    at = _sweep_page(selected_dataset="breast-cancer")  # the Data page's choice is preselected
    assert at.selectbox(key="sweep_dataset").value == "breast-cancer"
    _fill(at, sweep_techniques=["dp-sgd"], sweep_model="logreg", sweep_epsilons="0.5, 2", sweep_clipping_norms="0.5,1",
          sweep_seeds="0, 1, 2", sweep_epochs="3", sweep_batch_size="64", sweep_accountant="rdp", sweep_delta="1e-4",
          sweep_workers=2, sweep_device="cpu")
    assert _metrics(at)["Runs"] == "12"  # 2 epsilons x 2 clipping norms x 3 seeds
    at.text_input(key="sweep_epsilons").set_value("0.5, 3")  # an edit the click itself commits still counts
    at.button(key="sweep_launch").click().run()
    assert not at.exception and not at.error
    [(spec, workers, device)] = launched
    assert spec == make_spec(dataset="breast-cancer", techniques=("dp-sgd",), model="logreg", epsilons=(0.5, 3.0),
                             clipping_norms=(0.5, 1.0), seeds=(0, 1, 2), epochs=3, batch_size=64, accountant="rdp",
                             delta=1e-4)
    assert (workers, device) == (2, "cpu")


def test_training_axes_and_the_per_epsilon_search_reach_the_spec(launched):
    at = _sweep_page(selected_dataset="breast-cancer")
    _fill(at, sweep_techniques=["baseline", "dp-sgd"], sweep_epsilons="1, 4", sweep_learning_rate="0.001, 0.01",
          sweep_batch_size="32,64", sweep_epochs="2", sweep_accountant="rdp")
    assert _metrics(at)["Runs"] == "12"  # (baseline + dp-sgd at 2 epsilons) x 2 learning rates x 2 batch sizes
    _fill(at, sweep_random_trials=3.0)
    assert not at.error
    _fill(at, sweep_learning_rate="0.001, fast")
    assert any("Learning rate must be comma-separated numbers" in error.value for error in at.error)
    _fill(at, sweep_learning_rate="0.001, 0.01")
    at.button(key="sweep_launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [(spec, _, _)] = launched
    assert spec.learning_rate == (0.001, 0.01) and spec.batch_size == (32, 64) and spec.epochs == (2,)
    assert spec.random_trials == 3.0


def test_federated_and_encrypted_settings_reach_the_spec(launched):
    at = _sweep_page(selected_dataset="heart")
    _fill(at, sweep_techniques=["fed-dp-sgd", "he-inference"])
    assert at.expander(key="sweep_federated") is not None and at.expander(key="sweep_encrypted_inference") is not None
    _fill(at, sweep_partition="natural", sweep_local_epochs=2, sweep_clients_per_round=3, sweep_train_technique="dp-sgd",
          sweep_epsilons="1, 4", sweep_accountant="rdp")
    with pytest.raises(KeyError):
        at.number_input(key="sweep_mu")  # fedprox's setting: not offered when fedprox is not chosen
    at.checkbox(key="sweep_secure_aggregation").check()
    at.button(key="sweep_launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [(spec, _, _)] = launched
    assert [spec.option(name) for name in ("partition", "n_clients", "local_epochs", "clients_per_round")] == [
        "natural", None, 2, 3]
    assert spec.option("secure_aggregation") is True and spec.option("train_technique") == "dp-sgd"
    assert spec.option("alpha") is None and spec.option("mu") is None
    assert spec.techniques == ("fed-dp-sgd", "he-inference") and spec.epsilons == (1.0, 4.0)


def test_summary_counts_runs_already_in_the_store(isolated_store):
    settings = dict(dataset="breast-cancer", epochs=2, batch_size=64, accountant="rdp", epsilons=(1.0, 4.0),
                    clipping_norms=(1.0,), seeds=(0,))
    with ResultStore(isolated_store) as store:
        assert run_sweep(make_spec(techniques=("baseline",), **settings), store=store, device="cpu").trained == 1
    at = _sweep_page()
    _fill(at, sweep_dataset="breast-cancer", sweep_epsilons="1, 4", sweep_epochs="2", sweep_batch_size="64",
          sweep_accountant="rdp", sweep_seeds="0, 1")
    assert _metrics(at) | {"Rough time": ""} == {"Runs": "6", "Already in the store": "1", "To train": "5",
                                                "Rough time": ""}
    captions = " ".join(caption.value for caption in at.caption)
    assert "mean of 1 stored run" in captions  # seed 1's baseline time is learnt from seed 0's
    _fill(at, sweep_techniques=["baseline"], sweep_seeds="0")
    assert _metrics(at)["To train"] == "0" and _metrics(at)["Rough time"] == "—"


@pytest.mark.parametrize("field, text, message", [
    ("sweep_epsilons", "0.5, abc", "must be comma-separated numbers"),
    ("sweep_epsilons", "-1", "Target ε values must be > 0"),
    ("sweep_seeds", "", "Seeds is empty"),
    ("sweep_delta", "0.5", "is not below 1/n"),
])
def test_invalid_input_shows_an_error_not_a_traceback(launched, field, text, message):
    at = _sweep_page()
    _fill(at, **{field: text})
    assert any(message in error.value for error in at.error), [error.value for error in at.error]
    assert at.button(key="sweep_launch").disabled
    assert not at.metric


def _fake_status(state: str, **changes) -> JobStatus:
    runs = (RunState("a", "baseline · mlp · seed 0", "cached", accuracy=0.85),
            RunState("b", "dp-sgd · mlp · ε 1 · C 1 · seed 0", "ok", epsilon=0.99, accuracy=0.84),
            RunState("c", "dp-sgd · mlp · ε 2 · C 1 · seed 0", "failed", error="RuntimeError: out of memory"),
            RunState("d", "dp-sgd · mlp · ε 8 · C 1 · seed 0", "training"))
    started = datetime.now(timezone.utc) - timedelta(seconds=75)
    values = dict(job_id="20261123-000000-abcd", state=state, total=4, done=3, cached_at_start=1, failed=1,
                  running_since=started, finished_at=None if state == "running" else started + timedelta(seconds=80),
                  failed_runs=[(runs[2].label, runs[2].error)], current="training dp-sgd · mlp · ε 8 · C 1 · seed 0",
                  log_tail="adult: 4 runs", dataset="adult", runs=runs)
    return JobStatus(**{**values, **changes})


@pytest.fixture
def fake_job(monkeypatch):
    """Makes the page see one job in the given state; records cancel calls."""
    cancelled = []

    def install(status: JobStatus):
        monkeypatch.setattr(services, "latest_job", lambda workspace: status)
        monkeypatch.setattr(services, "active_job", lambda workspace: status if status.running else None)
        monkeypatch.setattr(services, "job_status", lambda job_id, workspace: status)
        monkeypatch.setattr(services, "list_jobs", lambda workspace, limit=None: [status])
        monkeypatch.setattr(services, "cancel", lambda job_id, workspace: cancelled.append(job_id) or status)
        return cancelled

    return install


def test_running_job_shows_progress_cancel_and_blocks_launch(fake_job):
    cancelled = fake_job(_fake_status("running"))
    at = _sweep_page()
    [bar] = at.get("progress")
    assert bar.proto.text == "3 of 4 runs (1 cached, 1 failed)" and bar.proto.value == 75
    assert any("training dp-sgd · mlp · ε 8" in markdown.value for markdown in at.markdown)
    assert at.button(key="sweep_launch").disabled and at.button(key="sweep_demo").disabled
    assert any("already" in info.value or "running" in info.value for info in at.info)
    runs = _frame(at, "status")
    assert list(runs["status"]) == ["cached", "done", "failed", "training…"]
    failed = _frame(at, "error")
    assert failed["error"].tolist() == ["RuntimeError: out of memory"]
    assert any("frontier appears here" in caption.value for caption in at.caption)  # none of its runs is stored
    at.button(key="sweep_cancel").click().run()
    assert cancelled == ["20261123-000000-abcd"]


def test_see_the_frontier_opens_it_on_the_sweeps_dataset(fake_job):
    fake_job(_fake_status("finished", dataset="breast-cancer"))
    at = _sweep_page(selected_dataset="adult")
    at.button(key="sweep_see_frontier").click().run()
    assert not at.exception
    assert at.session_state["selected_dataset"] == "breast-cancer"
    assert at.title[0].value == "Frontier"


@pytest.mark.parametrize("state, kind, words", [
    ("finished", "success", "Finished in"), ("cancelled", "warning", "Cancelled after"),
    ("interrupted", "warning", "stopped before finishing"), ("failed", "error", "stopped with an error"),
])
def test_ended_job_says_how_it_ended(fake_job, state, kind, words):
    fake_job(_fake_status(state, exit_code=2 if state == "failed" else None))
    at = _sweep_page()
    assert any(words in element.value for element in getattr(at, kind)), [e.value for e in getattr(at, kind)]
    assert not [button for button in at.button if button.key == "sweep_cancel"]
    assert not at.button(key="sweep_launch").disabled
    past = _frame(at, "took")
    assert past["state"].tolist() == [state] and past["dataset"].tolist() == ["adult"]


def test_finished_job_draws_its_frontier_from_the_store(isolated_store, fake_job):
    spec = make_spec(dataset="breast-cancer", techniques=("baseline", "dp-sgd"), epochs=2, batch_size=64,
                     accountant="rdp", epsilons=(1.0, 4.0), clipping_norms=(1.0,), seeds=(0,))
    with ResultStore(isolated_store) as store:
        report = run_sweep(spec, store=store, device="cpu")
    labels = ["baseline", "dp-sgd ε 1", "dp-sgd ε 4"]
    fake_job(_fake_status("finished", dataset="breast-cancer", total=3, done=3, cached_at_start=0, failed=0,
                          failed_runs=[], runs=tuple(RunState(run_id, label, "ok")
                                                     for run_id, label in zip(report.run_ids, labels))))
    at = _sweep_page()
    [chart] = at.get("plotly_chart")
    names = [trace.get("name") for trace in json.loads(chart.proto.spec)["data"]]
    assert "dp-sgd · mlp" in names and any("baseline" in str(name) for name in names)


def test_the_form_keeps_its_values_when_the_user_leaves_and_comes_back(launched):
    at = _sweep_page(selected_dataset="breast-cancer")
    _fill(at, sweep_techniques=["dp-sgd"], sweep_epsilons="0.5, 3", sweep_epochs="3")
    at.switch_page("views/frontier.py").run()
    at.switch_page("views/sweep.py").run()
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert at.text_input(key="sweep_epsilons").value == "0.5, 3"
    assert at.text_input(key="sweep_epochs").value == "3"
    assert at.multiselect(key="sweep_techniques").value == ["dp-sgd"]

"""The Data page in Streamlit's AppTest: dataset cards, the upload flow, bad uploads, and upload -> sweep -> frontier."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from engine.config import SweepSpec
from engine.runner.records import open_store as ResultStore
from engine_support import make_spec, run_sweep

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 60
FIXTURE = ROOT / "tests" / "fixtures" / "loan_applications.csv"
IDENTIFIERS = {"applicant_id", "full_name", "email", "phone", "national_id", "zip_code"}


def _data_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("views/data.py").run()
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [exception.value for exception in at.exception]


def _text(at: AppTest) -> str:
    return "\n".join(str(element.value) for kind in ("markdown", "caption", "info", "warning", "error", "success")
                     for element in getattr(at, kind))


def _card_shown(at: AppTest, title_part: str) -> bool:
    labels = {metric.label for metric in at.metric}
    return "Training rows" in labels and any(title_part in m.value for m in at.markdown if m.value.startswith("####"))


def _frame_with(at: AppTest, *columns: str) -> pd.DataFrame:
    """The first st.dataframe holding these columns (AppTest does not expose a read-only dataframe's key)."""
    return next(frame.value for frame in at.dataframe if set(columns) <= set(frame.value.columns))


def _upload(at: AppTest, raw: bytes, name: str) -> str:
    at.file_uploader(key="data_upload").set_value((name, raw, "text/csv")).run()
    _ok(at)
    keys = [box.key for box in at.selectbox if box.key.startswith("data_label_")]
    return keys[0].removeprefix("data_label_") if keys else ""


def test_renders_with_bundled_cards():
    at = _data_page()
    assert at.title[0].value == "Data" and not at.error
    assert at.selectbox(key="data_dataset").value == "adult"
    assert _card_shown(at, "UCI Adult")
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Training rows"] == "32,561" and metrics["Test rows"] == "16,281"
    assert metrics["Positive rate"] == "24.1%"
    text = _text(at)
    assert "CC BY 4.0" in text and "**public**" in text and "marital-status" in text
    assert at.session_state["selected_dataset"] == "adult"  # the Sweep page preselects it

    at.selectbox(key="data_dataset").set_value("heart").run()
    _ok(at)
    text = _text(at)
    assert "Natural silos" in text and "Cleveland" in text and "dropped before training:** id" in text
    at.selectbox(key="data_dataset").set_value("breast-cancer").run()
    assert "**data-derived** for 30 column(s)" in _text(at)
    assert at.session_state["selected_dataset"] == "breast-cancer"


def test_upload_flow_flags_identifiers_and_saves_a_minimised_dataset(isolated_store):
    at = _data_page()
    tag = _upload(at, FIXTURE.read_bytes(), "loan_applications.csv")
    assert tag, "no label selectbox after the upload"
    assert any("look like identifiers" in w.value for w in at.warning)
    assert set(at.multiselect(key=f"data_drop_{tag}").value) == IDENTIFIERS  # dropped by default
    assert at.selectbox(key=f"data_label_{tag}").value == "defaulted"
    assert at.selectbox(key=f"data_positive_{tag}").value == "yes"  # the rarer class
    assert at.text_input(key=f"data_name_{tag}").value == "loan-applications"
    assert _frame_with(at, "full_name", "defaulted").shape == (20, 15)  # the preview; 'notes' (empty) left out

    at.button(key=f"data_save_{tag}").click().run()
    _ok(at)
    assert not at.error
    success = " ".join(s.value for s in at.success)
    assert "Saved as **loan-applications**" in success and "never sent anywhere" in success
    assert str(isolated_store.parent / "datasets" / "loan-applications") in success
    assert at.session_state["selected_dataset"] == "loan-applications"
    assert at.selectbox(key="data_dataset").value == "loan-applications"
    assert _card_shown(at, "loan_applications.csv")
    assert {metric.label: metric.value for metric in at.metric}["Training rows"] == "360"
    stored = pd.read_parquet(isolated_store.parent / "datasets" / "loan-applications" / "data.parquet")
    assert not IDENTIFIERS & set(stored.columns)

    fresh = _data_page()  # a refresh loses nothing: the upload is listed and selectable
    listed = _frame_with(fresh, "name", "provenance")
    assert listed["name"].tolist() == ["loan-applications"]
    assert any(option.startswith("loan-applications") for option in fresh.selectbox(key="data_dataset").options)


def test_bad_uploads_show_an_error_and_keep_the_page(isolated_store):
    at = _data_page()
    tag = _upload(at, FIXTURE.read_bytes(), "loan_applications.csv")
    at.button(key=f"data_save_{tag}").click().run()
    assert at.selectbox(key="data_dataset").value == "loan-applications"

    for raw, message in ((b"\x00\x01\x02 binary", "binary, not a CSV"), (b"a,b\n1,2\n", "1 data row"),
                         (b"PK\x03\x04" + b"\x00" * 40, "Excel workbook")):
        _upload(at, raw, "broken.csv")
        assert [e.value for e in at.error if message in e.value], [e.value for e in at.error]
        assert _card_shown(at, "loan_applications.csv")  # the earlier result stays
        assert at.selectbox(key="data_dataset").value == "loan-applications"
        assert _frame_with(at, "name", "provenance")["name"].tolist() == ["loan-applications"]

    # A readable file with a bad choice: the message comes on Save, and the inputs stay as they were.
    single = b"x,group,outcome\n" + b"".join(f"{i},a,same\n".encode() for i in range(40))
    tag = _upload(at, single, "single.csv")
    at.text_input(key=f"data_name_{tag}").set_value("single-class").run()
    at.button(key=f"data_save_{tag}").click().run()
    _ok(at)
    assert [e.value for e in at.error if "Not saved" in e.value and "single class" in e.value]
    assert at.text_input(key=f"data_name_{tag}").value == "single-class"
    assert _card_shown(at, "loan_applications.csv")


def test_uploaded_dataset_sweeps_and_its_frontier_is_drawn(isolated_store):
    """End to end: upload in the page, sweep it (as the Sweep page would), the Frontier page draws its frontier."""
    at = _data_page()
    tag = _upload(at, FIXTURE.read_bytes(), "loan_applications.csv")
    at.button(key=f"data_save_{tag}").click().run()
    name = at.session_state["selected_dataset"]
    spec = make_spec(dataset=name, techniques=("baseline", "dp-sgd"), epsilons=(1.0, 8.0), seeds=(0,), epochs=3,
                     batch_size=64, accountant="rdp")
    with ResultStore(isolated_store) as store:
        report = run_sweep(spec, store=store, uploads_dir=isolated_store.parent / "datasets", device="cpu")
        records = store.records(dataset=name)
    assert (report.trained, report.failed) == (3, 0)
    # Nothing typed: the page's default is the DP estimate, so no bound or category list is read from the rows.
    assert not any(record["data_derived_bounds"] for record in records)
    from engine.data import get_dataset_info
    assert get_dataset_info(name, isolated_store.parent / "datasets").preprocessing_privacy["epsilon"] == 0.1

    frontier = AppTest.from_file(APP, default_timeout=TIMEOUT)
    frontier.session_state["selected_dataset"] = name
    frontier.run()
    frontier.switch_page("views/frontier.py").run()
    _ok(frontier)
    assert frontier.selectbox(key="frontier_dataset").value == name
    figure = json.loads(frontier.get("plotly_chart")[0].proto.spec)
    assert "Pareto front (all techniques)" in [trace.get("name") for trace in figure["data"]]


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe" + "a,b,y\n1,2,0\n3,4,1\n".encode("utf-16-le")])
def test_empty_and_utf16_files(raw):
    at = _data_page()
    tag = _upload(at, raw, "odd.csv")
    if raw:
        assert tag and not at.error  # UTF-16 (Excel "Unicode text") is read
    else:
        assert [e.value for e in at.error if "The file is empty" in e.value]

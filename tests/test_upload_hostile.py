"""Issue 12, uploads: a hostile tester's malformed CSVs, each a one-line refusal or a correct acceptance (never a
traceback, a silent coercion or a silent drop); identifiers found by how values are written; user text escaped
for Markdown (ui/text.py) and in the report; a bounded fuzz suite over uploads that leaves the folder untouched
whenever it refuses."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.data.uploads.inspect import inspect_csv
from engine.data.uploads.register import register_upload
from engine.data.uploads.validate import UploadSpec, validate_upload
from engine.errors import ConfigError, DataError
from ui.text import JOINER, literal


def _folder_hash(folder: Path) -> str:
    """Every path and byte under `folder` (missing: a fixed value)."""
    digest = hashlib.sha256()
    if folder.exists():
        for path in sorted(folder.rglob("*")):
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            if path.is_file():
                digest.update(path.read_bytes())
    else:
        digest.update(b"<absent>")
    return digest.hexdigest()


def _table(n: int = 80, seed: int = 0, **columns) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).round(3)
    frame = pd.DataFrame({"x": x, "group": rng.choice(["a", "b", "c"], n)})
    for name, values in columns.items():
        frame[name] = values(rng, n) if callable(values) else values
    frame["outcome"] = np.where(x + rng.normal(0, 0.5, n) > 0, "bad", "good")
    return frame


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _text_csv(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


ROWS = [f"{i % 7},{'ab'[i % 2]},{'yn'[i % 3 == 0]}" for i in range(60)]


# --- malformed files: each a one-line refusal naming what and where -------------------------------------------
REFUSED = [
    ("nul-byte", _text_csv("a,b,y", ROWS[:5] + ["3,a\x00b,y"] + ROWS[5:]), r"Line 7 holds a NUL byte"),
    ("short-row", _text_csv("a,b,y", ROWS[:9] + ["3,a"] + ROWS[9:]), r"line 11 has 2 field\(s\) where the header has 3"),
    ("long-row", _text_csv("a,b,y", ROWS[:2] + ["3,a,y,extra"] + ROWS[2:]), r"line 4 has 4 field\(s\) where the header has 3"),
    ("trimmed-collision", _text_csv("age,age ,y", ROWS), r"'age' and 'age ' \(columns 1 and 2\) are the same name once"),
    ("duplicate-header", _text_csv("age,b,age,y", [r + ",1" for r in ROWS]), r"'age' appears 2 times \(columns 1 and 3\)"),
    ("empty-header", _text_csv("a,,y", ROWS), r"Column 2 of the header has no name"),
    ("trailing-separator", _text_csv("a,b,y,", [r + "," for r in ROWS]), r"Column 4 of the header has no name"),
    ("unclosed-quote", _text_csv("a,b,y", ROWS[:3] + ['1,"open,y'] + ROWS[3:6]), r"Could not read .*line \d+"),
    ("binary", b"abc\x00\x01\x02\x03" * 100, "binary, not a CSV"),
    ("bad-utf16", b"\xff\xfe" + "a,b,y\n1,2,3\n".encode("utf-16-le") + b"\x00\xd8", "not valid UTF-16-LE"),
]


@pytest.mark.parametrize("raw, message", [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_malformed_files_are_refused_in_one_line(raw, message, tmp_path):
    uploads = tmp_path / "datasets"
    (uploads / "earlier").mkdir(parents=True)
    (uploads / "earlier" / "catalogue.yaml").write_text("earlier: {}\n")
    before = _folder_hash(uploads)
    with pytest.raises(DataError, match=message) as caught:
        register_upload(raw, "hostile.csv", UploadSpec("hostile", "y", "y"), uploads_dir=uploads)
    assert "\n" not in str(caught.value) and len(str(caught.value)) > 40  # one line, saying how to fix it
    assert _folder_hash(uploads) == before


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_read_as_text(encoding):
    text = "âge,ville,y\n" + "".join(f"{20 + i},Orléans {i % 3},{i % 2}\n" for i in range(40))
    inspection = inspect_csv(text.encode(encoding), "excel-unicode.txt")
    assert inspection.encoding == encoding
    assert list(inspection.frame.columns) == ["âge", "ville", "y"]
    assert inspection.frame["ville"].iloc[1] == "Orléans 1" and inspection.frame["âge"].iloc[39] == 59


@pytest.mark.parametrize("value", ["1e308", "-1e308", "1e309", "inf", "-Infinity", "2e15"])
def test_absurd_and_non_finite_numbers_are_explained_dropped_and_refused_if_kept(value):
    rows = [f"{i}.5,{'ab'[i % 2]},{'yn'[i % 3 == 0]}" for i in range(60)]
    rows[7] = f"{value},a,y"
    inspection = inspect_csv(_text_csv("a,b,y", rows), "big.csv")
    assert "a" in inspection.unusable and "line 9" in inspection.unusable["a"] and repr(value) in inspection.unusable["a"]
    assert any("'a'" in warning and "refused if kept" in warning for warning in inspection.warnings)  # said, not silent
    assert "a" in inspection.suggested_drops
    plan = validate_upload(inspection, UploadSpec("big", "y", "y", undeclared="data"))  # the default: dropped, said
    assert "a" not in plan.table and "a" in plan.dropped_columns
    with pytest.raises(DataError, match=r"Column 'a' cannot be kept: .*too large to use") as caught:
        validate_upload(inspection, UploadSpec("big", "y", "y", drop_columns=()))
    assert "\n" not in str(caught.value)
    with pytest.raises(DataError, match="within ±1e\\+15"):
        validate_upload(inspect_csv(_text_csv("a,b,y", [r.replace(value, "1") for r in rows]), "big.csv"),
                        UploadSpec("big", "y", "y", numeric_bounds={"a": (-1e308, 1e308)}))


def test_an_absurd_label_is_refused():
    rows = [f"{i},{'ab'[i % 2]},{i % 2}" for i in range(60)]
    rows[3] = "3,b,1e308"
    with pytest.raises(DataError, match="Column 'y' cannot be kept"):
        validate_upload(inspect_csv(_text_csv("a,b,y", rows), "label.csv"), UploadSpec("label", "y", "0"))


def test_a_clean_file_is_accepted_as_written(tmp_path):
    """Blank lines are skipped, quoted separators and spaces kept, missing markers read as missing: nothing else
    is changed on the way in."""
    raw = (b'id_like,amount,city,y\n\n1,"1,5",  Paris ,y\n2,2.5,"Saint-Denis, Nord",n\n'
           + b"".join(f"{i},{i}.25,Lyon,{'yn'[i % 2]}\n".encode() for i in range(3, 60)) + b"4,NA,?,n\n")
    inspection = inspect_csv(raw, "clean.csv")
    assert inspection.n_rows == 60 and list(inspection.frame.columns) == ["id_like", "amount", "city", "y"]
    assert inspection.frame["city"].iloc[:2].tolist() == ["Paris", "Saint-Denis, Nord"]
    assert inspection.profile("amount").kind == "categorical"  # "1,5" is text, not silently 15
    assert inspection.frame["city"].isna().sum() == 1 and inspection.frame["amount"].isna().sum() == 1


# --- identifiers found by how values are written --------------------------------------------------------------
def _repeat(values: list[str]) -> list[str]:
    return [*values[:-3], values[0], values[1], values[2]]  # some values repeat: uniqueness does not hide them


WRITTEN = [
    ("mobile numbers", lambda rng, n: _repeat([f"07{rng.integers(100_000_000, 999_999_999)}" for _ in range(n)]),
     "11-digit codes"),
    ("national ids", lambda rng, n: _repeat([str(rng.integers(100_000_000, 999_999_999)) for _ in range(n)]),
     "9-digit codes"),
    ("international phones", lambda rng, n: _repeat([f"+33{rng.integers(600_000_000, 799_999_999)}" for _ in range(n)]),
     "phone numbers"),
    ("postcodes", lambda rng, n: [f"{rng.integers(1000, 99_999):05d}" for _ in range(n)], "5-digit codes"),
    ("iso dates", lambda rng, n: [f"19{rng.integers(40, 99)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
                                  for _ in range(n)], "look like dates"),
    ("day-first dates", lambda rng, n: [f"{rng.integers(1, 29):02d}/{rng.integers(1, 13):02d}/19{rng.integers(40, 99)}"
                                        for _ in range(n)], "look like dates"),
    ("compact dates", lambda rng, n: [f"19{rng.integers(40, 99)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
                                      for _ in range(n)], "written as dates"),
]


@pytest.mark.parametrize("values, reason", [case[1:] for case in WRITTEN], ids=[case[0] for case in WRITTEN])
def test_identifiers_in_neutrally_named_columns_are_found_by_their_written_form(values, reason):
    inspection = inspect_csv(_csv(_table(col_7=values)), "neutral.csv")
    assert reason in inspection.suspected_identifiers.get("col_7", ""), inspection.suspected_identifiers
    assert "col_7" in inspection.suggested_drops and set(inspection.suspected_identifiers) == {"col_7"}


@pytest.mark.parametrize("name, values", [
    ("v", lambda rng, n: [str(v) for v in rng.integers(200, 1500, n) * 100]),  # round amounts
    ("income", lambda rng, n: [str(v) for v in rng.integers(10_000, 99_999, n)]),  # named as a measurement
    ("v", lambda rng, n: [str(v) for v in rng.integers(1, 99, n)]),  # small counts
    ("v", lambda rng, n: [f"{v:.2f}" for v in rng.normal(50_000, 9_000, n)]),  # measurements with decimals
    ("site", lambda rng, n: rng.choice(["10115", "75001", "20095"], n)),  # three 5-digit codes: a site, not a person
])
def test_measurements_and_site_codes_are_not_flagged(name, values):
    assert name not in inspect_csv(_csv(_table(**{name: values})), "measures.csv").suspected_identifiers


# --- user text shown literally -------------------------------------------------------------------------------
HOSTILE = ["![x](http://example.invalid/a.png)", "[link](http://example.invalid)",
           "<img src=http://example.invalid/b.png>", "<script>alert(1)</script>", "**bold** _em_ `code` $x$",
           ":red[red] :material/home: :smile:", "www.example.invalid a@b.invalid", "# heading", "1. item", "&amp;"]


@pytest.mark.parametrize("text", HOSTILE)
def test_literal_escapes_every_markdown_construct(text):
    escaped = literal(text)
    unescaped = escaped.replace(JOINER, "")
    for i, char in enumerate(unescaped):  # every construct-starting character is preceded by a backslash
        if char in "[]<>!*`$&#":
            assert unescaped[i - 1] == "\\", (text, escaped)
    assert "://" not in escaped and "www." not in escaped and ":red" not in escaped and "\n" not in escaped


def test_literal_leaves_plain_names_alone():
    assert literal("home_ownership") == "home_ownership" and literal("Age (years)") == "Age (years)"
    assert literal("a\nb") == "a b"


def test_the_report_escapes_the_uploaded_names(tmp_path):
    """A hostile upload's file name, column names and values reach the report as text, never as tags."""
    from engine import services
    from engine.workspace import Workspace
    from engine_support import make_spec

    workspace = Workspace.at(tmp_path / "store" / "results.sqlite")
    hostile_column = HOSTILE[2]
    frame = _table(n=120, **{hostile_column: lambda rng, n: rng.normal(size=n).round(2)})
    raw = _csv(frame)
    inspection = inspect_csv(raw, "<img src=http://example.invalid/f.png>.csv")
    register_upload(raw, inspection, UploadSpec("hostile", "outcome", "bad", undeclared="data"),
                    uploads_dir=workspace.uploads_dir)
    spec = make_spec(dataset="hostile", techniques=("baseline", "dp-sgd"), epsilons=(4.0,), seeds=(0,), epochs=1,
                     batch_size=64, accountant="rdp")
    services.run(services.plan(spec, workspace), workspace, workers=1, device="cpu")
    runs = services.read_runs(workspace)
    run_id = runs[runs["technique"] == "dp-sgd"]["run_id"].iloc[0]
    report = services.export(workspace, run_id, "balanced_accuracy").report_html
    assert "example.invalid" in report  # the names are there, as text
    assert "<img" not in report and "<script" not in report and "&lt;img src=http://example.invalid" in report


# --- fuzz: never a traceback, and a refusal writes nothing ----------------------------------------------------
CELLS = st.one_of(
    st.lists(st.sampled_from(list("ab ,;\t\"'\n\r\x00é€?-.e+0123456789") + ["NA", "inf", "1e308", "<b>"]),
             max_size=6).map("".join),
    st.integers(-10**18, 10**18).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "age", "age ", "y", "0", "1", "0612345678", "75001", "2024-01-31", "![x](http://e.invalid)"]))


@st.composite
def csv_uploads(draw) -> bytes:
    """A valid table with hostile cells or headers put in, sometimes a ragged line, in one of several encodings;
    now and then plain random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    n = draw(st.sampled_from([3, 40, 80]))
    header = ["num", "text", "y"]
    rows = [[f"{i % 17 * 1.5:g}", "abc"[i % 3], "01"[i % 2]] for i in range(n)]
    for _ in range(draw(st.integers(0, 6))):
        row, column = draw(st.integers(-1, n - 1)), draw(st.integers(0, 2))
        (header if row < 0 else rows[row])[column] = draw(CELLS)
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    lines = [delimiter.join(header)] + [delimiter.join(row) for row in rows]
    if draw(st.integers(0, 3)) == 0:  # one line with a field too many or too few
        at = draw(st.integers(0, len(lines) - 1))
        lines[at] = lines[at] + delimiter + "x" if draw(st.booleans()) else lines[at].rsplit(delimiter, 1)[0]
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "latin-1"]))
    return text.encode(encoding, errors="replace")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=csv_uploads(), undeclared=st.sampled_from(["data", "dp"]))
def test_fuzzed_uploads_are_refused_in_one_line_or_accepted_and_refusals_write_nothing(raw, undeclared, tmp_path):
    uploads = tmp_path / "fuzz" / "datasets"
    (uploads / "kept").mkdir(parents=True, exist_ok=True)
    (uploads / "kept" / "catalogue.yaml").write_text("kept: {}\n")
    before = _folder_hash(uploads)
    try:
        inspection = inspect_csv(raw, "fuzz.csv")
        label = inspection.frame.columns[-1]
        counts = inspection.class_counts(label)
        spec = UploadSpec("fuzzed", label, next(iter(counts), "1"), undeclared=undeclared, preprocessing_epsilon=1.0)
        info = register_upload(raw, inspection, spec, uploads_dir=uploads, replace=True)
    except (DataError, ConfigError) as exc:
        event("refused")
        assert "\n" not in str(exc), str(exc)
        assert _folder_hash(uploads) == before
    else:
        event("accepted")
        assert (Path(info.folder) / "data.parquet").exists()
        stored = pd.read_parquet(Path(info.folder) / "data.parquet")
        assert set(stored.columns) <= set(inspection.frame.columns)
        assert not any(column in stored for column in inspection.unusable)


# --- the Data page: a refusal is one message, never a traceback -----------------------------------------------
@pytest.mark.parametrize("case", ["trimmed-collision", "duplicate-header", "nul-byte", "short-row"])
def test_the_data_page_shows_a_refused_file_as_one_error(case):
    from streamlit.testing.v1 import AppTest

    raw = next(raw for name, raw, _ in REFUSED if name == case)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/data.py").run()
    at.file_uploader(key="data_upload").set_value(("hostile.csv", raw, "text/csv")).run()
    assert not at.exception, [exception.value for exception in at.exception]
    assert [error.value for error in at.error if "hostile.csv** cannot be used" in error.value]

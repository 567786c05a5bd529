"""The data layer's dependencies are explicit: engine/data imports no other engine module than engine.errors, reads
no environment, and sees exactly the uploads folder it is handed."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.data import dataset_names, load_dataset
from engine.data.uploads.register import register_upload
from engine.data.uploads.validate import UploadSpec
from engine.errors import ConfigError
from engine.runner.records import open_store as ResultStore
from engine_support import make_spec, plan_sweep, run_sweep

DATA = Path(__file__).resolve().parents[1] / "engine" / "data"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "loan_applications.csv"
LOAN = UploadSpec(name="loans", label_column="defaulted", positive_class="yes")


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_engine_data_imports_only_itself_and_engine_errors():
    outside = {f"{path.relative_to(DATA)}: {module}" for path in DATA.rglob("*.py") for module in _imported_modules(path)
               if module.split(".")[0] == "engine" and not module.startswith(("engine.data", "engine.errors"))}
    assert outside == set()
    for path in DATA.rglob("*.py"):
        text = path.read_text()
        assert "FRONTIER_STORE" not in text and "os.environ" not in text and "getenv" not in text, path


def test_importing_engine_data_does_not_load_the_store():
    code = "import sys, engine.data, engine.data.uploads.register; print('engine.runner.store' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_an_upload_is_seen_only_through_the_folder_it_was_saved_in(tmp_path, monkeypatch):
    monkeypatch.delenv("FRONTIER_STORE", raising=False)  # nothing may come through the environment
    first, second = (tmp_path / name / "results.sqlite" for name in ("first", "second"))
    first_uploads, second_uploads = first.parent / "datasets", second.parent / "datasets"
    info = register_upload(FIXTURE.read_bytes(), FIXTURE.name, LOAN, uploads_dir=first_uploads)
    assert Path(info.folder) == first_uploads / "loans"

    data = load_dataset("loans", first_uploads)
    assert data.info.origin == "uploaded" and data.info.folder == info.folder and data.n_train == 360
    assert "loans" in dataset_names(first_uploads) and "loans" not in dataset_names(second_uploads)
    for elsewhere in (second_uploads, None):
        with pytest.raises(ConfigError, match="Unknown dataset 'loans'"):
            load_dataset("loans", elsewhere)

    spec = make_spec(dataset="loans", techniques=("baseline",), seeds=(0,), epochs=1, batch_size=64)
    with ResultStore(first) as store:
        assert run_sweep(spec, store=store, uploads_dir=first_uploads, device="cpu").trained == 1
    with pytest.raises(ConfigError, match="Unknown dataset 'loans'"):
        plan_sweep(spec, None, uploads_dir=second_uploads)


def test_the_cli_finds_uploads_beside_its_store_option(tmp_path, monkeypatch):
    """The dashboard's background sweep is `frontier sweep --store`: it must find the upload from that option alone."""
    monkeypatch.delenv("FRONTIER_STORE", raising=False)
    store = tmp_path / "mine" / "results.sqlite"
    register_upload(FIXTURE.read_bytes(), FIXTURE.name, LOAN, uploads_dir=store.parent / "datasets")
    runner = CliRunner()
    listed = runner.invoke(app, ["datasets", "--format", "json", "--store", str(store)])
    assert listed.exit_code == 0, listed.output
    assert "loans" in [card["name"] for card in json.loads(listed.output)]
    other = runner.invoke(app, ["datasets", "--format", "json", "--store", str(tmp_path / "other" / "r.sqlite")])
    assert "loans" not in [card["name"] for card in json.loads(other.output)]

    swept = runner.invoke(app, ["sweep", "--dataset", "loans", "--technique", "baseline", "--seeds", "0", "--epochs", "1",
                                "--store", str(store), "--device", "cpu", "--quiet"])
    assert swept.exit_code == 0, swept.output
    (run_id,) = swept.output.split("run ids: ")[1].split()
    exported = runner.invoke(app, ["export", run_id, "--out", str(tmp_path / "export"), "--store", str(store)])
    assert exported.exit_code == 0 and "warning" not in exported.output, exported.output
    assert "loan_applications.csv" in (tmp_path / "export" / "report.html").read_text()

"""Keep a validated upload as a dataset: write data.parquet and catalogue.yaml atomically under the uploads folder
(`<uploads_dir>/<name>/`, which the caller passes in); replace it, delete it.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import yaml

from engine.data.catalogue import DatasetInfo, bundled_dataset_names, parse_entry
from engine.data.prepare import prepare_table
from engine.data.uploads.inspect import CsvInspection, inspect_csv
from engine.data.uploads.limits import NAME_PATTERN
from engine.data.uploads.validate import UploadSpec, catalogue_entry, declaration, validate_upload
from engine.errors import DataError


def _write_entry(folder: Path, name: str, entry: dict) -> None:
    with (folder / "catalogue.yaml").open("w", encoding="utf-8") as handle:
        handle.write("# Written by the Data page (engine/data/uploads/). Bounds and categories listed in\n"
                     "# data_derived_columns were read from the rows: every run record repeats them. Those in\n"
                     "# dp_estimated_columns are a DP estimate whose preprocessing_privacy every composition adds.\n")
        yaml.safe_dump({name: entry}, handle, sort_keys=False, allow_unicode=True)


def register_upload(raw: bytes, inspection_or_filename: CsvInspection | str, spec: UploadSpec, *,
                    uploads_dir: Path, replace: bool = False, expected_fingerprint: str | None = None) -> DatasetInfo:
    """Keep the upload as a dataset under `<uploads_dir>/<name>/` and return its catalogue entry.

    Only the kept columns are written (dropped and identifier columns never touch the disk). The same name with
    the same prepared data again is a no-op; with other data it is an error unless `replace` (earlier runs
    keep their old fingerprint in their cache key, so they are never mistaken for runs on the new data).
    `expected_fingerprint` (a schema carried by an export): refuse, writing nothing, a file that prepares to
    another table than the one the exported runs were trained on.
    """
    inspection = (inspection_or_filename if isinstance(inspection_or_filename, CsvInspection)
                  else inspect_csv(raw, str(inspection_or_filename)))
    if inspection.sha256 != hashlib.sha256(raw).hexdigest():
        raise DataError("The inspection passed to register_upload belongs to another file: inspect this file again.")
    root = Path(uploads_dir)
    folder = root / spec.name
    old = _entry(folder, spec.name) if NAME_PATTERN.match(spec.name or "") else {}
    if ((old.get("upload") or {}).get("sha256") == inspection.sha256 and old["upload"].get("declared") == declaration(spec)
            and (expected_fingerprint is None or old.get("fingerprint") == expected_fingerprint)):
        # The same file with the same declarations: the same upload. No second DP estimate (it would spend again).
        return parse_entry(spec.name, old, folder)
    plan = validate_upload(inspection, spec)
    created = _missing_folders(root)  # removed again if nothing is kept: a refused upload leaves no trace
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{spec.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        entry = catalogue_entry(inspection, plan, datetime.now(timezone.utc))
        if replace and old:  # runs on the replaced version stay under this name: its DP preprocessing still counts
            earlier = [*(old.get("earlier_preprocessing") or []), *([old["preprocessing_privacy"]]
                                                                   if old.get("preprocessing_privacy") else [])]
            if earlier:
                entry["earlier_preprocessing"] = earlier
        plan.table.to_parquet(staging / "data.parquet", index=False)
        _write_entry(staging, spec.name, entry)
        # Prepare it once now, as a sweep would: fails here (not in the middle of a sweep) and gives the fingerprint.
        info = parse_entry(spec.name, entry, staging)
        entry["fingerprint"] = prepare_table(info).fingerprint
        if expected_fingerprint is not None and entry["fingerprint"] != expected_fingerprint:
            raise DataError(f"{inspection.filename} is not the table this schema was exported from: expected "
                            f"fingerprint {expected_fingerprint}, found {entry['fingerprint']}. Use the CSV the runs "
                            "were trained on, or remove `fingerprint:` from the schema to register it as new data.")
        _write_entry(staging, spec.name, entry)
        if old:
            if (old.get("fingerprint") == entry["fingerprint"] and old.get("data_derived_columns") == entry["data_derived_columns"]
                    and old.get("preprocessing_privacy") == entry.get("preprocessing_privacy")):
                shutil.rmtree(staging)
                return parse_entry(spec.name, old, folder)
            if not replace:
                raise DataError(f"A dataset named {spec.name!r} already exists ({old.get('provenance', 'uploaded earlier')}) "
                                "with other data: choose another name, or replace it (runs on the old data stay in the "
                                "store under their own fingerprint).")
        if folder.exists():
            retired = root / f".{spec.name}.replaced-{uuid.uuid4().hex[:8]}"
            folder.rename(retired)
            staging.rename(folder)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        for made in created:  # deepest first; only if still empty (another upload may have arrived meanwhile)
            if made.exists() and not any(made.iterdir()):
                made.rmdir()
    return parse_entry(spec.name, entry, folder)


def _entry(folder: Path, name: str) -> dict:
    """The catalogue entry stored in `folder` ({} if none)."""
    path = folder / "catalogue.yaml"
    if not path.exists():
        return {}
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get(name) or {}


def _missing_folders(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def delete_upload(name: str, *, uploads_dir: Path) -> None:
    """Remove an uploaded dataset's folder in `uploads_dir` (its stored rows and entry). Runs already in the result
    store stay."""
    folder = Path(uploads_dir) / name
    if name in bundled_dataset_names() or not NAME_PATTERN.match(name) or not (folder / "catalogue.yaml").exists():
        raise DataError(f"{name!r} is not an uploaded dataset in {folder.parent}: nothing to delete.")
    shutil.rmtree(folder)

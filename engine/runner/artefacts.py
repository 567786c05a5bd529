"""Files a run releases beside its record (today: dp-synthetic's synthetic table), kept in the workspace folder.

A technique hands them back in `RunResult.artefacts` ({kind: bytes}); the runner writes each, before the record,
to `<store folder>/<kind>/<run_id><suffix>`, so a stored run's artefact is found from its id alone and is cached
with it. They are never put in the store: the dashboards read every record, and a table is hundreds of kB.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import StoreError

SUFFIXES = {"synthetic": ".csv.gz"}


def artefact_path(folder: Path, kind: str, run_id: str) -> Path:
    return Path(folder) / kind / f"{run_id}{SUFFIXES[kind]}"


def write_artefacts(folder: Path, run_id: str, artefacts: dict[str, bytes]) -> None:
    """Write each artefact atomically (a reader never sees half a file)."""
    for kind, content in artefacts.items():
        path = artefact_path(folder, kind, run_id)
        partial = path.with_name(f".{path.name}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(content)
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise StoreError(f"Cannot write the run's {kind} file {path} ({exc.strerror or exc}): free space or make "
                             "the folder writable, then run the sweep again.") from exc

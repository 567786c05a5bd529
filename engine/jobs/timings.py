"""The probe's measurements, kept in the workspace (TIMINGS_FILE beside the store) so that the Sweep page, which
estimates on every rerun, measures a configuration once. Keyed by what a step's cost depends on: the prepared
data's fingerprint, the technique (and its own settings), the model and its width, the batch size, the device, the
cores this process may use, and the engine's version (and, for a batched DP-SGD pass, the models it was timed with).

Looking writes nothing: while the workspace folder does not exist yet, measurements are kept in this process only.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from engine import ENGINE_VERSION
from engine.config import RunConfig
from engine.jobs.probe import Measurement
from engine.workspace import Workspace

TIMINGS_FILE = "timings.json"
_in_memory: dict[tuple[str, str], dict] = {}  # (workspace folder, key) -> measurement, while no folder exists


def timing_key(config: RunConfig, *, fingerprint: str, device: str, cores: int, whole_run: bool,
               batched_models: int | None = None) -> str:
    """One string per thing measured. A whole-run measurement also depends on the epochs and the privacy budget; a
    batched pass's on how many models it was measured with (other counts are scaled from it)."""
    values = dict(fingerprint=fingerprint, technique=config.technique, model=config.model,
                  hidden_units=config.hidden_units, batch_size=config.batch_size, device=device, cores=cores,
                  engine=ENGINE_VERSION, params=[list(pair) for pair in config.params])
    if whole_run:
        values.update(epochs=config.epochs, target_epsilon=config.target_epsilon)
    if batched_models is not None:
        values.update(batched_models=batched_models)
    return json.dumps(values, sort_keys=True, default=str)


def timings_path(workspace: Workspace) -> Path:
    return workspace.folder / TIMINGS_FILE


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # missing or half-written by another process: measure again


def recall(workspace: Workspace, key: str) -> Measurement | None:
    stored = _read(timings_path(workspace)).get(key) or _in_memory.get((str(workspace.folder), key))
    try:
        return Measurement.from_json(stored) if stored else None
    except (TypeError, KeyError):
        return None


def remember(workspace: Workspace, key: str, measurement: Measurement) -> None:
    """Keep `measurement` in the workspace's timings file (atomically replaced), or in memory without a folder."""
    folder = workspace.folder
    if not folder.is_dir():
        _in_memory[(str(folder), key)] = measurement.to_json()
        return
    path = timings_path(workspace)
    timings = _read(path)
    timings[key] = measurement.to_json()
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".timings-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(timings, file, indent=1, sort_keys=True)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)

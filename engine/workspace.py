"""Where a user's work lives: the result store file and, beside it, the uploaded datasets and sweep jobs.

A Workspace is made once by a surface (the CLI from --store, the dashboard from its settings) and passed
to every engine function that needs a location; nothing deeper reads the environment to find one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STORE = Path(".frontier") / "results.sqlite"
STORE_ENVIRONMENT_VARIABLE = "FRONTIER_STORE"


@dataclass(frozen=True)
class Workspace:
    store_path: Path  # the SQLite result store

    @classmethod
    def at(cls, store_path: str | os.PathLike | None) -> "Workspace":
        """The workspace of this store path, or of the default store ($FRONTIER_STORE, else ./.frontier)."""
        return cls(Path(store_path) if store_path else default_store_path())

    @property
    def folder(self) -> Path:
        return self.store_path.parent

    @property
    def uploads_dir(self) -> Path:
        """Uploaded datasets, one folder each (engine.data)."""
        return self.folder / "datasets"

    @property
    def jobs_dir(self) -> Path:
        """Background sweep jobs, one folder each (engine.jobs)."""
        return self.folder / "jobs"


def default_store_path() -> Path:
    """$FRONTIER_STORE, else ./.frontier/results.sqlite: read only by the surfaces, once."""
    return Path(os.environ.get(STORE_ENVIRONMENT_VARIABLE) or DEFAULT_STORE)

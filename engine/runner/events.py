"""Progress events of a sweep, and their JSON-lines log (what a background job's readers follow).

The runner calls back with a ProgressEvent for every run: cached, started, progress, finished, failed. A
background job appends each to `events.jsonl` in its folder (EventLog), one JSON object a line, flushed at
once; engine.jobs reads them back. Nothing ever parses printed text.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from engine.config import RunConfig
from engine.techniques.base import RunResult

EVENT_KINDS = ("planned", "cached", "elsewhere", "started", "progress", "finished", "failed", "ended")


@dataclass(frozen=True)
class ProgressEvent:
    """Sent to a sweep's progress callback. kind: cached | elsewhere (trained meanwhile by another sweep on the
    same store) | started | progress | finished | failed."""

    kind: str
    run_id: str
    config: RunConfig
    done: int  # runs finished (trained, failed or answered from cache) so far
    total: int
    fraction: float = 0.0  # of the current run, for kind == "progress"
    error: str | None = None
    result: RunResult | None = None


ProgressCallback = Callable[[ProgressEvent], None]


class EventLog:
    """Appends events to a JSON-lines file; a callable, so it can be the sweep's progress callback."""

    def __init__(self, path: Path, *, min_progress_interval_s: float = 1.0):
        self.path = path
        self.min_progress_interval_s = min_progress_interval_s  # progress events are many: keep the file small
        self._last_progress: dict[str, float] = {}

    def write(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"kind": kind, "time": time.time(), **fields}, default=str)
        with open(self.path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
            log.flush()
            os.fsync(log.fileno())

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "progress":
            now = time.monotonic()
            if now - self._last_progress.get(event.run_id, 0.0) < self.min_progress_interval_s:
                return
            self._last_progress[event.run_id] = now
        fields: dict[str, Any] = {"run_id": event.run_id, "done": event.done, "total": event.total}
        if event.kind == "progress":
            fields["fraction"] = round(event.fraction, 4)
        if event.error is not None:
            fields["error"] = event.error
        if event.result is not None:
            fields.update(epsilon=event.result.epsilon, accuracy=event.result.accuracy)
        self.write(event.kind, **fields)


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete event in the log (a line being written is skipped until it is whole)."""
    try:
        with open(path, encoding="utf-8") as log:
            for line in log:
                if not line.endswith("\n"):
                    break
                try:
                    yield json.loads(line)
                except ValueError:
                    continue
    except OSError:
        return

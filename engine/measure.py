"""Measuring a run: wall time and peak memory (process RSS on CPU, allocator peak on CUDA)."""

from __future__ import annotations

import threading
import time

import psutil
import torch


class PeakMemory:
    """Context manager: `peak_mb` is the largest memory seen while inside.

    CPU: the process's resident set size, sampled every 20 ms by a thread (torch allocations are
    invisible to tracemalloc). CUDA: torch.cuda.max_memory_allocated since entry.
    """

    def __init__(self, device: str, interval_s: float = 0.02):
        self.device = device
        self.interval_s = interval_s
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb or 0.0, process.memory_info().rss / 2**20)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.device == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self.peak_mb or 0.0, psutil.Process().memory_info().rss / 2**20)


class Stopwatch:
    def __enter__(self) -> "Stopwatch":
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc_info) -> None:
        self.seconds = time.perf_counter() - self._start


def resolve_device(requested: str) -> str:
    """'auto' picks CUDA when present and falls back to CPU; 'cuda' without a GPU is an error."""
    from engine.errors import ConfigError

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("{device} cuda was asked for but no CUDA GPU is visible: choose auto or cpu.",
                          setting="device")
    if requested not in ("cpu", "cuda"):
        raise ConfigError(f"Unknown device {requested!r}: choose auto, cpu or cuda.")
    return requested

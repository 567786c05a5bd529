"""How many torch intra-op threads a batched pass's steps use on CPU: measured, not assumed.

A pass of 45 adult MLPs steps in 25 ms on one thread and 13 ms on two of this 2-core machine when the other core is
free, but on a loaded machine two OpenMP threads spin against the other work and a step can take 30x longer (K = 6
adult MLPs, load ~4: 0.43 s an epoch on one thread, 13.8 s on two). So a pass tries both: after WARM_UP steps it
times TRIAL_STEPS steps on one thread, then as many on every thread it may use, keeps the clearly faster (MARGIN),
and tries the other again after `interval` steps, doubling the interval each time the trial loses (the cost of a
bad trial falls off quickly) and resetting it when the trial wins (the load changed).

A process told to use one thread (a sweep's worker processes: workers x 1 thread = cores) never tries more, and
CUDA steps leave the CPU's threads alone. torch's batched products split the K models across threads, so a step's
numbers came out bit-identical on one and two threads here (torch does not promise it for every shape and kernel).
"""

from __future__ import annotations

import os
import statistics

import torch

WARM_UP = 2  # steps before the first trial: allocations and caches settle
TRIAL_STEPS = 5  # steps each side of a trial is timed over
MARGIN = 0.85  # the challenger wins only if its median step takes less than this share of the incumbent's
FIRST_INTERVAL = 200  # steps on the winner before the loser is tried again (doubled after every lost trial)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class StepThreads:
    """Call `threads()` before each step (it sets torch's threads) and `took(seconds)` after it."""

    def __init__(self, device: str, most: int | None = None):
        """`most`: the threads the process may use (default: torch's current setting, at most the usable cores)."""
        most = min(torch.get_num_threads(), usable_cores()) if most is None else most
        self.on_cpu = device == "cpu"
        self.choices = (1, most) if self.on_cpu and most > 1 else (1,)
        self.current = 1  # the winner so far
        self.step = 0
        self.interval = FIRST_INTERVAL
        self.next_trial = WARM_UP  # the step the next trial starts at
        self.times: dict[int, list[float]] = {}  # the trial's per-step seconds of each choice
        self.history: list[tuple[int, int]] = []  # (step, threads) each time the winner changed: for the record
        self.trying: int | None = None  # the choice being timed now

    def _other(self) -> int:
        return next(choice for choice in self.choices if choice != self.current)

    def _in_trial(self) -> bool:
        return len(self.choices) > 1 and 0 <= self.step - self.next_trial < 2 * TRIAL_STEPS

    def threads(self) -> int:
        # A trial times the incumbent first, then the other, so that both see the same stretch of the pass.
        trial = self._in_trial()
        chosen = self._other() if trial and self.step - self.next_trial >= TRIAL_STEPS else self.current
        self.trying = chosen if trial else None
        if self.on_cpu and torch.get_num_threads() != chosen:  # CUDA steps: the CPU's threads are left alone
            torch.set_num_threads(chosen)
        return chosen

    def took(self, seconds: float) -> None:
        if self.trying is not None:
            self.times.setdefault(self.trying, []).append(seconds)
        self.step += 1
        if len(self.choices) > 1 and self.step - self.next_trial == 2 * TRIAL_STEPS:  # trial over: keep the faster
            incumbent = statistics.median(self.times.get(self.current, [float("inf")]))
            other = self._other()
            challenger = statistics.median(self.times.get(other, [float("inf")]))
            if challenger < MARGIN * incumbent:
                self.current, self.interval = other, FIRST_INTERVAL
                self.history.append((self.step, other))
            elif self.step > WARM_UP + 2 * TRIAL_STEPS:  # the first trial only picks; a lost retrial backs off
                self.interval *= 2
            self.times.clear()
            self.next_trial = self.step + self.interval

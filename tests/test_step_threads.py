"""StepThreads: a batched pass's steps use more torch threads only where measuring them shows they are faster."""

from __future__ import annotations

import torch

from engine.techniques import step_threads
from engine.techniques.step_threads import StepThreads


def drive(tuner: StepThreads, seconds_for, steps: int) -> list[int]:
    """Run `steps` steps whose time is seconds_for(threads, step); the threads each step used."""
    used = []
    for step in range(steps):
        threads = tuner.threads()
        assert torch.get_num_threads() == threads  # on CPU it sets torch's threads
        used.append(threads)
        tuner.took(seconds_for(threads, step))
    return used


def test_more_threads_are_kept_only_when_clearly_faster_and_retried_less_often_after_losing():
    previous = torch.get_num_threads()
    try:
        faster = StepThreads("cpu", most=2)
        used = drive(faster, lambda threads, step: 0.010 if threads == 2 else 0.025, 60)
        switch = step_threads.WARM_UP + 2 * step_threads.TRIAL_STEPS
        assert used[:step_threads.WARM_UP + step_threads.TRIAL_STEPS] == [1] * (step_threads.WARM_UP
                                                                              + step_threads.TRIAL_STEPS)
        assert set(used[switch:]) == {2} and faster.history == [(switch, 2)]

        loaded = StepThreads("cpu", most=2)  # two threads spin against other work: each trial loses
        used = drive(loaded, lambda threads, step: 0.30 if threads == 2 else 0.025, 1500)
        trials = [step for step in range(1, len(used)) if used[step] == 2 and used[step - 1] == 1]
        gaps = [later - earlier for earlier, later in zip(trials, trials[1:])]
        assert loaded.current == 1 and loaded.history == []
        assert len(trials) >= 3 and all(later > earlier for earlier, later in zip(gaps, gaps[1:]))  # backing off
        assert used.count(2) <= len(trials) * step_threads.TRIAL_STEPS

        close = StepThreads("cpu", most=2)  # 10% faster is within noise: not worth the risk
        drive(close, lambda threads, step: 0.0225 if threads == 2 else 0.025, 40)
        assert close.current == 1
    finally:
        torch.set_num_threads(previous)


def test_one_thread_processes_and_cuda_never_try_more():
    tuner = StepThreads("cpu", most=1)  # a sweep's worker process
    assert set(drive(tuner, lambda threads, step: 0.01, 300)) == {1} and tuner.history == []
    previous = torch.get_num_threads()
    cuda = StepThreads("cuda", most=8)
    for step in range(30):
        assert cuda.threads() == 1 and torch.get_num_threads() == previous  # the CPU's threads left alone
        cuda.took(0.01)
    assert cuda.history == []

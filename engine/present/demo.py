"""The first-visit demo: what it runs and how it is described (Start and Sweep pages)."""

from __future__ import annotations

from engine.config import SweepSpec

# The non-private MLP + DP-SGD at five budgets on adult, PRV accountant, 10 epochs, 6 runs.
# Timing on the 2-core CPU machine (`frontier sweep --workers 1`, and launched from the Sweep page): 8 min 18 s
# and 8 min 30 s while two or three other jobs shared the two cores (baseline 17-24 s, DP-SGD 54-89 s a run).
# Alone on the cores, GUIDE section 4's ~9 s per DP-SGD run plus ~5 s per PRV calibration and ~8 s start-up
# give about 1.5-2 min: DEMO_SECONDS is that figure, shown next to the demo button.
DEMO_SPEC = SweepSpec(dataset="adult", techniques=("baseline", "dp-sgd"), model="mlp",
                      epsilons=(0.1, 0.5, 1.0, 2.0, 8.0), clipping_norms=(1.0,), seeds=(0,))
DEMO_SECONDS = 120


def demo_text(runs: int) -> str:
    epsilons = ", ".join(format(epsilon, "g") for epsilon in DEMO_SPEC.epsilons)
    return (f"It trains a small neural network on **adult** (US census: predict whether income is above $50k) "
            f"without privacy and with DP-SGD at ε = {epsilons} — {runs} runs, about {round(DEMO_SECONDS / 60)} "
            f"minutes on an idle 2-core CPU, longer when the machine is busy — then shows how much accuracy each "
            f"privacy budget costs.")

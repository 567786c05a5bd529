"""Reference outputs for the one-run epsilon lower bound, from jax-privacy 2.0 (an independent implementation).

    .venv/bin/python benchmarks/one_run_reference.py

jax-privacy's `auditing.py` (`CanaryScoreAuditor.epsilon_one_run`, Steinke, Nasr & Jagielski 2023) runs in its
own virtual environment, benchmarks/.venv-jax-privacy (made here on first use: `pip install jax-privacy==2.0.0`,
which brings jax, optax and dp-accounting), so that nothing of it enters the product or its environment.

Inputs are fixed (seeded score arrays: overlapping Gaussians, well separated, tied integer scores, delta 0 and
1e-5); for each input and each guess count of our grid (engine.audit.statistics.guess_counts) the reference
computes the bound at that explicit threshold and at our Bonferroni-corrected significance, and its ROC AUC.
Everything goes to tests/fixtures/one_run_reference.json, which tests/test_audit_statistics.py compares with
our implementation on the same inputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.audit.statistics import guess_counts  # noqa: E402

VENV = ROOT / "benchmarks" / ".venv-jax-privacy"
PIN = "jax-privacy==2.0.0"
FIXTURE = ROOT / "tests" / "fixtures" / "one_run_reference.json"
CONFIDENCE = 0.95

REFERENCE_PROGRAM = """
import json, sys
import numpy as np
from jax_privacy import auditing
import jax_privacy
cases = json.load(sys.stdin)
for case in cases:
    auditor = auditing.CanaryScoreAuditor(np.array(case["in_scores"]), np.array(case["out_scores"]))
    case["reference_epsilon"] = [
        float(auditor.epsilon_one_run(case["significance"], case["delta"] or 1e-300,
                                      threshold_strategy=auditing.Explicit(t)))
        for t in case["thresholds"]]
    case["reference_auc"] = float(auditor.attack_auroc())
print(json.dumps({"jax_privacy": jax_privacy.__version__, "cases": cases}))
"""


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run(["python3.11", "-m", "venv", str(VENV)], check=True)
    if subprocess.run([str(python), "-c", "import jax_privacy.auditing"], capture_output=True).returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", PIN], check=True)
    return python


def make_cases() -> list[dict]:
    rng = np.random.default_rng(20231)
    cases = []

    def add(name, in_scores, out_scores, delta):
        scores = np.sort(np.concatenate([in_scores, out_scores]))[::-1]
        counts = guess_counts(len(scores))
        cases.append({"name": name, "delta": delta, "confidence": CONFIDENCE,
                      "significance": (1 - CONFIDENCE) / len(counts),
                      "in_scores": [round(float(s), 6) for s in in_scores],
                      "out_scores": [round(float(s), 6) for s in out_scores],
                      "guess_counts": counts})

    for m, shift, delta in ((200, 0.5, 0.0), (200, 2.0, 1e-5), (1000, 1.0, 1e-5), (1000, 3.0, 0.0), (600, 0.0, 1e-5)):
        included = rng.random(m) < 0.5
        scores = rng.normal(size=m) + shift * included
        add(f"gaussian m={m} shift={shift} delta={delta:g}", scores[included], scores[~included], delta)
    included = rng.random(500) < 0.5
    add("perfect separation m=500", 5.0 + rng.random(included.sum()), rng.random((~included).sum()), 1e-5)
    included = rng.random(400) < 0.5
    add("tied integer scores m=400", rng.integers(0, 6, included.sum()) + 1.0, rng.integers(0, 5, (~included).sum()) * 1.0, 0.0)
    for case in cases:  # the same thresholds our implementation uses: the r-th highest score, ties joining
        ranked = np.sort(np.array(case["in_scores"] + case["out_scores"]))[::-1]
        case["thresholds"] = [float(ranked[count - 1]) for count in case["guess_counts"]]
    return cases


def main() -> None:
    python = ensure_venv()
    done = subprocess.run([str(python), "-c", REFERENCE_PROGRAM], input=json.dumps(make_cases()), capture_output=True,
                          text=True, check=True)
    FIXTURE.write_text(json.dumps(json.loads(done.stdout), indent=1) + "\n")
    print(f"wrote {FIXTURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

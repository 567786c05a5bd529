"""`dp-synthetic`: a differentially private synthetic twin of the training table, and the model trained on it.

The synthesizer (MST, engine.synthetic.mst) measures noisy marginals of the training rows over a domain built
from the catalogue alone (engine.synthetic.domain), fits a graphical model to them with mbi, and samples a table
of the training table's size. Everything after the measurements is post-processing: the downstream model (the
sweep's logreg or mlp, trained exactly as `baseline` trains it) learns from the synthetic rows only and is tested
on the real test rows ("train on synthetic, test on real"), so its point sits on the same frontier as dp-sgd's.

The table itself is released (RunResult.artefacts, written beside the store): it is the one artefact that is safe
to hand to anyone at the run's (epsilon, delta), since it is covered by the same guarantee as the model.

Measured besides the common metrics, on the private rows and so NOT covered by epsilon (evaluation, like the test
metrics): the mean TVD of the 1-way and 2-way marginals against the training rows, and the downstream gap, the
same model trained on the real training rows minus the one trained on the synthetic rows.

Accounting: zCDP, each Gaussian measurement and exponential-mechanism selection composed by dp-accounting
(engine.privacy.zcdp); the ledger is recorded so the epsilon can be recomputed. The run's `accountant` names it
(`own_accountant`), not the sweep's DP-SGD one.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, replace

import numpy as np

from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.errors import ConfigError
from engine.measure import PeakMemory, Stopwatch
from engine.privacy.zcdp import ACCOUNTANT, ACCOUNTANT_DESCRIPTION, ledger_epsilon, ledger_rho, rho_for_epsilon
from engine.settings import setting
from engine.synthetic.domain import synth_domain
from engine.synthetic.fidelity import mean_tvd
from engine.techniques.base import Measurement, RunContext, RunProgress, RunResult, Technique, TechniqueSettings
from engine.techniques.baseline import train_baseline

SYNTHESIZERS = ("mst",)  # AIM (McKenna et al. 2022) took hours on adult in its authors' defaults: not offered yet
DOWNSTREAM_MODELS = ("logreg", "mlp")
CALIBRATION_MARGIN = 1e-9  # rho is calibrated to a hair under the target: the ledger's float sum can round up
MECHANISM = ("MST (McKenna, Miklau & Sheldon 2021): Gaussian-noised 1-way marginals, a maximum spanning tree of "
             "attribute pairs chosen by the exponential mechanism, Gaussian-noised 2-way marginals on its edges; "
             "mbi 2.0 graphical-model estimation, then sampling (post-processing)")


@dataclass(frozen=True)
class SyntheticSettings(TechniqueSettings):
    synthesizer: str = setting("mst", choices=SYNTHESIZERS, group="synthetic data",
                               help="dp-synthetic: the marginal-based synthesizer (MST, winner of NIST's 2018 challenge).")
    synth_bins: int = setting(16, minimum=2, maximum=256, group="synthetic data", label="Bins per numeric column",
                              help="dp-synthetic: equal-width bins of each numeric column's public bounds (after its "
                                   "declared transform). More bins: finer values, noisier counts.")


class DPSynthetic(Technique):
    name = "dp-synthetic"
    description = ("Differentially private synthetic data (MST on mbi): a synthetic twin of the training table, safe "
                   "to share at its epsilon; the model is trained on it and tested on the real test rows.")
    settings = SyntheticSettings
    uses_epsilon = True
    own_accountant = ACCOUNTANT
    trust_model = "central"
    weighs_classes = True  # the downstream model is baseline's, on the same loss
    measurements = (Measurement("mechanism", str, "mechanism"),
                    Measurement("synth_rho", float, "zCDP budget spent (rho)"),
                    Measurement("synth_tvd_1way", float, "mean 1-way marginal TVD (synthetic vs training rows)"),
                    Measurement("synth_tvd_2way", float, "mean 2-way marginal TVD (synthetic vs training rows)",
                                cost=True),
                    Measurement("synth_downstream_gap", float, "downstream gap (real-trained minus synthetic-trained "
                                                               "accuracy; not covered by epsilon)"))

    def check(self, config: RunConfig, data: PreparedDataset) -> None:
        if config.model not in DOWNSTREAM_MODELS:
            raise ConfigError(f"dp-synthetic trains a logreg or mlp {{model}} on its synthetic table, not "
                              f"{config.model!r}: choose logreg or mlp.", setting="model")
        synth_domain(data, int(config.param("synth_bins", 16)))  # refuses images and tables without public bounds

    def run(self, config: RunConfig, data: PreparedDataset, *, context: RunContext,
            on_progress: RunProgress | None = None) -> RunResult:
        if on_progress:
            on_progress(0.0)  # before any work: whoever only asks what a run calibrates stops here
        self.check(config, data)
        from engine.synthetic.mst import mbi_dataset, mst  # jax and mbi load only when a table is synthesized

        domain = synth_domain(data, int(config.param("synth_bins", 16)))
        real = domain.codes(data.x_train, data.y_train)
        rho = rho_for_epsilon(config.target_epsilon * (1 - CALIBRATION_MARGIN), config.delta)
        rng = context.randomness.numpy_generator()  # the noise and the selections: secret, never the seed
        with PeakMemory("cpu") as memory, Stopwatch() as clock:
            codes, ledger, tree = mst(mbi_dataset(real, domain.shape), rho, rng, rows=data.n_train)
            x_synthetic, y_synthetic = domain.encoded(codes, rng)
        epsilon = ledger_epsilon(ledger.sigmas, ledger.selections, config.delta)
        if epsilon > config.target_epsilon:
            raise RuntimeError(f"MST spent epsilon {epsilon} over its target {config.target_epsilon}")
        if on_progress:
            on_progress(0.7)
        synthetic = replace(data, x_train=x_synthetic, y_train=y_synthetic)  # test and validation rows stay real
        model_result = train_baseline(config, synthetic, context=context)[1]
        real_result = train_baseline(config, data, context=context)[1]  # the gap's reference: evaluation only
        if on_progress:
            on_progress(1.0)
        table = domain.frame(x_synthetic, y_synthetic, data).to_csv(index=False).encode()
        return replace(
            model_result, train_seconds=clock.seconds + model_result.train_seconds, peak_memory_mb=memory.peak_mb,
            device=model_result.device, epsilon=epsilon, steps=None,
            extra={"mechanism": MECHANISM, "synth_accounting": ACCOUNTANT_DESCRIPTION,
                   "synth_rho": ledger_rho(ledger.sigmas, ledger.selections), "synth_rho_budget": rho,
                   "synth_ledger": {"measurements": ledger.measurements, "selections": ledger.selections},
                   "synth_tree": tree, "synth_rows": int(data.n_train),
                   "synth_tvd_1way": mean_tvd(real, codes, domain.shape, 1),
                   "synth_tvd_2way": mean_tvd(real, codes, domain.shape, 2),
                   "synth_downstream_gap": real_result.accuracy - model_result.accuracy,
                   "synth_downstream_gap_balanced": real_result.balanced_accuracy - model_result.balanced_accuracy,
                   "synth_fidelity_note": "TVD and the gap are measured on the private rows: evaluation, not released "
                                          "by the synthesizer, not covered by epsilon"},
            artefacts={"synthetic": gzip.compress(table, mtime=0)},
        )

"""The built-in techniques, by name. Adding one is one new module and one line here."""

from engine.techniques.baseline import Baseline
from engine.techniques.diffprivlib_models import DPLogisticRegression, DPNaiveBayes, DPRandomForest
from engine.techniques.dp_sgd import DPSGD
from engine.techniques.dp_synthetic import DPSynthetic
from engine.techniques.federated import DPFedAvg, FedAvgTechnique, FedDPSGD, FedProxTechnique
from engine.techniques.single_silo import SingleSilo
from engine.techniques.he_inference import HEInference
from engine.techniques.local_dp import LocalDP

BUILTIN_TECHNIQUES = {
    "baseline": Baseline,
    "dp-sgd": DPSGD,
    "dp-logreg": DPLogisticRegression,
    "dp-naive-bayes": DPNaiveBayes,
    "dp-forest": DPRandomForest,
    "local-dp": LocalDP,
    "fedavg": FedAvgTechnique,
    "fedprox": FedProxTechnique,
    "fed-dp-sgd": FedDPSGD,
    "dp-fedavg": DPFedAvg,
    "single-silo": SingleSilo,
    "he-inference": HEInference,
    "dp-synthetic": DPSynthetic,
}

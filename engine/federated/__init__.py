"""Federated learning, simulated in one process: partitions, Flower-shaped strategies with aggregation as a
pure function, differential privacy (record_level_dp.py: DP-SGD clients; client_level_dp.py: a DP-FedAvg
wrapper) and secure aggregation (secure_aggregation/) as wrappers, compression, and the bytes it all costs.

The techniques built on it (fedavg, fedprox, fed-dp-sgd, dp-fedavg, single-silo) live in
engine/techniques/federated.py.
"""

from engine.federated.partitions import Partition, label_skew, make_partition, partition_summary, partition_view
from engine.federated.strategies import FedAvg, FedProx, aggregate, aggregate_sum, run_rounds

__all__ = ["FedAvg", "FedProx", "Partition", "aggregate", "aggregate_sum", "label_skew", "make_partition",
           "partition_summary", "partition_view", "run_rounds"]

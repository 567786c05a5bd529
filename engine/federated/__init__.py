"""Federated learning, simulated in one process: partitions, Flower-shaped strategies with aggregation as a
pure function, differential privacy (record_level_dp.py: DP-SGD clients; client_level_dp.py: a DP-FedAvg
wrapper) and secure aggregation (secure_aggregation/) as wrappers, compression, and the bytes it all costs.

The techniques built on it (fedavg, fedprox, fed-dp-sgd, dp-fedavg, single-silo) live in
engine/techniques/federated.py.

This file only documents; import from the modules themselves. Re-exports here would load partitions.py
(and engine.config, engine.data) with every engine.federated module: a cycle with engine.config.
"""

"""The Flower side of benchmarks/bench_federated.py. Runs INSIDE benchmarks/.venv-flower (flwr[simulation] pins
protobuf and starlette differently from the project), so it imports nothing from `engine`.

    python flower_fedavg.py ARRAYS.npz RESULT.json [CORES]

CORES (optional): Ray gets this many CPUs (one ClientApp per CPU at a time) and torch this many threads;
without it Ray uses every core.

ARRAYS.npz (written by bench_federated.py from our engine) holds the prepared train/test arrays, each client's
row indices, the initial parameters and the hyperparameters. Every client trains exactly as our engine's
clients do: a fresh Adam each round over the same seeded mini-batch order (numpy default_rng([seed, 0xBA7C4,
round, client])), so the two runs differ only in the framework around them. Flower 1.41 Message API:
ServerApp + flwr.serverapp.strategy.FedAvg (weighted by "num-examples"), ClientApp @train, Ray backend.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from torch import nn

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation

ARRAYS, RESULT = sys.argv[1], sys.argv[2]
CORES = int(sys.argv[3]) if len(sys.argv) > 3 else None
if CORES:
    torch.set_num_threads(CORES)
_CACHE: dict = {}


def arrays() -> dict:
    if not _CACHE:
        with np.load(ARRAYS) as loaded:
            _CACHE.update({key: loaded[key] for key in loaded.files})
    return _CACHE


class MLP(nn.Module):  # the engine's MLP: Linear -> ReLU -> Linear
    def __init__(self, n_features: int, n_classes: int, hidden_units: int):
        super().__init__()
        self.hidden = nn.Linear(n_features, hidden_units)
        self.output = nn.Linear(hidden_units, n_classes)

    def forward(self, features):
        return self.output(torch.relu(self.hidden(features)))


def new_model() -> MLP:
    a = arrays()
    return MLP(a["x_train"].shape[1], int(a["n_classes"]), int(a["hidden_units"]))


def initial_state() -> dict:
    a, model = arrays(), new_model()
    vector, start = torch.as_tensor(a["initial_params"], dtype=torch.float32), 0
    state = {}
    for name, value in model.state_dict().items():
        state[name] = vector[start:start + value.numel()].reshape(value.shape).clone()
        start += value.numel()
    return state


def client_rows(client: int) -> np.ndarray:
    a = arrays()
    return a["client_rows"][a["client_offsets"][client]:a["client_offsets"][client + 1]]


client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    a = arrays()
    client = int(context.node_config["partition-id"])
    round_index = int(msg.content["config"]["server-round"]) - 1  # Flower counts rounds from 1
    model = new_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=float(a["learning_rate"]))
    criterion = nn.CrossEntropyLoss()
    rows = client_rows(client)
    x, y = torch.from_numpy(a["x_train"]), torch.from_numpy(a["y_train"])
    rng = np.random.default_rng([int(a["seed"]), 0xBA7C4, round_index, client])
    batch = int(a["batch_size"])
    model.train()
    for _ in range(int(a["local_epochs"])):
        order = rng.permutation(len(rows))
        for start in range(0, len(rows), batch):
            index = torch.as_tensor(rows[order[start:start + batch]])
            optimizer.zero_grad(set_to_none=True)
            criterion(model(x[index]), y[index]).backward()
            optimizer.step()
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()),
                          "metrics": MetricRecord({"num-examples": len(rows)})})
    return Message(content=content, reply_to=msg)


server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    a = arrays()
    x_test, y_test = torch.from_numpy(a["x_test"]), a["y_test"]
    accuracies = []

    def evaluate(server_round: int, record: ArrayRecord) -> MetricRecord:
        model = new_model()
        model.load_state_dict(record.to_torch_state_dict())
        model.eval()
        with torch.no_grad():
            accuracy = float(np.mean(model(x_test).argmax(dim=1).numpy() == y_test))
        accuracies.append(accuracy)
        return MetricRecord({"accuracy": accuracy})

    started = time.perf_counter()
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=int(a["n_clients"]),
                      min_available_nodes=int(a["n_clients"]))
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(initial_state()), num_rounds=int(a["rounds"]),
                            train_config=ConfigRecord({}), evaluate_fn=evaluate)
    rounds_seconds = time.perf_counter() - started
    with open(RESULT, "w") as out:
        json.dump({"accuracy": accuracies[-1], "round_accuracy": accuracies[1:], "rounds_seconds": rounds_seconds,
                   "initial_accuracy": accuracies[0], "model_bytes": result.arrays.count_bytes()}, out)


if __name__ == "__main__":
    n_clients = int(arrays()["n_clients"])
    began = time.perf_counter()
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=n_clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   **({"init_args": {"num_cpus": CORES}} if CORES else {})})
    with open(RESULT) as handle:
        result = json.load(handle)
    result["simulation_seconds"] = time.perf_counter() - began
    with open(RESULT, "w") as out:
        json.dump(result, out)

"""What a federated run puts on the wire, counted in bytes per client per round.

Sizes are those of the messages as serialised: float32 parameters (4 bytes each), the compressed forms
(compression.py), and for secure aggregation the public keys, encrypted Shamir shares and masked k-bit
vectors that the protocol actually produces (secure_aggregation/protocol.py counts len() of its messages).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

FLOAT_BYTES = 4  # parameters travel as float32
COUNT_BYTES = 8  # a client's number of examples (FedAvg weight), int64


def model_bytes(dim: int) -> int:
    """A full float32 parameter vector (the download of every selected client, and a plain upload)."""
    return dim * FLOAT_BYTES


@dataclass
class Traffic:
    """Bytes per (round, client), up (client -> server) and down (server -> client)."""

    up: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))
    down: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))
    overhead: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # e.g. "secure_aggregation" -> bytes

    def send_up(self, round_index: int, client: int, size: int, kind: str | None = None) -> None:
        self.up[(round_index, client)] += int(size)
        if kind:
            self.overhead[kind] += int(size)

    def send_down(self, round_index: int, client: int, size: int, kind: str | None = None) -> None:
        self.down[(round_index, client)] += int(size)
        if kind:
            self.overhead[kind] += int(size)

    @property
    def total_up(self) -> int:
        return int(sum(self.up.values()))

    @property
    def total_down(self) -> int:
        return int(sum(self.down.values()))

    @property
    def total(self) -> int:
        return self.total_up + self.total_down

    def summary(self, rounds: int) -> dict:
        """Totals, and the mean per participating client per round (a client that took part that round)."""
        pairs = set(self.up) | set(self.down)
        per_pair = max(1, len(pairs))
        per_round = defaultdict(lambda: [0, 0])
        for (round_index, _), size in self.up.items():
            per_round[round_index][0] += size
        for (round_index, _), size in self.down.items():
            per_round[round_index][1] += size
        return {
            "comm_bytes": self.total,
            "bytes_up_total": self.total_up,
            "bytes_down_total": self.total_down,
            "bytes_up_per_client_round": self.total_up / per_pair,
            "bytes_down_per_client_round": self.total_down / per_pair,
            "client_rounds": len(pairs),
            "bytes_per_round": [[int(per_round[r][0]), int(per_round[r][1])] for r in range(rounds)],  # [up, down]
            "overhead_bytes": {kind: int(size) for kind, size in self.overhead.items()},
        }

"""`SecureAggregation` wraps a federated strategy (as Flower's DP wrappers do) so that the server learns only
the sum of the round's client messages: each message (vector and weight) is clamped to a public bound,
quantised to 32-bit fixed point and summed by the protocol; a round with too few clients left has no aggregate.
"""

from __future__ import annotations

import numpy as np

from engine.federated.secure_aggregation.masking import BITS, Quantiser
from engine.federated.secure_aggregation.parties import SecAggAborted
from engine.federated.secure_aggregation.protocol import secure_sum, threshold_for
from engine.federated.strategies import StrategyWrapper

UPDATE_CLAMP = 64.0  # default public bound on |update coordinate| (times the client's weight) before quantisation
ADAM_STEP_BOUND = 3.2  # Adam moves a coordinate by at most (1 - b1) / sqrt(1 - b2) ~ 3.16 x lr per step (Kingma & Ba)


def adam_update_bound(learning_rate: float, steps: int) -> float:
    """A public bound on |update coordinate| after `steps` Adam steps: clamping to it never changes an update."""
    return ADAM_STEP_BOUND * learning_rate * steps


class SecureAggregation(StrategyWrapper):
    """Sums the wrapped strategy's client messages (vector and weight) without the server seeing any one."""

    def __init__(self, strategy, *, bits: int = BITS, value_bound: float = UPDATE_CLAMP):
        """`value_bound`: public bound on |coordinate| of an update (adam_update_bound for Adam clients); the
        tighter it is, the finer the quantisation step a k-bit sum allows."""
        super().__init__(strategy)
        self.value_bound = value_bound
        # The sum of weights travels as one more coordinate: the range must hold it too (weights <= message_bound).
        self.quantiser = Quantiser.for_bound(max(value_bound, 1.0) * strategy.message_bound(), bits)
        self.aborted_rounds = 0
        self.clamped_values = 0

    def aggregate_fit(self, round_index, messages, dropped, params, traffic, rng):
        inputs = {}
        for message in messages:
            limit = self.value_bound * max(message.weight, 1.0)
            self.clamped_values += int(np.sum(np.abs(message.vector) > limit))
            values = np.append(np.clip(message.vector, -limit, limit), message.weight)  # (dim + 1,)
            inputs[message.client] = self.quantiser.encode(values)
        for client in dropped:  # they shared keys, then vanished before uploading (their input is never used)
            inputs[client] = np.zeros(params.size + 1, dtype=np.uint32)
        # A round with no aggregate still goes through the wrapped server update with an empty sum, so a DP
        # wrapper adds its noise exactly as in every other round (the accountant counts every round).
        if len(inputs) < 2:  # nothing to hide a single update among: no aggregate this round
            self.aborted_rounds += 1
            return self.server_update(np.zeros_like(params), 0.0, params, rng)
        try:
            total = self.quantiser.decode(secure_sum(inputs, set(dropped), threshold_for(len(inputs)), traffic, round_index))
        except SecAggAborted:
            self.aborted_rounds += 1
            return self.server_update(np.zeros_like(params), 0.0, params, rng)
        return self.server_update(total[:-1], float(total[-1]), params, rng)  # (dim,) sum of vectors, sum of weights

    def describe(self) -> dict:
        return {**self.strategy.describe(), "secagg_bits": self.quantiser.bits,
                "secagg_quantisation_step": self.quantiser.step, "secagg_threshold": "majority of the round's clients"}

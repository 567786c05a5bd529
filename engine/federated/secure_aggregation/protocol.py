"""One secure-aggregation round simulated end to end: the four message rounds between the clients and the
coordinator, clients dropping out after ShareKeys, and the bytes every message costs on the wire.

Traffic kinds: "secure_aggregation" for keys and shares (what the protocol adds), "masked_vectors" for the
masked k-bit uploads (they stand in for the plain upload).
"""

from __future__ import annotations

import numpy as np

from engine.federated.costs import Traffic
from engine.federated.secure_aggregation.parties import ID_BYTES, SecAggClient, SecAggCoordinator
from engine.federated.secure_aggregation.shamir import SHARE_BYTES


def threshold_for(n_clients: int) -> int:
    """t = a strict majority of the round's clients (at least 2)."""
    return max(2, n_clients // 2 + 1)


def secure_sum(inputs: dict[int, np.ndarray], dropped: set[int], threshold: int, traffic: Traffic | None = None,
               round_index: int = 0) -> np.ndarray:
    """Run the four rounds for `inputs` (client -> uint32 vector); clients in `dropped` vanish after ShareKeys.

    Returns the survivors' sum modulo 2^32; raises SecAggAborted when fewer than `threshold` are left."""
    dim = len(next(iter(inputs.values())))
    clients = {client_id: SecAggClient(client_id, values) for client_id, values in inputs.items()}
    server = SecAggCoordinator(dim, threshold)

    def up(client_id, size, kind="secure_aggregation"):
        if traffic is not None:
            traffic.send_up(round_index, client_id, size, kind)

    def down(client_id, size):
        if traffic is not None:
            traffic.send_down(round_index, client_id, size, "secure_aggregation")

    for client_id, client in clients.items():  # round 0: AdvertiseKeys
        message = client.advertise_keys()
        server.collect_keys(message)
        up(client_id, len(message))
    advertised = server.broadcast_keys()
    for client_id, client in clients.items():  # round 1: ShareKeys (each ciphertext travels with its two ids)
        down(client_id, sum(len(m) for m in advertised))
        ciphertexts = client.share_keys(advertised, threshold)
        server.route_shares(client_id, ciphertexts)
        up(client_id, sum(2 * ID_BYTES + len(blob) for blob in ciphertexts.values()))
    for client_id, client in clients.items():
        delivered = server.deliver(client_id)
        down(client_id, sum(2 * ID_BYTES + len(blob) for blob in delivered.values()))
        client.receive_shares(delivered)
    for client_id, client in clients.items():  # round 2: MaskedInputCollection; the dropped send nothing
        if client_id not in dropped:
            masked = client.masked_input()
            server.collect_masked(client_id, masked)
            up(client_id, masked.nbytes, "masked_vectors")
    survivors, gone = server.unmasking_request()
    for client_id in survivors:  # round 3: Unmasking (the request lists survivors and dropped by id)
        down(client_id, ID_BYTES * (len(survivors) + len(gone)))
        shares = clients[client_id].unmasking_shares(survivors, gone)
        server.collect_unmasking(client_id, shares)
        up(client_id, sum(len(v) for v in shares.values()) * (ID_BYTES + SHARE_BYTES))
    return server.aggregate()

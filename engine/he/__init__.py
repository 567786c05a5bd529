"""Encrypted inference with CKKS (TenSEAL): a client that holds the secret key, a server that holds only a
public context and the plaintext model, parameters chosen from the model's depth and checked against the
Homomorphic Encryption Standard, and a measured scoring session (batched and interactive).

    params.py    HEParameters, choose_parameters(depth), check_parameters -> ConfigError when insecure
    model.py     SquareMLP (HE-friendly MLP), PlainModel (server-side weights + plaintext reference)
    packing.py   feature-major batching, message sizes
    client.py    HEClient: keys, encrypt, decrypt, public context (bytes)
    server.py    HEServer: bytes in, bytes out; refuses a context with a secret key
    protocol.py  score_encrypted(model, x): one measured session
"""

from engine.he.client import HEClient
from engine.he.model import HE_MODELS, PlainModel, SquareMLP, plain_model
from engine.he.params import HE_STANDARD_MAX_BITS, HEParameters, check_parameters, choose_parameters
from engine.he.protocol import EncryptedScoring, parameters_for, score_encrypted
from engine.he.server import HEServer

__all__ = ["EncryptedScoring", "HEClient", "HEParameters", "HEServer", "HE_MODELS", "HE_STANDARD_MAX_BITS",
           "PlainModel", "SquareMLP", "check_parameters", "choose_parameters", "parameters_for", "plain_model",
           "score_encrypted"]

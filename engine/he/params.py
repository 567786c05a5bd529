"""CKKS parameters: chosen from the circuit's multiplicative depth, checked against the HE Standard.

One table drives the choice: a circuit of depth L needs L rescaling primes of `scale_bits` between a first
prime (which holds the result after the last rescale) and a special prime (key switching). The smallest
polynomial degree N whose 128-bit bound admits the total is taken. Every parameter set, chosen or given,
is checked against the Homomorphic Encryption Standard's bounds (Albrecht et al., 2018, table 1:
classical security, ternary secret); Microsoft SEAL enforces the same 128-bit table.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ConfigError

# Largest total coefficient-modulus bits (log2 q, special prime included) per polynomial degree N, for
# classical security of 128, 192 and 256 bits with a ternary secret (HE Standard, table 1; SEAL's
# hestdparms.h). Above the 128-bit bound a parameter set is refused.
HE_STANDARD_MAX_BITS: dict[int, dict[int, int]] = {
    128: {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881},
    192: {1024: 19, 2048: 37, 4096: 75, 8192: 152, 16384: 305, 32768: 611},
    256: {1024: 14, 2048: 29, 4096: 58, 8192: 118, 16384: 237, 32768: 476},
}
MIN_SECURITY_BITS = 128
FIRST_PRIME_BITS = 60  # holds the result (scale + integer part) after the last rescale
SPECIAL_PRIME_BITS = 60  # key switching (relinearisation, rotations); at least as large as any other prime
SCALE_BITS = 40  # each rescaling prime equals the scale, so the scale stays 2^40 level after level
MAX_PRIME_BITS = 60  # SEAL's limit for one prime
# Degrees tried, smallest first. 4096 cannot hold even depth 1 at a 2^40 scale (60 + 40 + 60 > 109 bits).
DEGREES = (8192, 16384, 32768)


@dataclass(frozen=True)
class HEParameters:
    """A CKKS parameter set. `coeff_mod_bit_sizes` lists every prime, the special (last) one included."""

    poly_modulus_degree: int  # N: ring dimension; a ciphertext packs N/2 real numbers (slots)
    coeff_mod_bit_sizes: tuple[int, ...]  # [first, rescaling primes..., special]
    scale_bits: int  # the encoding scale is 2^scale_bits

    @property
    def total_bits(self) -> int:
        return sum(self.coeff_mod_bit_sizes)

    @property
    def depth(self) -> int:
        """Multiplications (with rescaling) a fresh ciphertext can take: the primes between first and special."""
        return len(self.coeff_mod_bit_sizes) - 2

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2

    @property
    def security_bits(self) -> int:
        """The highest of 256, 192, 128 whose bound the set meets (0 when it meets none)."""
        return security_level(self.poly_modulus_degree, self.total_bits)

    def describe(self) -> str:
        primes = ",".join(str(bits) for bits in self.coeff_mod_bit_sizes)
        return (f"N={self.poly_modulus_degree}, primes [{primes}] = {self.total_bits} bits, scale 2^{self.scale_bits}, "
                f"{self.security_bits}-bit security")


def security_level(poly_modulus_degree: int, total_bits: int) -> int:
    for level in (256, 192, 128):
        bound = HE_STANDARD_MAX_BITS[level].get(poly_modulus_degree)
        if bound is not None and total_bits <= bound:
            return level
    return 0


def smallest_secure_degree(total_bits: int) -> int | None:
    for degree, bound in sorted(HE_STANDARD_MAX_BITS[MIN_SECURITY_BITS].items()):
        if total_bits <= bound:
            return degree
    return None


def check_parameters(params: HEParameters, depth: int | None = None) -> HEParameters:
    """Refuse insecure or unusable sets with a message that says how to fix them; returns `params`."""
    n, bits = params.poly_modulus_degree, params.coeff_mod_bit_sizes
    bounds = HE_STANDARD_MAX_BITS[MIN_SECURITY_BITS]
    if n not in bounds:
        raise ConfigError(f"poly modulus degree {n} is not one of {', '.join(map(str, bounds))}: CKKS needs a power "
                          "of two that the Homomorphic Encryption Standard tabulates.")
    if len(bits) < 3:
        raise ConfigError(f"coefficient modulus [{','.join(map(str, bits))}] needs at least 3 primes "
                          "(first, one rescaling prime, special), e.g. [60,40,60].")
    if any(not (isinstance(b, int) and 20 <= b <= MAX_PRIME_BITS) for b in bits):
        raise ConfigError(f"every prime must have 20 to {MAX_PRIME_BITS} bits, got [{','.join(map(str, bits))}].")
    if params.total_bits > bounds[n]:
        better = smallest_secure_degree(params.total_bits)
        fix = f"use N={better} or fewer primes" if better else "use fewer or smaller primes"
        raise ConfigError(
            f"CKKS parameters insecure: {params.total_bits} bits of coefficient modulus > {bounds[n]} allowed at "
            f"N={n} for 128-bit security (Homomorphic Encryption Standard); {fix}.")
    if not (20 <= params.scale_bits < bits[0]):
        raise ConfigError(f"scale 2^{params.scale_bits} must be below the first prime ({bits[0]} bits) and at "
                          "least 2^20, or results lose their integer part or their precision.")
    if any(b != params.scale_bits for b in bits[1:-1]):
        raise ConfigError(f"the rescaling primes [{','.join(map(str, bits[1:-1]))}] must equal the scale "
                          f"({params.scale_bits} bits) so the scale stays stable after each rescale.")
    if depth is not None and params.depth < depth:
        raise ConfigError(f"the model needs multiplicative depth {depth} but [{','.join(map(str, bits))}] allows "
                          f"{params.depth}: give {depth + 2} primes (e.g. [{FIRST_PRIME_BITS},"
                          f"{','.join([str(params.scale_bits)] * depth)},{SPECIAL_PRIME_BITS}]).")
    return params


def choose_parameters(depth: int, *, min_slots: int = 1, poly_modulus_degree: int | None = None,
                      coeff_mod_bit_sizes: tuple[int, ...] | None = None, scale_bits: int | None = None,
                      ) -> HEParameters:
    """The smallest secure parameter set for a circuit of `depth` multiplications.

    Any of N, the prime sizes and the scale may be given to override the choice; whatever results is checked
    (an insecure or too-shallow set raises ConfigError).
    """
    if depth < 1:
        raise ConfigError(f"multiplicative depth must be at least 1, got {depth}.")
    scale = scale_bits or SCALE_BITS
    bits = tuple(coeff_mod_bit_sizes) if coeff_mod_bit_sizes else (FIRST_PRIME_BITS, *[scale] * depth, SPECIAL_PRIME_BITS)
    if poly_modulus_degree is None:
        total = sum(bits)
        candidates = [n for n in DEGREES if total <= HE_STANDARD_MAX_BITS[MIN_SECURITY_BITS][n] and n // 2 >= min_slots]
        poly_modulus_degree = candidates[0] if candidates else DEGREES[-1]
    params = check_parameters(HEParameters(poly_modulus_degree, bits, scale), depth)
    if params.slots < min_slots:
        raise ConfigError(f"N={params.poly_modulus_degree} packs {params.slots} numbers per ciphertext but a record "
                          f"has {min_slots}: use a larger N.")
    return params

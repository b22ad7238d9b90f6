"""Exact counts of formulas per function, by size and by depth, via fast subset / XOR transforms.

A counted formula is an ordered binary tree whose leaves are 0, 1, x_i, NOT x_i and whose
internal nodes are AND, OR or XOR (negation normal form: every formula with free NOTs has one of
the same size and depth). Results are object arrays of exact Python ints (the numbers outgrow
uint64 quickly).

Combining two count vectors over all pairs (a, b) with a op b = f is a convolution over the
2^(2^n) functions, done in O(2^n * 2^(2^n)) with transforms on the truth-table bits:
superset sums for AND, subset sums for OR, Walsh-Hadamard for XOR. The arithmetic runs in int64
modulo a few primes just below 2^31 (enough of them that their product exceeds a bound on every
count), and the exact values come back by the Chinese remainder theorem.

This is an independent second method for L(f) and D(f): the first size / depth with a non-zero count.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from searchprobe.errors import InputError
from searchprobe.search.circuits.truth_tables import (
    MAX_TABLE_INPUTS,
    check_inputs,
    literal_tables,
    num_functions,
)

_RESIDUE_BITS = 30  # every modulus is a prime in (2^30, 2^31): a product of two residues fits int64
MAX_COUNT_SIZE = 31  # formulas of up to 31 gates (depth 5)


@lru_cache(maxsize=None)
def _primes(count: int) -> tuple[int, ...]:
    """The `count` largest primes below 2^31 (trial division)."""
    found: list[int] = []
    candidate = (1 << 31) - 1
    while len(found) < count:
        if all(candidate % d for d in range(3, math.isqrt(candidate) + 1, 2)):
            found.append(candidate)
        candidate -= 2
    return tuple(found)


class _Arithmetic:
    """Count vectors as residues modulo several primes, shape (primes, functions)."""

    def __init__(self, n: int, bound: int) -> None:
        self.n = n
        self.bits = 1 << n
        self.primes = _primes(bound.bit_length() // _RESIDUE_BITS + 1)
        self.moduli = np.array(self.primes, dtype=np.int64)[:, None, None]
        self.inverse_size = np.array([pow(num_functions(n), -1, p) for p in self.primes], dtype=np.int64)[:, None]

    def leaves(self) -> np.ndarray:
        counts = np.zeros((len(self.primes), num_functions(self.n)), dtype=np.int64)
        counts[:, literal_tables(self.n)] = 1
        return counts

    def _transform(self, values: np.ndarray, step) -> np.ndarray:
        """Apply the per-bit butterfly `step(low, high)` (in place) for every bit of the function
        index, reduced modulo the primes at the end.

        Each bit pairs index S (bit clear) with S | 2^bit. The high half of the bits is done with
        contiguous inner runs of length >= 2^(bits/2), then the array is transposed so the low half
        becomes high (numpy is slow on the short strided runs the low bits would give). Each pass at
        most doubles a magnitude, so 16 passes on residues < 2^31 stay below 2^47 in int64.
        """
        primes = values.shape[0]
        low_bits = self.bits // 2
        high_bits = self.bits - low_bits

        def run(array: np.ndarray, top_bits: int, inner: int) -> None:
            for j in range(top_bits):
                view = array.reshape(primes, -1, 2, (1 << j) * inner)
                step(view[:, :, 0, :], view[:, :, 1, :])

        out = values.copy()
        run(out, high_bits, 1 << low_bits)
        swapped = out.reshape(primes, 1 << high_bits, 1 << low_bits).transpose(0, 2, 1).copy()
        run(swapped, low_bits, 1 << high_bits)
        out = swapped.reshape(primes, 1 << low_bits, 1 << high_bits).transpose(0, 2, 1).reshape(primes, -1)
        return out % self.moduli[:, :, 0]

    def superset_sums(self, values: np.ndarray, sign: int = 1) -> np.ndarray:
        if sign > 0:
            return self._transform(values, lambda low, high: low.__iadd__(high))
        return self._transform(values, lambda low, high: low.__isub__(high))

    def subset_sums(self, values: np.ndarray, sign: int = 1) -> np.ndarray:
        if sign > 0:
            return self._transform(values, lambda low, high: high.__iadd__(low))
        return self._transform(values, lambda low, high: high.__isub__(low))

    def walsh_hadamard(self, values: np.ndarray) -> np.ndarray:
        def step(low: np.ndarray, high: np.ndarray) -> None:
            low += high
            high *= -2
            high += low  # (low + high) - 2 high = low - high

        return self._transform(values, step)

    def spectra(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The count vector in the AND, OR and XOR domains (products there are convolutions)."""
        return self.superset_sums(counts), self.subset_sums(counts), self.walsh_hadamard(counts)

    def gate_counts(self, pairs: list[tuple[tuple, tuple]]) -> np.ndarray:
        """Count of trees ``left op right`` per function, summed over the (left, right) spectra pairs and ops."""
        p = self.moduli[:, :, 0]
        domains = []
        for d in range(3):
            acc = np.zeros_like(pairs[0][0][d])
            for left, right in pairs:
                acc = (acc + left[d] * right[d] % p) % p
            domains.append(acc)
        and_ = self.superset_sums(domains[0], sign=-1)
        or_ = self.subset_sums(domains[1], sign=-1)
        xor = self.walsh_hadamard(domains[2]) * self.inverse_size % p
        return (and_ + or_ + xor) % p

    def to_ints(self, residues: np.ndarray) -> np.ndarray:
        """Exact Python ints from the residues (Chinese remainder theorem)."""
        product = math.prod(self.primes)
        out = np.zeros(residues.shape[1], dtype=object)
        for prime, r in zip(self.primes, residues):
            others = product // prime
            out = out + r.astype(object) * (others * pow(others, -1, prime))
        return out % product


def _size_bound(n: int, max_size: int) -> int:
    """More than the number of formulas of any size <= max_size: leaves^(s+1) 3^s Catalan(s)."""
    leaves = 2 + 2 * n
    return max(leaves ** (s + 1) * 3**s * math.comb(2 * s, s) // (s + 1) for s in range(max_size + 1))


def _depth_bound(n: int, max_depth: int) -> int:
    within = leaves = 2 + 2 * n
    for _ in range(max_depth):
        within = leaves + 3 * within * within
    return within


def _check_limit(value: object, name: str, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= limit:
        raise InputError(f"{name}={value!r} for formula counting: allowed 0..{limit}")
    return int(value)


def count_formulas_by_size(n: int, max_size: int, minimal_only: np.ndarray | None = None) -> list[np.ndarray]:
    """``result[s][f]`` = number of formulas with exactly s gates computing f, for s = 0..max_size.

    With ``minimal_only`` (the L(f) table), count only formulas all of whose subformulas are
    minimum formulas of what they compute (entries with L(f) != s are zeroed at each size).
    """
    n = check_inputs(n, MAX_TABLE_INPUTS, "formula counting")
    max_size = _check_limit(max_size, "max_size", MAX_COUNT_SIZE)
    arith = _Arithmetic(n, _size_bound(n, max_size))
    by_size = [arith.leaves()]
    spectra = [arith.spectra(by_size[0])]
    for s in range(1, max_size + 1):
        counts = arith.gate_counts([(spectra[i], spectra[s - 1 - i]) for i in range(s)])
        if minimal_only is not None:
            counts[:, np.asarray(minimal_only) != s] = 0
        by_size.append(counts)
        spectra.append(arith.spectra(counts))
    return [arith.to_ints(c) for c in by_size]


def count_formulas_by_depth(n: int, max_depth: int) -> list[np.ndarray]:
    """``result[d][f]`` = number of formulas of depth <= d computing f, for d = 0..max_depth."""
    n = check_inputs(n, MAX_TABLE_INPUTS, "formula counting")
    max_depth = _check_limit(max_depth, "max_depth", 5)
    arith = _Arithmetic(n, _depth_bound(n, max_depth))
    leaves = arith.leaves()
    within = [leaves]
    for _ in range(max_depth):
        spectra = arith.spectra(within[-1])
        within.append((leaves + arith.gate_counts([(spectra, spectra)])) % arith.moduli[:, :, 0])
    return [arith.to_ints(c) for c in within]


def count_formulas_by_depth_and_size(n: int, max_depth: int) -> list[list[np.ndarray]]:
    """``result[d][s][f]`` = number of formulas of depth <= d with exactly s gates computing f
    (s = 0..2^d - 1): how the formulas allowed by a depth limit spread over sizes."""
    n = check_inputs(n, MAX_TABLE_INPUTS, "formula counting")
    max_depth = _check_limit(max_depth, "max_depth", 5)
    arith = _Arithmetic(n, _depth_bound(n, max_depth))
    table = [[arith.leaves()]]
    for d in range(1, max_depth + 1):
        previous = table[-1]
        spectra = [arith.spectra(c) for c in previous]
        row = [arith.leaves()]
        for s in range(1, 1 << d):
            pairs = [
                (spectra[i], spectra[s - 1 - i])
                for i in range(s)
                if i < len(previous) and s - 1 - i < len(previous)
            ]
            row.append(arith.gate_counts(pairs))
        table.append(row)
    return [[arith.to_ints(c) for c in row] for row in table]

"""Boolean functions of n inputs as truth tables packed in integers, and their NPN symmetries.

Convention: an input assignment is an integer ``x`` in ``[0, 2**n)`` whose bit ``i`` is the value
of input ``x_i``; bit ``x`` of a truth table ``f`` is ``f(x)``. So for n = 2, ``x0 = 0b1010``,
``x1 = 0b1100`` and ``x0 & x1 = 0b1000``. Arrays of tables use the smallest unsigned dtype that
holds ``2**n`` bits (uint8 for n <= 3, uint16 for n = 4, uint32 for n = 5).

The NPN group (permute the inputs, negate some inputs, negate the output) acts on all functions;
every cost in this package (formula size, depth, circuit size) is invariant under it, which the
exhaustive tables use to combine one representative per class instead of every function.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from searchprobe.errors import InputError

MAX_TABLE_INPUTS = 4  # 2**(2**4) = 65,536 functions; n = 5 has 2**32


def check_inputs(n: object, limit: int, what: str) -> int:
    """Validate the number of inputs `n` for an exhaustive table over all 2^(2^n) functions."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise InputError(f"n={n!r} for {what}: must be an integer number of inputs, 1..{limit}")
    n = int(n)
    if n < 1 or n > limit:
        count = "2^(2^n)"
        if 1 <= n <= 6:
            count = f"2^{1 << n} = {1 << (1 << n):,}"
        raise InputError(
            f"n={n} for {what}: an exhaustive table covers all {count} functions of n inputs; "
            f"possible for n = 1..{limit}"
        )
    return n


def table_dtype(n: int) -> type[np.unsignedinteger]:
    """The smallest unsigned dtype holding a truth table of n inputs (2**n bits)."""
    if n <= 3:
        return np.uint8
    if n == 4:
        return np.uint16
    if n == 5:
        return np.uint32
    return np.uint64


def num_functions(n: int) -> int:
    return 1 << (1 << n)


def full_mask(n: int) -> int:
    """The truth table of the constant-1 function."""
    return num_functions(n) - 1


@lru_cache(maxsize=None)
def variable_table(i: int, n: int) -> int:
    """Truth table of input x_i: bit x is set iff bit i of x is set."""
    return sum(1 << x for x in range(1 << n) if (x >> i) & 1)


def literal_tables(n: int) -> np.ndarray:
    """The cost-0 leaves: constants 0 and 1, every x_i and every NOT x_i (2 + 2n tables, sorted)."""
    mask = full_mask(n)
    tables = {0, mask}
    for i in range(n):
        tables |= {variable_table(i, n), variable_table(i, n) ^ mask}
    return np.array(sorted(tables), dtype=table_dtype(n))


def all_tables(n: int) -> np.ndarray:
    return np.arange(num_functions(n), dtype=table_dtype(n))


def normalize(tables: np.ndarray | int, n: int) -> np.ndarray | int:
    """Map each function to the one of {f, NOT f} with f(0) = 0 (circuits get output NOT for free)."""
    mask = full_mask(n)
    if isinstance(tables, (int, np.integer)):
        return int(tables) ^ (mask if int(tables) & 1 else 0)
    tables = np.asarray(tables)
    return tables ^ np.where(tables & 1, tables.dtype.type(mask), tables.dtype.type(0))


@dataclass(frozen=True)
class Transform:
    """One element of the NPN group: ``g(x) = f(y) XOR negate_output`` where ``y`` has bit
    ``permutation[i]`` equal to ``x_i XOR`` (bit i of ``input_flips``)."""

    permutation: tuple[int, ...]
    input_flips: int
    negate_output: bool

    def position_map(self) -> np.ndarray:
        """``pos[x]`` = the assignment of f read for output bit x of g."""
        n = len(self.permutation)
        pos = np.zeros(1 << n, dtype=np.int64)
        for x in range(1 << n):
            flipped = x ^ self.input_flips
            pos[x] = sum(((flipped >> i) & 1) << self.permutation[i] for i in range(n))
        return pos

    def apply(self, tables: np.ndarray | int, n: int) -> np.ndarray | int:
        return apply_position_map(tables, self.position_map(), self.negate_output, n)


def apply_position_map(tables: np.ndarray | int, pos: np.ndarray, negate_output: bool, n: int):
    """Apply an NPN transform given as a position map to one table or an array of tables."""
    scalar = isinstance(tables, (int, np.integer))
    if scalar:
        table = int(tables)
        out = sum(((table >> int(source)) & 1) << x for x, source in enumerate(pos))
        return out ^ (full_mask(n) if negate_output else 0)
    arr = np.asarray(tables, dtype=table_dtype(n))
    one = arr.dtype.type(1)
    out = np.zeros_like(arr)
    for x, source in enumerate(pos):
        out |= ((arr >> arr.dtype.type(source)) & one) << arr.dtype.type(x)
    if negate_output:
        out ^= arr.dtype.type(full_mask(n))
    return out


def npn_generators(n: int) -> list[Transform]:
    """A generating set of the NPN group: swap x0/x1, rotate the inputs, negate x0, negate the output."""
    identity = tuple(range(n))
    gens = [Transform(identity, 1, False), Transform(identity, 0, True)]
    if n >= 2:
        gens.append(Transform((1, 0) + identity[2:], 0, False))
        gens.append(Transform(identity[1:] + identity[:1], 0, False))
    return gens


@lru_cache(maxsize=None)
def npn_group(n: int) -> tuple[np.ndarray, np.ndarray]:
    """All n! * 2^n * 2 NPN transforms as (position maps of shape (G, 2**n), output-negation flags (G,)).

    Ordered by (output negated, number of negated inputs) so that `find_transform` prefers the
    transform with the fewest negations (reconstructed formulas then read more naturally).
    """
    elements = [
        (negate, bin(flips).count("1"), perm, flips)
        for perm in itertools.permutations(range(n))
        for flips in range(1 << n)
        for negate in (False, True)
    ]
    elements.sort()
    maps = [Transform(perm, flips, False).position_map() for _, _, perm, flips in elements]
    flags = [negate for negate, _, _, _ in elements]
    return np.array(maps), np.array(flags)


def find_transform(source: int, target: int, n: int) -> tuple[np.ndarray, bool]:
    """An NPN transform (position map, negate_output) mapping table `source` to `target`
    (the first in `npn_group` order, i.e. with the fewest negations)."""
    maps, flags = npn_group(n)
    index = _orbit_index(source, n).get(target)
    if index is None:
        raise InputError(f"tables {source:#x} and {target:#x} (n={n}) are not in the same NPN class")
    return maps[index], bool(flags[index])


@lru_cache(maxsize=4096)
def _orbit_index(source: int, n: int) -> dict[int, int]:
    """For each image of `source` under the NPN group, the index of the first transform giving it."""
    maps, flags = npn_group(n)
    source_bits = (source >> np.arange(1 << n)) & 1
    images = (source_bits[maps] << np.arange(1 << n)).sum(axis=1)
    images ^= np.where(flags, full_mask(n), 0)
    index: dict[int, int] = {}
    for i, image in enumerate(images.tolist()):
        index.setdefault(image, i)
    return index


@lru_cache(maxsize=None)
def npn_class_labels(n: int) -> np.ndarray:
    """For every function, the smallest table in its NPN class (its canonical representative).

    Computed by min-label propagation along the generators: each generator permutes the
    function space, so repeating ``label = min(label, label[g(f)])`` reaches a fixed point
    where every class carries its minimum.
    """
    tables = all_tables(n)
    images = [g.apply(tables, n).astype(np.int64) for g in npn_generators(n)]
    label = np.arange(tables.size, dtype=np.int64)
    while True:
        new = label.copy()
        for image in images:
            np.minimum(new, new[image], out=new)
        if np.array_equal(new, label):
            break
        label = new
    label.setflags(write=False)
    return label

"""Binary lambda calculus (Tromp): de Bruijn terms, their prefix-free code, enumeration, reduction.

Terms are immutable nested tuples (fast to build and hash):

- a variable is an ``int`` ≥ 0, its de Bruijn index (0 = the nearest enclosing λ);
- an abstraction is ``(LAM, body)``;
- an application is ``(APP, function, argument)``.

The code: ``00`` + body for λ, ``01`` + function + argument for an application, ``1^(i+1) 0``
for variable i. It is prefix-free, so closed terms are a valid Levin-search program space
(Kraft sum ≤ 1). `count_closed_terms(n)` is the number of closed terms of exactly n bits,
OEIS A114852 (offset 1: 0, 0, 0, 1, 0, 1, 1, 2, 1, 6, …).

Reduction is normal order (leftmost-outermost), as a resumable step machine: one step performs
one beta reduction, and the step that finds no redex left is the halting step (it counts, like a
Turing machine's), so a term already in normal form halts in 1 step. A term that grows past the
size cap stops as "overflowed" (it has no normal form to offer and is never accepted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterator, Union

from searchprobe.errors import InputError

__all__ = [
    "LAM", "APP", "Term", "lam", "app", "encode", "decode", "is_closed_code", "size", "to_str",
    "church", "church_value", "count_closed_terms", "closed_terms", "reduce_step", "LambdaRun",
    "LambdaTask", "MAX_SIZE_CAP",
]

LAM = 0
APP = 1
Term = Union[int, tuple]

#: Largest size cap (bits) allowed: reduction recurses over the term's depth (≤ size/2 … size).
MAX_SIZE_CAP = 900


def lam(body: Term) -> tuple:
    return (LAM, body)


def app(function: Term, argument: Term) -> tuple:
    return (APP, function, argument)


# --------------------------------------------------------------------------------------------
# code, size, printing
# --------------------------------------------------------------------------------------------


def encode(term: Term) -> str:
    """The term's binary lambda calculus code as a string of '0'/'1'."""
    parts: list[str] = []
    stack = [term]
    while stack:
        t = stack.pop()
        if isinstance(t, int):
            parts.append("1" * (t + 1) + "0")
        elif t[0] == LAM:
            parts.append("00")
            stack.append(t[1])
        else:
            parts.append("01")
            stack.append(t[2])
            stack.append(t[1])
    return "".join(parts)


def size(term: Term) -> int:
    """Length of the term's code in bits."""
    total = 0
    stack = [term]
    while stack:
        t = stack.pop()
        if isinstance(t, int):
            total += t + 2
        elif t[0] == LAM:
            total += 2
            stack.append(t[1])
        else:
            total += 2
            stack.append(t[1])
            stack.append(t[2])
    return total


def decode(bits: str, *, closed: bool = True) -> Term:
    """Parse a complete code (recursive descent). Malformed, trailing or free-variable input → InputError."""
    if not isinstance(bits, str) or any(c not in "01" for c in bits):
        raise InputError(f"lambda code {bits!r} is not allowed: use only the characters 0 and 1")

    def parse(i: int, depth: int) -> tuple[Term, int]:
        if i >= len(bits):
            raise InputError(f"lambda code {bits!r} ends early at bit {i}: a term is incomplete")
        if bits[i] == "0":
            if i + 1 >= len(bits):
                raise InputError(f"lambda code {bits!r} ends early at bit {i + 1}: expected 00 or 01")
            if bits[i + 1] == "0":
                body, j = parse(i + 2, depth + 1)
                return (LAM, body), j
            function, j = parse(i + 2, depth)
            argument, k = parse(j, depth)
            return (APP, function, argument), k
        j = i
        while j < len(bits) and bits[j] == "1":
            j += 1
        if j >= len(bits):
            raise InputError(f"lambda code {bits!r} ends early at bit {j}: a variable needs its closing 0")
        index = j - i - 1
        if closed and index >= depth:
            raise InputError(f"lambda code {bits!r} has free variable {index} at bit {i} (only {depth} binders)")
        return index, j + 1

    term, end = parse(0, 0)
    if end != len(bits):
        raise InputError(f"lambda code {bits!r} has {len(bits) - end} trailing bit(s) after bit {end}")
    return term


def is_closed_code(bits: str) -> bool:
    """Whether `bits` is exactly the code of one closed term (iterative scan, no term built)."""
    n = len(bits)
    pending = [0]  # binder depth of each term still to be read
    i = 0
    while pending:
        if i >= n:
            return False
        depth = pending.pop()
        if bits[i] == "0":
            if i + 1 >= n:
                return False
            if bits[i + 1] == "0":
                pending.append(depth + 1)
            else:
                pending.append(depth)
                pending.append(depth)
            i += 2
        else:
            j = bits.find("0", i)
            if j < 0 or j - i - 1 >= depth:
                return False
            i = j + 1
    return i == n


def to_str(term: Term) -> str:
    """Readable de Bruijn notation, e.g. ``λλ1 (1 0)`` for Church 2."""
    if isinstance(term, int):
        return str(term)
    if term[0] == LAM:
        return "λ" + to_str(term[1])
    function, argument = term[1], term[2]
    left = to_str(function)
    if not isinstance(function, int) and function[0] == LAM:
        left = f"({left})"
    right = to_str(argument)
    if not isinstance(argument, int):
        right = f"({right})"
    return f"{left} {right}"


def church(k: int) -> Term:
    """The Church numeral k: λf.λx. f^k x = λλ 1 (1 (… 0))."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InputError(f"church numeral k={k!r} is not allowed: k must be an integer >= 0")
    body: Term = 0
    for _ in range(k):
        body = (APP, 1, body)
    return (LAM, (LAM, body))


def church_value(term: Term) -> int | None:
    """k if `term` is the Church numeral k (in normal form), else None."""
    if isinstance(term, int) or term[0] != LAM or isinstance(term[1], int) or term[1][0] != LAM:
        return None
    body, k = term[1][1], 0
    while not isinstance(body, int):
        if body[0] != APP or body[1] != 1:
            return None
        body, k = body[2], k + 1
    return k if body == 0 else None


# --------------------------------------------------------------------------------------------
# counting and enumeration
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _count(n: int, depth: int) -> int:
    """Terms of exactly n bits whose free variables are all < depth (recurrence)."""
    if n < 2:
        return 0
    total = 1 if n - 2 < depth else 0  # the variable n − 2, which takes n bits
    total += _count(n - 2, depth + 1)  # λ body
    total += sum(_count(m, depth) * _count(n - 2 - m, depth) for m in range(2, n - 3))
    return total


def count_closed_terms(n: int) -> int:
    """Number of closed terms of exactly n bits (OEIS A114852, offset 1), by a recurrence."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"term size n={n!r} is not allowed: n must be an integer >= 1")
    return _count(n, 0)


@lru_cache(maxsize=None)
def _terms(n: int, depth: int) -> tuple[tuple[str, Term], ...]:
    """All (code, term) of exactly n bits with free variables < depth, in code order."""
    if n < 2:
        return ()
    out: list[tuple[str, Term]] = []
    out.extend(("00" + c, (LAM, t)) for c, t in _terms(n - 2, depth + 1))
    for m in range(2, n - 3):
        rights = _terms(n - 2 - m, depth)
        if not rights:
            continue
        for cf, f in _terms(m, depth):
            out.extend(("01" + cf + cx, (APP, f, x)) for cx, x in rights)
    if n - 2 < depth:
        out.append(("1" * (n - 1) + "0", n - 2))
    out.sort(key=lambda p: p[0])
    return tuple(out)


def closed_terms(n: int) -> Iterator[Term]:
    """The closed terms of exactly n bits, in lexicographic order of their codes."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"term size n={n!r} is not allowed: n must be an integer >= 1")
    for _, term in _terms(n, 0):
        yield term


# --------------------------------------------------------------------------------------------
# normal-order reduction
# --------------------------------------------------------------------------------------------


def _shift(t: Term, d: int, cutoff: int) -> Term:
    if isinstance(t, int):
        return t + d if t >= cutoff else t
    if t[0] == LAM:
        return (LAM, _shift(t[1], d, cutoff + 1))
    return (APP, _shift(t[1], d, cutoff), _shift(t[2], d, cutoff))


def _substitute(t: Term, depth: int, value: Term) -> Term:
    """t[depth := value] for the variable bound `depth` binders up; free variables above it drop by one."""
    if isinstance(t, int):
        if t == depth:
            return _shift(value, depth, 0) if depth else value
        return t - 1 if t > depth else t
    if t[0] == LAM:
        return (LAM, _substitute(t[1], depth + 1, value))
    return (APP, _substitute(t[1], depth, value), _substitute(t[2], depth, value))


def reduce_step(term: Term) -> Term | None:
    """Contract the leftmost-outermost redex; None if `term` is in normal form."""
    if isinstance(term, int):
        return None
    if term[0] == LAM:
        body = reduce_step(term[1])
        return None if body is None else (LAM, body)
    function, argument = term[1], term[2]
    if not isinstance(function, int) and function[0] == LAM:
        return _substitute(function[1], 0, argument)
    reduced = reduce_step(function)
    if reduced is not None:
        return (APP, reduced, argument)
    reduced = reduce_step(argument)
    return None if reduced is None else (APP, function, reduced)


@dataclass
class LambdaRun:
    """A resumable normal-order reduction of one term (a `ProgramRun`)."""

    index: int  #: program index in the task's enumeration
    term: Term  #: the current term
    size_cap: int = 512  #: a term larger than this many bits stops the run as overflowed
    steps: int = 0  #: steps so far (beta reductions, plus the halting step once halted)
    halted: bool = False  #: True once it reached normal form or overflowed
    overflowed: bool = False  #: True if it stopped because the term grew past size_cap

    @property
    def normal_form(self) -> Term | None:
        return self.term if self.halted and not self.overflowed else None

    def advance(self, budget: int) -> int:
        ran = 0
        while ran < budget and not self.halted:
            reduced = reduce_step(self.term)
            ran += 1
            if reduced is None:
                self.halted = True
                break
            self.term = reduced
            if size(reduced) > self.size_cap:
                self.halted = self.overflowed = True
        self.steps += ran
        return ran


@dataclass
class LambdaTask:
    """Closed BLC terms as a program space, by size then code order (a `ProgramSearchTask`).

    Program i's description length is its code length. `accept` judges a normal form (e.g.
    ``lambda nf: nf == church(2)``); `max_bits` bounds the space (None = unbounded).
    """

    accept: Callable[[Term], bool]
    max_bits: int | None = None
    size_cap: int = 512
    _programs: list[Term] = field(default_factory=list, init=False, repr=False)
    _bits: list[int] = field(default_factory=list, init=False, repr=False)
    _next_size: int = field(default=1, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_bits is not None and (isinstance(self.max_bits, bool) or not isinstance(self.max_bits, int)
                                          or self.max_bits < 4):
            raise InputError(f"max_bits={self.max_bits!r} is not allowed: use None or an integer >= 4 "
                             "(the smallest closed term, λ0, has 4 bits)")
        if isinstance(self.size_cap, bool) or not isinstance(self.size_cap, int) or not 4 <= self.size_cap <= MAX_SIZE_CAP:
            raise InputError(f"size_cap={self.size_cap!r} is not allowed: use an integer in 4..{MAX_SIZE_CAP}")

    def _extend_to(self, index: int) -> bool:
        while len(self._programs) <= index:
            if self.max_bits is not None and self._next_size > self.max_bits:
                return False
            terms = list(closed_terms(self._next_size))
            self._programs.extend(terms)
            self._bits.extend([self._next_size] * len(terms))
            self._next_size += 1
        return True

    def _check(self, index: int) -> None:
        if isinstance(index, bool) or index < 0 or not self._extend_to(index):
            raise InputError(f"program index {index!r} is out of range for {self!r}")

    def num_programs(self) -> int | None:
        if self.max_bits is None:
            return None
        return sum(count_closed_terms(n) for n in range(1, self.max_bits + 1))

    def has_program(self, index: int) -> bool:
        """Whether program `index` exists (enumerates terms only up to its size, unlike `num_programs`)."""
        return not isinstance(index, bool) and index >= 0 and self._extend_to(index)

    def program(self, index: int) -> Term:
        self._check(index)
        return self._programs[index]

    def start(self, index: int) -> LambdaRun:
        return LambdaRun(index, self.program(index), self.size_cap)

    def accepts(self, run: LambdaRun) -> bool:
        nf = run.normal_form
        return nf is not None and bool(self.accept(nf))

    def description_bits(self, index: int) -> float:
        self._check(index)
        return float(self._bits[index])

"""Turing machines in the bbchallenge text format: parsing, simulation, TNF enumeration, busy beaver.

Machines have two symbols (0 = blank, 1) and n states A, B, C, … A machine is written as one
six-character block per state, joined by ``_``; each block holds the transitions for reading 0
and reading 1, each ``<write><L|R><next state>``, e.g. the 2-state champion ``1RB1LB_1LA1RZ``.
``---`` marks an undefined transition. A next-state letter beyond the machine's states (usually
``Z``) is a halt state.

Step counting follows the busy-beaver / bbchallenge convention: the halting transition counts
as a step. Reaching an undefined transition halts *and* counts as a step (the tape and head are
left unchanged); a defined transition to a halt state writes, moves and then halts.

Three ways to run machines:

- `MachineRun`: one machine, resumable (`advance(budget)`), a plain Python loop; implements
  `programs.ProgramRun` so a dovetailer can interleave many of them. `run()` wraps it.
- `simulate_batch`: many machines at once with numpy (≈10-14× the plain loop's steps/s, see
  ``experiments/benchmarks/tm_simulator.py``).
- `enumerate_tnf` / `busy_beaver`: tree-normal-form enumeration of all n-state machines (run
  until an undefined transition is reached, then branch over its definitions), which reproduces
  S(n) and Σ(n) for n ≤ 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np

from searchprobe.errors import InputError

__all__ = [
    "TuringMachine",
    "parse_machine",
    "RunResult",
    "MachineRun",
    "run",
    "BatchResult",
    "simulate_batch",
    "TNFEnumeration",
    "enumerate_tnf",
    "BusyBeaver",
    "busy_beaver",
    "KNOWN_BUSY_BEAVER",
    "MAX_TNF_STATES",
    "DEFAULT_BB_STEPS",
]

UNDEFINED = -1  #: `TuringMachine.next` value of an undefined transition
HALT_LETTER = ord("Z") - ord("A")  #: letter index written for a halting transition we create

#: Known busy-beaver values (S(n), Σ(n)): Radó & Lin (n ≤ 3), Brady 1983 (n = 4), bbchallenge 2024 (n = 5).
KNOWN_BUSY_BEAVER = {1: (1, 1), 2: (6, 4), 3: (21, 6), 4: (107, 13), 5: (47_176_870, 4098)}

#: The largest n `enumerate_tnf` / `busy_beaver` accept. n = 5 has ~10^8 TNF machines and needs
#: the bbchallenge deciders (cyclers, translated cyclers, bouncers, …) to settle the non-halters.
MAX_TNF_STATES = 4


def _check_steps(value: object, name: str) -> int:
    """A step budget must be a positive integer (bools and floats are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name}={value!r} is not allowed: a step budget must be a positive integer")
    return int(value)


# --------------------------------------------------------------------------------------------
# The machine type and its text format
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TuringMachine:
    """A 2-symbol, n-state Turing machine; ``str()`` gives the bbchallenge text back exactly.

    Build one with `parse_machine` (or `TuringMachine.parse`). All three tables have shape
    (n_states, 2), indexed by [state, symbol read], and are read-only.
    """

    write: np.ndarray  #: int8 symbol written (0/1); -1 where the transition is undefined
    move: np.ndarray  #: int8 head move: +1 right, -1 left; 0 where undefined
    next: np.ndarray  #: int8 next-state letter index (A=0 … Z=25, ≥ n_states halts); -1 undefined
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        arrays = {}
        for name in ("write", "move", "next"):
            arr = np.array(getattr(self, name), dtype=np.int8)
            if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
                raise InputError(f"TuringMachine.{name} has shape {arr.shape}: expected (n_states, 2), n_states ≥ 1")
            arr.setflags(write=False)
            arrays[name] = arr
        if not arrays["write"].shape == arrays["move"].shape == arrays["next"].shape:
            raise InputError("TuringMachine write, move and next must have the same shape (n_states, 2)")
        undefined = arrays["next"] == UNDEFINED
        w, m, x = arrays["write"], arrays["move"], arrays["next"]
        defined_ok = ((w == 0) | (w == 1)) & ((m == 1) | (m == -1)) & (x >= 0) & (x <= HALT_LETTER)
        bad = ~np.where(undefined, (w == UNDEFINED) & (m == 0), defined_ok)
        if bad.any():
            s, r = map(int, np.argwhere(bad)[0])
            raise InputError(
                f"TuringMachine transition {chr(65 + s)}{r} = (write {arrays['write'][s, r]}, move "
                f"{arrays['move'][s, r]}, next {arrays['next'][s, r]}) is not allowed: write 0/1, move ±1, "
                "next 0..25, or (-1, 0, -1) for undefined"
            )
        for name, arr in arrays.items():
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "_text", _format(arrays["write"], arrays["move"], arrays["next"]))

    @classmethod
    def parse(cls, text: str) -> "TuringMachine":
        """Same as `parse_machine`."""
        return parse_machine(text)

    @property
    def n_states(self) -> int:
        return self.write.shape[0]

    @property
    def n_undefined(self) -> int:
        """How many transitions are ``---``."""
        return int((self.next == UNDEFINED).sum())

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"TuringMachine.parse({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TuringMachine) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)


def _format(write: np.ndarray, move: np.ndarray, nxt: np.ndarray) -> str:
    blocks = []
    for s in range(write.shape[0]):
        parts = []
        for r in range(2):
            if nxt[s, r] == UNDEFINED:
                parts.append("---")
            else:
                parts.append(f"{write[s, r]}{'R' if move[s, r] > 0 else 'L'}{chr(65 + int(nxt[s, r]))}")
        blocks.append("".join(parts))
    return "_".join(blocks)


def parse_machine(text: str) -> TuringMachine:
    """Parse bbchallenge text (``1RB1LB_1LA1RZ``); a malformed string raises InputError at the bad character."""
    if isinstance(text, TuringMachine):
        return text
    if not isinstance(text, str):
        raise InputError(
            f"machine {text!r} is a {type(text).__name__}: expected a bbchallenge string like '1RB1LB_1LA1RZ'"
        )
    expectations = ("0, 1 or '-'", "L or R", "a state letter A-Z")

    def fail(pos: int, what: str) -> InputError:
        found = f"character {text[pos]!r}" if pos < len(text) else "the end of the string"
        return InputError(f"bad machine string {text!r}: position {pos} has {found}, expected {what}")

    n_blocks = (len(text) + 1) // 7 if text else 0
    write = np.full((max(n_blocks, 1), 2), UNDEFINED, np.int8)
    move = np.zeros_like(write)
    nxt = np.full_like(write, UNDEFINED)
    pos = 0
    while True:
        s = pos // 7
        for r in range(2):
            fields = []
            for f in range(3):
                p = pos + 3 * r + f
                ch = text[p] if p < len(text) else ""
                undefined = bool(fields) and fields[0] == "-"
                if undefined:
                    if ch != "-":
                        raise fail(p, "'-' (an undefined transition is written '---')")
                elif f == 0 and ch not in ("0", "1", "-"):
                    raise fail(p, expectations[0])
                elif f == 1 and ch not in ("L", "R"):
                    raise fail(p, expectations[1])
                elif f == 2 and not ("A" <= ch <= "Z" and len(ch) == 1):
                    raise fail(p, expectations[2])
                fields.append(ch)
            if fields[0] != "-":
                write[s, r] = int(fields[0])
                move[s, r] = 1 if fields[1] == "R" else -1
                nxt[s, r] = ord(fields[2]) - 65
        pos += 6
        if pos == len(text):
            break
        if text[pos] != "_":
            raise fail(pos, "'_' between states (or the end of the string)")
        pos += 1
    return TuringMachine(write, move, nxt)


# --------------------------------------------------------------------------------------------
# The plain simulator (one machine, resumable)
# --------------------------------------------------------------------------------------------

_SEGMENT = 1 << 15  # steps between tape-margin checks in the plain loop


@dataclass(frozen=True)
class RunResult:
    """Where a run stopped. The tape is the smallest segment holding every 1 and the head."""

    halted: bool  #: True if the machine halted within the step budget
    steps: int  #: steps executed (the halting transition counts)
    ones: int  #: number of 1s on the tape
    tape: str  #: tape segment as a string of '0'/'1'
    head: int  #: head position, as an index into `tape`
    state: int  #: state index at the end; once halted: the halt letter (Z=25) or the state that hit '---'


class MachineRun:
    """A resumable run of one machine (implements `programs.ProgramRun`).

    The tape starts as `tape` (a string or sequence of 0/1; blank by default) with the head on
    cell `head` of it, in state A. `advance(budget)` runs at most `budget` more steps.
    """

    def __init__(
        self, machine: TuringMachine | str, tape: Sequence[int] | str | None = None, head: int = 0, index: int = 0
    ):
        machine = parse_machine(machine)
        self.machine = machine
        self.index = index
        self.steps = 0
        self.halted = False
        self.state = 0
        cells = _tape_cells(tape, "tape")
        if isinstance(head, bool) or not isinstance(head, (int, np.integer)):
            raise InputError(f"head={head!r} is not allowed: expected an integer cell index")
        n = machine.n_states
        # Flat transition list indexed by 2*state + symbol: (write, move, 2*next), where a halting
        # entry (undefined, or next state beyond n) stores -1 - (its own index) instead of 2*next.
        self._table = []
        for s in range(n):
            for r in range(2):
                nx, halt = int(machine.next[s, r]), -1 - (2 * s + r)
                if nx == UNDEFINED:
                    self._table.append((r, 0, halt))
                else:
                    self._table.append((int(machine.write[s, r]), int(machine.move[s, r]), 2 * nx if nx < n else halt))
        left = max(0, -int(head))
        self._tape = bytearray(left) + bytearray(cells) + bytearray(max(0, int(head) - len(cells) + 1))
        self._origin = left  # cell 0 of the input is _tape[_origin]
        self._head = left + int(head)

    def __repr__(self) -> str:
        return f"<MachineRun {self.machine} index={self.index} steps={self.steps} halted={self.halted}>"

    def advance(self, budget: int) -> int:
        """Run up to `budget` more steps; return how many ran (fewer only if it halted)."""
        budget = _check_steps(budget, "budget")
        if self.halted:
            return 0
        table, tape = self._table, self._tape
        cur, h = 2 * self.state, self._head
        ran = 0
        while ran < budget:
            m = min(budget - ran, _SEGMENT)
            if h < m:  # grow so the head cannot fall off within this segment
                grow = max(m, len(tape))
                tape[0:0] = bytes(grow)
                h += grow
                self._origin += grow
            if len(tape) - h <= m:
                tape.extend(bytes(max(m, len(tape))))
            for i in range(m):
                w, d, nxt = table[cur + tape[h]]
                tape[h] = w
                h += d
                if nxt < 0:
                    ran += i + 1
                    self.halted = True
                    break
                cur = nxt
            else:
                ran += m
                continue
            break
        self.steps += ran
        self._head = h
        if self.halted:
            s, r = divmod(-1 - nxt, 2)  # halting entries store -1 - (their table index)
            letter = int(self.machine.next[s, r])
            self.state = s if letter == UNDEFINED else letter
        else:
            self.state = cur // 2
        return ran

    @property
    def ones(self) -> int:
        return self._tape.count(1)

    @property
    def head(self) -> int:
        """Head position relative to cell 0 of the input tape."""
        return self._head - self._origin

    def result(self) -> RunResult:
        tape = self._tape
        first, last = tape.find(1), tape.rfind(1)
        lo = self._head if first < 0 else min(first, self._head)
        hi = self._head if last < 0 else max(last, self._head)
        text = bytes(tape[lo : hi + 1]).translate(_DIGITS).decode("ascii")
        return RunResult(self.halted, self.steps, self.ones, text, self._head - lo, self.state)


_DIGITS = bytes.maketrans(b"\x00\x01", b"01")


def _tape_cells(tape: Sequence[int] | str | None, name: str) -> bytes:
    if tape is None:
        return b""
    if isinstance(tape, str):
        if set(tape) - {"0", "1"}:
            bad = next(i for i, c in enumerate(tape) if c not in "01")
            raise InputError(f"{name}={tape!r}: position {bad} has {tape[bad]!r}, expected only '0' and '1'")
        return tape.encode("ascii").translate(bytes.maketrans(b"01", b"\x00\x01"))
    cells = np.asarray(tape)
    if cells.ndim != 1 or (cells.size and not np.isin(cells, (0, 1)).all()):
        raise InputError(f"{name}={tape!r} is not allowed: expected a 1-D sequence of 0/1 cells")
    return cells.astype(np.uint8).tobytes()


def run(
    machine: TuringMachine | str, max_steps: int, tape: Sequence[int] | str | None = None, head: int = 0
) -> RunResult:
    """Run `machine` for at most `max_steps` steps (plain Python loop) and say where it stopped."""
    max_steps = _check_steps(max_steps, "max_steps")
    r = MachineRun(machine, tape, head)
    r.advance(max_steps)
    return r.result()


# --------------------------------------------------------------------------------------------
# The vectorized simulator
# --------------------------------------------------------------------------------------------
#
# Machines are held as int arrays of shape (B, n, 2) ("internal form"): `nxt` is a state index,
# _HALT for a transition into a halt state, UNDEFINED for '---'. For the numpy kernel each batch is
# compiled into one flat int64 code table with R = 2n + 1 rows per machine: rows 0..n-1 are the
# states, row n is "halted", row n+1+s is "hit an undefined transition in state s". The last n+1
# rows are absorbing (keep the symbol, stay, count no step), so every machine does the same
# arithmetic every step and no per-step masking is needed. Entry (row, machine, symbol) sits at
# flat index (row * B + machine) * 2 + symbol and holds
#
#     code = ((move << 32) + counts_step) << 30  +  next_ptr  +  (write XOR symbol)
#
# where next_ptr (even, < 2^30) is the flat index of (next row, machine, 0), so one gather yields
# everything and `ptr + symbol` indexes the next entry. The top field is added as one number to
# an accumulator holding (head bit << 32) + steps this chunk, which moves the head and counts
# the step in one addition.
#
# Tapes are bit-packed: one column of uint32 words per machine. The kernel works in chunks of
# ≤ 16 steps; at the start of a chunk it loads the 64 cells around each head into one int64
# register `win` (head at bit 16..47, so 16 steps cannot leave it), steps with shifts and XORs only,
# and stores the window back at the end. Halt checks, tape growth and retiring finished machines
# happen between chunks. No tape gathers or scatters per step: ≈4× faster than a byte tape.

_HALT = -2
_CHUNK = 16  # steps per chunk: the 64-cell window keeps the head ≥ 16 cells from its edges
_TAPE_BYTES = 1 << 26  # split a batch rather than let its tape grow past this
_BATCH = 16384  # machines per kernel batch: code tables stay cache-sized
_FIELD_SHIFT = 30  # code bits ≥ 30: (move << 32) + counts_step, signed
_PTR_MASK = np.int64(((1 << _FIELD_SHIFT) - 1) & ~1)
_LOW32 = np.int64(0xFFFFFFFF)


def _internal(machines: Iterable[TuringMachine | str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack machines into internal-form (nxt, write, move) arrays, padding to the largest n."""
    items = list(machines)
    if not items:
        raise InputError("machines is empty: expected at least one machine")
    groups: dict[tuple[str, int], list[int]] = {}  # strings by length, machines by state count
    for i, m in enumerate(items):
        if isinstance(m, str):
            key = ("text", len(m))
        elif isinstance(m, TuringMachine):
            key = ("machine", m.write.shape[0])
        else:
            parse_machine(m)  # raises the precise error
        groups.setdefault(key, []).append(i)
    tables = []
    for (kind, size), positions in groups.items():
        if kind == "text":
            w, mv, letters = _parse_many([items[i] for i in positions])
        else:  # raw bytes of the int8 tables, joined: much faster than stacking many small arrays
            w, mv, letters = (
                np.frombuffer(b"".join([getattr(items[i], f).tobytes() for i in positions]), np.int8).reshape(-1, size, 2)
                for f in ("write", "move", "next")
            )
        tables.append((np.asarray(positions), w, mv, letters))
    n = max(t[1].shape[1] for t in tables)
    M = len(items)
    nxt = np.full((M, n, 2), UNDEFINED, np.int16)
    write = np.zeros((M, n, 2), np.int8)
    move = np.zeros((M, n, 2), np.int8)
    for positions, w, mv, letters in tables:
        k = w.shape[1]
        letters = letters.astype(np.int16)
        nxt[positions, :k] = np.where(letters >= k, _HALT, letters)
        write[positions, :k] = np.maximum(w, 0)
        move[positions, :k] = mv
    return nxt, write, move


def _parse_many(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorized `parse_machine` for equal-length strings → (write, move, next) of shape (M, n, 2)."""
    length = len(texts[0])
    try:
        raw = np.frombuffer("".join(texts).encode("ascii"), np.uint8).reshape(len(texts), length)
    except UnicodeEncodeError:
        raw = None
    if raw is None or length % 7 != 6:
        parsed = [parse_machine(t) for t in texts]  # raises the precise error
        return tuple(np.stack([getattr(m, f) for m in parsed]) for f in ("write", "move", "next"))
    n = (length + 1) // 7
    blocks = np.concatenate([raw, np.full((len(texts), 1), ord("_"), np.uint8)], axis=1).reshape(len(texts), n, 7)
    fields = blocks[:, :, :6].reshape(len(texts), n, 2, 3)
    w, mv, nx = fields[..., 0], fields[..., 1], fields[..., 2]
    undefined = (w == ord("-")) & (mv == ord("-")) & (nx == ord("-"))
    ok = np.where(undefined, True, ((w == ord("0")) | (w == ord("1"))) & ((mv == ord("L")) | (mv == ord("R")))
                  & (nx >= ord("A")) & (nx <= ord("Z")))
    if not ok.all() or not (blocks[:, :, 6] == ord("_")).all():
        bad = int(np.flatnonzero(~(ok.all(axis=(1, 2)) & (blocks[:, :, 6] == ord("_")).all(axis=1)))[0])
        parse_machine(texts[bad])  # raises the precise error
    write = np.where(undefined, UNDEFINED, w.astype(np.int16) - ord("0")).astype(np.int8)
    move = np.where(undefined, 0, np.where(mv == ord("R"), 1, -1)).astype(np.int8)
    nxt = np.where(undefined, UNDEFINED, nx.astype(np.int16) - ord("A")).astype(np.int8)
    return write, move, nxt


def _code_table(nxt: np.ndarray, write: np.ndarray, move: np.ndarray) -> np.ndarray:
    """Compile internal-form tables of B machines into the (R, B, 2) int64 code table (see above)."""
    B, n, _ = nxt.shape
    R = 2 * n + 1
    rows = np.empty((R, B, 2), np.int64)
    wr = np.empty((R, B, 2), np.int64)
    mv = np.zeros((R, B, 2), np.int64)
    counts = np.zeros((R, B, 2), np.int64)
    symbol = np.arange(2)[None, None, :]
    nt = nxt.transpose(1, 0, 2).astype(np.int64)
    undefined, halt = nt == UNDEFINED, nt == _HALT
    rows[:n] = np.where(undefined, n + 1 + np.arange(n)[:, None, None], np.where(halt, n, nt))
    wr[:n] = np.where(undefined, symbol, write.transpose(1, 0, 2))
    mv[:n] = np.where(undefined, 0, move.transpose(1, 0, 2))
    counts[:n] = 1
    rows[n:] = np.arange(n, R)[:, None, None]
    wr[n:] = symbol
    next_ptr = (rows * B + np.arange(B)[None, :, None]) * 2
    if next_ptr.max() >= 1 << _FIELD_SHIFT:
        raise InputError(f"batch of {B} machines with {n} states is too large for one code table: use a smaller batch_size")
    return (((mv << 32) + counts) << _FIELD_SHIFT) + next_ptr + (wr ^ symbol)


def _kernel(code, words, col, hcell, ptr, steps, budget, idx, out, segments) -> None:
    """Step machines until each halts or uses its budget; write results into `out` at `idx`.

    words: (Lw, W) uint32 bit-packed tapes, machine i on column col[i] with its head on cell
    hcell[i] (cell c = bit c % 32 of word c // 32); ptr: flat code index of (state row, machine, 0).
    Splits the batch in two when the tapes would outgrow _TAPE_BYTES.
    """
    code = code.reshape(-1)
    width = code.size // 2 // out["rows"]  # machines in the code table
    Lw, W = words.shape
    while idx.size:
        live = idx.size
        k = min(_CHUNK, int((budget - steps).min()))
        j = (hcell - 16) >> 5
        if j.min() < 0 or j.max() + 2 > Lw:
            new_Lw = 2 * Lw + 4
            if new_Lw * live * 4 > _TAPE_BYTES and live > 1:
                for part in (slice(0, live // 2), slice(live // 2, None)):
                    sub = np.ascontiguousarray(words[:, col[part]])
                    _kernel(code, sub, np.arange(sub.shape[1]), hcell[part], ptr[part], steps[part], budget[part],
                            idx[part], out, segments)
                return
            grown = np.zeros((new_Lw, live), np.uint32)
            o = (new_Lw - Lw) // 2
            grown[o : o + Lw] = words[:, col]
            words, Lw, W = grown, new_Lw, live
            col = np.arange(live)
            hcell = hcell + 32 * o
            j = (hcell - 16) >> 5
        flat = words.reshape(-1)
        i0 = j * W + col
        i1 = i0 + W
        win = flat[i0].astype(np.int64)
        win |= flat[i1].astype(np.int64) << 32
        acc = (hcell - (j << 5)) << 32  # (head bit in the window << 32) + steps taken this chunk
        hq = acc >> 32
        t = np.empty(live, np.int64)
        ti = np.empty(live, np.int64)
        c = np.empty(live, np.int64)
        for _ in range(k):
            np.right_shift(win, hq, out=t)
            t &= 1
            np.add(ptr, t, out=ti)
            code.take(ti, out=c, mode="clip")  # ti is always in range; clip skips the bounds check
            np.bitwise_and(c, 1, out=t)
            t <<= hq
            win ^= t
            np.right_shift(c, _FIELD_SHIFT, out=t)
            acc += t
            np.right_shift(acc, 32, out=hq)
            np.bitwise_and(c, _PTR_MASK, out=ptr)
        flat[i0] = win & _LOW32
        flat[i1] = (win >> 32) & _LOW32
        hcell = (j << 5) + hq
        steps += acc & _LOW32
        running = ((code[ptr] >> _FIELD_SHIFT) & 1).astype(bool) & (steps < budget)
        if not running.all():
            done = ~running
            head_symbol = (win[done] >> hq[done]) & 1
            row = ptr[done] // 2 // width
            _retire(words, col[done], hcell[done], row, steps[done], head_symbol, idx[done], out, segments)
            col, hcell, ptr, steps = col[running], hcell[running], ptr[running], steps[running]
            budget, idx = budget[running], idx[running]


def _retire(words, col, hcell, row, steps, head_symbol, idx, out, segments) -> None:
    """Record the results of finished machines (and their tapes, when `segments` is a list)."""
    W = words.shape[1]
    out["row"][idx] = row
    out["steps"][idx] = steps
    out["head_symbol"][idx] = head_symbol
    if 16 * len(idx) >= W:
        out["ones"][idx] = np.bitwise_count(words).sum(axis=0, dtype=np.int64)[col]
    else:
        out["ones"][idx] = np.bitwise_count(words[:, col]).sum(axis=0, dtype=np.int64)
    if segments is not None:
        for jj, i in enumerate(idx):
            cells = np.unpackbits(np.ascontiguousarray(words[:, col[jj]]).view(np.uint8), bitorder="little")
            ones_at = np.flatnonzero(cells)
            h = int(hcell[jj])
            lo = min(h, int(ones_at[0])) if ones_at.size else h
            hi = max(h, int(ones_at[-1])) if ones_at.size else h
            segments[i] = (cells[lo : hi + 1].tobytes().translate(_DIGITS).decode("ascii"), h - lo)


def _simulate_internal(nxt, write, move, max_steps, tape=b"", head=0, want_tapes=False, batch_size=_BATCH):
    """Run internal-form machines from `tape` (head on its cell `head`) for ≤ max_steps steps each.

    `max_steps` is an int or one positive budget per machine. Returns a dict of per-machine arrays:
    row (final row: < n running, n halted, n+1+s hit '---' in state s), steps, ones, head_symbol,
    and `segments` (list of (tape string, head index), as in RunResult) when `want_tapes`.
    """
    M, n, _ = nxt.shape
    out = {"row": np.empty(M, np.int64), "steps": np.empty(M, np.int64), "ones": np.empty(M, np.int64),
           "head_symbol": np.empty(M, np.uint8), "rows": 2 * n + 1}
    segments = [None] * M if want_tapes else None
    budget = np.broadcast_to(np.asarray(max_steps, np.int64), (M,))
    cells = np.frombuffer(bytes(tape), np.uint8)
    left = max(0, -head)
    cells = np.concatenate([np.zeros(left, np.uint8), cells, np.zeros(max(0, head - len(cells) + 1), np.uint8)])
    head += left
    # One template tape column: 64 blank cells, the input, then blank words to the right.
    n_words = (len(cells) + 64 + 63) // 32 + 2
    bits = np.zeros(32 * n_words, np.uint8)
    bits[64 : 64 + len(cells)] = cells
    column = np.packbits(bits, bitorder="little").view(np.uint32)
    for start in range(0, M, batch_size):
        stop = min(M, start + batch_size)
        B = stop - start
        code = _code_table(nxt[start:stop], write[start:stop], move[start:stop])
        words = np.repeat(column[:, None], B, axis=1)
        b = np.arange(B, dtype=np.int64)
        hcell = np.full(B, 64 + head, np.int64)
        _kernel(code, words, b, hcell, b * 2, np.zeros(B, np.int64), budget[start:stop].copy(),
                np.arange(start, stop), out, segments)
    del out["rows"]
    out["n_states"] = n
    out["segments"] = segments
    return out


@dataclass(frozen=True)
class BatchResult:
    """Per-machine results of `simulate_batch` (unpacks as ``halted, steps, ones = result``)."""

    halted: np.ndarray  #: bool, halted within the step budget
    steps: np.ndarray  #: int64 steps executed (the halting transition counts)
    ones: np.ndarray  #: int64 number of 1s on the tape at the end

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.halted, self.steps, self.ones))

    def __len__(self) -> int:
        return len(self.halted)

    def __repr__(self) -> str:
        halted, most = int(self.halted.sum()), int(self.steps.max(initial=0))
        return f"BatchResult(machines={len(self)}, halted={halted}, most_steps={most})"


def simulate_batch(
    machines: Iterable[TuringMachine | str],
    max_steps: int,
    tape: Sequence[int] | str | None = None,
    head: int = 0,
) -> BatchResult:
    """Run many machines at once with numpy; agrees exactly with `run` on every machine."""
    max_steps = _check_steps(max_steps, "max_steps")
    nxt, write, move = _internal(machines)
    out = _simulate_internal(nxt, write, move, max_steps, _tape_cells(tape, "tape"), int(head))
    return BatchResult(out["row"] >= out["n_states"], out["steps"], out["ones"])


# --------------------------------------------------------------------------------------------
# Tree-normal-form enumeration and the busy beaver
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TNFEnumeration:
    """All leaves of the TNF tree of n-state machines, split into halters and undecided machines.

    A halting leaf is a node whose run reached an undefined transition, with that transition
    defined as ``1RZ`` (writing 1 maximizes Σ; the move does not matter); its other unreached
    transitions stay ``---``. An undecided leaf ran `max_steps` steps without reaching an undefined
    transition. Nodes with a single undefined transition left are not branched into non-halting
    definitions: those machines have no halt state and never halt (counted in `n_pruned`).
    Tables are (count, n, 2) int8 arrays in `TuringMachine` form.
    """

    n_states: int
    max_steps: int
    halting_write: np.ndarray = field(repr=False)
    halting_move: np.ndarray = field(repr=False)
    halting_next: np.ndarray = field(repr=False)
    halting_steps: np.ndarray = field(repr=False)  #: steps of each halting leaf
    halting_ones: np.ndarray = field(repr=False)  #: 1s on the tape when it halts
    undecided_write: np.ndarray = field(repr=False)
    undecided_move: np.ndarray = field(repr=False)
    undecided_next: np.ndarray = field(repr=False)
    n_pruned: int  #: fully defined, halt-free completions skipped (they never halt)

    @property
    def n_halting(self) -> int:
        return len(self.halting_steps)

    @property
    def n_undecided(self) -> int:
        return len(self.undecided_next)

    def halting_machine(self, i: int) -> TuringMachine:
        return TuringMachine(self.halting_write[i], self.halting_move[i], self.halting_next[i])

    def undecided_machine(self, i: int) -> TuringMachine:
        return TuringMachine(self.undecided_write[i], self.undecided_move[i], self.undecided_next[i])

    def halting_machines(self) -> Iterator[TuringMachine]:
        return (self.halting_machine(i) for i in range(self.n_halting))

    def undecided_machines(self) -> Iterator[TuringMachine]:
        return (self.undecided_machine(i) for i in range(self.n_undecided))

    def __repr__(self) -> str:
        return (f"TNFEnumeration(n_states={self.n_states}, max_steps={self.max_steps}, halting={self.n_halting}, "
                f"undecided={self.n_undecided}, pruned={self.n_pruned})")


def _check_states(n_states: object) -> int:
    if isinstance(n_states, bool) or not isinstance(n_states, (int, np.integer)) or not 1 <= n_states <= MAX_TNF_STATES:
        raise InputError(
            f"n_states={n_states!r} is not allowed: exhaustive TNF enumeration handles 1..{MAX_TNF_STATES} states "
            "(n = 5 has ~10^8 machines whose non-halting needs the bbchallenge deciders to prove)"
        )
    return int(n_states)


def enumerate_tnf(n_states: int, max_steps: int, *, batch_size: int = _BATCH) -> TNFEnumeration:
    """Enumerate the tree-normal-form machines with `n_states` states, each run ≤ `max_steps` steps.

    Start from the all-undefined machine; run each node from a blank tape until it reaches an
    undefined transition (s, r); record that machine with (s, r) = 1RZ as a halting leaf, and
    branch over (s, r) = write × move × next state, where next ranges over the states used so far
    plus the first unused one (states are introduced in order A, B, C, …). Symmetry breaking as
    in the literature (Brady; bbchallenge): A0 is fixed to 1RB (for n = 1: 0RA or 1RA), which
    removes left/right mirror images and relabelings. Each node is re-run from the blank tape by
    the vectorized simulator, batch by batch, depth first.
    """
    n = _check_states(n_states)
    max_steps = _check_steps(max_steps, "max_steps")
    halting: list[tuple[np.ndarray, ...]] = []
    undecided: list[tuple[np.ndarray, ...]] = []
    n_pruned = 0

    # The root (all undefined) halts at step 1 on A0: the leaf 1RZ---_… (1 step, one 1).
    # Its only TNF children are A0 = 1RB (n = 1: 0RA, 1RA).
    root = np.full((1, n, 2), UNDEFINED, np.int16)
    leaf_next, leaf_write = root.copy(), np.zeros((1, n, 2), np.int8)
    leaf_next[0, 0, 0], leaf_write[0, 0, 0] = _HALT, 1
    halting.append((leaf_write, leaf_write.copy(), leaf_next, np.array([1]), np.array([1])))
    first = [(1, 1, 1)] if n >= 2 else [(0, 1, 0), (1, 1, 0)]
    nxt = np.repeat(root, len(first), axis=0)
    write = np.zeros_like(nxt, dtype=np.int8)
    move = np.zeros_like(nxt, dtype=np.int8)
    for i, (w, m, s) in enumerate(first):
        write[i, 0, 0], move[i, 0, 0], nxt[i, 0, 0] = w, m, s
    stack = [(nxt, write, move)]

    while stack:
        batch = [stack.pop()]
        while stack and sum(len(b[0]) for b in batch) + len(stack[-1][0]) <= batch_size:
            batch.append(stack.pop())
        nxt, write, move = (np.concatenate([b[j] for b in batch]) for j in range(3))
        out = _simulate_internal(nxt, write, move, max_steps, batch_size=batch_size)
        row = out["row"]
        reached = row > n  # rows n+1+s: hit the undefined transition (s, head symbol)
        parents = np.flatnonzero(reached)
        s = row[parents] - n - 1
        r = out["head_symbol"][parents].astype(np.int64)

        h_nxt, h_write, h_move = nxt[parents].copy(), write[parents].copy(), move[parents].copy()
        h_nxt[np.arange(len(parents)), s, r] = _HALT
        h_write[np.arange(len(parents)), s, r] = 1
        h_move[np.arange(len(parents)), s, r] = 1
        halting.append((h_write, h_move, h_nxt, out["steps"][parents], out["ones"][parents] + (1 - r)))
        stuck = np.flatnonzero(row < n)
        undecided.append((write[stuck], move[stuck], nxt[stuck]))

        n_undefined = (nxt[parents] == UNDEFINED).sum(axis=(1, 2))
        used = np.maximum(nxt[parents].max(axis=(1, 2)), 0) + 1
        n_children = 4 * np.minimum(used + 1, n)
        last = n_undefined == 1
        n_pruned += int(n_children[last].sum())
        parents, s, r, n_children = parents[~last], s[~last], r[~last], n_children[~last]
        # Children of a parent, in order: next state, then write, then move (L before R).
        for lo in range(0, len(parents), max(1, batch_size // (4 * n))):
            sl = slice(lo, lo + max(1, batch_size // (4 * n)))
            p, ps, pr, pc = parents[sl], s[sl], r[sl], n_children[sl]
            owner = np.repeat(np.arange(len(p)), pc)
            k = np.arange(owner.size) - np.repeat(np.cumsum(pc) - pc, pc)
            c_nxt, c_write, c_move = nxt[p][owner], write[p][owner], move[p][owner]
            at = (np.arange(owner.size), ps[owner], pr[owner])
            c_nxt[at] = k // 4
            c_write[at] = (k // 2) % 2
            c_move[at] = 2 * (k % 2) - 1
            stack.append((c_nxt, c_write, c_move))

    def cat(parts, j, dtype):
        return np.concatenate([np.asarray(x[j]) for x in parts]).astype(dtype) if parts else np.empty(0, dtype)

    h_write, h_move, h_next = _machine_form(*(cat(halting, j, t) for j, t in enumerate((np.int8, np.int8, np.int16))))
    u_write, u_move, u_next = _machine_form(*(cat(undecided, j, t) for j, t in enumerate((np.int8, np.int8, np.int16))))
    return TNFEnumeration(
        n_states=n,
        max_steps=max_steps,
        halting_write=h_write,
        halting_move=h_move,
        halting_next=h_next,
        halting_steps=cat(halting, 3, np.int64),
        halting_ones=cat(halting, 4, np.int64),
        undecided_write=u_write,
        undecided_move=u_move,
        undecided_next=u_next,
        n_pruned=n_pruned,
    )


def _machine_form(write: np.ndarray, move: np.ndarray, nxt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Internal (write, move, nxt) → TuringMachine tables (undefined = (-1, 0, -1), halt → Z)."""
    undefined = nxt == UNDEFINED
    return (
        np.where(undefined, UNDEFINED, write).astype(np.int8),
        np.where(undefined, 0, move).astype(np.int8),
        np.where(nxt == _HALT, HALT_LETTER, nxt).astype(np.int8),
    )


#: Default step caps for `busy_beaver`, about 5× the known S(n) or more. A machine that runs this
#: long without reaching an undefined transition is counted as non-halting ("undecided"): this
#: is an assumption, not a proof (there are no non-halting deciders here). It is confirmed by the
#: known values (S(n) proved by Lin & Radó for n ≤ 3 and by Brady for n = 4): every halter found
#: halts long before the cap, and raising the cap (e.g. to 2000 for n = 4) finds no new halter.
DEFAULT_BB_STEPS = {1: 10, 2: 100, 3: 500, 4: 500}


@dataclass(frozen=True)
class BusyBeaver:
    """S(n) and Σ(n) from a TNF enumeration (unpacks as ``S, sigma = busy_beaver(n)``)."""

    n_states: int
    steps: int  #: S(n): most steps taken by a halting n-state machine
    ones: int  #: Σ(n): most 1s left by a halting n-state machine
    steps_champion: TuringMachine  #: a machine attaining S(n)
    ones_champion: TuringMachine  #: a machine attaining Σ(n)
    n_halting: int  #: halting TNF leaves
    n_undecided: int  #: leaves still running at max_steps (assumed non-halting)
    max_steps: int

    def __iter__(self) -> Iterator[int]:
        return iter((self.steps, self.ones))


def busy_beaver(n: int, max_steps: int | None = None) -> BusyBeaver:
    """Compute S(n) and Σ(n) for n ≤ 4 by TNF enumeration (n = 4: ~600k leaves, seconds).

    Halting is decided by running each machine up to `max_steps` (default `DEFAULT_BB_STEPS[n]`);
    see `DEFAULT_BB_STEPS` for why the cap is an assumption and how it is checked.
    """
    n = _check_states(n)
    cap = DEFAULT_BB_STEPS[n] if max_steps is None else _check_steps(max_steps, "max_steps")
    tnf = enumerate_tnf(n, cap)
    i_steps, i_ones = int(np.argmax(tnf.halting_steps)), int(np.argmax(tnf.halting_ones))
    return BusyBeaver(
        n_states=n,
        steps=int(tnf.halting_steps[i_steps]),
        ones=int(tnf.halting_ones[i_ones]),
        steps_champion=tnf.halting_machine(i_steps),
        ones_champion=tnf.halting_machine(i_ones),
        n_halting=tnf.n_halting,
        n_undecided=tnf.n_undecided,
        max_steps=cap,
    )

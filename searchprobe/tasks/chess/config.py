"""Chess task configs: material specs ("KQvK"), puzzle recipes and the task TOML.

A material spec names the pieces of the side to move (the attacker, who mates) and of the
defender, kings included: ``"KQvK"``, ``"KRRvK"``, ``"KQvKR"``, ``"KRPvKP"``. Validation uses
python-chess's own insufficient-material rule, so "cannot mate" means exactly what it means there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import chess

from searchprobe.errors import InputError

#: Mate lengths the generator supports (moves of the side to move).
MIN_MATE_IN, MAX_MATE_IN = 1, 3
_PIECE_TYPES = {"K": chess.KING, "Q": chess.QUEEN, "R": chess.ROOK, "B": chess.BISHOP, "N": chess.KNIGHT, "P": chess.PAWN}
_ORDER = "KQRBNP"


@dataclass(frozen=True)
class Material:
    """Pieces of each side, as letters of ``KQRBNP`` (each side has exactly one ``K``).

    attacker: the side to move, who has the forced mate, e.g. ``"KQ"``.
    defender: the other side, e.g. ``"K"`` or ``"KR"``.
    """

    attacker: str
    defender: str

    @classmethod
    def parse(cls, text: str, where: str = "material") -> "Material":
        """Read ``"KQvK"`` (case of the letters is ignored); raise InputError naming what is wrong."""
        if not isinstance(text, str) or text.lower().count("v") != 1:
            raise InputError(f"{where}: material {text!r} must look like 'KQvK' (attacker 'v' defender)")
        left, right = text.upper().split("V")
        for side, pieces in (("attacker", left), ("defender", right)):
            bad = sorted(set(pieces) - set(_PIECE_TYPES))
            if bad:
                raise InputError(f"{where}: material {text!r}: unknown piece letter {bad[0]!r} for the {side}; allowed: K Q R B N P")
            if pieces.count("K") != 1:
                raise InputError(f"{where}: material {text!r}: the {side} has {pieces.count('K')} kings; exactly one is allowed")
            if len(pieces) > 16 or pieces.count("P") > 8:
                raise InputError(f"{where}: material {text!r}: the {side} has {len(pieces)} pieces / {pieces.count('P')} pawns; at most 16 / 8 are allowed")
        material = cls(_canonical(left), _canonical(right))
        if material.cannot_mate():
            raise InputError(f"{where}: material {text!r}: the attacker cannot mate with these pieces (python-chess: insufficient material)")
        return material

    def __str__(self) -> str:
        return f"{self.attacker}v{self.defender}"

    def pieces(self, attacker_color: chess.Color) -> list[chess.Piece]:
        """All pieces, attacker's first, as python-chess pieces for the given attacker colour."""
        out = [chess.Piece(_PIECE_TYPES[c], attacker_color) for c in self.attacker]
        out += [chess.Piece(_PIECE_TYPES[c], not attacker_color) for c in self.defender]
        return out

    def cannot_mate(self) -> bool:
        """True when python-chess says the attacker can never mate, even with opposite-coloured bishops."""
        board = chess.Board(None)
        # Spread the pieces so that bishops of one side stand on alternating square colours.
        free = iter(range(64))
        for color, letters in ((chess.WHITE, self.attacker), (chess.BLACK, self.defender)):
            for letter in letters:
                sq = next(free)
                while letter == "P" and chess.square_rank(sq) in (0, 7):
                    sq = next(free)
                board.set_piece_at(sq, chess.Piece(_PIECE_TYPES[letter], color))
        return board.has_insufficient_material(chess.WHITE)


def _canonical(pieces: str) -> str:
    return "".join(sorted(pieces, key=_ORDER.index))


@dataclass(frozen=True)
class PuzzleConfig:
    """How to make mate-in-k puzzles.

    mate_in: k, the attacker's number of moves to mate (1..3); no shorter mate exists.
    material: the material specs to draw from, one chosen uniformly per puzzle.
    unique_first_move: keep only puzzles where exactly one first move mates in k (as Lichess does).
    attacker: colour of the side to move: "white", "black" or "random" (per puzzle).
    max_attempts: random positions tried per puzzle before giving up (InputError).
    """

    mate_in: int = 2
    material: tuple[str, ...] = ("KQvK",)
    unique_first_move: bool = True
    attacker: Literal["white", "black", "random"] = "white"
    max_attempts: int = field(default=200_000, metadata={"hash": False})

    def __post_init__(self) -> None:
        if isinstance(self.material, str):
            object.__setattr__(self, "material", (self.material,))
        if not isinstance(self.mate_in, int) or not MIN_MATE_IN <= self.mate_in <= MAX_MATE_IN:
            raise InputError(f"puzzle mate_in={self.mate_in!r} is out of range; allowed: {MIN_MATE_IN}..{MAX_MATE_IN}")
        if not self.material:
            raise InputError("puzzle material is empty; give at least one spec such as 'KQvK'")
        for spec in self.material:
            Material.parse(spec, "puzzle material")
        if self.attacker not in ("white", "black", "random"):
            raise InputError(f"puzzle attacker={self.attacker!r} is not allowed; allowed: 'white', 'black', 'random'")
        if self.max_attempts < 1:
            raise InputError(f"puzzle max_attempts={self.max_attempts!r} must be >= 1")

    def materials(self) -> list[Material]:
        return [Material.parse(spec, "puzzle material") for spec in self.material]

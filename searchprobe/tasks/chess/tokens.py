"""Chess tokens: a position as 64 square tokens plus state, then the solution moves.

Layout (one token each, fixed positions for the prompt)::

    <bos>  sq:a1 … sq:h8  stm  castle:K castle:Q castle:k castle:q  ep  <sep>
           ply:1:from ply:1:to ply:1:promo  ply:2:from …  <eos>

* square tokens: ``.`` (empty) or colour+piece ``wP … bK``; in relative mode ``mP … mK`` (mine:
  the side to move) and ``tP … tK`` (theirs), with the board mirrored top-to-bottom when Black is
  to move, so "mine" always plays up the board (Othello-GPT's mine/theirs frame);
* ``stm``: ``stm:w`` / ``stm:b``, the real side to move (so relative mode can be undone);
* castling: ``yes`` / ``no`` per right, in the order K Q k q (relative mode: mine-K, mine-Q,
  theirs-K, theirs-Q);
* ``ep``: the en-passant square token (``a1`` … ``h8``, only when an en-passant capture is
  legal) or ``-``;
* each move: from-square, to-square, promotion (``=`` none, ``=n =b =r =q``), squares in the
  same frame as the board.

`roles[i]` says what token i is (`role_name(code)`, e.g. ``"sq:e4"``, ``"stm"``, ``"ply:2:to"``);
`solution_start` is the index of the first move token. Move counters are not tokenized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import chess

from searchprobe.errors import DataError, InputError

#: Longest solution the role table covers (plies).
MAX_PLIES = 48

SPECIALS = ["<pad>", "<bos>", "<sep>", "<eos>"]
_PIECE_LETTERS = "PNBRQK"
ABSOLUTE_PIECES = [f"{c}{p}" for c in "wb" for p in _PIECE_LETTERS]
RELATIVE_PIECES = [f"{c}{p}" for c in "mt" for p in _PIECE_LETTERS]
EMPTY = "."
SQUARES = list(chess.SQUARE_NAMES)
STM_TOKENS = ["stm:w", "stm:b"]
FLAG_TOKENS = ["no", "yes"]
NO_EP = "-"
PROMO_TOKENS = ["=", "=n", "=b", "=r", "=q"]

#: The one vocabulary shared by both modes (ids are stable: they are stored in datasets).
VOCAB: list[str] = SPECIALS + [EMPTY] + ABSOLUTE_PIECES + RELATIVE_PIECES + STM_TOKENS + FLAG_TOKENS + [NO_EP] + SQUARES + PROMO_TOKENS
TOKEN_ID: dict[str, int] = {t: i for i, t in enumerate(VOCAB)}

CASTLING_ROLES = ["castle:K", "castle:Q", "castle:k", "castle:q"]
_CASTLING_MASKS = [chess.BB_H1, chess.BB_A1, chess.BB_H8, chess.BB_A8]
ROLE_NAMES: list[str] = (
    ["pad", "bos"] + [f"sq:{s}" for s in SQUARES] + ["stm"] + CASTLING_ROLES + ["ep", "sep"]
    + [f"ply:{k}:{part}" for k in range(1, MAX_PLIES + 1) for part in ("from", "to", "promo")]
    + ["eos"]
)
ROLE_CODE: dict[str, int] = {r: i for i, r in enumerate(ROLE_NAMES)}
#: Token index of square s in every encoding (``<bos>`` is index 0).
SQUARE_OFFSET = 1
PROMPT_LENGTH = 1 + 64 + 1 + 4 + 1 + 1  # through <sep>


def role_code(name: str) -> int:
    """The integer code of a role name such as ``"sq:e4"`` or ``"ply:2:to"``."""
    try:
        return ROLE_CODE[name]
    except KeyError:
        raise InputError(f"unknown chess token role {name!r}; roles look like 'sq:e4', 'stm', 'castle:K', 'ep', 'ply:2:to'") from None


def role_name(code: int) -> str:
    """The role name of an integer code (inverse of `role_code`)."""
    if not 0 <= int(code) < len(ROLE_NAMES):
        raise InputError(f"chess token role code {code} is out of range 0..{len(ROLE_NAMES) - 1}")
    return ROLE_NAMES[int(code)]


@dataclass(frozen=True)
class Encoded:
    """One tokenized example: token ids, role codes (same length) and where the solution starts."""

    ids: list[int]
    roles: list[int]
    solution_start: int

    def tokens(self) -> list[str]:
        return [VOCAB[i] for i in self.ids]


def needs_flip(board: chess.Board, relative: bool) -> bool:
    """Relative mode mirrors the board when Black is to move."""
    return relative and board.turn == chess.BLACK


def frame_square(square: int, flip: bool) -> int:
    """A board square in the token frame (mirrored top-to-bottom when `flip`); its own inverse."""
    return chess.square_mirror(square) if flip else square


def encode(board: chess.Board | str, moves: Sequence[chess.Move | str] = (), *, relative: bool = False) -> Encoded:
    """Tokenize a position and a move sequence (played from it; checked legal by python-chess)."""
    board = chess.Board(board) if isinstance(board, str) else board.copy(stack=False)
    moves = [chess.Move.from_uci(m) if isinstance(m, str) else m for m in moves]
    if len(moves) > MAX_PLIES:
        raise InputError(f"solution of {len(moves)} plies is longer than the {MAX_PLIES} the chess roles cover")
    probe = board.copy(stack=False)
    for ply, move in enumerate(moves, 1):
        if not probe.is_legal(move):
            raise InputError(f"move {ply} {move.uci()!r} is illegal in {probe.fen()!r}")
        probe.push(move)
    flip = needs_flip(board, relative)
    view = board.mirror() if flip else board
    ids = [TOKEN_ID["<bos>"]]
    roles = [ROLE_CODE["bos"]]
    for sq in chess.SQUARES:
        piece = view.piece_at(sq)
        ids.append(TOKEN_ID[_piece_token(piece, relative)])
        roles.append(ROLE_CODE[f"sq:{SQUARES[sq]}"])
    ids.append(TOKEN_ID[STM_TOKENS[0 if board.turn == chess.WHITE else 1]])
    roles.append(ROLE_CODE["stm"])
    for role, mask in zip(CASTLING_ROLES, _CASTLING_MASKS):
        ids.append(TOKEN_ID[FLAG_TOKENS[int(bool(view.castling_rights & mask))]])
        roles.append(ROLE_CODE[role])
    ep = view.ep_square if view.has_legal_en_passant() else None
    ids.append(TOKEN_ID[NO_EP if ep is None else SQUARES[ep]])
    roles.append(ROLE_CODE["ep"])
    ids.append(TOKEN_ID["<sep>"])
    roles.append(ROLE_CODE["sep"])
    solution_start = len(ids)
    for ply, move in enumerate(moves, 1):
        promo = PROMO_TOKENS[0] if move.promotion is None else "=" + chess.piece_symbol(move.promotion)
        for part, token in (("from", SQUARES[frame_square(move.from_square, flip)]),
                            ("to", SQUARES[frame_square(move.to_square, flip)]), ("promo", promo)):
            ids.append(TOKEN_ID[token])
            roles.append(ROLE_CODE[f"ply:{ply}:{part}"])
    ids.append(TOKEN_ID["<eos>"])
    roles.append(ROLE_CODE["eos"])
    return Encoded(ids, roles, solution_start)


def _piece_token(piece: chess.Piece | None, relative: bool) -> str:
    if piece is None:
        return EMPTY
    side = ("m" if piece.color == chess.WHITE else "t") if relative else ("w" if piece.color == chess.WHITE else "b")
    return side + piece.symbol().upper()


def decode(ids: Sequence[int]) -> tuple[str, list[str]]:
    """Invert `encode`: (FEN with move counters ``0 1``, moves in UCI); the mode is read from the tokens."""
    ids = [int(i) for i in ids]
    if len(ids) < PROMPT_LENGTH + 1:
        raise DataError(f"chess token sequence of length {len(ids)} is shorter than the {PROMPT_LENGTH + 1}-token minimum")
    tokens = [_token(i, pos) for pos, i in enumerate(ids)]
    if tokens[0] != "<bos>" or tokens[PROMPT_LENGTH - 1] != "<sep>":
        raise DataError(f"chess token sequence does not start with <bos> … <sep> (got {tokens[0]!r} … {tokens[PROMPT_LENGTH - 1]!r})")
    squares = tokens[SQUARE_OFFSET:SQUARE_OFFSET + 64]
    relative = any(t in RELATIVE_PIECES for t in squares)
    stm = tokens[65]
    if stm not in STM_TOKENS:
        raise DataError(f"token 65 should be the side to move (stm:w / stm:b), got {stm!r}")
    turn = chess.WHITE if stm == "stm:w" else chess.BLACK
    view = chess.Board(None)
    for sq, token in enumerate(squares):
        if token == EMPTY:
            continue
        if token not in ABSOLUTE_PIECES + RELATIVE_PIECES:
            raise DataError(f"token {sq + SQUARE_OFFSET} ({SQUARES[sq]}) should be a piece or '.', got {token!r}")
        color = chess.WHITE if token[0] in "wm" else chess.BLACK
        view.set_piece_at(sq, chess.Piece(chess.PIECE_SYMBOLS.index(token[1].lower()), color))
    flip = relative and turn == chess.BLACK
    view.turn = chess.WHITE if flip else turn
    rights = 0
    for offset, mask in enumerate(_CASTLING_MASKS):
        if tokens[66 + offset] == "yes":
            rights |= mask
    view.castling_rights = rights
    ep = tokens[70]
    view.ep_square = None if ep == NO_EP else chess.parse_square(ep)
    board = view.mirror() if flip else view
    moves = []
    body = tokens[PROMPT_LENGTH:]
    if "<eos>" in body:
        body = body[:body.index("<eos>")]
    if len(body) % 3:
        raise DataError(f"chess solution has {len(body)} tokens; expected 3 per ply (from, to, promotion)")
    for i in range(0, len(body), 3):
        frm, to, promo = body[i:i + 3]
        if frm not in SQUARES or to not in SQUARES or promo not in PROMO_TOKENS:
            raise DataError(f"chess solution ply {i // 3 + 1} is not from/to/promotion tokens: {frm!r} {to!r} {promo!r}")
        move = chess.Move(frame_square(chess.parse_square(frm), flip), frame_square(chess.parse_square(to), flip),
                          promotion=None if promo == "=" else chess.PIECE_SYMBOLS.index(promo[1]))
        moves.append(move.uci())
    return board.fen(en_passant="legal"), moves


def _token(i: int, pos: int) -> str:
    if not 0 <= i < len(VOCAB):
        raise DataError(f"chess token id {i} at position {pos} is outside the vocabulary 0..{len(VOCAB) - 1}")
    return VOCAB[i]

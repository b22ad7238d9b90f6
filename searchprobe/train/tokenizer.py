"""A Hugging Face tokenizer over a run's vocabulary, attached to the TransformerLens bridge.

The tasks tokenize with their own code (a maze's grid, a chess board) and store token ids; this
gives the model the tokenizer TransformerLens expects, so ``run.model.to_str_tokens(ids)``,
``to_tokens(text)`` and ``to_string(ids)`` work. The text form of a sequence is its token strings
joined by single spaces (every vocabulary entry is one whitespace-free word), and ids round-trip
exactly. No token is ever prepended: the tasks' sequences carry whatever start token they use, so
the bridge's ``default_prepend_bos`` is switched off (TransformerLens would otherwise shift every
position by one).
"""

from __future__ import annotations

from typing import Sequence

from searchprobe.errors import DataError


def vocab_tokenizer(vocab: Sequence[str], pad_token: str, eos_token: str | None = None):
    """`PreTrainedTokenizerFast` with one word-level entry per vocabulary token (id = index)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    bad = [t for t in vocab if not t or any(ch.isspace() for ch in t)]
    if bad:
        raise DataError(f"vocabulary token {bad[0]!r} is empty or holds whitespace; a word-level tokenizer needs "
                        "whitespace-free tokens")
    if len(set(vocab)) != len(vocab):
        raise DataError("the vocabulary repeats a token; ids would not round-trip")
    core = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token=pad_token))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=pad_token, unk_token=pad_token,
                                   eos_token=eos_token, padding_side="right")


def attach_tokenizer(model, vocab: Sequence[str], pad_token: str, eos_token: str | None = None):
    """Give the bridge `model` a tokenizer over `vocab` and turn off BOS prepending; returns the model."""
    model.tokenizer = vocab_tokenizer(vocab, pad_token, eos_token)
    model.cfg.default_prepend_bos = False
    model.cfg.tokenizer_prepends_bos = False
    return model

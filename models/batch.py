"""Collating encoded sentences into one padded batch: windows for the encoder, indices for the heads.

The encoder sees windows (``input_ids`` [W, L]); ``token_index`` [S, T] gathers each
sentence's token states back from the flattened windows, so both heads work on whole
sentences whatever their length. Padding is dynamic (to the longest item of the batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .encoding import IGNORE, Encoded, best_window, windows


@dataclass(frozen=True)
class Pair:
    """A candidate relation: head and tail token ranges in sentence ``sentence`` of the batch."""

    sentence: int
    head: tuple[int, int]
    tail: tuple[int, int]
    head_label: int  # entity label index in the schema
    tail_label: int
    allowed: tuple[bool, ...]  # per relation label of the schema
    targets: frozenset[int] | None = None  # indices of the gold relation labels; None at inference

    def key(self) -> tuple:
        """What the relation head sees of the pair: two pairs with the same key are the same input."""
        return (self.sentence, self.head, self.tail, self.head_label, self.tail_label)


class Collator:
    """Builds batches for one tokenizer and window size."""

    def __init__(self, tokenizer, max_length: int, stride: int) -> None:
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.prefix_ids, self.suffix_ids = special_tokens(tokenizer)
        self.prefix = len(self.prefix_ids)
        self.size = max_length - self.prefix - len(self.suffix_ids)
        if self.size < 8:
            raise ValueError(f"max_length {max_length} leaves no room for text")
        self.stride = min(stride, self.size // 2)

    def __call__(self, sentences: list[Encoded]) -> dict[str, torch.Tensor]:
        """Encoder and token-head tensors of ``sentences``; candidate pairs come from :func:`pair_tensors`."""
        window_ids: list[list[int]] = []
        window_tokens: list[list[tuple[int, int] | None]] = []  # (sentence, token) at each window position
        token_index: list[list[int]] = []
        for s, enc in enumerate(sentences):
            spans = windows(len(enc.input_ids), self.size, self.stride)
            first_row = len(window_ids)
            window_ids.extend(self.prefix_ids + enc.input_ids[w.start : w.end] + self.suffix_ids for w in spans)
            window_tokens.extend([None] * self.prefix + [(s, t) for t in range(w.start, w.end)] + [None] * len(self.suffix_ids) for w in spans)
            token_index.append([(first_row + i, self.prefix + t - spans[i].start) for t in range(len(enc.input_ids)) for i in [best_window(t, spans)]])
        length = max(len(ids) for ids in window_ids)
        tokens = max(len(enc.input_ids) for enc in sentences) or 1
        batch = {
            "input_ids": _pad(window_ids, self.pad_id, length),
            "attention_mask": _pad([[1] * len(ids) for ids in window_ids], 0, length),
            "token_index": _pad([[row * length + pos for row, pos in idx] for idx in token_index], 0, tokens),
            # The flat sentence-token index (sentence × T + token) of each window position, -1 for special
            # and padding tokens: how entity markers, set per sentence token, reach the windows.
            "window_tokens": _pad([[-1 if at is None else at[0] * tokens + at[1] for at in row] for row in window_tokens], -1, length),
            "token_mask": _pad([[1] * len(enc.input_ids) for enc in sentences], 0, tokens).bool(),
            "word_index": _pad([enc.word_tokens for enc in sentences], 0),
            "word_mask": _pad([[1] * len(enc.word_tokens) for enc in sentences], 0).bool(),
        }
        if all(enc.word_labels for enc in sentences if enc.words):
            batch["word_labels"] = _pad([enc.word_labels for enc in sentences], IGNORE)
        return batch


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a text (e.g. ``<s>`` … ``</s>``), found by comparison."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise ValueError("cannot locate the text between the tokenizer's special tokens")


def pair_tensors(pairs: list[Pair], relations: int) -> dict[str, torch.Tensor]:
    """Pair tensors; ``pair_targets`` (multi-hot [P, relations]) only when every pair has gold targets."""
    tensors = {
        "pair_sentence": torch.tensor([p.sentence for p in pairs], dtype=torch.long),
        "pair_spans": torch.tensor([[*p.head, *p.tail] for p in pairs], dtype=torch.long).view(-1, 4),
        "pair_labels": torch.tensor([[p.head_label, p.tail_label] for p in pairs], dtype=torch.long).view(-1, 2),
        "pair_allowed": torch.tensor([p.allowed for p in pairs], dtype=torch.bool).view(-1, relations),
    }
    if all(p.targets is not None for p in pairs):
        tensors["pair_targets"] = torch.tensor([[k in p.targets for k in range(relations)] for p in pairs], dtype=torch.float).view(-1, relations)
    return tensors


def _pad(rows: list[list[int]], value: int, length: int | None = None) -> torch.Tensor:
    length = length or max((len(r) for r in rows), default=0) or 1
    return torch.tensor([r + [value] * (length - len(r)) for r in rows], dtype=torch.long)

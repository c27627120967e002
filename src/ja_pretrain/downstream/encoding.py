"""Encode a split once, with the fast encoder, into the model's inputs: the ids that
`tokenizer(text, pair, truncation=True, max_length=N)` gives for the model's saved tokenizer.

Every distinct text of the split goes through `FastEncoder` in one call (MeCab in C, WordPiece in
Rust); a JCommonsenseQA question shared by its five choices is encoded once. Then, per sequence,
the special tokens are added and a pair that is too long is cut as transformers'
`longest_first` truncation cuts it: first the longer side down to the shorter one's length,
then the rest split evenly, the first text taking the odd token.

The result is one flat int32 array of ids with each sequence's offset and length, and the
length of its first segment (`[CLS] a [SEP]`), from which the token type ids follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ja_pretrain.downstream.readers import Example
from ja_pretrain.downstream.tasks import REGRESSION, TaskSpec
from ja_pretrain.tokenization.encoder import FastEncoder


@dataclass
class EncodedSplit:
    """Sequences of a split, back to back, in rows: a row is what one model input holds (an
    example; its `num_choices` sequences for multiple choice; one window of a long context for
    question answering). A kind of task that needs more per split (the windows' owners, each
    token's characters) subclasses it (`kinds.qa.WindowSplit`, `kinds.tokens.TokenSplit`)."""

    ids: np.ndarray  # int32, every sequence's ids with [CLS]/[SEP]
    offsets: np.ndarray  # int64, start of each sequence in `ids`
    lengths: np.ndarray  # int64, tokens per sequence
    first_lengths: np.ndarray  # int64, tokens of [CLS] a [SEP] (token type 0)
    labels: np.ndarray  # per row: float32 (regression), int64 class / choice, or (start, end) token (QA)
    uids: list[str]  # per example
    num_choices: int
    truncated: int  # sequences that were cut to max_length

    def __len__(self) -> int:
        return len(self.uids)

    @property
    def num_rows(self) -> int:
        return len(self.lengths) // self.num_choices

    def row_lengths(self) -> np.ndarray:
        """The longest sequence of each row (what its padded row costs)."""
        return self.lengths.reshape(self.num_rows, self.num_choices).max(axis=1)

    def text_tokens(self) -> int:
        return int(self.lengths.sum())


def truncate_pairs(first: np.ndarray, second: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Tokens kept of each pair of `first` and `second` tokens within `budget` tokens, as
    transformers' single-pass `longest_first` rule keeps them (right-side truncation)."""
    remove = np.maximum(first + second - budget, 0)
    longest = np.minimum(np.abs(first - second), remove)
    rest = remove - longest
    cut_first = np.where(first > second, longest + rest // 2, rest // 2)
    return np.maximum(first - cut_first, 0), np.maximum(second - (remove - cut_first), 0)


def gather_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indices start[i] .. start[i] + counts[i] - 1 for every i, back to back."""
    total = int(counts.sum())
    firsts = np.cumsum(counts) - counts
    return np.repeat(starts - firsts, counts) + np.arange(total)


def encode_split(encoder: FastEncoder, examples: list[Example], spec: TaskSpec, max_length: int) -> EncodedSplit:
    if max_length < 4:
        raise ValueError(f"max_length {max_length} leaves no room for text")
    num_choices = len(examples[0].pairs) if examples else 1
    for example in examples:
        if len(example.pairs) != num_choices:
            raise ValueError(f"example {example.uid}: {len(example.pairs)} choices, expected {num_choices}")
    index_of = {t: i for i, t in enumerate(dict.fromkeys(
        t for e in examples for pair in e.pairs for t in pair if t is not None))}
    text_ids, _, text_lengths = encoder.encode_flat(list(index_of))
    text_starts = np.cumsum(text_lengths) - text_lengths
    first = np.array([index_of[a] for e in examples for a, _ in e.pairs], dtype=np.int64)
    second = np.array([index_of[b] if b is not None else -1 for e in examples for _, b in e.pairs], dtype=np.int64)
    paired = second >= 0
    len_a = text_lengths[first]
    len_b = np.where(paired, text_lengths[np.maximum(second, 0)], 0)
    keep_a, keep_b = truncate_pairs(len_a, len_b, max_length - 3)
    single = ~paired
    keep_a[single] = np.minimum(len_a[single], max_length - 2)
    # Each sequence is five ranges of a source array (the texts' ids, then [CLS] and [SEP]):
    # [CLS], a's kept tokens, [SEP], b's kept tokens, and [SEP] again if there is a b.
    source = np.concatenate([text_ids, np.array([encoder.special_ids["cls"], encoder.special_ids["sep"]],
                                                dtype=np.int32)])
    cls_at, sep_at = len(text_ids), len(text_ids) + 1
    n = len(first)
    starts = np.stack([np.full(n, cls_at), text_starts[first], np.full(n, sep_at),
                       text_starts[np.maximum(second, 0)], np.full(n, sep_at)], axis=1)
    counts = np.stack([np.ones(n, np.int64), keep_a, np.ones(n, np.int64), keep_b, paired.astype(np.int64)], axis=1)
    ids = source[gather_ranges(starts.reshape(-1), counts.reshape(-1))] if n else np.zeros(0, np.int32)
    lengths = counts.sum(axis=1)
    truncated = int(((keep_a < len_a) | (keep_b < len_b)).sum())
    label_type = np.float32 if spec.kind == REGRESSION else np.int64
    return EncodedSplit(
        ids=ids.astype(np.int32),
        offsets=np.cumsum(lengths) - lengths,
        lengths=lengths,
        first_lengths=keep_a + 2,
        labels=np.asarray([e.label for e in examples], dtype=label_type),
        uids=[e.uid for e in examples],
        num_choices=num_choices,
        truncated=truncated,
    )

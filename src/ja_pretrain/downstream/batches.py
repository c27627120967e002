"""Batches of an encoded split, padded only to their own longest sequence.

Training batches group examples of similar length: each epoch shuffles the examples, cuts them
into pools of 50 batches, sorts each pool by length and cuts it into batches, then shuffles the
batches (the scheme of transformers' `group_by_length`). A batch then pads little, while which
examples meet in a batch, and the order of batches, still change every epoch. Evaluation
batches are sorted by length over the whole split.

`collate` builds the padded input tensors with numpy gathers: nothing runs per token in Python.
"""

from __future__ import annotations

import numpy as np
import torch

from ja_pretrain.downstream.encoding import EncodedSplit, gather_ranges

POOL_BATCHES = 50


def training_batches(split: EncodedSplit, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's batches of row indices, grouped by length."""
    lengths = split.row_lengths()
    order = rng.permutation(split.num_rows)
    batches = []
    pool = batch_size * POOL_BATCHES
    for start in range(0, len(order), pool):
        members = order[start:start + pool]
        members = members[np.argsort(-lengths[members], kind="stable")]
        batches.extend(members[i:i + batch_size] for i in range(0, len(members), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def evaluation_batches(split: EncodedSplit, batch_size: int) -> list[np.ndarray]:
    order = np.argsort(-split.row_lengths(), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def row_sequences(split: EncodedSplit, rows: np.ndarray) -> np.ndarray:
    c = split.num_choices
    return (rows[:, None] * c + np.arange(c)[None, :]).reshape(-1)


def sequence_positions(split: EncodedSplit, sequences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flat index into the split's tokens for each padded position, real-position mask), as
    (sequences, width) arrays."""
    lengths = split.lengths[sequences]
    width = int(lengths.max())
    real = np.arange(width)[None, :] < lengths[:, None]
    flat = np.zeros((len(sequences), width), dtype=np.int64)
    flat[real] = gather_ranges(split.offsets[sequences], lengths)
    return flat, real


def collate(split: EncodedSplit, rows: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    """Model inputs for `rows`: (batch, length) tensors, or (batch, choices, length) for
    multiple choice; padded positions have id `pad_id`, attention 0 and token type 0."""
    c = split.num_choices
    sequences = row_sequences(split, rows)
    flat, real = sequence_positions(split, sequences)
    width = flat.shape[1]
    ids = np.where(real, split.ids[flat], pad_id).astype(np.int64)
    token_types = (np.arange(width)[None, :] >= split.first_lengths[sequences][:, None]) & real
    shape = (len(rows), c, width) if c > 1 else (len(rows), width)
    return {
        "input_ids": torch.from_numpy(ids.reshape(shape)),
        "attention_mask": torch.from_numpy(real.astype(np.int64).reshape(shape)),
        "token_type_ids": torch.from_numpy(token_types.astype(np.int64).reshape(shape)),
    }


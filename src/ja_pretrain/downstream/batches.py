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
    """One epoch's batches of example indices, grouped by length."""
    lengths = split.example_lengths()
    order = rng.permutation(len(split))
    batches = []
    pool = batch_size * POOL_BATCHES
    for start in range(0, len(order), pool):
        members = order[start:start + pool]
        members = members[np.argsort(-lengths[members], kind="stable")]
        batches.extend(members[i:i + batch_size] for i in range(0, len(members), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def evaluation_batches(split: EncodedSplit, batch_size: int) -> list[np.ndarray]:
    order = np.argsort(-split.example_lengths(), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate(split: EncodedSplit, examples: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    """Model inputs for `examples`: (batch, length) tensors, or (batch, choices, length) for
    multiple choice; padded positions have id `pad_id`, attention 0 and token type 0."""
    c = split.num_choices
    sequences = (examples[:, None] * c + np.arange(c)[None, :]).reshape(-1)
    lengths = split.lengths[sequences]
    width = int(lengths.max())
    positions = np.arange(width)[None, :]
    real = positions < lengths[:, None]
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    ids[real] = split.ids[gather_ranges(split.offsets[sequences], lengths)]
    token_types = (positions >= split.first_lengths[sequences][:, None]) & real
    shape = (len(examples), c, width) if c > 1 else (len(examples), width)
    return {
        "input_ids": torch.from_numpy(ids.reshape(shape)),
        "attention_mask": torch.from_numpy(real.astype(np.int64).reshape(shape)),
        "token_type_ids": torch.from_numpy(token_types.astype(np.int64).reshape(shape)),
    }


def batch_labels(split: EncodedSplit, examples: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(split.labels[examples])

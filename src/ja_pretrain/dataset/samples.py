"""Reading a built dataset: `open_samples(dataset_dir, split)` and `SampleSet.batch(indices)`.

A batch is gathered with numpy fancy indexing straight from the memory maps: only the
requested samples' tokens are read, and there is no Python loop per token or per sample.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ja_pretrain.config.forms import FORMS
from ja_pretrain.dataset.packing import PACKED_COLUMNS, PAIRS_COLUMNS
from ja_pretrain.dataset.store import TokenStore
from ja_pretrain.errors import UserError
from ja_pretrain.utils.manifest import read_manifest

DATASET_STAGE = "dataset"
FULL_ROW_FORMS = ("full", "joined")
SPLITS = ("train", "valid")


def samples_file(directory: Path, split: str) -> Path:
    return Path(directory) / f"{split}.samples.npy"


class SampleSet:
    """The samples of one split of a built dataset (see `ja_pretrain.dataset` for the layout)."""

    def __init__(self, directory: str | os.PathLike, split: str = "train"):
        self.dir = Path(directory)
        manifest = read_manifest(self.dir)
        if manifest is None or manifest.get("stage") != DATASET_STAGE:
            raise UserError(f"{self.dir}: not a finished dataset (no dataset manifest.json); run `ja-pretrain build-dataset`")
        if split not in manifest.get("splits", {}):
            have = ", ".join(manifest.get("splits", {})) or "none"
            raise UserError(f"{self.dir}: no {split!r} split (this dataset has: {have})")
        self.manifest = manifest
        options = manifest["options"]
        self.split = split
        self.sequence_length = int(options["sequence_length"])
        self.form = options["form"]
        self.vocab_size = int(manifest["tokenizer"]["vocab_size"])
        self.special_ids = dict(manifest["tokenizer"]["special_ids"])
        self.store = TokenStore(self.dir, split)
        self.samples = np.load(samples_file(self.dir, split), mmap_mode="r")
        if self.form not in FORMS:
            raise UserError(f"{self.dir}: form {self.form!r} is not one this version reads ({', '.join(FORMS)}); "
                            "rebuild it with `ja-pretrain build-dataset`")
        columns = PAIRS_COLUMNS if self.form == "pairs" else PACKED_COLUMNS
        if self.samples.ndim != 2 or self.samples.shape[1] != columns:
            raise UserError(f"{samples_file(self.dir, split)}: wrong shape {self.samples.shape}; rebuild the dataset")
        if self.form in FULL_ROW_FORMS:  # where each document starts, to find them inside a row
            self.document_offsets = self.store.document_offsets()

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (f"SampleSet({str(self.dir)!r}, split={self.split!r}, form={self.form!r}, samples={len(self)}, "
                f"L={self.sequence_length})")

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Samples `indices` as padded arrays of length `sequence_length`:
        input_ids, attention_mask, token_type_ids (int64), special_tokens_mask, word_start (bool),
        next_sentence_label (int64, pairs form only), and for the full form document_ids (0 at
        padding, else 1, 2, ... per document piece of the row) and position_ids (int64)."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 1:
            raise ValueError("indices must be one-dimensional")
        if len(indices) and (indices.min() < -len(self) or indices.max() >= len(self)):
            raise IndexError(f"sample index out of range for {len(self)} samples")
        rows = np.asarray(self.samples[indices])
        if self.form in FULL_ROW_FORMS:
            return self._assemble_full_rows(rows, joined=self.form == "joined")
        if self.form == "packed":
            segments = [(rows[:, 0], rows[:, 1])]
        else:
            segments = [(rows[:, 0], rows[:, 1]), (rows[:, 2], rows[:, 3])]
        out = self._assemble(segments)
        if self.form == "pairs":
            out["next_sentence_label"] = rows[:, 4].astype(np.int64)
        return out

    def _assemble(self, segments) -> dict[str, np.ndarray]:
        """[CLS] seg0 [SEP] (seg1 [SEP]) [PAD]..., each segment a token range per row."""
        batch = len(segments[0][0])
        length = self.sequence_length
        pos = np.broadcast_to(np.arange(length, dtype=np.int64), (batch, length))
        source = np.zeros((batch, length), dtype=np.int64)  # token position in the store
        content = np.zeros((batch, length), dtype=bool)
        first = np.zeros((batch, length), dtype=bool)  # first token of a segment
        type_ids = np.zeros((batch, length), dtype=np.int64)
        input_ids = np.full((batch, length), self.special_ids["pad"], dtype=np.int64)
        input_ids[:, 0] = self.special_ids["cls"]
        begin = np.ones(batch, dtype=np.int64)  # where the current segment starts in the row
        for number, (start, end) in enumerate(segments):
            n = end - start
            inside = (pos >= begin[:, None]) & (pos < (begin + n)[:, None])
            source = np.where(inside, start[:, None] + pos - begin[:, None], source)
            content |= inside
            first |= inside & (pos == begin[:, None])
            sep = begin + n
            input_ids[np.arange(batch), sep] = self.special_ids["sep"]
            if number:
                type_ids[(pos >= begin[:, None]) & (pos <= sep[:, None])] = 1
            begin = sep + 1
        input_ids = np.where(content, self.store.tokens[np.where(content, source, 0)], input_ids).astype(np.int64)
        word_start = np.where(content, self.store.word_starts(np.where(content, source, 0)) | first, True)
        attention = (pos < begin[:, None]).astype(np.int64)
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "token_type_ids": type_ids,
            "special_tokens_mask": ~content,
            "word_start": word_start,
        }

    def _assemble_full_rows(self, rows: np.ndarray, joined: bool) -> dict[str, np.ndarray]:
        """Rows of several documents: each text token moves right by the specials before it
        (per piece: [CLS] and [SEP] for full, one [SEP] after a row's [CLS] for joined)."""
        batch, length = len(rows), self.sequence_length
        start, count = rows[:, 0], rows[:, 1] - rows[:, 0]
        t = np.broadcast_to(np.arange(length, dtype=np.int64), (batch, length))
        text = t < count[:, None]  # t: a text token's index within its row
        source = np.where(text, start[:, None] + t, start[:, None])
        document = np.searchsorted(self.document_offsets, source, side="right") - 1
        piece = np.where(text, document - document[:, :1], 0)
        per_piece = 1 if joined else 2
        where = t + per_piece * piece + 1  # output position of each text token
        before = np.concatenate([np.full((batch, 1), -1), piece[:, :-1]], axis=1)
        after = np.concatenate([piece[:, 1:], np.full((batch, 1), -1)], axis=1)
        first = text & (piece != before)
        last = text & ((piece != after) | (t == count[:, None] - 1))
        row_of = np.broadcast_to(np.arange(batch)[:, None], (batch, length))

        def put(target: np.ndarray, mask: np.ndarray, shift: int, values) -> None:
            target[row_of[mask], where[mask] + shift] = values if np.isscalar(values) else values[mask]

        input_ids = np.full((batch, length), self.special_ids["pad"], dtype=np.int64)
        put(input_ids, text, 0, self.store.tokens[source].astype(np.int64))
        put(input_ids, last, 1, self.special_ids["sep"])
        if joined:
            input_ids[:, 0] = self.special_ids["cls"]
        else:
            put(input_ids, first, -1, self.special_ids["cls"])
        content = np.zeros((batch, length), dtype=bool)
        put(content, text, 0, True)
        word_start = np.ones((batch, length), dtype=bool)
        put(word_start, text, 0, self.store.word_starts(source) | first)
        used = (where * last).max(axis=1) + 2  # past the row's last [SEP]
        out = {
            "input_ids": input_ids,
            "attention_mask": (t < used[:, None]).astype(np.int64),
            "token_type_ids": np.zeros((batch, length), dtype=np.int64),
            "special_tokens_mask": ~content,
            "word_start": word_start,
        }
        if not joined:
            # Positions restart at each piece's [CLS]: a text token's is its distance from it.
            piece_first = np.maximum(self.document_offsets[document] - start[:, None], 0)
            position = t - piece_first + 1
            document_ids = np.zeros((batch, length), dtype=np.int64)
            position_ids = np.zeros((batch, length), dtype=np.int64)
            for shift, mask in ((0, text), (-1, first), (1, last)):
                put(document_ids, mask, shift, piece + 1)
                put(position_ids, mask, shift, position + shift)
            out["document_ids"], out["position_ids"] = document_ids, position_ids
        return out


def open_samples(dataset_dir: str | os.PathLike, split: str = "train") -> SampleSet:
    """The training (or "valid") samples of a dataset built by build_dataset/prepare_dataset."""
    if split not in SPLITS:
        raise UserError(f"split {split!r}: choose train or valid")
    return SampleSet(dataset_dir, split)

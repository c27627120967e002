"""The held-out evaluation set: documents -> token ids -> packed sequences -> fixed masks.

Masks are chosen by the training masker from noise drawn per sequence with
`numpy.random.default_rng([seed, sequence_index])`, so they
depend only on the text, the tokenizer and the seed: never on the model, the batch size or the
order in which batches run. Two models that share a tokenizer are therefore scored on exactly
the same masked positions.

Every chosen position is replaced by [MASK] (no 80/10/10 split): the held-out figure measures
how well the model predicts a hidden token, and keeping random/unchanged replacements out
makes it comparable between BERT (trained 80/10/10) and ELECTRA generators (trained 85/15).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
import torch

from ja_pretrain.corpus.layout import corpus_files, iter_documents
from ja_pretrain.dataset.packing import packed_samples
from ja_pretrain.errors import UserError
from ja_pretrain.tokenization.encoder import FastEncoder
from ja_pretrain.training.masking import MaskNoise, choose_positions

DEFAULT_MAX_SENTENCES = 20000
DEFAULT_SEQUENCE_LENGTH = 128


@dataclass
class HeldOutSet:
    """Packed [CLS] ... [SEP] sequences of whole sentences from one document each."""

    sequences: list[np.ndarray]
    documents: int
    sentences: int
    text_sha256: str
    source: str
    masked: list[np.ndarray] = field(default_factory=list)  # positions hidden in each sequence

    @property
    def tokens(self) -> int:
        return int(sum(len(s) - 2 for s in self.sequences))

    @property
    def masked_tokens(self) -> int:
        return int(sum(len(m) for m in self.masked))


def read_documents(corpus: str | os.PathLike, max_sentences: int | None) -> tuple[list[list[str]], str, str]:
    """Documents of `corpus` (a corpus dir's valid.txt, or any corpus-format text file), at most
    `max_sentences` sentences (whole documents first, the last one cut). Also returns the
    SHA-256 of the text used and the file it came from."""
    path = Path(corpus)
    if not path.exists():
        raise UserError(f"--corpus {path}: no such file or directory")
    files = corpus_files(path, split="valid")
    digest = hashlib.sha256()
    documents: list[list[str]] = []
    count = 0
    for document in iter_documents(files):
        if max_sentences is not None and count + len(document) > max_sentences:
            document = document[: max_sentences - count]
        if document:
            documents.append(document)
            count += len(document)
            for sentence in document:
                digest.update(sentence.encode("utf-8") + b"\n")
            digest.update(b"\n")
        if max_sentences is not None and count >= max_sentences:
            break
    if not documents:
        raise UserError(f"--corpus {files[0]}: no sentences to evaluate on")
    return documents, digest.hexdigest(), str(files[0])


def pack_documents(
    documents: list[list[list[int]]], sequence_length: int, cls_id: int, sep_id: int
) -> list[np.ndarray]:
    """[CLS] + consecutive whole sentences of one document + [SEP], at most `sequence_length`
    ids, a sentence longer than a sequence cut into pieces: the dataset's own packing
    (`dataset.packing.packed_samples`) over the held-out text."""
    sentences = [s for document in documents for s in document]
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    document_sentences = np.concatenate([[0], np.cumsum([len(d) for d in documents])]).astype(np.int64)
    tokens = np.fromiter(chain.from_iterable(sentences), dtype=np.int64, count=int(offsets[-1]))
    # empty sentences would make empty units; the packer only ever sees real text
    keep = np.concatenate([lengths > 0, [True]])
    offsets, first_kept = offsets[keep], np.cumsum(np.concatenate([[0], lengths > 0]))
    document_sentences = first_kept[document_sentences]
    samples = packed_samples(offsets, document_sentences, sequence_length)
    return [np.concatenate([[cls_id], tokens[start:end], [sep_id]]) for start, end in samples.tolist()]


def choose_masks(sequences: list[np.ndarray], probability: float, seed: int, chunk: int = 1024) -> list[np.ndarray]:
    """Positions to hide in each sequence, chosen by the training masker's rule
    (`training.masking.choose_positions`) from noise drawn per sequence with
    `default_rng([seed, index])`, so a sequence's mask does not depend on its neighbours."""
    masks: list[np.ndarray] = []
    for first in range(0, len(sequences), chunk):
        group = sequences[first : first + chunk]
        length = max(len(s) for s in group)
        noise = np.ones((3, len(group), length), dtype=np.float32)
        boundary = np.zeros(len(group), dtype=np.float32)
        special = np.ones((len(group), length), dtype=bool)
        for row, sequence in enumerate(group):
            rng = np.random.default_rng([seed, first + row])
            noise[:, row, : len(sequence)] = rng.random((3, len(sequence)), dtype=np.float32)
            boundary[row] = rng.random(dtype=np.float32)
            special[row, 1 : len(sequence) - 1] = False
        unit_score, action, random_token = (torch.from_numpy(n) for n in noise)
        chosen = choose_positions(torch.from_numpy(special), None,
                                  MaskNoise(unit_score, torch.from_numpy(boundary), action, random_token), probability)
        masks.extend(np.flatnonzero(row) for row in chosen.numpy())
    return masks


def build_heldout_set(
    tokenizer,
    corpus: str | os.PathLike,
    *,
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
    max_sentences: int | None = DEFAULT_MAX_SENTENCES,
    mask_probability: float = 0.15,
    seed: int = 0,
    tokenizer_dir: str | os.PathLike | None = None,
) -> HeldOutSet:
    """Read, encode, pack and mask the held-out text. With `tokenizer_dir` the text is encoded by
    the fast encoder (same ids as `tokenizer`, much faster); else by `tokenizer` itself."""
    if sequence_length < 8:
        raise UserError(f"--sequence-length must be at least 8, got {sequence_length}")
    if not 0 < mask_probability < 1:
        raise UserError(f"--mask-probability must be in (0, 1), got {mask_probability}")
    documents, text_hash, source = read_documents(corpus, max_sentences)
    encoded = _encode_documents(tokenizer, documents, tokenizer_dir)
    sequences = pack_documents(encoded, sequence_length, tokenizer.cls_token_id, tokenizer.sep_token_id)
    if not sequences:
        raise UserError(f"--corpus {source}: the tokenizer gives no tokens for this text")
    heldout = HeldOutSet(
        sequences=sequences,
        documents=len(documents),
        sentences=sum(len(d) for d in documents),
        text_sha256=text_hash,
        source=source,
    )
    heldout.masked = choose_masks(sequences, mask_probability, seed)
    return heldout


def _encode_documents(tokenizer, documents: list[list[str]], tokenizer_dir) -> list[list[list[int]]]:
    if tokenizer_dir is None:
        return [[tokenizer.convert_tokens_to_ids(tokenizer.tokenize(s)) for s in doc] for doc in documents]
    flat = FastEncoder.from_pretrained(tokenizer_dir).encode_sentences([s for d in documents for s in d])
    out, start = [], 0
    for document in documents:
        out.append(flat[start : start + len(document)])
        start += len(document)
    return out

"""Token store of one split: flat token ids on disk, read back through memory maps.

    SPLIT.bin   token ids back to back, uint16 (vocabulary <= 65535) or uint32
    SPLIT.wsb   one bit per token, 1 where the token begins a word (numpy.packbits order);
                whole-word masking needs it
    SPLIT.idx   header + boundaries:
                  magic b"JAPTIDX\\0", uint32 format version, uint32 token itemsize,
                  uint64 tokens, uint64 sentences, uint64 documents, padding to 64 bytes,
                  int64[sentences + 1] token offset of each sentence,
                  int64[documents + 1] index of each document's first sentence

A document's sentences are consecutive and a sentence's tokens are consecutive, so any run of
whole sentences of one document is a single token range [start, end).

Read back: `TokenStore(directory, split)`; `.tokens`, `.word_starts(positions)`,
`.sentence_offsets`, `.document_sentences` are views of the files, nothing is copied.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ja_pretrain.errors import UserError

FORMAT_VERSION = 1
MAGIC = b"JAPTIDX\0"
_HEADER = struct.Struct("<8sIIQQQ")
HEADER_SIZE = 64
DTYPES = {2: np.uint16, 4: np.uint32}


def token_dtype(vocab_size: int, force: str | None = None) -> type:
    """uint16 when every id fits, else uint32; forcing uint16 on a larger vocabulary is an error."""
    if force not in (None, "uint16", "uint32"):
        raise UserError(f"--dtype {force!r}: choose uint16 or uint32")
    if force == "uint16" and vocab_size > 65535:
        raise UserError(
            f"--dtype uint16 cannot hold a vocabulary of {vocab_size} ids (max 65535); drop --dtype or use uint32"
        )
    if force:
        return np.dtype(force).type
    return np.uint16 if vocab_size <= 65535 else np.uint32


class BitWriter:
    """Appends booleans to a file as packed bits, whatever the length of each append."""

    def __init__(self, f):
        self._f = f
        self._pending = np.zeros(0, dtype=bool)

    def append(self, bits: np.ndarray) -> None:
        bits = np.concatenate([self._pending, bits.astype(bool, copy=False)])
        whole = len(bits) - len(bits) % 8
        self._f.write(np.packbits(bits[:whole]).tobytes())
        self._pending = bits[whole:]

    def close(self) -> None:
        if len(self._pending):
            self._f.write(np.packbits(self._pending).tobytes())
        self._pending = np.zeros(0, dtype=bool)


class StoreWriter:
    """Streams encoded documents to SPLIT.bin/.wsb/.idx in `directory` (a temporary build dir).

    Memory stays flat: boundaries go to scratch files and are copied behind the header at close.
    """

    def __init__(self, directory: str | os.PathLike, split: str, dtype: type):
        self.dir = Path(directory)
        self.split = split
        self.dtype = np.dtype(dtype)
        self._bin = open(self.dir / f"{split}.bin", "wb")
        self._wsb_file = open(self.dir / f"{split}.wsb", "wb")
        self._bits = BitWriter(self._wsb_file)
        self._sent = open(self.dir / f".{split}.sent.tmp", "wb")
        self._docs = open(self.dir / f".{split}.docs.tmp", "wb")
        self.n_tokens = 0
        self.n_sentences = 0
        self.n_documents = 0
        self._sent.write(np.zeros(1, np.int64).tobytes())
        self._docs.write(np.zeros(1, np.int64).tobytes())
        self._max_id = int(np.iinfo(self.dtype).max)

    def add(self, ids: np.ndarray, word_starts: np.ndarray, sentence_lengths: np.ndarray, doc_sizes: np.ndarray) -> None:
        """Append documents: flat ids and word-start flags, tokens per sentence, sentences per document."""
        if len(ids) and int(ids.max()) > self._max_id:
            raise UserError(f"token id {int(ids.max())} does not fit {self.dtype.name}; use --dtype uint32")
        self._bin.write(ids.astype(self.dtype, copy=False).tobytes())
        self._bits.append(word_starts)
        self._sent.write((self.n_tokens + np.cumsum(sentence_lengths, dtype=np.int64)).tobytes())
        self._docs.write((self.n_sentences + np.cumsum(doc_sizes, dtype=np.int64)).tobytes())
        self.n_tokens += int(np.sum(sentence_lengths, dtype=np.int64))
        self.n_sentences += len(sentence_lengths)
        self.n_documents += len(doc_sizes)

    def close(self) -> dict:
        self._bits.close()
        for f in (self._bin, self._wsb_file, self._sent, self._docs):
            f.close()
        header = _HEADER.pack(MAGIC, FORMAT_VERSION, self.dtype.itemsize, self.n_tokens, self.n_sentences, self.n_documents)
        with open(self.dir / f"{self.split}.idx", "wb") as out:
            out.write(header.ljust(HEADER_SIZE, b"\0"))
            for scratch in (f".{self.split}.sent.tmp", f".{self.split}.docs.tmp"):
                with open(self.dir / scratch, "rb") as f:
                    while block := f.read(1 << 22):
                        out.write(block)
                (self.dir / scratch).unlink()
        return {"tokens": self.n_tokens, "sentences": self.n_sentences, "documents": self.n_documents}


class TokenStore:
    """Read-only memory-mapped view of one split written by StoreWriter."""

    def __init__(self, directory: str | os.PathLike, split: str):
        self.dir = Path(directory)
        self.split = split
        idx_path = self.dir / f"{split}.idx"
        if not idx_path.is_file():
            raise UserError(f"{self.dir}: no {split} split ({idx_path.name} missing)")
        with open(idx_path, "rb") as f:
            head = f.read(HEADER_SIZE)
        if len(head) < HEADER_SIZE or head[:8] != MAGIC:
            raise UserError(f"{idx_path}: not a ja-pretrain token index; rebuild the dataset")
        _, version, itemsize, n_tokens, n_sent, n_docs = _HEADER.unpack(head[: _HEADER.size])
        if version != FORMAT_VERSION:
            raise UserError(f"{idx_path}: format version {version}, this ja-pretrain reads {FORMAT_VERSION}; rebuild the dataset")
        if itemsize not in DTYPES:
            raise UserError(f"{idx_path}: unknown token size {itemsize}")
        self.dtype = DTYPES[itemsize]
        self.n_tokens, self.n_sentences, self.n_documents = n_tokens, n_sent, n_docs
        self.sentence_offsets = np.memmap(idx_path, np.int64, "r", offset=HEADER_SIZE, shape=(n_sent + 1,))
        self.document_sentences = np.memmap(
            idx_path, np.int64, "r", offset=HEADER_SIZE + 8 * (n_sent + 1), shape=(n_docs + 1,)
        )
        bin_path = self.dir / f"{split}.bin"
        expected = n_tokens * itemsize
        if not bin_path.is_file() or bin_path.stat().st_size != expected:
            raise UserError(f"{bin_path}: missing or truncated (expected {expected} bytes); rebuild the dataset")
        # np.memmap refuses empty files; an empty split has no tokens to map.
        self.tokens = np.memmap(bin_path, self.dtype, "r") if n_tokens else np.zeros(0, self.dtype)
        wsb_path = self.dir / f"{split}.wsb"
        self._bits = np.memmap(wsb_path, np.uint8, "r") if n_tokens else np.zeros(0, np.uint8)

    def read_documents(self, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(first-sentence index of documents first..stop inclusive, token offsets of their
        sentences and the end) read into private memory: pages of the index file are not kept
        mapped, so walking a large index in pieces keeps the resident size flat."""
        idx_path = self.dir / f"{self.split}.idx"
        docs = np.fromfile(idx_path, np.int64, count=stop - first + 1,
                           offset=HEADER_SIZE + 8 * (self.n_sentences + 1) + 8 * first)
        offsets = np.fromfile(idx_path, np.int64, count=int(docs[-1] - docs[0]) + 1,
                              offset=HEADER_SIZE + 8 * int(docs[0]))
        return docs, offsets

    def document_chunks(self, max_sentences: int):
        """(first, stop) document ranges of about max_sentences sentences (a longer document alone)."""
        block = 1 << 16
        first = 0
        while first < self.n_documents:
            stop_block = min(first + block, self.n_documents)
            docs = np.fromfile(self.dir / f"{self.split}.idx", np.int64, count=stop_block - first + 1,
                               offset=HEADER_SIZE + 8 * (self.n_sentences + 1) + 8 * first)
            cut = int(np.searchsorted(docs, docs[0] + max_sentences, side="right")) - 1
            stop = first + max(1, min(cut, stop_block - first))
            yield first, stop
            first = stop

    def word_starts(self, positions: np.ndarray) -> np.ndarray:
        """Word-start flags (bool) at token positions (any shape)."""
        byte = self._bits[positions >> 3]
        return ((byte >> (7 - (positions & 7)).astype(np.uint8)) & 1).astype(bool)

    def document_offsets(self) -> np.ndarray:
        """Token offset of each document's start, and the end (in memory: one int64 a document)."""
        return np.asarray(self.sentence_offsets[np.asarray(self.document_sentences)])

    def sentence_lengths(self) -> np.ndarray:
        return np.diff(self.sentence_offsets)

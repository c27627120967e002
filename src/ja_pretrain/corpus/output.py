"""Writing the corpus directory: train shards, valid.txt, and the train/valid decision.

The split is decided per document from a hash of (seed, document index), where the index is
the document's position among all documents read from the inputs. That needs no look-ahead
(it streams), is the same for any number of workers or machines, and does not move articles
between train and valid when filter options change.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from ja_pretrain.corpus.layout import VALID_NAME, train_shard_name
from ja_pretrain.errors import UserError


def valid_draw(seed: int, index: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, document index)."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class CorpusWriter:
    """Sends whole documents to train shards or valid.txt; a document never spans two files.

    Valid takes the documents whose draw is below `valid_ratio`. If the run ends with an empty
    valid set although one was asked for, the last train document moves there (it is held back
    one step for this), so later stages always find held-out text.
    """

    def __init__(self, directory: Path, *, shard_bytes: int, valid_ratio: float, seed: int):
        self.directory = Path(directory)
        self.shard_bytes = shard_bytes
        self.valid_ratio = valid_ratio
        self.seed = seed
        self.counts = {f"{split}_{what}": 0 for split in ("train", "valid") for what in ("documents", "sentences", "characters")}
        self.counts["train_shards"] = 0
        self._shard: BinaryIO | None = None
        self._shard_size = 0
        self._valid: BinaryIO | None = None
        self._held: list[str] | None = None

    def add(self, index: int, sentences: list[str]) -> None:
        if self._wants_valid(index):
            self._write("valid", sentences)
            return
        if self._held is not None:
            self._write("train", self._held)
        self._held = sentences

    def close(self) -> dict[str, int]:
        if self._held is not None:
            if self.valid_ratio > 0 and self.counts["valid_documents"] == 0 and self.counts["train_documents"] > 0:
                self._write("valid", self._held)
            else:
                self._write("train", self._held)
            self._held = None
        for f in (self._shard, self._valid):
            if f is not None:
                f.flush()
                os.fsync(f.fileno())
                f.close()
        self._shard = self._valid = None
        if self._valid is None and not (self.directory / VALID_NAME).exists():
            (self.directory / VALID_NAME).touch()
        if self.counts["train_documents"] == 0 and self.counts["valid_documents"] > 0:
            raise UserError(
                f"every document ({self.counts['valid_documents']}) went to valid.txt; "
                "lower --valid-ratio or --valid-sentences"
            )
        return dict(self.counts)

    def _wants_valid(self, index: int) -> bool:
        return self.valid_ratio > 0 and valid_draw(self.seed, index) < self.valid_ratio

    def _write(self, split: str, sentences: list[str]) -> None:
        data = ("\n".join(sentences) + "\n").encode("utf-8")
        if split == "valid":
            if self._valid is None:
                self._valid = open(self.directory / VALID_NAME, "wb")
            f = self._valid
            first = self.counts["valid_documents"] == 0
        else:
            if self._shard is None:
                self._shard = open(self.directory / train_shard_name(self.counts["train_shards"]), "wb")
                self.counts["train_shards"] += 1
                self._shard_size = 0
            f = self._shard
            first = self._shard_size == 0
        if not first:
            data = b"\n" + data  # the blank line between documents
        f.write(data)
        self.counts[f"{split}_documents"] += 1
        self.counts[f"{split}_sentences"] += len(sentences)
        self.counts[f"{split}_characters"] += sum(map(len, sentences))
        if split == "train":
            self._shard_size += len(data)
            if self._shard_size >= self.shard_bytes:
                f.close()
                self._shard = None

"""Writing the corpus directory: train shards, valid.txt, the train/valid decision, and
`write_corpus`, which de-duplicates cleaned documents into one (used by a whole build and by
the merge of parts).

The split is decided per document from a hash of (seed, document index), where the index is
the document's position among all documents read from the inputs. That needs no look-ahead
(it streams), is the same for any number of workers or machines, and does not move articles
between train and valid when filter options change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from ja_pretrain.corpus.dedup import SentenceDeduplicator
from ja_pretrain.corpus.layout import VALID_NAME, train_shard_name
from ja_pretrain.corpus.layout import iter_documents as iter_corpus_documents
from ja_pretrain.corpus.neardup import NearDuplicateIndex
from ja_pretrain.corpus.process import DIGEST_SIZE, DROP_REASONS, sentence_digest
from ja_pretrain.corpus.samples import RemovedSamples
from ja_pretrain.errors import UserError

STAGE = "corpus"
# Removal reasons without samples in OUT/removed/: nothing to show, or nothing was wrong with them.
PAST_LIMIT = "past_max_sentences"
UNSAMPLED = ("no_sentence_left", "bad_input", PAST_LIMIT)


class Cleaned(NamedTuple):
    """A cleaned document on its way to the writer."""

    index: int  # among all documents read
    sentences: list[str]  # kept by the sentence filters
    filtered: tuple[int, ...]  # dropped sentences per DROP_REASONS
    digests: bytes | None  # the sentences' digests, or None to compute them here
    removed: str | None = None  # why the whole document was removed in a worker
    detail: str = ""
    text: str | None = None  # the removed document's lines (for the samples)
    bands: bytes | None = None  # LSH band keys, when near-duplicates are removed


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


def write_corpus(cleaned: Iterable[Cleaned], directory: Path, options: dict[str, Any]) -> dict[str, Any]:
    """De-duplicate, split and write; the order of `cleaned` decides which copy of a duplicate stays.

    With --valid-ratio alone, document i goes to valid when draw(seed, i) < ratio, in one pass.
    With --valid-sentences N, the number of sentences is not known until the end, so everything
    is first written as train; then a second pass over that text (reading, not cleaning again)
    moves document k to valid when draw(seed, k) < N / total (at most --valid-ratio, if given):
    about N sentences, drawn evenly from the whole corpus. Each first-pass shard is deleted as
    soon as it is read, so the extra disk space is one shard.
    """
    two_pass = options["valid_sentences"] is not None
    first = directory / ".all" if two_pass else directory
    first.mkdir(exist_ok=True)
    writer = CorpusWriter(
        first,
        shard_bytes=int(options["shard_size_mb"] * (1 << 20)),
        valid_ratio=0.0 if two_pass else options["valid_ratio"],
        seed=options["seed"],
    )
    counts = _deduplicate(cleaned, writer, options, directory)
    if two_pass:
        counts.update(_split_off_valid(first, directory, options, counts["train_sentences"]))
        shutil.rmtree(first)
    return counts


def _split_off_valid(first: Path, directory: Path, options: dict[str, Any], total: int) -> dict[str, Any]:
    ratio = options["valid_sentences"] / max(total, 1)
    if options["valid_ratio"] is not None:
        ratio = min(ratio, options["valid_ratio"])
    writer = CorpusWriter(
        directory, shard_bytes=int(options["shard_size_mb"] * (1 << 20)), valid_ratio=ratio, seed=options["seed"]
    )
    for k, document in enumerate(_consume_shards(first)):
        writer.add(k, document)
    counts = writer.close()
    counts["valid_ratio_used"] = ratio
    return counts


def _consume_shards(directory: Path) -> Iterator[list[str]]:
    for shard in sorted(directory.glob("train-*.txt")):
        yield from iter_corpus_documents([shard])
        shard.unlink()


def _deduplicate(cleaned: Iterable[Cleaned], writer: CorpusWriter, options: dict[str, Any],
                 directory: Path) -> dict[str, Any]:
    """Whole documents first (removed by a quality filter or as a near duplicate of an earlier
    one), then the sentences of the documents that stay (exact duplicates dropped)."""
    dedup = SentenceDeduplicator(options["dedup_memory_mb"])
    near = NearDuplicateIndex(options["near_dedup_memory_mb"]) if options.get("near_dedup") else None
    samples = RemovedSamples(options["seed"])
    dropped = dict.fromkeys((*DROP_REASONS, "duplicate", "empty_documents"), 0)
    removed: dict[str, int] = {}
    limit = options["max_sentences"]
    written = taken = 0
    for doc in cleaned:
        taken += 1
        for reason, count in zip(DROP_REASONS, doc.filtered, strict=True):
            dropped[reason] += count
        if doc.removed is None and near is not None and doc.bands and near.is_near_duplicate(doc.bands):
            doc = doc._replace(removed="near_duplicate", text="\n".join(doc.sentences))
        if doc.removed is not None:
            removed[doc.removed] = removed.get(doc.removed, 0) + 1
            if doc.text is not None:
                samples.offer(doc.removed, doc.index, doc.detail, doc.text)
            continue
        digests = doc.digests if doc.digests is not None else b"".join(map(sentence_digest, doc.sentences))
        kept = [s for k, s in enumerate(doc.sentences) if dedup.add(digests[k * DIGEST_SIZE : (k + 1) * DIGEST_SIZE])]
        dropped["duplicate"] += len(doc.sentences) - len(kept)
        if not kept:
            dropped["empty_documents"] += 1
            removed["no_sentence_left"] = removed.get("no_sentence_left", 0) + 1
            continue
        writer.add(doc.index, kept)
        written += len(kept)
        if limit is not None and written >= limit:
            break  # --max-sentences: stop reading; the document in progress was kept whole
    counts = writer.close()
    samples.write(directory)
    counts["dropped"] = dropped
    counts["documents_removed"] = dict(sorted(removed.items()))
    counts["documents_taken"] = taken
    counts["dedup_capacity"] = dedup.capacity
    counts["dedup_evictions"] = dedup.evictions
    if near is not None:
        counts["near_dedup_capacity"] = near.capacity
        counts["near_dedup_evictions"] = near.evictions
    return counts


def count_past_limit(counts: dict[str, Any], documents_read: int) -> None:
    """Count, as removed past --max-sentences, the documents that were read (the reader and the
    workers run a few batches ahead of the writer) but not taken once the limit was reached, so
    that every document read is written or counted by reason."""
    left = documents_read - counts.pop("documents_taken")
    if left > 0:
        counts["documents_removed"] = dict(sorted({**counts["documents_removed"], PAST_LIMIT: left}.items()))

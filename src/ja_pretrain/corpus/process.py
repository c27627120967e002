"""The per-document work that runs in worker processes: markup -> lines -> normalised
sentences -> filters (length, unfinished) -> digests for de-duplication.

It is a pure function of the document and the options, so any number of workers, in any
process, gives the same result; de-duplication, which depends on order, happens afterwards in
the single writing process.
"""

from __future__ import annotations

import hashlib
import signal
from dataclasses import dataclass

from ja_pretrain.corpus.normalize import normalize_line
from ja_pretrain.corpus.readers import RawDocument
from ja_pretrain.corpus.sentences import DEFAULT_SPLIT_LIMIT, split_sentences
from ja_pretrain.corpus.wikitext import wikitext_to_text
from ja_pretrain.utils.processes import die_with_parent

DIGEST_SIZE = 8
COMMAS = "、,"


@dataclass(frozen=True)
class CleanOptions:
    min_chars: int = 10
    max_chars: int = 1000
    split_limit: int = DEFAULT_SPLIT_LIMIT


# Why a sentence was filtered out, in the order of ProcessedDocument.dropped.
DROP_REASONS = ("too_short", "too_long", "unfinished")


@dataclass
class ProcessedDocument:
    sentences: list[str]
    digests: bytes  # DIGEST_SIZE bytes per sentence, in order
    dropped: tuple[int, int, int]  # counts per DROP_REASONS


def sentence_digest(sentence: str) -> bytes:
    return hashlib.blake2b(sentence.encode("utf-8"), digest_size=DIGEST_SIZE).digest()


def process_document(raw: RawDocument, options: CleanOptions) -> ProcessedDocument:
    kind, text = raw[0], raw[1]
    if kind == "wikitext":
        text = wikitext_to_text(text, *raw[2:])
    kept: list[str] = []
    too_short = too_long = unfinished = 0
    for line in text.split("\n"):
        line = normalize_line(line)
        if not line:
            continue
        for sentence in split_sentences(line, options.split_limit):
            if len(sentence) < options.min_chars:
                too_short += 1
            elif len(sentence) > options.max_chars:
                too_long += 1
            elif sentence[-1] in COMMAS or sentence[0] in COMMAS:
                # A line that ends or starts with a comma is part of a sentence, cut off by a line
                # break (display formulas and lists in Wikipedia, wrapped lines elsewhere).
                unfinished += 1
            else:
                kept.append(sentence)
    return ProcessedDocument(kept, b"".join(map(sentence_digest, kept)), (too_short, too_long, unfinished))


_worker_options: CleanOptions | None = None


def init_worker(options: CleanOptions, parent_pid: int | None = None) -> None:
    # Ctrl-C is handled once, by the parent, which then stops the pool; its death ends the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    global _worker_options
    _worker_options = options


def process_batch(batch: list[RawDocument], options: CleanOptions | None = None) -> list[ProcessedDocument]:
    options = options or _worker_options
    assert options is not None, "process_batch needs options (or init_worker in the pool)"
    return [process_document(raw, options) for raw in batch]

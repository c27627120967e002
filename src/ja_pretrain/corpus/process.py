"""The per-document work that runs in worker processes: markup, PDF or EDINET ZIP -> lines ->
normalised lines -> quality filters (whole document) -> sentences -> filters (length,
unfinished) -> digests for de-duplication and, when near-duplicates are removed, LSH band keys.
The quality filters and the band keys measure a worker's whole batch at once.

Each document's result is a pure function of the document and the options (the batch only
shares the numpy calls), so any number of workers, in any process, gives the same result;
de-duplication, which depends on order, happens afterwards in the single writing process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from ja_pretrain.corpus.aozora import aozora_to_text
from ja_pretrain.corpus.bad_input import BadInput
from ja_pretrain.corpus.edinet import edinet_to_text
from ja_pretrain.corpus.neardup import document_bands
from ja_pretrain.corpus.normalize import normalize_line
from ja_pretrain.corpus.pdf import pdf_to_text
from ja_pretrain.corpus.quality import failed_filters
from ja_pretrain.corpus.readers import RawDocument
from ja_pretrain.corpus.sentences import DEFAULT_SPLIT_LIMIT, split_sentences
from ja_pretrain.corpus.wikitext import wikitext_to_text
from ja_pretrain.utils.processes import become_pool_worker

DIGEST_SIZE = 8
COMMAS = "、,"


@dataclass(frozen=True)
class CleanOptions:
    min_chars: int = 10
    max_chars: int = 1000
    split_limit: int = DEFAULT_SPLIT_LIMIT
    quality: tuple[tuple[str, float], ...] = ()  # (filter, threshold) pairs; see quality.py
    near_dedup_threshold: float | None = None  # compute LSH band keys for this Jaccard threshold


# Raw document kind -> its conversion to text with a paragraph per line ("text" needs none).
# raw is (kind, content, *extra): wikitext's extra is the wiki's namespace names; pdf's and
# edinet's is the input path.
CONVERTERS: dict[str, Callable[..., str]] = {
    "wikitext": lambda raw: wikitext_to_text(raw[1], *raw[2:]),
    "aozora": lambda raw: aozora_to_text(raw[1]),
    "pdf": lambda raw: pdf_to_text(raw[1]),
    "edinet": lambda raw: edinet_to_text(raw[1]),
}


# Why a sentence was filtered out, in the order of ProcessedDocument.dropped.
DROP_REASONS = ("too_short", "too_long", "unfinished")


@dataclass
class ProcessedDocument:
    sentences: list[str]
    digests: bytes  # DIGEST_SIZE bytes per sentence, in order
    dropped: tuple[int, int, int]  # counts per DROP_REASONS
    removed: str | None = None  # why the whole document goes: "quality_NAME" or "bad_input"
    detail: str = ""  # the measurement behind `removed`, or the bad input's reason
    text: str | None = None  # a removed document's lines, for the samples in OUT/removed/
    bands: bytes | None = None  # LSH band keys (neardup.py), when near-duplicates are removed


def sentence_digest(sentence: str) -> bytes:
    return hashlib.blake2b(sentence.encode("utf-8"), digest_size=DIGEST_SIZE).digest()


def document_lines(raw: RawDocument) -> list[str] | ProcessedDocument:
    """A raw document's normalised lines, or the removed document if it is a bad input."""
    text = raw[1]
    convert = CONVERTERS.get(raw[0])
    if convert is not None:
        try:
            text = convert(raw)
        except BadInput as err:
            return ProcessedDocument([], b"", (0, 0, 0), removed="bad_input", detail=f"{raw[2]}: {err}")
    return [line for line in map(normalize_line, text.split("\n")) if line]


def document_sentences(lines: list[str], options: CleanOptions) -> ProcessedDocument:
    kept: list[str] = []
    too_short = too_long = unfinished = 0
    for line in lines:
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


def process_document(raw: RawDocument, options: CleanOptions) -> ProcessedDocument:
    return process_batch([raw], options)[0]


_worker_options: CleanOptions | None = None


def init_worker(options: CleanOptions, parent_pid: int | None = None) -> None:
    become_pool_worker(parent_pid)  # (a lost SIGTERM hung corpus_bench once in 24 runs)
    global _worker_options
    _worker_options = options


def process_batch(batch: list[RawDocument], options: CleanOptions | None = None) -> list[ProcessedDocument]:
    options = options or _worker_options
    assert options is not None, "process_batch needs options (or init_worker in the pool)"
    read = [document_lines(raw) for raw in batch]
    texts = [lines for lines in read if isinstance(lines, list)]
    # The filters measure the whole batch at once (quality.py); a document that fails one goes
    # whole, before it is split into sentences.
    failed = iter(failed_filters(texts, options.quality) if options.quality else [None] * len(texts))
    done = []
    for lines in read:
        if isinstance(lines, ProcessedDocument):
            done.append(lines)
        elif (fail := next(failed)) is not None:
            done.append(ProcessedDocument([], b"", (0, 0, 0), removed=f"quality_{fail[0]}", detail=fail[1],
                                          text="\n".join(lines)))
        else:
            done.append(document_sentences(lines, options))
    if options.near_dedup_threshold is not None:  # the batch's signatures in one pass (neardup.py)
        kept = [doc for doc in done if doc.sentences]
        for doc, bands in zip(kept, document_bands(["\n".join(d.sentences) for d in kept],
                                                   options.near_dedup_threshold), strict=True):
            doc.bands = bands
    return done

"""The corpus stage: raw inputs -> clean sentence-per-line corpus directory.

Data flow (one process reads, N workers clean, one process writes):

    inputs --read--> raw documents (index, kind, text or bytes)  [this process, streaming]
           --clean-> to text (wikitext, Aozora, PDF, EDINET), quality filters, sentences,
                     length filters, LSH band keys               [worker pool, in order]
           --near--> drop documents that share a band with a kept one [this process, fixed memory]
           --dedup-> drop sentences seen before                 [this process, fixed memory]
           --split-> train-NNNNN.txt / valid.txt by hash(seed, index)

A directory given as an input stands for the files under it with a known extension (.txt,
.jsonl, .json, .xml, .pdf, .zip, each perhaps compressed), in name order.

Cleaning is a pure function of one document, so `--workers N` writes exactly the bytes that
`--workers 1` writes. The output is built in a temporary sibling directory, `manifest.json` is
written last and the directory is renamed into place: an interrupted run leaves nothing that
looks finished, and the rerun starts over.

Across machines (`--shard-index i --num-shards n`), machine i cleans the documents whose index
is i mod n and writes them, unfiltered by duplication, to a part directory (see parts.py).
`merge_parts` then reads the parts round-robin, which restores the original document order,
and runs de-duplication and the split there; so the merged corpus is byte-identical to a
single-machine run and duplicates across parts are removed as well.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ja_pretrain.corpus import encodings, parts
from ja_pretrain.corpus.bad_input import POLICIES, BadInput, stop_message
from ja_pretrain.corpus.compression import InputStream
from ja_pretrain.corpus.neardup import lsh_parameters
from ja_pretrain.corpus.output import STAGE, Cleaned, count_past_limit, write_corpus
from ja_pretrain.corpus.process import CleanOptions, init_worker, process_batch
from ja_pretrain.corpus.quality import parse_filters
from ja_pretrain.corpus.readers import (
    FORMATS,
    WEB_FORMATS,
    InputTruncated,
    RawDocument,
    ReadStats,
    iter_documents,
    sniff_format,
)
from ja_pretrain.errors import UserError
from ja_pretrain.utils.atomic import atomic_directory
from ja_pretrain.utils.manifest import check_output_dir, file_sha256, is_up_to_date, read_manifest, write_manifest
from ja_pretrain.utils.paths import require_file

log = logging.getLogger(__name__)

BATCH_CHARS = 1 << 18  # text per task sent to a worker: big enough to amortise pickling
BATCH_DOCUMENTS = 512
NEAR_DEDUP_CHOICES = ("auto", "on", "off")
# What a directory given as an input stands for: files with these extensions, perhaps compressed.
INPUT_SUFFIXES = (".txt", ".text", ".jsonl", ".json", ".xml", ".pdf", ".zip")
COMPRESSED_SUFFIXES = ("", ".gz", ".xz", ".bz2", ".zst")


def build_corpus(
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    *,
    format: str = "auto",
    text_field: str = "text",
    min_chars: int = 10,
    max_chars: int = 1000,
    valid_ratio: float | None = None,
    valid_sentences: int | None = None,
    seed: int = 42,
    shard_size_mb: float = 256,
    max_sentences: int | None = None,
    dedup_memory_mb: float = 256,
    allow_truncated: bool = False,
    encoding: str = "auto",
    on_bad_input: str = "stop",
    quality: list[str] | tuple[str, ...] | None = None,
    near_dedup: str = "auto",
    near_dedup_threshold: float = 0.7,
    near_dedup_memory_mb: float = 256,
    workers: int = 1,
    shard_index: int | None = None,
    num_shards: int | None = None,
    force: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Build a corpus directory (or, with shard_index/num_shards, one part of it).

    Returns the manifest. See `ja-pretrain corpus --help` for the options.
    """
    inputs = expand_inputs(inputs)
    out_dir = Path(out_dir)
    options = _check_options(
        inputs, format=format, text_field=text_field, min_chars=min_chars, max_chars=max_chars,
        valid_ratio=valid_ratio, valid_sentences=valid_sentences, seed=seed, shard_size_mb=shard_size_mb,
        max_sentences=max_sentences, dedup_memory_mb=dedup_memory_mb, allow_truncated=allow_truncated,
        encoding=encoding, on_bad_input=on_bad_input, quality=quality, near_dedup=near_dedup,
        near_dedup_threshold=near_dedup_threshold, near_dedup_memory_mb=near_dedup_memory_mb, workers=workers,
    )
    partial = shard_index is not None or num_shards is not None
    if partial:
        parts.check_shard_options(shard_index, num_shards)
        check_output_dir(out_dir, (parts.PART_STAGE,))
    else:
        check_output_dir(out_dir, (STAGE,))
        if not force and (done := _finished_manifest(out_dir, inputs, options)) is not None:
            log.info("%s is up to date (same inputs and options); pass --force to rebuild", out_dir)
            return done

    started = time.perf_counter()
    reader = DocumentReader(inputs, options["format"], text_field, allow_truncated, progress,
                            options["encoding"], on_bad_input)
    clean = CleanOptions(min_chars=min_chars, max_chars=max_chars, quality=tuple(map(tuple, options["quality"])),
                         near_dedup_threshold=near_dedup_threshold if options["near_dedup"] else None)
    documents = reader.documents()
    if partial:
        documents = ((i, raw) for i, raw in documents if i % num_shards == shard_index)
    with atomic_directory(out_dir) as tmp:
        try:
            cleaned = reader.screen(clean_in_order(documents, clean, workers))
            counts = parts.write_part(cleaned, tmp) if partial else write_corpus(cleaned, tmp, options)
        finally:
            reader.close()
        counts.update(reader.counts())
        if not partial:
            count_past_limit(counts, reader.documents_read)
        timings = {"seconds": round(time.perf_counter() - started, 3)}
        if partial:
            manifest = write_manifest(
                tmp, stage=parts.PART_STAGE, inputs=reader.input_records(), options=options, counts=counts,
                timings=timings, extra={"shard_index": shard_index, "num_shards": num_shards},
            )
        else:
            if counts["train_sentences"] == 0:
                raise UserError(_nothing_left_message(inputs, counts, options))
            manifest = write_manifest(
                tmp, stage=STAGE, inputs=reader.input_records(), options=options, counts=counts, timings=timings
            )
    return manifest


def _check_options(inputs: list[Path], **options: Any) -> dict[str, Any]:
    if not inputs:
        raise UserError("no INPUT given; name one or more dump or text files")
    for path in inputs:
        require_file(path)
    if options["format"] not in FORMATS:
        raise UserError(f"--format {options['format']!r}: choose one of {', '.join(FORMATS)}")
    if not 0 < options["min_chars"] <= options["max_chars"]:
        raise UserError("--min-chars must be at least 1 and at most --max-chars")
    if options["valid_ratio"] is None and options["valid_sentences"] is None:
        options["valid_ratio"] = 0.01
    if options["valid_ratio"] is not None and not 0 <= options["valid_ratio"] < 1:
        raise UserError(f"--valid-ratio {options['valid_ratio']}: must be in [0, 1)")
    if options["valid_sentences"] is not None and options["valid_sentences"] < 0:
        raise UserError("--valid-sentences must be >= 0")
    if options["valid_sentences"] == 0:
        options["valid_ratio"], options["valid_sentences"] = 0.0, None
    for name in ("shard_size_mb", "dedup_memory_mb"):
        if options[name] <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    if options["max_sentences"] is not None and options["max_sentences"] <= 0:
        raise UserError("--max-sentences must be positive")
    if options["workers"] < 1:
        raise UserError("--workers must be at least 1")
    options.pop("workers")  # does not change the output, so not part of the fingerprint
    options["split_limit"] = CleanOptions().split_limit
    try:
        options["encoding"] = "auto" if options["encoding"] == "auto" else encodings.canonical(options["encoding"])
        options["quality"] = [list(pair) for pair in parse_filters(options["quality"])]
    except ValueError as err:
        raise UserError(f"--encoding {options['encoding']}: {err}" if "encoding" in str(err) else str(err)) from None
    if options["on_bad_input"] not in POLICIES:
        raise UserError(f"--on-bad-input {options['on_bad_input']!r}: choose {' or '.join(POLICIES)}")
    if options["near_dedup"] not in NEAR_DEDUP_CHOICES:
        raise UserError(f"--near-dedup {options['near_dedup']!r}: choose one of {', '.join(NEAR_DEDUP_CHOICES)}")
    if not 0 < options["near_dedup_threshold"] < 1:
        raise UserError(f"--near-dedup-threshold {options['near_dedup_threshold']}: a Jaccard similarity in (0, 1)")
    if options["near_dedup_memory_mb"] <= 0:
        raise UserError("--near-dedup-memory-mb must be positive")
    options["near_dedup"] = _near_dedup_wanted(inputs, options)
    if options["near_dedup"]:
        options["near_dedup_bands"] = list(lsh_parameters(options["near_dedup_threshold"]))
    return options


def _near_dedup_wanted(inputs: list[Path], options: dict[str, Any]) -> bool:
    """--near-dedup auto: on when any input is read as web text (--format cc100, JSONL)."""
    if options["near_dedup"] != "auto":
        return options["near_dedup"] == "on"
    return any(sniff_format(p, options["format"], options["encoding"]) in WEB_FORMATS for p in inputs)


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """The inputs with each directory replaced by its files of known kinds, in name order."""
    files: list[Path] = []
    for given in map(Path, inputs):
        if not given.is_dir():
            files.append(given)
            continue
        found = sorted(
            p for p in given.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(given).parts)
            and any(p.name.lower().endswith(s + c) for s in INPUT_SUFFIXES for c in COMPRESSED_SUFFIXES)
        )
        if not found:
            raise UserError(f"{given}: a directory without input files ({', '.join(INPUT_SUFFIXES)}, "
                            "perhaps compressed)")
        files.extend(found)
    return files


def _finished_manifest(out_dir: Path, inputs: list[Path], options: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of an up-to-date corpus in `out_dir`, or None. The inputs are hashed only
    when the recorded paths, sizes and options already match, so a changed run costs no pass
    over a large dump."""
    manifest = read_manifest(out_dir)
    if manifest is None or manifest.get("stage") != STAGE or manifest.get("options") != options:
        return None
    recorded = manifest.get("inputs", {}).get("files", [])
    if [(r.get("path"), r.get("bytes")) for r in recorded] != [(str(p), p.stat().st_size) for p in inputs]:
        return None
    records = {"files": [{"path": str(p), "bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in inputs]}
    return manifest if is_up_to_date(out_dir, STAGE, records, options) else None


class DocumentReader:
    """Raw documents of all inputs in order, numbered; records hashes and read statistics."""

    def __init__(self, inputs: list[Path], fmt: str, text_field: str, allow_truncated: bool, progress: bool | None,
                 encoding: str = "auto", on_bad_input: str = "stop"):
        self.inputs = inputs
        self.format = fmt
        self.text_field = text_field
        self.allow_truncated = allow_truncated
        self.encoding = encoding
        self.on_bad_input = on_bad_input
        self.bad_inputs: list[dict[str, str]] = []
        self.stats = ReadStats()
        self.hashes: dict[int, str] = {}
        self.truncated: list[str] = []
        self.documents_read = 0
        total = sum(p.stat().st_size for p in inputs)
        self._bar = tqdm(total=total, unit="B", unit_scale=True, desc="corpus",
                         disable=None if progress is None else not progress)

    def documents(self) -> Iterator[tuple[int, RawDocument]]:
        done_bytes = 0
        for number, path in enumerate(self.inputs):
            with InputStream(path) as source:
                shown = 0
                try:
                    for raw in iter_documents(source, self.format, self.stats, self.text_field, self.encoding):
                        yield self.documents_read, raw
                        self.documents_read += 1
                        if self.documents_read % 256 == 0:
                            self._bar.update(source.position - shown)
                            shown = source.position
                except BadInput as err:
                    self.bad_input(str(path), str(err))
                except InputTruncated as err:
                    if not self.allow_truncated:
                        raise UserError(f"{err}. To use the complete documents before the cut, pass --allow-truncated.") from err
                    log.warning("%s; keeping the complete documents read before it", err)
                    self.truncated.append(str(path))
                self.hashes[number] = source.sha256()
                done_bytes += source.size
                self._bar.update(done_bytes - self._bar.n)

    def bad_input(self, path: str, reason: str) -> None:
        """Apply --on-bad-input to an input that cannot be read: stop, or leave it out and say so."""
        if self.on_bad_input == "stop":
            raise UserError(stop_message(path, reason))
        log.warning("%s: %s; left out (--on-bad-input skip)", path, reason)
        self.bad_inputs.append({"path": path, "reason": reason})

    def screen(self, cleaned: Iterator[Cleaned]) -> Iterator[Cleaned]:
        """Cleaned documents, with the bad inputs that the workers found (a PDF, a ZIP) handled as
        the reader's own: the run stops there, or the document goes on to be counted as removed."""
        for doc in cleaned:
            if doc.removed == "bad_input":
                path, _, reason = doc.detail.partition(": ")
                self.bad_input(path, reason)
            yield doc

    def close(self) -> None:
        self._bar.close()

    def input_records(self) -> dict[str, Any]:
        files = []
        for number, path in enumerate(self.inputs):
            sha = self.hashes.get(number) or file_sha256(path)  # inputs left unread by --max-sentences
            files.append({"path": str(path), "bytes": path.stat().st_size, "sha256": sha})
        return {"files": files}

    def counts(self) -> dict[str, Any]:
        return {"documents_read": self.documents_read, **asdict(self.stats), "truncated_inputs": self.truncated,
                "bad_inputs": self.bad_inputs}


def _batches(documents: Iterator[tuple[int, RawDocument]]) -> Iterator[tuple[list[int], list[RawDocument]]]:
    indices: list[int] = []
    raws: list[RawDocument] = []
    size = 0
    for index, raw in documents:
        indices.append(index)
        raws.append(raw)
        size += len(raw[1])
        if size >= BATCH_CHARS or len(raws) >= BATCH_DOCUMENTS:
            yield indices, raws
            indices, raws, size = [], [], 0
    if raws:
        yield indices, raws


def clean_in_order(documents: Iterator[tuple[int, RawDocument]], options: CleanOptions, workers: int) -> Iterator[Cleaned]:
    """Clean documents, in `workers` processes when > 1, yielding results in input order.

    At most 2 * workers + 2 batches are in flight: reading never runs far ahead of cleaning,
    so memory stays flat however large the input is.
    """
    if workers <= 1:
        for indices, raws in _batches(documents):
            for index, doc in zip(indices, process_batch(raws, options), strict=True):
                yield _cleaned(index, doc)
        return
    # fork on Linux: no re-import of __main__, so it also works from `python -` and notebooks;
    # the workers run only pure cleaning code. Elsewhere (macOS) fork is unsafe: spawn.
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with context.Pool(workers, initializer=init_worker, initargs=(options, os.getpid())) as pool:
        pending: deque = deque()
        batches = _batches(documents)
        while True:
            while len(pending) < 2 * workers + 2 and (batch := next(batches, None)) is not None:
                pending.append((batch[0], pool.apply_async(process_batch, (batch[1],))))
            if not pending:
                break
            indices, result = pending.popleft()
            for index, doc in zip(indices, result.get(), strict=True):
                yield _cleaned(index, doc)


def _cleaned(index: int, doc) -> Cleaned:
    return Cleaned(index, doc.sentences, doc.dropped, doc.digests, doc.removed, doc.detail, doc.text, doc.bands)


def _nothing_left_message(inputs: list[Path], counts: dict[str, Any], options: dict[str, Any]) -> str:
    d = counts.get("dropped", {})
    names = ", ".join(str(p) for p in inputs[:3]) + (", ..." if len(inputs) > 3 else "")
    return (
        f"{names}: no sentence left after filtering ({counts.get('documents_read', 0)} documents read; dropped "
        f"{d.get('too_short', 0)} shorter than --min-chars {options['min_chars']}, {d.get('too_long', 0)} longer "
        f"than --max-chars {options['max_chars']}, {d.get('unfinished', 0)} starting or ending with a comma, "
        f"{d.get('duplicate', 0)} duplicates). "
        "Check --format/--text-field and the length limits."
    )

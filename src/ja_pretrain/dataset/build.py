"""Build a dataset directory from a corpus and a tokenizer (see `ja_pretrain.dataset`).

Documents stream from the corpus in batches to encoder worker processes and come back, in
order, as flat id arrays that go straight to disk; memory does not grow with the corpus.
Sample indices are computed afterwards from the sentence/document index alone.

Several machines can share the encoding: machine i runs with shard_index=i, num_shards=N and
encodes documents i, i+N, i+2N...; `merge_shards` then joins the shard directories (in shard
order) into one dataset and builds its samples.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ja_pretrain.config.forms import DEFAULT_FORM
from ja_pretrain.corpus.layout import VALID_NAME, corpus_files, iter_documents
from ja_pretrain.dataset.packing import write_samples
from ja_pretrain.dataset.samples import DATASET_STAGE, FORMS, samples_file
from ja_pretrain.dataset.store import FORMAT_VERSION, StoreWriter, TokenStore, token_dtype
from ja_pretrain.errors import UserError
from ja_pretrain.tokenization.encoder import FastEncoder, encode_in_workers
from ja_pretrain.tokenization.files import tokenizer_fingerprint
from ja_pretrain.utils.atomic import atomic_directory
from ja_pretrain.utils.manifest import check_output_dir, file_sha256, is_up_to_date, read_manifest, write_manifest

log = logging.getLogger(__name__)

SHARD_STAGE = "dataset-shard"
MIN_SEQUENCE_LENGTH = 8
BATCH_SENTENCES = 2000  # sentences per job sent to a worker


def corpus_fingerprint(corpus: str | os.PathLike) -> dict:
    """The corpus part of the cache key: its manifest's hash, or every text file's hash."""
    path = Path(corpus)
    if path.is_dir() and (path / "manifest.json").is_file():
        return {"corpus_manifest_sha256": file_sha256(path / "manifest.json")}
    files = corpus_files(path, "train") + ([path / VALID_NAME] if (path / VALID_NAME).is_file() else [])
    return {"files_sha256": {f.name: file_sha256(f) for f in files}}


def check_options(sequence_length: int, form: str, shard_index: int = 0, num_shards: int = 1) -> None:
    if sequence_length < MIN_SEQUENCE_LENGTH:
        raise UserError(f"--sequence_length {sequence_length}: must be at least {MIN_SEQUENCE_LENGTH}")
    if form not in FORMS:
        raise UserError(f"--form {form!r}: choose one of {', '.join(FORMS)}")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise UserError(f"--shard-index {shard_index} --num-shards {num_shards}: need 0 <= shard-index < num-shards")


def build_dataset(
    corpus_dir: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    sequence_length: int,
    form: str = DEFAULT_FORM,
    workers: int = 1,
    seed: int = 0,
    dtype: str | None = None,
    shard_index: int = 0,
    num_shards: int = 1,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Encode `corpus_dir` (a corpus dir or a text file) with the tokenizer into `out_dir`.

    Skipped when out_dir's manifest already matches these inputs and options (unless force).
    With num_shards > 1 the output is one shard, to be joined by merge_shards.
    """
    out_dir = Path(out_dir)
    check_options(sequence_length, form, shard_index, num_shards)
    encoder = FastEncoder.from_pretrained(tokenizer_dir)  # bad tokenizer dir / missing dictionary fail here
    token_type = token_dtype(encoder.vocab_size, dtype)
    splits = {"train": corpus_files(corpus_dir, "train")}
    if Path(corpus_dir).is_dir() and (Path(corpus_dir) / VALID_NAME).is_file():
        splits["valid"] = corpus_files(corpus_dir, "valid")
    sharded = num_shards > 1
    stage = SHARD_STAGE if sharded else DATASET_STAGE
    inputs = {"corpus": corpus_fingerprint(corpus_dir), "tokenizer": tokenizer_fingerprint(tokenizer_dir)}
    options = {"sequence_length": sequence_length, "form": form, "seed": seed, "dtype": np.dtype(token_type).name}
    if sharded:
        options.update(shard_index=shard_index, num_shards=num_shards)
    check_output_dir(out_dir, (DATASET_STAGE, SHARD_STAGE))
    if not force and is_up_to_date(out_dir, stage, inputs, options):
        log.info("%s is up to date; skipping (use --force to rebuild)", out_dir)
        return out_dir

    timings: dict[str, float] = {}
    split_counts: dict[str, dict] = {}
    with atomic_directory(out_dir) as tmp:
        for split, files in splits.items():
            t0 = time.perf_counter()
            counts = _encode_split(files, split, tmp, tokenizer_dir, token_type, workers, shard_index, num_shards, progress)
            if counts["tokens"] == 0 and split == "train" and not sharded:
                raise UserError(f"{corpus_dir}: no text to encode (empty, or only blank lines)")
            timings[f"encode_{split}_s"] = time.perf_counter() - t0
            if not sharded:
                t0 = time.perf_counter()
                counts.update(write_split_samples(tmp, split, form, sequence_length, seed))
                timings[f"samples_{split}_s"] = time.perf_counter() - t0
            split_counts[split] = counts
        write_manifest(tmp, stage=stage, inputs=inputs, options=options, counts=_totals(split_counts),
                       timings=timings, extra=_extra(encoder, tokenizer_dir, split_counts))
    total = split_counts["train"]
    log.info("dataset: %d documents, %d sentences, %d tokens, %s samples -> %s", total["documents"],
             total["sentences"], total["tokens"], total.get("samples", "no"), out_dir)
    return out_dir


def _extra(encoder: FastEncoder, tokenizer_dir, split_counts) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "splits": split_counts,
        "tokenizer": {"path": str(Path(tokenizer_dir).resolve()), "vocab_size": encoder.vocab_size,
                      "special_ids": encoder.special_ids},
    }


def _totals(split_counts: dict) -> dict:
    return {f"{split}_{key}": value for split, counts in split_counts.items() for key, value in counts.items()}


def _document_batches(files, shard_index: int, num_shards: int):
    batch: list[list[str]] = []
    size = 0
    for number, document in enumerate(iter_documents(files)):
        if number % num_shards != shard_index:
            continue
        batch.append(document)
        size += len(document)
        if size >= BATCH_SENTENCES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def encode_documents(encoder: FastEncoder, documents: list[list[str]]):
    """Worker job: a batch of documents -> (ids, word starts, sentence lengths, document sizes,
    raw sentence count, [UNK] count). Sentences with no tokens and then-empty documents are dropped."""
    sentences = [s for doc in documents for s in doc]
    ids, starts, lengths = encoder.encode_flat(sentences)
    doc_of_sentence = np.repeat(np.arange(len(documents)), [len(d) for d in documents])
    kept = lengths > 0
    doc_sizes = np.bincount(doc_of_sentence[kept], minlength=len(documents))
    return ids, starts, lengths[kept], doc_sizes[doc_sizes > 0], len(sentences), int(np.sum(ids == encoder.special_ids["unk"]))


def _encode_split(files, split, out: Path, tokenizer_dir, token_type, workers, shard_index, num_shards, progress) -> dict:
    writer = StoreWriter(out, split, token_type)
    raw_sentences = unk = 0
    bar = tqdm(desc=f"encode {split}", unit=" sent", disable=not progress, leave=False, smoothing=0.1)
    jobs = _document_batches(files, shard_index, num_shards)
    try:
        for ids, starts, lengths, doc_sizes, n_raw, n_unk in encode_in_workers(tokenizer_dir, jobs, encode_documents, workers):
            writer.add(ids, starts, lengths, doc_sizes)
            raw_sentences += n_raw
            unk += n_unk
            bar.update(n_raw)
    finally:
        bar.close()
        counts = writer.close()
    counts["empty_sentences_dropped"] = raw_sentences - counts["sentences"]
    counts["unk_tokens"] = unk
    return counts


def write_split_samples(directory: Path, split: str, form: str, sequence_length: int, seed: int) -> dict[str, Any]:
    """Write a split's sample index; its row count and `text_fill`, the share of the rows'
    positions that hold text (the rest: [CLS], [SEP] and padding)."""
    # One stream of randomness per split, derived from the seed.
    rows = write_samples(TokenStore(directory, split), samples_file(directory, split), form, sequence_length,
                         seed=seed * 2 + (split == "valid"))
    if not rows:
        return {"samples": 0, "text_fill": 0.0, "fill": 0.0}
    samples = np.load(samples_file(directory, split), mmap_mode="r")
    text = int((samples[:, 1] - samples[:, 0]).sum())
    if form == "pairs":
        text += int((samples[:, 3] - samples[:, 2]).sum())
    positions = rows * sequence_length
    specials = _special_positions(samples, form, TokenStore(directory, split))
    return {"samples": rows, "text_fill": round(text / positions, 6), "fill": round((text + specials) / positions, 6)}


def _special_positions(samples: np.ndarray, form: str, store: TokenStore) -> int:
    """The [CLS] and [SEP] positions of the rows, as each form lays them out."""
    if form == "pairs":
        return 3 * len(samples)
    if form == "packed":
        return 2 * len(samples)
    offsets = store.document_offsets()  # full and joined: one piece per document a row touches
    pieces = int((np.searchsorted(offsets, samples[:, 1] - 1, side="right")
                  - np.searchsorted(offsets, samples[:, 0], side="right") + 1).sum())
    return pieces + len(samples) if form == "joined" else 2 * pieces


def merge_shards(shard_dirs: list[str | os.PathLike], out_dir: str | os.PathLike, *, progress: bool = True) -> Path:
    """Join the shards of one sharded build (all N of them, any order given) into a dataset."""
    manifests = []
    for d in shard_dirs:
        m = read_manifest(d)
        if m is None or m.get("stage") != SHARD_STAGE:
            raise UserError(f"{d}: not a finished dataset shard (build it with --shard-index/--num-shards)")
        manifests.append((m["options"]["shard_index"], Path(d), m))
    manifests.sort(key=lambda t: t[0])
    first = manifests[0][2]
    n = first["options"]["num_shards"]
    if [i for i, _, _ in manifests] != list(range(n)):
        raise UserError(f"need exactly shards 0..{n - 1}; got {[i for i, _, _ in manifests]}")
    for _, d, m in manifests:
        same = {k: v for k, v in m["options"].items() if k != "shard_index"}
        if m["inputs"] != first["inputs"] or same != {k: v for k, v in first["options"].items() if k != "shard_index"}:
            raise UserError(f"{d}: built from other inputs or options than {manifests[0][1]}; rebuild it")
    options = {k: v for k, v in first["options"].items() if k not in ("shard_index", "num_shards")}
    token_type = np.dtype(options["dtype"]).type
    split_counts: dict[str, dict] = {}
    t0 = time.perf_counter()
    check_output_dir(out_dir, (DATASET_STAGE,))
    with atomic_directory(out_dir) as tmp:
        for split in first["splits"]:
            writer = StoreWriter(tmp, split, token_type)
            for _, d, _manifest in tqdm(manifests, desc=f"merge {split}", disable=not progress, leave=False):
                _copy_store(TokenStore(d, split), writer)
            counts = writer.close()
            for key in ("empty_sentences_dropped", "unk_tokens"):
                counts[key] = sum(m["splits"][split][key] for _, _, m in manifests)
            counts.update(write_split_samples(tmp, split, options["form"], options["sequence_length"], options["seed"]))
            split_counts[split] = counts
        extra = {"format_version": FORMAT_VERSION, "splits": split_counts, "tokenizer": first["tokenizer"], "merged_shards": n}
        write_manifest(tmp, stage=DATASET_STAGE, inputs=first["inputs"], options=options,
                       counts=_totals(split_counts), timings={"merge_s": time.perf_counter() - t0}, extra=extra)
    return Path(out_dir)


def _copy_store(store: TokenStore, writer: StoreWriter, docs_per_step: int = 20000) -> None:
    docs = np.asarray(store.document_sentences)
    offsets = np.asarray(store.sentence_offsets)
    for d0 in range(0, store.n_documents, docs_per_step):
        d1 = min(d0 + docs_per_step, store.n_documents)
        s0, s1 = docs[d0], docs[d1]
        t0, t1 = offsets[s0], offsets[s1]
        writer.add(np.asarray(store.tokens[t0:t1]), store.word_starts(np.arange(t0, t1)),
                   np.diff(offsets[s0 : s1 + 1]), np.diff(docs[d0 : d1 + 1]))

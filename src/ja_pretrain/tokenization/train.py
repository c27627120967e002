"""Train a Japanese tokenizer: MeCab (or Sudachi) words, then WordPiece or SentencePiece; or
SentencePiece alone on the raw text (word tokenizer "none").

    train_tokenizer("run/corpus", "run/tokenizer", vocab_size=32768)
    train_tokenizer("run/corpus", "run/tokenizer-sp", word_tokenizer="none")   # no MeCab at load time

1. The input (a corpus dir's train-*.txt, or one text file) is cut into `num_files` parts at
   document boundaries (optionally a uniform sample of `max_sentences` sentences).
2. The parts are segmented into words in parallel processes, through the same code path the
   fast encoder and BertJapaneseTokenizer use at load time (NFKC, then MeCab surfaces), one
   sentence per line, words joined by single spaces. Without a segmenter, each line is only
   NFKC-normalised, as tokenizer.json normalises it at load time.
3. The subword model is learnt from those word files by Rust `tokenizers` (WordPiece) or
   `sentencepiece` (unigram/bpe), with [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 [unused0]...
   (without a segmenter: byte fallback, converted into tokenizer.json; see tokenizer_json).
4. vocab.txt/spiece.model (+ tokenizer.json) + tokenizer_config.json + special_tokens_map.json +
   manifest.json appear together, atomically.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import shutil
import tempfile
import time
import unicodedata
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import sentencepiece as spm
from tokenizers import Tokenizer
from tokenizers.models import WordPiece
from tokenizers.pre_tokenizers import WhitespaceSplit
from tokenizers.trainers import WordPieceTrainer
from tqdm import tqdm

from ja_pretrain.corpus.layout import corpus_files
from ja_pretrain.errors import UserError
from ja_pretrain.tokenization.files import (
    SPECIAL_TOKENS,
    SUBWORD_TYPES,
    VOCAB_FILE,
    unused_tokens,
    write_tokenizer_config,
)
from ja_pretrain.tokenization.tokenizer_json import TRAINER_SETTINGS, write_tokenizer_json
from ja_pretrain.tokenization.words import WORD_TOKENIZERS, WordSegmenter, WordTokenizerSpec
from ja_pretrain.utils.atomic import atomic_directory
from ja_pretrain.utils.manifest import check_output_dir, file_sha256, is_up_to_date, write_manifest
from ja_pretrain.utils.processes import become_pool_worker

log = logging.getLogger(__name__)

STAGE = "tokenizer"
SENTENCEPIECE_MODELS = ("unigram", "bpe")
# sentencepiece holds its training sentences in memory; beyond this many it samples them.
SENTENCEPIECE_MAX_SENTENCES = 10_000_000


def input_fingerprint(input_path: str | os.PathLike) -> dict:
    """What identifies the input: the corpus manifest's hash, or the text files' hashes."""
    path = Path(input_path)
    manifest = path / "manifest.json"
    if path.is_dir() and manifest.is_file():
        files = corpus_files(path, "train")
        return {"corpus_manifest_sha256": file_sha256(manifest), "files": {f.name: f.stat().st_size for f in files}}
    return {"files_sha256": {f.name: file_sha256(f) for f in corpus_files(path, "train")}}


def train_tokenizer(
    input_path: str | os.PathLike,
    model_dir: str | os.PathLike,
    *,
    intermediate_dir: str | os.PathLike | None = None,
    num_files: int = 1,
    mecab_dic_type: str = "ipadic",
    tokenizer_type: str | None = None,
    sentencepiece_model: str = "unigram",
    vocab_size: int = 32768,
    min_frequency: int = 2,
    limit_alphabet: int = 6129,
    num_unused_tokens: int = 10,
    word_tokenizer: str = "mecab",
    sudachi_mode: str = "A",
    max_sentences: int | None = None,
    model_max_length: int = 512,
    workers: int | None = None,
    seed: int = 0,
    force: bool = False,
) -> Path:
    """Train and save a tokenizer that loads with AutoTokenizer.from_pretrained(model_dir).

    tokenizer_type None: wordpiece, or sentencepiece with word_tokenizer "none"."""
    model_dir = Path(model_dir)
    tokenizer_type = _subword_type(tokenizer_type, word_tokenizer)
    _check_options(tokenizer_type, sentencepiece_model, vocab_size, min_frequency, limit_alphabet,
                   num_unused_tokens, num_files, max_sentences)
    spec = WordTokenizerSpec(kind=word_tokenizer, mecab_dic=mecab_dic_type, sudachi_mode=sudachi_mode)
    if spec.kind != "none":
        WordSegmenter(spec)  # a missing dictionary fails here, before anything is written
    files = corpus_files(input_path, "train")
    options = {
        "word_tokenizer": spec.config_entries(), "tokenizer_type": tokenizer_type, "vocab_size": vocab_size,
        "min_frequency": min_frequency, "limit_alphabet": limit_alphabet, "num_unused_tokens": num_unused_tokens,
        "max_sentences": max_sentences, "seed": seed, "model_max_length": model_max_length,
    }
    if tokenizer_type == "sentencepiece":
        options["sentencepiece_model"] = sentencepiece_model
    if spec.kind == "none":
        options["sentencepiece_settings"] = TRAINER_SETTINGS
    inputs = input_fingerprint(input_path)
    check_output_dir(model_dir, (STAGE,), "--model_dir")
    if not force and is_up_to_date(model_dir, STAGE, inputs, options):
        log.info("%s is up to date; skipping (use --force to retrain)", model_dir)
        return model_dir

    workers = workers or min(num_files, os.cpu_count() or 1)
    timings: dict[str, float] = {}
    keep_parts = intermediate_dir is not None
    if not keep_parts:
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_work_dirs(model_dir)
    work = Path(intermediate_dir) if keep_parts else Path(
        tempfile.mkdtemp(prefix=f".{model_dir.name}.tokenizer-work-", dir=model_dir.parent))
    try:
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        parts, n_sentences = split_into_parts(files, work, num_files, max_sentences, seed)
        timings["split_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        word_files, n_words, characters, inside = segment_parts(parts, spec, subwords=tokenizer_type, workers=workers)
        timings["segment_s"] = time.perf_counter() - t0
        with atomic_directory(model_dir) as out:
            t0 = time.perf_counter()
            specials = list(SPECIAL_TOKENS) + unused_tokens(num_unused_tokens)
            if tokenizer_type == "wordpiece":
                stats = _train_wordpiece(word_files, out, specials, vocab_size, min_frequency,
                                         _alphabet(characters, limit_alphabet), inside)
            else:
                raw_text = spec.kind == "none"
                stats = _train_sentencepiece(word_files, out, specials, vocab_size, sentencepiece_model,
                                             n_sentences, workers, seed, TRAINER_SETTINGS if raw_text else {})
                if raw_text:
                    write_tokenizer_json(out / VOCAB_FILE["sentencepiece"], sentencepiece_model, out, specials)
            timings["train_s"] = time.perf_counter() - t0
            write_tokenizer_config(out, spec, tokenizer_type, model_max_length)
            write_manifest(out, stage=STAGE, inputs=inputs, options=options,
                           counts={"sentences": n_sentences, **({"words": n_words} if spec.kind != "none" else {}),
                                   **stats}, timings=timings)
    finally:
        if not keep_parts:
            shutil.rmtree(work, ignore_errors=True)
    log.info("tokenizer: %d sentences -> %s (%d ids) in %.1fs", n_sentences, model_dir, stats["vocab_size"],
             sum(timings.values()))
    return model_dir


def remove_stale_work_dirs(model_dir: Path) -> None:
    """Remove the parts a killed run on this --model_dir left beside it (about twice the corpus
    size). Only one run writes a model dir at a time (the command holds its lock), so any found
    now are a dead run's."""
    for stale in model_dir.parent.glob(f".{model_dir.name}.tokenizer-work-*"):
        log.info("removing %s, left by an interrupted run", stale)
        shutil.rmtree(stale, ignore_errors=True)


def _subword_type(tokenizer_type: str | None, word_tokenizer: str) -> str:
    if word_tokenizer not in WORD_TOKENIZERS:
        raise UserError(f"--word_tokenizer {word_tokenizer!r}: choose one of {', '.join(WORD_TOKENIZERS)}")
    if word_tokenizer != "none":
        return tokenizer_type or "wordpiece"
    if tokenizer_type not in (None, "sentencepiece"):
        raise UserError(f"--tokenizer_type {tokenizer_type} needs words; with --word_tokenizer none the pieces "
                        "are SentencePiece's (drop --tokenizer_type or give sentencepiece)")
    return "sentencepiece"


def _check_options(tokenizer_type, sentencepiece_model, vocab_size, min_frequency, limit_alphabet,
                   num_unused_tokens, num_files, max_sentences) -> None:
    if tokenizer_type not in SUBWORD_TYPES:
        raise UserError(f"--tokenizer_type {tokenizer_type!r}: choose wordpiece or sentencepiece")
    if sentencepiece_model not in SENTENCEPIECE_MODELS:
        raise UserError(f"--sentencepiece_model {sentencepiece_model!r}: choose unigram or bpe")
    floor = len(SPECIAL_TOKENS) + num_unused_tokens + 1
    if vocab_size < floor:
        raise UserError(f"--vocab_size {vocab_size}: must exceed the {floor - 1} special and unused tokens")
    for name, value in (("--min_frequency", min_frequency), ("--limit_alphabet", limit_alphabet),
                        ("--num_files", num_files)):
        if value < 1:
            raise UserError(f"{name} {value}: must be at least 1")
    if num_unused_tokens < 0:
        raise UserError(f"--num_unused_tokens {num_unused_tokens}: must be 0 or more")
    if max_sentences is not None and max_sentences < 1:
        raise UserError(f"--max_sentences {max_sentences}: must be at least 1")


def _iter_lines(files):
    """(is_sentence, line) over corpus-format files; a blank line ends a document."""
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                yield bool(line), line
        yield False, ""


class _Sampler:
    """Selection sampling (Knuth's algorithm S): exactly `wanted` of `total` items, each set
    equally likely, decided one item at a time in constant memory."""

    def __init__(self, wanted: int, total: int, seed: int):
        self.wanted, self.left = wanted, total
        self._rng = np.random.default_rng(seed)
        self._draws = np.zeros(0)
        self._next = 0

    def take(self) -> bool:
        if self._next == len(self._draws):
            self._draws, self._next = self._rng.random(1 << 16), 0
        u = self._draws[self._next]
        self._next += 1
        chosen = u * self.left < self.wanted
        self.left -= 1
        self.wanted -= chosen
        return bool(chosen)


def split_into_parts(files, work: Path, num_files: int, max_sentences: int | None, seed: int):
    """Write work/part-NNNNN.txt, cut at document boundaries, about equal in sentences."""
    # Balancing parts and sampling need the sentence count first; one part needs no extra pass.
    total = sum(1 for is_sentence, _ in _iter_lines(files) if is_sentence) if num_files > 1 or max_sentences else None
    sampler = _Sampler(max_sentences, total, seed) if max_sentences and max_sentences < total else None
    kept_total = max_sentences if sampler else total
    parts = [work / f"part-{i:05d}.txt" for i in range(num_files)]
    handles = [open(p, "w", encoding="utf-8") for p in parts]
    try:
        kept = part = 0
        at_document_start = True
        for is_sentence, line in tqdm(_iter_lines(files), desc="split", unit=" lines", leave=False):
            if not is_sentence:
                if not at_document_start:
                    handles[part].write("\n")
                at_document_start = True
                continue
            if sampler and not sampler.take():
                continue
            if at_document_start:
                part = min(num_files - 1, kept * num_files // kept_total) if kept_total else 0
                at_document_start = False
            handles[part].write(line + "\n")
            kept += 1
    finally:
        for h in handles:
            h.close()
    if kept == 0:
        names = ", ".join(str(f) for f in files)
        raise UserError(f"{names}: no sentences (the input is empty or has only blank lines)")
    return parts, kept


def _segment_part(job) -> tuple[str, int, dict[str, int], list[str]]:
    """Segment one part into its words file; count every character, and note which characters
    occur inside a word (after its first), the ones that get a "##" piece."""
    spec, subwords, source, target = job
    if spec.kind == "none":
        words_of = _whole_line
    else:
        segmenter = WordSegmenter(spec)
        words_of = segmenter.wordpiece_words if subwords == "wordpiece" else segmenter.surfaces
    n_words = 0
    counts = np.zeros(0x110000, dtype=np.int64)  # per code point
    inside = np.zeros(0x110000, dtype=bool)
    pending: list[str] = []
    pending_inside: list[str] = []

    def count_pending() -> None:
        # One bincount over UTF-32 code units instead of a dict update per character.
        if not pending:
            return
        codes = np.frombuffer("".join(pending).encode("utf-32-le"), dtype=np.uint32)
        counts[: 1 + int(codes.max(initial=0))] += np.bincount(codes)
        inside[np.frombuffer("".join(pending_inside).encode("utf-32-le"), dtype=np.uint32)] = True
        pending.clear()
        pending_inside.clear()

    with open(source, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as out:
        for line in src:
            words = words_of(line.rstrip("\n"))
            if words:
                joined = " ".join(words)
                out.write(joined + "\n")
                n_words += len(words)
                pending.append(joined)
                pending_inside.append("".join(w[1:] for w in words))
                if len(pending) >= 10000:
                    count_pending()
    count_pending()
    counts[ord(" ")] = 0
    present = np.flatnonzero(counts)
    return target, n_words, {chr(c): int(counts[c]) for c in present}, [chr(c) for c in np.flatnonzero(inside)]


def _whole_line(text: str) -> list[str]:
    """Without a segmenter the NFKC line is SentencePiece's input, spaces and all."""
    text = unicodedata.normalize("NFKC", text).strip()
    return [text] if text else []


def segment_parts(parts: list[Path], spec: WordTokenizerSpec, subwords: str, workers: int):
    """One words file per part (words joined by spaces), in `workers` processes."""
    jobs = [(spec, subwords, str(p), str(p.with_suffix(".words"))) for p in parts]
    if workers <= 1:
        results = [_segment_part(j) for j in tqdm(jobs, desc="segment", unit=" parts", leave=False)]
    else:

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=become_pool_worker, initargs=(os.getpid(),)) as pool:
            results = list(tqdm(pool.map(_segment_part, jobs), total=len(jobs), desc="segment", unit=" parts", leave=False))
    characters: Counter = Counter()
    inside: set[str] = set()
    for _, _, part_characters, part_inside in results:
        characters.update(part_characters)
        inside.update(part_inside)
    return [Path(t) for t, *_ in results], sum(n for _, n, *_ in results), characters, inside


def _alphabet(characters: Counter, limit: int) -> list[str]:
    """The `limit` most frequent characters, ties broken by code point.

    The trainer would pick them itself, but breaks ties in hash order, so two runs on the same
    text could keep different characters.
    """
    ranked = sorted(characters.items(), key=lambda kv: (-kv[1], kv[0]))
    return [ch for ch, _ in ranked[:limit]]


def _continuation_pieces(alphabet: list[str], inside: set[str]) -> list[str]:
    """The "##" pieces the trainer will make, in code point order.

    The trainer numbers them as it first meets them, walking its words in hash order, and
    breaks ties between equally frequent pairs by those numbers: two runs on the same text
    merged different pairs and kept different vocabularies. Handed over up front, they are
    numbered in this order, and every tie is broken the same way each run.
    """
    kept = set(alphabet)
    return [f"##{ch}" for ch in sorted(inside) if ch in kept]


def _train_wordpiece(word_files, out: Path, specials, vocab_size, min_frequency, alphabet, inside) -> dict:
    tokenizer = Tokenizer(WordPiece(unk_token=SPECIAL_TOKENS[1], continuing_subword_prefix="##"))
    # Words are already segmented and free of whitespace as Python's str.split() knows it, a
    # superset of Rust's (Unicode White_Space), so WhitespaceSplit only separates the words and
    # drops the line end the trainer passes along with each line.
    tokenizer.pre_tokenizer = WhitespaceSplit()
    # Passed as special tokens only to fix their numbering; vocab.txt marks no special but `specials`.
    trainer = WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency,
        special_tokens=specials + _continuation_pieces(alphabet, inside),
        initial_alphabet=alphabet, limit_alphabet=len(alphabet), continuing_subword_prefix="##",
        show_progress=False,
    )
    tokenizer.train([str(f) for f in word_files], trainer)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    ids = [i for _, i in vocab]
    if ids != list(range(len(ids))) or [t for t, _ in vocab[: len(specials)]] != specials:
        raise RuntimeError("WordPiece trainer returned a vocabulary with gaps or misplaced special tokens")
    # The trainer's own ids follow its hash order; ids do not affect WordPiece's matching, so a
    # canonical order makes the same vocabulary give the same ids every time.
    tokens = specials + sorted((t for t, _ in vocab[len(specials):]),
                               key=lambda t: (t.startswith("##"), len(t.removeprefix("##")), t))
    with open(out / VOCAB_FILE["wordpiece"], "w", encoding="utf-8") as f:
        f.writelines(token + "\n" for token in tokens)
    return {
        "vocab_size": len(tokens),
        "continuation_pieces": sum(t.startswith("##") for t in tokens),
        "single_characters": sum(len(t) == 1 for t in tokens),
    }


def _train_sentencepiece(word_files, out: Path, specials, vocab_size, model_type, n_sentences, workers, seed,
                         settings: dict) -> dict:
    prefix = out / "spiece"
    spm.set_random_generator_seed(seed)
    try:
        _run_sentencepiece_trainer(spm, word_files, prefix, model_type, vocab_size, specials, n_sentences, workers,
                                   settings)
    except RuntimeError as err:
        needed = re.search(r"required_chars\. \d+ vs (\d+)", str(err))
        if needed:
            kept = "characters, byte pieces and special tokens" if settings.get("byte_fallback") else \
                "characters and special tokens"
            raise UserError(f"--vocab_size {vocab_size} is smaller than the {needed.group(1)} {kept} SentencePiece "
                            f"must keep; raise --vocab_size") from None
        raise
    (out / "spiece.vocab").unlink(missing_ok=True)
    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    pieces = [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]
    if pieces[: len(specials)] != specials:
        raise RuntimeError("sentencepiece placed the special tokens at unexpected ids")
    return {"vocab_size": len(pieces), "single_characters": sum(len(p.lstrip("\u2581")) == 1 for p in pieces),
            "byte_pieces": sum(map(sp.IsByte, range(len(pieces))))}


def _run_sentencepiece_trainer(spm, word_files, prefix, model_type, vocab_size, specials, n_sentences, workers,
                               settings):
    spm.SentencePieceTrainer.train(
        input=[str(f) for f in word_files],
        model_prefix=str(prefix),
        model_type=model_type,
        vocab_size=vocab_size,
        character_coverage=0.9995,
        pad_id=0, pad_piece=SPECIAL_TOKENS[0], unk_id=1, unk_piece=SPECIAL_TOKENS[1], bos_id=-1, eos_id=-1,
        control_symbols=specials[2:],
        # Text is already NFKC-normalised by the word segmenter, as it is at load time.
        normalization_rule_name="identity",
        input_sentence_size=min(n_sentences, SENTENCEPIECE_MAX_SENTENCES),
        shuffle_input_sentence=True,
        hard_vocab_limit=False,
        num_threads=max(1, workers),
        minloglevel=2,
        **settings,
    )

"""Shared by tests/test_training_*.py and tests/test_bert_*.py: a tiny real pipeline (corpus ->
tokenizer -> dataset) built from the bundled sample corpus, and a free port."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class TinyRun:
    corpus: Path
    tokenizer: Path
    dataset: Path  # packed, sequence length 64 (the bert-micro preset's)


def build_tiny_run(root: Path, *, form: str = "packed", sequence_length: int = 64) -> TinyRun:
    from ja_pretrain.corpus.build import build_corpus
    from ja_pretrain.dataset import build_dataset
    from ja_pretrain.resources import sample_corpus_path
    from ja_pretrain.tokenization.train import train_tokenizer

    corpus, tokenizer, dataset = root / "corpus", root / "tokenizer", root / f"dataset-{form}"
    if not (corpus / "manifest.json").is_file():
        build_corpus([sample_corpus_path()], corpus, valid_ratio=0.1, progress=False)
    if not (tokenizer / "manifest.json").is_file():
        train_tokenizer(corpus, tokenizer, vocab_size=800, min_frequency=1, limit_alphabet=400, workers=1)
    if not (dataset / "manifest.json").is_file():
        build_dataset(corpus, tokenizer, dataset, sequence_length=sequence_length, form=form, progress=False)
    return TinyRun(corpus, tokenizer, dataset)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def one_thread():
    """Tiny models on a shared 2-core machine run several times faster on one thread (OpenMP
    workers otherwise spin against each other); restored afterwards for other tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)

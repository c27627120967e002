"""The corpus directory format that every later stage reads.

    CORPUS_DIR/
      train-00000.txt, train-00001.txt, ...   shards of bounded size
      valid.txt                               held-out documents
      manifest.json                           written last; its absence means unfinished

Each text file is UTF-8, NFKC-normalised, one sentence per line, one blank line between
documents (the format both seeds train from). Documents never span two files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ja_pretrain.corpus.sniff import check_text_file
from ja_pretrain.errors import UserError

TRAIN_PATTERN = "train-*.txt"
VALID_NAME = "valid.txt"


def train_shard_name(index: int) -> str:
    return f"train-{index:05d}.txt"


def train_files(corpus_dir: str | os.PathLike) -> list[Path]:
    files = sorted(Path(corpus_dir).glob(TRAIN_PATTERN))
    if not files:
        raise UserError(f"{corpus_dir}: no {TRAIN_PATTERN} files; is this the output of `ja-pretrain corpus`?")
    return files


def corpus_files(path: str | os.PathLike, split: str = "train") -> list[Path]:
    """The text files of `split` in a corpus directory, or [path] for a plain text file."""
    p = Path(path)
    if p.is_file():
        return [check_text_file(p)]
    if not p.is_dir():
        raise UserError(f"{p}: no such file or directory")
    if split == "train":
        return [check_text_file(f) for f in train_files(p)]
    if split == "valid":
        valid = p / VALID_NAME
        if not valid.is_file():
            raise UserError(f"{p}: no {VALID_NAME}")
        return [check_text_file(valid)]
    raise ValueError(f"unknown split {split!r}")


def iter_documents(files: list[Path] | str | os.PathLike, split: str = "train") -> Iterator[list[str]]:
    """Documents (lists of sentences) from corpus-format files, in file order."""
    paths = files if isinstance(files, list) else corpus_files(files, split)
    for path in paths:
        document: list[str] = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.strip():
                    document.append(line)
                elif document:
                    yield document
                    document = []
        if document:
            yield document

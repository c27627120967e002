"""The files of a saved tokenizer, in the layout `BertJapaneseTokenizer` loads (the Tohoku
models' convention):

    vocab.txt or spiece.model     the subword vocabulary
    tokenizer_config.json         tokenizer_class, word/subword tokenizer types, mecab_kwargs
    special_tokens_map.json
    manifest.json                 ja-pretrain's record of how it was trained
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ja_pretrain.errors import UserError
from ja_pretrain.tokenization.words import WordTokenizerSpec
from ja_pretrain.utils.atomic import atomic_write_json
from ja_pretrain.utils.manifest import file_sha256

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
SPECIAL_NAMES = ("pad", "unk", "cls", "sep", "mask")
SUBWORD_TYPES = ("wordpiece", "sentencepiece")
VOCAB_FILE = {"wordpiece": "vocab.txt", "sentencepiece": "spiece.model"}
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_MAP_FILE = "special_tokens_map.json"


def unused_tokens(count: int) -> list[str]:
    return [f"[unused{i}]" for i in range(count)]


def write_tokenizer_config(directory: Path, word_spec: WordTokenizerSpec, subword_type: str, model_max_length: int) -> None:
    special_map = {f"{name}_token": token for name, token in zip(SPECIAL_NAMES, SPECIAL_TOKENS, strict=True)}
    config = {
        "tokenizer_class": "BertJapaneseTokenizer",
        "do_lower_case": False,
        "subword_tokenizer_type": subword_type,
        **word_spec.config_entries(),
        "model_max_length": model_max_length,
        **special_map,
    }
    atomic_write_json(directory / CONFIG_FILE, config)
    atomic_write_json(directory / SPECIAL_MAP_FILE, special_map)


def read_tokenizer_config(directory: str | os.PathLike) -> dict:
    """tokenizer_config.json of a tokenizer dir, checked for what the fast encoder supports."""
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"{d}: tokenizer directory not found; run `ja-pretrain train-tokenizer` first")
    path = d / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{d}: no {CONFIG_FILE}; is this a tokenizer directory from `ja-pretrain train-tokenizer`?")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    if config.get("do_lower_case"):
        raise UserError(f"{path}: do_lower_case=true is not supported by the fast encoder")
    subword = config.get("subword_tokenizer_type", "wordpiece")
    if subword not in SUBWORD_TYPES:
        raise UserError(f"{path}: subword_tokenizer_type {subword!r} is not supported; use wordpiece or sentencepiece")
    vocab = d / VOCAB_FILE[subword]
    if not vocab.is_file() or vocab.stat().st_size == 0:
        raise UserError(f"{d}: {VOCAB_FILE[subword]} is missing or empty; retrain the tokenizer or copy its vocabulary file")
    return config


def tokenizer_files(directory: str | os.PathLike) -> list[Path]:
    """The files that decide the ids (what a dataset cache key hashes)."""
    d = Path(directory)
    config = read_tokenizer_config(d)
    names = [VOCAB_FILE[config.get("subword_tokenizer_type", "wordpiece")], CONFIG_FILE]
    if (d / SPECIAL_MAP_FILE).is_file():
        names.append(SPECIAL_MAP_FILE)
    return [d / name for name in names]


def tokenizer_fingerprint(directory: str | os.PathLike) -> dict:
    """What decides a tokenizer's ids: its files' hashes and the versions of the word segmenter
    that runs them. The one fingerprint of a tokenizer (dataset cache, finetune, evaluate)."""
    spec = WordTokenizerSpec.from_config(read_tokenizer_config(directory))
    return {**{f.name: file_sha256(f) for f in tokenizer_files(directory)}, "segmenter": spec.package_versions()}


# What a BertJapaneseTokenizer directory holds (WordPiece: vocab.txt; SentencePiece: spiece.model).
TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "spiece.model",
                   "added_tokens.json", "tokenizer.json")


def copy_tokenizer(source: str | os.PathLike, out_dir: str | os.PathLike) -> list[str]:
    """Copy a tokenizer's files, and only those: `source` may be a model directory (an earlier
    final/), whose config.json and weights must not overwrite the model being exported."""
    copied = []
    for name in TOKENIZER_FILES:
        if (Path(source) / name).is_file():
            shutil.copy2(Path(source) / name, Path(out_dir) / name)
            copied.append(name)
    return copied

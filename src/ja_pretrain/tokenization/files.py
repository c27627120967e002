"""The files of a saved tokenizer. With a word segmenter, the layout `BertJapaneseTokenizer`
loads (the Tohoku models' convention):

    vocab.txt or spiece.model     the subword vocabulary
    tokenizer_config.json         tokenizer_class, word/subword tokenizer types, mecab_kwargs
    special_tokens_map.json
    manifest.json                 ja-pretrain's record of how it was trained

Without one (`--word_tokenizer none`), a fast tokenizer that needs no MeCab at load time:

    tokenizer.json                the whole pipeline (NFKC, SentencePiece pieces, [CLS]/[SEP])
    spiece.model                  the SentencePiece model it was converted from, for reference
    tokenizer_config.json         tokenizer_class PreTrainedTokenizerFast, special tokens
    special_tokens_map.json
    manifest.json
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ja_pretrain.errors import UserError
from ja_pretrain.tokenization.words import FAST_TOKENIZER_CLASSES, WordTokenizerSpec
from ja_pretrain.utils.atomic import atomic_write_json
from ja_pretrain.utils.manifest import file_sha256, fingerprint

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
SPECIAL_NAMES = ("pad", "unk", "cls", "sep", "mask")
SUBWORD_TYPES = ("wordpiece", "sentencepiece")
VOCAB_FILE = {"wordpiece": "vocab.txt", "sentencepiece": "spiece.model"}
FAST_TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_MAP_FILE = "special_tokens_map.json"


def unused_tokens(count: int) -> list[str]:
    return [f"[unused{i}]" for i in range(count)]


def write_tokenizer_config(directory: Path, word_spec: WordTokenizerSpec, subword_type: str, model_max_length: int) -> None:
    special_map = {f"{name}_token": token for name, token in zip(SPECIAL_NAMES, SPECIAL_TOKENS, strict=True)}
    if word_spec.kind == "none":
        config = {
            "tokenizer_class": FAST_TOKENIZER_CLASSES[0],
            "model_max_length": model_max_length,
            # A ModernBERT takes no token types, and transformers 5's BertJapaneseTokenizer gives
            # none unless asked: `model(**tokenizer(text))` works for every family alike.
            "model_input_names": ["input_ids", "attention_mask"],
            "clean_up_tokenization_spaces": False,
            **special_map,
        }
    else:
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


def is_fast_only(config: dict) -> bool:
    """Whether tokenizer_config.json means "everything is in tokenizer.json" (no word segmenter)."""
    return config.get("tokenizer_class") in FAST_TOKENIZER_CLASSES


def subword_type(config: dict) -> str:
    """wordpiece or sentencepiece: the subword model of a tokenizer directory's config."""
    return "sentencepiece" if is_fast_only(config) else config.get("subword_tokenizer_type", "wordpiece")


def vocabulary_file(config: dict) -> str:
    """The file that holds a tokenizer's pieces: tokenizer.json, vocab.txt or spiece.model."""
    return FAST_TOKENIZER_FILE if is_fast_only(config) else VOCAB_FILE[subword_type(config)]


def tokenizer_summary(config: dict) -> str:
    """One line on what a tokenizer_config.json describes, for a model card."""
    if is_fast_only(config):
        return "words: none (SentencePiece on the raw NFKC text, tokenizer.json; loads without MeCab)"
    dic = (config.get("mecab_kwargs") or {}).get("mecab_dic", "")
    return (f"words: {config.get('word_tokenizer_type', 'mecab')}{' (' + dic + ')' if dic else ''}; "
            f"subwords: {subword_type(config)}")


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
    if is_fast_only(config):
        _check_vocabulary_file(d, FAST_TOKENIZER_FILE)
        return config
    if config.get("do_lower_case"):
        raise UserError(f"{path}: do_lower_case=true is not supported by the fast encoder")
    subword = config.get("subword_tokenizer_type", "wordpiece")
    if subword not in SUBWORD_TYPES:
        raise UserError(f"{path}: subword_tokenizer_type {subword!r} is not supported; use wordpiece or sentencepiece")
    _check_vocabulary_file(d, VOCAB_FILE[subword])
    return config


def _check_vocabulary_file(directory: Path, name: str) -> None:
    vocab = directory / name
    if not vocab.is_file() or vocab.stat().st_size == 0:
        raise UserError(f"{directory}: {name} is missing or empty; retrain the tokenizer or copy its vocabulary file")


def tokenizer_files(directory: str | os.PathLike) -> list[Path]:
    """The files that decide the ids (what a dataset cache key hashes)."""
    d = Path(directory)
    names = [vocabulary_file(read_tokenizer_config(d)), CONFIG_FILE]
    if (d / SPECIAL_MAP_FILE).is_file():
        names.append(SPECIAL_MAP_FILE)
    return [d / name for name in names]


EXPORT_ONLY_KEYS = ("model_input_names", "model_max_length")


def tokenizer_fingerprint(directory: str | os.PathLike) -> dict:
    """What decides a tokenizer's ids: its files' hashes and the versions of the word segmenter
    that runs them. The one fingerprint of a tokenizer (dataset cache, finetune, evaluate)."""
    config = read_tokenizer_config(directory)
    spec = WordTokenizerSpec.from_config(config)
    hashes = {f.name: file_sha256(f) for f in tokenizer_files(directory) if f.name != CONFIG_FILE}
    # The config less what a model's export adds that leaves the ids alone (a ModernBERT's input
    # names), so a tokenizer and the final/ models made with it share one fingerprint.
    hashes[CONFIG_FILE] = fingerprint({k: v for k, v in config.items() if k not in EXPORT_ONLY_KEYS})
    return {**hashes, "segmenter": spec.package_versions()}


# What a tokenizer directory holds (BertJapaneseTokenizer: vocab.txt or spiece.model; without a
# word segmenter: tokenizer.json, with the spiece.model it came from).
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


def load_saved_tokenizer(directory: str | os.PathLike):
    """The transformers tokenizer saved in `directory` (a tokenizer or model dir). A
    BertJapaneseTokenizer is loaded by its class: AutoTokenizer does the same beside a BERT or
    ELECTRA config, but from transformers 5.5 on it loads a ModernBERT's tokenizer from
    tokenizer.json whatever class tokenizer_config.json names, and a MeCab tokenizer has none."""
    import transformers  # here: only the callers that load a tokenizer pay for the import

    path = Path(directory) / CONFIG_FILE
    named = json.loads(path.read_text(encoding="utf-8")).get("tokenizer_class") if path.is_file() else None
    if named == "BertJapaneseTokenizer":
        return transformers.BertJapaneseTokenizer.from_pretrained(directory)
    return transformers.AutoTokenizer.from_pretrained(directory)


def require_word_segmenter(tokenizer_dir: str | os.PathLike, option: str) -> None:
    """Refuse `option` (whole-word masking) for a tokenizer without a word segmenter.

    Its only word marks are SentencePiece's "▁", a space before a token: Japanese text has
    about one per sentence, so a "whole word" would be a whole sentence (benchmarks/README.md,
    raw_text_bench, has the figures). Its dataset's word-start bits hold those marks all the same.
    """
    if is_fast_only(read_tokenizer_config(tokenizer_dir)):
        raise UserError(
            f"{option}: the tokenizer in {tokenizer_dir} has no word segmenter (SentencePiece on raw text), so "
            "it has no Japanese words to mask whole (its only word marks are spaces, about one per sentence); "
            f"drop {option}, or train the tokenizer with --word_tokenizer mecab")

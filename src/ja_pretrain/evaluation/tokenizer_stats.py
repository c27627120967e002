"""Tokenizer statistics on held-out text: how often [UNK] (or byte fallback) appears, how finely
words are cut, and how much of the vocabulary the text uses."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from ja_pretrain.corpus.layout import iter_documents

DEFAULT_SENTENCES = 5000
# SentencePiece's byte pieces: what byte fallback writes a character outside the vocabulary as
_BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")


def tokenizer_statistics(tokenizer_dir: str | os.PathLike, text_path: str | os.PathLike,
                         max_sentences: int = DEFAULT_SENTENCES) -> dict[str, Any]:
    """Figures for the tokenizer in `tokenizer_dir` on the first `max_sentences` sentences of a
    corpus-format file (the corpus' valid split in a report).

    - unk_rate: share of subword tokens that are [UNK];
    - byte_rate: share of subword tokens that are byte pieces (byte fallback; 0 without it);
    - unk_word_rate: share of words (word tokenizer output) that contain an [UNK];
    - subwords_per_word: subword tokens / words;
    - characters_per_token: characters of text / subword tokens;
    - vocabulary_used: distinct ids seen / vocabulary size.

    A tokenizer without a word segmenter (tokenizer.json, SentencePiece on raw text) has no
    words: its words, unk_word_rate and subwords_per_word are None.
    """

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    unk = tokenizer.unk_token_id
    byte_ids = {i for token, i in tokenizer.get_vocab().items() if _BYTE_PIECE.fullmatch(token)}
    sentences = words = tokens = unk_tokens = byte_tokens = unk_words = characters = 0
    seen: set[int] = set()
    # BertJapaneseTokenizer tokenizes exactly so: words, then subwords of each word.
    word_tokenizer = getattr(tokenizer, "word_tokenizer", None)
    subword_tokenizer = getattr(tokenizer, "subword_tokenizer", None)
    for document in iter_documents([Path(text_path)]):
        for sentence in document:
            if sentences >= max_sentences:
                break
            sentences += 1
            characters += len(sentence)
            if word_tokenizer is None:
                pieces = [tokenizer(sentence, add_special_tokens=False)["input_ids"]]
            else:
                pieces = [tokenizer.convert_tokens_to_ids(subword_tokenizer.tokenize(word))
                          for word in word_tokenizer.tokenize(sentence)]
            for ids in pieces:
                words += 1
                tokens += len(ids)
                hits = sum(1 for i in ids if i == unk)
                unk_tokens += hits
                byte_tokens += sum(1 for i in ids if i in byte_ids)
                unk_words += hits > 0
                seen.update(ids)
        if sentences >= max_sentences:
            break
    vocab_size = len(tokenizer)
    has_words = word_tokenizer is not None
    return {
        "tokenizer_dir": str(tokenizer_dir),
        "text": str(text_path),
        "tokenizer_class": type(tokenizer).__name__,
        "vocab_size": vocab_size,
        "sentences": sentences,
        "words": words if has_words else None,
        "tokens": tokens,
        "unk_rate": unk_tokens / tokens if tokens else float("nan"),
        "byte_rate": byte_tokens / tokens if tokens else float("nan"),
        "unk_word_rate": (unk_words / words if words else float("nan")) if has_words else None,
        "subwords_per_word": (tokens / words if words else float("nan")) if has_words else None,
        "characters_per_token": characters / tokens if tokens else float("nan"),
        "vocabulary_used": len(seen) / vocab_size if vocab_size else float("nan"),
    }

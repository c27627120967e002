"""Tokenizer statistics on held-out text: how often [UNK] appears, how finely words are cut,
and how much of the vocabulary the text uses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from ja_pretrain.corpus.layout import iter_documents

DEFAULT_SENTENCES = 5000


def tokenizer_statistics(tokenizer_dir: str | os.PathLike, text_path: str | os.PathLike,
                         max_sentences: int = DEFAULT_SENTENCES) -> dict[str, Any]:
    """Figures for the tokenizer in `tokenizer_dir` on the first `max_sentences` sentences of a
    corpus-format file (the corpus' valid split in a report).

    - unk_rate: share of subword tokens that are [UNK];
    - unk_word_rate: share of words (word tokenizer output) that contain an [UNK];
    - subwords_per_word: subword tokens / words;
    - characters_per_token: characters of text / subword tokens;
    - vocabulary_used: distinct ids seen / vocabulary size.
    """

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    unk = tokenizer.unk_token_id
    sentences = words = tokens = unk_tokens = unk_words = characters = 0
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
            pieces = word_tokenizer.tokenize(sentence) if word_tokenizer is not None else sentence.split()
            for word in pieces:
                subwords = subword_tokenizer.tokenize(word) if subword_tokenizer is not None else tokenizer.tokenize(word)
                ids = tokenizer.convert_tokens_to_ids(subwords)
                words += 1
                tokens += len(ids)
                hits = sum(1 for i in ids if i == unk)
                unk_tokens += hits
                unk_words += hits > 0
                seen.update(ids)
        if sentences >= max_sentences:
            break
    vocab_size = len(tokenizer)
    return {
        "tokenizer_dir": str(tokenizer_dir),
        "text": str(text_path),
        "tokenizer_class": type(tokenizer).__name__,
        "vocab_size": vocab_size,
        "sentences": sentences,
        "words": words,
        "tokens": tokens,
        "unk_rate": unk_tokens / tokens if tokens else float("nan"),
        "unk_word_rate": unk_words / words if words else float("nan"),
        "subwords_per_word": tokens / words if words else float("nan"),
        "characters_per_token": characters / tokens if tokens else float("nan"),
        "vocabulary_used": len(seen) / vocab_size if vocab_size else float("nan"),
    }

"""Encoding with a tokenizer that has no word segmenter (`train-tokenizer --word_tokenizer none`).

Its whole pipeline is in tokenizer.json, and AutoTokenizer runs it in Rust. So do we: the same
file through `tokenizers` directly, on a batch of sentences at a time, which gives
AutoTokenizer's ids by construction and skips only transformers' per-call Python (its
BatchEncoding, lists of lists). Nothing is cached per word: a Japanese sentence has no spaces,
so a "word" would be the whole sentence.

Word starts are the tokens that open with SentencePiece's "▁" (a space before them) and the
first token of every sentence. In Japanese that is about a sentence per word, which is why
whole-word masking refuses these tokenizers (see `require_word_segmenter`).
"""

from __future__ import annotations

from itertools import chain
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from ja_pretrain.errors import UserError
from ja_pretrain.tokenization.offsets import raw_text_offsets
from ja_pretrain.tokenization.tokenizer_json import SPACE


class RawTextEncoder:
    """ids, word starts and character offsets from a tokenizer.json."""

    def __init__(self, tokenizer_file: Path):
        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as err:  # tokenizers raises a bare Exception for a file it cannot read
            raise UserError(f"{tokenizer_file}: not a tokenizer.json `tokenizers` can load ({err})") from None
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.vocab_size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        pieces = [self._tokenizer.id_to_token(i) or "" for i in range(self.vocab_size)]
        self._opens_word = np.array([p.startswith(SPACE) for p in pieces], dtype=bool)
        # encode_batch_fast (tokenizers >= 0.21) skips the offsets, which ids do not need
        self._encode_ids = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)

    def token_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)

    def encode_flat(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All sentences' ids back to back (int32), word-start flags and tokens per sentence."""
        encodings = self._encode_ids(sentences, add_special_tokens=False)
        id_lists = [e.ids for e in encodings]
        lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
        ids = np.fromiter(chain.from_iterable(id_lists), dtype=np.int32, count=int(lengths.sum()))
        starts = self._opens_word[ids]
        firsts = np.cumsum(lengths) - lengths
        starts[firsts[lengths > 0]] = True
        return ids, starts, lengths

    def encode_with_offsets(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: its ids and each token's (start, end) characters in the text as given."""
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        counts = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        total = int(counts.sum())
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=np.int32, count=total)
        spans = np.fromiter(chain.from_iterable(chain.from_iterable(e.offsets for e in encodings)), dtype=np.int64,
                            count=2 * total).reshape(-1, 2)
        offsets = raw_text_offsets(texts, spans, counts, self._opens_word[ids])
        return list(zip(np.split(ids, np.cumsum(counts)[:-1]), offsets, strict=True))

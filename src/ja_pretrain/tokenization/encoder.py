"""A fast encoder that gives exactly the ids `AutoTokenizer.from_pretrained(dir)` gives.

BertJapaneseTokenizer spends most of its time building a Python object per morpheme and
running WordPiece in Python, character slice by character slice. Here:

  text --NFKC + MeCab (-Owakati, C)--> words --word cache--> subword ids (numpy gather)
                                                  | miss
                                                  v
                       Rust `tokenizers` WordPiece on pre-tokenized words, or sentencepiece

Words repeat (Zipf), so after a short warm-up almost every word is a dict hit, and subword ids
are copied out of one flat array by numpy. Python code runs once per sentence; per word there
are only C-level set/dict operations (`map(dict.__getitem__, words)`); nothing runs per subword.
All words of a batch that miss the cache go to Rust in one call.

    enc = FastEncoder.from_pretrained("run/tokenizer")
    enc.encode_sentences(["今日は晴れ。"])          # [[...ids...]], no [CLS]/[SEP]
    ids, starts = enc.encode_with_word_starts(["今日は晴れ。"])   # starts[i][j]: token j begins a word
    [(ids, offsets)] = enc.encode_with_offsets(["㈱は晴れ。"])     # offsets[j]: token j's (start, end) chars

A tokenizer without a word segmenter (tokenizer.json, SentencePiece on raw text) is already
Rust end to end; for it FastEncoder hands each call to `raw_text.RawTextEncoder`.

For many sentences, `encode_in_workers(tokenizer_dir, jobs, function, workers)` runs
`function(encoder, job)` in worker processes (each with its own encoder) and yields the results
in order; `encode_flat` gives one batch as flat numpy arrays.
"""

from __future__ import annotations

import collections
import multiprocessing
import operator
import os
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import chain
from pathlib import Path

import numpy as np
import sentencepiece as spm
from tokenizers import Tokenizer
from tokenizers.models import WordPiece

from ja_pretrain.errors import UserError
from ja_pretrain.tokenization.files import (
    FAST_TOKENIZER_FILE,
    SPECIAL_NAMES,
    SPECIAL_TOKENS,
    VOCAB_FILE,
    read_tokenizer_config,
    subword_type,
)
from ja_pretrain.tokenization.offsets import token_offsets
from ja_pretrain.tokenization.raw_text import RawTextEncoder
from ja_pretrain.tokenization.words import WordSegmenter, WordTokenizerSpec
from ja_pretrain.utils.processes import become_pool_worker

# transformers' WordpieceTokenizer turns a longer word into a single [UNK].
MAX_CHARS_PER_WORD = 100
# Bounded memory on huge corpora: the cache is emptied when it holds this many words.
CACHE_WORDS = 2_000_000
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
# Cache keys for special tokens start with NUL, which no MeCab word holds (see WordSegmenter.wakati)
# and which str.split() keeps.
_SPECIAL_KEY = {token: f"\x00{token}" for token in SPECIAL_TOKENS}
# Between sentences in a batch: a "word" MeCab cannot output (see WordSegmenter.wakati).
_SENTENCE_BREAK = " \x00 "


class FastEncoder:
    """Encoder for a tokenizer directory written by train-tokenizer (or any BertJapaneseTokenizer
    dir with MeCab or Sudachi words and WordPiece or SentencePiece subwords, lower-casing off)."""

    def __init__(self, tokenizer_dir: str | os.PathLike):
        self.tokenizer_dir = Path(tokenizer_dir)
        config = read_tokenizer_config(self.tokenizer_dir)
        self.subword_type = subword_type(config)
        self.word_spec = WordTokenizerSpec.from_config(config)
        self._raw_text = None
        if self.word_spec.kind == "none":
            self._raw_text = RawTextEncoder(self.tokenizer_dir / FAST_TOKENIZER_FILE)
            self.vocab_size = self._raw_text.vocab_size
            self.special_ids = self._special_ids(self._raw_text.token_id)
            return
        segmenter = WordSegmenter(self.word_spec)
        vocab_path = self.tokenizer_dir / VOCAB_FILE[self.subword_type]
        self._wakati = None
        if self.subword_type == "wordpiece":
            self._words = segmenter.wordpiece_words
            self._wakati = segmenter.wakati if self.word_spec.kind == "mecab" else None
            self._subwords = _WordPieceSubwords(vocab_path)
        else:
            self._words = segmenter.surfaces
            self._subwords = _SentencePieceSubwords(vocab_path)
        self.vocab_size = self._subwords.vocab_size
        self.special_ids = self._special_ids(self._subwords.token_id)
        self._reset_cache()

    def _special_ids(self, token_id) -> dict[str, int]:
        ids = {name: token_id(token) for name, token in zip(SPECIAL_NAMES, SPECIAL_TOKENS, strict=True)}
        missing = [token for (name, token) in zip(SPECIAL_NAMES, SPECIAL_TOKENS, strict=True) if ids[name] is None]
        if missing:
            raise UserError(f"{self.tokenizer_dir}: no {', '.join(missing)} in the vocabulary; "
                            "train the tokenizer with `ja-pretrain train-tokenizer`")
        return ids

    @classmethod
    def from_pretrained(cls, tokenizer_dir: str | os.PathLike) -> "FastEncoder":
        return cls(tokenizer_dir)

    # -- public API ---------------------------------------------------------------------
    def encode_sentences(self, sentences: list[str]) -> list[list[int]]:
        """Token ids per sentence, without [CLS]/[SEP]: `tokenizer(s, add_special_tokens=False)`."""
        ids, _, lengths = self.encode_flat(sentences)
        return [a.tolist() for a in np.split(ids, np.cumsum(lengths)[:-1])] if len(sentences) else []

    def encode_with_word_starts(self, sentences: list[str]) -> tuple[list[list[int]], list[list[bool]]]:
        """(ids per sentence, word-start flags per sentence): flag True where a token begins a word."""
        ids, starts, lengths = self.encode_flat(sentences)
        if not len(sentences):
            return [], []
        cuts = np.cumsum(lengths)[:-1]
        return [a.tolist() for a in np.split(ids, cuts)], [a.tolist() for a in np.split(starts, cuts)]

    def encode_flat(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All sentences' ids back to back (int32), word-start flags (bool) and tokens per sentence."""
        if not sentences:
            return np.zeros(0, np.int32), np.zeros(0, bool), np.zeros(0, np.int64)
        if self._raw_text is not None:
            return self._raw_text.encode_flat(sentences)
        if self._wakati is not None:
            # MeCab + WordPiece: one split() of the whole batch, NUL words between sentences.
            words = _SENTENCE_BREAK.join(map(self._wakati_around_specials, sentences)).split()
            rows = self._rows(words)
            ids, starts, ends = self._gather(rows)
            sentence_ends = ends[rows == self._break_row]
        else:
            per_sentence = [self._words(s) if "[" not in s else self._words_around_specials(s) for s in sentences]
            rows = self._rows(list(chain.from_iterable(per_sentence)))
            ids, starts, ends = self._gather(rows)
            word_counts = np.fromiter(map(len, per_sentence), dtype=np.int64, count=len(per_sentence))
            sentence_ends = np.concatenate([[0], ends])[np.cumsum(word_counts)[:-1]]
        sentence_lengths = np.diff(np.concatenate([[0], sentence_ends, [len(ids)]]))
        return ids, starts, sentence_lengths

    def encode_with_offsets(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: its ids (as `encode_sentences`) and each token's (start, end) characters in
        the text as given (see tokenization.offsets). Needs a WordPiece tokenizer or one without
        a word segmenter."""
        if self._raw_text is not None:
            return self._raw_text.encode_with_offsets(texts)
        if self.subword_type != "wordpiece":
            raise UserError(f"{self.tokenizer_dir}: character offsets need a WordPiece tokenizer or one "
                            f"without a word segmenter (this one is MeCab + {self.subword_type})")
        out = []
        for text in texts:
            words = self._words(text) if "[" not in text else self._words_around_specials(text)
            rows = self._rows(words)
            gather, _, _ = self._gather_index(rows)
            word_of_token = np.repeat(np.arange(len(words), dtype=np.int64), self._row_len[rows])
            out.append((self._ids[gather], token_offsets(text, words, word_of_token, self._spans[gather])))
        return out

    def _gather_index(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where the ids of cache rows lie in the cache, back to back; word-start flags; and the
        token end of every row."""
        lengths = self._row_len[rows]
        ends = np.cumsum(lengths)
        total = int(ends[-1]) if len(ends) else 0
        firsts = ends - lengths
        gather = np.repeat(self._row_start[rows] - firsts, lengths) + np.arange(total)
        starts = np.zeros(total, dtype=bool)
        starts[firsts[lengths > 0]] = True
        return gather, starts, ends

    def _gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ids of cache rows back to back, word-start flags, and the token end of every row."""
        gather, starts, ends = self._gather_index(rows)
        return self._ids[gather], starts, ends

    # -- internals ------------------------------------------------------------------------
    def _wakati_around_specials(self, text: str) -> str:
        if "[" not in text or not _SPECIAL_RE.search(text):
            return self._wakati(text)
        return " ".join(_SPECIAL_KEY.get(part) or self._wakati(part) for part in _SPECIAL_RE.split(text) if part)

    def _words_around_specials(self, text: str) -> list[str]:
        """transformers splits the raw text on special-token strings before anything else."""
        words: list[str] = []
        for part in _SPECIAL_RE.split(text):
            if part in _SPECIAL_KEY:
                words.append(_SPECIAL_KEY[part])
            elif part:
                words.extend(self._words(part))
        return words

    def _reset_cache(self) -> None:
        self._row_of: dict[str, int] = {}
        self._ids = np.zeros(1 << 16, dtype=np.int32)
        self._row_start = np.zeros(1 << 14, dtype=np.int64)
        self._row_len = np.zeros(1 << 14, dtype=np.int64)
        # each piece's characters within its word, (start, end); -1 where the subword model gives none
        self._spans = np.zeros((1 << 16, 2), dtype=np.int32)
        self._n_ids = 0
        for token, key in _SPECIAL_KEY.items():
            self._add_rows([key], (np.array([self._subwords.token_id(token)], np.int32), np.ones(1, np.int64),
                                   np.array([[0, len(token)]], np.int32)))
        self._break_row = len(self._row_of)
        self._add_rows([_SENTENCE_BREAK.strip()], (np.zeros(0, np.int32), np.zeros(1, np.int64),
                                                   np.zeros((0, 2), np.int32)))

    def _rows(self, words: list[str]) -> np.ndarray:
        """Cache row of every word, encoding the words not seen before in one Rust call."""
        new = set(words).difference(self._row_of)
        if new:
            if len(self._row_of) + len(new) > CACHE_WORDS:
                self._reset_cache()
                new = set(words).difference(self._row_of)
            new_words = list(new)
            self._add_rows(new_words, self._subwords.encode_words(new_words))
        if len(words) < 2:  # itemgetter returns a bare item for one key
            return np.fromiter(map(self._row_of.__getitem__, words), dtype=np.int64, count=len(words))
        # One C call for all lookups (measured about twice as fast as fromiter over map).
        return np.array(operator.itemgetter(*words)(self._row_of), dtype=np.int64)

    def _add_rows(self, words: list[str], encoded: tuple[np.ndarray, np.ndarray, np.ndarray | None]) -> None:
        flat, lengths, spans = encoded
        first_row = len(self._row_of)
        n_rows = first_row + len(words)
        if n_rows > len(self._row_len):
            grow = max(n_rows, 2 * len(self._row_len))
            self._row_len = np.resize(self._row_len, grow)
            self._row_start = np.resize(self._row_start, grow)
        if self._n_ids + len(flat) > len(self._ids):
            size = max(self._n_ids + len(flat), 2 * len(self._ids))
            self._ids = np.resize(self._ids, size)
            self._spans = np.resize(self._spans, (size, 2))
        self._ids[self._n_ids : self._n_ids + len(flat)] = flat
        self._spans[self._n_ids : self._n_ids + len(flat)] = -1 if spans is None else spans
        self._row_len[first_row:n_rows] = lengths
        self._row_start[first_row:n_rows] = self._n_ids + np.cumsum(lengths) - lengths
        self._n_ids += len(flat)
        self._row_of.update(zip(words, range(first_row, n_rows), strict=True))


class _WordPieceSubwords:
    """Rust WordPiece over pre-tokenized words: the same greedy longest-match-first as
    transformers' WordpieceTokenizer, with the same 100-character limit."""

    def __init__(self, vocab_path: Path):
        vocab: dict[str, int] = {}
        with open(vocab_path, encoding="utf-8") as f:
            # transformers' load_vocab: one token per line, a repeated token keeps its last line.
            for index, line in enumerate(f):
                vocab[line.rstrip("\n")] = index
        self._vocab = vocab
        self.vocab_size = len(vocab)
        if SPECIAL_TOKENS[1] not in vocab:
            raise UserError(f"{vocab_path}: no {SPECIAL_TOKENS[1]} token; not a BERT vocabulary")
        self._tokenizer = Tokenizer(
            WordPiece(vocab, unk_token=SPECIAL_TOKENS[1], continuing_subword_prefix="##",
                      max_input_chars_per_word=MAX_CHARS_PER_WORD)
        )

    def token_id(self, token: str) -> int:
        return self._vocab.get(token, self._vocab[SPECIAL_TOKENS[1]])

    def encode_words(self, words: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids of all words back to back, pieces per word, each piece's characters within its
        word): one Rust call for the whole list. An [UNK] covers its whole word."""
        encoding = self._tokenizer.encode(words, is_pretokenized=True, add_special_tokens=False)
        word_of_piece = np.asarray(encoding.word_ids, dtype=np.int64)
        spans = np.asarray(encoding.offsets, dtype=np.int32).reshape(-1, 2)
        return np.asarray(encoding.ids, dtype=np.int32), np.bincount(word_of_piece, minlength=len(words)), spans


class _SentencePieceSubwords:
    """sentencepiece applied word by word, with transformers' SentencepieceTokenizer's
    preprocessing and its special case for pieces like "12,"."""

    def __init__(self, model_path: Path):
        self._sp = spm.SentencePieceProcessor()
        self._sp.Load(str(model_path))
        self.vocab_size = self._sp.GetPieceSize()
        pieces = [self._sp.IdToPiece(i) for i in range(self.vocab_size)]
        self._digit_comma = np.array(
            [len(p) > 1 and p[-1] == "," and p[-2].isdigit() for p in pieces] + [False], dtype=bool
        )

    def token_id(self, token: str) -> int:
        return self._sp.PieceToId(token)

    def encode_words(self, words: list[str]) -> tuple[np.ndarray, np.ndarray, None]:
        texts = [" ".join(w.strip().split()).replace("``", '"').replace("''", '"') for w in words]
        id_lists = self._sp.encode(texts, num_threads=1)
        for i, ids in enumerate(id_lists):
            if ids and self._digit_comma[ids].any():
                id_lists[i] = self._digit_comma_ids(texts[i])
        lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
        ids = np.fromiter(chain.from_iterable(id_lists), dtype=np.int32, count=int(lengths.sum()))
        return ids, lengths, None  # no character spans: offsets need WordPiece

    def _digit_comma_ids(self, text: str) -> list[int]:
        # transformers re-encodes a "<digits>," piece without its comma; mirror that exactly.
        out: list[str] = []
        for piece in self._sp.encode(text, out_type=str):
            if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
                sub = self._sp.EncodeAsPieces(piece[:-1].replace("\u2581", ""))
                if piece[0] != "\u2581" and sub[0][0] == "\u2581":
                    sub = sub[1:] if len(sub[0]) == 1 else [sub[0][1:]] + sub[1:]
                out.extend(sub)
                out.append(piece[-1])
            else:
                out.append(piece)
        return [self._sp.PieceToId(p) for p in out]


# -- worker processes -----------------------------------------------------------------------
_worker_encoder: FastEncoder | None = None


def _init_worker(tokenizer_dir: str, parent_pid: int) -> None:
    global _worker_encoder
    become_pool_worker(parent_pid)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _worker_encoder = FastEncoder(tokenizer_dir)


def _encode_in_worker(job):
    function, payload = job
    return function(_worker_encoder, payload)


def encode_in_workers(tokenizer_dir: str | os.PathLike, jobs: Iterable, function, workers: int = 1,
                      window: int | None = None) -> Iterator:
    """Yield `function(encoder, job)` for each job, in order, from `workers` processes.

    At most `window` jobs are in flight, so a corpus larger than memory streams through.
    `function` must be a module-level function (it is pickled by reference). With workers <= 1
    everything runs in this process.
    """
    if workers <= 1:
        encoder = FastEncoder(tokenizer_dir)
        for job in jobs:
            yield function(encoder, job)
        return

    # spawn: callers may hold threads (torch, Rust pools) that fork would copy in a broken state.
    # A worker that dies raises BrokenProcessPool here instead of hanging the build.
    context = multiprocessing.get_context("spawn")
    window = window or 2 * workers
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(str(tokenizer_dir), os.getpid())) as pool:
        pending: collections.deque = collections.deque()
        for job in jobs:
            pending.append(pool.submit(_encode_in_worker, (function, job)))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

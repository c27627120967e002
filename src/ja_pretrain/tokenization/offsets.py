"""Where each token of the fast encoder comes from in the original text.

The encoder sees NFKC(text), split into MeCab words (whitespace dropped) and each word into
WordPiece pieces. Going back:

- piece -> word: the Rust WordPiece model gives each piece's characters within its word (an
  [UNK] covers its whole word);
- word -> normalized text: MeCab's words are the normalized text with its whitespace taken out,
  in order, so each word's start follows from the lengths (checked; a word-by-word search is the
  fallback, e.g. for special-token strings in the text);
- normalized text -> original: NFKC maps most characters on their own (`㈱` -> `(株)`, `ｶ` ->
  `カ`), so each normalized character belongs to the original character it came from; where
  characters combine (`ｶﾞ` -> `ガ`, Hangul jamo), the normalized characters of the combined run
  belong to the whole run. A token made from part of one original character therefore maps to
  that whole character, and a span never splits a character NFKC joined.

A tokenizer without a word segmenter (tokenizer.json) has `tokenizers`' own offsets, which
`raw_text_offsets` brings to the same rules.
"""

from __future__ import annotations

import functools
import unicodedata

import numpy as np

# Whether a code point is whitespace to str.isspace() (and so to str.split()), for every code
# point up to U+3000; there are none above it.
_IS_SPACE = np.array([chr(c).isspace() for c in range(0x3001)], dtype=bool)


@functools.lru_cache(maxsize=1 << 16)
def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def nfkc_alignment(text: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(NFKC(text), for each normalized character the start and the end of the original
    characters it comes from)."""
    normalized = unicodedata.normalize("NFKC", text)
    pieces = list(map(_nfkc, text))
    if "".join(pieces) == normalized:  # the usual case: every character normalizes on its own
        owner = np.repeat(np.arange(len(text), dtype=np.int64), np.fromiter(map(len, pieces), np.int64, len(pieces)))
        return normalized, owner, owner + 1
    segments = _combining_runs(text)
    if "".join(_nfkc(text[a:b]) for a, b in segments) != normalized:
        segments = [(0, len(text))]  # nothing finer holds: the whole text is one run
    lengths = np.array([len(_nfkc(text[a:b])) for a, b in segments], dtype=np.int64)
    bounds = np.array(segments, dtype=np.int64).reshape(-1, 2)
    return normalized, np.repeat(bounds[:, 0], lengths), np.repeat(bounds[:, 1], lengths)


def _combining_runs(text: str) -> list[tuple[int, int]]:
    """Runs of characters that NFKC must see together: a character starts a new run when
    normalizing it after the current run changes nothing in either."""
    runs, start = [], 0
    for i in range(1, len(text)):
        if _nfkc(text[start:i + 1]) == _nfkc(text[start:i]) + _nfkc(text[i]):
            runs.append((start, i))
            start = i
    if text:
        runs.append((start, len(text)))
    return runs


def word_starts(normalized: str, words: list[str], special_prefix: str = "\x00") -> np.ndarray:
    """Index in `normalized` of each word's first character. A word starting with
    `special_prefix` stands for the special-token string after it."""
    lengths = np.fromiter(map(len, words), np.int64, len(words))
    compact = "".join(normalized.split())
    if int(lengths.sum()) == len(compact) and "".join(words) == compact:
        if len(compact) == len(normalized):  # no whitespace at all: the usual Japanese sentence
            return np.cumsum(lengths) - lengths
        points = _code_points(normalized)
        not_space = np.flatnonzero(~_IS_SPACE[np.minimum(points, len(_IS_SPACE) - 1)] | (points >= len(_IS_SPACE)))
        return not_space[np.cumsum(lengths) - lengths]
    starts, position = [], 0
    for word in words:
        target = word[len(special_prefix):] if word.startswith(special_prefix) else word
        found = normalized.find(target, position)
        if found < 0:
            raise ValueError(f"word {target!r} not found in the normalized text after position {position}")
        starts.append(found)
        position = found + len(target)
    return np.asarray(starts, dtype=np.int64)


def token_offsets(text: str, words: list[str], word_of_token: np.ndarray, piece_spans: np.ndarray) -> np.ndarray:
    """(start, end) in `text` of each token, given its word and its characters within the word."""
    if not len(word_of_token):
        return np.zeros((0, 2), dtype=np.int64)
    normalized, first, last = nfkc_alignment(text)
    starts = word_starts(normalized, words)[word_of_token]
    begin = starts + piece_spans[:, 0]
    end = starts + piece_spans[:, 1]
    return np.stack([first[begin], last[end - 1]], axis=1)


def raw_text_offsets(texts: list[str], spans: np.ndarray, counts: np.ndarray, after_space: np.ndarray) -> list[np.ndarray]:
    """Character spans of a tokenizer.json's tokens made like the segmenter path's, per text.

    `spans` are `tokenizers`' own, in characters of each text, all texts' tokens back to back
    (`counts` per text). A span is widened to whole runs NFKC combined (`tokenizers` gives the
    "ガ" of "ｶﾞ" the "ｶ" alone), and a token that opens with "▁" (`after_space`) leaves out the
    whitespace the "▁" stands for (a token that is only "▁" gets an empty span where the next
    text begins). The batch is one string for numpy: texts joined by NUL, which NFKC never
    combines with anything.
    """
    joined = "\x00".join(texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    shift = np.repeat(np.cumsum(lengths + 1) - lengths - 1, counts)
    begin, end = spans[:, 0] + shift, spans[:, 1] + shift
    if not unicodedata.is_normalized("NFKC", joined) and "".join(map(_nfkc, joined)) != unicodedata.normalize(
            "NFKC", joined):
        run_start = np.arange(len(joined) + 1, dtype=np.int64)
        run_end = run_start + 1
        for a, b in _combining_runs(joined):
            if b - a > 1:
                run_start[a:b], run_end[a:b] = a, b
        nonempty = end > begin
        begin = np.where(nonempty, run_start[begin], begin)
        end = np.where(nonempty, run_end[np.maximum(end - 1, 0)], end)
    points = _code_points(joined)
    space = np.append(_IS_SPACE[np.minimum(points, len(_IS_SPACE) - 1)] & (points < len(_IS_SPACE)), False)
    while (leading := after_space & (begin < end) & space[begin]).any():
        begin = begin + leading
    return np.split(np.stack([begin - shift, end - shift], axis=1), np.cumsum(counts)[:-1])

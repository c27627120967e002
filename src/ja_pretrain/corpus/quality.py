"""Quality filters for web text: whole documents that are not running Japanese prose.

Each filter is optional (`corpus --quality NAME[=THRESHOLD] ...`, `--quality all` for every one at
its default) and looks at a document's normalised lines before they are split into sentences:

  length            fewer than THRESHOLD characters (spaces aside)                    default 50
  japanese          share of kana and kanji among the characters below THRESHOLD      default 0.5
  hiragana          share of hiragana below THRESHOLD (lists, tables, spam and        default 0.1
                    machine-made pages have little of the grammar hiragana carries)
  symbols           share of symbols (neither letters, digits, kana, kanji, nor the   default 0.1
                    usual punctuation) above THRESHOLD
  urls              share of characters inside URLs and e-mail addresses above it     default 0.1
  repeated_lines    share of characters in lines that occur more than once above it   default 0.3
  repeated_ngrams   share of character 10-grams that repeat an earlier one above it   default 0.3
  ellipsis_lines    share of lines that end in "..." or "…" above THRESHOLD (listings  default 0.7
                    and feeds that cut every entry off: HojiChar's rule, which the
                    others missed; benchmarks/README.md)

The first filter a document fails removes it; the manifest counts removals per filter and a few
of the removed documents are written to OUT/removed/ so the thresholds can be judged by eye.
The defaults were set on the shared sample (benchmarks/README.md): they keep Wikipedia and Aozora
text whole and remove what is plainly not prose. HojiChar's filters of the same kind were measured
against these (benchmarks/quality_bench.py): ours are several times faster, and its counterparts
miss link lists, navigation and decoration; of its other rules only the ending ellipsis caught a
kind of junk ours missed without removing prose, and it is taken over here.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable

import numpy as np

from ja_pretrain.corpus.neardup import joined_shingle_hashes

_KANA_KANJI = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々〆ヵヶ]")
_HIRAGANA = re.compile(r"[\u3040-\u309f]")
# Not a symbol: word characters (letters, digits, kana, kanji), spaces, and the punctuation of prose.
_SYMBOL = re.compile(r"[^\w\s。、,.!?「」『』()・ー〜~:;%\"'/\-]")
_SPACE = re.compile(r"\s")
_URL = re.compile(r"(?:https?://|www\.)[^\s\"'<>「」()]+|[\w.+-]+@[\w-]+\.[\w.-]+", re.IGNORECASE)
# Every URL match holds one of these; a line without any is skipped (the e-mail half of _URL
# backtracks over each run of word characters, quadratic in a long Japanese line).
_URL_HINT = re.compile(r"://|@|www\.", re.IGNORECASE)
NGRAM = 10
NGRAM_OWNER_BITS = 9  # up to 512 documents per sort in repeated_ngrams (a worker's batch)

# The character classes, as bits; a character's bits come from the patterns above (a table built
# from them once per process), so a document is classified in one numpy pass, not one regex scan
# per filter.
_CLASSES = (_SPACE, _KANA_KANJI, _HIRAGANA, _SYMBOL)
SPACE, KANA_KANJI, HIRAGANA, SYMBOL = range(len(_CLASSES))
_BMP = 0x10000
# row k: which of the 2^len(_CLASSES) bit patterns have bit k set
_HAS_BIT = (np.arange(1 << len(_CLASSES)) >> np.arange(len(_CLASSES))[:, None]) & 1


def _bits(text: str) -> np.ndarray:
    """The class bits of each character of `text`, by the patterns themselves."""
    table = np.zeros(len(text), dtype=np.uint8)
    for bit, pattern in enumerate(_CLASSES):
        for match in pattern.finditer(text):
            table[match.start()] |= 1 << bit
    return table


@functools.cache
def _bmp_table() -> np.ndarray:
    # surrogates (which normalize_line removes, and UTF-32 cannot encode) stand in as U+FFFD
    return _bits("".join(map(chr, range(0xD800))) + "\ufffd" * 0x800 + "".join(map(chr, range(0xE000, _BMP))))


@functools.lru_cache(maxsize=4096)
def _astral_bits(point: int) -> int:
    return int(_bits(chr(point))[0])


class Documents:
    """A batch of documents' normalised lines and the measurements that several filters share,
    each made once for the whole batch (a few numpy calls however many documents there are) and
    only when a filter asks for it."""

    def __init__(self, documents: list[list[str]]):
        self.lines = documents
        self.texts = ["\n".join(lines) for lines in documents]  # no word spans two lines
        self.lengths = np.fromiter(map(len, self.texts), dtype=np.intp, count=len(self.texts))

    @functools.cached_property
    def class_counts(self) -> np.ndarray:
        """(documents, classes): the number of characters of each class (SPACE, KANA_KANJI, ...)."""
        points = np.frombuffer("".join(self.texts).encode("utf-32-le"), dtype=np.uint32)
        if len(points) and points.max() >= _BMP:  # rare (emoji, the rarest kanji): classified one by one
            astral = points >= _BMP
            bits = _bmp_table().take(np.where(astral, 0, points))
            bits[astral] = [_astral_bits(int(p)) for p in points[astral]]
        else:
            bits = _bmp_table().take(points)
        patterns = 1 << len(_CLASSES)
        owner = np.repeat(np.arange(len(self.texts), dtype=np.intp) * patterns, self.lengths)
        histogram = np.bincount(owner + bits, minlength=patterns * len(self.texts)).reshape(-1, patterns)
        return histogram @ _HAS_BIT.T

    @functools.cached_property
    def visible(self) -> np.ndarray:
        """Characters other than spaces and line breaks, per document."""
        return self.lengths - self.class_counts[:, SPACE]


def length(docs: Documents) -> np.ndarray:
    return docs.visible.astype(float)


def _share(kind: int) -> Callable[[Documents], np.ndarray]:
    def measure(docs: Documents) -> np.ndarray:
        return docs.class_counts[:, kind] / np.maximum(1, docs.visible)

    return measure


def _may_hold_url(text: str) -> bool:
    # `in` is a fast scan; the pattern is tried only where one of the hints' letters occurs
    return ("://" in text or "@" in text or "w" in text or "W" in text) and _URL_HINT.search(text) is not None


def urls(docs: Documents) -> np.ndarray:
    inside = [sum(len(m) for line in lines if _may_hold_url(line) for m in _URL.findall(line))
              if _may_hold_url(text) else 0 for lines, text in zip(docs.lines, docs.texts, strict=True)]
    return np.array(inside, dtype=float) / np.maximum(1, docs.visible)


def repeated_lines(docs: Documents) -> np.ndarray:
    shares = []
    for lines in docs.lines:
        counts = Counter(lines)
        repeated = sum(len(line) * n for line, n in counts.items() if n > 1)
        shares.append(repeated / max(1, sum(map(len, lines))))
    return np.array(shares, dtype=float)


def repeated_ngrams(docs: Documents) -> np.ndarray:
    """The share of character NGRAM-grams that repeat an earlier one: 1 - distinct / all. Distinct
    by sorting (document number, hash) keys, so the hash keeps its top 64 - NGRAM_OWNER_BITS
    bits; at most 2^NGRAM_OWNER_BITS documents go into one sort."""
    shares = []
    for start in range(0, len(docs.texts), 1 << NGRAM_OWNER_BITS):
        texts = docs.texts[start : start + (1 << NGRAM_OWNER_BITS)]
        keys, counts = joined_shingle_hashes(texts, NGRAM)
        keys >>= np.uint64(NGRAM_OWNER_BITS)
        keys |= np.repeat(np.arange(len(texts), dtype=np.uint64) << np.uint64(64 - NGRAM_OWNER_BITS), counts)
        keys.sort()
        new = np.ones(len(keys), dtype=bool)
        np.not_equal(keys[1:], keys[:-1], out=new[1:])
        owners = (keys[new] >> np.uint64(64 - NGRAM_OWNER_BITS)).astype(np.intp)
        distinct = np.bincount(owners, minlength=len(texts))
        shares.append(np.where(counts > 0, 1.0 - distinct / np.maximum(counts, 1), 0.0))
    return np.concatenate(shares) if shares else np.zeros(0)


def ellipsis_lines(docs: Documents) -> np.ndarray:
    return np.array([sum(line.endswith(("...", "…")) for line in lines) / max(1, len(lines)) for lines in docs.lines],
                    dtype=float)


# name -> (measure, default threshold, True when the measure must be at least the threshold)
FILTERS: dict[str, tuple[Callable[[Documents], np.ndarray], float, bool]] = {
    "length": (length, 50, True),
    "japanese": (_share(KANA_KANJI), 0.5, True),
    "hiragana": (_share(HIRAGANA), 0.1, True),
    "symbols": (_share(SYMBOL), 0.1, False),
    "urls": (urls, 0.1, False),
    "repeated_lines": (repeated_lines, 0.3, False),
    "repeated_ngrams": (repeated_ngrams, 0.3, False),
    "ellipsis_lines": (ellipsis_lines, 0.7, False),
}


def parse_filters(specs: list[str] | tuple[str, ...] | None) -> tuple[tuple[str, float], ...]:
    """`--quality` words ("all", "NAME", "NAME=THRESHOLD") as ((name, threshold), ...) in FILTERS order;
    raises ValueError naming the bad word."""
    chosen: dict[str, float] = {}
    for spec in specs or ():
        name, _, value = spec.partition("=")
        name = name.strip().replace("-", "_")
        if name == "all" and not value:
            for key, (_, default, _) in FILTERS.items():
                chosen.setdefault(key, default)
            continue
        if name not in FILTERS:
            raise ValueError(f"--quality {spec!r}: no such filter; choose from all, {', '.join(FILTERS)}")
        try:
            chosen[name] = float(value) if value else FILTERS[name][1]
        except ValueError:
            raise ValueError(f"--quality {spec!r}: the threshold must be a number") from None
    return tuple((name, chosen[name]) for name in FILTERS if name in chosen)


def failed_filters(documents: list[list[str]], filters: tuple[tuple[str, float], ...]) -> list[tuple[str, str] | None]:
    """For each document (its normalised lines), (filter name, "measured vs threshold") of the
    first filter it fails, or None. Every filter measures the whole batch at once."""
    batch = Documents(documents)
    failed: list[tuple[str, str] | None] = [None] * len(documents)
    for name, threshold in filters:
        measure, _, at_least = FILTERS[name]
        values = measure(batch)
        for k in np.flatnonzero(values < threshold if at_least else values > threshold):
            if failed[k] is None:
                failed[k] = name, f"{name} {values[k]:.3g} {'<' if at_least else '>'} {threshold:g}"
    return failed


def failed_filter(lines: list[str], filters: tuple[tuple[str, float], ...]) -> tuple[str, str] | None:
    """`failed_filters` for one document."""
    return failed_filters([lines], filters)[0]

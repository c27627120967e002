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

The first filter a document fails removes it; the manifest counts removals per filter and a few
of the removed documents are written to OUT/removed/ so the thresholds can be judged by eye.
The defaults were set on the shared sample (benchmarks/README.md): they keep Wikipedia and Aozora
text whole and remove what is plainly not prose. HojiChar's filters of the same kind were measured
against these (benchmarks/quality_bench.py).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import numpy as np

from ja_pretrain.corpus.neardup import shingle_hashes

_KANA_KANJI = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々〆ヵヶ]")
_HIRAGANA = re.compile(r"[\u3040-\u309f]")
# Not a symbol: word characters (letters, digits, kana, kanji), spaces, and the punctuation of prose.
_SYMBOL = re.compile(r"[^\w\s。、,.!?「」『』()・ー〜~:;%\"'/\-]")
_URL = re.compile(r"(?:https?://|www\.)[^\s\"'<>「」()]+|[\w.+-]+@[\w-]+\.[\w.-]+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
NGRAM = 10


def _visible(text: str) -> int:
    return len(_SPACE.sub("", text))


def length(lines: list[str]) -> float:
    return float(_visible("".join(lines)))


def _share(pattern: re.Pattern) -> Callable[[list[str]], float]:
    def measure(lines: list[str]) -> float:
        text = "".join(lines)
        return len(pattern.findall(text)) / max(1, _visible(text))

    return measure


def urls(lines: list[str]) -> float:
    text = "".join(lines)
    return sum(len(m) for m in _URL.findall(text)) / max(1, _visible(text))


def repeated_lines(lines: list[str]) -> float:
    counts = Counter(lines)
    repeated = sum(len(line) * n for line, n in counts.items() if n > 1)
    return repeated / max(1, sum(map(len, lines)))


def repeated_ngrams(lines: list[str]) -> float:
    grams = shingle_hashes("\n".join(lines), NGRAM)
    if not len(grams):
        return 0.0
    return 1.0 - len(np.unique(grams)) / len(grams)


# name -> (measure, default threshold, True when the measure must be at least the threshold)
FILTERS: dict[str, tuple[Callable[[list[str]], float], float, bool]] = {
    "length": (length, 50, True),
    "japanese": (_share(_KANA_KANJI), 0.5, True),
    "hiragana": (_share(_HIRAGANA), 0.1, True),
    "symbols": (_share(_SYMBOL), 0.1, False),
    "urls": (urls, 0.1, False),
    "repeated_lines": (repeated_lines, 0.3, False),
    "repeated_ngrams": (repeated_ngrams, 0.3, False),
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


def failed_filter(lines: list[str], filters: tuple[tuple[str, float], ...]) -> tuple[str, str] | None:
    """(filter name, "measured vs threshold") of the first filter the document fails, or None."""
    for name, threshold in filters:
        measure, _, at_least = FILTERS[name]
        value = measure(lines)
        if (value < threshold) if at_least else (value > threshold):
            return name, f"{name} {value:.3g} {'<' if at_least else '>'} {threshold:g}"
    return None

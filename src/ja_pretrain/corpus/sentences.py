"""Japanese sentence splitting of one normalised (NFKC) line.

Rules, in order of precedence:
- A sentence ends after 。 ! ? (after NFKC, ！？ are ! ?), together with any run of further
  marks ("!?", "。。") and the closing brackets/quotes that follow (「…。」 keeps its 」).
- Nothing splits inside matched 「」『』()“”‘’【】〔〕《》〈〉[] — quoted speech and
  parentheticals stay whole — unless the piece grows past `limit` characters; such a piece is
  split again ignoring brackets. An opening bracket that is never closed counts as plain text.
- Half-width ! and ? right after a Latin letter, digit or symbol do not end a sentence
  ("Yahoo!ニュース", "Hey! Say! JUMP", URLs with "?q="): after NFKC a Japanese ！ looks the same,
  but it follows Japanese text.
- "." ends a sentence only between two Japanese characters (academic text written with
  "，．"); decimals (3.5), abbreviations (U.S.A.), numbered items ("1.") and ellipses ("...",
  NFKC of "…") never split.
- 。 directly followed by 、 , の or を is part of a name ("モーニング娘。の"), not an end.
- A quote ending in a mark and followed straight by another quote ends a sentence:
  「ああ。」「そう。」 is two (dialogue run together), 「ああ。」と言った。 is one.
The caller splits at line breaks before calling this.
"""

from __future__ import annotations

import re

OPENERS = "「『(“‘【〔《〈["
CLOSERS = "」』)”’】〕》〉]"
_MATCH = dict(zip(CLOSERS, OPENERS, strict=True))
_MARKS = "。!?."
_NAME_CONTINUATION = "、,のを"

_EVENT = re.compile("[" + re.escape(OPENERS + CLOSERS + _MARKS) + "]")
_MARK_RUN = re.compile(r"[。!?.]+")
_CLOSER_RUN = re.compile("[" + re.escape(CLOSERS) + "]+")
_BRACKET = re.compile("[" + re.escape(OPENERS + CLOSERS) + "]")

DEFAULT_SPLIT_LIMIT = 500


def _is_japanese(ch: str) -> bool:
    # Kana, CJK ideographs and symbols/punctuation: everything outside ASCII and Latin blocks.
    return ord(ch) >= 0x3000


def _ends_sentence(line: str, start: int, end: int) -> bool:
    """Whether the run of marks line[start:end] ends a sentence."""
    run = line[start:end]
    before = line[start - 1] if start else ""
    after = line[end] if end < len(line) else ""
    if "。" in run:
        return after not in _NAME_CONTINUATION or after == ""
    if "!" in run or "?" in run:
        return not (before and before.isascii() and not before.isspace())
    # Only dots: a single "." between Japanese characters (or at the end after Japanese).
    return len(run) == 1 and bool(before) and _is_japanese(before) and (after == "" or _is_japanese(after))


def _unmatched_openers(line: str) -> set[int]:
    """Positions of opening brackets that are never closed (or closed by the wrong bracket)."""
    stack: list[int] = []
    unmatched: set[int] = set()
    for m in _BRACKET.finditer(line):
        ch, i = m.group(), m.start()
        if ch in OPENERS:
            stack.append(i)
            continue
        opener = _MATCH[ch]
        for depth in range(len(stack) - 1, -1, -1):
            if line[stack[depth]] == opener:
                unmatched.update(stack[depth + 1 :])  # openers inside it that never closed
                del stack[depth:]
                break
    return unmatched | set(stack)


def _split(line: str, use_brackets: bool) -> list[str]:
    """Pieces of `line`, not split inside matched brackets when `use_brackets`.

    A bracket that is never closed is treated as plain text, so one stray "(" or a German „…“
    quote does not glue the rest of the line together, while the matched pairs around it
    still hold.
    """
    ignored = _unmatched_openers(line) if use_brackets and _BRACKET.search(line) else set()
    pieces: list[str] = []
    stack: list[str] = []
    start = 0
    pos = 0
    while True:
        m = _EVENT.search(line, pos)
        if m is None:
            break
        ch = m.group()
        i = m.start()
        if ch in OPENERS and use_brackets and i not in ignored:
            stack.append(ch)
            pos = i + 1
        elif ch in CLOSERS and use_brackets:
            opener = _MATCH[ch]
            if opener in stack:  # close it (and anything left open inside it)
                del stack[len(stack) - 1 - stack[::-1].index(opener) :]
            pos = i + 1
            # Dialogue run together on one line, 「ああ。」「そう。」: a quote that ends with a
            # mark and is followed straight by the next quote is a sentence of its own.
            if (not stack and ch in "」』" and line[i - 1] in "。!?"
                    and line[i + 1 : i + 2] in ("「", "『") and i + 1 > start):
                pieces.append(line[start : i + 1])
                start = i + 1
        elif ch in _MARKS:
            end = _MARK_RUN.match(line, i).end()
            if not stack and _ends_sentence(line, i, end):
                closers = _CLOSER_RUN.match(line, end)
                end = closers.end() if closers else end
                pieces.append(line[start:end])
                start = end
            pos = end
        else:
            pos = i + 1
    if start < len(line):
        pieces.append(line[start:])
    return pieces


def split_sentences(line: str, limit: int = DEFAULT_SPLIT_LIMIT) -> list[str]:
    """Sentences of one line (already normalised), stripped, empty ones removed."""
    sentences = []
    for piece in _split(line, use_brackets=True):
        if len(piece) > limit:
            sentences.extend(_split(piece, use_brackets=False))
        else:
            sentences.append(piece)
    return [s for s in (s.strip() for s in sentences) if s]

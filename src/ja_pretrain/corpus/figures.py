"""Telling figures from prose: financial documents are full of tables, whose cells and rows are
numbers (売上高 12,345 △678 3.2%), and those must not become sentences of the corpus."""

from __future__ import annotations

import re

_NUMBERISH = re.compile(r"[0-9０-９,，.．%％△▲\-－+＋()（）円百千万億]")
_NUMERIC_CELL = re.compile(
    r"^[△▲\-－+＋(（]?[0-9０-９][0-9０-９,，.．]*[)）]?[%％]?(?:円|百万円|千円|株|倍|ヶ月|年|期)?$|^[-－―—]$"
)
_CELL_GAP = re.compile(r"\u3000+|\s{2,}")


def is_numeric_cell(text: str) -> bool:
    return bool(_NUMERIC_CELL.match(text.strip().replace(" ", "")))


def is_numeric_row(text: str) -> bool:
    """A table row of figures (cells split at wide spaces, mostly numbers), or a line that is
    mostly digits and number signs."""
    cells = [c for c in _CELL_GAP.split(text.strip()) if c]
    if len(cells) >= 2 and sum(map(is_numeric_cell, cells)) * 2 >= len(cells):
        return True
    visible = [ch for ch in text if not ch.isspace()]
    return bool(visible) and len(_NUMBERISH.findall(text)) * 2 > len(visible)

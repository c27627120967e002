"""Aozora Bunko text files (青空文庫, https://www.aozora.gr.jp) to plain text.

A work's text file (CP932 as published; the reader transcodes it) is laid out in Aozora's notation
(its rules: https://www.aozora.gr.jp/annotation/):

    羅生門                                      <- title block: title, author, until the first blank line
    芥川龍之介
    -------------------------------------------------------
    【テキスト中に現れる記号について】          <- the symbol legend between two dashed lines
    《》：ルビ ...
    -------------------------------------------------------
    　ある日の暮方の事である。一人の｜下人《げにん》が、...
    ［＃５字下げ］二［＃「二」は中見出し］      <- notes: layout, headings, emphasis
    ...※［＃「てへん＋劣」、第3水準1-84-77］...  <- a character outside JIS X 0208
    底本：「芥川龍之介全集1」ちくま文庫...        <- the footer: the source edition, to the end

Conversion: the title block and legend, and the footer from the line starting with 底本：, are
removed; ruby readings 《…》 and the ruby start mark ｜ are dropped (the base text stays); notes
［＃…］ are removed; a character given as a JIS X 0213 code ("第3水準1-84-77") or as "U+6318"
inside its note becomes that character (Python's euc_jis_2004 codec maps men-ku-ten codes), any
other ※［＃…］ is dropped; the repetition marks ／＼ and ／″＼ become 〳〵 and 〴〵.
"""

from __future__ import annotations

import re

_DASHES = re.compile(r"^-{20,}\s*$", re.MULTILINE)
_LEGEND = "【テキスト中に現れる記号について】"
_FOOTER = re.compile(r"^\s*底本[:：]", re.MULTILINE)
_GAIJI = re.compile(r"※［＃([^］]*)］")
_JIS_CODE = re.compile(r"([12])-(\d{1,2})-(\d{1,2})")
_UNICODE = re.compile(r"U\+([0-9A-Fa-f]{4,5})")
_NOTE = re.compile(r"［＃[^］]*］")
_RUBY = re.compile(r"《[^》\n]*》")
_RUBY_START = "｜"
_REPEAT_MARKS = (("／″＼", "〴〵"), ("／＼", "〳〵"))


def _gaiji(match: re.Match) -> str:
    """The character a ※［＃…］ note describes, when its code is given; else nothing."""
    note = match.group(1)
    code = _JIS_CODE.search(note)
    if code:
        plane, row, cell = (int(g) for g in code.groups())
        if 1 <= row <= 94 and 1 <= cell <= 94:
            encoded = bytes([0xA0 + row, 0xA0 + cell])
            try:
                return (b"\x8f" + encoded if plane == 2 else encoded).decode("euc_jis_2004")
            except UnicodeDecodeError:
                pass
    code = _UNICODE.search(note)
    if code:
        return chr(int(code.group(1), 16))
    return ""


def strip_header_and_footer(text: str) -> str:
    footer = _FOOTER.search(text)
    if footer:
        text = text[: footer.start()]
    legend = text.find(_LEGEND)
    if legend != -1:
        dashes = [m for m in _DASHES.finditer(text) if m.start() > legend]
        return text[dashes[0].end() :] if dashes else text[legend + len(_LEGEND) :]
    title_end = re.search(r"\n[^\S\n]*\n", text)  # the title block ends at the first blank line
    return text[title_end.end() :] if title_end else text


def aozora_to_text(text: str) -> str:
    """The body of an Aozora Bunko work as plain text, a paragraph per line."""
    text = text.replace("\r\n", "\n")
    text = strip_header_and_footer(text)
    text = _GAIJI.sub(_gaiji, text)
    text = _NOTE.sub("", text)
    text = _RUBY.sub("", text).replace(_RUBY_START, "")
    for marks, replacement in _REPEAT_MARKS:
        text = text.replace(marks, replacement)
    return text

"""Line normalisation: NFKC, invisible characters, Wikipedia residue, whitespace.

NFKC comes first, so every later rule sees one spelling: full-width ASCII, brackets and
punctuation become half-width (（）！？［］ -> ()!?[]), half-width katakana becomes full-width,
"…" becomes "...". 「」『』。、 are unchanged by NFKC.
"""

from __future__ import annotations

import html
import re
import unicodedata

# Control (Cc, except tab/newline which callers treat as whitespace/line breaks) and format
# (Cf) characters: zero-width spaces and joiners, bidi marks, BOM, soft hyphen, tag characters.
# Private-use (Co) and lone surrogates (Cs) carry no text either.
_INVISIBLE = re.compile(
    "["
    "\x00-\x08\x0b-\x1f\x7f-\x9f"
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\ue000-\uf8ff\ud800-\udfff"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f\U000f0000-\U0010ffff"
    "]"
)

# Footnote marks as rendered by Wikipedia: [1], [12], [注 1], [注釈 3], [a], [note 2], [† 1].
_FOOTNOTE = re.compile(r"\[(?:\d{1,3}|[a-z]|(?:注釈?|脚注|補注|注|note|nb|n|†|\*)\s*[0-9a-z]{1,3})\]", re.IGNORECASE)
# Maintenance tags: [要出典], [要検証 - ノート], [いつ?], [誰によって?], [リンク切れ], [独自研究?] ...
_MAINTENANCE = re.compile(
    r"\[(?:要[^\[\]]{1,30}|独自研究[^\[\]]{0,20}|疑問点[^\[\]]{0,20}|リンク切れ[^\[\]]{0,20}|"
    r"信頼性要検証[^\[\]]{0,20}|出典無効[^\[\]]{0,20}|訳語疑問点[^\[\]]{0,20}|矛盾[^\[\]]{0,20}|"
    r"曖昧さ回避[^\[\]]{0,20}|非公式[^\[\]]{0,20}|"
    r"(?:いつ|どこ|誰|誰によって|誰が|どれ|どの[^\[\]]{0,8}|何|なぜ|どのように|どうやって)\??)\]"
)
# Leftovers of markup that a converter passed through: {{...}} templates, table and style
# marks, HTML tags, magic words, image options such as "thumb|".
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_MARKUP_LEFTOVER = re.compile(
    r"\{\{|\}\}|\{\||\|\}|'{2,}|__[A-Z]+__|"
    r"</?(?:ref|references|br|small|big|sup|sub|span|div|center|font|nowiki|s|u|b|i)\b[^>]*>|"
    r"\b(?:thumb|thumbnail|upright|frameless|\d+(?:x\d+)?px)\|",
    re.IGNORECASE,
)
_ENTITY = re.compile(r"&(?:#\d{1,7}|#x[0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});")
# Brackets left empty (or holding only a separator) once their templates were removed:
# "東京 (、英: Tokyo)" is common in converted Wikipedia text.
_EMPTY_BRACKETS = re.compile(r"\(\s*[、,;:・]?\s*\)|「\s*」|『\s*』|\[\s*\]")
_SEPARATOR_AFTER_OPEN = re.compile(r"\(\s*[、,;]\s*")
_SEPARATOR_BEFORE_CLOSE = re.compile(r"\s*[、,;]\s*\)")
_SPACES = re.compile(r"\s+")
# "| key = value" infobox lines and "| cell || cell" table rows left by converters; prose never
# starts with a pipe.
_TABLE_ROW = re.compile(r"\s*(?:\||\{\|)")


def _markup_replacement(match: re.Match) -> str:
    return " " if match.group().lower().startswith("<br") else ""


def normalize_line(line: str) -> str:
    """One paragraph line, normalised; the empty string if nothing is left."""
    line = unicodedata.normalize("NFKC", line)
    if _TABLE_ROW.match(line):
        return ""
    line = _INVISIBLE.sub("", line)
    if "&" in line:
        line = _ENTITY.sub(lambda m: html.unescape(m.group()), line)
    if "[" in line:
        line = _FOOTNOTE.sub("", line)
        line = _MAINTENANCE.sub("", line)
    if "{" in line or "|" in line or "'" in line or "<" in line or "__" in line:
        previous = None
        while previous != line:
            previous, line = line, _TEMPLATE.sub("", line)
        line = _MARKUP_LEFTOVER.sub(_markup_replacement, line)
    if "(" in line or "「" in line or "『" in line or "[" in line:
        line = _EMPTY_BRACKETS.sub("", line)
        line = _SEPARATOR_AFTER_OPEN.sub("(", line)
        line = _SEPARATOR_BEFORE_CLOSE.sub(")", line)
    return _SPACES.sub(" ", line).strip()

"""MediaWiki markup to plain text, with mwparserfromhell.

mwparserfromhell's own `strip_code` keeps tables, reference lists and file captions, which are
not prose. This walker keeps only running text: it drops templates ({{...}}, infoboxes), <ref>
and other non-prose tags, tables, headings, files/images, categories and interlanguage links,
and keeps the visible text of ordinary links ("[[東京都|都]]" -> "都"). List items and
paragraphs each end up on their own line, so line breaks stay sentence boundaries.
"""

from __future__ import annotations

import functools
import re

import mwparserfromhell
from mwparserfromhell.nodes import (
    Argument,
    Comment,
    ExternalLink,
    Heading,
    HTMLEntity,
    Tag,
    Template,
    Text,
    Wikilink,
)

# Tags whose content is not running prose.
DROPPED_TAGS = frozenset(
    "ref references table gallery math chem ce score timeline imagemap graph templatedata "
    "syntaxhighlight source pre code hiero categorytree inputbox mapframe maplink poem section "
    "noinclude includeonly onlyinclude".split()
)
# Tags that start a line of their own.
LINE_TAGS = frozenset("br p div hr".split())
# List items ("* ...", "# ...", "; ...", ": ..."): mostly link lists and filmographies, not prose.
# As in WikiExtractor's default, they are dropped: the item's line is marked and removed after.
LIST_TAGS = frozenset("li dt dd".split())
_LIST_MARK = "\x00"  # matched by _NOT_PROSE_LINE

# Link namespaces that are not text: files and categories (English and Japanese spellings;
# the dump's own names are added from its <siteinfo>).
_NON_TEXT_NAMES = ["file", "image", "media", "category", "ファイル", "画像", "メディア", "カテゴリ"]
# [[en:Foo]]-style interlanguage links: a short language-code prefix.
_INTERLANGUAGE = re.compile(r"\s*[a-z]{2,3}(?:-[a-z]{2,8})?\s*:", re.IGNORECASE)
_MAGIC_WORD = re.compile(r"__[A-Z]+__")
_LITERAL_TAG = re.compile(r"<(?:nowiki|pre|syntaxhighlight|source|code)\b", re.IGNORECASE)
_COMMENT_OR_REF = re.compile(r"<!--.*?-->|<ref\b[^>]*?/>|<ref\b[^>]*>.*?</ref\s*>", re.DOTALL | re.IGNORECASE)
_INNERMOST_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_NOT_PROSE_LINE = re.compile(r"\s*(?:\x00|\||!|\{\|)|.*\|\|")


def wikitext_to_text(wikitext: str, non_text_namespaces: tuple[str, ...] = ()) -> str:
    """Plain text of an article, one paragraph per line.

    `non_text_namespaces`: the wiki's own names of its File and Category namespaces (from the
    dump's <siteinfo>), dropped like the English and Japanese ones.
    """
    parts: list[str] = []
    skip = _non_text_pattern(non_text_namespaces)
    _walk(mwparserfromhell.parse(_prestrip(wikitext), skip_style_tags=True), parts, skip)
    # Table rows that the parser could not read as a table (a template opens or closes it,
    # common in sports statistics and broadcast lists) survive as "| cell || cell" lines;
    # they are dropped with list items. Prose never contains "||".
    text = "\n".join(line for line in "".join(parts).split("\n") if not _NOT_PROSE_LINE.match(line))
    text = _MAGIC_WORD.sub("", text)
    # Bold/italic quote marks are left as text by skip_style_tags (it is much faster and safer
    # on unbalanced quotes); remove them here.
    return re.sub(r"'{2,}", "", text)


def _prestrip(wikitext: str) -> str:
    """Remove comments, <ref>s and (innermost-first) templates with regular expressions.

    All three are dropped by the walker anyway; removing them first roughly halves the text
    mwparserfromhell has to parse, which is nearly all of the conversion time (same output on
    the 100-article jawiki sample). Skipped where markup is shown literally (<nowiki>, <pre>...).
    """
    if _LITERAL_TAG.search(wikitext):
        return wikitext
    text = _COMMENT_OR_REF.sub("", wikitext)
    previous = None
    while previous != text:
        previous, text = text, _INNERMOST_TEMPLATE.sub("", text)
    return text


@functools.lru_cache(maxsize=16)
def _non_text_pattern(names: tuple[str, ...]) -> re.Pattern:
    all_names = [re.escape(n) for n in names] + _NON_TEXT_NAMES
    return re.compile(r"\s*:?\s*(?:" + "|".join(all_names) + r")\s*:", re.IGNORECASE)


def _walk(code, parts: list[str], skip: re.Pattern) -> None:
    for node in code.nodes:
        if isinstance(node, Text):
            parts.append(node.value)
        elif isinstance(node, Wikilink):
            title = str(node.title)
            if skip.match(title) or (node.text is None and _INTERLANGUAGE.match(title)):
                continue
            _walk(node.text if node.text is not None else node.title, parts, skip)
        elif isinstance(node, ExternalLink):
            if node.brackets and node.title is not None:
                _walk(node.title, parts, skip)
        elif isinstance(node, Tag):
            tag = str(node.tag).strip().lower()
            if tag in DROPPED_TAGS:
                continue
            if tag in LIST_TAGS:
                parts.append("\n" + _LIST_MARK)
                continue
            if tag in LINE_TAGS:
                parts.append("\n")
            if node.contents is not None and not node.self_closing:
                _walk(node.contents, parts, skip)
        elif isinstance(node, HTMLEntity):
            parts.append(node.normalize())
        elif isinstance(node, Heading):
            parts.append("\n")  # headings are titles, not sentences
        elif isinstance(node, (Template, Comment, Argument)):
            continue
        else:  # pragma: no cover - node types added by future parser versions
            parts.append(str(node))

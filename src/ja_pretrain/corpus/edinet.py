"""EDINET document ZIPs (a securities report, 有価証券報告書, as `download edinet` fetches it) to
plain text, in the workers.

The ZIP that EDINET's API returns for a document (`type=1`) holds the filing as inline XBRL:
`XBRL/PublicDoc/*.htm`, one XHTML file per part of the report (cover, then each section), whose
names begin with a sequence number (0000000_header_..., 0101010_honbun_..., 0102010_honbun_...),
so name order is the report's order. In them:

- `ix:header` (the hidden XBRL facts and contexts), `<head>`, scripts, styles and anything under
  `display:none` are not text;
- headings (`<h1>`..`<h6>`, and paragraphs styled as headings, class `smt_head*`) stay lines of
  their own, so they never run into the sentence after them;
- a table whose non-empty cells are mostly figures (the financial statements, 主要な経営指標等の推移)
  is dropped whole; the cells of any other table (役員の状況, 事業等のリスク laid out in a
  table) become lines;
- paragraphs, list items and line breaks end lines.

A ZIP without `XBRL/PublicDoc/*.htm` is refused as bad input: it is not an EDINET document ZIP (the
PDF of a filing, `type=2`, is read by the PDF reader instead).
"""

from __future__ import annotations

import io
import re
import zipfile
from html.parser import HTMLParser

from ja_pretrain.corpus.bad_input import BadInput
from ja_pretrain.corpus.figures import is_numeric_cell

_PUBLIC_DOC = re.compile(r"(?:^|/)XBRL/PublicDoc/[^/]+\.x?html?$", re.IGNORECASE)
_HIDDEN_TAGS = frozenset({"ix:header", "head", "script", "style", "title"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = frozenset({"p", "div", "li", "br", "tr", "dt", "dd", "blockquote", "section", "ul", "ol"} | _HEADINGS)
_VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr"})
_DISPLAY_NONE = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\n\f]+")


class _ReportText(HTMLParser):
    """Lines of text of one inline-XBRL file (see the module docstring)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._open: list[tuple[str, bool]] = []  # (tag, hides its content)
        self._hidden = 0
        self._tables: list[list[list[str]]] = []  # per open table: its cells' texts
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        hides = tag in _HIDDEN_TAGS or bool(_DISPLAY_NONE.search(attributes.get("style") or ""))
        if tag not in _VOID:
            self._open.append((tag, hides))
            self._hidden += hides
        if self._hidden:
            return
        if tag == "table":
            self._end_line()
            self._tables.append([])
        elif tag in ("td", "th") and self._tables:
            self._cell = []
        elif tag in _BLOCKS or "smt_head" in (attributes.get("class") or ""):
            self._end_line()

    def handle_startendtag(self, tag, attrs):
        if tag == "br" and not self._hidden:
            self._end_line()

    def handle_endtag(self, tag):
        if not any(t == tag for t, _ in self._open):
            return  # a stray end tag
        while self._open:
            name, hides = self._open.pop()
            self._hidden -= hides
            if not self._hidden:
                self._close(name)
            if name == tag:
                break

    def _close(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._tables:
            self._tables[-1].append([_SPACES.sub(" ", "".join(self._cell)).strip()])
            self._cell = None
        elif tag == "table" and self._tables:
            cells = [c[0] for c in self._tables.pop() if c[0]]
            if cells and sum(map(is_numeric_cell, cells)) * 2 < len(cells):
                self.lines.extend(cells)
        elif tag in _BLOCKS:
            self._end_line()

    def handle_data(self, data):
        if self._hidden:
            return
        if self._cell is not None:
            self._cell.append(data)
        elif not self._tables:
            self._line.append(data)

    def _end_line(self) -> None:
        text = _SPACES.sub(" ", "".join(self._line)).strip()
        if text:
            self.lines.append(text)
        self._line = []

    def close(self) -> None:
        super().close()
        self._end_line()


def report_files(archive: zipfile.ZipFile) -> list[str]:
    """The inline-XBRL files of the report, in the report's order."""
    names = [n for n in archive.namelist() if _PUBLIC_DOC.search(n)]
    return sorted(names, key=lambda n: n.rsplit("/", 1)[-1])


def edinet_to_text(data: bytes) -> str:
    """The text of a securities report from its EDINET document ZIP, a paragraph per line."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as err:
        raise BadInput(f"is not a readable ZIP ({err})") from None
    with archive:
        files = report_files(archive)
        if not files:
            held = ", ".join(archive.namelist()[:3]) or "nothing"
            raise BadInput(f"is a ZIP without XBRL/PublicDoc/*.htm, so not an EDINET document ZIP (it holds {held}"
                           + (", ..." if len(archive.namelist()) > 3 else "") + ")")
        lines: list[str] = []
        for name in files:
            parser = _ReportText()
            try:
                parser.feed(archive.read(name).decode("utf-8", errors="replace"))
            except (zipfile.BadZipFile, OSError, RuntimeError) as err:
                raise BadInput(f"has a damaged member {name} ({err})") from None
            parser.close()
            lines.extend(parser.lines)
    return "\n".join(lines)

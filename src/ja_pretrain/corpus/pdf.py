"""PDF files (summaries of financial results, 決算短信, and the PDF copies of securities reports)
to plain text, in the workers.

Text comes out of pypdf as positioned lines (chosen over pdfminer.six by measurement on generated
Japanese PDFs with CID fonts: benchmarks/pdf_bench.py and benchmarks/README.md). `layout_text`
then turns a document's lines into paragraphs, a paragraph per line:

- reading order is the order of the page's content (what a PDF writer emits for a single-column
  report), lines on one baseline joined;
- running headers and footers are dropped: one of the first or last two lines of a page, in its
  top or bottom 7%, whose text, digits aside, comes back so on at least half of the pages (two
  at least); so are such lines that are only a page number ("3", "- 3 -", "3 / 12", "(3)");
- table rows of figures do not become sentences: a line whose cells (split at wide spaces) are
  mostly numbers, or whose characters are mostly digits and number signs (△, ▲, %, commas), is
  dropped;
- a line broken inside a sentence is joined to the next: a line that runs to the right margin
  and does not end a sentence continues on the next line; a short line (a heading, the last line
  of a paragraph) ends its paragraph.

An encrypted PDF (one that needs a password) and one without any text (scanned pages: run OCR
first) are refused as bad input, naming the file.
"""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from dataclasses import dataclass

from ja_pretrain.corpus.bad_input import BadInput
from ja_pretrain.corpus.figures import is_numeric_row

log = logging.getLogger(__name__)

MARGIN_SHARE = 0.07  # top and bottom 7% of a page (about 2 cm of A4): where running headers and footers are
EDGE_LINES = 2  # a header or footer is among the first or last lines of a page
FULL_LINE = 0.85  # a line reaching this share of the page's text width runs to the margin
_SENTENCE_END = tuple("。．.!?！？」』)）")
_PAGE_NUMBER = re.compile(r"^[\s\-－―–—(（<〈]*(?:[0-9０-９]+|[ivxlcIVXLC]+)(?:\s*[/／]\s*[0-9０-９]+)?[\s\-－―–—)）>〉]*$")
_DIGITS = re.compile(r"[0-9０-９]+")


@dataclass
class Line:
    x: float  # left end, in points
    y: float  # baseline, in points from the bottom of the page
    size: float  # font size, in points
    text: str

    @property
    def right(self) -> float:
        return self.x + text_width(self.text) * self.size


def text_width(text: str) -> float:
    """Width of `text` in ems: full-width characters one em, the others half."""
    return sum(1.0 if ord(ch) >= 0x2E80 else 0.5 for ch in text)


def _edge_lines(lines: list[Line], height: float) -> list[Line]:
    """The two topmost and two bottommost lines of a page that lie in its margins."""
    by_height = sorted(lines, key=lambda ln: -ln.y)
    edges = by_height[:EDGE_LINES] + by_height[-EDGE_LINES:]
    return [ln for ln in edges if ln.y >= height * (1 - MARGIN_SHARE) or ln.y <= height * MARGIN_SHARE]


def _running_lines(pages: list[list[Line]], heights: list[float]) -> set[str]:
    """Texts (digits masked) of the page-edge lines that recur on half the pages."""
    seen: Counter = Counter()
    for lines, height in zip(pages, heights, strict=True):
        seen.update({_DIGITS.sub("#", ln.text.strip()) for ln in _edge_lines(lines, height)})
    need = max(2, (len(pages) + 1) // 2)
    return {key for key, count in seen.items() if count >= need}


def _join(left: str, right: str) -> str:
    # Japanese runs on without a space; Latin words keep one.
    if left and right and left[-1].isascii() and right[0].isascii() and left[-1].isalnum() and right[0].isalnum():
        return f"{left} {right}"
    return left + right


def layout_text(pages: list[list[Line]], heights: list[float]) -> str:
    """The text of a document's pages, a paragraph per line (see the module docstring)."""
    running = _running_lines(pages, heights)
    paragraphs: list[str] = []
    for lines, height in zip(pages, heights, strict=True):
        body = []
        edges = {id(ln) for ln in _edge_lines(lines, height)}
        for line in lines:
            text = line.text.strip()
            if not text:
                continue
            if id(line) in edges and (_PAGE_NUMBER.match(text) or _DIGITS.sub("#", text) in running):
                continue
            if is_numeric_row(text):
                continue
            body.append(Line(line.x, line.y, line.size, text))
        if not body:
            continue
        left = min(ln.x for ln in body)
        width = max(ln.right for ln in body) - left
        current = ""
        for line in body:
            current = _join(current, line.text)
            runs_on = line.right - left >= FULL_LINE * width and not line.text.endswith(_SENTENCE_END)
            if not runs_on:
                paragraphs.append(current)
                current = ""
        if current:
            paragraphs.append(current)
    return "\n".join(paragraphs)


def _page_lines(page) -> list[Line]:
    """Positioned lines of a pypdf page: the chunks its text visitor reports, joined per baseline."""
    lines: list[Line] = []

    def visit(text, cm, tm, font, font_size):
        if not text or not text.strip("\n"):
            return
        # The text matrix in page space: tm then the current transformation matrix.
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        size = abs(font_size * (tm[3] * cm[3] + tm[1] * cm[2])) or font_size
        for k, piece in enumerate(text.split("\n")):
            if not piece.strip():
                continue
            if k == 0 and lines and abs(lines[-1].y - y) < 0.5 * max(size, 1.0):
                lines[-1].text += piece
            else:
                lines.append(Line(x, y if k == 0 else y - k * size, size, piece))

    page.extract_text(visitor_text=visit)
    return lines


def pdf_to_text(data: bytes) -> str:
    """The text of a PDF; BadInput for an encrypted, image-only or unreadable one."""
    import pypdf
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about odd fonts are not the user's to act on
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):  # an empty user password only restricts printing etc.
            raise BadInput("is an encrypted PDF (a password is needed to read it); decrypt it first")
        pages, heights, images = [], [], 0
        for page in reader.pages:
            pages.append(_page_lines(page))
            heights.append(float(page.mediabox.height))
            resources = page.get("/Resources") or {}
            xobjects = resources.get("/XObject") if hasattr(resources, "get") else None
            images += len(xobjects) if xobjects else 0
    except BadInput:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as err:
        raise BadInput(f"is not a readable PDF ({type(err).__name__}: {err})") from None
    except Exception as err:  # pypdf raises a variety of internal errors on damaged files
        if "crypt" in str(err).lower() or "AES" in str(err):
            raise BadInput(f"is an encrypted PDF that cannot be opened ({err})") from None
        raise BadInput(f"is not a readable PDF ({type(err).__name__}: {err})") from None
    if not any(line.text.strip() for lines in pages for line in lines):
        if images:
            raise BadInput(f"holds no text, only images on its {len(pages)} page(s) (a scan?); run OCR on it first")
        raise BadInput(f"holds no text on its {len(pages)} page(s)")
    return layout_text(pages, heights)

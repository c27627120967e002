"""PDF text extraction: pypdf against pdfminer.six on Japanese PDFs made with reportlab's CID fonts.

    python benchmarks/pdf_bench.py [--documents 20] [--pages 4] [--repeats 3]

Each generated document is a 決算短信-like report: a running header and a page number on every
page, headings, paragraphs of real sentences (../shared/data/corpus-ja, else the bundled sample)
wrapped at 38 characters, and rows of figures, in HeiseiMin-W3 or HeiseiKakuGo-W5 (Adobe-Japan1
CID fonts, UniJIS-UCS2-H). Both arms feed their positioned lines to the same layout step
(ja_pretrain.corpus.pdf.layout_text: headers, footers, page numbers and rows of figures dropped,
wrapped lines joined), so the arms differ only in the extraction.

Accuracy, against the paragraphs drawn (NFKC, spaces removed): character similarity (difflib
ratio of the whole text), and the share of paragraphs found whole and in order. Speed: pages per
CPU second, median over --repeats, arms alternated. Prints a table, writes benchmarks/out/pdf_bench.json.
"""

from __future__ import annotations

import argparse
import difflib
import gzip
import io
import json
import statistics
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "corpus-ja" / "wikipedia_ja_sample.txt.gz"
OUT = ROOT / "benchmarks" / "out" / "pdf_bench.json"
FONTS = ("HeiseiMin-W3", "HeiseiKakuGo-W5")


def sentences() -> list[str]:
    if SHARED.exists():
        with gzip.open(SHARED, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
    else:
        from ja_pretrain.resources import sample_corpus_path

        lines = sample_corpus_path().read_text(encoding="utf-8").split("\n")
    return [s for s in lines if 40 <= len(s) <= 200 and s.endswith("。")]


def make(doc: int, pages: int, pool: list[str]) -> tuple[bytes, list[str]]:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    font = FONTS[doc % 2]
    pdfmetrics.registerFont(UnicodeCIDFont(font))
    buffer = io.BytesIO()
    c = canvas.Canvas(buffer, pagesize=A4)
    width, height = A4
    truth = []
    k = doc * 97
    for page in range(1, pages + 1):
        c.setFont(font, 8)
        c.drawString(50, height - 28, f"株式会社見本{doc}（{1000 + doc}）2025年3月期　決算短信〔日本基準〕（連結）")
        c.setFont(font, 10)
        y = height - 70
        heading = f"{page}．経営成績等の概況（その{page}）"
        c.drawString(50, y, heading)
        truth.append(heading)
        y -= 18
        while y > 140:
            paragraph = pool[k % len(pool)]
            k += 1
            for start in range(0, len(paragraph), 38):
                c.drawString(60, y, paragraph[start : start + 38])
                y -= 15
            truth.append(paragraph)
            y -= 6
        for label in ("売上高", "営業利益", "経常利益"):
            c.drawString(60, y, f"{label}　{(k * 37) % 90000 + 1000:,}　△{k % 900 + 10}　{k % 30}.{k % 10}％")
            y -= 15
        c.drawString(width / 2 - 10, 25, f"- {page} -")
        c.showPage()
    c.save()
    return buffer.getvalue(), truth


def pypdf_text(data: bytes) -> str:
    from ja_pretrain.corpus.pdf import pdf_to_text

    return pdf_to_text(data)


def pdfminer_text(data: bytes) -> str:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTTextContainer, LTTextLine

    from ja_pretrain.corpus.pdf import Line, layout_text

    pages, heights = [], []
    for page in extract_pages(io.BytesIO(data)):
        lines = []
        for box in page:
            if isinstance(box, LTTextContainer):
                for line in box:
                    if isinstance(line, LTTextLine):
                        text = line.get_text().rstrip("\n")
                        size = max(1.0, line.height)
                        lines.append(Line(line.x0, line.y0, size, text))
        pages.append(lines)
        heights.append(page.height)
    return layout_text(pages, heights)


def plain(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def accuracy(text: str, truth: list[str]) -> tuple[float, float]:
    got = [plain(p) for p in text.split("\n") if p.strip()]
    want = [plain(p) for p in truth]
    similarity = difflib.SequenceMatcher(None, "".join(got), "".join(want), autojunk=False).ratio()
    position, found = 0, 0
    for paragraph in want:
        if paragraph in got[position:]:
            position = got.index(paragraph, position) + 1
            found += 1
    return similarity, found / len(want)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pool = sentences()
    made = [make(d, args.pages, pool) for d in range(args.documents)]
    arms = {"pypdf": pypdf_text, "pdfminer.six": pdfminer_text}
    seconds = {name: [] for name in arms}
    scores = {name: [] for name in arms}
    for repeat in range(args.repeats):
        for name, arm in arms.items():
            started = time.process_time()
            texts = [arm(data) for data, _ in made]
            seconds[name].append(time.process_time() - started)
            if repeat == 0:
                scores[name] = [accuracy(t, truth) for t, (_, truth) in zip(texts, made, strict=True)]
    pages = args.documents * args.pages
    results = {}
    print(f"{args.documents} PDFs x {args.pages} pages ({', '.join(FONTS)}), {args.repeats} repeats, median CPU time")
    print(f"{'arm':<14}{'char similarity':>17}{'paragraphs whole':>18}{'pages/s':>9}")
    for name in arms:
        similarity = statistics.mean(s for s, _ in scores[name])
        whole = statistics.mean(w for _, w in scores[name])
        rate = pages / statistics.median(seconds[name])
        results[name] = {"char_similarity": similarity, "paragraphs_whole": whole, "pages_per_s": rate}
        print(f"{name:<14}{similarity:>17.4f}{whole:>18.3f}{rate:>9.1f}")
    ratio = results["pypdf"]["pages_per_s"] / results["pdfminer.six"]["pages_per_s"]
    print(f"pypdf / pdfminer.six speed: {ratio:.2f}x")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"documents": args.documents, "pages": args.pages, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

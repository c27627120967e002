"""The bundled sample corpus: shipped in the package, big and varied enough for the quickstart,
and shaped the way the corpus stage expects raw text (paragraph lines, blank line between documents)."""

import unicodedata
from pathlib import Path

import pytest

import ja_pretrain
from ja_pretrain.resources import sample_corpus_path

OPENERS = "「『（(“"
CLOSERS = "」』）)”"
ENDS = "。！？"
FINANCE_TERMS = ("営業利益", "経常利益", "売上高", "前年同期比", "前期比", "配当", "事業等のリスク",
                 "設備投資", "研究開発", "コーポレート・ガバナンス", "経営方針",
                 "有価証券報告書", "決算短信")


@pytest.fixture(scope="module")
def text() -> str:
    return sample_corpus_path().read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def documents(text) -> list[list[str]]:
    return [block.splitlines() for block in text.split("\n\n") if block.strip()]


def count_sentence_ends(line: str) -> int:
    """Sentence marks outside brackets; a run such as ！？ counts once."""
    depth, count = 0, 0
    for i, ch in enumerate(line):
        if ch in OPENERS:
            depth += 1
        elif ch in CLOSERS:
            depth = max(0, depth - 1)
        elif ch in ENDS and depth == 0 and (i + 1 == len(line) or line[i + 1] not in ENDS):
            count += 1
    return count


def test_ships_inside_the_package_and_is_small():
    path = sample_corpus_path()
    assert path.is_file()
    assert Path(ja_pretrain.__file__).parent in path.parents
    assert path.stat().st_size < 1_000_000


def test_layout_is_paragraph_lines_with_one_blank_line_between_documents(text, documents):
    assert not text.startswith("\ufeff") and text.endswith("\n") and not text.endswith("\n\n")
    assert "\n\n\n" not in text
    lines = [line for doc in documents for line in doc]
    assert all(line == line.strip() and line for line in lines)
    # No titles or markup: every paragraph ends a sentence.
    assert all(line[-1] in ENDS + "」）" for line in lines)
    assert len(set(lines)) == len(lines), "duplicate paragraph"


def test_enough_documents_and_sentences_with_several_per_line(documents):
    lines = [line for doc in documents for line in doc]
    sentences = sum(count_sentence_ends(line) for line in lines)
    assert len(documents) >= 80
    assert sentences >= 1000
    assert sentences / len(lines) >= 3, "lines should hold several sentences for the splitter"


def test_finance_documents_in_earnings_report_style(documents):
    finance = [doc for doc in documents
               if sum(term in "".join(doc) for term in FINANCE_TERMS) >= 2]
    assert len(finance) >= 25
    joined = "\n".join("".join(doc) for doc in finance)
    for term in ("親会社株主に帰属する", "通期", "事業等のリスク", "設備投資", "コーポレート・ガバナンス"):
        assert term in joined


def test_has_what_a_japanese_splitter_and_nfkc_must_handle(text):
    assert any(count_sentence_ends(q.split("」")[0]) >= 1 for q in text.split("「")[1:]), \
        "a quotation with a sentence mark inside"
    assert "『" in text and "（" in text and "……" in text and "①" in text
    assert unicodedata.normalize("NFKC", text) != text
    assert any(ch in text for ch in "ＡＩＤＸ０１２３４５６７８９")

"""Corpora as users have them (issue 24): Japanese encodings, Aozora Bunko, PDF, EDINET ZIPs, bad
input stopping or skipped, every removed document counted. Fixtures are made here from the
bundled sample."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest

from ja_pretrain.cli import main
from ja_pretrain.corpus.aozora import aozora_to_text
from ja_pretrain.corpus.build import build_corpus
from ja_pretrain.corpus.encodings import detect
from ja_pretrain.corpus.layout import iter_documents
from ja_pretrain.resources import sample_corpus_path

SAMPLE = [d for d in sample_corpus_path().read_text(encoding="utf-8").split("\n\n") if d.strip()]
WINDOWS_CHARS = "①㈱～Ⅲ"


def corpus_text(out) -> str:
    return "\n".join("\n".join(d) for split in ("train", "valid") for d in iter_documents(out, split))


def manifest(out) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def run(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


# --- encodings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["cp932", "euc_jp", "iso2022_jp"])
def test_detected_encoding_is_read_and_stated(encoding, tmp_path, capsys):
    text = "\n\n".join(SAMPLE[:30]) + "\n"
    if encoding == "cp932":
        text = text.replace("株式会社", WINDOWS_CHARS[1])  # ㈱: Shift_JIS proper rejects it
    path = tmp_path / "legacy.txt"
    path.write_bytes(text.encode(encoding, errors="ignore"))  # EUC-JP and JIS lack ① and friends
    code, err = run(["corpus", str(path), "--out", str(tmp_path / "c"), "--no_progress", "--valid_ratio", "0"], capsys)
    assert code == 0, err
    how = manifest(tmp_path / "c")["counts"]["encodings"][str(path)]
    assert "detected" in how and "confidence" in how
    assert SAMPLE[0].split("\n")[0][:10] in corpus_text(tmp_path / "c")


def test_detection_confidence():
    text = "".join(SAMPLE[:5])
    for encoding in ("utf-8", "cp932", "euc_jp"):
        found = detect(text.encode(encoding))
        assert found.encoding == encoding and found.confidence > 0.9
    assert detect(b"plain ascii").encoding == "utf-8"


def test_windows_file_named_shift_jis_gets_told_to_use_cp932(tmp_path, capsys):
    path = tmp_path / "windows.txt"
    path.write_bytes(("\n\n".join(SAMPLE[:5]) + f"\n\n{WINDOWS_CHARS}を含む文書である。\n").encode("cp932"))
    code, err = run(["corpus", str(path), "--encoding", "shift_jis", "--out", str(tmp_path / "c"), "--no_progress"], capsys)
    assert code == 2 and f"{path}: is not Shift_JIS text" in err and "--encoding cp932" in err
    assert len(err.strip().splitlines()) == 1
    code, err = run(["corpus", str(path), "--encoding", "cp932", "--out", str(tmp_path / "c"), "--no_progress"], capsys)
    assert code == 0, err


def test_sniffing_message_names_the_encoding_not_shift_jis(tmp_path, capsys):
    from ja_pretrain.corpus.sniff import not_text_reason

    reason = not_text_reason(("".join(SAMPLE[:20]) + WINDOWS_CHARS).encode("cp932"))
    assert "iconv -f CP932" in reason and "--encoding cp932" in reason and "SHIFT_JIS" not in reason


# --- Aozora Bunko ------------------------------------------------------------------------------

def aozora_file(body: list[str]) -> str:
    """A work in Aozora's notation, made from sample sentences."""
    lines = ["試作の物語", "青空太郎", "", "-" * 55, "【テキスト中に現れる記号について】", "", "《》：ルビ",
             "（例）漢字《かんじ》", "", "［＃］：入力者注", "-" * 55, "", "［＃５字下げ］一［＃「一」は中見出し］"]
    for k, sentence in enumerate(body):
        if k == 0:
            sentence = "｜東京都《とうきょうと》の話として" + sentence
        elif k == 1:
            sentence = sentence[:3] + "※［＃「てへん＋劣」、第3水準1-84-77］" + sentence[3:]
        elif k == 2:
            sentence = "ここで漢字《かんじ》を読む。" + sentence + "［＃「読む」に傍点］"
        lines.append("　" + sentence)
    lines += ["", "", "底本：「試作の物語」青空書房", "　　　1950（昭和25）年1月1日初版発行", "入力：誰か", "校正：誰か"]
    return "\r\n".join(lines) + "\r\n"


def test_aozora_notation_becomes_plain_sentences():
    body = [s for d in SAMPLE[:3] for s in d.split("\n") if s][:4]
    text = aozora_to_text(aozora_file(body))
    assert "《" not in text and "｜" not in text and "［＃" not in text
    assert "試作の物語" not in text and "青空太郎" not in text and "底本" not in text and "入力" not in text
    assert "【テキスト中に現れる記号について】" not in text
    assert "東京都の話として" in text and "漢字を読む" in text and "挘" in text


def test_aozora_cp932_file_is_detected_and_cleaned(tmp_path, capsys):
    body = [s for d in SAMPLE[:3] for s in d.split("\n") if s]
    path = tmp_path / "work.txt"
    path.write_bytes(aozora_file(body).encode("cp932"))
    out = tmp_path / "c"
    code, err = run(["corpus", str(path), "--out", str(out), "--no_progress", "--valid_ratio", "0"], capsys)
    assert code == 0, err
    m = manifest(out)
    assert m["counts"]["formats"][str(path)] == "aozora" and "CP932" in m["counts"]["encodings"][str(path)]
    text = corpus_text(out)
    assert "青空太郎" not in text and "底本" not in text and "かんじ" not in text and "東京都の話として" in text


# --- PDF ---------------------------------------------------------------------------------------

def make_pdf(pages: list[list[str]], *, encrypt: str | None = None, image_only: bool = False) -> bytes:
    pytest.importorskip("reportlab")
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiMin-W3"))
    buffer = io.BytesIO()
    c = canvas.Canvas(buffer, pagesize=A4, encrypt=encrypt)
    width, height = A4
    for number, lines in enumerate(pages, 1):
        if image_only:
            from PIL import Image

            c.drawImage(ImageReader(Image.new("RGB", (40, 40), "white")), 100, 400, 200, 200)
        else:
            c.setFont("HeiseiMin-W3", 9)
            c.drawString(60, height - 30, "株式会社見本　2024年3月期　決算短信〔日本基準〕（連結）")
            c.setFont("HeiseiMin-W3", 10.5)
            y = height - 80
            for line in lines:
                c.drawString(60, y, line)
                y -= 16
            c.drawString(width / 2, 30, f"- {number} -")
        c.showPage()
    c.save()
    return buffer.getvalue()


def wrap(sentence: str, width: int = 30) -> list[str]:
    return [sentence[i : i + width] for i in range(0, len(sentence), width)]


def test_pdf_text_in_order_without_headers_footers_or_figures(tmp_path, capsys):
    long_sentences = [s for d in SAMPLE[:20] for s in d.split("\n") if len(s) > 45][:6]
    pages = [["1．経営成績等の概況", *wrap(long_sentences[0]), *wrap(long_sentences[1]),
              "売上高　１２，３４５　１３，４５６　９．０％", "営業利益　１，２３４　△５６７"],
             [*wrap(long_sentences[2]), *wrap(long_sentences[3])],
             [*wrap(long_sentences[4]), *wrap(long_sentences[5])]]
    path = tmp_path / "tanshin.pdf"
    path.write_bytes(make_pdf(pages))
    out = tmp_path / "c"
    code, err = run(["corpus", str(path), "--out", str(out), "--no_progress", "--valid_ratio", "0"], capsys)
    assert code == 0, err
    sentences = [s for d in iter_documents(out, "train") for s in d]
    import unicodedata

    # the heading on its own, then every paragraph whole (its line breaks joined), in page order
    assert sentences[0] == "1.経営成績等の概況"
    assert "".join(sentences[1:]) == unicodedata.normalize("NFKC", "".join(long_sentences))
    text = "\n".join(sentences)
    assert "決算短信" not in text and "- 1 -" not in text and "12,345" not in text


@pytest.mark.parametrize("kind,words", [("encrypted", "encrypted PDF"), ("image", "no text, only images")])
def test_bad_pdf_stops_or_is_skipped(kind, words, tmp_path, capsys):
    good = tmp_path / "in" / "a-good.txt"
    good.parent.mkdir()
    good.write_text("\n\n".join(SAMPLE[:10]) + "\n", encoding="utf-8")
    bad = tmp_path / "in" / "b-bad.pdf"
    bad.write_bytes(make_pdf([["秘密の文書である。"]], encrypt="secret") if kind == "encrypted"
                    else make_pdf([[]], image_only=True))
    code, err = run(["corpus", str(good.parent), "--out", str(tmp_path / "c"), "--no_progress"], capsys)
    assert code == 2 and f"{bad}: " in err and words in err and "--on-bad-input skip" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "c").exists()
    code, err = run(["corpus", str(good.parent), "--out", str(tmp_path / "c"), "--no_progress", "--on-bad-input", "skip"],
                    capsys)
    assert code == 0, err
    counts = manifest(tmp_path / "c")["counts"]
    assert [b["path"] for b in counts["bad_inputs"]] == [str(bad)] and words in counts["bad_inputs"][0]["reason"]
    assert counts["documents_removed"]["bad_input"] == 1


# --- EDINET ------------------------------------------------------------------------------------

def edinet_zip(paragraphs: list[str]) -> bytes:
    """A document ZIP shaped like EDINET's: inline XBRL in XBRL/PublicDoc, hidden facts, a numeric table."""
    body = "".join(f'<p class="smt_text6">{p}</p>' for p in paragraphs[1:])
    honbun = (
        '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml" '
        'xmlns:ix="http://www.xbrl.org/2013/inlineXBRL"><head><title>有価証券報告書</title></head><body>'
        '<div style="display:none"><ix:header><ix:hidden><ix:nonNumeric name="jpdei_cor:EDINETCodeDEI">E99999'
        '</ix:nonNumeric></ix:hidden></ix:header></div>'
        '<h3 class="smt_head3">１【経営方針、経営環境及び対処すべき課題等】</h3>'
        f'<p class="smt_text6"><ix:nonNumeric name="x">{paragraphs[0]}</ix:nonNumeric></p>'
        '<table><tr><td>売上高</td><td>12,345</td><td>13,456</td></tr>'
        '<tr><td>経常利益</td><td>1,234</td><td>△567</td></tr></table>'
        f"{body}</body></html>"
    )
    cover = '<html xmlns="http://www.w3.org/1999/xhtml"><body><h1>【表紙】</h1><p>【提出書類】　有価証券報告書</p></body></html>'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("XBRL/PublicDoc/0101010_honbun_jpcrp030000-asr-001_E99999-000_ixbrl.htm", honbun)
        z.writestr("XBRL/PublicDoc/0000000_header_jpcrp030000-asr-001_E99999-000_ixbrl.htm", cover)
        z.writestr("XBRL/AuditDoc/jpaud-aar-cn-001_E99999-000_ixbrl.htm", "<html><body><p>監査報告書の本文である。</p></body></html>")
    return buffer.getvalue()


def test_edinet_zip_becomes_the_report_text(tmp_path, capsys):
    paragraphs = [s for d in SAMPLE[-10:] for s in d.split("\n") if len(s) > 20][:5]
    path = tmp_path / "S100TEST.zip"
    path.write_bytes(edinet_zip(paragraphs))
    from ja_pretrain.corpus.edinet import edinet_to_text

    lines = edinet_to_text(path.read_bytes()).split("\n")
    assert lines[:3] == ["【表紙】", "【提出書類】\u3000有価証券報告書", "１【経営方針、経営環境及び対処すべき課題等】"]
    assert lines[3:] == paragraphs
    out = tmp_path / "c"
    code, err = run(["corpus", str(path), "--out", str(out), "--no_progress", "--valid_ratio", "0"], capsys)
    assert code == 0, err
    text = corpus_text(out)
    assert "E99999" not in text and "12,345" not in text and "監査報告書" not in text


def test_zip_that_is_not_edinet_is_bad_input(tmp_path, capsys):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("photos/cat.jpg", b"\xff\xd8")
    path = tmp_path / "holiday.zip"
    path.write_bytes(buffer.getvalue())
    code, err = run(["corpus", str(path), "--out", str(tmp_path / "c"), "--no_progress"], capsys)
    assert code == 2 and f"{path}: is a ZIP without XBRL/PublicDoc/*.htm" in err and "photos/cat.jpg" in err


# --- quality filters and near duplicates -------------------------------------------------------

def web_documents() -> tuple[list[str], dict[str, int]]:
    """Sample documents, plus documents each filter should remove, plus near copies."""
    japanese = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
    docs = [d for d in SAMPLE[:60] if len(japanese.findall(d)) > 0.6 * len(d)]  # clearly Japanese prose
    junk = {
        "quality_japanese": "Buy cheap watches online now, best prices guaranteed for everyone today.",
        "quality_symbols": "★☆★☆★☆★☆★☆■□■□■□■□■□今月のおすすめ商品を紹介します。人気の商品ばかりですので、ぜひご覧ください。",
        "quality_repeated_lines": "\n".join(["ここをクリックして詳細を見てください。"] * 5 + ["今日は晴れでしたが、明日は雨が降るでしょう。"]),
    }
    docs += list(junk.values())
    copies = 0
    for d in SAMPLE[60:70]:
        lines = d.split("\n")
        if len("".join(lines)) < 150:
            continue
        docs.append(d)
        docs.append("\n".join(lines + ["この記事へのコメントはまだありません。"]))  # boilerplate added
        copies += 1
    return docs, {**{k: 1 for k in junk}, "near_duplicate": copies}


def test_quality_filters_and_near_duplicates_count_every_removed_document(tmp_path, capsys):
    docs, expected = web_documents()
    path = tmp_path / "web.jsonl"
    path.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    out = tmp_path / "c"
    code, err = run(["corpus", str(path), "--out", str(out), "--no_progress", "--quality", "japanese", "symbols",
                     "repeated_lines"], capsys)
    assert code == 0, err
    counts = manifest(out)["counts"]
    removed = counts["documents_removed"]
    for reason, n in expected.items():
        assert removed.get(reason) == n, (reason, removed)
    # nothing read is silently dropped: every document is written or removed for a reason
    written = counts["train_documents"] + counts["valid_documents"]
    assert written + sum(removed.values()) == counts["documents_read"] == len(docs)
    samples = {p.stem: p.read_text(encoding="utf-8") for p in (out / "removed").iterdir()}
    assert "watches" in samples["quality_japanese"] and "japanese 0" in samples["quality_japanese"]
    assert "コメントはまだありません" in samples["near_duplicate"]


@pytest.mark.parametrize("workers", [1, 2])
def test_documents_read_past_max_sentences_are_counted(workers, tmp_path):
    docs, _ = web_documents()
    path = tmp_path / "web.txt"
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    counts = build_corpus([path], tmp_path / "c", max_sentences=30, quality=["all"], near_dedup="on",
                          workers=workers, progress=False)["counts"]
    removed = counts["documents_removed"]
    written = counts["train_documents"] + counts["valid_documents"]
    assert removed["past_max_sentences"] > 0 and written < 10
    assert written + sum(removed.values()) == counts["documents_read"] == len(docs)
    assert not (tmp_path / "c" / "removed" / "past_max_sentences.txt").exists()


def test_near_duplicates_are_removed_whole_before_sentence_dedup(tmp_path):
    docs, expected = web_documents()
    path = tmp_path / "web.txt"
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    off = build_corpus([path], tmp_path / "off", near_dedup="off", progress=False)
    on = build_corpus([path], tmp_path / "on", near_dedup="on", progress=False)
    assert "near_duplicate" not in off["counts"]["documents_removed"]
    assert on["counts"]["documents_removed"]["near_duplicate"] == expected["near_duplicate"]
    # without it each copy leaves its one unique sentence behind, a document of its own
    assert "この記事へのコメントはまだありません。" in corpus_text(tmp_path / "off")
    assert "この記事へのコメントはまだありません。" not in corpus_text(tmp_path / "on")


def test_near_dedup_in_parts_equals_one_machine(tmp_path):
    docs, _ = web_documents()
    path = tmp_path / "web.txt"
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    options = dict(near_dedup="on", quality=["all"], progress=False)
    whole = build_corpus([path], tmp_path / "whole", **options)
    from ja_pretrain.corpus.parts import merge_parts

    for i in range(3):
        build_corpus([path], tmp_path / f"p{i}", shard_index=i, num_shards=3, **options)
    merged = merge_parts([tmp_path / f"p{i}" for i in range(3)], tmp_path / "merged")
    assert merged["counts"]["documents_removed"] == whole["counts"]["documents_removed"]
    for name in ("train-00000.txt", "valid.txt"):
        assert (tmp_path / "merged" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    for sample in (tmp_path / "whole" / "removed").iterdir():
        assert (tmp_path / "merged" / "removed" / sample.name).read_text() == sample.read_text()


def test_bad_quality_option_is_one_line(tmp_path, capsys):
    path = tmp_path / "a.txt"
    path.write_text(SAMPLE[0], encoding="utf-8")
    code, err = run(["corpus", str(path), "--out", str(tmp_path / "c"), "--quality", "shiny"], capsys)
    assert code == 2 and "--quality 'shiny': no such filter" in err

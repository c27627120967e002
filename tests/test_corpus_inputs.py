"""Each input format and compression, format detection, and the bad inputs of issue 2."""

import bz2
import gzip
import json
import lzma

import pytest
import zstandard

from ja_pretrain.cli import main
from ja_pretrain.corpus.build import build_corpus
from ja_pretrain.corpus.layout import iter_documents
from ja_pretrain.corpus.readers import detect_format

SUBJECTS = ["山田さん", "東京の会社", "この研究", "新しい駅", "地元の学校", "古い寺院", "その選手", "市の図書館"]
PLACES = ["大阪", "札幌", "福岡", "名古屋", "仙台", "京都"]
ACTIONS = ["新しい計画を発表した", "多くの人に知られるようになった", "大きな役割を果たした", "記念行事を開いた"]


def documents(n: int, per_doc: int = 3) -> list[list[str]]:
    """n documents of distinct, plausible sentences (each at least 10 characters)."""
    return [
        [
            f"{SUBJECTS[(d + s) % 8]}は{1900 + d}年{s + 1}月に{PLACES[(d * 3 + s) % 6]}で{ACTIONS[(d + 2 * s) % 4]}。"
            for s in range(per_doc)
        ]
        for d in range(n)
    ]


def read_corpus(out) -> list[list[str]]:
    return list(iter_documents(out, "train")) + list(iter_documents(out, "valid"))


def text_bytes(docs) -> bytes:
    # paragraphs: all sentences of a document on one line, blank line between documents
    return "\n\n".join("".join(d) for d in docs).encode() + b"\n"


def xml_dump(docs) -> bytes:
    pages = []
    for i, d in enumerate(docs):
        body = f"'''記事{i}'''は[[日本]]の話題である" + "{{要出典|date=2020年}}。<ref>本</ref>\n\n" + "".join(d)
        pages.append(
            f"<page><title>記事{i}</title><ns>0</ns><id>{i + 1}</id><revision><id>{100 + i}</id>"
            f"<text bytes=\"{len(body)}\" xml:space=\"preserve\">{body.replace('&', '&amp;').replace('<', '&lt;')}</text></revision></page>"
        )
    pages.append('<page><title>転送</title><ns>0</ns><id>900</id><redirect title="記事0" /><revision><text>#転送 [[記事0]]</text></revision></page>')
    pages.append("<page><title>ノート:記事0</title><ns>1</ns><id>901</id><revision><text>議論のページの本文である。</text></revision></page>")
    return (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="ja">\n'
        '<siteinfo><sitename>Wikipedia</sitename><namespaces><namespace key="0" case="first-letter" />'
        '<namespace key="6" case="first-letter">ファイル</namespace><namespace key="14" case="first-letter">Category</namespace>'
        "</namespaces></siteinfo>\n" + "\n".join(pages) + "\n</mediawiki>\n"
    ).encode()


def cirrus_dump(docs) -> bytes:
    lines = []
    for i, d in enumerate(docs):
        lines.append(json.dumps({"index": {"_type": "_doc", "_id": str(i)}}))
        lines.append(json.dumps({"namespace": 0, "title": f"記事{i}", "text": " ".join(d) + "[1]"}, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode()


def jsonl_dump(docs, field="body") -> bytes:
    return "".join(json.dumps({"id": i, field: "\n".join(d)}, ensure_ascii=False) + "\n" for i, d in enumerate(docs)).encode()


COMPRESSORS = {
    "": lambda b: b,
    ".gz": gzip.compress,
    ".xz": lzma.compress,
    ".bz2": bz2.compress,
    ".zst": lambda b: zstandard.ZstdCompressor().compress(b),
}


@pytest.mark.parametrize("suffix", list(COMPRESSORS))
@pytest.mark.parametrize("kind", ["text", "cirrus", "xml", "jsonl"])
def test_each_format_and_compression_round_trips(tmp_path, kind, suffix):
    docs = documents(6)
    data = {"text": text_bytes, "cirrus": cirrus_dump, "xml": xml_dump, "jsonl": jsonl_dump}[kind](docs)
    path = tmp_path / f"input.{kind}{suffix}"
    path.write_bytes(COMPRESSORS[suffix](data))
    options = {"text_field": "body"} if kind == "jsonl" else {}
    manifest = build_corpus([path], tmp_path / "out", valid_ratio=0.3, seed=1, progress=False, **options)
    got = sorted(read_corpus(tmp_path / "out"))
    if kind == "xml":  # a lead paragraph, cleaned of markup, comes first in each document
        docs = [[f"記事{i}は日本の話題である。", *d] for i, d in enumerate(docs)]
        assert manifest["counts"]["skipped_redirects"] == 1
        assert manifest["counts"]["skipped_other_namespaces"] == 1
    assert got == sorted(docs)
    assert manifest["counts"]["documents_read"] == 6
    assert manifest["inputs"]["files"][0]["bytes"] == path.stat().st_size


def test_cc100_format_and_max_sentences(tmp_path):
    docs = documents(10, per_doc=4)
    path = tmp_path / "ja.txt.xz"
    path.write_bytes(lzma.compress("\n\n".join("\n".join(d) for d in docs).encode()))
    build_corpus([path], tmp_path / "out", format="cc100", max_sentences=10, valid_ratio=0, progress=False)
    got = read_corpus(tmp_path / "out")
    assert got == docs[:3]  # the third document crosses 10 sentences and is kept whole


def test_detect_format():
    assert detect_format(b'{"index":{"_type":"_doc","_id":"1"}}\n{"text":"x"}') == "cirrus"
    assert detect_format(b'{"text": "x"}\n') == "jsonl"
    assert detect_format(b'\xef\xbb\xbf<mediawiki xmlns="x">') == "xml"
    assert detect_format("普通の文章。\n".encode()) == "text"
    assert detect_format(b'{"index": {"_id": "1"}, "pad": "' + b"x" * 100) == "cirrus"  # first line cut by the peek


def test_invalid_utf8_is_replaced_and_counted(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("これは壊れた文字を含む文です".encode() + b"\xff\xfe" + "。次の文も十分に長いです。\n".encode())
    manifest = build_corpus([path], tmp_path / "out", valid_ratio=0, progress=False)
    assert manifest["counts"]["invalid_utf8_replaced"] == 2
    assert read_corpus(tmp_path / "out") == [["これは壊れた文字を含む文です\ufffd\ufffd。", "次の文も十分に長いです。"]]


def run_cli(argv, capsys):
    code = main(["corpus", *argv, "--no-progress"])
    return code, capsys.readouterr().err


def test_missing_file(tmp_path, capsys):
    code, err = run_cli([str(tmp_path / "nope.txt.gz"), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "nope.txt.gz: no such file" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".gz", ".xz", ".bz2", ".zst"])
def test_truncated_compressed_input(tmp_path, capsys, suffix):
    docs = documents(400)
    data = COMPRESSORS[suffix](text_bytes(docs))
    path = tmp_path / f"cut.txt{suffix}"
    path.write_bytes(data[: len(data) * 2 // 3])
    code, err = run_cli([str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and f"cut.txt{suffix}" in err and "truncated" in err and "--allow-truncated" in err
    assert not (tmp_path / "out").exists()
    if suffix in (".bz2", ".zst"):
        return  # these decompress in blocks of up to 900 kB / 128 kB: a cut this small keeps nothing
    # with --allow-truncated the complete documents before the cut are used, and the cut is recorded
    manifest = build_corpus([path], tmp_path / "out", allow_truncated=True, valid_ratio=0, progress=False)
    got = read_corpus(tmp_path / "out")
    assert 0 < len(got) < 400 and got == docs[: len(got)]
    assert manifest["counts"]["truncated_inputs"] == [str(path)]


def test_truncated_xml_keeps_complete_pages_only_when_allowed(tmp_path, capsys):
    data = xml_dump(documents(5))
    path = tmp_path / "dump.xml"
    path.write_bytes(data[: data.index(b"<page><title>\xe8\xa8\x98\xe4\xba\x8b3")])  # cut after 3 pages
    code, err = run_cli([str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "dump.xml" in err and "after 3 complete pages" in err
    build_corpus([path], tmp_path / "out", allow_truncated=True, valid_ratio=0, progress=False)
    assert len(read_corpus(tmp_path / "out")) == 3


def test_cirrus_line_that_is_not_json(tmp_path, capsys):
    lines = cirrus_dump(documents(3)).decode().split("\n")
    lines[3] = lines[3][:-10]  # a cut document line
    path = tmp_path / "cirrus.json"
    path.write_text("\n".join(lines))
    code, err = run_cli([str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "cirrus.json:4: not a JSON line" in err
    assert not (tmp_path / "out").exists()


def test_jsonl_missing_field_names_the_option(tmp_path, capsys):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(jsonl_dump(documents(2), field="body"))
    code, err = run_cli([str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "docs.jsonl:1: no field 'text'" in err and "--text-field" in err


def test_nothing_left_after_filtering(tmp_path, capsys):
    path = tmp_path / "short.txt"
    path.write_text("短い。\n\nこれも。\n")
    code, err = run_cli([str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "short.txt: no sentence left after filtering" in err and "2 shorter than --min-chars 10" in err
    assert not (tmp_path / "out").exists()


def test_output_dir_holding_something_else(tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_bytes(text_bytes(documents(3)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    code, err = run_cli([str(path), "--out", str(out)], capsys)
    assert code == 2 and "notes.md" in err and "not an earlier output of this command" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.md"]


def test_text_reader_is_independent_of_block_boundaries(monkeypatch):
    import io
    import random

    from ja_pretrain.corpus import readers

    class Source:
        def __init__(self, data):
            self.stream = io.BufferedReader(io.BytesIO(data), 64)

    rng = random.Random(0)
    for _ in range(200):
        pieces = []
        for _ in range(rng.randint(0, 10)):
            pieces.append(rng.choice(["あいう", "abc", "東京\r", "x y", " ", ""]))
            pieces.append(rng.choice(["\n", "\n\n", "\n \n", "\r\n", "\n\t\n\n"]))
        data = "".join(pieces).encode()
        expected, current = [], []
        for line in data.decode().split("\n"):  # the definition: blank (whitespace-only) lines separate
            if line.strip():
                current.append(line)
            elif current:
                expected.append("\n".join(current))
                current = []
        if current:
            expected.append("\n".join(current))
        for block in (1, 2, 3, 7, 64):  # block edges inside characters, lines and blank runs
            monkeypatch.setattr(readers, "READ_BLOCK", block)
            got = [text for _, text in readers._text_documents(Source(data), readers.ReadStats())]
            assert got == expected, (data, block)

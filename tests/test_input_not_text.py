"""Input that is not text is refused, naming the file, by every stage that reads text; a
directory given as a file says it is a directory."""

from __future__ import annotations

import gzip
import os

import pytest

from ja_pretrain.cli import main
from ja_pretrain.corpus.sniff import not_text_reason

from tokdata_support import sample_documents, trained_tokenizer

TEXT = "\n\n".join("\n".join(d) for d in sample_documents()[:40]) + "\n"


def err_of(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.fixture
def gz_corpus(tmp_path):
    path = tmp_path / "ja.txt.gz"
    path.write_bytes(gzip.compress(TEXT.encode()))
    return path


@pytest.mark.parametrize("argv", [
    ["train-tokenizer", "--input_file", "{f}", "--model_dir", "{out}", "--vocab_size", "300"],
    ["build-dataset", "--corpus", "{f}", "--tokenizer", "{tok}", "--out", "{out}", "--sequence-length", "32"],
    ["run-pretraining", "--input_file", "{f}", "--tokenizer_dir", "{tok}", "--model_dir", "{out}",
     "--model_type", "bert-micro", "--max_steps", "1"],
])
def test_compressed_corpus_is_refused_by_the_text_stages(argv, gz_corpus, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [a.format(f=gz_corpus, out=out, tok=trained_tokenizer()) for a in argv]
    code, err = err_of(argv, capsys)
    assert code == 2, err
    assert f"{gz_corpus}: is gzip-compressed" in err and "ja-pretrain corpus" in err
    assert not out.exists()


def test_corpus_decompresses_what_the_text_stages_refuse(gz_corpus, tmp_path, capsys):
    code, err = err_of(["corpus", str(gz_corpus), "--out", str(tmp_path / "c"), "--no_progress"], capsys)
    assert code == 0, err
    assert (tmp_path / "c" / "manifest.json").is_file()


def _binary(n: int) -> bytes:
    return os.urandom(n)


@pytest.mark.parametrize("name,content,words", [
    ("random.bin", _binary(200_000), "not UTF-8 text"),
    ("tool", b"\x7fELF\x02\x01\x01" + _binary(5000), "an executable"),
    ("utf16.txt", TEXT.encode("utf-16"), "NUL bytes"),
    ("archive.zip", b"PK\x03\x04" + _binary(1000), "not a readable ZIP"),
])
def test_corpus_refuses_bytes_that_are_not_text(name, content, words, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(content)
    code, err = err_of(["corpus", str(path), "--out", str(tmp_path / "c"), "--no_progress"], capsys)
    assert code == 2 and f"{path}: " in err and words in err, err
    assert not (tmp_path / "c").exists()


def test_binary_inside_a_compressed_file_is_named_as_such(tmp_path, capsys):
    path = tmp_path / "dump.gz"
    path.write_bytes(gzip.compress(b"\x00\x01" * 5000))
    code, err = err_of(["corpus", str(path), "--out", str(tmp_path / "c"), "--no_progress"], capsys)
    assert code == 2 and "NUL bytes" in err and "after gzip decompression" in err


def test_a_few_bad_bytes_in_real_text_still_pass():
    head = TEXT.encode()
    flawed = head[:1000] + b"\xff" + head[1000:]
    assert not_text_reason(flawed) is None
    assert not_text_reason(head[:-1]) is None  # a character cut at the end of the peek is not a flaw
    assert not_text_reason(b"") is None


def test_directory_as_an_input_file_says_so(tmp_path, capsys):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "notes.md").write_text("not an input kind")
    code, err = err_of(["corpus", str(folder), "--out", str(tmp_path / "c"), "--no_progress"], capsys)
    assert code == 2 and f"{folder}: a directory without input files" in err
    code, err = err_of(["pipeline", str(folder), "--dry-run"], capsys)
    assert code == 2 and "is a directory, not a file" in err

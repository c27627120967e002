"""train-tokenizer: special-token ids, training-time normalisation, parts, options, bad inputs."""

import json
import sys
import unicodedata

import pytest

from ja_pretrain.cli import main
from ja_pretrain.errors import UserError
from ja_pretrain.tokenization.train import split_into_parts, train_tokenizer

from tokdata_support import sample_corpus, sample_documents, scratch, trained_tokenizer, write_corpus

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]", "[unused2]"]


def test_wordpiece_special_tokens_come_first_in_order():
    directory = trained_tokenizer("ipadic", "wordpiece")
    vocab = (directory / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab[: len(SPECIALS)] == SPECIALS
    assert len(vocab) == len(set(vocab))


@pytest.mark.parametrize("subwords", ["wordpiece", "sentencepiece"])
def test_autotokenizer_loads_it_as_bert_japanese_with_pad_at_zero(subwords):
    from transformers import AutoTokenizer

    directory = trained_tokenizer("unidic_lite", subwords)
    tok = AutoTokenizer.from_pretrained(directory)
    assert type(tok).__name__ == "BertJapaneseTokenizer"
    assert tok.word_tokenizer_type == "mecab" and tok.subword_tokenizer_type == subwords
    assert tok.mecab_kwargs == {"mecab_dic": "unidic_lite"}
    assert [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id] == [0, 1, 2, 3, 4]
    assert tok.convert_tokens_to_ids("[unused2]") == 7
    encoded = tok("今日は晴れ。", "明日は雨。")
    ids = encoded["input_ids"]
    assert ids[0] == 2 and ids[-1] == 3 and ids.count(3) == 2
    config = json.loads((directory / "tokenizer_config.json").read_text())
    assert config["do_lower_case"] is False and config["tokenizer_class"] == "BertJapaneseTokenizer"
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["counts"]["vocab_size"] == tok.vocab_size
    assert manifest["counts"]["sentences"] == sum(len(d) for d in sample_documents()[len(sample_documents()) // 10:])


WIDE_DOCUMENTS = [[
    "ＡＩとＩｏＴのﾃﾞｰﾀを１２３件集めた。", "ｻｰﾊﾞｰのＣＰＵ使用率は８０％だった。",
    "ＡＩ　ｻｰﾊﾞｰ　ﾃﾞｰﾀ　ＩｏＴ　ＣＰＵ。",
]] * 40


@pytest.mark.parametrize("subwords", ["wordpiece", "sentencepiece"])
def test_training_text_is_nfkc_normalised_like_load_time(subwords):
    from transformers import AutoTokenizer

    corpus = write_corpus(scratch("wide") / "corpus", WIDE_DOCUMENTS, shards=1)
    out = train_tokenizer(corpus, scratch("wide-tok") / "tok", tokenizer_type=subwords, vocab_size=120,
                          min_frequency=1, limit_alphabet=100, num_unused_tokens=0, workers=1)
    if subwords == "wordpiece":
        vocab = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    else:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(out / "spiece.model"))
        vocab = [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]
    # Full-width Latin and half-width kana never survive NFKC, so they must not be in the vocabulary.
    assert not [t for t in vocab if unicodedata.normalize("NFKC", t) != t]
    assert any("ー" in t for t in vocab) and any("A" in t for t in vocab)
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok(WIDE_DOCUMENTS[0][2], add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids


def test_parts_are_cut_at_document_boundaries_and_give_the_same_vocabulary():
    documents = [[f"文書{i}の{j}番目の文です。" for j in range(1 + i % 5)] for i in range(60)]
    corpus = write_corpus(scratch("parts") / "corpus", documents, shards=2)
    work = scratch("parts-work")
    parts, total = split_into_parts(sorted(corpus.glob("train-*.txt")), work, 4, None, 0)
    assert total == sum(len(d) for d in documents)
    seen = []
    for part in parts:
        blocks = [b.splitlines() for b in part.read_text(encoding="utf-8").split("\n\n") if b.strip()]
        assert blocks, "every part gets documents"
        seen.extend(blocks)
    assert seen == documents
    # The same word counts whatever the parts, so the same vocabulary, even one too small to
    # take every merge (ties at its edge are broken the same way).
    one = train_tokenizer(corpus, scratch("p1") / "tok", vocab_size=120, min_frequency=1, num_files=1, workers=1)
    four = train_tokenizer(corpus, scratch("p4") / "tok", vocab_size=120, min_frequency=1, num_files=4, workers=2,
                           intermediate_dir=scratch("p4-work"))
    vocab_one = (one / "vocab.txt").read_text().splitlines()
    assert vocab_one == (four / "vocab.txt").read_text().splitlines()
    assert any(len(t.lstrip("#")) > 1 and not t.startswith("[") for t in vocab_one)  # merges were learnt


def test_same_input_and_options_give_the_same_vocabulary_every_run():
    """The trainer breaks ties by ids it hands out in hash order: before the fix, 8 runs on the
    sample at 4,000 pieces gave 4 different vocabularies."""
    out = scratch("again") / "tok"
    vocabularies = set()
    for _ in range(5):
        train_tokenizer(sample_corpus(), out, vocab_size=4000, min_frequency=1, limit_alphabet=2000, workers=1,
                        force=True)
        vocabularies.add((out / "vocab.txt").read_text(encoding="utf-8"))
    assert len(vocabularies) == 1
    vocab = vocabularies.pop().splitlines()
    assert len(vocab) == 4000 and any(t.startswith("##") for t in vocab)


def test_max_sentences_samples_and_rerun_is_skipped():
    out = scratch("max") / "tok"
    train_tokenizer(sample_corpus(), out, vocab_size=600, max_sentences=50, workers=1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["sentences"] == 50
    before = (out / "manifest.json").stat().st_mtime_ns
    train_tokenizer(sample_corpus(), out, vocab_size=600, max_sentences=50, workers=1)
    assert (out / "manifest.json").stat().st_mtime_ns == before
    train_tokenizer(sample_corpus(), out, vocab_size=600, max_sentences=60, workers=1)
    assert json.loads((out / "manifest.json").read_text())["counts"]["sentences"] == 60


def test_cli_accepts_the_seed_flags_in_both_spellings(capsys):
    out = scratch("cli")
    argv = ["train-tokenizer", "--input_file", str(sample_corpus()), "--model_dir", str(out / "a"),
            "--intermediate_dir", str(out / "split"), "--num_files", "2", "--mecab_dic_type", "ipadic",
            "--tokenizer_type", "wordpiece", "--vocab_size", "700", "--min_frequency", "2",
            "--limit_alphabet", "500", "--num_unused_tokens", "4"]
    assert main(argv) == 0
    hyphen = [a.replace("_", "-") if a.startswith("--") else a for a in argv]
    hyphen[hyphen.index("--model-dir") + 1] = str(out / "b")
    assert main(hyphen) == 0
    assert (out / "a" / "vocab.txt").read_text() == (out / "b" / "vocab.txt").read_text()
    assert (out / "a" / "vocab.txt").read_text().splitlines()[5:9] == [f"[unused{i}]" for i in range(4)]
    assert len(list((out / "split").glob("part-*.txt"))) == 2
    assert "train-tokenizer:" in capsys.readouterr().out


def test_sudachi_words(tmp_path):
    pytest.importorskip("sudachidict_core")
    from transformers import AutoTokenizer

    from ja_pretrain.tokenization.encoder import FastEncoder

    out = train_tokenizer(sample_corpus(), tmp_path / "tok", word_tokenizer="sudachi", sudachi_mode="C",
                          vocab_size=800, workers=1, max_sentences=300)
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["word_tokenizer_type"] == "sudachi" and config["sudachi_kwargs"]["sudachi_split_mode"] == "C"
    sentences = [s for d in sample_documents()[:15] for s in d]
    reference = AutoTokenizer.from_pretrained(out)(sentences, add_special_tokens=False)["input_ids"]
    assert FastEncoder.from_pretrained(out).encode_sentences(sentences) == reference


@pytest.mark.parametrize("content", ["", "\n\n  \n\n\t\n"])
def test_empty_input_is_an_error_and_writes_nothing(tmp_path, content):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(content)
    with pytest.raises(UserError, match="no sentences"):
        train_tokenizer(corpus, tmp_path / "tok", workers=1)
    assert not (tmp_path / "tok").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["corpus.txt"]


def test_missing_dictionary_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "unidic", None)  # makes `import unidic` fail
    with pytest.raises(UserError, match=r"pip install unidic"):
        train_tokenizer(sample_corpus(), tmp_path / "tok", mecab_dic_type="unidic", workers=1)
    assert not (tmp_path / "tok").exists()


@pytest.mark.parametrize("options, message", [
    ({"vocab_size": 10}, "--vocab_size 10"),
    ({"tokenizer_type": "bpe"}, "--tokenizer_type 'bpe'"),
    ({"num_files": 0}, "--num_files 0"),
    ({"tokenizer_type": "sentencepiece", "vocab_size": 100}, "raise --vocab_size"),
])
def test_bad_options(tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        train_tokenizer(sample_corpus(), tmp_path / "tok", workers=1, **options)
    assert not (tmp_path / "tok").exists()


def test_sentence_sample_is_exact_and_uniform():
    import numpy as np

    from ja_pretrain.tokenization.train import _Sampler

    hits = np.zeros(40)
    for seed in range(500):
        sampler = _Sampler(10, 40, seed)
        chosen = np.array([sampler.take() for _ in range(40)])
        assert chosen.sum() == 10
        hits += chosen
    assert np.all(np.abs(hits / 500 - 0.25) < 0.08)  # every position about equally likely


def test_more_parts_than_documents(tmp_path):
    """--num_files above the document count leaves some parts empty; they must simply count nothing."""
    corpus = write_corpus(tmp_path / "corpus", sample_documents()[:2], shards=1)
    out = train_tokenizer(corpus, tmp_path / "tok", num_files=5, vocab_size=300, min_frequency=1,
                          limit_alphabet=200, workers=1)
    vocab = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(vocab) > 50


def test_model_dir_holding_other_files_is_refused(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(UserError, match="--model_dir .*not an earlier output"):
        train_tokenizer(sample_corpus(), mine, vocab_size=300, min_frequency=1, limit_alphabet=200, workers=1)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_parts_left_by_a_killed_run_are_removed_by_the_next():
    root = scratch("stale")
    left = root / ".tok.tokenizer-work-x1y2"
    left.mkdir()
    (left / "part-00000.txt").write_text("文\n" * 1000, encoding="utf-8")
    other = root / ".another.tokenizer-work-x1y2"  # another model dir's: not ours to remove
    other.mkdir()
    train_tokenizer(sample_corpus(), root / "tok", vocab_size=600, max_sentences=50, workers=1)
    assert sorted(p.name for p in root.iterdir()) == [".another.tokenizer-work-x1y2", "tok"]

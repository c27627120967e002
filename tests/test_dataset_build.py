"""build-dataset: the store, packing and pair invariants, batches, shards, bad inputs."""

import json
import sys

import numpy as np
import pytest

from ja_pretrain.cli import main
from ja_pretrain.dataset import build_dataset, open_samples
from ja_pretrain.dataset.build import merge_shards
from ja_pretrain.dataset.packing import packed_samples
from ja_pretrain.dataset.store import TokenStore, token_dtype
from ja_pretrain.errors import UserError
from ja_pretrain.tokenization.encoder import FastEncoder

from tokdata_support import sample_corpus, sample_documents, scratch, trained_tokenizer, write_corpus

LENGTH = 32  # short, so that some sentences are longer than a sample and get split


@pytest.fixture(scope="module")
def packed():
    return build_dataset(sample_corpus(), trained_tokenizer(), scratch("packed") / "ds",
                         sequence_length=LENGTH, form="packed", workers=2, progress=False)


@pytest.fixture(scope="module")
def pairs():
    return build_dataset(sample_corpus(), trained_tokenizer(), scratch("pairs") / "ds",
                         sequence_length=LENGTH, form="pairs", progress=False)


def test_store_holds_every_sentence_as_the_encoder_gives_it(packed):
    documents = sample_documents()
    train_docs = documents[len(documents) // 10:]
    store = TokenStore(packed, "train")
    assert store.tokens.dtype == np.uint16
    assert store.n_documents == len(train_docs)
    sentences = [s for d in train_docs for s in d]
    ids, starts, lengths = FastEncoder(trained_tokenizer()).encode_flat(sentences)
    assert np.array_equal(store.sentence_lengths(), lengths[lengths > 0])
    assert np.array_equal(np.asarray(store.tokens), ids)
    assert np.array_equal(store.word_starts(np.arange(store.n_tokens)), starts)
    assert np.array_equal(np.diff(store.document_sentences), [len(d) for d in train_docs])


def test_packed_samples_stay_in_one_document_fit_and_cover_every_sentence_once(packed):
    samples = open_samples(packed)
    store = samples.store
    rows = np.asarray(samples.samples)
    starts, ends = rows[:, 0], rows[:, 1]
    assert np.all(ends - starts <= LENGTH - 2) and np.all(ends > starts)
    # disjoint and, in order, covering every token
    assert starts[0] == 0 and ends[-1] == store.n_tokens and np.array_equal(starts[1:], ends[:-1])
    doc_of_token_start = np.searchsorted(store.sentence_offsets[np.asarray(store.document_sentences)], starts, "right")
    doc_of_token_last = np.searchsorted(store.sentence_offsets[np.asarray(store.document_sentences)], ends - 1, "right")
    assert np.array_equal(doc_of_token_start, doc_of_token_last), "a sample crosses a document boundary"
    offsets = np.asarray(store.sentence_offsets)
    lengths = np.diff(offsets)
    fits = lengths <= LENGTH - 2
    assert (~fits).any(), "the fixture should include a sentence longer than a sample"
    # a sentence that fits lies in exactly one sample, and starts none in its middle
    sample_of_start = np.searchsorted(starts, offsets[:-1], "right") - 1
    sample_of_last = np.searchsorted(starts, offsets[1:] - 1, "right") - 1
    assert np.array_equal(sample_of_start[fits], sample_of_last[fits])
    # samples begin only at sentence starts or inside a split over-long sentence
    at_sentence = np.isin(starts, offsets[:-1])
    inside_long = np.isin(np.searchsorted(offsets, starts, "right") - 1, np.flatnonzero(~fits))
    assert np.all(at_sentence | inside_long)


def test_packed_batch_layout(packed):
    samples = open_samples(packed)
    assert samples.form == "packed" and samples.sequence_length == LENGTH
    assert samples.special_ids == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    picks = np.array([0, len(samples) - 1, 3, 3], dtype=np.int64)
    batch = samples.batch(picks)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "special_tokens_mask", "word_start"}
    for name, dtype in [("input_ids", np.int64), ("attention_mask", np.int64), ("token_type_ids", np.int64),
                        ("special_tokens_mask", bool), ("word_start", bool)]:
        assert batch[name].dtype == dtype and batch[name].shape == (4, LENGTH)
    rows = np.asarray(samples.samples)[picks]
    for b, (start, end) in enumerate(rows):
        n = end - start
        ids = batch["input_ids"][b]
        assert ids[0] == 2 and ids[n + 1] == 3 and np.all(ids[n + 2:] == 0)
        assert np.array_equal(ids[1 : n + 1], samples.store.tokens[start:end])
        assert batch["attention_mask"][b].sum() == n + 2
        positions = np.arange(LENGTH)
        assert np.array_equal(batch["special_tokens_mask"][b], np.isin(positions, [0, n + 1]) | (positions > n + 1))
        flags = samples.store.word_starts(np.arange(start, end))
        flags[0] = True  # a sample that begins inside a split word still begins a unit
        assert np.array_equal(batch["word_start"][b][1 : n + 1], flags)
        assert batch["word_start"][b][0] and batch["word_start"][b][n + 1 :].all()
    assert not batch["token_type_ids"].any()


def test_pairs_follow_or_come_from_another_document(pairs):
    samples = open_samples(pairs)
    rows = np.asarray(samples.samples)
    a0, a1, b0, b1, label = rows.T
    assert np.all(a1 > a0) and np.all(b1 > b0) and np.all((a1 - a0) + (b1 - b0) <= LENGTH - 3)
    assert 0.3 < label.mean() < 0.7
    assert np.all(b0[label == 0] == a1[label == 0])  # B is the text right after A
    doc_bounds = samples.store.sentence_offsets[np.asarray(samples.store.document_sentences)]
    doc_a = np.searchsorted(doc_bounds, a0, "right")
    doc_b = np.searchsorted(doc_bounds, b0, "right")
    assert np.all(doc_a[label == 1] != doc_b[label == 1])
    assert np.all(doc_a[label == 0] == doc_b[label == 0])
    assert np.all(np.searchsorted(doc_bounds, b1 - 1, "right") == doc_b)
    # every token is read exactly once as an A or as a true-continuation B
    covered = np.zeros(len(samples.store.tokens), dtype=np.int64)
    for x0, x1, y0, y1, is_random in rows:
        covered[x0:x1] += 1
        if not is_random:
            covered[y0:y1] += 1
    assert np.all(covered == 1)

    batch = samples.batch(np.arange(6))
    assert np.array_equal(batch["next_sentence_label"], label[:6])
    for b in range(6):
        na, nb = a1[b] - a0[b], b1[b] - b0[b]
        ids, types = batch["input_ids"][b], batch["token_type_ids"][b]
        assert ids[0] == 2 and ids[na + 1] == 3 and ids[na + nb + 2] == 3
        assert np.array_equal(ids[na + 2 : na + nb + 2], samples.store.tokens[b0[b]:b1[b]])
        assert np.all(types[: na + 2] == 0) and np.all(types[na + 2 : na + nb + 3] == 1) and np.all(types[na + nb + 3 :] == 0)
        assert batch["attention_mask"][b].sum() == na + nb + 3


def test_valid_split_comes_from_valid_txt(packed):
    valid = open_samples(packed, "valid")
    n_valid_docs = len(sample_documents()) // 10
    assert valid.store.n_documents == n_valid_docs
    assert valid.store.n_sentences == sum(len(d) for d in sample_documents()[:n_valid_docs])
    manifest = json.loads((packed / "manifest.json").read_text())
    assert manifest["splits"]["valid"]["samples"] == len(valid) > 0


def test_rerun_is_skipped_and_dtype_can_be_forced(packed):
    before = (packed / "manifest.json").stat().st_mtime_ns
    build_dataset(sample_corpus(), trained_tokenizer(), packed, sequence_length=LENGTH, form="packed", workers=2,
                  progress=False)
    assert (packed / "manifest.json").stat().st_mtime_ns == before
    wide = build_dataset(sample_corpus(), trained_tokenizer(), scratch("u32") / "ds", sequence_length=LENGTH,
                         dtype="uint32", progress=False)
    store = TokenStore(wide, "train")
    assert store.tokens.dtype == np.uint32
    assert np.array_equal(np.asarray(store.tokens), np.asarray(TokenStore(packed, "train").tokens))


def test_token_dtype_choice():
    assert token_dtype(32768) is np.uint16 and token_dtype(65535) is np.uint16
    assert token_dtype(65536) is np.uint32
    with pytest.raises(UserError, match="uint16 cannot hold a vocabulary of 70000"):
        token_dtype(70000, "uint16")


def test_shards_merge_into_the_same_documents(packed):
    root = scratch("shards")
    parts = [build_dataset(sample_corpus(), trained_tokenizer(), root / f"part{i}", sequence_length=LENGTH,
                           form="packed", shard_index=i, num_shards=2, progress=False) for i in range(2)]
    with pytest.raises(UserError, match="not a finished dataset"):
        open_samples(parts[0])
    assert main(["build-dataset", "--merge", str(parts[1]), str(parts[0]), "--out", str(root / "merged")]) == 0
    merged, whole = TokenStore(root / "merged", "train"), TokenStore(packed, "train")

    def documents(store):
        bounds = store.sentence_offsets[np.asarray(store.document_sentences)]
        return sorted(tuple(store.tokens[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True))

    assert merged.n_tokens == whole.n_tokens and documents(merged) == documents(whole)
    assert len(open_samples(root / "merged")) == len(open_samples(packed))
    with pytest.raises(UserError, match="exactly shards 0..1"):
        merge_shards([parts[0]], root / "bad")


def test_packing_of_hand_made_boundaries():
    # documents: [5, 3] [10] [2, 2, 2]; capacity 6 (L=8)
    offsets = np.cumsum([0, 5, 3, 10, 2, 2, 2])
    docs = np.array([0, 2, 3, 6])
    got = packed_samples(offsets, docs, 8).tolist()
    assert got == [[0, 5], [5, 8], [8, 14], [14, 18], [18, 24]]


@pytest.mark.parametrize("content", ["", "\n\n   \n\n"])
def test_empty_corpus_is_an_error_and_writes_nothing(tmp_path, content):
    (tmp_path / "corpus.txt").write_text(content)
    with pytest.raises(UserError, match="no text to encode"):
        build_dataset(tmp_path / "corpus.txt", trained_tokenizer(), tmp_path / "ds", sequence_length=16, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt"]


def test_bad_inputs_are_errors_and_write_nothing(tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus", sample_documents()[:5])
    out = tmp_path / "ds"
    with pytest.raises(UserError, match="must be at least 8"):
        build_dataset(corpus, trained_tokenizer(), out, sequence_length=7)
    no_vocab = tmp_path / "tok"
    no_vocab.mkdir()
    (no_vocab / "tokenizer_config.json").write_text((trained_tokenizer() / "tokenizer_config.json").read_text())
    with pytest.raises(UserError, match="vocab.txt is missing"):
        build_dataset(corpus, no_vocab, out, sequence_length=16)
    config = json.loads((trained_tokenizer() / "tokenizer_config.json").read_text())
    config["mecab_kwargs"]["mecab_dic"] = "unidic"
    (no_vocab / "tokenizer_config.json").write_text(json.dumps(config))
    (no_vocab / "vocab.txt").write_text((trained_tokenizer() / "vocab.txt").read_text())
    monkeypatch.setitem(sys.modules, "unidic", None)  # as if the package were not installed
    with pytest.raises(UserError, match="pip install unidic"):
        build_dataset(corpus, no_vocab, out, sequence_length=16)
    with pytest.raises(UserError, match="no such file"):
        build_dataset(tmp_path / "nope", trained_tokenizer(), out, sequence_length=16)
    assert not out.exists()
    assert main(["build-dataset", "--corpus", str(corpus), "--tokenizer", str(trained_tokenizer()),
                 "--out", str(out), "--sequence-length", "4"]) == 2
    assert not out.exists()


@pytest.mark.parametrize("form", ["packed", "pairs"])
def test_samples_built_in_small_chunks_equal_one_pass(packed, tmp_path, form):
    from ja_pretrain.dataset.packing import write_samples

    store = TokenStore(packed, "train")
    whole = write_samples(store, tmp_path / "whole.npy", form, LENGTH, seed=3, chunk_sentences=1 << 30)
    pieces = write_samples(store, tmp_path / "pieces.npy", form, LENGTH, seed=3, chunk_sentences=7)
    assert whole == pieces > 0
    assert np.array_equal(np.load(tmp_path / "whole.npy"), np.load(tmp_path / "pieces.npy"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pieces.npy", "whole.npy"]


def test_out_holding_other_files_is_refused_and_left_alone(tmp_path):
    """build-dataset replaces its --out whole: a directory of someone else's files (or another
    stage's output, such as the corpus itself) must be refused, not swept away."""
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(UserError, match="not an earlier output"):
        build_dataset(sample_corpus(), trained_tokenizer(), foreign, sequence_length=32, progress=False)
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "keep me"
    corpus_copy = write_corpus(tmp_path / "corpus", sample_documents()[:4])
    (corpus_copy / "manifest.json").write_text(json.dumps({"stage": "corpus"}), encoding="utf-8")
    assert main(["build-dataset", "--corpus", str(corpus_copy), "--tokenizer", str(trained_tokenizer()),
                 "--out", str(corpus_copy), "--sequence-length", "32", "--no-progress"]) == 2
    assert sorted(p.name for p in corpus_copy.iterdir()) == ["manifest.json", "train-00000.txt", "train-00001.txt"]

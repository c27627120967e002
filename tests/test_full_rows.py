"""Rows filled with several documents: the packing, the rows as the model sees them, and the
isolation of each document (its outputs do not change when another shares its row)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from ja_pretrain.config.parameters import load_parameters
from ja_pretrain.dataset import build_dataset
from ja_pretrain.dataset.packing import full_row_samples
from ja_pretrain.dataset.samples import open_samples
from ja_pretrain.models.selected_output import document_mask, encode_selected
from ja_pretrain.training.objectives import ObjectiveOptions, build_bert_objective, build_electra_objective

from tokdata_support import sample_documents, scratch, trained_tokenizer, write_corpus

SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}


@pytest.mark.parametrize("joined", [False, True])
def test_rows_cover_every_token_once_in_order_and_never_overflow(joined):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=400)  # short documents and ones longer than a row
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    length = 64
    rows = full_row_samples(offsets, length, joined=joined)
    assert rows[0, 0] == 0 and rows[-1, 1] == offsets[-1]
    assert np.array_equal(rows[1:, 0], rows[:-1, 1])  # contiguous: every token once, in order
    for start, end in rows:
        pieces = np.searchsorted(offsets, end - 1, side="right") - np.searchsorted(offsets, start, side="right") + 1
        used = (end - start) + (pieces + 1 if joined else 2 * pieces)
        assert end > start and used <= length
    positions = len(rows) * length
    padding = sum(length - ((e - s) + (1 + (np.searchsorted(offsets, e - 1, side="right")
                                             - np.searchsorted(offsets, s, side="right") + 1) if joined else
                                    2 * (np.searchsorted(offsets, e - 1, side="right")
                                         - np.searchsorted(offsets, s, side="right") + 1))) for s, e in rows)
    assert padding / positions < 0.02  # only the last row and rows closed with under 3 free positions


@pytest.fixture(scope="module")
def full_dataset():
    corpus = write_corpus(scratch("full-corpus") / "corpus", sample_documents()[:120])
    out = {}
    for form in ("packed", "full", "joined"):
        out[form] = build_dataset(corpus, trained_tokenizer(), scratch(f"full-{form}") / "ds", sequence_length=64,
                                  form=form, progress=False)
    return out


def _pieces(batch, row):
    """A full-form row cut into its documents' pieces: (ids, position_ids, word_start) each."""
    ids, docs = batch["input_ids"][row], batch["document_ids"][row]
    return [(ids[docs == d], batch["position_ids"][row][docs == d], batch["word_start"][row][docs == d])
            for d in range(1, docs.max() + 1)]


def test_full_rows_are_each_document_as_its_own_sequence(full_dataset):
    samples = open_samples(full_dataset["full"])
    manifest = json.loads((full_dataset["full"] / "manifest.json").read_text())
    packed = json.loads((full_dataset["packed"] / "manifest.json").read_text())
    assert manifest["splits"]["train"]["fill"] >= 0.98
    assert manifest["splits"]["train"]["text_fill"] > packed["splits"]["train"]["text_fill"]
    batch = samples.batch(np.arange(len(samples)))
    store, text = samples.store, []
    for row in range(len(samples)):
        for ids, positions, word_start in _pieces(batch, row):
            assert ids[0] == SPECIAL["cls"] and ids[-1] == SPECIAL["sep"]
            assert np.array_equal(positions, np.arange(len(ids)))  # positions restart per document
            assert word_start[1]  # a piece's first token starts a word, even cut mid-word
            text.append(ids[1:-1])
    assert np.array_equal(np.concatenate(text), np.asarray(store.tokens, dtype=np.int64))
    pad = batch["input_ids"] == SPECIAL["pad"]
    assert np.array_equal(batch["document_ids"] == 0, pad)
    assert np.array_equal(batch["attention_mask"] == 0, pad)
    assert np.array_equal(batch["special_tokens_mask"], np.isin(batch["input_ids"], [0, 2, 3]))


def test_joined_rows_hold_the_documents_between_separators(full_dataset):
    samples = open_samples(full_dataset["joined"])
    batch = samples.batch(np.arange(len(samples)))
    assert "document_ids" not in batch and (batch["input_ids"][:, 0] == SPECIAL["cls"]).all()
    text = batch["input_ids"][~batch["special_tokens_mask"]]
    assert np.array_equal(text, np.asarray(samples.store.tokens, dtype=np.int64))
    offsets = samples.document_offsets
    documents_per_row = [np.searchsorted(offsets, e - 1, side="right") - np.searchsorted(offsets, s, side="right") + 1
                         for s, e in samples.samples]
    assert ((batch["input_ids"] == SPECIAL["sep"]).sum(axis=1) == documents_per_row).all()


def _row_of(samples, documents: int):
    batch = samples.batch(np.arange(len(samples)))
    rows = np.flatnonzero(batch["document_ids"].max(axis=1) >= documents)
    assert len(rows), f"no row of {documents} documents"
    return {k: v[rows[:1]] for k, v in batch.items()}


@pytest.mark.parametrize("kind", ["bert", "electra"])
def test_a_document_gives_the_same_outputs_whoever_shares_its_row(full_dataset, kind):
    """fp32, dropout off: each document of a full row against the same document alone in a row."""
    samples = open_samples(full_dataset["full"])
    row = _row_of(samples, 2)
    torch.manual_seed(0)
    if kind == "bert":
        objective = build_bert_objective(load_parameters("bert-micro"), samples.special_ids, samples.vocab_size,
                                         ObjectiveOptions())
        encoders = [objective.model.bert]
    else:
        objective = build_electra_objective(load_parameters("electra-micro"), samples.special_ids,
                                            samples.vocab_size, ObjectiveOptions())
        encoders = [objective.model.generator.electra, objective.model.discriminator.electra]
    objective.eval()
    ids = torch.from_numpy(row["input_ids"])
    docs, positions = torch.from_numpy(row["document_ids"]), torch.from_numpy(row["position_ids"])
    types = torch.zeros_like(ids)
    everything = torch.arange(ids.numel())
    with torch.no_grad():
        for encoder in encoders:
            together = encode_selected(encoder, everything, ids, None, types, positions, docs)
            # through the transformers forward too, as the ELECTRA discriminator runs
            full_forward = encoder(ids, attention_mask=document_mask(docs, encoder.config), token_type_ids=types,
                                   position_ids=positions).last_hidden_state[0]
            torch.testing.assert_close(full_forward, together, rtol=0, atol=1e-5)
            for d in range(1, int(docs.max()) + 1):
                where = (docs[0] == d).nonzero().squeeze(1)
                alone = encoder(ids[:, where], token_type_ids=types[:, where]).last_hidden_state[0]
                torch.testing.assert_close(together[where], alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("preset", ["bert-micro", "electra-micro"])
def test_training_on_full_rows_lowers_the_loss(tiny, tmp_path, preset):
    from training_support import build_tiny_run, pretrain_cli, train_log

    full = dataclasses.replace(tiny, dataset=build_tiny_run(tiny.corpus.parent, form="full").dataset)
    assert pretrain_cli(full, tmp_path / "m", "--train_steps", "30", "--logging_steps", "10",
                        "--learning_rate", "0.003", model_type=preset) == 0
    losses = [r["loss"] for r in train_log(tmp_path / "m") if r["split"] == "train"]
    assert losses[-1] < losses[0]
    if preset == "bert-micro":  # a plain BERT: at inference a row is one text
        config = json.loads((tmp_path / "m" / "final" / "config.json").read_text())
        assert config["architectures"] == ["BertForMaskedLM"]


def test_an_unknown_form_is_refused_with_how_to_rebuild(full_dataset, tmp_path):
    import shutil

    from ja_pretrain.errors import UserError

    copy = tmp_path / "ds"
    shutil.copytree(full_dataset["packed"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["options"]["form"] = "future-form"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="rebuild it with `ja-pretrain build-dataset`"):
        open_samples(copy)


def test_run_pretraining_builds_a_corpus_into_the_form_asked_for(tiny, tmp_path, capsys):
    from training_support import pretrain_cli

    args = ("--train_steps", "2", "--logging_steps", "1", "--form", "full")
    assert pretrain_cli(tiny, tmp_path / "m", *args, model_type="bert-micro", input_file=tiny.corpus) == 0
    built = [json.loads((d / "manifest.json").read_text()) for d in (tmp_path / "m" / "dataset_cache").iterdir()
             if (d / "manifest.json").is_file()]
    assert [m["options"]["form"] for m in built] == ["full"]
    # a built dataset has its own form: another one asked for is an error, not ignored
    assert pretrain_cli(tiny, tmp_path / "n", *args, model_type="bert-micro") == 2
    assert "is a dataset of form 'packed'" in capsys.readouterr().err
    assert pretrain_cli(tiny, tmp_path / "o", "--nsp", "--form", "joined", model_type="bert-micro",
                        input_file=tiny.corpus) == 2
    assert "--nsp" in capsys.readouterr().err

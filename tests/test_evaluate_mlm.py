"""Held-out masked-LM and replaced-token-detection evaluation on tiny models built in tmp_path."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ja_pretrain.cli import main
from ja_pretrain.errors import UserError
from ja_pretrain.evaluation.evaluate import evaluate_model
from ja_pretrain.evaluation.heldout import build_heldout_set, choose_masks
from ja_pretrain.evaluation.heldout_scoring import detection_metrics, roc_auc

from test_evaluate_fixtures import (
    DOCUMENTS,
    electra_config,
    random_bert,
    save_model,
    vocab_size,
    write_corpus,
    write_tokenizer,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    tok = write_tokenizer(root / "tok")
    corpus = write_corpus(root / "valid.txt", repeat=2)
    return root, tok, corpus


def _train_bert(tok, corpus, out, steps=40):
    """A tiny BERT fitted on the held-out text itself, with other masks than the evaluation's."""
    from transformers import AutoTokenizer, BertForMaskedLM

    from test_evaluate_fixtures import bert_config

    tokenizer = AutoTokenizer.from_pretrained(tok)
    torch.manual_seed(0)
    model = BertForMaskedLM(bert_config(vocab_size(tok), hidden=64))
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    heldout = build_heldout_set(tokenizer, corpus, sequence_length=64)
    length = max(len(s) for s in heldout.sequences)
    for step in range(steps):
        masks = choose_masks(heldout.sequences, 0.3, seed=1000 + step)
        ids = torch.zeros((len(heldout.sequences), length), dtype=torch.long)
        labels = torch.full_like(ids, -100)
        for row, (seq, masked) in enumerate(zip(heldout.sequences, masks, strict=True)):
            ids[row, : len(seq)] = torch.from_numpy(seq)
            labels[row, masked] = ids[row, masked]
        inputs = ids.masked_fill(labels != -100, tokenizer.mask_token_id)
        loss = model(input_ids=inputs, attention_mask=(ids != 0).long(), labels=labels).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    return save_model(model, tok, out)


def test_same_model_twice_gives_identical_figures_and_perplexity_is_exp_loss(setup):
    root, tok, corpus = setup
    model = random_bert(tok, root / "random")
    a = evaluate_model(model, corpus, show_progress=False)
    b = evaluate_model(model, corpus, show_progress=False, batch_size=3)  # batching must not matter
    ra, rb = a["models"]["random"], b["models"]["random"]
    assert ra["kind"] == "masked-lm" and ra["architecture"] == "BertForMaskedLM"
    for key in ("loss", "accuracy", "masked_tokens"):
        assert ra[key] == pytest.approx(rb[key], rel=1e-5)
    assert ra["perplexity"] == pytest.approx(math.exp(ra["loss"]))
    assert a["sentences"] == sum(len(d) for d in DOCUMENTS) * 2
    # A random model over V tokens scores near log(V).
    assert abs(ra["loss"] - math.log(vocab_size(tok))) < 1.0


def test_fast_encoder_and_autotokenizer_give_the_same_heldout_set(setup):
    from transformers import AutoTokenizer

    root, tok, corpus = setup
    tokenizer = AutoTokenizer.from_pretrained(tok)
    slow = build_heldout_set(tokenizer, corpus, sequence_length=32)
    fast = build_heldout_set(tokenizer, corpus, sequence_length=32, tokenizer_dir=tok)
    assert len(slow.sequences) == len(fast.sequences) > 1
    assert all(np.array_equal(a, b) for a, b in zip(slow.sequences, fast.sequences, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(slow.masked, fast.masked, strict=True))
    assert all(len(s) <= 32 and s[0] == tokenizer.cls_token_id and s[-1] == tokenizer.sep_token_id
               for s in slow.sequences)


def test_masks_depend_on_text_and_seed_only(setup):
    root, tok, corpus = setup
    small = random_bert(tok, root / "small", seed=1, hidden=32)
    wide = random_bert(tok, root / "wide", seed=2, hidden=64)
    a = evaluate_model(small, corpus, show_progress=False)["models"]["small"]
    b = evaluate_model(wide, corpus, show_progress=False)["models"]["wide"]
    assert a["masked_tokens"] == b["masked_tokens"]
    assert a["loss"] != b["loss"]
    seqs = [np.arange(2, 2 + n) for n in (10, 40, 25, 60)]
    first = choose_masks(seqs, 0.15, seed=7)
    again = choose_masks(seqs, 0.15, seed=7, chunk=1)  # chunking (batching) must not matter
    other = choose_masks(seqs, 0.15, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other, strict=True))
    for seq, masked in zip(seqs, first, strict=True):
        assert masked.min() >= 1 and masked.max() <= len(seq) - 2  # never [CLS]/[SEP]
    total = sum(len(s) - 2 for s in seqs)
    assert 0.05 * total <= sum(len(m) for m in first) <= 0.3 * total


def test_trained_model_scores_better_than_random(setup):
    root, tok, corpus = setup
    trained = _train_bert(tok, corpus, root / "trained")
    random = random_bert(tok, root / "untrained")
    good = evaluate_model(trained, corpus, show_progress=False)["models"]["trained"]
    bad = evaluate_model(random, corpus, show_progress=False)["models"]["untrained"]
    assert good["loss"] < bad["loss"] - 1.0
    assert good["accuracy"] > bad["accuracy"] + 0.2
    assert good["perplexity"] < bad["perplexity"]


def _electra_pair(tok, out):
    from transformers import ElectraForMaskedLM, ElectraForPreTraining

    torch.manual_seed(0)
    config = electra_config(vocab_size(tok))
    save_model(ElectraForMaskedLM(config), tok, out / "generator")
    save_model(ElectraForPreTraining(config), tok, out / "discriminator")
    return out


def test_extracted_electra_evaluates_generator_and_discriminator_on_generator_samples(setup, tmp_path):
    root, tok, corpus = setup
    pair = _electra_pair(tok, tmp_path / "electra")
    report = evaluate_model(pair, corpus, show_progress=False, out_dir=tmp_path / "eval")
    gen, disc = report["models"]["generator"], report["models"]["discriminator"]
    assert gen["kind"] == "masked-lm" and gen["architecture"] == "ElectraForMaskedLM"
    assert disc["kind"] == "replaced-token-detection"
    assert disc["corruption"].startswith("generator:") and disc["corruption"].endswith("generator")
    assert 0 < disc["replaced_fraction"] < 0.4
    for key in ("accuracy", "precision", "recall", "auc"):
        assert 0.0 <= disc[key] <= 1.0
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["models"]["discriminator"]["auc"] == pytest.approx(disc["auc"])
    assert (tmp_path / "eval" / "manifest.json").is_file()


def test_discriminator_alone_uses_fixed_random_replacement(setup, tmp_path):
    root, tok, corpus = setup
    pair = _electra_pair(tok, tmp_path / "electra")
    a = evaluate_model(pair / "discriminator", corpus, show_progress=False)["models"]["discriminator"]
    b = evaluate_model(pair / "discriminator", corpus, show_progress=False, batch_size=2)["models"]["discriminator"]
    assert a["corruption"] == "random-replacement"
    assert a["replaced_fraction"] == b["replaced_fraction"] and a["auc"] == pytest.approx(b["auc"])
    # Random ordinary tokens almost never equal the original: about mask_probability replaced.
    assert 0.08 < a["replaced_fraction"] < 0.25


def test_detection_metrics_against_direct_counts():
    rng = np.random.default_rng(3)
    labels = rng.random(400) < 0.2
    scores = rng.normal(size=400) + 1.5 * labels
    scores[:50] = np.round(scores[:50])  # some ties
    m = detection_metrics(scores, labels)
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)
    assert m["auc"] == pytest.approx(pairwise)
    pred = scores > 0
    assert m["precision"] == pytest.approx((pred & labels).sum() / pred.sum())
    assert m["recall"] == pytest.approx((pred & labels).sum() / labels.sum())
    assert m["accuracy"] == pytest.approx((pred == labels).mean())
    assert roc_auc(scores, labels) > 0.75  # the shifted scores do separate the classes
    assert math.isnan(roc_auc(scores, np.zeros(400, dtype=bool)))


def test_several_model_dirs_share_masks_in_one_report(setup, tmp_path):
    root, tok, corpus = setup
    random_bert(tok, tmp_path / "a" / "final", seed=1)
    random_bert(tok, tmp_path / "b" / "final", seed=2)
    pair = _electra_pair(tok, tmp_path / "electra")
    report = evaluate_model([tmp_path / "a", tmp_path / "b", pair], corpus, show_progress=False)
    models = report["models"]
    assert list(models) == ["a", "b", "generator", "discriminator"]
    assert models["a"]["masked_tokens"] == models["b"]["masked_tokens"] == models["generator"]["masked_tokens"]
    assert models["discriminator"]["corruption"] == f"generator:{pair / 'generator'}"


def test_cli_json_and_bad_model_dir(setup, tmp_path, capsys):
    root, tok, corpus = setup
    model = random_bert(tok, tmp_path / "m")
    assert main(["evaluate", str(model), "--corpus", str(corpus), "--json", "--max-sentences", "6"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sentences"] == 6 and out["models"]["m"]["masked_tokens"] > 0
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(tmp_path / "empty"), "--corpus", str(corpus)]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert main(["evaluate", str(model), "--corpus", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt" in capsys.readouterr().err
    with pytest.raises(UserError, match="sequence-length"):
        evaluate_model(model, corpus, sequence_length=4, show_progress=False)

"""The fine-tuning inputs equal what AutoTokenizer gives for the model's tokenizer (ids, token
types, truncation of pairs), and batching pads without changing a prediction."""

from __future__ import annotations

import random

import numpy as np
import pytest
from downstream_support import jcqa_records, tiny_bert, tokenizer_dir

from ja_pretrain.downstream.batches import collate, evaluation_batches, training_batches
from ja_pretrain.downstream.encoding import encode_split, truncate_pairs
from ja_pretrain.downstream.readers import Example
from ja_pretrain.downstream.tasks import TASKS


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return tokenizer_dir(tmp_path_factory.mktemp("downstream-tok"))


def _hf(tok_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tok_dir)


def _sequence(split, i):
    ids = split.ids[split.offsets[i]:split.offsets[i] + split.lengths[i]].tolist()
    types = [0] * int(split.first_lengths[i]) + [1] * int(split.lengths[i] - split.first_lengths[i])
    return ids, types


def test_truncation_equals_transformers_longest_first(tok_dir):
    tok = _hf(tok_dir)
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, 60, 400), rng.integers(0, 60, 400)
    budget = 40
    keep_a, keep_b = truncate_pairs(first, second, budget)
    for a, b, ka, kb in zip(first, second, keep_a, keep_b, strict=True):
        remove = max(0, int(a + b) - budget)
        ids, pair, _ = tok.truncate_sequences(list(range(a)), list(range(b)), remove, "longest_first")
        assert (len(ids), len(pair)) == (ka, kb)


@pytest.mark.parametrize("max_length", [128, 12, 9])
def test_pairs_and_singles_equal_auto_tokenizer(tok_dir, max_length):
    from ja_pretrain.tokenization.encoder import FastEncoder

    rng = random.Random(max_length)
    from downstream_support import all_sentences

    texts = all_sentences() + ["ｶﾀｶﾅと全角ＡＢＣ　空白", "未知の語彙ばかり😀", "複数行の\n本文です。\n終わり。"]
    examples = [Example(uid=str(i), pairs=((rng.choice(texts), rng.choice(texts + [None]) if i % 3 else None),),
                        label=0) for i in range(60)]
    split = encode_split(FastEncoder(tok_dir), examples, TASKS["jnli"], max_length)
    tok = _hf(tok_dir)
    cut = 0
    for i, example in enumerate(examples):
        a, b = example.pairs[0]
        ref = tok(a, b, truncation=True, max_length=max_length, return_token_type_ids=True)
        assert _sequence(split, i) == (ref["input_ids"], ref["token_type_ids"]), (a, b)
        cut += len(tok(a, b)["input_ids"]) > max_length
    assert split.truncated == cut and (cut > 0) == (max_length < 20)


def test_multiple_choice_keeps_choices_of_an_example_together(tok_dir, tmp_path):
    from downstream_support import write_jsonl

    from ja_pretrain.downstream.readers import read_task_file
    from ja_pretrain.tokenization.encoder import FastEncoder

    records = jcqa_records(6, 0)
    examples = read_task_file(TASKS["jcommonsenseqa"], write_jsonl(tmp_path / "v.json", records))
    split = encode_split(FastEncoder(tok_dir), examples, TASKS["jcommonsenseqa"], 64)
    tok = _hf(tok_dir)
    assert split.num_choices == 5 and len(split) == 6 and len(split.lengths) == 30
    batch = collate(split, np.array([4, 1]), pad_id=0)
    assert tuple(batch["input_ids"].shape[:2]) == (2, 5)
    for row, example in enumerate([4, 1]):
        for c in range(5):
            ref = tok(records[example]["question"], records[example][f"choice{c}"], return_token_type_ids=True)
            n = len(ref["input_ids"])
            assert batch["input_ids"][row, c, :n].tolist() == ref["input_ids"]
            assert batch["token_type_ids"][row, c, :n].tolist() == ref["token_type_ids"]
            assert batch["attention_mask"][row, c].sum().item() == n
    assert split.labels.tolist() == [r["label"] for r in records]


def test_batches_cover_every_example_once_and_group_lengths(tok_dir):
    from downstream_support import all_sentences

    from ja_pretrain.tokenization.encoder import FastEncoder

    texts = all_sentences()
    examples = [Example(uid=str(i), pairs=((texts[i % len(texts)], texts[(i * 7) % len(texts)]),), label=0)
                for i in range(500)]
    split = encode_split(FastEncoder(tok_dir), examples, TASKS["jnli"], 128)
    batches = training_batches(split, 8, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    lengths = split.row_lengths()
    padded = sum(len(b) * lengths[b].max() for b in batches)
    shuffled = np.random.default_rng(1).permutation(500)
    naive = sum(8 * lengths[shuffled[i:i + 8]].max() for i in range(0, 500, 8))
    assert padded < naive  # grouping by length pads less than random batches
    again = training_batches(split, 8, np.random.default_rng(0))
    assert all((a == b).all() for a, b in zip(batches, again, strict=True))
    assert sorted(np.concatenate(evaluation_batches(split, 16)).tolist()) == list(range(500))


def test_padding_does_not_change_a_prediction(tok_dir, tmp_path):
    """Each example's logits in a length-sorted padded batch equal its logits alone."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from ja_pretrain.tokenization.encoder import FastEncoder

    model_dir = tiny_bert(tok_dir, tmp_path / "bert", layers=2)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=3).eval()
    from downstream_support import all_sentences

    texts = all_sentences()
    examples = [Example(uid=str(i), pairs=((texts[i], texts[-i - 1] if i % 2 else None),), label=0) for i in range(20)]
    split = encode_split(FastEncoder(tok_dir), examples, TASKS["jnli"], 128)
    with torch.no_grad():
        together = model(**collate(split, np.arange(20), pad_id=0)).logits
        for i in range(20):
            alone = model(**collate(split, np.array([i]), pad_id=0)).logits
            torch.testing.assert_close(together[i], alone[0], atol=1e-5, rtol=1e-5)

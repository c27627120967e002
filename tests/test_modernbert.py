"""ModernBERT, the third model family: transformers' own ModernBertForMaskedLM built from a preset,
documents kept apart in full rows (a mask per layer type, or flash-attn's packed arguments),
the objective's shortcut equal to the full forward, and the family through every stage:
training, exact resume, export, evaluation, the context-extension stage and fine-tuning."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from transformers import AttentionInterface

from ja_pretrain.config.parameters import load_parameters, parse_preset
from ja_pretrain.errors import UserError
from ja_pretrain.models import modernbert
from ja_pretrain.models.modernbert import MODERNBERT, build_modernbert_model, layer_masks, varlen_arguments

from training_support import build_tiny_run, pretrain_cli, train_log

SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
LENGTHS = (13, 21, 9, 17)  # the documents of one row, two longer than the window below
ROW = 64


def tiny_model(attn: str = "sdpa", seed: int = 0, vocab_size: int = 300):
    """4 layers (global, sliding, sliding, global), a window of 8 (4 each side), fp32, eval mode."""
    params = load_parameters("modernbert-micro").replace(number_of_layers=4, local_attention=8)
    torch.manual_seed(seed)
    model = build_modernbert_model(params, SPECIAL, vocab_size=vocab_size)
    model.config._attn_implementation = attn
    return model.eval()


def shared_row():
    """One row holding the LENGTHS documents and padding: ids, document ids, position ids."""
    rng = np.random.default_rng(0)
    docs = [np.concatenate([[2], rng.integers(5, 300, n - 2), [3]]) for n in LENGTHS]
    ids = np.zeros(ROW, dtype=np.int64)
    document_ids = np.zeros(ROW, dtype=np.int64)
    positions = np.zeros(ROW, dtype=np.int64)
    at = 0
    for number, doc in enumerate(docs, start=1):
        ids[at:at + len(doc)] = doc
        document_ids[at:at + len(doc)] = number
        positions[at:at + len(doc)] = np.arange(len(doc))
        at += len(doc)
    as_tensor = lambda a: torch.from_numpy(a)[None]  # noqa: E731
    return docs, as_tensor(ids), as_tensor(document_ids), as_tensor(positions)


def alone(model, docs) -> list[torch.Tensor]:
    """Each document's logits with a row to itself, as a user calls the model."""
    with torch.no_grad():
        return [model(input_ids=torch.from_numpy(d)[None]).logits[0] for d in docs]


def pieces(logits: torch.Tensor) -> list[torch.Tensor]:
    starts = np.cumsum([0, *LENGTHS])
    return [logits[s:e] for s, e in zip(starts[:-1], starts[1:], strict=True)]


def assert_each_document_as_alone(docs, expected, logits):
    for number, (mine, own) in enumerate(zip(pieces(logits), expected, strict=True), start=1):
        torch.testing.assert_close(mine, own, rtol=0, atol=1e-5, msg=f"document {number}")


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_a_document_sharing_a_row_gives_the_logits_it_gives_alone(attn):
    model = tiny_model(attn)
    docs, ids, document_ids, positions = shared_row()
    expected = alone(model, docs)
    with torch.no_grad():
        # the transformers forward, as a user calls it with the masks of each layer type
        user = model(input_ids=ids, attention_mask=layer_masks(document_ids, model.config), position_ids=positions)
        # the objective's route: the family's encoder at the chosen positions, then its head
        every = torch.arange(ROW)
        ours = MODERNBERT.mlm_logits(model, MODERNBERT.encode_selected(
            model, every, input_ids=ids, position_ids=positions, document_ids=document_ids))
        # what transformers does by itself: a padding mask lets the documents see each other,
        # and one 4D mask for every layer lifts the window of the sliding layers
        plain = model(input_ids=ids, attention_mask=(document_ids > 0).long(), position_ids=positions)
        one_mask = layer_masks(document_ids, model.config)[modernbert.FULL]
        one_4d = model(input_ids=ids, attention_mask={modernbert.FULL: one_mask, modernbert.SLIDING: one_mask},
                       position_ids=positions)
    assert_each_document_as_alone(docs, expected, user.logits[0])
    assert_each_document_as_alone(docs, expected, ours)
    for wrong in (plain, one_4d):
        longest = int(np.argmax(LENGTHS))
        assert (pieces(wrong.logits[0])[longest] - expected[longest]).abs().max() > 1e-3


def varlen_reference(module, query, key, value, attention_mask, scaling=None, dropout=0.0, sliding_window=None,
                     cu_seq_lens_q=None, max_length_q=None, **kwargs):
    """What flash-attn's varlen kernel computes, on a CPU: attention within each packed sequence of
    the flattened batch, a sliding layer seeing |i - j| <= sliding_window - 1 (transformers passes
    the window + 1, flash's inclusive bound)."""
    assert attention_mask is None and cu_seq_lens_q is not None and isinstance(max_length_q, int)
    batch, heads, length, dim = query.shape
    flat = [t.transpose(1, 2).reshape(batch * length, heads, dim) for t in (query, key, value)]
    out = torch.empty_like(flat[0])
    bounds = cu_seq_lens_q.tolist()
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        q, k, v = (t[start:end].transpose(0, 1) for t in flat)
        mask = None
        if sliding_window is not None:
            index = torch.arange(end - start)
            mask = (index[:, None] - index[None, :]).abs() <= sliding_window - 1
        out[start:end] = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, scale=scaling).transpose(0, 1)
    return out.view(batch, length, heads, dim), None


def test_the_packed_flash_arguments_keep_documents_apart(monkeypatch):
    AttentionInterface.register("varlen_reference", varlen_reference)
    monkeypatch.setattr(modernbert, "VARLEN_IMPLEMENTATIONS", {"varlen_reference"})
    model = tiny_model("sdpa")
    docs, ids, document_ids, positions = shared_row()
    expected = alone(model, docs)
    model.config._attn_implementation = "varlen_reference"
    batch = {"document_ids": document_ids.numpy(), "position_ids": positions.numpy()}
    inputs = MODERNBERT.document_inputs(batch, model.config)
    assert "document_ids" not in inputs and inputs["max_length_q"] == max(LENGTHS)
    assert inputs["cu_seq_lens_q"].tolist() == [0, 13, 34, 43, 60, 64]  # the padding is a sequence too
    with torch.no_grad():
        user = model(input_ids=ids, attention_mask={modernbert.FULL: None, modernbert.SLIDING: None}, **inputs)
        ours = MODERNBERT.mlm_logits(model, MODERNBERT.encode_selected(model, torch.arange(ROW), input_ids=ids,
                                                                       **inputs))
    assert_each_document_as_alone(docs, expected, user.logits[0])
    assert_each_document_as_alone(docs, expected, ours)


def test_on_a_cpu_the_packed_documents_go_to_our_packed_attention():
    from ja_pretrain.models.cpu_ops import use_cpu_ops

    model = tiny_model("sdpa")
    docs, ids, document_ids, positions = shared_row()
    expected = alone(model, docs)
    use_cpu_ops(model)
    model.train()  # the training route (no dropout in ModernBERT's default)
    inputs = MODERNBERT.document_inputs({"document_ids": document_ids.numpy(), "position_ids": positions.numpy()},
                                        model.config)
    assert "cu_seq_lens_q" in inputs and "document_ids" not in inputs
    with torch.no_grad():
        ours = MODERNBERT.mlm_logits(model, MODERNBERT.encode_selected(model, torch.arange(ROW), input_ids=ids,
                                                                       **inputs))
    assert_each_document_as_alone(docs, expected, ours)


@pytest.mark.parametrize("n, half", [(5, 4), (9, 4), (13, 4), (64, 16), (100, 16), (129, 16), (300, 64)])
def test_window_attention_equals_the_masked_computation_and_its_gradients(n, half):
    from ja_pretrain.models.packed_attention import window_attention

    torch.manual_seed(n)
    q, k, v = (torch.randn(2, n, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    index = torch.arange(n)
    band = (index[:, None] - index[None, :]).abs() <= half
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=band, scale=0.3)
    ours = window_attention(q, k, v, half, 0.3)
    torch.testing.assert_close(ours, expected)
    grad = torch.randn_like(expected)
    reference = torch.autograd.grad(expected, (q, k, v), grad)
    torch.testing.assert_close(torch.autograd.grad(ours, (q, k, v), grad), reference)


def test_varlen_arguments_cut_rows_apart_too():
    ids = np.array([[1, 1, 2, 0], [1, 1, 1, 1], [1, 2, 2, 2]])  # the second row's document goes on in the third
    out = varlen_arguments(ids)
    assert out["cu_seq_lens_q"].tolist() == [0, 2, 3, 4, 8, 9, 12] and out["max_length_q"] == 4
    assert out["cu_seq_lens_q"].dtype == torch.int32


@pytest.mark.parametrize("padded", [False, True])
def test_the_objectives_shortcut_equals_the_full_forward(padded):
    model = tiny_model(seed=1)
    model.train()  # dropout is off in the family's default: train mode must change nothing either
    ids = torch.randint(5, 300, (3, 40))
    mask = torch.ones_like(ids)
    if padded:
        mask[1, 25:] = 0
        mask[2, 7:] = 0
    positions = torch.tensor([0, 5, 39, 41, 60, 64, 100, 119])
    with torch.no_grad():
        full = model.model(input_ids=ids, attention_mask=mask).last_hidden_state.flatten(0, 1)[positions]
        picked = MODERNBERT.encode_selected(model, positions, input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(picked, full, rtol=1e-5, atol=1e-5)


def test_presets_and_their_keys():
    small = load_parameters("modernbert-small")
    assert (small.number_of_layers, small.hidden_size, small.ffn_inner_hidden_size, small.attention_heads) == \
        (10, 256, 1024, 4)
    assert (small.local_attention, small.global_attention_every, small.max_position_embeddings) == (128, 3, 8192)
    assert small.mask_percent == 30 and load_parameters("bert-small").mask_percent == 15
    base = load_parameters("modernbert-base")
    assert (base.number_of_layers, base.hidden_size, base.ffn_inner_hidden_size, base.attention_heads) == \
        (22, 768, 1152, 12)
    long = load_parameters("modernbert-small-long")
    assert (long.sequence_length, long.global_rope_theta, long.local_rope_theta) == (8192, 160000, 10000)
    assert (small.global_rope_theta, small.sequence_length) == (10000, 1024)
    config = MODERNBERT.build(small, SPECIAL, 32768).config
    assert config.layer_types == ["full_attention", "sliding_attention", "sliding_attention"] * 3 + ["full_attention"]
    assert config.rope_parameters["full_attention"]["rope_theta"] == 10000
    assert config.local_attention == 128 and config.max_position_embeddings == 8192
    assert (config.cls_token_id, config.sep_token_id, config.pad_token_id) == (2, 3, 0)
    assert sum(p.numel() for n, p in MODERNBERT.build(small, SPECIAL, 32768).named_parameters()
               if "embeddings" not in n and "decoder" not in n) < 20_000_000


BASE = {"number-of-layers": 2, "hidden-size": 64, "sequence-length": 32, "ffn-inner-hidden-size": 128,
        "attention-heads": 2, "warmup-steps": 1, "learning-rate": 1e-3, "batch-size": 4, "train-steps": 10,
        "save-steps": 5, "logging-steps": 1}


@pytest.mark.parametrize("change, message", [
    ({"model-family": "modernbert", "local-attention": 7}, "'local-attention' is the window in tokens, an even"),
    ({"model-family": "modernbert", "max-position-embeddings": 16}, "'max-position-embeddings' 16 is shorter"),
    ({"model-family": "modernbert", "generator-size": "1/2"}, "'generator-size' is for ELECTRA presets"),
    ({"model-family": "modernbert", "embedding-size": 32}, "'embedding-size' is not one model-family modernbert"),
    ({"local-attention": 64}, "'local-attention' is not one model-family bert takes"),
    ({"model-family": "gpt"}, "'model-family' is one of bert, electra, modernbert"),
    ({"model-family": "modernbert", "global-rope-theta": 0}, "'global-rope-theta' must be > 0"),
])
def test_bad_modernbert_presets_name_the_key(change, message):
    with pytest.raises(UserError, match=message):
        parse_preset("m", dict(BASE, **change))


def test_defaults_of_a_modernbert_preset_that_gives_only_the_family():
    params = parse_preset("m", dict(BASE, **{"model-family": "modernbert"}))
    assert (params.mask_percent, params.local_attention, params.global_attention_every) == (30, 128, 3)
    assert (params.max_position_embeddings, params.global_rope_theta, params.local_rope_theta) == (32, 160000, 10000)
    assert parse_preset("m", params.to_json_dict()) == params


# -- the family through the stages -------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_tiny(tiny):
    return dataclasses.replace(tiny, dataset=build_tiny_run(tiny.corpus.parent, form="full").dataset)


@pytest.fixture(scope="module")
def trained(full_tiny, tmp_path_factory):
    """modernbert-micro, 60 steps of 16 full rows, through the CLI."""
    model_dir = tmp_path_factory.mktemp("modernbert")
    assert pretrain_cli(full_tiny, model_dir, "--train_steps", "60", "--logging_steps", "10", "--save_steps", "30",
                        "--eval_samples", "64", model_type="modernbert-micro") == 0
    return model_dir


def test_it_learns_and_final_loads_with_auto_classes_and_gives_the_training_models_logits(trained, full_tiny):
    from transformers import (
        AutoModelForMaskedLM,
        AutoModelForMultipleChoice,
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    from ja_pretrain.tokenization.files import load_saved_tokenizer
    from ja_pretrain.training.objectives import ObjectiveOptions, build_objective

    train = [r for r in train_log(trained) if r["split"] == "train"]
    assert train[-1]["mlm_loss"] < train[0]["mlm_loss"] - 1.0 and train[0]["mfu"] > 0
    final = trained / "final"
    model = AutoModelForMaskedLM.from_pretrained(final).eval()
    assert type(model).__name__ == "ModernBertForMaskedLM" and model.config.max_position_embeddings == 256
    for auto in (AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoModelForQuestionAnswering,
                 AutoModelForMultipleChoice):
        assert type(auto.from_pretrained(final)).__name__.startswith("ModernBertFor")
    tokenizer = load_saved_tokenizer(final)
    assert tokenizer.model_input_names == ["input_ids", "attention_mask"] and tokenizer.model_max_length == 256
    enc = tokenizer(["日本語の文を入力して、[MASK]を予測します。", "東京は日本の首都です。"], padding=True, return_tensors="pt")
    vocab = len((full_tiny.tokenizer / "vocab.txt").read_text(encoding="utf-8").splitlines())
    objective = build_objective(load_parameters("modernbert-micro"), SPECIAL, vocab, ObjectiveOptions())
    objective.load_model(trained / "checkpoint-60")
    objective.eval()
    with torch.no_grad():
        exported = model(**enc).logits
        torch.testing.assert_close(objective.model(**enc).logits, exported, rtol=0, atol=0)
        positions = torch.tensor([1, 3, enc["input_ids"].shape[1] + 2])
        out = objective(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], masked_positions=positions,
                        masked_labels=enc["input_ids"].flatten()[positions])
    expected = torch.nn.functional.cross_entropy(exported.flatten(0, 1)[positions], enc["input_ids"].flatten()[positions],
                                                 reduction="sum")
    torch.testing.assert_close(out.sums["mlm"], expected, rtol=1e-5, atol=1e-5)
    card = (final / "README.md").read_text(encoding="utf-8")
    assert "Japanese ModernBERT (modernbert-micro)" in card and "30% dynamic" in card
    assert "sliding window of 16 tokens" in card and "next-sentence" not in card
    assert "BertJapaneseTokenizer.from_pretrained(PATH)" in card


def test_continue_resumes_exactly(full_tiny, tmp_path):
    args = ("--train_steps", "6", "--logging_steps", "1", "--save_steps", "3", "--learning_rate", "0.003",
            "--accumulation_steps", "2", "--batch_size", "4")
    assert pretrain_cli(full_tiny, tmp_path / "whole", *args, model_type="modernbert-micro") == 0
    assert pretrain_cli(full_tiny, tmp_path / "split", *args, "--stop_after_steps", "3",
                        model_type="modernbert-micro") == 0
    assert pretrain_cli(full_tiny, tmp_path / "split", *args, "--do_continue", model_type="modernbert-micro") == 0
    whole, split = train_log(tmp_path / "whole"), train_log(tmp_path / "split")
    assert [r["step"] for r in split if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(whole, split, strict=True):
        assert (a["split"], a["step"], a["loss"], a["tokens_seen"]) == (b["split"], b["step"], b["loss"], b["tokens_seen"])
    from safetensors.torch import load_file

    w1 = load_file(tmp_path / "whole" / "final" / "model.safetensors")
    w2 = load_file(tmp_path / "split" / "final" / "model.safetensors")
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)


def test_the_long_stage_starts_from_the_first_with_its_own_rope_base(trained, full_tiny, tmp_path):
    """The context extension: a dataset at the long preset's length, the weights of the first
    stage, the long preset's RoPE bases; a BERT model or another shape is refused."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    model_dir = tmp_path / "long"
    assert pretrain_cli(full_tiny, model_dir, "--init_from", str(trained / "final"), "--train_steps", "2",
                        "--logging_steps", "1", "--learning_rate", "1e-9", "--warmup_steps", "1",
                        model_type="modernbert-micro-long", input_file=full_tiny.corpus) == 0  # built at 256
    config = AutoConfig.from_pretrained(model_dir / "final")
    assert config.rope_parameters["full_attention"]["rope_theta"] == 160000
    assert config.rope_parameters["sliding_attention"]["rope_theta"] == 10000
    before = load_file(trained / "final" / "model.safetensors")
    after = load_file(model_dir / "final" / "model.safetensors")
    assert max((after[k] - before[k]).abs().max().item() for k in before) < 1e-4  # lr 1e-9: barely moved
    rows = [r for r in train_log(model_dir) if r["split"] == "train"]
    assert rows[0]["step"] == 1 and rows[0]["tokens_seen"] > 4 * 200  # 4 rows of 256
    with pytest.raises(UserError, match="holds a 'modernbert' model, not BERT"):
        from ja_pretrain.training.objectives import ObjectiveOptions, build_objective

        build_objective(load_parameters("bert-micro"), SPECIAL, 800, ObjectiveOptions()).load_model(trained / "final")


def test_evaluate_scores_it_on_the_masks_bert_gets(trained, tiny, tmp_path):
    from ja_pretrain.evaluation.evaluate import evaluate_model

    assert pretrain_cli(tiny, tmp_path / "bert", "--train_steps", "2", model_type="bert-micro") == 0
    report = evaluate_model([trained, tmp_path / "bert"], tiny.corpus, max_sentences=60, sequence_length=64,
                            show_progress=False)
    ours, bert = report["models"][trained.name], report["models"]["bert"]
    assert ours["architecture"] == "ModernBertForMaskedLM" and ours["masked_tokens"] == bert["masked_tokens"] > 0
    assert ours["loss"] < bert["loss"]  # 60 steps against 2
    assert report["mask_probability"] == 0.15


def test_nsp_and_pairs_are_refused(full_tiny, tmp_path, capsys):
    assert pretrain_cli(full_tiny, tmp_path / "m", "--nsp", model_type="modernbert-micro") == 2
    assert "ModernBERT, which has no next-sentence prediction" in capsys.readouterr().err


def test_the_masking_rate_is_the_presets_or_the_flags(full_tiny, tmp_path):
    from ja_pretrain.dataset import open_samples
    from ja_pretrain.training.masking import draw_mask_noise
    from ja_pretrain.training.objectives import ObjectiveOptions, build_objective

    batch = open_samples(full_tiny.dataset).batch(np.arange(32))
    real = int((~batch["special_tokens_mask"]).sum())
    for percent in (30, 40):
        params = load_parameters("modernbert-micro").replace(mask_percent=percent)
        objective = build_objective(params, SPECIAL, 800, ObjectiveOptions())
        x = objective.prepare(batch, draw_mask_noise(32, 64, torch.Generator().manual_seed(0)))
        assert x["masked_labels"].numel() / real == pytest.approx(percent / 100, abs=0.01)
    assert pretrain_cli(full_tiny, tmp_path / "m", "--train_steps", "1", "--mask_percent", "40", "--batch_size", "4",
                        model_type="modernbert-micro") == 0
    manifest = json.loads((tmp_path / "m" / "final" / "manifest.json").read_text())
    assert manifest["options"]["parameters"]["mask-percent"] == 40


def test_finetune_takes_it_on_every_kind_of_task(tmp_path):
    """Regression (JSTS), classification (JNLI, chABSA), multiple choice (JCommonsenseQA), question
    answering (JSQuAD) and token classification (NER) on a ModernBERT dir; each saved model loads
    with its Auto class and gives the predictions written."""
    import transformers
    from downstream_support import chabsa_documents, tokenizer_dir, write_chabsa_zip, write_jglue

    from ja_pretrain.cli import main
    from ja_pretrain.tokenization.files import load_saved_tokenizer

    from test_evaluate_fixtures import save_model, vocab_size

    tok = tokenizer_dir(tmp_path)
    params = load_parameters("modernbert-micro").replace(number_of_layers=2)
    torch.manual_seed(0)
    model_dir = save_model(build_modernbert_model(params, SPECIAL, vocab_size(tok)), tok, tmp_path / "mb")
    jglue = write_jglue(tmp_path / "JGLUE", n_train=16, n_valid=8)
    write_chabsa_zip(tmp_path / "fin" / "chABSA-dataset.zip", chabsa_documents(6))
    context = "梅雨は、北海道と小笠原諸島を除く日本で見られる。６月から７月にかけて雨が多い。"
    squad = {"version": "v1.3", "data": [{"title": "梅雨", "paragraphs": [{"context": context, "qas": [
        {"id": f"q{i}", "question": "日本で梅雨がないのは？", "is_impossible": False,
         "answers": [{"text": "北海道", "answer_start": context.index("北海道")}]} for i in range(8)]}]}]}
    (tmp_path / "qa").mkdir()
    for split in ("train", "valid"):
        (tmp_path / "qa" / f"{split}-v1.3.json").write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    texts = ["東京大学は東京にある。", "ＡＢＣ株式会社は大阪にある。"] * 8
    (tmp_path / "ner.json").write_text(json.dumps([{"curid": str(i), "text": t, "entities": [
        {"name": t[t.index("は") + 1:t.index("に")], "span": [t.index("は") + 1, t.index("に")], "type": "地名"}]}
        for i, t in enumerate(texts)], ensure_ascii=False), encoding="utf-8")
    common = ["--learning_rate", "1e-3", "--epochs", "1", "--no_progress", "--device", "cpu", "--save_model"]
    runs = {"glue": (["jsts", "jnli", "jcommonsenseqa", "chabsa"], [jglue, tmp_path / "fin"]),
            "jsquad": (["jsquad"], [tmp_path / "qa"]), "ner": (["ner"], [tmp_path / "ner.json"])}
    for name, (tasks, data) in runs.items():
        assert main(["finetune", str(model_dir), "--task", *tasks, "--data", *map(str, data), "--out",
                     str(tmp_path / name), *common]) == 0
    autos = {"jsts": "AutoModelForSequenceClassification", "jnli": "AutoModelForSequenceClassification",
             "chabsa": "AutoModelForSequenceClassification", "jcommonsenseqa": "AutoModelForMultipleChoice",
             "jsquad": "AutoModelForQuestionAnswering", "ner": "AutoModelForTokenClassification"}
    for task, auto in autos.items():
        out = tmp_path / ("glue" if task not in ("jsquad", "ner") else task)
        out = out / task if task not in ("jsquad", "ner") else out
        scores = json.loads((out / "scores.json").read_text(encoding="utf-8"))
        assert scores["task"] == task and scores["metrics"]
        saved = getattr(transformers, auto).from_pretrained(out / "model")
        assert type(saved).__name__.startswith("ModernBertFor"), task
    saved = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "glue" / "jnli" / "model").eval()
    tokenizer = load_saved_tokenizer(tmp_path / "glue" / "jnli" / "model")
    rows = [json.loads(line) for line in (jglue / "jnli-v1.3" / "valid-v1.3.json").read_text(encoding="utf-8").splitlines()]
    enc = tokenizer([r["sentence1"] for r in rows], [r["sentence2"] for r in rows], padding=True, return_tensors="pt")
    with torch.no_grad():
        labels = saved(**{k: v for k, v in enc.items() if k != "token_type_ids"}).logits.argmax(-1).tolist()
    written = [json.loads(line)["prediction"] for line in
               (tmp_path / "glue" / "jnli" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [saved.config.id2label[i] for i in labels] == written


@pytest.mark.slow
def test_the_micro_config_runs_end_to_end(tmp_path):
    """configs/modernbert-micro.yaml: both stages, evaluation, fine-tuning and the report."""
    import io
    from pathlib import Path

    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    from ja_pretrain.pipeline import run_pipeline

    config = Path(__file__).resolve().parents[1] / "configs" / "modernbert-micro.yaml"
    run = tmp_path / "run"
    overrides = [f"run_dir={run}", "tokenizer.vocab_size=2000", "evaluation.max_sentences=60",
                 "modernbert.train_steps=20", "modernbert.eval_steps=20", "modernbert.save_steps=20",
                 "modernbert-long.train_steps=4", "modernbert-long.save_steps=4", "modernbert-long.logging_steps=2"]
    stream = io.StringIO()
    results = run_pipeline(config, overrides, echo=False, stream=stream)
    assert [r.status for r in results] == ["ran"] * 7, stream.getvalue()
    long = run / "modernbert-long" / "final"
    model = AutoModelForMaskedLM.from_pretrained(long)
    assert type(model).__name__ == "ModernBertForMaskedLM"
    # the MeCab-free tokenizer: AutoTokenizer loads a ModernBERT dir through tokenizer.json only
    tokenizer = AutoTokenizer.from_pretrained(long)
    encoded = tokenizer("吾輩は猫である。", return_tensors="pt")
    assert encoded["input_ids"][0, 0] == tokenizer.cls_token_id and tokenizer.unk_token_id not in encoded["input_ids"]
    assert model(**encoded).logits.shape[-1] == model.config.vocab_size
    assert AutoConfig.from_pretrained(long).rope_parameters["full_attention"]["rope_theta"] == 160000
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text(encoding="utf-8"))["models"]
    assert set(metrics) == {"modernbert", "modernbert-long"}
    assert metrics["modernbert"]["masked_tokens"] == metrics["modernbert-long"]["masked_tokens"] > 0
    scores = json.loads((run / "finetune" / "scores.json").read_text(encoding="utf-8"))
    assert scores["task"] == "smoke" and 0.0 <= scores["metrics"]["accuracy"] <= 1.0
    report = (run / "report" / "report.md").read_text(encoding="utf-8")
    assert "ModernBertForMaskedLM" in report and "## Held-out evaluation" in report


def test_compile_by_default_only_where_it_measured_faster_and_pays_off(full_tiny, tmp_path):
    from ja_pretrain.training.compilation import MIN_STEPS, should_compile
    from ja_pretrain.training.distributed import DistContext

    from training_support import build_trainer

    cpu = torch.device("cpu")
    assert should_compile(None, "modernbert", cpu, MIN_STEPS) and not should_compile(None, "modernbert", cpu, 20)
    assert not should_compile(None, "bert", cpu, 10 * MIN_STEPS)
    assert not should_compile(None, "modernbert", torch.device("cuda"), 10 * MIN_STEPS)  # not measured there
    assert should_compile(True, "bert", cpu, 1) and not should_compile(False, "modernbert", cpu, 10 * MIN_STEPS)
    compiled = build_trainer(full_tiny, tmp_path / "a", "modernbert-micro", 4, DistContext(), compile=True)
    plain = build_trainer(full_tiny, tmp_path / "b", "modernbert-micro", 4, DistContext())  # 120 steps: too short
    assert compiled.objective._compiled_call_impl is not None and plain.objective._compiled_call_impl is None


@pytest.mark.parametrize("length", [1024, 8192])
def test_full_rows_at_the_long_lengths(full_tiny, tmp_path, length):
    """build-dataset at the recipe's lengths: every text token once, positions restarting per
    document, and the rows a ModernBERT of 8,192 positions takes whole."""
    from ja_pretrain.dataset import build_dataset, open_samples

    out = build_dataset(full_tiny.corpus, full_tiny.tokenizer, tmp_path / "ds", sequence_length=length, form="full",
                        progress=False)
    samples = open_samples(out)
    batch = samples.batch(np.arange(len(samples)))
    assert batch["input_ids"].shape[1] == length
    text = batch["input_ids"][~batch["special_tokens_mask"]]
    assert np.array_equal(text, np.asarray(samples.store.tokens, dtype=np.int64))
    assert batch["position_ids"].max() < length and (batch["position_ids"][batch["document_ids"] > 0] >= 0).all()
    model = tiny_model(vocab_size=samples.vocab_size)
    rows = min(2, len(samples))
    with torch.no_grad():
        inputs = MODERNBERT.document_inputs({k: v[:rows] for k, v in batch.items()}, model.config)
        logits = model(input_ids=torch.from_numpy(batch["input_ids"][:rows]),
                       attention_mask=layer_masks(inputs["document_ids"], model.config),
                       position_ids=inputs["position_ids"]).logits
    assert torch.isfinite(logits).all()


def test_with_flash_attn_installed_a_gpu_run_takes_the_packed_route(monkeypatch):
    """No GPU here: flash-attn's presence is faked; the switch and the arguments it leads to are
    what is checked (the kernel's own result is what test_the_packed_flash_arguments... models)."""
    import transformers.utils

    model = tiny_model()
    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: False)
    assert modernbert.use_flash_attention(model) == 0 and model.config._attn_implementation == "sdpa"
    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: True)
    assert modernbert.use_flash_attention(model) >= 1 and model.config._attn_implementation == "flash_attention_2"
    _, _, document_ids, positions = shared_row()
    inputs = MODERNBERT.document_inputs({"document_ids": document_ids.numpy(), "position_ids": positions.numpy()},
                                        model.config)
    assert set(inputs) == {"position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k"}

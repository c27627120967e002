"""BERT pretraining end to end on the bundled sample: learning, export, exact resume, NSP."""

import dataclasses
import json
import math

import pytest
import torch

from ja_pretrain.cli import main
from ja_pretrain.export.card import portable

from training_support import build_tiny_run, pretrain_cli, train_log


def cli(tiny, model_dir, *extra):
    return pretrain_cli(tiny, model_dir, *extra, model_type="bert-micro")


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """bert-micro for 80 steps of 16 sequences, whole-word masking, through the CLI."""
    model_dir = tmp_path_factory.mktemp("model")
    assert cli(tiny, model_dir, "--train_steps", "80", "--logging_steps", "10", "--save_steps", "40",
               "--do_whole_word_mask", "--eval_samples", "64") == 0
    return model_dir


def test_loss_falls_on_the_sample(trained):
    records = train_log(trained)
    train = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid"]
    assert [r["step"] for r in train] == list(range(10, 81, 10))
    assert [r["step"] for r in valid] == [40, 80]
    assert train[-1]["mlm_loss"] < train[0]["mlm_loss"] - 1.0
    assert valid[-1]["mlm_loss"] < valid[0]["mlm_loss"]
    assert valid[-1]["mlm_accuracy"] > 0.05
    first = train[0]
    for key in ("lr", "grad_norm", "tokens_per_s", "mfu", "tokens_seen"):
        assert first[key] > 0, key
    assert (first["mfu_peak_tflops"], first["mfu_peak"]) == (1.0, "--peak_tflops")  # the tests state it
    assert train[-1]["tokens_seen"] > train[0]["tokens_seen"]
    assert list((trained / "runs").iterdir()), "no TensorBoard events"


def test_final_loads_with_auto_classes_and_gives_the_training_models_logits(trained, tiny):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from ja_pretrain.config.parameters import load_parameters
    from ja_pretrain.training.objectives import ObjectiveOptions, build_bert_objective

    final = trained / "final"
    tokenizer = AutoTokenizer.from_pretrained(final)
    model = AutoModelForMaskedLM.from_pretrained(final).eval()
    assert type(model).__name__ == "BertForMaskedLM"
    assert model.config.max_position_embeddings == 64 and model.config.pad_token_id == 0

    # the training model, rebuilt from the last checkpoint the trainer wrote at the final step
    vocab = len((tiny.tokenizer / "vocab.txt").read_text(encoding="utf-8").splitlines())
    objective = build_bert_objective(load_parameters("bert-micro"), {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4},
                                     vocab, ObjectiveOptions())
    objective.load_model(trained / "checkpoint-80")
    objective.eval()
    enc = dict(tokenizer(["日本語の文を入力して、[MASK]を予測します。", "東京は日本の首都です。"], padding=True,
                         return_tensors="pt"))
    enc.setdefault("token_type_ids", torch.zeros_like(enc["input_ids"]))
    with torch.no_grad():
        exported = model(**enc).logits
        ours = objective.model(**enc).logits
        # and the objective's own masked-position path
        positions = torch.tensor([1, 3, enc["input_ids"].shape[1] + 2])
        out = objective(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                        token_type_ids=enc["token_type_ids"], masked_positions=positions,
                        masked_labels=enc["input_ids"].flatten()[positions])
    torch.testing.assert_close(exported, ours, rtol=0, atol=0)
    expected = torch.nn.functional.cross_entropy(exported.flatten(0, 1)[positions], enc["input_ids"].flatten()[positions],
                                                 reduction="sum")
    torch.testing.assert_close(out.sums["mlm"], expected, rtol=1e-5, atol=1e-5)

    card = (final / "README.md").read_text(encoding="utf-8")
    valid = [r for r in train_log(trained) if r["split"] == "valid"][-1]
    assert "bert-micro" in card and f"{valid['mlm_loss']:.4f}" in card and "whole-word" in card
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["stage"] == "pretrain" and manifest["counts"]["steps"] == 80
    assert (final / "vocab.txt").read_bytes() == (tiny.tokenizer / "vocab.txt").read_bytes()


@pytest.mark.parametrize("form", ["packed", "full"])
def test_continue_resumes_exactly(tiny, tmp_path, form):
    if form != "packed":  # rows of several documents, kept apart by the attention mask
        tiny = dataclasses.replace(tiny, dataset=build_tiny_run(tiny.corpus.parent, form=form).dataset)
    args = ("--train_steps", "6", "--logging_steps", "1", "--save_steps", "3", "--learning_rate", "0.003",
            "--accumulation_steps", "2", "--batch_size", "4")
    assert cli(tiny, tmp_path / "whole", *args) == 0
    assert cli(tiny, tmp_path / "split", *args, "--stop_after_steps", "3") == 0
    assert not (tmp_path / "split" / "final").exists()
    assert cli(tiny, tmp_path / "split", *args, "--do_continue") == 0
    whole, split = train_log(tmp_path / "whole"), train_log(tmp_path / "split")
    assert [r["step"] for r in split if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(whole, split, strict=True):
        assert (a["split"], a["step"]) == (b["split"], b["step"])
        assert a["loss"] == b["loss"], f"step {a['step']}"  # bit-for-bit: same data, masks, dropout
        assert a["tokens_seen"] == b["tokens_seen"]
    from safetensors.torch import load_file

    w1 = load_file(tmp_path / "whole" / "final" / "model.safetensors")
    w2 = load_file(tmp_path / "split" / "final" / "model.safetensors")
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_a_resume_between_two_logs_logs_what_an_unbroken_run_logs(tiny, tmp_path):
    """A checkpoint at step 3 of windows of 4 steps: the step-4 record of the resumed run must
    average steps 1-4, as the unbroken run's does (the window's sums travel in the checkpoint)."""
    args = ("--train_steps", "8", "--logging_steps", "4", "--save_steps", "3", "--learning_rate", "0.003",
            "--batch_size", "4")
    assert cli(tiny, tmp_path / "whole", *args) == 0
    assert cli(tiny, tmp_path / "split", *args, "--stop_after_steps", "3") == 0
    assert cli(tiny, tmp_path / "split", *args, "--do_continue") == 0
    keys = ("split", "step", "loss", "mlm_loss", "mlm_accuracy", "tokens_seen")
    whole, split = ([{k: r[k] for k in keys if k in r} for r in train_log(tmp_path / name)] for name in ("whole", "split"))
    assert [r["step"] for r in split if r["split"] == "train"] == [4, 8]
    assert split == whole


def test_init_from_starts_from_the_weights_with_a_fresh_optimizer(trained, tiny, tmp_path):
    from safetensors.torch import load_file

    assert cli(tiny, tmp_path / "stage2", "--init_from", str(trained / "final"), "--train_steps", "2",
               "--logging_steps", "1", "--learning_rate", "1e-9", "--warmup_steps", "1") == 0
    before = load_file(trained / "final" / "model.safetensors")
    after = load_file(tmp_path / "stage2" / "final" / "model.safetensors")
    # a near-zero learning rate: stage 2 ends where stage 1 ended, not at a random init
    assert max((before[k] - after[k]).abs().max().item() for k in before) < 1e-5
    first = train_log(tmp_path / "stage2")[0]
    vocab = len((tiny.tokenizer / "vocab.txt").read_text(encoding="utf-8").splitlines())
    assert first["mlm_loss"] < math.log(vocab) - 0.5  # a random init scores about log(vocab)
    card = (tmp_path / "stage2" / "final" / "README.md").read_text(encoding="utf-8")
    assert f"`{portable(str(trained / 'final'))}`" in card and str(trained) not in card  # no local path


def test_continue_of_a_finished_run_leaves_final_alone(tiny, tmp_path, capsys):
    """--do_continue after the last step trains nothing and must not re-export final/ (it used
    to, with empty figures in its model card and manifest)."""
    args = ("--train_steps", "2", "--logging_steps", "1", "--save_steps", "2")
    assert cli(tiny, tmp_path / "m", *args) == 0
    final = tmp_path / "m" / "final"
    before = {p.name: p.read_bytes() for p in final.iterdir()}
    capsys.readouterr()
    assert cli(tiny, tmp_path / "m", *args, "--do_continue") == 0
    assert "is already complete" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in final.iterdir()} == before


def test_a_model_dir_as_tokenizer_dir_does_not_overwrite_the_export(trained, tiny, tmp_path):
    """final/ holds the tokenizer files, so users pass it as --tokenizer_dir; only the tokenizer's
    files may be copied from it, never its config.json or weights over the new model."""
    from safetensors.torch import load_file

    argv = ["run-pretraining", "--input_file", str(tiny.dataset), "--tokenizer_dir", str(trained / "final"),
            "--model_dir", str(tmp_path / "again"), "--model_type", "bert-micro", "--device", "cpu",
            "--no_progress", "--peak_tflops", "1", "--train_steps", "2", "--save_steps", "2", "--seed", "7"]
    assert main(argv) == 0
    exported = load_file(tmp_path / "again" / "final" / "model.safetensors")
    checkpoint = load_file(tmp_path / "again" / "checkpoint-2" / "model.safetensors")
    old = load_file(trained / "final" / "model.safetensors")
    assert all(torch.equal(exported[k], checkpoint[k]) for k in checkpoint)
    assert any(not torch.equal(exported[k], old[k]) for k in old)
    assert (tmp_path / "again" / "final" / "vocab.txt").read_bytes() == (tiny.tokenizer / "vocab.txt").read_bytes()


def test_next_sentence_prediction_exports_bert_for_pretraining(tiny, tmp_path):
    from transformers import AutoModelForPreTraining

    pairs = build_tiny_run(tiny.corpus.parent, form="pairs")
    assert cli(pairs, tmp_path / "nsp", "--train_steps", "4", "--logging_steps", "2", "--eval_samples", "16") == 0
    records = train_log(tmp_path / "nsp")
    assert all("nsp_loss" in r and 0 <= r["nsp_accuracy"] <= 1 for r in records)
    model = AutoModelForPreTraining.from_pretrained(tmp_path / "nsp" / "final")
    assert type(model).__name__ == "BertForPreTraining"


@pytest.mark.parametrize("flags", [("--precision", "bf16"), ("--fp16_type", "1")])
def test_mixed_precision_trains_and_exports_fp32_weights(tiny, tmp_path, flags):
    from safetensors.torch import load_file

    assert cli(tiny, tmp_path / "m", *flags, "--train_steps", "3", "--logging_steps", "3") == 0
    record = train_log(tmp_path / "m")[0]
    assert record["nonfinite_steps"] == 0 and 0 < record["mlm_loss"] < 20
    state = json.loads((tmp_path / "m" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["precision"] == ("bf16" if flags[0] == "--precision" else "fp16")
    assert (tmp_path / "m" / "checkpoint-3" / "scaler.pt").is_file() == (flags[0] == "--fp16_type")
    weights = load_file(tmp_path / "m" / "final" / "model.safetensors")
    assert all(w.dtype == torch.float32 for w in weights.values())


def test_tokens_per_s_leaves_out_evaluation_time(tiny, tmp_path, monkeypatch):
    """Evaluations on steps that log nothing must not count as training time in the next log."""
    import time

    from ja_pretrain.training.trainer import Trainer

    def run(name, eval_seconds):
        def slow_evaluate(self):
            time.sleep(eval_seconds)
            return {}

        monkeypatch.setattr(Trainer, "evaluate", slow_evaluate)
        assert cli(tiny, tmp_path / name, "--train_steps", "8", "--logging_steps", "4", "--eval_steps", "1",
                   "--save_steps", "8") == 0
        return [r["tokens_per_s"] for r in train_log(tmp_path / name) if r["split"] == "train"]

    quick, slow = run("quick", 0.0), run("slow", 0.5)
    # 1.5 s of evaluation in the window is over ten times the training time of 4 bert-micro steps:
    # counted, it would cut tokens/s below a tenth; a busy machine moves it by up to about 2x
    assert len(slow) == 2 and slow[1] > 0.2 * quick[1]


@pytest.mark.parametrize("preset", ["bert-micro", "electra-micro"])
def test_prefetching_the_next_batches_changes_no_figure(tiny, tmp_path, preset):
    """With the next step's batches made in a thread while a step runs (the GPU default), the
    losses and the weights are those of making them inline, bit for bit, dropout included."""
    from ja_pretrain.config.parameters import load_parameters
    from ja_pretrain.training.trainer import TrainConfig, train

    params = load_parameters(preset).replace(train_steps=5, logging_steps=1, save_steps=5, batch_size=8,
                                             accumulation_steps=2, warmup_steps=2)
    finals = {}
    for prefetch in (False, True):
        model_dir = tmp_path / f"prefetch-{prefetch}"
        cfg = TrainConfig(dataset_dir=tiny.dataset, tokenizer_dir=tiny.tokenizer, model_dir=model_dir, params=params,
                          progress=False, peak_flops=1e9, prefetch=prefetch)
        result = train(cfg)
        finals[prefetch] = ([r["loss"] for r in train_log(model_dir) if r["split"] == "train"],
                            {k: v.clone() for k, v in result.objective.state_dict().items()})
    assert finals[True][0] == finals[False][0] and len(finals[True][0]) == 5
    assert all(torch.equal(finals[True][1][k], finals[False][1][k]) for k in finals[False][1])

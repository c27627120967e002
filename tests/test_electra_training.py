"""ELECTRA through the real trainer on the bundled sample: learning, metrics, final/ -> extract,
exact resume, continued pretraining from an extracted pair."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from ja_pretrain.cli import main

from training_support import build_tiny_run, build_trainer, free_port, join_two_nodes, one_step_gradients, pretrain_cli, train_log

SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}


def cli(tiny, model_dir, *extra):
    return pretrain_cli(tiny, model_dir, *extra, model_type="electra-micro")


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """electra-micro for 60 steps of 16 sequences, whole-word masking, through the CLI."""
    model_dir = tmp_path_factory.mktemp("electra")
    assert cli(tiny, model_dir, "--train_steps", "60", "--logging_steps", "10", "--save_steps", "30",
               "--do_whole_word_mask", "--eval_samples", "64") == 0
    return model_dir


def test_loss_falls_and_the_electra_metrics_are_logged(trained, tiny):
    records = train_log(trained)
    train = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid"]
    assert [r["step"] for r in train] == list(range(10, 61, 10)) and [r["step"] for r in valid] == [30, 60]
    vocab = len((tiny.tokenizer / "vocab.txt").read_text(encoding="utf-8").splitlines())
    assert train[0]["generator_loss"] < math.log(vocab) + 0.5
    assert train[-1]["generator_loss"] < train[0]["generator_loss"] - 0.5
    assert train[-1]["loss"] < train[0]["loss"]
    assert valid[-1]["generator_loss"] < valid[0]["generator_loss"]
    for record in train + valid:
        total = record["generator_loss"] + 50.0 * record["discriminator_loss"]
        assert record["loss"] == pytest.approx(total, rel=1e-6)
        for key in ("generator_accuracy", "discriminator_accuracy", "discriminator_recall", "replaced_fraction"):
            assert 0.0 <= record[key] <= 1.0, key
        # about 15% of real tokens are masked; a replaced one was masked and sampled differently
        assert 0.0 < record["replaced_fraction"] < 0.17
    assert valid[-1]["discriminator_accuracy"] > 1.0 - valid[-1]["replaced_fraction"] - 0.02
    assert list((trained / "runs").iterdir()), "no TensorBoard events"


def test_final_is_the_joint_model_and_extracts_to_the_trained_logits(trained, tiny, tmp_path):
    from transformers import AutoModelForMaskedLM, AutoModelForPreTraining, AutoTokenizer

    from ja_pretrain.config.parameters import load_parameters
    from ja_pretrain.training.objectives import build_electra_objective

    final = trained / "final"
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["stage"] == "pretrain" and manifest["counts"]["steps"] == 60
    card = (final / "README.md").read_text(encoding="utf-8")
    assert "extract-electra" in card and "whole-word" in card
    assert main(["extract-electra", "--input_dir", str(final), "--output_dir", str(tmp_path / "x"),
                 "--parameter_file", str(Path(__file__).parents[1] / "src/ja_pretrain/resources/parameter.json"),
                 "--model_type", "electra-micro", "--generator", "--discriminator"]) == 0
    generator = AutoModelForMaskedLM.from_pretrained(tmp_path / "x" / "generator").eval()
    discriminator = AutoModelForPreTraining.from_pretrained(tmp_path / "x" / "discriminator").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "x" / "discriminator")

    vocab = len((tiny.tokenizer / "vocab.txt").read_text(encoding="utf-8").splitlines())
    objective = build_electra_objective(load_parameters("electra-micro"), SPECIAL, vocab)
    objective.load_model(trained / "checkpoint-60")  # the training model at the final step
    objective.eval()
    enc = dict(tokenizer(["日本語の文を入力して、[MASK]を予測します。", "東京は日本の首都です。"], padding=True,
                         return_tensors="pt"))
    # Same weights, same kernels; only memory alignment can change a SIMD reduction order (1 ulp).
    with torch.no_grad():
        torch.testing.assert_close(generator(**enc).logits, objective.model.generator(**enc).logits,
                                   rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(discriminator(**enc).logits, objective.model.discriminator(**enc).logits,
                                   rtol=1e-6, atol=1e-6)
    assert generator.config.max_position_embeddings == 64
    # final/ itself loads as the trained discriminator (its config.json is the discriminator's)
    direct = AutoModelForPreTraining.from_pretrained(final).eval()
    with torch.no_grad():
        torch.testing.assert_close(direct(**enc).logits, discriminator(**enc).logits, rtol=1e-6, atol=1e-6)


def test_continue_resumes_exactly(tiny, tmp_path):
    args = ("--train_steps", "6", "--logging_steps", "1", "--save_steps", "3", "--learning_rate", "0.003",
            "--accumulation_steps", "2", "--batch_size", "4", "--eval_samples", "8")
    assert cli(tiny, tmp_path / "whole", *args) == 0
    assert cli(tiny, tmp_path / "split", *args, "--stop_after_steps", "3") == 0
    assert cli(tiny, tmp_path / "split", *args, "--do_continue") == 0
    whole, split = train_log(tmp_path / "whole"), train_log(tmp_path / "split")
    assert [r["step"] for r in split if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert len(whole) == len(split)
    for a, b in zip(whole, split, strict=True):
        assert (a["split"], a["step"]) == (b["split"], b["step"])
        for key in ("generator_loss", "discriminator_loss", "replaced_fraction"):
            assert a[key] == b[key], f"step {a['step']} {key}"  # same data, masks, samples, dropout
    from safetensors.torch import load_file

    w1 = load_file(tmp_path / "whole" / "final" / "model.safetensors")
    w2 = load_file(tmp_path / "split" / "final" / "model.safetensors")
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)


def test_continued_pretraining_from_an_extracted_pair(trained, tiny, tmp_path):
    assert main(["extract-electra", "--input_dir", str(trained), "--output_dir", str(tmp_path / "pair")]) == 0
    assert cli(tiny, tmp_path / "stage2", "--init_from", str(tmp_path / "pair"), "--train_steps", "2",
               "--logging_steps", "2", "--learning_rate", "1e-9", "--warmup_steps", "1", "--eval_samples", "8") == 0
    from safetensors.torch import load_file

    before = load_file(trained / "final" / "model.safetensors")
    after = load_file(tmp_path / "stage2" / "final" / "model.safetensors")
    assert before.keys() == after.keys()
    assert max((before[k] - after[k]).abs().max().item() for k in before) < 1e-5
    first = [r for r in train_log(tmp_path / "stage2") if r["split"] == "train"][0]
    fresh = [r for r in train_log(trained) if r["split"] == "train"][0]
    assert first["generator_loss"] < fresh["generator_loss"] - 0.5


def _gloo_worker(rank, port, tiny, out_dir):
    from ja_pretrain.training.distributed import teardown_distributed

    ctx = join_two_nodes(rank, port)
    try:
        grads, values = one_step_gradients(build_trainer(tiny, Path(out_dir) / "model", "electra-micro", {"0": 3, "1": 5}, ctx))
        torch.save({"grads": grads, "values": values}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        teardown_distributed()


def test_two_gloo_ranks_with_batches_3_and_5_equal_one_process_on_the_8_samples(tiny, tmp_path):
    """Masks and generator samples follow the sequence, not the rank, so the ELECTRA step is the same."""
    from ja_pretrain.training.distributed import DistContext

    mp.spawn(_gloo_worker, args=(free_port(), tiny, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    grads, values = one_step_gradients(build_trainer(tiny, tmp_path / "single", "electra-micro", 8, DistContext()))
    for key in ("loss_count/generator", "loss_count/discriminator", "num/replaced_fraction"):
        assert values[key] == ranks[0]["values"][key], key
    for key in ("loss_sum/generator", "loss_sum/discriminator"):
        assert values[key] == pytest.approx(ranks[0]["values"][key], rel=1e-5), key
    assert set(grads) == set(ranks[0]["grads"])
    for name, g in grads.items():
        for r in ranks:
            torch.testing.assert_close(r["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("flags", [("--precision", "bf16"), ("--fp16_type", "1")])
def test_mixed_precision_trains_with_finite_losses(tiny, tmp_path, flags):
    from safetensors.torch import load_file

    assert cli(tiny, tmp_path / "m", *flags, "--train_steps", "3", "--logging_steps", "3", "--eval_samples", "8") == 0
    records = train_log(tmp_path / "m")
    assert [r["nonfinite_steps"] for r in records if r["split"] == "train"] == [0]
    for record in records:
        assert 0 < record["generator_loss"] < 20 and 0 < record["discriminator_loss"] < 5
    weights = load_file(tmp_path / "m" / "final" / "model.safetensors")
    assert all(w.dtype == torch.float32 for w in weights.values())


def test_loss_weights_from_the_command_line(tiny, tmp_path):
    """--generator_weight/--discriminator_weight reach the objective: the logged total is their
    weighted sum of the two logged terms, and the checkpoint records the tokenizer for extraction."""
    model_dir = tmp_path / "weighted"
    assert cli(tiny, model_dir, "--train_steps", "2", "--logging_steps", "1", "--save_steps", "2",
               "--generator_weight", "2", "--discriminator_weight", "7", "--eval_samples", "16") == 0
    record = next(r for r in train_log(model_dir) if r["split"] == "train")
    expected = 2 * record["generator_loss"] + 7 * record["discriminator_loss"]
    assert record["loss"] == pytest.approx(expected, rel=1e-4)
    state = json.loads((model_dir / "checkpoint-2" / "trainer_state.json").read_text())
    assert Path(state["tokenizer_dir"]) == Path(tiny.tokenizer).resolve()


def test_next_sentence_prediction_is_refused_for_electra(tiny, tmp_path, capsys):
    """--nsp, or a dataset of sentence pairs, has no meaning for ELECTRA: an error, not a silent no-op."""
    assert cli(tiny, tmp_path / "nsp", "--nsp", "--train_steps", "2") == 2
    assert "no next-sentence prediction" in capsys.readouterr().err
    pairs = build_tiny_run(tiny.corpus.parent, form="pairs")
    assert pretrain_cli(tiny, tmp_path / "pairs", "--train_steps", "2", model_type="electra-micro",
                        input_file=pairs.dataset) == 2
    assert "no next-sentence prediction" in capsys.readouterr().err
    assert not (tmp_path / "nsp" / "final").exists() and not (tmp_path / "pairs" / "final").exists()

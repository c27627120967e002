"""Bad input to run-pretraining gives clear errors; the optimizer, schedule and sample order pieces."""

import json
import math
from itertools import pairwise

import numpy as np
import pytest
import torch

from ja_pretrain.config.parameters import load_parameters
from ja_pretrain.errors import UserError
from ja_pretrain.training.distributed import DistContext, batch_layout

from training_support import pretrain_cli

SPECIALS = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}


def cli(tiny, model_dir, *extra, input_file=None):
    return pretrain_cli(tiny, model_dir, *extra, input_file=input_file)


def test_per_node_batches_are_split_over_each_nodes_processes():
    params = load_parameters("bert-base-dist")  # {"0": 80, "1": 80, "2": 48, "3": 48}
    # 4 nodes x 2 processes: rank 5 is the second process of node 2
    layout = batch_layout(params, DistContext(rank=5, world_size=8, local_world_size=2, node_rank=2))
    assert (layout.per_rank, layout.offset, layout.global_rows) == (24, 40 + 40 + 40 + 40 + 24, 256)


def test_batch_not_divisible_by_a_nodes_processes():
    params = load_parameters("bert-micro").replace(batch_size=15)
    with pytest.raises(UserError, match="not divisible by its 2 processes"):
        batch_layout(params, DistContext(rank=0, world_size=2, local_world_size=2))


def test_node_rank_missing_from_the_batch_dict():
    params = load_parameters("bert-micro").replace(batch_size={"0": 4, "1": 4})
    with pytest.raises(UserError, match="no entry for node_rank 2"):
        batch_layout(params, DistContext(rank=2, world_size=3, local_world_size=1, node_rank=2))


def test_unknown_preset_and_precision_conflicts(tiny, tmp_path, capsys):
    assert cli(tiny, tmp_path / "m", "--model_type", "bert-gigantic") == 2
    assert "--model_type 'bert-gigantic' is not a preset" in capsys.readouterr().err
    assert cli(tiny, tmp_path / "m", "--model_type", "bert-micro", "--precision", "bf16", "--fp16_type", "1") == 2
    assert "contradicts --fp16_type 1" in capsys.readouterr().err
    assert cli(tiny, tmp_path / "m", "--model_type", "bert-micro", "--nsp") == 2
    assert "form 'pairs'" in capsys.readouterr().err
    assert cli(tiny, tmp_path / "m", "--model_type", "bert-micro", "--batch_size", "{oops") == 2
    assert "--batch_size" in capsys.readouterr().err
    assert not (tmp_path / "m" / "final").exists()


def test_fp16_type_levels(caplog):
    from ja_pretrain.commands.run_pretraining import precision_option as resolve_precision

    assert resolve_precision(None, 0) == "fp32" and resolve_precision(None, 1) == "fp16"
    assert resolve_precision("bf16", None) == "bf16" and resolve_precision(None, None) == "fp32"
    with caplog.at_level("WARNING"):
        assert resolve_precision(None, 3) == "fp16"
    assert "--fp16_type 3" in caplog.text


def test_checkpoint_of_another_shape(tmp_path):
    from ja_pretrain.training.objectives import ObjectiveOptions, build_bert_objective

    micro = load_parameters("bert-micro")
    small = build_bert_objective(micro, SPECIALS, 500, ObjectiveOptions())
    small.save_model(tmp_path / "m")
    wider = build_bert_objective(micro.replace(hidden_size=96, attention_heads=2), SPECIALS, 500, ObjectiveOptions())
    with pytest.raises(UserError, match="another shape: hidden_size 64 \\(ours 96\\)"):
        wider.load_model(tmp_path / "m")
    other_vocab = build_bert_objective(micro, SPECIALS, 600, ObjectiveOptions())
    with pytest.raises(UserError, match="vocab_size 500"):
        other_vocab.load_model(tmp_path / "m")
    # the NSP head may be added to (or dropped from) the same encoder
    with_nsp = build_bert_objective(micro, SPECIALS, 500, ObjectiveOptions(next_sentence_prediction=True))
    with_nsp.load_model(tmp_path / "m")
    assert torch.equal(with_nsp.model.bert.embeddings.word_embeddings.weight, small.model.bert.embeddings.word_embeddings.weight)


def test_corpus_input_is_built_into_the_cache_and_checkpoints_need_do_continue(tiny, tmp_path, capsys):
    args = ("--model_type", "bert-micro", "--train_steps", "2", "--save_steps", "1", "--logging_steps", "1",
            "--stop_after_steps", "1")
    assert cli(tiny, tmp_path / "m", *args, input_file=tiny.corpus) == 0
    built = [d for d in (tmp_path / "m" / "dataset_cache").iterdir() if (d / "manifest.json").is_file()]
    assert len(built) == 1 and (built[0] / "train.samples.npy").is_file()
    assert cli(tiny, tmp_path / "m", *args, input_file=tiny.corpus) == 2
    assert "already has checkpoint-1; pass --do_continue" in capsys.readouterr().err
    assert cli(tiny, tmp_path / "m", *args[:-2], "--do_continue", "--disable_overwrite_cache", input_file=tiny.corpus) == 0
    assert (tmp_path / "m" / "final" / "config.json").is_file()


@pytest.mark.parametrize("other", ["electra-micro", "bert-small"])
def test_do_continue_with_another_preset_names_the_one_trained(tiny, tmp_path, capsys, other):
    args = ("--train_steps", "2", "--save_steps", "1", "--logging_steps", "1", "--stop_after_steps", "1")
    assert cli(tiny, tmp_path / "m", "--model_type", "bert-micro", *args) == 0
    before = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert cli(tiny, tmp_path / "m", "--model_type", other, *args[:-2], "--do_continue") == 2
    err = capsys.readouterr().err
    assert "holds a model of preset 'bert-micro'" in err and "resume with --model_type bert-micro" in err
    assert "ELECTRA" not in err and "sequence length" not in err.split("(")[0]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == before


def test_non_finite_loss_is_skipped_then_stops_with_a_clear_error(tiny, tmp_path, monkeypatch, capsys):
    from ja_pretrain.training.objectives import MaskedLMObjective

    real_forward = MaskedLMObjective.forward

    def poisoned(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        out.sums["mlm"] = out.sums["mlm"] * float("nan")
        return out

    monkeypatch.setattr(MaskedLMObjective, "forward", poisoned)
    code = cli(tiny, tmp_path / "m", "--model_type", "bert-micro", "--train_steps", "20", "--logging_steps", "2",
               "--save_steps", "100", "--max_nonfinite_steps", "3")
    assert code == 2
    assert "not finite for 4 steps in a row (up to step 4)" in capsys.readouterr().err
    records = [json.loads(line) for line in (tmp_path / "m" / "train_log.jsonl").read_text().splitlines()]
    assert records[0]["step"] == 2 and records[0]["nonfinite_steps"] == 2 and records[0]["loss"] is None


def test_a_checkpoint_between_logs_counts_the_skipped_steps_since_the_last_log(tiny, tmp_path, monkeypatch):
    from ja_pretrain.training.objectives import MaskedLMObjective

    real_forward = MaskedLMObjective.forward
    poisoned_calls = []

    def first_two_poisoned(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        if self.training and len(poisoned_calls) < 2:
            poisoned_calls.append(1)
            out.sums["mlm"] = out.sums["mlm"] * float("nan")
        return out

    monkeypatch.setattr(MaskedLMObjective, "forward", first_two_poisoned)
    assert cli(tiny, tmp_path / "m", "--model_type", "bert-micro", "--train_steps", "8", "--logging_steps", "4",
               "--save_steps", "3", "--accumulation_steps", "1") == 0
    state = json.loads((tmp_path / "m" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["nonfinite_steps"] == 2  # steps 1 and 2, skipped before the first log at step 4
    records = [json.loads(line) for line in (tmp_path / "m" / "train_log.jsonl").read_text().splitlines()]
    assert [r["nonfinite_steps"] for r in records if r["split"] == "train"] == [2, 2]


def test_skipped_steps_leave_the_weights_alone():
    from ja_pretrain.training.optim import build_optimizer

    model = torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = build_optimizer(model, 0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.found_inf = torch.tensor(1.0)
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    optimizer.found_inf = torch.tensor(0.0)
    optimizer.step()
    assert not torch.equal(before[0], model.weight)


def test_weight_decay_spares_biases_and_layernorm():
    from ja_pretrain.training.objectives import ObjectiveOptions, build_bert_objective
    from ja_pretrain.training.optim import parameter_groups

    objective = build_bert_objective(load_parameters("bert-micro"), SPECIALS, 300, ObjectiveOptions())
    decay, no_decay = parameter_groups(objective)
    names = {id(p): n for n, p in objective.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert all(not names[id(p)].endswith("bias") and "LayerNorm" not in names[id(p)] for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(objective.parameters()))


def test_linear_warmup_then_linear_decay():
    from ja_pretrain.training.optim import linear_schedule

    values = [linear_schedule(s, 4, 12) for s in range(12)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4] == 1.0 and values[-1] == pytest.approx(1 / 8)
    assert all(a > b for a, b in pairwise(values[4:]))


def test_sample_order_is_a_permutation_per_epoch_and_resumable():
    from ja_pretrain.training.sampler import SampleOrder

    order = SampleOrder(10, seed=3)
    first, second = order.indices(0, 10), order.indices(10, 10)
    assert sorted(first.tolist()) == list(range(10)) == sorted(second.tolist())
    assert not np.array_equal(first, second)
    # any split of the positions reads the same samples: what ranks and resume rely on
    assert np.array_equal(np.concatenate([order.indices(0, 7), order.indices(7, 6)]), np.concatenate([first, second[:3]]))
    assert np.array_equal(SampleOrder(10, seed=3).indices(7, 6), order.indices(7, 6))
    assert math.isclose(len(order.indices(5, 25)), 25)


def test_sigterm_checkpoints_at_a_step_boundary_and_says_how_to_resume(tiny, tmp_path):
    """What a scheduler's SIGTERM does to a single-process run: the step in progress finishes, a
    checkpoint is written there, the exit status is 143 and the message names --do_continue,
    which then resumes to the end."""
    import signal
    import subprocess
    import sys
    import time

    model_dir = tmp_path / "m"
    argv = [sys.executable, "-m", "ja_pretrain", "run-pretraining", "--input_file", str(tiny.dataset),
            "--tokenizer_dir", str(tiny.tokenizer), "--model_dir", str(model_dir), "--model_type", "bert-micro",
            "--device", "cpu", "--no_progress", "--peak_tflops", "1", "--train_steps", "400", "--logging_steps", "1",
            "--save_steps", "1000"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = model_dir / "train_log.jsonl"
    deadline = time.time() + 120
    while not (log.is_file() and log.read_text().count("\n") >= 3) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "--do_continue" in err
    checkpoints = sorted(model_dir.glob("checkpoint-*"))
    assert len(checkpoints) == 1 and int(checkpoints[0].name.split("-")[1]) >= 3
    assert not (model_dir / "final").exists()
    done = subprocess.run([*argv, "--do_continue", "--train_steps", str(int(checkpoints[0].name.split("-")[1]) + 2)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (model_dir / "final" / "model.safetensors").is_file()

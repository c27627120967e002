"""Distributed training on CPU with gloo: per-node batch sizes and the weighting of the loss."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from ja_pretrain.errors import UserError

from training_support import build_tiny_run, build_trainer, free_port, join_two_nodes, one_step_gradients

DIST_ENV = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK")


def _gloo_worker(rank, port, tiny, out_dir, preset):
    from ja_pretrain.config.parameters import load_parameters  # noqa: F401  (import before the group)
    from ja_pretrain.training.distributed import teardown_distributed

    ctx = join_two_nodes(rank, port)  # two one-process nodes, batch sizes 3 and 5
    try:
        trainer = build_trainer(tiny, Path(out_dir) / "model", preset, {"0": 3, "1": 5}, ctx, whole_word_mask=True)
        grads, values = one_step_gradients(trainer)
        local_masked = sum(int(trainer.objective.loss_counts(x)["mlm"]) for x in trainer._micro_batches()[0])
        torch.save({"grads": grads, "values": values, "local_masked": local_masked,
                    "per_rank": trainer.layout.per_rank}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        teardown_distributed()


@pytest.mark.parametrize("form, preset", [("packed", "bert-micro"), ("full", "bert-micro"), ("full", "modernbert-micro")])
def test_two_gloo_ranks_with_batches_3_and_5_equal_one_process_on_the_8_samples(tiny, tmp_path, form, preset):
    from ja_pretrain.training.distributed import DistContext

    if form != "packed":
        tiny = dataclasses.replace(tiny, dataset=build_tiny_run(tiny.corpus.parent, form=form).dataset)
    mp.spawn(_gloo_worker, args=(free_port(), tiny, str(tmp_path), preset), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert [r["per_rank"] for r in ranks] == [3, 5]
    # the two ranks hold different numbers of masked tokens, so averaging per-rank means would be wrong
    assert ranks[0]["local_masked"] != ranks[1]["local_masked"]

    single = build_trainer(tiny, tmp_path / "single", preset, 8, DistContext(), whole_word_mask=True)
    grads, values = one_step_gradients(single)
    assert values["loss_count/mlm"] == ranks[0]["values"]["loss_count/mlm"]
    assert values["loss_sum/mlm"] == pytest.approx(ranks[0]["values"]["loss_sum/mlm"], rel=1e-5)
    assert set(grads) == set(ranks[0]["grads"])
    for name, g in grads.items():
        for r in ranks:
            torch.testing.assert_close(r["grads"][name], g, rtol=1e-4, atol=1e-7, msg=name)


def _fp16_worker(rank, port, tiny, out_dir):
    from ja_pretrain.config.parameters import load_parameters  # noqa: F401  (import before the group)
    from ja_pretrain.training.distributed import teardown_distributed
    from ja_pretrain.training.step_metrics import MetricWindow

    ctx = join_two_nodes(rank, port)
    try:
        trainer = build_trainer(tiny, Path(out_dir) / f"model{rank}", "bert-micro", {"0": 3, "1": 5}, ctx,
                                precision="fp16")
        if rank == 0:  # only this rank's loss is not finite
            forward = trainer.objective.forward

            def poisoned(*args, **kwargs):
                out = forward(*args, **kwargs)
                out.sums["mlm"] = out.sums["mlm"] * float("nan")
                return out

            trainer.objective.forward = poisoned
        trainer.apply_update(trainer.accumulate_gradients(MetricWindow()))
        torch.save({"skipped": int(trainer.skipped), "in_a_row": int(trainer.consecutive_nonfinite)},
                   Path(out_dir) / f"fp16-rank{rank}.pt")
    finally:
        teardown_distributed()


def test_fp16_ranks_agree_on_a_non_finite_step(tiny, tmp_path):
    """One rank's non-finite fp16 loss is a skipped step on every rank; counted on one rank only,
    that rank would stop at --max_nonfinite_steps while the others wait in their next collective."""
    mp.spawn(_fp16_worker, args=(free_port(), tiny, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"fp16-rank{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0] == ranks[1] == {"skipped": 1, "in_a_row": 1}


def test_two_node_torchrun_on_localhost_trains_and_checkpoints(tiny, tmp_path):
    model_dir = tmp_path / "model"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in DIST_ENV}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    procs = []
    for node in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
               "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port),
               "-m", "ja_pretrain", "run-pretraining", "--input_file", str(tiny.dataset),
               "--tokenizer_dir", str(tiny.tokenizer), "--model_dir", str(model_dir), "--model_type", "bert-micro",
               "--batch_size", '{"0": 2, "1": 4}', "--train_steps", "4", "--save_steps", "2",
               "--logging_steps", "2", "--save_total_limit", "1", "--device", "cpu", "--no_progress",
               "--peak_tflops", "1", "--node_rank", str(node)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=150)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]
    checkpoints = sorted(d.name for d in model_dir.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-4"]  # checkpoint-2 was written, then pruned by --save_total_limit 1
    state = json.loads((model_dir / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["global_batch"] == 6 and state["samples_seen"] == 24
    records = [json.loads(line) for line in (model_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4]
    assert (model_dir / "final" / "model.safetensors").is_file()
    assert "run-pretraining: step 4" in outputs[0]


def _step_check(rank: int, port: int, steps: list[int], report: str) -> None:
    import torch.distributed as dist

    from ja_pretrain.training.distributed import DistContext, check_same_step

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        try:
            check_same_step(steps[rank], DistContext(rank=rank, world_size=2))
            outcome = "ok"
        except UserError as err:
            outcome = str(err)
        with open(f"{report}.{rank}", "w", encoding="utf-8") as f:
            f.write(outcome)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("steps, agree", [([40, 40], True), ([40, 0], False)])
def test_ranks_must_start_from_the_same_step(tmp_path, steps, agree):
    """A node that cannot see the checkpoint rank 0 resumed would start at 0: every rank refuses."""
    report = str(tmp_path / "report")
    mp.spawn(_step_check, args=(free_port(), steps, report), nprocs=2, join=True)
    outcomes = [open(f"{report}.{r}", encoding="utf-8").read() for r in (0, 1)]
    if agree:
        assert outcomes == ["ok", "ok"]
    else:
        assert all("different steps (0 to 40)" in o for o in outcomes)

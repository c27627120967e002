"""Training as clusters run it: `torchrun` with two ranks (gloo on the CPU), stopped by a
scheduler's SIGTERM to the launcher or by a rank that dies, then resumed with --do_continue.
Every resumed run must end bit for bit where an uninterrupted run ends: the same weights and
the same loss log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training_support import processes_with

pytestmark = pytest.mark.slow

# The figures of a log record that depend on the machine's speed, not on the training.
TIMING_KEYS = ("tokens_per_s", "mfu")


def torchrun(tiny, model_dir, *extra: str, nproc: int = 2, model_type: str = "bert-micro") -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "ja_pretrain", "run-pretraining", "--input_file", str(tiny.dataset), "--tokenizer_dir",
            str(tiny.tokenizer), "--model_dir", str(model_dir), "--model_type", model_type, "--device", "cpu",
            "--no_progress", "--peak_tflops", "1", "--seed", "0", "--logging_steps", "3", "--save_steps", "5",
            *extra]


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def loss_log(model_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (model_dir / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "final" / "model.safetensors")


def assert_same_run(resumed: Path, reference: Path) -> None:
    assert loss_log(resumed) == loss_log(reference)
    mine, theirs = weights(resumed), weights(reference)
    assert mine.keys() == theirs.keys()
    for name, tensor in theirs.items():
        assert torch.equal(mine[name], tensor), name


def wait_for_log_lines(model_dir: Path, lines: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    log = model_dir / "train_log.jsonl"
    deadline = time.time() + timeout
    while not (log.is_file() and log.read_text().count("\n") >= lines):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "training did not start"
        time.sleep(0.1)


def checkpoint_steps(model_dir: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in model_dir.glob("checkpoint-*"))


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    """An uninterrupted 2-rank run of 60 steps."""
    model_dir = tmp_path_factory.mktemp("reference") / "m"
    done = run(torchrun(tiny, model_dir, "--train_steps", "60"))
    assert done.returncode == 0, done.stderr
    return model_dir


def test_sigterm_to_torchrun_checkpoints_every_rank_at_one_step_and_the_resume_is_bit_identical(tiny, tmp_path,
                                                                                                 reference):
    model_dir = tmp_path / "m"
    proc = subprocess.Popen(torchrun(tiny, model_dir, "--train_steps", "60"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_log_lines(model_dir, 2, proc)
    proc.send_signal(signal.SIGTERM)  # to the launcher, as Slurm does; it forwards it to the ranks
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert err.count("terminated (SIGTERM)") == 2 and "--do_continue" in err  # both ranks, exit 143
    stopped = checkpoint_steps(model_dir)[-1]
    assert 6 <= stopped < 60 and not (model_dir / "final").exists()
    state = json.loads((model_dir / f"checkpoint-{stopped}" / "trainer_state.json").read_text())
    assert state["step"] == stopped and state["world_size"] == 2

    done = run(torchrun(tiny, model_dir, "--train_steps", "60", "--do_continue"))
    assert done.returncode == 0, done.stderr
    assert f"resumed {model_dir / f'checkpoint-{stopped}'}" in done.stderr
    assert_same_run(model_dir, reference)


def test_sigterm_to_one_rank_alone_stops_every_rank_after_the_same_step(tiny, tmp_path, reference):
    """As Kubernetes signals each pod, or a user signals one process: the other rank learns of it
    at the next step boundary, and both stop there with one checkpoint."""
    model_dir = tmp_path / "m"
    proc = subprocess.Popen(torchrun(tiny, model_dir, "--train_steps", "60"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_log_lines(model_dir, 2, proc)
    ranks = sorted(pid for pid in processes_with(f"{model_dir}\0") if pid != proc.pid)
    assert len(ranks) == 2
    os.kill(ranks[1], signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert err.count("terminated (SIGTERM)") == 2
    stopped = checkpoint_steps(model_dir)[-1]
    assert 6 <= stopped < 60 and not (model_dir / "final").exists()
    done = run(torchrun(tiny, model_dir, "--train_steps", "60", "--do_continue"))
    assert done.returncode == 0, done.stderr
    assert_same_run(model_dir, reference)


def test_a_checkpoint_between_two_logs_keeps_every_ranks_metrics(tiny, tmp_path, reference):
    """Step 7 is neither a log step (every 3) nor a save step (every 5): the checkpoint holds each
    rank's sums of step 7, so the log of step 9 after the resume averages steps 7 to 9."""
    model_dir = tmp_path / "m"
    first = run(torchrun(tiny, model_dir, "--train_steps", "60", "--stop_after_steps", "7"))
    assert first.returncode == 0, first.stderr
    windows = json.loads((model_dir / "checkpoint-7" / "trainer_state.json").read_text())["metric_windows"]
    assert len(windows) == 2 and windows[0]["host"]["tokens"] != windows[1]["host"]["tokens"]
    done = run(torchrun(tiny, model_dir, "--train_steps", "60", "--do_continue"))
    assert done.returncode == 0, done.stderr
    assert_same_run(model_dir, reference)


def test_a_rank_killed_takes_the_others_down_and_the_rerun_resumes_identically(tiny, tmp_path, reference):
    model_dir = tmp_path / "m"
    proc = subprocess.Popen(torchrun(tiny, model_dir, "--train_steps", "60"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_log_lines(model_dir, 3, proc)  # step 9: checkpoint-5 is written
    ranks = processes_with(f"{model_dir}\0")
    ranks = [pid for pid in ranks if pid != proc.pid]
    assert len(ranks) == 2
    os.kill(ranks[1], signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert processes_with(f"{model_dir}\0") == []  # the launcher ended the other rank
    assert checkpoint_steps(model_dir) and not (model_dir / "final").exists()

    done = run(torchrun(tiny, model_dir, "--train_steps", "60", "--do_continue"))
    assert done.returncode == 0, done.stderr
    assert_same_run(model_dir, reference)

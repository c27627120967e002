"""A pipeline stage under a launcher, run as a user runs it: `launch: torchrun --standalone
--nproc_per_node 2` trains a BERT, an ELECTRA and a ModernBERT to final/ with the same weights as
a plain 2-rank torchrun of the same options, and a kill -9 of the pipeline takes the launcher and
every rank with it."""

from __future__ import annotations

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

LAUNCH = "torchrun --standalone --nproc_per_node 2"
TRAINING = {"train_steps": 6, "logging_steps": 3, "save_steps": 3, "seed": 0, "device": "cpu", "no_progress": True,
            "peak_tflops": 1}
MODELS = ("bert-micro", "electra-micro", "modernbert-micro")


def write_config(path: Path, run_dir: Path, launch: str = LAUNCH, **training) -> Path:
    training = {**TRAINING, **training}
    lines = [f"run_dir: {run_dir}", "stages:",
             "  corpus:", "    command: corpus",
             "    args: {inputs: ['${sample_corpus}'], valid_ratio: 0.1, seed: 42, no_progress: true}",
             "  tokenizer:", "    command: train-tokenizer",
             "    args: {input_file: '${corpus}', vocab_size: 800, min_frequency: 1, limit_alphabet: 400}"]
    for model in MODELS:
        options = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in training.items())
        lines += [f"  {model}:", "    command: run-pretraining", f"    launch: {launch}",
                  f"    args: {{input_file: '${{corpus}}', tokenizer_dir: '${{tokenizer}}', model_type: {model}, "
                  f"{options}}}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def user_env() -> dict[str, str]:
    """The environment of a user whose venv is active: `torchrun` on PATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def plain_torchrun(run_dir: Path, model: str, model_dir: Path) -> None:
    argv = ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "ja_pretrain", "run-pretraining",
            "--input_file", str(run_dir / "corpus"), "--tokenizer_dir", str(run_dir / "tokenizer"),
            "--model_type", model, "--model_dir", str(model_dir)]
    for key, value in TRAINING.items():
        argv += [f"--{key}"] if value is True else [f"--{key}", str(value)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=user_env())
    assert done.returncode == 0, done.stderr


def test_a_launched_stage_trains_to_final_as_a_plain_torchrun_does(tmp_path):
    run_dir = tmp_path / "run"
    config = write_config(tmp_path / "launch.yaml", run_dir)
    done = subprocess.run([sys.executable, "-m", "ja_pretrain", "pipeline", str(config)], capture_output=True,
                          text=True, timeout=600, env=user_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"launched by `{LAUNCH}`" not in done.stderr  # (that is the dry run's wording)
    for model in MODELS:
        assert (run_dir / model / "final" / "model.safetensors").is_file()
        log = (run_dir / "logs" / f"{model}.log").read_text(encoding="utf-8")
        assert "rank 1/2" in log and "[pipeline: exit 0]" in log
        plain_torchrun(run_dir, model, tmp_path / f"plain-{model}")
        ours, theirs = (load_file(d / "final" / "model.safetensors") for d in (run_dir / model, tmp_path / f"plain-{model}"))
        assert ours.keys() == theirs.keys()
        for name, tensor in theirs.items():
            assert torch.equal(ours[name], tensor), (model, name)


def test_kill_9_of_the_pipeline_takes_the_launcher_and_every_rank_which_checkpoint_first(tmp_path):
    run_dir = tmp_path / "run"
    config = write_config(tmp_path / "launch.yaml", run_dir, train_steps=2000, save_steps=1000)
    pipeline = subprocess.Popen([sys.executable, "-m", "ja_pretrain", "pipeline", str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=user_env())
    log = run_dir / "bert-micro" / "train_log.jsonl"
    deadline = time.time() + 240
    while not (log.is_file() and log.read_text().count("\n") >= 2):
        assert pipeline.poll() is None and time.time() < deadline
        time.sleep(0.2)
    stage = processes_with(str(run_dir / "bert-micro"))
    assert len(stage) >= 3  # the launcher and its two ranks
    pipeline.send_signal(signal.SIGKILL)
    pipeline.wait(timeout=30)
    deadline = time.time() + 60  # torchrun gives its ranks 30 s to stop
    while processes_with(str(run_dir / "bert-micro")) and time.time() < deadline:
        time.sleep(0.2)
    assert processes_with(str(run_dir / "bert-micro")) == []
    # the ranks were told to stop (SIGTERM through the launcher) and checkpointed the same step
    stopped = sorted(run_dir.glob("bert-micro/checkpoint-*"))
    assert stopped and not (run_dir / "bert-micro" / "final").exists()

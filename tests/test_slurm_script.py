"""docs/slurm/pipeline.sbatch, run as Slurm would run it, on one machine: `srun` and `scontrol`
are stand-ins (srun starts its command once per "node", as --ntasks-per-node=1 does, and passes
signals on), and the two "nodes" are two torchruns that meet through the c10d rendezvous.
The job is stopped by SIGTERM as at its time limit, requeues itself, and the requeued run ends
where an uninterrupted run ends."""

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

from training_support import free_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bash and /proc")]

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "slurm" / "pipeline.sbatch"
TIMING_KEYS = ("tokens_per_s", "mfu")

FAKE_SRUN = """#!/usr/bin/env bash
# srun's options are --name=value here; start the command once per node of the job.
echo "srun $*" >> "$FAKE_SLURM_CALLS"
while [[ $1 == -* ]]; do shift; done
pids=()
for ((node = 0; node < SLURM_NNODES; node++)); do
  SLURM_NODEID=$node SLURM_PROCID=$node SLURM_LOCALID=0 "$@" &
  pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null' TERM INT
status=0
for pid in "${pids[@]}"; do
  while true; do
    wait "$pid" && code=0 || code=$?
    kill -0 "$pid" 2>/dev/null || break
  done
  [ "$code" -ne 0 ] && status=$code
done
exit $status
"""

FAKE_SCONTROL = """#!/usr/bin/env bash
echo "scontrol $*" >> "$FAKE_SLURM_CALLS"
if [ "$1 $2" = "show hostnames" ]; then printf 'localhost\\nlocalhost\\n'; fi
"""


def write_config(path: Path, run_dir: Path) -> Path:
    training = ("input_file: '${corpus}', tokenizer_dir: '${tokenizer}', model_type: bert-micro, batch_size: 8, "
                "train_steps: 200, logging_steps: 3, save_steps: 50, seed: 0, device: cpu, no_progress: true, "
                "peak_tflops: 1")
    path.write_text(f"""run_dir: {run_dir}
stages:
  corpus:
    command: corpus
    args: {{inputs: ['${{sample_corpus}}'], valid_ratio: 0.1, seed: 42, no_progress: true}}
  tokenizer:
    command: train-tokenizer
    args: {{input_file: '${{corpus}}', vocab_size: 800, min_frequency: 1, limit_alphabet: 400}}
  bert:
    command: run-pretraining
    args: {{{training}}}
""", encoding="utf-8")
    return path


@pytest.fixture()
def slurm(tmp_path):
    """A PATH with the stand-ins first (and the venv's ja-pretrain and torchrun), a job's env."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "slurm-calls.txt"
    env = {**os.environ, "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]),
           "SLURM_NNODES": "2", "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "localhost", "GPUS_PER_NODE": "1",
           "RDZV_PORT": str(free_port()), "FAKE_SLURM_CALLS": str(calls),
           # torchrun sets one thread per rank only with several per node; the reference run has
           # two per node, and other thread counts round sums in another order
           "OMP_NUM_THREADS": "1"}
    return env, calls


def test_the_dry_run_shows_the_launcher_of_each_training_stage(tmp_path, slurm):
    env, calls = slurm
    config = write_config(tmp_path / "job.yaml", tmp_path / "run")
    done = subprocess.run(["bash", str(SCRIPT), str(config), "bert"], env={**env, "DRY_RUN": "1", "GPUS_PER_NODE": "8"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    launcher = (f"srun --nodes=2 --ntasks-per-node=1 --kill-on-bad-exit=1 torchrun --nnodes=2 --nproc_per_node=8 "
                f"--rdzv_id=4242 --rdzv_backend=c10d --rdzv_endpoint=localhost:{env['RDZV_PORT']}")
    assert f"bert (would run, launched by `{launcher}`)" in done.stderr
    assert "corpus (would run): ja-pretrain corpus" in done.stderr  # the other stages run on the first node
    assert "srun" not in calls.read_text()


def loss_log(model_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (model_dir / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def test_two_nodes_stopped_at_the_time_limit_requeue_and_resume_to_an_uninterrupted_runs_end(tmp_path, slurm):
    env, calls = slurm
    run_dir = tmp_path / "run"
    config = write_config(tmp_path / "job.yaml", run_dir)
    job = subprocess.Popen(["bash", str(SCRIPT), str(config), "bert"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    log = run_dir / "bert" / "train_log.jsonl"
    deadline = time.time() + 300
    while not (log.is_file() and log.read_text().count("\n") >= 2):
        assert job.poll() is None, job.communicate()[0][-3000:]
        assert time.time() < deadline
        time.sleep(0.2)
    job.send_signal(signal.SIGTERM)  # what --signal=B:TERM@300 sends before the time limit
    out, _ = job.communicate(timeout=180)
    assert job.returncode == 0, out[-3000:]
    assert "stopping for a requeue" in out and "scontrol requeue 4242" in calls.read_text()
    bert_log = (run_dir / "logs" / "bert.log").read_text(encoding="utf-8")
    assert "rank 1/2 (node 1, local 0)" in bert_log or "rank 0/2 (node 1, local 0)" in bert_log  # two nodes
    stopped = sorted(run_dir.glob("bert/checkpoint-*"))
    assert stopped and not (run_dir / "bert" / "final").exists()

    requeued = subprocess.run(["bash", str(SCRIPT), str(config), "bert"], env=env, capture_output=True, text=True,
                              timeout=600)
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert "bert: resuming" in requeued.stderr or "--do_continue" in (run_dir / "logs" / "bert.log").read_text()

    reference = tmp_path / "reference"
    argv = ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "ja_pretrain", "run-pretraining",
            "--input_file", str(run_dir / "corpus"), "--tokenizer_dir", str(run_dir / "tokenizer"),
            "--model_dir", str(reference), "--model_type", "bert-micro", "--batch_size", "16", "--train_steps", "200",
            "--logging_steps", "3", "--save_steps", "50", "--seed", "0", "--device", "cpu", "--no_progress",
            "--peak_tflops", "1"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert loss_log(run_dir / "bert") == loss_log(reference)
    ours, theirs = (load_file(d / "final" / "model.safetensors") for d in (run_dir / "bert", reference))
    for name, tensor in theirs.items():
        assert torch.equal(ours[name], tensor), name

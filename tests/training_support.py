"""Shared by the training tests: a tiny real pipeline (corpus -> tokenizer -> dataset) built from
the bundled sample corpus, the run-pretraining command on it, its train log, and a free port."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TinyRun:
    corpus: Path
    tokenizer: Path
    dataset: Path  # packed, sequence length 64 (the bert-micro preset's)


def build_tiny_run(root: Path, *, form: str = "packed", sequence_length: int = 64) -> TinyRun:
    from ja_pretrain.corpus.build import build_corpus
    from ja_pretrain.dataset import build_dataset
    from ja_pretrain.resources import sample_corpus_path
    from ja_pretrain.tokenization.train import train_tokenizer

    corpus, tokenizer, dataset = root / "corpus", root / "tokenizer", root / f"dataset-{form}"
    if not (corpus / "manifest.json").is_file():
        build_corpus([sample_corpus_path()], corpus, valid_ratio=0.1, progress=False)
    if not (tokenizer / "manifest.json").is_file():
        train_tokenizer(corpus, tokenizer, vocab_size=800, min_frequency=1, limit_alphabet=400, workers=1)
    if not (dataset / "manifest.json").is_file():
        build_dataset(corpus, tokenizer, dataset, sequence_length=sequence_length, form=form, progress=False)
    return TinyRun(corpus, tokenizer, dataset)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def train_log(model_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(model_dir) / "train_log.jsonl").read_text().splitlines()]


def pretrain_cli(tiny: TinyRun, model_dir, *extra: str, model_type: str | None = None, input_file=None) -> int:
    """`ja-pretrain run-pretraining` on the tiny run, on the CPU, quiet; returns the exit code."""
    from ja_pretrain.cli import main

    argv = ["run-pretraining", "--input_file", str(input_file or tiny.dataset), "--tokenizer_dir", str(tiny.tokenizer),
            "--model_dir", str(model_dir), "--device", "cpu", "--no_progress", "--peak_tflops", "1"]
    if model_type:
        argv += ["--model_type", model_type]
    return main(argv + list(extra))


def build_trainer(tiny: TinyRun, model_dir, model_type: str, batch_size, ctx, *, cpu_ops: bool = True,
                  precision: str = "fp32", compile: bool | None = None, **options):
    """A Trainer on the tiny run with dropout off (so gradients compare exactly), 2 micro-steps."""
    from ja_pretrain.config.parameters import load_parameters
    from ja_pretrain.training.objectives import ObjectiveOptions
    from ja_pretrain.training.trainer import TrainConfig, Trainer

    params = load_parameters(model_type).replace(batch_size=batch_size, accumulation_steps=2)
    cfg = TrainConfig(dataset_dir=tiny.dataset, tokenizer_dir=tiny.tokenizer, model_dir=Path(model_dir), params=params,
                      options=ObjectiveOptions(hidden_dropout=0.0, attention_dropout=0.0, **options),
                      progress=False, peak_flops=1e9, cpu_ops=cpu_ops, precision=precision, compile=compile)
    return Trainer(cfg, ctx)


def one_step_gradients(trainer):
    """Forward and backward of one optimizer step: the gradients and the step's reduced metrics."""
    from ja_pretrain.training.step_metrics import MetricWindow

    window = MetricWindow()
    trainer.accumulate_gradients(window)
    grads = {name: p.grad.detach().clone() for name, p in trainer.objective.named_parameters() if p.grad is not None}
    return grads, window.reduce(trainer.ctx, trainer.ctx.device)


def join_two_nodes(rank: int, port: int):
    """Inside a spawned process: join a gloo group of two one-process "nodes" on 127.0.0.1, as
    torchrun would set it up; returns the DistContext (tear down with teardown_distributed)."""
    import os

    import torch

    from ja_pretrain.training.distributed import setup_distributed

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK="0", LOCAL_WORLD_SIZE="1", GROUP_RANK=str(rank))
    return setup_distributed("cpu")


def processes_with(text: str) -> list[int]:
    """Pids of the live processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if text.encode() in cmdline and state != "Z":
                found.append(int(entry.name))
    return found

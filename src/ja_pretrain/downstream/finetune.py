"""One fine-tuning run: a pretrained model with a fresh task head, trained on the encoded train
split with one learning rate, number of epochs and seed, then used to predict the dev split.

The recipe is the one transformers' `Trainer` applies in the JGLUE scripts: AdamW (betas 0.9 and
0.999, eps 1e-8, no weight decay unless asked), the learning rate rising linearly over the first
10% of the steps and then falling linearly to zero, gradients clipped to norm 1, the model's own
dropout and loss (MSE for one output, cross-entropy otherwise). What differs is only how the
work is done: batches of similar lengths padded to their own longest sequence, not to
max_length; for the heads that read [CLS] only, the last layer after its attention run at that
row alone (`kinds.first_token`, the same values); on a CPU, cheaper dropout and attention
(`models.cpu_ops`, the same maths); on a GPU, bf16 autocast, fused AdamW and the next batch
copied while the current one runs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from tqdm import tqdm
from transformers.utils import logging as hf_logging

from ja_pretrain.downstream.batches import collate, evaluation_batches, training_batches
from ja_pretrain.downstream.encoding import EncodedSplit
from ja_pretrain.downstream.kinds import TaskKind, task_kind
from ja_pretrain.downstream.tasks import TaskSpec
from ja_pretrain.errors import UserError
from ja_pretrain.models.cpu_ops import use_cpu_ops
from ja_pretrain.utils.devices import autocast, resolve_device

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    learning_rate: float
    epochs: int
    seed: int
    batch_size: int
    eval_batch_size: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    precision: str = "fp32"
    device: str = "cpu"
    cpu_ops: bool = True
    progress: bool = True
    keep_model: bool = False  # return the trained weights (to save the chosen run)
    label: str = ""  # progress bar text


@dataclass
class RunResult:
    learning_rate: float
    epochs: int
    seed: int
    metrics: dict[str, float]
    predictions: Any  # per dev example (the kind's Collector.predictions)
    steps: int
    train_loss: float
    train_seconds: float
    predict_seconds: float
    text_tokens: int  # real tokens trained on (all epochs)
    padded_tokens: int  # positions computed, padding included
    model: Any = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "epochs": self.epochs, "seed": self.seed,
                "metrics": self.metrics, "steps": self.steps, "train_loss": self.train_loss,
                "train_seconds": round(self.train_seconds, 3), "predict_seconds": round(self.predict_seconds, 3),
                "text_tokens": self.text_tokens, "padded_tokens": self.padded_tokens}


@contextlib.contextmanager
def _quiet_transformers():
    """transformers warns at every load that the new head is untrained: that is the point here."""
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_task_model(model_dir: Path, kind: TaskKind, seed: int):
    """The pretrained encoder with the kind's head, initialised from `seed`."""
    auto = getattr(transformers, kind.auto_class)
    torch.manual_seed(seed)
    with _quiet_transformers():
        try:
            model = auto.from_pretrained(model_dir, config=kind.model_config(model_dir))
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"MODEL_DIR {model_dir}: cannot be loaded as {auto.__name__} ({err})") from None
    kind.prepare(model)
    return model


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    if device.type != "cuda":
        return batch
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


def _schedule(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def predict(model, kind: TaskKind, split: EncodedSplit, *, batch_size: int, pad_id: int, device: torch.device,
            precision: str) -> Any:
    """Predictions for every example of `split`, in its order."""
    model.eval()
    collector = kind.collector(split)
    with torch.inference_mode(), autocast(device, precision):
        for rows in evaluation_batches(split, batch_size):
            collector.add(rows, kind.outputs(model, _to_device(collate(split, rows, pad_id), device)))
    return collector.predictions()


def train_and_predict(model_dir: Path, spec: TaskSpec, train: EncodedSplit, valid: EncodedSplit, opts: RunOptions,
                      pad_id: int) -> RunResult:
    device = resolve_device(opts.device)
    kind = task_kind(spec)
    model = load_task_model(model_dir, kind, opts.seed).to(device)
    if device.type == "cpu" and opts.cpu_ops:

        use_cpu_ops(model)
    model.train()
    steps_per_epoch = math.ceil(train.num_rows / opts.batch_size)
    total = steps_per_epoch * opts.epochs
    warmup = math.ceil(total * opts.warmup_ratio)
    optimizer = torch.optim.AdamW(model.parameters(), lr=opts.learning_rate, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=opts.weight_decay, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _schedule(step, warmup, total))
    scaler = torch.amp.GradScaler(device.type, enabled=opts.precision == "fp16")
    rng = np.random.default_rng(opts.seed)
    bar = _progress(total, opts)
    loss_sum = torch.zeros((), device=device)
    text_tokens = padded = step = 0
    started = time.perf_counter()
    for _ in range(opts.epochs):
        for rows in training_batches(train, opts.batch_size, rng):
            batch = _to_device(collate(train, rows, pad_id), device)
            answers = _to_device(kind.targets(train, rows), device)
            with autocast(device, opts.precision):
                loss = kind.loss(model, batch, answers)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), opts.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach().float()
            step += 1
            text_tokens += int(batch["attention_mask"].sum()) if device.type == "cpu" else 0
            padded += batch["input_ids"].numel()
            if bar is not None:
                bar.update(1)
                if step % 20 == 0 or step == total:  # a host sync, so not every step
                    bar.set_postfix(loss=f"{loss_sum.item() / step:.4f}")
    if device.type != "cpu":
        text_tokens = int(train.lengths.sum()) * opts.epochs
    train_loss = float(loss_sum.item() / max(1, step))
    if not math.isfinite(train_loss):
        raise UserError(f"{spec.name}: the training loss is {train_loss} at learning rate {opts.learning_rate}; "
                        "lower --learning_rate or use --precision fp32")
    train_seconds = time.perf_counter() - started
    if bar is not None:
        bar.close()
    started = time.perf_counter()
    predictions = predict(model, kind, valid, batch_size=opts.eval_batch_size, pad_id=pad_id, device=device,
                          precision=opts.precision)
    predict_seconds = time.perf_counter() - started
    metrics = kind.score(valid, predictions)
    return RunResult(learning_rate=opts.learning_rate, epochs=opts.epochs, seed=opts.seed, metrics=metrics,
                     predictions=predictions, steps=step, train_loss=train_loss, train_seconds=train_seconds,
                     predict_seconds=predict_seconds, text_tokens=text_tokens, padded_tokens=padded,
                     model=model if opts.keep_model else None)


def _progress(total: int, opts: RunOptions):
    if not opts.progress:
        return None

    return tqdm(total=total, desc=opts.label, unit="step", leave=False, dynamic_ncols=True,
                disable=os.environ.get("CI") == "true" and not os.isatty(2))

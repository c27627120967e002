"""The one protocol every kind of task implements, and what the kinds share.

A kind is what differs between tasks once their data is read; the training loop
(`downstream.finetune`) and the suite (`downstream.suite`) call nothing else:

    encode     examples -> an EncodedSplit of model inputs (and counts worth reporting)
    head       the transformers Auto class, its config (labels, loss), and any change to the
               loaded model (the regression head runs in fp32)
    targets    what a batch of rows is trained against
    loss       the training loss of a batch (the model's own forward unless the kind knows a
               cheaper way to the same value)
    outputs    the model's outputs for a batch (likewise)
    collector  the model's outputs, batch by batch in any order -> one prediction per example
    score      the predictions against the gold answers -> the task's metrics
    readable   a gold answer or a prediction as predictions.jsonl writes it

A new kind is one module with one `TaskKind` subclass, registered in `kinds/__init__.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig

from ja_pretrain.downstream.encoding import EncodedSplit
from ja_pretrain.downstream.tasks import TaskSpec
from ja_pretrain.tokenization.encoder import FastEncoder


class Collector:
    """Gathers a split's outputs batch by batch, then makes one prediction per example."""

    def add(self, rows: np.ndarray, outputs: Any) -> None:
        raise NotImplementedError

    def predictions(self) -> Any:
        raise NotImplementedError


class TaskKind:
    auto_class = ""  # the transformers Auto class of the model with this kind's head

    def __init__(self, spec: TaskSpec):
        self.spec = spec

    # -- encode
    def encode(self, encoder: FastEncoder, examples: list, max_length: int) -> tuple[EncodedSplit, dict[str, int]]:
        raise NotImplementedError

    # -- head
    def head_config(self, config: Any) -> Any:
        """The pretrained model's config given this kind's head (labels, their names, the loss)."""
        return config

    def model_config(self, model_dir: Path) -> Any:
        return self.head_config(AutoConfig.from_pretrained(model_dir))

    def prepare(self, model: torch.nn.Module) -> None:
        """Any change the loaded model needs before training (none by default)."""

    # -- train
    def targets(self, split: EncodedSplit, rows: np.ndarray) -> dict[str, torch.Tensor]:
        return {"labels": torch.from_numpy(split.labels[rows])}

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor],
             targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**batch, **targets).loss

    # -- predict and score
    def outputs(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Any:
        return model(**batch)

    def collector(self, split: EncodedSplit) -> Collector:
        raise NotImplementedError

    def score(self, split: EncodedSplit, predictions: Any) -> dict[str, float]:
        raise NotImplementedError

    def readable(self, split: EncodedSplit, index: int, value: Any, gold: bool = False) -> Any:
        """A gold answer (gold=True) or a prediction of example `index`, as JSON."""
        raise NotImplementedError


class ArgmaxCollector(Collector):
    """One value per row: the arg-max of the logits (a class or a choice), or with `scalar` the
    single output itself (a regression score)."""

    def __init__(self, split: EncodedSplit, scalar: bool = False):
        self.scalar = scalar
        self.values = np.zeros(split.num_rows, dtype=np.float64 if scalar else np.int64)

    def add(self, rows: np.ndarray, outputs: Any) -> None:
        logits = outputs.logits
        self.values[rows] = (logits[:, 0].float() if self.scalar else logits.argmax(dim=-1)).cpu().numpy()

    def predictions(self) -> np.ndarray:
        return self.values


class PerTokenCollector(Collector):
    """Keeps each row's outputs per token, cut to the row's length (the span kinds)."""

    def __init__(self, split: EncodedSplit):
        self.split = split
        self.rows: list[Any] = [None] * split.num_rows

    def per_token(self, outputs: Any) -> tuple[np.ndarray, ...]:
        """(batch, length) arrays of the batch's outputs."""
        raise NotImplementedError

    def add(self, rows: np.ndarray, outputs: Any) -> None:
        lengths = self.split.lengths[rows]
        arrays = self.per_token(outputs)
        for k, row in enumerate(rows.tolist()):
            self.rows[row] = tuple(a[k, :lengths[k]] for a in arrays)

"""Sequence classification and regression: one text or text pair in, one class or one score out
(JNLI, MARC-ja, chABSA, livedoor, smoke; JSTS), through `AutoModelForSequenceClassification`.

Regression trains its single output with MSE. Its head runs in fp32 even under bf16 or fp16
autocast: a bf16 Linear rounds a score of 0-5 to steps of 0.016-0.03, which makes ties among
the predictions and moves Spearman's rank correlation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ja_pretrain.downstream.encoding import EncodedSplit, encode_split
from ja_pretrain.downstream.kinds.base import ArgmaxCollector, TaskKind
from ja_pretrain.downstream.kinds.first_token import first_token_logits, first_token_loss, outputs_of
from ja_pretrain.downstream.prediction_scores import task_metrics
from ja_pretrain.tokenization.encoder import FastEncoder


class FirstTokenHead(TaskKind):
    """A kind whose head reads [CLS] only: the last layer runs at that row alone
    (`kinds.first_token`), for a model of a shape it knows."""

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor],
             targets: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = first_token_loss(model, batch, targets["labels"])
        return super().loss(model, batch, targets) if loss is None else loss

    def outputs(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Any:
        logits = first_token_logits(model, batch)
        return super().outputs(model, batch) if logits is None else outputs_of(logits)


class SequenceClassification(FirstTokenHead):
    auto_class = "AutoModelForSequenceClassification"

    def encode(self, encoder: FastEncoder, examples: list, max_length: int) -> tuple[EncodedSplit, dict[str, int]]:
        return encode_split(encoder, examples, self.spec, max_length), {}

    def head_config(self, config: Any) -> Any:
        config.num_labels = len(self.spec.labels)
        config.id2label = dict(enumerate(self.spec.labels))
        config.label2id = {name: i for i, name in enumerate(self.spec.labels)}
        config.problem_type = "single_label_classification"
        return config

    def collector(self, split: EncodedSplit) -> ArgmaxCollector:
        return ArgmaxCollector(split)

    def score(self, split: EncodedSplit, predictions: np.ndarray) -> dict[str, float]:
        return task_metrics(self.spec.metrics, predictions, split.labels)

    def readable(self, split: EncodedSplit, index: int, value: Any, gold: bool = False) -> Any:
        return self.spec.labels[int(split.labels[index] if gold else value)]


class Regression(SequenceClassification):
    def head_config(self, config: Any) -> Any:
        config.num_labels, config.problem_type = 1, "regression"
        return config

    def prepare(self, model: torch.nn.Module) -> None:
        run_in_fp32(model.classifier)

    def collector(self, split: EncodedSplit) -> ArgmaxCollector:
        return ArgmaxCollector(split, scalar=True)

    def readable(self, split: EncodedSplit, index: int, value: Any, gold: bool = False) -> Any:
        return float(split.labels[index] if gold else value)  # full precision: scores are recomputed from these


def run_in_fp32(module: torch.nn.Module) -> None:
    """Make `module` compute in fp32 under any autocast: its floating inputs are upcast and
    autocast is off inside it. Only the instance's forward changes: its weights, their names and
    save_pretrained are as before."""
    inner = module.forward

    def forward(*args, **kwargs):
        device = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
        args = tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
        with torch.autocast(device, enabled=False):
            return inner(*args, **kwargs)

    module.forward = forward

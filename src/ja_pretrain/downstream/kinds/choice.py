"""Multiple choice (JCommonsenseQA): each (question, choice) pair is one sequence of a row, the
model scores each and the best-scored choice is the prediction (`AutoModelForMultipleChoice`);
its head reads [CLS] only, as the sequence kinds' does."""

from __future__ import annotations

from typing import Any

import numpy as np

from ja_pretrain.downstream.encoding import EncodedSplit, encode_split
from ja_pretrain.downstream.kinds.base import ArgmaxCollector
from ja_pretrain.downstream.kinds.sequence import FirstTokenHead
from ja_pretrain.downstream.prediction_scores import task_metrics
from ja_pretrain.tokenization.encoder import FastEncoder


class MultipleChoice(FirstTokenHead):
    auto_class = "AutoModelForMultipleChoice"

    def encode(self, encoder: FastEncoder, examples: list, max_length: int) -> tuple[EncodedSplit, dict[str, int]]:
        return encode_split(encoder, examples, self.spec, max_length), {}

    def collector(self, split: EncodedSplit) -> ArgmaxCollector:
        return ArgmaxCollector(split)

    def score(self, split: EncodedSplit, predictions: np.ndarray) -> dict[str, float]:
        return task_metrics(self.spec.metrics, predictions, split.labels)

    def readable(self, split: EncodedSplit, index: int, value: Any, gold: bool = False) -> Any:
        return int(split.labels[index] if gold else value)

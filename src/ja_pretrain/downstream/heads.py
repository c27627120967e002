"""What differs between the kinds of task once the data is read: the model class and its head,
how a split is encoded, what a batch is trained against, how the model's outputs become
predictions, and how those are scored and written.

    kind                  model (transformers Auto class)     trained against       prediction
    regression            AutoModelForSequenceClassification  score (MSE)           a number
    classification        AutoModelForSequenceClassification  class (cross-entropy) a class
    multiple_choice       AutoModelForMultipleChoice          choice                a choice
    question_answering    AutoModelForQuestionAnswering       start and end token   a span of the context
    token_classification  AutoModelForTokenClassification     BIO label per token   entity spans
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig

from ja_pretrain.downstream.batches import row_sequences, sequence_positions
from ja_pretrain.downstream.encoding import EncodedSplit, encode_split
from ja_pretrain.downstream.metrics import task_metrics
from ja_pretrain.downstream.ner import IGNORED, decode_entities, encode_ner, ner_metrics
from ja_pretrain.downstream.qa import best_spans, encode_qa, qa_metrics
from ja_pretrain.downstream.tasks import (
    CLASSIFICATION,
    MULTIPLE_CHOICE,
    QUESTION_ANSWERING,
    REGRESSION,
    TOKEN_CLASSIFICATION,
    TaskSpec,
)
from ja_pretrain.tokenization.encoder import FastEncoder

AUTO_CLASSES = {
    REGRESSION: "AutoModelForSequenceClassification",
    CLASSIFICATION: "AutoModelForSequenceClassification",
    MULTIPLE_CHOICE: "AutoModelForMultipleChoice",
    QUESTION_ANSWERING: "AutoModelForQuestionAnswering",
    TOKEN_CLASSIFICATION: "AutoModelForTokenClassification",
}


def model_config(model_dir: Path, spec: TaskSpec):
    """The pretrained model's config with the task's head: labels, their names, the loss."""
    config = AutoConfig.from_pretrained(model_dir)
    if spec.kind == REGRESSION:
        config.num_labels, config.problem_type = 1, "regression"
    elif spec.kind in (CLASSIFICATION, TOKEN_CLASSIFICATION):
        names = spec.labels if spec.kind == CLASSIFICATION else spec.token_labels
        config.num_labels = len(names)
        config.id2label = dict(enumerate(names))
        config.label2id = {name: i for i, name in enumerate(names)}
        if spec.kind == CLASSIFICATION:
            config.problem_type = "single_label_classification"
    return config


def encode(encoder: FastEncoder, examples: list, spec: TaskSpec, max_length: int) -> tuple[EncodedSplit, dict[str, int]]:
    """The split's model inputs, and counts worth reporting about them."""
    if spec.kind == QUESTION_ANSWERING:
        split = encode_qa(encoder, examples, max_length)
        return split, {"windows": split.num_rows, "questions_cut": split.truncated}
    if spec.kind == TOKEN_CLASSIFICATION:
        split, misaligned = encode_ner(encoder, examples, max_length)
        return split, {"entities": sum(len(g) for g in split.gold), "entities_off_token_edges": misaligned,
                       "entities_dropped_as_overlapping": sum(e.dropped for e in examples)}
    return encode_split(encoder, examples, spec, max_length), {}


def targets(spec: TaskSpec, split: EncodedSplit, rows: np.ndarray) -> dict[str, torch.Tensor]:
    if spec.kind == QUESTION_ANSWERING:
        positions = torch.from_numpy(split.labels[rows])
        return {"start_positions": positions[:, 0], "end_positions": positions[:, 1]}
    if spec.kind == TOKEN_CLASSIFICATION:
        flat, real = sequence_positions(split, row_sequences(split, rows))
        return {"labels": torch.from_numpy(np.where(real, split.token_labels[flat], IGNORED))}
    return {"labels": torch.from_numpy(split.labels[rows])}


class Collector:
    """Gathers a split's outputs batch by batch, in any row order, then makes predictions."""
    def __init__(self, spec: TaskSpec, split: EncodedSplit):
        self.spec, self.split = spec, split
        if spec.kind in (QUESTION_ANSWERING, TOKEN_CLASSIFICATION):
            self.rows: list[Any] = [None] * split.num_rows
        else:
            self.values = np.zeros(split.num_rows, dtype=np.float64 if spec.kind == REGRESSION else np.int64)

    def add(self, rows: np.ndarray, outputs) -> None:
        lengths = self.split.lengths[rows]
        if self.spec.kind == QUESTION_ANSWERING:
            starts, ends = outputs.start_logits.float().cpu().numpy(), outputs.end_logits.float().cpu().numpy()
            for k, row in enumerate(rows.tolist()):
                self.rows[row] = (starts[k, :lengths[k]], ends[k, :lengths[k]])
        elif self.spec.kind == TOKEN_CLASSIFICATION:
            labels = outputs.logits.argmax(dim=-1).cpu().numpy()
            for k, row in enumerate(rows.tolist()):
                self.rows[row] = labels[k, :lengths[k]]
        elif self.spec.kind == REGRESSION:
            self.values[rows] = outputs.logits[:, 0].float().cpu().numpy()
        else:
            self.values[rows] = outputs.logits.argmax(dim=-1).cpu().numpy()

    def predictions(self) -> Any:
        """Per example: a score, a class or choice index, an answer text, or entity spans."""
        if self.spec.kind == QUESTION_ANSWERING:
            return best_spans(self.split, [r[0] for r in self.rows], [r[1] for r in self.rows])
        if self.spec.kind == TOKEN_CLASSIFICATION:
            split = self.split
            return [decode_entities(labels, split.char_spans[split.offsets[i]:split.offsets[i] + split.lengths[i]])
                    for i, labels in enumerate(self.rows)]
        return self.values


def score(spec: TaskSpec, split: EncodedSplit, predictions: Any) -> dict[str, float]:
    if spec.kind == QUESTION_ANSWERING:
        return qa_metrics(predictions, split.gold)
    if spec.kind == TOKEN_CLASSIFICATION:
        return ner_metrics(predictions, split.gold)
    return task_metrics(spec.metrics, predictions, split.labels, num_classes=len(spec.labels))


def _entities(spec: TaskSpec, text: str, entities) -> list[list]:
    return [[start, end, spec.labels[kind], text[start:end]] for start, end, kind in entities]


def readable(spec: TaskSpec, split: EncodedSplit, index: int, value: Any, gold: bool = False) -> Any:
    """A gold label (gold=True) or a prediction of example `index` as predictions.jsonl writes it."""
    if spec.kind == QUESTION_ANSWERING:
        return split.gold[index] if gold else value
    if spec.kind == TOKEN_CLASSIFICATION:
        return _entities(spec, split.texts[index], split.gold[index] if gold else value)
    if gold:
        value = split.labels[index]
    if spec.kind == REGRESSION:
        return float(value)  # full precision: the scores are recomputed from these
    return spec.labels[int(value)] if spec.labels else int(value)

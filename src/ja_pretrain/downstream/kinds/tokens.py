"""Token classification (Wikipedia NER) through `AutoModelForTokenClassification`: named
entities as BIO labels on tokens, and tokens' labels read back as character spans.

A token is inside an entity when its characters overlap the entity's; the first such token is
B-TYPE and the rest I-TYPE, everything else O, and [CLS]/[SEP] learn nothing (-100). An entity
whose edges fall inside a token cannot be predicted exactly; the encoder counts them
(`misaligned`). Reading back, a B- starts an entity, an I- of the same type continues it, and an
I- after O or another type starts one too (as conlleval does); an entity is the characters from
its first token's start to its last token's end.

Scores are entity-level, micro-averaged over the split: an entity counts only when its start,
end and type all equal a gold entity's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ja_pretrain.downstream.batches import row_sequences, sequence_positions
from ja_pretrain.downstream.encoding import EncodedSplit
from ja_pretrain.downstream.kinds.base import PerTokenCollector, TaskKind
from ja_pretrain.downstream.readers import NERExample
from ja_pretrain.tokenization.encoder import FastEncoder

IGNORED = -100


@dataclass
class TokenSplit(EncodedSplit):
    """One text per row; what is learnt is a label per token."""

    token_labels: np.ndarray | None = None  # a label per token of `ids`, -100 where none is learnt
    char_spans: np.ndarray | None = None  # (start, end) characters of each token of `ids`, -1 if none
    gold: list | None = None  # (start, end, type) entity spans per example
    texts: list[str] | None = None


def bio_labels(spans: np.ndarray, entities: tuple[tuple[int, int, int], ...]) -> tuple[np.ndarray, int]:
    """(label per token: 0 = O, 1 + 2t = B-t, 2 + 2t = I-t; entities whose edges do not fall
    on token edges)."""
    labels = np.zeros(len(spans), dtype=np.int64)
    misaligned = 0
    for start, end, kind in entities:
        inside = np.flatnonzero((spans[:, 1] > start) & (spans[:, 0] < end))
        if not len(inside) or spans[inside[0], 0] != start or spans[inside[-1], 1] != end:
            misaligned += 1
        if len(inside):
            labels[inside] = 2 + 2 * kind
            labels[inside[0]] = 1 + 2 * kind
    return labels, misaligned


def encode_ner(encoder: FastEncoder, examples: list[NERExample], max_length: int) -> tuple[TokenSplit, int]:
    """The split, and how many gold entities do not fall on token edges."""
    cls, sep = encoder.special_ids["cls"], encoder.special_ids["sep"]
    ids, spans, labels, lengths = [], [], [], []
    truncated = misaligned = 0
    for example, (tokens, offsets) in zip(examples, encoder.encode_with_offsets([e.text for e in examples]),
                                          strict=True):
        token_labels, missed = bio_labels(offsets, example.entities)
        misaligned += missed
        keep = max_length - 2
        truncated += len(tokens) > keep
        ids.append(np.concatenate([[cls], tokens[:keep], [sep]]).astype(np.int32))
        spans.append(np.concatenate([[[-1, -1]], offsets[:keep], [[-1, -1]]]))
        labels.append(np.concatenate([[IGNORED], token_labels[:keep], [IGNORED]]))
        lengths.append(len(ids[-1]))
    lengths_array = np.asarray(lengths, dtype=np.int64)
    split = TokenSplit(
        ids=np.concatenate(ids) if ids else np.zeros(0, np.int32),
        offsets=np.cumsum(lengths_array) - lengths_array,
        lengths=lengths_array,
        first_lengths=lengths_array.copy(),  # one segment: every token has type 0
        labels=np.zeros(len(examples), dtype=np.int64),
        uids=[e.uid for e in examples],
        num_choices=1,
        truncated=truncated,
        token_labels=np.concatenate(labels) if labels else np.zeros(0, np.int64),
        char_spans=np.concatenate(spans) if spans else np.zeros((0, 2), np.int64),
        gold=[list(e.entities) for e in examples],
        texts=[e.text for e in examples],
    )
    return split, misaligned


def decode_entities(labels: np.ndarray, spans: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, type) character spans from one sequence's token labels."""
    entities: list[tuple[int, int, int]] = []
    current: list[int] | None = None  # [start, end, type]
    for label, (start, end) in zip(labels.tolist(), spans.tolist(), strict=True):
        if start < 0:  # a special token
            continue
        kind, inside = (label - 1) // 2, label % 2 == 0
        if label == 0:
            current = None
        elif inside and current is not None and current[2] == kind:
            current[1] = end
        else:
            current = [start, end, kind]
            entities.append(current)  # type: ignore[arg-type]
    return [tuple(e) for e in entities]


def ner_metrics(predicted: list[list[tuple[int, int, int]]], gold: list[list[tuple[int, int, int]]]) -> dict[str, float]:
    hits = sum(len(set(p) & set(g)) for p, g in zip(predicted, gold, strict=True))
    n_predicted, n_gold = sum(len(set(p)) for p in predicted), sum(len(set(g)) for g in gold)
    precision = hits / n_predicted if n_predicted else 0.0
    recall = hits / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


class EntityCollector(PerTokenCollector):
    def per_token(self, outputs: Any) -> tuple[np.ndarray, ...]:
        return (outputs.logits.argmax(dim=-1).cpu().numpy(),)

    def predictions(self) -> list[list[tuple[int, int, int]]]:
        split = self.split
        return [decode_entities(labels, split.char_spans[split.offsets[i]:split.offsets[i] + split.lengths[i]])
                for i, (labels,) in enumerate(self.rows)]


class TokenClassification(TaskKind):
    auto_class = "AutoModelForTokenClassification"

    def encode(self, encoder: FastEncoder, examples: list, max_length: int) -> tuple[TokenSplit, dict[str, int]]:
        split, misaligned = encode_ner(encoder, examples, max_length)
        return split, {"entities": sum(len(g) for g in split.gold), "entities_off_token_edges": misaligned,
                       "entities_dropped_as_overlapping": sum(e.dropped for e in examples)}

    def head_config(self, config: Any) -> Any:
        names = self.spec.token_labels
        config.num_labels = len(names)
        config.id2label = dict(enumerate(names))
        config.label2id = {name: i for i, name in enumerate(names)}
        return config

    def targets(self, split: TokenSplit, rows: np.ndarray) -> dict[str, torch.Tensor]:
        flat, real = sequence_positions(split, row_sequences(split, rows))
        return {"labels": torch.from_numpy(np.where(real, split.token_labels[flat], IGNORED))}

    def collector(self, split: TokenSplit) -> EntityCollector:
        return EntityCollector(split)

    def score(self, split: TokenSplit, predictions: list) -> dict[str, float]:
        return ner_metrics(predictions, split.gold)

    def readable(self, split: TokenSplit, index: int, value: Any, gold: bool = False) -> Any:
        text = split.texts[index]
        return [[start, end, self.spec.labels[kind], text[start:end]]
                for start, end, kind in (split.gold[index] if gold else value)]

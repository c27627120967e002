"""Named entities as BIO labels on tokens, and tokens' labels read back as character spans.

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

import numpy as np

from ja_pretrain.downstream.encoding import EncodedSplit
from ja_pretrain.downstream.readers import NERExample
from ja_pretrain.tokenization.encoder import FastEncoder

IGNORED = -100


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


def encode_ner(encoder: FastEncoder, examples: list[NERExample], max_length: int) -> tuple[EncodedSplit, int]:
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
    split = EncodedSplit(
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

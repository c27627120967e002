"""Scores of predicted labels against gold ones: what the sequence and multiple-choice tasks
are judged by on their dev split (the span tasks score in their own kind's module).

- accuracy: the share of examples whose predicted class (or choice) is the gold one;
- macro_f1: the unweighted mean of each class's F1 over the classes that occur among the gold
  labels or the predictions, as scikit-learn's `f1_score(average="macro")` computes it when not
  given `labels`: a class absent from both is left out of the mean (it does not count as 0); a
  class that occurs but is never predicted correctly counts as 0 (zero_division=0);
- pearson: Pearson's correlation of predicted and gold scores;
- spearman: Pearson's correlation of their ranks, ties taking the mean of their ranks.
"""

from __future__ import annotations

import numpy as np


def accuracy(predicted: np.ndarray, gold: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(gold))) if len(gold) else float("nan")


def macro_f1(predicted: np.ndarray, gold: np.ndarray) -> float:
    predicted, gold = np.asarray(predicted), np.asarray(gold)
    scores = []
    for label in np.union1d(predicted, gold):
        tp = int(np.sum((predicted == label) & (gold == label)))
        fp = int(np.sum((predicted == label) & (gold != label)))
        fn = int(np.sum((predicted != label) & (gold == label)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.sum(dx * dx) * np.sum(dy * dy))
    return float(np.sum(dx * dy) / denominator) if denominator > 0 else float("nan")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of the ranks they span."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    # a run of equal values is one group; each group's rank is the mean of its positions
    starts = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.concatenate([first[1:], [len(values)]]) - 1
    ranks = np.empty(len(values))
    ranks[order] = (first[group] + last[group]) / 2 + 1
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(average_ranks(x), average_ranks(y))


def task_metrics(names: tuple[str, ...], predicted: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """The named metrics of predictions against gold labels."""
    out = {}
    for name in names:
        if name == "accuracy":
            out[name] = accuracy(predicted, gold)
        elif name == "macro_f1":
            out[name] = macro_f1(predicted, gold)
        elif name == "pearson":
            out[name] = pearson(predicted, gold)
        elif name == "spearman":
            out[name] = spearman(predicted, gold)
        else:
            raise ValueError(f"unknown metric {name!r}")
    return out

"""Extractive question answering (JSQuAD) as JGLUE ran it: the legacy transformers `run_squad.py`
(`squad_convert_examples_to_features` and `compute_predictions_logits`), through
`AutoModelForQuestionAnswering`.

Each row is `[CLS] question [SEP] context window [SEP]`: the question cut to 64 tokens, the
context cut into windows that fill the rest of `max_length`, a new window starting every
`doc_stride` tokens (run_squad's stride is the step between window starts, not the overlap of
run_qa.py) until one reaches the end. Where a window is no longer than the stride (a model with
fewer positions than the protocol's 384), run_squad would skip tokens; there the step is half a
window instead, so every token is in some window and an answer near a cut is whole in the next.

A window is trained to point at the answer's first and last tokens when it holds the whole
answer, at [CLS] (position 0) otherwise. A token in several windows counts, for predictions,
only in the one where it has the most context: the largest min(tokens to its left, tokens to
its right) in the window, plus 0.01 x the window's length, the first window on a tie
(run_squad's max-context filter). The prediction is the best-scoring span (start + end logit)
over all windows, among the 20 best starts and ends of each window, starting at a token that
has its most context there, ending inside the context, at most 30 tokens; mapped through the
tokens' character offsets to the context's own characters (so NFKC never shows in an answer).
One difference remains: run_squad took the 20 best over a window padded to 384, padding
included; here a window has no padding.

Scores as JGLUE computes them (its patch of transformers' squad_metrics): answers are
lower-cased, a final "。" dropped and whitespace runs made one space; exact match, and F1 over
characters, each the best over the gold answers.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ja_pretrain.downstream.encoding import EncodedSplit, gather_ranges
from ja_pretrain.downstream.kinds.base import PerTokenCollector, TaskKind
from ja_pretrain.downstream.readers import QAExample
from ja_pretrain.tokenization.encoder import FastEncoder

MAX_QUESTION_TOKENS = 64
DOC_STRIDE = 128
MAX_ANSWER_TOKENS = 30
N_BEST = 20


@dataclass
class WindowSplit(EncodedSplit):
    """Rows are windows of a context; `labels` are each window's (start, end) answer token."""

    row_example: np.ndarray | None = None  # the example each row (window) belongs to
    char_spans: np.ndarray | None = None  # (start, end) characters of each token of `ids`; -1 outside the context
    max_context: np.ndarray | None = None  # per token of `ids`: this window is where it has the most context
    gold: list[list[str]] | None = None  # answer texts per example
    texts: list[str] | None = None  # the context of each example


def window_step(room: int, doc_stride: int) -> int:
    """run_squad's step between window starts, or half a window where the window is no longer
    than the stride (see the module's docstring)."""
    return doc_stride if doc_stride < room else max(1, room // 2)


def windows(context_tokens: int, room: int, step: int) -> list[tuple[int, int]]:
    """(start, end) token ranges of the context: at most `room` long, one starting every `step`
    tokens, the last one reaching the end."""
    spans, start = [], 0
    while True:
        end = min(start + room, context_tokens)
        spans.append((start, end))
        if end >= context_tokens:
            return spans
        start += step


def max_context_masks(spans: list[tuple[int, int]], context_tokens: int) -> list[np.ndarray]:
    """For each window, which of its tokens have their most context in it (run_squad's
    `_new_check_is_max_context`: min(left, right) + 0.01 x the window's length, the first
    window on a tie)."""
    positions = np.arange(context_tokens)
    best_score = np.full(context_tokens, -np.inf)
    best_window = np.full(context_tokens, -1)
    for index, (start, end) in enumerate(spans):
        inside = (positions >= start) & (positions < end)
        score = np.minimum(positions - start, end - 1 - positions) + 0.01 * (end - start)
        better = inside & (score > best_score)
        best_score[better], best_window[better] = score[better], index
    return [best_window[start:end] == index for index, (start, end) in enumerate(spans)]


def answer_tokens(spans: np.ndarray, start_char: int, end_char: int) -> tuple[int, int] | None:
    """First and last context token covering the answer's characters, or None."""
    inside = np.flatnonzero((spans[:, 1] > start_char) & (spans[:, 0] < end_char))
    return (int(inside[0]), int(inside[-1])) if len(inside) else None


def encode_qa(encoder: FastEncoder, examples: list[QAExample], max_length: int,
              doc_stride: int = DOC_STRIDE) -> WindowSplit:
    questions = list(dict.fromkeys(e.question for e in examples))
    question_ids = dict(zip(questions, encoder.encode_sentences(questions), strict=True))
    contexts = list(dict.fromkeys(e.context for e in examples))
    context_tokens = dict(zip(contexts, encoder.encode_with_offsets(contexts), strict=True))
    cls, sep = encoder.special_ids["cls"], encoder.special_ids["sep"]
    ids, spans, best, lengths, firsts, labels, owners = [], [], [], [], [], [], []
    truncated = 0
    for index, example in enumerate(examples):
        question = question_ids[example.question][:MAX_QUESTION_TOKENS]
        truncated += len(question_ids[example.question]) > MAX_QUESTION_TOKENS
        context, offsets = context_tokens[example.context]
        room = max_length - len(question) - 3
        if room < 1:
            raise ValueError(f"max_length {max_length} leaves no room for the context")
        text, start_char = example.answers[0]
        answer = answer_tokens(offsets, start_char, start_char + len(text))
        head = len(question) + 2
        cuts = windows(len(context), room, window_step(room, doc_stride))
        for (start, end), most in zip(cuts, max_context_masks(cuts, len(context)), strict=True):
            ids.append(np.concatenate([[cls], question, [sep], context[start:end], [sep]]).astype(np.int32))
            spans.append(np.concatenate([np.full((head, 2), -1, dtype=np.int64), offsets[start:end], [[-1, -1]]]))
            best.append(np.concatenate([np.zeros(head, bool), most, [False]]))
            lengths.append(len(ids[-1]))
            firsts.append(head)
            inside = answer is not None and start <= answer[0] and answer[1] < end
            labels.append((answer[0] - start + head, answer[1] - start + head) if inside else (0, 0))
            owners.append(index)
    lengths_array = np.asarray(lengths, dtype=np.int64)
    return WindowSplit(
        ids=np.concatenate(ids) if ids else np.zeros(0, np.int32),
        offsets=np.cumsum(lengths_array) - lengths_array,
        lengths=lengths_array,
        first_lengths=np.asarray(firsts, dtype=np.int64),
        labels=np.asarray(labels, dtype=np.int64).reshape(-1, 2),
        uids=[e.uid for e in examples],
        num_choices=1,
        truncated=truncated,
        row_example=np.asarray(owners, dtype=np.int64),
        char_spans=np.concatenate(spans) if spans else np.zeros((0, 2), np.int64),
        max_context=np.concatenate(best) if best else np.zeros(0, bool),
        gold=[[text for text, _ in e.answers] for e in examples],
        texts=[e.context for e in examples],
    )


def best_spans(split: WindowSplit, start_logits: list[np.ndarray], end_logits: list[np.ndarray],
               max_answer_tokens: int = MAX_ANSWER_TOKENS, n_best: int = N_BEST) -> list[str]:
    """The predicted answer text of every example: the best (start, end) over its windows."""
    best: dict[int, tuple[float, int, int]] = {}
    for row, (starts, ends) in enumerate(zip(start_logits, end_logits, strict=True)):
        tokens = gather_ranges(split.offsets[row:row + 1], split.lengths[row:row + 1])
        spans, most = split.char_spans[tokens], split.max_context[tokens]
        # run_squad: the n best over the whole window, then those that cannot be an answer dropped
        top_starts = np.argsort(-starts, kind="stable")[:n_best]
        top_ends = np.argsort(-ends, kind="stable")[:n_best]
        top_starts = top_starts[most[top_starts]]
        top_ends = top_ends[spans[top_ends, 0] >= 0]
        if not len(top_starts) or not len(top_ends):
            continue
        scores = starts[top_starts][:, None] + ends[top_ends][None, :]
        width = top_ends[None, :] - top_starts[:, None]
        scores = np.where((width >= 0) & (width < max_answer_tokens), scores, -np.inf)
        i, j = np.unravel_index(np.argmax(scores), scores.shape)
        if not np.isfinite(scores[i, j]):
            continue
        example = int(split.row_example[row])
        if example not in best or scores[i, j] > best[example][0]:
            best[example] = (float(scores[i, j]), int(spans[top_starts[i], 0]), int(spans[top_ends[j], 1]))
    return [split.texts[k][best[k][1]:best[k][2]] if k in best else "" for k in range(len(split))]


class SpanCollector(PerTokenCollector):
    def per_token(self, outputs: Any) -> tuple[np.ndarray, ...]:
        return outputs.start_logits.float().cpu().numpy(), outputs.end_logits.float().cpu().numpy()

    def predictions(self) -> list[str]:
        return best_spans(self.split, [r[0] for r in self.rows], [r[1] for r in self.rows])


class ExtractiveQA(TaskKind):
    auto_class = "AutoModelForQuestionAnswering"

    def encode(self, encoder: FastEncoder, examples: list, max_length: int) -> tuple[WindowSplit, dict[str, int]]:
        split = encode_qa(encoder, examples, max_length)
        return split, {"windows": split.num_rows, "questions_cut": split.truncated}

    def targets(self, split: EncodedSplit, rows: np.ndarray) -> dict[str, torch.Tensor]:
        positions = torch.from_numpy(split.labels[rows])
        return {"start_positions": positions[:, 0], "end_positions": positions[:, 1]}

    def collector(self, split: WindowSplit) -> SpanCollector:
        return SpanCollector(split)

    def score(self, split: WindowSplit, predictions: list[str]) -> dict[str, float]:
        return qa_metrics(predictions, split.gold)

    def readable(self, split: WindowSplit, index: int, value: Any, gold: bool = False) -> Any:
        return split.gold[index] if gold else value


def normalize_answer(text: str) -> str:
    """JGLUE's normalization of an answer: lower case, no final "。", single spaces."""
    return " ".join(text.lower().rstrip("。").split())


def char_f1(gold: str, predicted: str) -> float:
    gold_chars, predicted_chars = list(normalize_answer(gold)), list(normalize_answer(predicted))
    if not gold_chars or not predicted_chars:
        return float(gold_chars == predicted_chars)
    same = sum((collections.Counter(gold_chars) & collections.Counter(predicted_chars)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted_chars), same / len(gold_chars)
    return 2 * precision * recall / (precision + recall)


def qa_metrics(predicted: list[str], gold: list[list[str]]) -> dict[str, float]:
    exact = [max(float(normalize_answer(g) == normalize_answer(p)) for g in answers)
             for p, answers in zip(predicted, gold, strict=True)]
    f1 = [max(char_f1(g, p) for g in answers) for p, answers in zip(predicted, gold, strict=True)]
    return {"exact_match": float(np.mean(exact)) if exact else float("nan"),
            "f1": float(np.mean(f1)) if f1 else float("nan")}

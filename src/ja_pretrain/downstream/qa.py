"""Extractive question answering (JSQuAD): windows over the context, answer spans as token
positions, and predictions read back as characters of the context.

Each example is `[CLS] question [SEP] context window [SEP]`: the question cut to 64 tokens, the
context cut into windows that fill the rest of `max_length` and overlap by `doc_stride` tokens
(the stride of transformers' run_qa.py; at most half a window, for short models), so an answer
near a cut is whole in some window. A window is trained to point at the answer's first and last
tokens when it holds the whole answer, at [CLS] (position 0) otherwise. The prediction is the
best-scoring span (start + end logit) over all windows, at most 30 tokens, inside the context,
mapped through the tokens' character offsets to the context's own characters (so NFKC never
shows in an answer).

Scores as JGLUE computes them (its patch of transformers' squad_metrics): answers are
lower-cased, a final "。" dropped and whitespace runs made one space; exact match, and F1 over
characters, each the best over the gold answers.
"""

from __future__ import annotations

import collections

import numpy as np

from ja_pretrain.downstream.encoding import EncodedSplit, gather_ranges
from ja_pretrain.downstream.readers import QAExample
from ja_pretrain.tokenization.encoder import FastEncoder

MAX_QUESTION_TOKENS = 64
DOC_STRIDE = 128
MAX_ANSWER_TOKENS = 30
N_BEST = 20


def windows(context_tokens: int, room: int, stride: int) -> list[tuple[int, int]]:
    """(start, end) token ranges of the context, each at most `room` long, overlapping by
    `stride` tokens, covering every token."""
    spans, start = [], 0
    while True:
        end = min(start + room, context_tokens)
        spans.append((start, end))
        if end >= context_tokens:
            return spans
        start = max(start + 1, end - stride)


def answer_tokens(spans: np.ndarray, start_char: int, end_char: int) -> tuple[int, int] | None:
    """First and last context token covering the answer's characters, or None."""
    inside = np.flatnonzero((spans[:, 1] > start_char) & (spans[:, 0] < end_char))
    return (int(inside[0]), int(inside[-1])) if len(inside) else None


def encode_qa(encoder: FastEncoder, examples: list[QAExample], max_length: int,
              doc_stride: int = DOC_STRIDE) -> EncodedSplit:
    questions = list(dict.fromkeys(e.question for e in examples))
    question_ids = dict(zip(questions, encoder.encode_sentences(questions), strict=True))
    contexts = list(dict.fromkeys(e.context for e in examples))
    context_tokens = dict(zip(contexts, encoder.encode_with_offsets(contexts), strict=True))
    cls, sep = encoder.special_ids["cls"], encoder.special_ids["sep"]
    ids, spans, lengths, firsts, labels, owners = [], [], [], [], [], []
    truncated = 0
    for index, example in enumerate(examples):
        question = question_ids[example.question][:MAX_QUESTION_TOKENS]
        truncated += len(question_ids[example.question]) > MAX_QUESTION_TOKENS
        context, offsets = context_tokens[example.context]
        room = max_length - len(question) - 3
        if room < 1:
            raise ValueError(f"max_length {max_length} leaves no room for the context")
        # An overlap as long as the room would move each window on by one token (a model of 128
        # positions under JGLUE's 128-token stride): overlap at most half the room.
        overlap = min(doc_stride, room // 2)
        text, start_char = example.answers[0]
        answer = answer_tokens(offsets, start_char, start_char + len(text))
        for start, end in windows(len(context), room, overlap):
            head = len(question) + 2
            ids.append(np.concatenate([[cls], question, [sep], context[start:end], [sep]]).astype(np.int32))
            no_span = np.full((head, 2), -1, dtype=np.int64)
            spans.append(np.concatenate([no_span, offsets[start:end], [[-1, -1]]]))
            lengths.append(len(ids[-1]))
            firsts.append(head)
            inside = answer is not None and start <= answer[0] and answer[1] < end
            labels.append((answer[0] - start + head, answer[1] - start + head) if inside else (0, 0))
            owners.append(index)
    lengths_array = np.asarray(lengths, dtype=np.int64)
    return EncodedSplit(
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
        gold=[[text for text, _ in e.answers] for e in examples],
        texts=[e.context for e in examples],
    )


def best_spans(split: EncodedSplit, start_logits: list[np.ndarray], end_logits: list[np.ndarray],
               max_answer_tokens: int = MAX_ANSWER_TOKENS, n_best: int = N_BEST) -> list[str]:
    """The predicted answer text of every example: the best (start, end) over its windows."""
    best: dict[int, tuple[float, int, int]] = {}
    for row, (starts, ends) in enumerate(zip(start_logits, end_logits, strict=True)):
        spans = split.char_spans[gather_ranges(split.offsets[row:row + 1], split.lengths[row:row + 1])]
        in_context = np.flatnonzero(spans[:, 0] >= 0)
        if not len(in_context):
            continue
        top_starts = in_context[np.argsort(-starts[in_context], kind="stable")[:n_best]]
        top_ends = in_context[np.argsort(-ends[in_context], kind="stable")[:n_best]]
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

"""Span tasks: JSQuAD windows as run_squad.py cuts them (a new window every doc_stride tokens)
and its max-context filter, worked out by hand; answer positions and predicted answers in the
context's own characters; NER's BIO labels and entities read back; their metrics against an
independent computation; bad records refused by name; both through `ja-pretrain finetune` end to
end, where the tiny model learns the answer and the entities it is shown."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
from downstream_support import tiny_bert, tokenizer_dir, write_jsonl

from ja_pretrain.cli import main
from ja_pretrain.downstream.kinds.qa import best_spans, encode_qa, max_context_masks, qa_metrics, window_step, windows
from ja_pretrain.downstream.kinds.tokens import bio_labels, decode_entities, ner_metrics
from ja_pretrain.downstream.readers import QAExample, read_task_file
from ja_pretrain.downstream.tasks import TASKS
from ja_pretrain.errors import UserError
from ja_pretrain.tokenization.encoder import FastEncoder

CONTEXT = "梅雨 [SEP] 梅雨は、北海道と小笠原諸島を除く日本で見られる。６月から７月にかけて雨が多い。ＡＢＣ株式会社は東京にある"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    from test_evaluate_fixtures import write_tokenizer

    directory = write_tokenizer(tmp_path_factory.mktemp("spans-tok") / "tok", documents=[[CONTEXT, "日本で梅雨がないのは？"]])
    return FastEncoder(directory)


def squad(questions: list[tuple[str, str, str, int]], context: str = CONTEXT) -> dict:
    return {"version": "v1.3", "data": [{"title": "梅雨", "paragraphs": [{"context": context, "qas": [
        {"id": qid, "question": q, "answers": [{"text": a, "answer_start": s}], "is_impossible": False}
        for qid, q, a, s in questions]}]}]}


def test_windows_start_every_stride_as_run_squad():
    """doc_stride is the step between window starts (run_squad.py), not their overlap."""
    assert windows(10, 4, 3) == [(0, 4), (3, 7), (6, 10)]
    assert windows(9, 4, 3) == [(0, 4), (3, 7), (6, 9)]
    assert windows(3, 10, 3) == [(0, 3)]
    # JGLUE's 384 tokens, stride 128: a room of 317-381 context tokens, so the stride is the step
    assert window_step(317, 128) == 128 and window_step(381, 128) == 128
    # a window no longer than the stride would skip tokens: half a window instead
    assert window_step(100, 128) == 50 and window_step(128, 128) == 64


def test_max_context_worked_by_hand():
    """Windows (0, 4), (3, 7), (6, 9) of 9 tokens. Score of token p in window [s, e):
    min(p - s, e - 1 - p) + 0.01 (e - s).
      token 3: window 0 min(3, 0) + .04, window 1 min(0, 3) + .04: a tie, the first wins -> 0
      token 6: window 1 min(3, 0) + .04, window 2 min(0, 2) + .03: the longer window -> 1
    every other token is in one window, or has more context on one side (token 4: window 1)."""
    spans = windows(9, 4, 3)
    masks = max_context_masks(spans, 9)
    assert [m.tolist() for m in masks] == [[True, True, True, True], [False, True, True, True], [False, True, True]]
    # windows (0, 6), (2, 8): token 3 min(3, 2) = 2 against min(1, 4) = 1 -> window 0;
    # token 4 min(4, 1) = 1 against min(2, 3) = 2 -> window 1
    masks = max_context_masks([(0, 6), (2, 8)], 8)
    assert masks[0].tolist() == [True, True, True, True, False, False]
    assert masks[1].tolist() == [False, False, True, True, True, True]


def test_an_answer_at_the_end_and_one_across_a_window_cut(encoder):
    end_answer = CONTEXT.index("東京にある")
    examples = [QAExample("end", "どこにある？", CONTEXT, (("東京にある", end_answer),)),
                QAExample("cut", "何が多い？", CONTEXT, (("雨が多い", CONTEXT.index("雨が多い")),))]
    (ids, offsets), = encoder.encode_with_offsets([CONTEXT])
    split = encode_qa(encoder, examples, max_length=24, doc_stride=8)
    assert split.num_rows > 2 * len(examples)  # the context needs several windows
    for row in range(split.num_rows):
        example = examples[split.row_example[row]]
        text, start = example.answers[0]
        s, e = split.labels[row]
        spans = split.char_spans[split.offsets[row]:split.offsets[row] + split.lengths[row]]
        if (s, e) != (0, 0):  # a window that holds the whole answer points at exactly it
            assert example.context[spans[s][0]:spans[e][1]] == text
        else:  # any other window holds at most part of it
            inside = spans[(spans[:, 0] >= 0)]
            assert not (inside[:, 0].min() <= start and inside[:, 1].max() >= start + len(text))
    labelled = collections.Counter(int(split.row_example[r]) for r in range(split.num_rows) if split.labels[r][0])
    assert labelled[0] >= 1 and labelled[1] >= 1  # each answer is whole in some window


def test_long_context_windows_and_the_max_context_filter(encoder):
    """A context cut into windows of 8 context tokens, a new one every 4. A span that scores
    highest in a window where its first token has less context than in the next window is
    not the prediction: the best span starting where its tokens have their most context is."""
    examples = [QAExample("q", "何が多い？", CONTEXT, (("雨が多い", CONTEXT.index("雨が多い")),))]
    (ids, offsets), = encoder.encode_with_offsets([CONTEXT])
    question = len(encoder.encode_sentences(["何が多い？"])[0])
    split = encode_qa(encoder, examples, max_length=question + 3 + 8, doc_stride=4)
    head = question + 2
    starts = [int(split.char_spans[split.offsets[r] + head, 0]) for r in range(split.num_rows)]
    assert starts == [int(offsets[4 * k, 0]) for k in range(split.num_rows)]  # one window every 4 tokens
    assert split.num_rows == -(-(len(ids) - 8) // 4) + 1  # until one reaches the end
    # token 7 of the context: last of window 0 (no context to its right), fourth of window 1
    start_logits = [np.zeros(int(n)) for n in split.lengths]
    end_logits = [np.zeros(int(n)) for n in split.lengths]
    start_logits[0][:] = -100.0
    start_logits[0][head + 7] = end_logits[0][head + 7] = 10.0  # window 0: the span (7, 7) scores 20
    start_logits[1][head + 5] = end_logits[1][head + 5] = 3.0  # window 1 (tokens 4-11): the span (9, 9) scores 6
    token7, token9 = (CONTEXT[offsets[t, 0]:offsets[t, 1]] for t in (7, 9))
    assert token7 != token9
    assert best_spans(split, start_logits, end_logits) == [token9]
    # the same token 7 in window 1, where it has its most context, is chosen there
    start_logits[1][head + 3] = end_logits[1][head + 3] = 10.0
    assert best_spans(split, start_logits, end_logits) == [token7]


def test_predicted_span_is_the_contexts_own_characters(encoder):
    """A span over NFKC-changed text (ＡＢＣ, ６月) comes back as the original characters."""
    examples = [QAExample("q", "どこ？", CONTEXT, (("ＡＢＣ株式会社", CONTEXT.index("ＡＢＣ")),))]
    split = encode_qa(encoder, examples, max_length=128)
    spans = split.char_spans[:split.lengths[0]]
    start_token = int(np.flatnonzero(spans[:, 0] == CONTEXT.index("ＡＢＣ"))[0])
    end_token = int(np.flatnonzero(spans[:, 1] == CONTEXT.index("会社") + 2)[0])
    starts, ends = np.zeros(split.lengths[0]), np.zeros(split.lengths[0])
    starts[start_token], ends[end_token] = 5.0, 5.0
    assert best_spans(split, [starts], [ends]) == ["ＡＢＣ株式会社"]
    # only one start can score; the best end lies before it, which no span may take
    starts[:] = -100.0
    starts[start_token], ends[end_token], ends[start_token - 1] = 5.0, 1.0, 9.0
    assert best_spans(split, [starts], [ends]) == ["ＡＢＣ株式会社"]


def _em_f1(predicted: str, answers: list[str]) -> tuple[float, float]:
    """Written apart from the package: JGLUE's normalization, character F1."""
    def norm(s):
        s = s.lower()
        while s.endswith("。"):
            s = s[:-1]
        return " ".join(s.split())
    em = max(norm(a) == norm(predicted) for a in answers)
    f1s = []
    for a in answers:
        g, p = norm(a), norm(predicted)
        common = sum(min(g.count(c), p.count(c)) for c in set(g))
        f1s.append(0.0 if common == 0 else 2 * common / (len(g) + len(p)))
    return float(em), max(f1s)


def test_qa_metrics_equal_an_independent_computation():
    predicted = ["小笠原諸島", "北海道。", "ABC", "", "東京 にある"]
    gold = [["小笠原諸島を除く日本", "小笠原諸島"], ["北海道"], ["ａｂｃ"], ["x"], ["東京  にある。"]]
    expected = np.mean([_em_f1(p, g) for p, g in zip(predicted, gold, strict=True)], axis=0)
    got = qa_metrics(predicted, gold)
    assert (got["exact_match"], got["f1"]) == pytest.approx(tuple(expected))


@pytest.mark.parametrize("answer,start,message", [
    ("小笠原諸島", CONTEXT.index("北海道"), "reads '北海道と小', not the answer '小笠原諸島'; fix answer_start"),
    ("小笠原諸島", 9999, "answer_start 9999 is outside the context"),
])
def test_bad_answers_name_the_question(tmp_path, answer, start, message):
    path = tmp_path / "valid-v1.3.json"
    path.write_text(json.dumps(squad([("ok1", "q", "北海道", CONTEXT.index("北海道")), ("bad7", "q", answer, start)]),
                               ensure_ascii=False), encoding="utf-8")
    with pytest.raises(UserError) as err:
        read_task_file(TASKS["jsquad"], path)
    assert "id bad7" in str(err.value) and message in str(err.value)


def test_bio_labels_and_decoding_round_trip(encoder):
    text = "ＡＢＣ株式会社は東京にある"
    entities = ((0, 7, 1), (8, 10, 4))  # 法人名, 地名
    (ids, spans), = encoder.encode_with_offsets([text])
    labels, misaligned = bio_labels(spans, entities)
    assert misaligned == 0 and labels[0] == 1 + 2 * 1 and set(labels.tolist()) <= {0, 3, 4, 9, 10}
    assert decode_entities(labels, spans) == list(entities)
    assert decode_entities(np.array([4, 4, 0, 10]), np.array([[0, 1], [1, 2], [2, 3], [3, 4]])) == [(0, 2, 1), (3, 4, 4)]
    _, missed = bio_labels(spans, ((1, 7, 1),))  # starts inside the token "ABC"
    assert missed == 1


def test_ner_reader_rules_and_errors(tmp_path):
    spec = TASKS["ner"]
    text = "東京大学の本郷キャンパスは東京にある。"
    records = [{"curid": "1", "text": text, "entities": [
        {"name": "東京大学", "span": [0, 4], "type": "施設名"},
        {"name": "東京", "span": [0, 2], "type": "地名"},  # nested in the first: dropped
        {"name": "本郷キャンパス", "span": [5, 12], "type": "施設名"},
        {"name": "東京", "span": [13, 15], "type": "地名"}]}]
    path = tmp_path / "ner.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    (example,) = read_task_file(spec, path)
    assert example.entities == ((0, 4, 5), (5, 12, 5), (13, 15, 4)) and example.dropped == 1
    for entity, message in (({"name": "x", "span": [10, 99], "type": "地名"}, "is not [start, end] within the text"),
                            ({"name": "東京", "span": [0, 2], "type": "都市名"}, "unknown entity type \"都市名\""),
                            ({"name": "大阪", "span": [0, 2], "type": "地名"}, "reads '東京', not the entity's name")):
        path.write_text(json.dumps([{"curid": "9", "text": text, "entities": [entity]}], ensure_ascii=False),
                        encoding="utf-8")
        with pytest.raises(UserError) as err:
            read_task_file(spec, path)
        assert "record 0 (curid 9).entities[0]: " in str(err.value) and message in str(err.value)


def test_ner_metrics_equal_an_independent_computation():
    gold = [[(0, 2, 1), (3, 5, 2)], [(1, 4, 0)], []]
    predicted = [[(0, 2, 1), (3, 5, 1)], [(1, 4, 0), (6, 8, 3)], [(0, 1, 0)]]
    tp = 2  # (0, 2, 1) and (1, 4, 0); (3, 5, 1) has the wrong type
    precision, recall = tp / 5, tp / 3
    assert ner_metrics(predicted, gold) == pytest.approx(
        {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)})


def test_span_tasks_end_to_end(tmp_path, capsys):
    """JSQuAD-format and NER files through the CLI; scores recomputed from predictions.jsonl;
    saved models load with the question-answering and token-classification Auto classes."""
    from transformers import AutoModelForQuestionAnswering, AutoModelForTokenClassification

    model = tiny_bert(tokenizer_dir(tmp_path), tmp_path / "bert")
    questions = [(f"q{i}", "日本で梅雨がないのは？", "北海道", CONTEXT.index("北海道")) for i in range(12)]
    (tmp_path / "jsquad").mkdir()
    for split in ("train", "valid"):
        (tmp_path / "jsquad" / f"{split}-v1.3.json").write_text(json.dumps(squad(questions), ensure_ascii=False),
                                                                encoding="utf-8")
    # enough steps for the tiny model to learn one fixed answer and three sentence patterns
    common = ["--learning_rate", "1e-3", "--epochs", "25", "--batch_size", "4", "--no_progress", "--device", "cpu",
              "--save_model"]
    assert main(["finetune", str(model), "--task", "jsquad", "--data", str(tmp_path), "--out", str(tmp_path / "qa"),
                 *common]) == 0
    scores = json.loads((tmp_path / "qa" / "scores.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in (tmp_path / "qa" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    expected = np.mean([_em_f1(r["prediction"], r["label"]) for r in rows], axis=0)
    assert (scores["metrics"]["exact_match"], scores["metrics"]["f1"]) == pytest.approx(tuple(expected))
    assert [r["prediction"] for r in rows] == ["北海道"] * len(rows)  # learnt, and in the context's characters
    assert scores["metrics"]["exact_match"] == 1.0
    assert type(AutoModelForQuestionAnswering.from_pretrained(tmp_path / "qa" / "model")).__name__ == \
        "BertForQuestionAnswering"

    texts = ["東京大学は東京にある。", "ＡＢＣ株式会社は大阪にある。", "本郷キャンパスは東京にある。"] * 8
    records = [{"curid": str(i), "text": t, "entities": [
        {"name": t[t.index("は") + 1:t.index("に")], "span": [t.index("は") + 1, t.index("に")], "type": "地名"}]}
        for i, t in enumerate(texts)]
    write_jsonl(tmp_path / "ignored.jsonl", [])  # a second --data entry that holds no NER data
    (tmp_path / "ner.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    assert main(["finetune", str(model), "--task", "ner", "--data", str(tmp_path / "ner.json"), "--valid_ratio", "0.3",
                 "--out", str(tmp_path / "ner"), *common]) == 0
    scores = json.loads((tmp_path / "ner" / "scores.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in (tmp_path / "ner" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    for r in rows:
        assert all(r_text == texts[int(r["id"].split(":")[0])][s:e] for s, e, _, r_text in r["label"] + r["prediction"])
    gold = [{tuple(e[:3]) for e in r["label"]} for r in rows]
    predicted = [{tuple(e[:3]) for e in r["prediction"]} for r in rows]
    hits = sum(len(p & g) for p, g in zip(predicted, gold, strict=True))
    n_p, n_g = sum(map(len, predicted)), sum(map(len, gold))
    assert scores["metrics"]["precision"] == pytest.approx(hits / n_p if n_p else 0.0)
    assert scores["metrics"]["recall"] == pytest.approx(hits / n_g)
    assert scores["data"]["dev_entities"] == n_g
    assert predicted == gold and scores["metrics"]["f1"] == 1.0  # every place found, nothing else
    model_dir = tmp_path / "ner" / "model"
    saved = AutoModelForTokenClassification.from_pretrained(model_dir)
    assert saved.config.id2label[1] == "B-人名" and len(saved.config.id2label) == 17

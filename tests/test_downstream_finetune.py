"""`ja-pretrain finetune` end to end on tiny models and task files built here: a run-pretraining
output, an extracted ELECTRA discriminator and a plain Hugging Face BERT dir each go through the
suite; the scores equal an independent computation on the written predictions; a saved
fine-tuned model loads with transformers' Auto classes and predicts what predictions.jsonl
says; bad models are refused with a clear message."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from downstream_support import (
    SUBJECTS,
    caption,
    chabsa_documents,
    tiny_bert,
    tokenizer_dir,
    write_chabsa_zip,
    write_jglue,
    write_jsonl,
)
from scipy import stats

from ja_pretrain.cli import main


def _finetune(*argv) -> int:
    return main(["finetune", *map(str, argv), "--no_progress", "--device", "cpu"])


def _predictions(path: Path) -> tuple[list, list]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["index"] for r in records] == list(range(len(records)))
    return [r["label"] for r in records], [r["prediction"] for r in records]


def _check_scores_against_predictions(task_dir: Path) -> dict:
    scores = json.loads((task_dir / "scores.json").read_text(encoding="utf-8"))
    gold, predicted = _predictions(task_dir / "predictions.jsonl")
    metrics = scores["metrics"]
    assert len(gold) == scores["data"]["dev_examples"]
    if scores["task"] == "jsts":
        assert metrics["pearson"] == pytest.approx(stats.pearsonr(predicted, gold).statistic, abs=1e-5)
        assert metrics["spearman"] == pytest.approx(stats.spearmanr(predicted, gold).statistic, abs=1e-5)
    else:
        assert metrics["accuracy"] == pytest.approx(np.mean([p == g for p, g in zip(predicted, gold, strict=True)]))
    if "macro_f1" in metrics:
        f1s = []
        for label in scores["labels"]:
            tp = sum(p == label == g for p, g in zip(predicted, gold, strict=True))
            precision = tp / max(1, sum(p == label for p in predicted))
            recall = tp / max(1, sum(g == label for g in gold))
            f1s.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
        assert metrics["macro_f1"] == pytest.approx(np.mean(f1s))
    return scores


@pytest.fixture(scope="module")
def task_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("downstream-data")
    datasets = write_jglue(root / "JGLUE", n_train=24, n_valid=16)
    fin = root / "fin"
    write_chabsa_zip(fin / "chABSA-dataset.zip", chabsa_documents(12))
    return datasets, fin


def test_three_kinds_of_model_dir_run_through_the_suite(tiny, tmp_path, task_data):
    from training_support import pretrain_cli

    datasets, fin = task_data
    bert_run, electra_run = tmp_path / "bert", tmp_path / "electra"
    assert pretrain_cli(tiny, bert_run, "--train_steps", "2", model_type="bert-micro") == 0
    assert pretrain_cli(tiny, electra_run, "--train_steps", "2", model_type="electra-micro") == 0
    assert main(["extract-electra", "--input_dir", str(electra_run / "final"), "--output_dir",
                 str(tmp_path / "extracted"), "--model_type", "electra-micro"]) == 0
    plain = tiny_bert(tokenizer_dir(tmp_path), tmp_path / "hf-bert", plain=True)
    for name, model in (("bert", bert_run), ("electra", tmp_path / "extracted"), ("plain", plain)):
        out = tmp_path / f"ft-{name}"
        assert _finetune(model, "--task", "jsts", "jcommonsenseqa", "chabsa", "--data", fin, datasets,
                         "--learning_rate", "1e-3", "5e-4", "--epochs", "1", "--out", out) == 0
        suite = json.loads((out / "suite.json").read_text(encoding="utf-8"))
        assert set(suite["tasks"]) == {"jsts", "jcommonsenseqa", "chabsa"}
        for task in suite["tasks"]:
            scores = _check_scores_against_predictions(out / task)
            assert len(scores["runs"]) == 2 and scores["chosen"]["learning_rate"] in (1e-3, 5e-4)
            chosen = [r for r in scores["runs"] if r["learning_rate"] == scores["chosen"]["learning_rate"]]
            primary = next(iter(scores["metrics"]))
            assert scores["metrics"][primary] == max(r["metrics"][primary] for r in scores["runs"])
            assert chosen[0]["metrics"] == scores["metrics"]
            assert len(scores["model"]["weights_sha256"]) == 64
            data_files = ("collection",) if task == "chabsa" else ("train", "valid")
            assert all(len(scores["data"][f]["sha256"]) == 64 for f in data_files)
        split = json.loads((out / "chabsa" / "split.json").read_text(encoding="utf-8"))
        assert len(split["train_documents"]) + len(split["valid_documents"]) == 12
        expected_dir = {"bert": bert_run / "final", "electra": tmp_path / "extracted" / "discriminator",
                        "plain": plain}[name]
        assert suite["model"]["dir"] == str(expected_dir)
        assert "(published[1])" in (out / "scores.md").read_text(encoding="utf-8")
    from ja_pretrain.evaluation.report import write_report

    report = write_report(tmp_path, tokenizer_sentences=10).read_text(encoding="utf-8")
    section = report.split("## Downstream tasks")[1]
    assert "JSTS (P/S)" in section and "`bert/final`" in section and "Tohoku BERT base v3 (published[1])" in section


def _marc_files(root: Path) -> Path:
    """A task the tiny model can learn: positive when an animal is the subject."""
    rng = random.Random(0)

    def records(n):
        out = []
        for i in range(n):
            text, subject, _, _ = caption(rng)
            out.append({"review_id": f"r{i}", "sentence": text,
                        "label": "positive" if SUBJECTS.index(subject) < 3 else "negative"})
        return out

    write_jsonl(root / "marc_ja-v1.2" / "train-v1.2.json", records(160))
    write_jsonl(root / "marc_ja-v1.2" / "valid-v1.2.json", records(48))
    return root


def test_learns_a_learnable_task_and_the_saved_model_predicts_the_same(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = tokenizer_dir(tmp_path)
    model = tiny_bert(tok, tmp_path / "bert", hidden=32, layers=1)
    data = _marc_files(tmp_path / "data")
    out = tmp_path / "out"
    assert _finetune(model, "--task", "marc_ja", "--data", data, "--learning_rate", "3e-3", "--epochs", "8",
                     "--batch_size", "16", "--save_model", "--out", out) == 0
    scores = _check_scores_against_predictions(out)
    assert scores["metrics"]["accuracy"] >= 0.9
    gold, predicted = _predictions(out / "predictions.jsonl")
    saved = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
    assert saved.config.id2label == {0: "negative", 1: "positive"}
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    sentences = [json.loads(line)["sentence"] for line in
                 (data / "marc_ja-v1.2" / "valid-v1.2.json").read_text(encoding="utf-8").splitlines()]
    with torch.no_grad():
        logits = saved(**tokenizer(sentences, padding=True, return_tensors="pt")).logits
    assert [saved.config.id2label[i] for i in logits.argmax(-1).tolist()] == predicted
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["stage"] == "finetune" and manifest["counts"]["dev_examples"] == 48


def test_multiple_choice_model_saves_and_a_rerun_is_up_to_date(tmp_path, task_data, caplog):
    from transformers import AutoModelForMultipleChoice

    datasets, _ = task_data
    model = tiny_bert(tokenizer_dir(tmp_path), tmp_path / "bert")
    out = tmp_path / "jcqa"
    argv = [model, "--task", "jcommonsenseqa", "--data", datasets, "--learning_rate", "1e-3", "--epochs", "1",
            "--save_model", "--seeds", "2", "--out", out]
    assert _finetune(*argv) == 0
    scores = _check_scores_against_predictions(out)
    assert scores["seeds"] == 2 and set(scores["std"]) == {"accuracy"}
    record = json.loads((out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(record["by_seed"]) == {"42", "43"} and record["prediction"] == record["by_seed"]["42"]
    assert type(AutoModelForMultipleChoice.from_pretrained(out / "model")).__name__ == "BertForMultipleChoice"
    written = (out / "scores.json").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        assert _finetune(*argv) == 0
    assert "up to date" in caplog.text and (out / "scores.json").stat().st_mtime_ns == written
    caplog.clear()
    with caplog.at_level("INFO"):  # PyTorch's dropout draws other masks than cpu_ops': other scores
        assert _finetune(*argv, "--torch_dropout") == 0
    assert "up to date" not in caplog.text and (out / "scores.json").stat().st_mtime_ns != written
    assert _finetune(*argv[:-2], "--max_train_samples", "10", "--out", out) == 0  # another protocol: trained again
    assert json.loads((out / "scores.json").read_text(encoding="utf-8"))["data"]["train_examples"] == 10


def test_bad_models_are_refused_with_a_message(tmp_path, task_data, capsys):
    import shutil

    datasets, _ = task_data
    tok = tokenizer_dir(tmp_path)
    model = tiny_bert(tok, tmp_path / "bert")
    bare = tmp_path / "bare"
    shutil.copytree(model, bare)
    (bare / "tokenizer_config.json").unlink()
    common = ["--task", "jsts", "--data", datasets, "--epochs", "1"]
    assert _finetune(bare, *common, "--out", tmp_path / "o1") == 2
    assert "no tokenizer beside the model" in capsys.readouterr().err
    other_tok = tmp_path / "other"
    shutil.copytree(tok, other_tok)
    with open(other_tok / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("余分\n")
    assert _finetune(model, *common, "--tokenizer", other_tok, "--out", tmp_path / "o2") == 2
    assert "were not trained together" in capsys.readouterr().err
    assert _finetune(tmp_path / "nowhere", *common, "--out", tmp_path / "o3") == 2
    assert "MODEL_DIR" in capsys.readouterr().err
    assert _finetune(model, "--task", "jsts", "--train", datasets / "jsts-v1.3" / "train-v1.3.json",
                     "--out", tmp_path / "o4") == 2
    assert "--train and --valid go together" in capsys.readouterr().err
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 5))  # nothing written that looks finished


def test_a_suite_stopped_part_way_is_completed_by_a_rerun(tmp_path, task_data, caplog):
    import shutil

    datasets, _ = task_data
    model = tiny_bert(tokenizer_dir(tmp_path), tmp_path / "bert")
    out = tmp_path / "suite"
    argv = [model, "--task", "jsts", "jcommonsenseqa", "--data", datasets, "--learning_rate", "1e-3", "--epochs", "1",
            "--out", out]
    assert _finetune(*argv) == 0
    jsts_written = (out / "jsts" / "scores.json").stat().st_mtime_ns
    # as a kill during the second task leaves it: the first task finished, no suite manifest yet
    (out / "manifest.json").unlink()
    shutil.rmtree(out / "jcommonsenseqa")
    with caplog.at_level("INFO"):
        assert _finetune(*argv) == 0
    assert "jsts: up to date" in caplog.text and (out / "jsts" / "scores.json").stat().st_mtime_ns == jsts_written
    assert (out / "jcommonsenseqa" / "scores.json").is_file() and (out / "manifest.json").is_file()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    (out / "manifest.json").unlink()
    assert _finetune(*argv) == 2  # a user's file in OUT: refused, not overwritten
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"

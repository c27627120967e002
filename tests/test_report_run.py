"""`ja-pretrain report` on synthetic run directories."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from ja_pretrain.cli import main
from ja_pretrain.evaluation.evaluate import evaluate_model
from ja_pretrain.evaluation.report import write_report
from ja_pretrain.evaluation.tokenizer_stats import tokenizer_statistics
from ja_pretrain.utils.manifest import write_manifest

from test_evaluate_fixtures import DOCUMENTS, random_bert, write_corpus, write_tokenizer

# One sentence with characters outside the fixture vocabulary, so [UNK] appears.
UNKNOWN_DOC = ["鰻重と鮪丼を食べた。"]


def _train_log(path, steps=60, every=5, eval_every=20):
    rng = np.random.default_rng(0)
    with open(path, "w", encoding="utf-8") as f:
        for step in range(every, steps + 1, every):
            loss = 8.0 * math.exp(-step / 30) + 2.0 + 0.05 * rng.standard_normal()
            lr = 1e-3 * min(1.0, step / 10) * (1 - step / (steps + 1))
            f.write(json.dumps({"step": step, "split": "train", "tokens_seen": step * 1024, "loss": loss,
                                "mlm_loss": loss, "mlm_accuracy": 0.5, "lr": lr, "grad_norm": 1.0,
                                "tokens_per_s": 5000 + 100 * rng.standard_normal(), "mfu": 0.1}) + "\n")
            if step % eval_every == 0:
                f.write(json.dumps({"step": step, "split": "valid", "loss": loss + 0.3, "mlm_loss": loss + 0.3}) + "\n")
        f.write('{"step": 61, "split": "tr')  # a line cut by a crash must be skipped


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    corpus = run / "corpus"
    write_corpus(corpus / "train-00000.txt", repeat=3)
    write_corpus(corpus / "valid.txt", DOCUMENTS + [UNKNOWN_DOC])
    write_manifest(corpus, stage="corpus", inputs={"x": "1"}, options={},
                   counts={"documents": 21, "sentences": 61, "dropped": {"too_short": 4}}, timings={"total": 1.5})
    tok = write_tokenizer(run / "tokenizer")
    write_manifest(tok, stage="train_tokenizer", inputs={}, options={}, counts={"vocab_size": 10})
    model = run / "bert"
    random_bert(tok, model / "final")
    _train_log(model / "train_log.jsonl")
    evaluate_model(model, corpus, out_dir=run / "eval", show_progress=False)
    (run / "pipeline-plan.json").write_text(json.dumps([{"stage": "corpus", "command": "corpus"},
                                                        {"stage": "bert", "command": "run-pretraining"},
                                                        {"stage": "report", "command": "report"}]))
    (run / ".pipeline").mkdir()
    (run / ".pipeline" / "corpus.json").write_text(json.dumps({"command": "corpus", "seconds": 12.34,
                                                               "finished": "2026-01-02T03:04:05"}))
    return run


def test_report_tables_match_their_sources(run_dir):
    path = write_report(run_dir)
    text = path.read_text(encoding="utf-8")
    assert path == run_dir / "report" / "report.md"
    # Data per stage: counts from the manifests, nested ones flattened.
    assert re.search(r"\| corpus \| `corpus` \| documents 21, sentences 61, dropped.too_short 4 \| 1.5 \|", text)
    assert "train_tokenizer" in text
    # What the pipeline ran: a finished stage with its time, an unfinished one, not the report itself.
    assert "| corpus | corpus | 2026-01-02T03:04:05 | 12.3 |" in text
    assert "| bert |  | not finished |  |" in text and "| report | report" not in text
    # Tokenizer statistics equal a direct count, and the unknown characters show up.
    stats = tokenizer_statistics(run_dir / "tokenizer", run_dir / "corpus" / "valid.txt")
    assert stats["unk_rate"] > 0
    assert f"{stats['unk_rate']:.3%}" in text
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    sentences = [s for d in DOCUMENTS + [UNKNOWN_DOC] for s in d]
    tokens = [t for s in sentences for t in tok.tokenize(s)]
    assert stats["tokens"] == len(tokens)
    assert stats["unk_rate"] == pytest.approx(tokens.count("[UNK]") / len(tokens))
    assert stats["vocabulary_used"] == pytest.approx(len(set(tokens)) / len(tok))
    # Model and evaluation figures.
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())["models"]["bert"]
    assert "BertForMaskedLM" in text and f"{metrics['loss']:.4g}" in text
    assert f"{metrics['perplexity']:.4g}" in text
    # Training summary: last step 60 and the last held-out loss.
    assert re.search(r"\| `bert` \| 60 \| 61,440 \|", text)


def test_report_plots_are_real_images(run_dir):
    import matplotlib.image as mpimg

    write_report(run_dir)
    text = (run_dir / "report" / "report.md").read_text(encoding="utf-8")
    for name in ("loss.png", "learning_rate.png", "tokens_per_s.png"):
        assert f"]({name})" in text
        image = mpimg.imread(run_dir / "report" / name)
        assert image.shape[0] >= 300 and image.shape[1] >= 500
        assert image[..., :3].std() > 0.02  # something was drawn


def test_report_of_an_empty_dir_says_what_is_missing(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "No finished stage" in text and "No train_log.jsonl" in text
    assert not list((tmp_path / "r").glob("*.png"))
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err

"""The shipped configs: each one passes every check, and the quickstart runs end to end at a
smaller size (fewer steps), leaving loadable models, metrics.json and report.md."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from ja_pretrain.pipeline import load_config, plan_stages, run_pipeline

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SEED_STAGES = ["download-cc100-ja", "download-jawiki", "build-dataset-cc100-ja", "build-dataset-jawiki",
               "train-tokenizer", "train-model-cc100-ja", "train-model-jawiki"]


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_config_passes_every_check(name, tmp_path):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("決算短信の文。\n", encoding="utf-8")
    cfg = load_config(CONFIGS / name, [f"run_dir={tmp_path / 'run'}", f"vars.domain_text={tmp_path / 'texts'}"]
                      if name == "financial.yaml" else [f"run_dir={tmp_path / 'run'}"])
    plans = plan_stages(cfg)
    assert plans and all(p.out.parent == tmp_path / "run" for p in plans)
    assert plans[-1].command == "report" and set(plans[-1].upstream) == {p.name for p in plans[:-1]}
    if name == "cc100-jawiki-tiny.yaml":
        assert [p.name for p in plans][: len(SEED_STAGES)] == SEED_STAGES
        stage2 = next(p for p in plans if p.name == "train-model-jawiki")
        assert stage2.argv[stage2.argv.index("--init_from") + 1] == str(tmp_path / "run" / "train-model-cc100-ja" / "final")
        assert "train-model-cc100-ja" in stage2.upstream


@pytest.mark.slow
def test_quickstart_end_to_end_at_a_smaller_size(tmp_path):
    from transformers import AutoModelForMaskedLM, AutoModelForPreTraining, AutoTokenizer

    run = tmp_path / "quickstart"
    overrides = [f"run_dir={run}", "tokenizer.vocab_size=2000", "evaluation.max_sentences=60"]
    for model in ("bert", "electra"):
        overrides += [f"{model}.train_steps=20", f"{model}.logging_steps=5", f"{model}.eval_steps=20",
                      f"{model}.save_steps=20"]
    stream = io.StringIO()
    results = run_pipeline(CONFIGS / "quickstart.yaml", overrides, echo=False, stream=stream)
    assert [r.status for r in results] == ["ran"] * 9, stream.getvalue()

    tokenizer = AutoTokenizer.from_pretrained(run / "bert" / "final")
    assert type(tokenizer).__name__ == "BertJapaneseTokenizer"
    assert type(AutoModelForMaskedLM.from_pretrained(run / "bert" / "final")).__name__.startswith("Bert")
    assert type(AutoModelForMaskedLM.from_pretrained(run / "electra-extracted" / "generator")).__name__ == "ElectraForMaskedLM"
    discriminator = AutoModelForPreTraining.from_pretrained(run / "electra-extracted" / "discriminator")
    assert type(discriminator).__name__ == "ElectraForPreTraining"

    metrics = json.loads((run / "evaluation" / "metrics.json").read_text(encoding="utf-8"))["models"]
    assert set(metrics) == {"bert", "generator", "discriminator"}
    assert metrics["bert"]["masked_tokens"] == metrics["generator"]["masked_tokens"] > 0  # the same masks
    assert metrics["bert"]["perplexity"] == pytest.approx(math.exp(metrics["bert"]["loss"]))
    assert metrics["discriminator"]["corruption"].endswith("generator")
    for name in ("finetune-bert", "finetune-electra"):
        scores = json.loads((run / name / "scores.json").read_text(encoding="utf-8"))
        assert scores["task"] == "smoke" and 0.0 <= scores["metrics"]["accuracy"] <= 1.0
        assert scores["data"]["dev_examples"] == len((run / name / "predictions.jsonl").read_text().splitlines())
    report = (run / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Held-out evaluation" in report and "(loss.png)" in report
    assert "`bert/final` | " in report.split("## Downstream tasks")[1]
    assert (run / "report" / "loss.png").stat().st_size > 10_000
    train_log = [json.loads(line) for line in (run / "bert" / "train_log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert any(r.get("split") == "valid" for r in train_log)
    train_losses = [r["loss"] for r in train_log if r.get("split", "train") == "train"]
    assert train_losses[-1] < train_losses[0]  # it learns, even in 20 steps

    stream = io.StringIO()
    results = run_pipeline(CONFIGS / "quickstart.yaml", overrides, echo=False, stream=stream)
    assert [r.status for r in results] == ["skipped: up to date"] * 9
    results = run_pipeline(CONFIGS / "quickstart.yaml", overrides + ["report.tokenizer_sentences=50"], echo=False,
                           stream=stream)
    assert [r.status for r in results] == ["skipped: up to date"] * 8 + ["ran"]

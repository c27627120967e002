"""final/README.md is a Hub model card: YAML front matter a Hub upload reads (language, license,
library, pipeline tag, tags) and, after fine-tuning under the published protocol, a model-index
of the dev scores; no absolute local path anywhere in final/."""

from __future__ import annotations

import json

import pytest
import yaml
from downstream_support import write_jglue

from ja_pretrain.cli import main
from ja_pretrain.export.card import portable, read_card

from training_support import pretrain_cli


def front_matter(directory):
    text = (directory / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


@pytest.fixture(scope="module")
def final(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("card") / "bert"
    assert pretrain_cli(tiny, out, "--train_steps", "2", "--logging_steps", "1",
                        input_file=tiny.corpus, model_type="bert-micro") == 0
    return out / "final"


def test_front_matter_and_no_absolute_paths(final, tiny):
    front, _ = front_matter(final)
    assert front["language"] == "ja" and front["license"] == "other" and front["library_name"] == "transformers"
    assert front["pipeline_tag"] == "fill-mask" and "ja-pretrain" in front["tags"]
    assert "model-index" not in front  # not fine-tuned yet
    roots = {str(final.parent.parent), str(tiny.corpus.parent)}
    for path in final.iterdir():
        if path.suffix in (".md", ".json", ".txt"):
            text = path.read_text(encoding="utf-8")
            assert not any(root in text for root in roots), f"{path.name} holds a local path"


def test_portable_cuts_absolute_paths_only():
    assert portable({"a": ["/home/me/runs/x/corpus", "runs/x"], "b": 3}) == {"a": ["x/corpus", "runs/x"], "b": 3}


def test_finetune_scores_go_into_the_model_index(final, tmp_path):
    datasets = write_jglue(tmp_path / "JGLUE", n_train=16, n_valid=12)
    common = ["--data", str(datasets), "--no_progress", "--device", "cpu"]
    # JCommonsenseQA's published length, 64, is bert-micro's: a run under the published protocol
    assert main(["finetune", str(final.parent), "--task", "jcommonsenseqa", "--out", str(tmp_path / "full"),
                 *common]) == 0
    scores = json.loads((tmp_path / "full" / "scores.json").read_text(encoding="utf-8"))
    assert scores["departures"] == [] and len(scores["runs"]) == 6  # the published grid: 3 rates x 2 epochs
    front, _ = front_matter(final)
    (entry,) = front["model-index"][0]["results"]
    assert entry["task"]["type"] == "multiple-choice" and entry["dataset"]["split"] == "validation"
    assert {m["type"]: m["value"] for m in entry["metrics"]} == pytest.approx(scores["metrics"], abs=1e-4)
    # a quick look departs from the protocol: not quoted in the card
    assert main(["finetune", str(final.parent), "--task", "jnli", "--quick", "--out", str(tmp_path / "quick"),
                 *common]) == 0
    assert json.loads((tmp_path / "quick" / "scores.json").read_text(encoding="utf-8"))["departures"]
    after, _ = read_card(final)
    assert [r["task"]["name"] for r in after["model-index"][0]["results"]] == ["JCommonsenseQA"]

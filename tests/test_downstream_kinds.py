"""What the kinds of task promise beyond the end-to-end runs: the regression head computes in
fp32 under bf16 autocast (a bf16 head rounds JSTS scores into ties), and its weights save
under their own names."""

from __future__ import annotations

import pytest
import torch
from downstream_support import tiny_bert, tokenizer_dir

from ja_pretrain.downstream.finetune import load_task_model
from ja_pretrain.downstream.kinds import KINDS, task_kind
from ja_pretrain.downstream.tasks import TASKS


def test_every_kind_of_task_has_a_kind():
    assert {spec.kind for spec in TASKS.values()} <= set(KINDS)


def test_regression_head_runs_in_fp32_under_bf16_autocast(tmp_path):
    model_dir = tiny_bert(tokenizer_dir(tmp_path), tmp_path / "bert", hidden=64)
    model = load_task_model(model_dir, task_kind(TASKS["jsts"]), seed=0).eval()
    torch.manual_seed(1)
    inputs = {"input_ids": torch.randint(5, 40, (64, 12)), "attention_mask": torch.ones(64, 12, dtype=torch.long)}
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(**inputs).logits
        pooled = model.bert(**inputs).pooler_output
    assert logits.dtype == torch.float32
    head = model.classifier
    expected = torch.nn.functional.linear(pooled.float(), head.weight, head.bias)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-6)
    assert len(set(logits[:, 0].tolist())) == 64  # no ties made by rounding
    assert {k for k in model.state_dict() if k.startswith("classifier")} == {"classifier.weight", "classifier.bias"}


@pytest.mark.parametrize("task", ["jnli", "jcommonsenseqa"])
def test_other_heads_are_left_to_autocast(tmp_path, task):
    model_dir = tiny_bert(tokenizer_dir(tmp_path), tmp_path / "bert")
    model = load_task_model(model_dir, task_kind(TASKS[task]), seed=0)
    assert "forward" not in vars(model.classifier)

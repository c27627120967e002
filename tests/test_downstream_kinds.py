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


@pytest.mark.parametrize("family", ["bert", "electra"])
@pytest.mark.parametrize("task", ["jsts", "jnli", "jcommonsenseqa"])
def test_first_token_path_gives_the_models_own_loss_gradients_and_logits(tmp_path, family, task):
    """The last layer at [CLS] only: the same loss, gradients and logits as the model's forward."""
    from downstream_support import tiny_electra_discriminator

    from ja_pretrain.downstream.kinds.first_token import first_token_logits

    tok = tokenizer_dir(tmp_path)
    make = tiny_bert if family == "bert" else tiny_electra_discriminator
    model_dir = make(tok, tmp_path / family)
    kind = task_kind(TASKS[task])
    model = load_task_model(model_dir, kind, seed=0)
    for module in model.modules():  # no dropout, so that two forwards compare exactly
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    torch.manual_seed(2)
    shape = (6, 5, 11) if task == "jcommonsenseqa" else (6, 11)
    mask = torch.ones(shape, dtype=torch.long)
    mask[..., 8:] = 0
    mask[0, ..., 5:] = 0
    batch = {"input_ids": torch.randint(5, 40, shape), "attention_mask": mask,
             "token_type_ids": (torch.arange(11) >= 4).long().expand(shape).contiguous()}
    labels = torch.rand(6) * 5 if task == "jsts" else torch.randint(0, 3 if task == "jnli" else 5, (6,))
    assert first_token_logits(model, batch) is not None  # the fast path is taken
    losses, grads = [], []
    for fast in (True, False):
        model.zero_grad()
        loss = kind.loss(model, batch, {"labels": labels}) if fast else model(**batch, labels=labels).loss
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6, msg=name)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(kind.outputs(model, batch).logits, model(**batch).logits, rtol=1e-5, atol=1e-6)

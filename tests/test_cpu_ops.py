"""The CPU training ops: cheap dropout's rate, scaling and gradient; the attention function
against the textbook formula under the same dropout mask; switching a transformers model."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM

from ja_pretrain.models.cpu_ops import ATTENTION_NAME, CheapDropout, cheap_dropout, cpu_attention, keep_mask, use_cpu_ops


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_mask_drops_at_the_rounded_rate(p):
    torch.manual_seed(0)
    n = 1 << 21
    keep = keep_mask(torch.Size([n // 64, 64]), p, torch.device("cpu"))
    assert keep.dtype == torch.bool and keep.shape == (n // 64, 64)
    expected = round(p * 65536) / 65536
    sigma = math.sqrt(expected * (1 - expected) / n)
    assert abs((~keep).float().mean().item() - expected) < 5 * sigma
    # every lane of the 64-bit draws is used: each of the four positions drops at the same rate
    lanes = (~keep).flatten().view(-1, 4).float().mean(0)
    assert torch.all((lanes - expected).abs() < 5 * sigma * 2)


def test_keep_mask_odd_size_and_reproducible():
    torch.manual_seed(3)
    a = keep_mask(torch.Size([7, 3]), 0.3, torch.device("cpu"))
    torch.manual_seed(3)
    b = keep_mask(torch.Size([7, 3]), 0.3, torch.device("cpu"))
    assert a.shape == (7, 3) and torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cheap_dropout_scales_kept_values_and_gradient(dtype):
    torch.manual_seed(1)
    x = (torch.rand(4096, dtype=torch.float32) + 0.5).to(dtype).requires_grad_()
    y = cheap_dropout(x, 0.2)
    kept = y != 0
    assert y.dtype == dtype
    assert 0.15 < 1 - kept.float().mean().item() < 0.25
    torch.testing.assert_close(y[kept], x.detach()[kept] / 0.8, rtol=1e-2 if dtype == torch.bfloat16 else 1e-6, atol=0)
    upstream = torch.randn(4096).to(dtype)
    y.backward(upstream)
    expected = torch.where(kept, upstream / 0.8, torch.zeros_like(upstream))
    torch.testing.assert_close(x.grad, expected, rtol=1e-2 if dtype == torch.bfloat16 else 1e-6, atol=0)


def test_cheap_dropout_identity_in_eval_and_zero_at_one():
    x = torch.randn(10, 10)
    module = CheapDropout(0.3).eval()
    assert module(x) is x
    assert cheap_dropout(x, 0.0) is x
    assert torch.count_nonzero(cheap_dropout(x, 1.0)) == 0


class _EncoderAttention(torch.nn.Module):
    is_causal = False  # what transformers' attention functions read off BERT's attention module


_ENCODER = _EncoderAttention()


def _reference_attention(q, k, v, keep_mask_bool, p, scaling, attend=None):
    scores = (q @ k.transpose(-1, -2)) * scaling
    if attend is not None:
        scores = scores.masked_fill(~attend, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if keep_mask_bool is not None:
        probs = probs * keep_mask_bool / (1 - p)
    return (probs @ v).transpose(1, 2)


@pytest.mark.parametrize("with_padding", [False, True])
def test_cpu_attention_matches_textbook_attention_with_the_same_mask(with_padding):
    torch.manual_seed(2)
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    attend = None
    if with_padding:  # SDPA's bool convention, (batch, 1, query, key): the second sample's last two keys are padding
        attend = torch.ones(2, 1, 5, 5, dtype=torch.bool)
        attend[1, :, :, 3:] = False
    torch.manual_seed(7)
    out, weights = cpu_attention(_ENCODER, q, k, v, attend, dropout=0.25, scaling=0.5)
    torch.manual_seed(7)
    keep = keep_mask(torch.Size([2, 3, 5, 5]), 0.25, q.device)
    assert weights is None and out.shape == (2, 5, 3, 4)
    torch.testing.assert_close(out, _reference_attention(q, k, v, keep, 0.25, 0.5, attend))
    if with_padding:  # a padded value changes nothing
        v2 = v.clone()
        v2[1, :, 3:] = 100.0
        torch.manual_seed(7)
        torch.testing.assert_close(cpu_attention(_ENCODER, q, k, v2, attend, dropout=0.25, scaling=0.5)[0], out)
    # no dropout: SDPA's result
    torch.testing.assert_close(cpu_attention(_ENCODER, q, k, v, attend, dropout=0.0, scaling=0.5)[0],
                               _reference_attention(q, k, v, None, 0.0, 0.5, attend))


def _tiny_bert(**overrides) -> BertForMaskedLM:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=16, attn_implementation="sdpa", **overrides)
    return BertForMaskedLM(config)


def test_use_cpu_ops_switches_dropout_and_attention_and_keeps_outputs(tmp_path):
    model = _tiny_bert()
    ids = torch.randint(5, 60, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[2, 8:] = 0
    model.eval()
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
    dropouts = sum(type(m) is torch.nn.Dropout for m in model.modules())
    assert use_cpu_ops(model) == dropouts > 0
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    assert model.config._attn_implementation == ATTENTION_NAME
    with torch.no_grad():
        after = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(before, after)  # evaluation runs SDPA exactly as before

    model.save_pretrained(tmp_path)
    assert ATTENTION_NAME not in (tmp_path / "config.json").read_text()
    assert "attn_implementation" not in json.loads((tmp_path / "config.json").read_text())
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids, attention_mask=mask).logits, after)


def test_training_forward_with_dropout_off_equals_sdpa_and_dropout_on_changes_it():
    ids = torch.randint(5, 60, (2, 10))
    plain = _tiny_bert(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).train()
    switched = _tiny_bert(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).train()
    use_cpu_ops(switched)
    torch.testing.assert_close(switched(input_ids=ids).logits, plain(input_ids=ids).logits)

    dropping = _tiny_bert(attention_probs_dropout_prob=0.5)
    use_cpu_ops(dropping)
    torch.manual_seed(4)
    first = dropping.train()(input_ids=ids).logits
    torch.manual_seed(4)
    again = dropping(input_ids=ids).logits
    torch.manual_seed(5)
    other = dropping(input_ids=ids).logits
    assert torch.equal(first, again) and not torch.equal(first, other)  # seeded by torch's CPU generator
    first.sum().backward()
    assert all(p.grad is not None for n, p in dropping.named_parameters() if "pooler" not in n)


def test_trainer_uses_cpu_ops_unless_told_not_to(tiny, tmp_path):
    from training_support import build_trainer

    from ja_pretrain.training.distributed import DistContext

    ctx = DistContext(device=torch.device("cpu"))
    ours = build_trainer(tiny, tmp_path / "a", "bert-micro", 4, ctx)
    assert any(isinstance(m, CheapDropout) for m in ours.objective.modules())
    assert ours.objective.model.config._attn_implementation == ATTENTION_NAME
    ours.logger.close()
    torch_ops = build_trainer(tiny, tmp_path / "b", "bert-micro", 4, ctx, cpu_ops=False)
    assert not any(isinstance(m, CheapDropout) for m in torch_ops.objective.modules())
    assert torch_ops.objective.model.config._attn_implementation == "sdpa"
    torch_ops.logger.close()

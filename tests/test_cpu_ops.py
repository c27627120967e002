"""The CPU training ops: cheap dropout's rate, scaling and gradient; the attention function
against the textbook formula under the same dropout mask; switching a transformers model."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM

from ja_pretrain.models.cpu_ops import (
    ATTENTION_NAME,
    CheapDropout,
    cheap_dropout,
    cpu_attention,
    dropped_levels,
    keep_from_lanes,
    keep_mask,
    use_cpu_ops,
)


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


@pytest.mark.parametrize("p, dropped", [(0.1, 6554), (0.5, 32768), (1e-6, 0), (4e-5, 3), (1 - 1e-6, 65536),
                                        (0.99998, 65535)])
def test_the_threshold_drops_exactly_the_rounded_share_of_int16_values(p, dropped):
    assert dropped_levels(p) == dropped
    every_value = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)
    assert int((~keep_from_lanes(every_value, dropped)).sum()) == dropped


def test_rates_that_round_to_nothing_or_everything():
    x = torch.randn(1000, requires_grad=True)
    assert cheap_dropout(x, 1e-7) is x  # rounds to 0 of 65536: nothing dropped, nothing scaled
    for p in (1.0, 1 - 1e-7):  # rounds to all 65536: everything dropped (not wrapped round to "keep all")
        y = cheap_dropout(x, p)
        assert torch.count_nonzero(y) == 0 and y.requires_grad


def test_keep_mask_odd_size_and_reproducible():
    torch.manual_seed(3)
    a = keep_mask(torch.Size([7, 3]), 0.3, torch.device("cpu"))
    torch.manual_seed(3)
    b = keep_mask(torch.Size([7, 3]), 0.3, torch.device("cpu"))
    assert a.shape == (7, 3) and torch.equal(a, b)
    torch.manual_seed(4)
    tail = keep_mask(torch.Size([1 << 16 | 3]), 0.5, torch.device("cpu"))  # size not a multiple of 4
    assert 0.48 < (~tail).float().mean().item() < 0.52 and 0 < int((~tail[-3:]).sum() + tail[-3:].sum()) == 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cheap_dropout_scales_kept_values_and_gradient(dtype):
    torch.manual_seed(1)
    x = (torch.rand(4096, dtype=torch.float32) + 0.5).to(dtype).requires_grad_()
    y = cheap_dropout(x, 0.2)
    kept = y != 0
    assert y.dtype == dtype
    assert 0.15 < 1 - kept.float().mean().item() < 0.25
    keep_rate = 1 - dropped_levels(0.2) / 65536  # 0.8 rounded to a multiple of 1/65536
    torch.testing.assert_close(y[kept], x.detach()[kept] / keep_rate, rtol=1e-2 if dtype == torch.bfloat16 else 1e-6, atol=0)
    upstream = torch.randn(4096).to(dtype)
    y.backward(upstream)
    expected = torch.where(kept, upstream / keep_rate, torch.zeros_like(upstream))
    torch.testing.assert_close(x.grad, expected, rtol=1e-2 if dtype == torch.bfloat16 else 1e-6, atol=0)


def test_cheap_dropout_identity_in_eval():
    x = torch.randn(10, 10)
    module = CheapDropout(0.3).eval()
    assert module(x) is x
    assert cheap_dropout(x, 0.0) is x


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


def test_cpu_attention_zeroes_a_row_with_nothing_to_attend_to_as_sdpa_does():
    torch.manual_seed(2)
    q, k, v = (torch.randn(1, 2, 4, 8) for _ in range(3))
    attend = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    attend[0, 0, 2] = False  # query 2 may attend to nothing
    out = cpu_attention(_ENCODER, q, k, v, attend, dropout=1e-3)[0]
    assert torch.all(out[0, 2] == 0) and torch.all(torch.isfinite(out)) and bool(out[0, 1].abs().sum() > 0)
    sdpa = cpu_attention(_ENCODER, q, k, v, attend, dropout=0.0)[0]
    assert torch.all(sdpa[0, 2] == 0)


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_training_forward_through_the_textbook_path_equals_sdpa(dtype):
    """A dropout rate that rounds to 0 of 65536 keeps the attention on the textbook path (dropout
    != 0) with no element dropped, so in train mode it must give SDPA's logits and gradients."""
    ids = torch.randint(5, 60, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 7:] = 0
    plain = _tiny_bert(hidden_dropout_prob=1e-7, attention_probs_dropout_prob=1e-7).train()
    switched = _tiny_bert(hidden_dropout_prob=1e-7, attention_probs_dropout_prob=1e-7).train()
    use_cpu_ops(switched)
    results = []
    for model in (plain, switched):
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            torch.manual_seed(0)  # PyTorch's dropout at 1e-7 could drop an element: fixed draws
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logits.sum().backward()
        results.append((logits, model.bert.encoder.layer[0].attention.self.query.weight.grad))
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype == torch.bfloat16 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(results[1][0], results[0][0], **tol)
    torch.testing.assert_close(results[1][1], results[0][1], **tol)


def test_dropout_on_changes_the_output_and_follows_the_seed():
    ids = torch.randint(5, 60, (2, 10))

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
    from ja_pretrain.training.distributed import DistContext

    from training_support import build_trainer

    ctx = DistContext(device=torch.device("cpu"))
    ours = build_trainer(tiny, tmp_path / "a", "bert-micro", 4, ctx)
    assert any(isinstance(m, CheapDropout) for m in ours.objective.modules())
    assert ours.objective.model.config._attn_implementation == ATTENTION_NAME
    ours.logger.close()
    torch_ops = build_trainer(tiny, tmp_path / "b", "bert-micro", 4, ctx, cpu_ops=False)
    assert not any(isinstance(m, CheapDropout) for m in torch_ops.objective.modules())
    assert torch_ops.objective.model.config._attn_implementation == "sdpa"
    torch_ops.logger.close()


def test_use_cpu_ops_on_electra_keeps_the_shared_embeddings_and_eval_outputs():
    from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

    torch.manual_seed(0)
    common = dict(vocab_size=60, embedding_size=16, max_position_embeddings=16, attn_implementation="sdpa")
    generator = ElectraForMaskedLM(ElectraConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                                 intermediate_size=32, **common))
    discriminator = ElectraForPreTraining(ElectraConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                        intermediate_size=64, **common))
    discriminator.electra.embeddings = generator.electra.embeddings
    pair = torch.nn.ModuleDict({"generator": generator, "discriminator": discriminator}).eval()
    ids = torch.randint(5, 60, (2, 12))
    with torch.no_grad():
        before = (generator(input_ids=ids).logits, discriminator(input_ids=ids).logits)
    use_cpu_ops(pair)
    assert generator.config._attn_implementation == discriminator.config._attn_implementation == ATTENTION_NAME
    assert discriminator.electra.embeddings is generator.electra.embeddings
    assert isinstance(generator.electra.embeddings.dropout, CheapDropout)
    with torch.no_grad():
        assert torch.equal(generator(input_ids=ids).logits, before[0])
        assert torch.equal(discriminator(input_ids=ids).logits, before[1])
    pair.train()
    torch.manual_seed(1)
    trained = discriminator(input_ids=ids).logits
    assert not torch.equal(trained, before[1])  # dropout (0.1 by default) acts in train mode


@pytest.mark.parametrize("with_padding", [False, True])
def test_cpu_attention_gradients_match_the_textbook_formula_under_the_same_mask(with_padding):
    """q, k, v as transformers makes them (head views of one projection's output), a real dropout
    rate, padding: its output and gradients equal autograd's through the formula."""
    torch.manual_seed(3)
    projected = torch.randn(2, 6, 3 * 3 * 4)  # (batch, length, q/k/v x heads x head dim)

    def split(t):
        return [part.view(2, 6, 3, 4).transpose(1, 2) for part in t.split(12, dim=-1)]

    attend = None
    if with_padding:
        attend = torch.ones(2, 1, 6, 6, dtype=torch.bool)
        attend[0, :, :, 4:] = False
    grads, outs = [], []
    for attention in ("ours", "reference"):
        x = projected.clone().requires_grad_()
        q, k, v = split(x)
        torch.manual_seed(11)
        if attention == "ours":
            out = cpu_attention(_ENCODER, q, k, v, attend, dropout=0.3, scaling=0.4)[0]
        else:
            keep = keep_mask(torch.Size([2, 3, 6, 6]), 0.3, x.device)
            out = _reference_attention(q, k, v, keep, dropped_levels(0.3) / 65536, 0.4, attend)
        upstream = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view(out.shape)
        (out * upstream).sum().backward()
        outs.append(out.detach())
        grads.append(x.grad)
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0

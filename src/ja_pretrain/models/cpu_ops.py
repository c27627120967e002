"""Cheaper dropout and attention for training on a CPU.

On a CPU, `nn.Dropout` draws one float Bernoulli sample per element from a slow generator and
keeps a float mask; with BERT-small at sequence 128 that is about 50 million draws a step and
7% of the step time. Attention dropout also forces SDPA off its fused CPU kernel onto a
"math" path that adds a NaN-guarding pass over the scores. Here:

- `CheapDropout` takes 16 random bits per element from full-range 64-bit draws (four
  elements per draw) and builds the mask from them in a few cheap passes. The drop probability
  is rounded to a multiple of 1/65536 (0.1 becomes 0.1000061) and the kept values are scaled by
  1/(1 - that), so the expected output is still the input.
- `cpu_attention` is softmax(q k^T * scale + mask) with that dropout, then times v: the
  textbook computation, registered with transformers' attention interface. With no dropout
  (evaluation) it hands over to SDPA, so evaluated and exported outputs are SDPA's. Given packed
  sequences instead of a mask (flash-attn's `cu_seq_lens_q`, which ModernBERT's full rows pass),
  it attends within each sequence (`models.packed_attention`).

`use_cpu_ops(model)` switches a transformers BERT/ELECTRA model to both; its weights, state
dict and `save_pretrained` output are unchanged (the attention choice is not saved in the
config). GPUs keep PyTorch's fused dropout and SDPA kernels, which are already fast there.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from ja_pretrain.models.packed_attention import packed_attention

ATTENTION_NAME = "ja_pretrain_cpu"
_LEVELS = 1 << 16  # values an int16 lane takes


def dropped_levels(p: float) -> int:
    """How many of the 65536 values of an int16 lane drop an element: round(p * 65536)."""
    return min(_LEVELS, max(0, round(p * _LEVELS)))


def keep_from_lanes(lanes: torch.Tensor, dropped: int) -> torch.Tensor:
    """True where a uniformly random int16 lane is not among the `dropped` lowest values."""
    if dropped >= _LEVELS:  # the threshold 32768 would not fit in an int16 and wrap round
        return torch.zeros_like(lanes, dtype=torch.bool)
    return lanes >= dropped - _LEVELS // 2


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A bool tensor of `shape`, each element False with probability dropped_levels(p)/65536."""
    n = math.prod(shape)
    # from=int64 min, to=None: every one of the 64 bits random (plain random_() leaves the top bit 0)
    draws = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), None)
    return keep_from_lanes(draws.view(torch.int16)[:n].view(shape), dropped_levels(p))


class _CheapDropoutFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        # A float mask holding 0 or 1/(keep rate): one multiply each way. (Multiplying by a bool
        # mask converts it to float inside every call, and torch.where with a scalar copies.)
        # The scale uses the rounded rate, so the expected output is exactly x.
        keep_rate = 1.0 - dropped_levels(p) / _LEVELS
        scaled_keep = keep_mask(x.shape, p, x.device).to(x.dtype).mul_(1.0 / keep_rate)
        ctx.save_for_backward(scaled_keep)
        return x * scaled_keep

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (scaled_keep,) = ctx.saved_tensors
        return grad * scaled_keep, None


def cheap_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    if not training:
        return x
    dropped = dropped_levels(p)
    if dropped == 0:  # p < 1/131072 rounds to nothing dropped
        return x
    if dropped == _LEVELS:
        return x * 0.0  # all dropped, still part of the graph as nn.Dropout's output is
    return _CheapDropoutFunction.apply(x, p)


class CheapDropout(nn.Dropout):
    """nn.Dropout with `cheap_dropout`: same `p`, same train/eval behaviour, drop-in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cheap_dropout(x, self.p, self.training)


_SDPA_ONLY = ("position_bias", "softcap", "cache")  # features of other models, left to SDPA


def cpu_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                  **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: q, k, v as (batch, heads, length, head dim);
    returns (batch, length, heads, head dim) as its SDPA function does. The textbook path covers
    what BERT and ELECTRA training needs (an encoder, no mask or SDPA's bool mask); packed
    sequences (`cu_seq_lens_q`) go to `packed_attention`; anything else goes to SDPA."""
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    if kwargs.get("cu_seq_lens_q") is not None:
        out = packed_attention(query, key, value, kwargs["cu_seq_lens_q"], scaling, kwargs.get("sliding_window"),
                               dropout, window_dropout=lambda probs: cheap_dropout(probs, dropout))
        return out, None
    textbook = (dropout != 0.0 and not getattr(module, "is_causal", False) and not kwargs.get("is_causal")
                and (attention_mask is None or attention_mask.dtype == torch.bool)
                and all(kwargs.get(name) is None for name in _SDPA_ONLY))
    if not textbook:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    # scaling q (length x head dim) costs a pass over far fewer elements than scaling the scores
    scores = torch.matmul(query * scaling, key.transpose(-1, -2))
    if attention_mask is not None:  # SDPA's convention: True = may attend
        # the dtype's lowest value, not -inf, so a row with nothing to attend to stays finite...
        # (in place: the matmul's backward needs its inputs, not these scores, so no copy is kept)
        scores.masked_fill_(~attention_mask, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
    if attention_mask is not None:
        attends = attention_mask.any(dim=-1, keepdim=True)
        if not bool(attends.all()):  # ...and is then zeroed, as SDPA outputs zeros for such a row
            probs = probs.masked_fill(~attends, 0.0)
    out = torch.matmul(cheap_dropout(probs, dropout).to(value.dtype), value)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION_NAME, cpu_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)  # it takes SDPA's masks


def use_cpu_ops(model: nn.Module) -> int:
    """Switch `model` (a transformers BERT/ELECTRA, or a module holding some) to `CheapDropout`
    and `cpu_attention` in place; returns the number of dropout modules replaced."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                cheap = CheapDropout(child.p)
                cheap.train(child.training)
                setattr(parent, name, cheap)
                replaced += 1
    for sub in model.modules():
        config = getattr(sub, "config", None)
        if config is not None and getattr(config, "_attn_implementation", None) == "sdpa":
            config._attn_implementation = ATTENTION_NAME
    return replaced

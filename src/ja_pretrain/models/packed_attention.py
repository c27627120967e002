"""Attention over packed sequences on a CPU: what flash-attn's varlen kernel computes on a GPU.

transformers hands an attention function the sequences of a batch packed as flash-attn takes
them (`cu_seq_lens_q`: where each sequence starts in the flattened batch x length positions;
`sliding_window`: the window of a sliding layer plus one, flash's inclusive bound). With a full
row of several documents each document is a sequence, so no mask is built: at 8,192 tokens a
boolean mask per layer type is 2 x 64 MB per row, and SDPA given a mask leaves its fast kernel
for one that materialises every score.

`packed_attention` runs each sequence on its own: a global layer through SDPA with no mask (its
fused kernel), a sliding layer through `window_attention`, which scores each block of `half`
queries against the 3 x `half` keys around it instead of the whole sequence (at a window of 128
and rows of 1,024 that is a fifth of the scores; at 8,192, a fortieth). Both compute what the
masked computation computes (tests/test_modernbert.py compares them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _softmax_type(scores: torch.Tensor) -> torch.dtype:
    return torch.promote_types(scores.dtype, torch.float32)  # fp32 at least, as SDPA


def window_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, half: int, scale: float,
                     dropout=None) -> torch.Tensor:
    """softmax(q k^T * scale) v over (heads, n, dim) tensors where position i sees the positions j
    with |i - j| <= half; `dropout(probs)` if given. Queries go in blocks of `half`: block b sees
    keys b*half - half ... b*half + 2*half - 1, a band of 3 x half."""
    heads, n, dim = query.shape
    if n <= half + 1:  # every position sees every other
        scores = torch.matmul(query * scale, key.transpose(-1, -2))
        probs = torch.softmax(scores, dim=-1, dtype=_softmax_type(scores)).to(value.dtype)
        return torch.matmul(dropout(probs) if dropout else probs, value)
    blocks = -(-n // half)
    width = 3 * half
    extra = blocks * half - n
    q = F.pad(query, (0, 0, 0, extra)).view(heads, blocks, half, dim)
    k = F.pad(key, (0, 0, half, extra + half)).unfold(1, width, half)  # (heads, blocks, dim, width)
    v = F.pad(value, (0, 0, half, extra + half)).unfold(1, width, half)
    scores = torch.matmul(q * scale, k)  # (heads, blocks, half, width)
    row = torch.arange(half, device=query.device)[:, None]
    column = torch.arange(width, device=query.device)[None, :]
    key_position = (torch.arange(blocks, device=query.device)[:, None, None] * half - half + column)
    allowed = (column - row >= 0) & (column - row <= 2 * half) & (key_position >= 0) & (key_position < n)
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=_softmax_type(scores)).to(value.dtype)
    out = torch.matmul(dropout(probs) if dropout else probs, v.transpose(-1, -2))  # (heads, blocks, half, dim)
    return out.reshape(heads, blocks * half, dim)[:, :n]


@torch.compiler.disable  # a loop over sequences of data-dependent lengths: left to eager mode, traced never
def packed_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seq_lens: torch.Tensor,
                     scale: float, sliding_window: int | None = None, dropout: float = 0.0,
                     window_dropout=None) -> torch.Tensor:
    """q, k, v as (batch, heads, length, dim) and the sequences' bounds in the flattened batch
    (`cu_seq_lens`, as flash-attn takes them); returns (batch, length, heads, dim), as
    transformers' attention functions do. `sliding_window` is transformers' value for a sliding
    layer (its half-window + 1), None for a global one; `dropout` is SDPA's on a global layer,
    `window_dropout(probs)` a sliding layer's."""
    batch, heads, length, dim = query.shape
    flat = [t.transpose(1, 2).reshape(batch * length, heads, dim) for t in (query, key, value)]
    bounds = cu_seq_lens.tolist()
    pieces = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        q, k, v = (t[start:end].transpose(0, 1) for t in flat)
        if sliding_window is None:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scale)
        else:
            out = window_attention(q, k, v, sliding_window - 1, scale, window_dropout if dropout else None)
        pieces.append(out.transpose(0, 1))
    return torch.cat(pieces).view(batch, length, heads, dim)

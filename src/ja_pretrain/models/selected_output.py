"""The encoder's output at chosen positions only, for heads that read a few positions.

The MLM head reads the last hidden state at the masked positions only (15% of them). Every layer
but the last must still run at every position, since attention mixes them, and so must the last
layer's attention, whose keys and values come from every position. What follows it in the last
layer works row by row: the attention output projection, its residual LayerNorm and the whole
feed-forward block. `encode_selected` runs those at the chosen rows only. The rows it returns are
the rows the full encoder computes (the same operations on the same values), and the weights are
the same modules', so training this way trains the same model.

For bert-small at sequence 128 with 15% masked this drops 4.4% of a training step's matmul FLOPs
(and the element-wise passes of those rows); benchmarks/last_layer_ab.py measured steps 1.05x
(fp32) and 1.06x (bf16) faster on a 2-core CPU.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask


def document_mask(document_ids: torch.Tensor, config) -> torch.Tensor:
    """The attention mask of rows holding several documents, (batch, 1, length, length): a
    position attends to the positions of its own document only. Padding (id 0) attends to
    padding, so that no row of the mask is empty (SDPA turns an empty row into NaN)."""
    allowed = document_ids[:, None, :, None] == document_ids[:, None, None, :]
    if config._attn_implementation == "eager":  # adds the mask to the scores
        return torch.zeros(allowed.shape, dtype=torch.float32, device=allowed.device).masked_fill_(
            ~allowed, torch.finfo(torch.float32).min)
    return allowed  # SDPA's and cpu_attention's convention: True = may attend


def encode_selected(encoder: nn.Module, positions: torch.Tensor, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor | None, token_type_ids: torch.Tensor | None,
                    position_ids: torch.Tensor | None = None, document_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Last hidden states of a transformers BertModel or ElectraModel at `positions`, indices into
    the flattened (batch * length) positions: a (len(positions), hidden) tensor equal to
    `encoder(...).last_hidden_state.flatten(0, 1)[positions]`. With `document_ids`, each
    document of a row attends to itself only (and `position_ids` restart per document)."""
    hidden = encoder.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids)
    if hasattr(encoder, "embeddings_project"):  # ELECTRA with embedding size != hidden size
        hidden = encoder.embeddings_project(hidden)
    if document_ids is not None:
        mask = document_mask(document_ids, encoder.config)
    else:
        # positional: transformers renamed the second parameter (input_embeds in 5.0, inputs_embeds later)
        mask = create_bidirectional_mask(encoder.config, hidden, attention_mask)
    *lower, top = encoder.encoder.layer
    for layer in lower:
        hidden = layer(hidden, mask)
    context, _ = top.attention.self(hidden, attention_mask=mask)

    def rows(t: torch.Tensor) -> torch.Tensor:
        return t.flatten(0, 1).index_select(0, positions)

    attended = top.attention.output(rows(context), rows(hidden))
    return top.feed_forward_chunk(attended)


def positions_of_rows(rows: int, length: int, device: torch.device) -> torch.Tensor:
    """Flat positions of each row's first token ([CLS]), where BERT's pooler reads."""
    return torch.arange(rows, device=device) * length


def encoder_flops(config, length: int, tokens: int, read: int) -> float:
    """Forward matmul FLOPs of `encode_selected` over `tokens` positions in sequences of `length`
    (a BERT or ELECTRA config): the embedding projection where ELECTRA has one, every layer's
    attention at every position, the last layer's output projection and feed-forward at `read`
    rows, every other layer's at all."""
    h, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    embedding = getattr(config, "embedding_size", h)  # BERT has none: no projection
    project = 2 * embedding * h if embedding != h else 0
    attention = 2 * 3 * h * h + 4 * length * h  # q, k, v projections; scores and context
    row_wise = 2 * (h * h + 2 * h * f)  # output projection, feed-forward
    return tokens * (project + layers * attention + (layers - 1) * row_wise) + read * row_wise

"""The transformers config fields that BERT and ELECTRA take from a preset the same way."""

from __future__ import annotations

from typing import Any

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.training.objective import ObjectiveOptions


def shared_config_fields(params: ModelParameters, special_ids: dict[str, int], vocab_size: int,
                         options: ObjectiveOptions) -> dict[str, Any]:
    """Vocabulary, depth, trained length, dropout, padding id and SDPA attention; the widths
    (hidden size, heads, FFN) are each model's own."""
    return {
        "vocab_size": vocab_size,
        "num_hidden_layers": params.number_of_layers,
        "max_position_embeddings": params.sequence_length,
        "type_vocab_size": 2,
        "hidden_dropout_prob": options.hidden_dropout,
        "attention_probs_dropout_prob": options.attention_dropout,
        "pad_token_id": special_ids.get("pad", 0),
        "attn_implementation": "sdpa",
    }

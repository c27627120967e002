"""What BERT and ELECTRA configs share: the fields they take from a preset the same way, and
the fields that fix the shape of the weights, which a checkpoint must agree on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.errors import UserError

# Config fields that fix the shape of the weights (BERT has no embedding_size: None on both sides).
SHAPE_FIELDS = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size")


def shared_config_fields(params: ModelParameters, special_ids: dict[str, int], vocab_size: int, *,
                         hidden_dropout: float = 0.1, attention_dropout: float = 0.1) -> dict[str, Any]:
    """Vocabulary, depth, trained length, dropout, padding id and SDPA attention; the widths
    (hidden size, heads, FFN) are each model's own."""
    return {
        "vocab_size": vocab_size,
        "num_hidden_layers": params.number_of_layers,
        "max_position_embeddings": params.sequence_length,
        "type_vocab_size": 2,
        "hidden_dropout_prob": hidden_dropout,
        "attention_probs_dropout_prob": attention_dropout,
        "pad_token_id": special_ids.get("pad", 0),
        "attn_implementation": "sdpa",
    }


def check_shape(directory: Path, saved: dict[str, Any], ours: dict[str, Any], what: str = "model") -> None:
    """Refuse weights saved for another model type or shape than `ours` (a config dict)."""
    if saved.get("model_type") != ours.get("model_type"):
        kind = str(ours.get("model_type")).upper()
        raise UserError(f"{directory}: holds a {saved.get('model_type')!r} model, not {kind}; use a {kind} preset "
                        f"with a {kind} model")
    differ = [f"{k} {saved.get(k)} (ours {ours.get(k)})" for k in SHAPE_FIELDS if saved.get(k) != ours.get(k)]
    if differ:
        raise UserError(f"{directory}: {what} of another shape: {', '.join(differ)}; use the --model_type/"
                        "--parameter_file and tokenizer it was trained with")

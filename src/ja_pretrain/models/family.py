"""What the rest of the tool needs of a model family, and nothing of its layers.

A family (BERT, ELECTRA, ModernBERT) is a set of transformers model classes that share an
encoder. The masked-LM objective, held-out evaluation, export and fine-tuning talk to a family
through `ModelFamily` alone; the layer internals each one reaches into (to run its last layer at
the read rows only, to keep the documents of a row apart) stay in that family's module:

    build(params, special_ids, vocab_size, ...)   the masked-LM model of a preset, as trained
    load_weights(model, directory)                a checkpoint or final/ into that model
    document_inputs(batch, config)                forward arguments that keep a row's documents
                                                  apart, in the form this family's attention takes
    encode_selected(model, positions, **inputs)   the encoder's output at flat positions, ready
                                                  for the masked-LM head (`mlm_logits`)
    encoder_flops / head_flops                    matmul FLOPs of the above, for MFU
    card_rows(params)                             the model card's lines on the architecture

The registry of families is `models.families`.
"""

from __future__ import annotations

import abc
import os
from typing import Any

import torch
from torch import nn

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.errors import UserError


class ModelFamily(abc.ABC):
    name: str = ""  # the preset's model-family and the models' config.model_type
    title: str = ""  # as a model card names it
    takes_token_types: bool = True  # whether its models take token_type_ids
    next_sentence_prediction: bool = False  # whether it has a next-sentence head (`nsp_logits`)
    # whether AutoTokenizer loads the class a final/'s tokenizer_config.json names (transformers 5.5
    # on loads every ModernBERT tokenizer from tokenizer.json, whatever the class named)
    auto_tokenizer_reads_class: bool = True

    @abc.abstractmethod
    def build(self, params: ModelParameters, special_ids: dict[str, int], vocab_size: int, *,
              hidden_dropout: float | None = None, attention_dropout: float | None = None,
              next_sentence_prediction: bool = False) -> nn.Module:
        """The masked-LM model of preset `params` (dropout None: the family's own default)."""

    @abc.abstractmethod
    def load_weights(self, model: nn.Module, directory: str | os.PathLike) -> None:
        """Load a save_pretrained dir into `model`; UserError naming it if it does not fit."""

    @abc.abstractmethod
    def document_inputs(self, batch: dict[str, Any], config: Any) -> dict[str, Any]:
        """From a batch's document_ids and position_ids ({} when it has none): what `encode_selected`
        takes to keep each document of a row to itself, as CPU tensors (or ints)."""

    @abc.abstractmethod
    def encode_selected(self, model: nn.Module, positions: torch.Tensor, **inputs: Any) -> torch.Tensor:
        """The encoder's final hidden states at `positions` (indices into the flattened batch x
        length positions), equal to the full forward's there; `inputs` are input_ids,
        attention_mask, token_type_ids where the family takes them, and `document_inputs`."""

    @abc.abstractmethod
    def mlm_logits(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """The masked-LM head of `model` on final hidden states: vocabulary logits."""

    def nsp_logits(self, model: nn.Module, cls_hidden: torch.Tensor) -> torch.Tensor:
        raise UserError(f"{self.title} has no next-sentence prediction; drop --nsp")

    @abc.abstractmethod
    def encoder_flops(self, config: Any, length: int, tokens: int, read: int) -> float:
        """Forward matmul FLOPs of `encode_selected` over `tokens` positions in rows of `length`,
        `read` of them selected."""

    def head_flops(self, config: Any, rows: int) -> float:
        """Forward matmul FLOPs of the masked-LM head on `rows` hidden states."""
        h, v = config.hidden_size, config.vocab_size
        return 2.0 * (h * h + h * v) * rows

    def card_rows(self, params: ModelParameters) -> list[str]:
        """Model-card table rows ("| setting | value |") on what sets this family apart."""
        return []

    def tokenizer_settings(self, params: ModelParameters) -> dict[str, Any]:
        """tokenizer_config.json entries a final/ of this family sets (e.g. its model inputs)."""
        return {}


def document_tensors(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A batch's document_ids and position_ids as tensors ({} for rows of one document each)."""
    if "document_ids" not in batch:
        return {}
    return {"document_ids": torch.from_numpy(batch["document_ids"]).long(),
            "position_ids": torch.from_numpy(batch["position_ids"]).long()}

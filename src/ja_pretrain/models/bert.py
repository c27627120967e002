"""BERT from a preset: the transformers config and model, loading saved weights into it, and
the family interface (`BERT`) the masked-LM objective, evaluation and export use."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertForMaskedLM, BertForPreTraining

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.errors import UserError
from ja_pretrain.models.encoder_config import check_shape, shared_config_fields
from ja_pretrain.models.family import ModelFamily, document_tensors
from ja_pretrain.models.selected_output import encode_selected, encoder_flops


def bert_config(params: ModelParameters, special_ids: dict[str, int], vocab_size: int, *,
                hidden_dropout: float = 0.1, attention_dropout: float = 0.1,
                next_sentence_prediction: bool = False) -> BertConfig:
    return BertConfig(
        hidden_size=params.hidden_size,
        num_attention_heads=params.attention_heads,
        intermediate_size=params.ffn_inner_hidden_size,
        architectures=["BertForPreTraining" if next_sentence_prediction else "BertForMaskedLM"],
        **shared_config_fields(params, special_ids, vocab_size, hidden_dropout=hidden_dropout,
                               attention_dropout=attention_dropout),
    )


def build_bert_model(params: ModelParameters, special_ids: dict[str, int], vocab_size: int, *,
                     hidden_dropout: float = 0.1, attention_dropout: float = 0.1,
                     next_sentence_prediction: bool = False) -> BertForMaskedLM | BertForPreTraining:
    config = bert_config(params, special_ids, vocab_size, hidden_dropout=hidden_dropout,
                         attention_dropout=attention_dropout, next_sentence_prediction=next_sentence_prediction)
    return BertForPreTraining(config) if next_sentence_prediction else BertForMaskedLM(config)


def load_bert_weights(model: BertForMaskedLM | BertForPreTraining, directory: str | os.PathLike) -> None:
    """Load a save_pretrained BERT dir into `model`; the NSP head may be absent or extra."""
    directory = Path(directory)
    config_file, weights_file = directory / "config.json", directory / "model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise UserError(f"{directory}: not a model directory (needs config.json and model.safetensors)")
    check_shape(directory, json.loads(config_file.read_text(encoding="utf-8")), model.config.to_dict())
    state = load_file(str(weights_file))
    optional = ("bert.pooler.", "cls.seq_relationship.")  # present only with NSP
    state = {k: v for k, v in state.items() if not (k.startswith(optional) and k not in model.state_dict())}
    result = model.load_state_dict(state, strict=False)
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    missing = [k for k in result.missing_keys if k not in tied and not k.startswith(optional)]
    if missing or result.unexpected_keys:
        raise UserError(f"{directory}: weights do not match the model (missing {missing[:3]}, "
                        f"unexpected {result.unexpected_keys[:3]})")


class BertFamily(ModelFamily):
    """BertForMaskedLM, or BertForPreTraining with next-sentence prediction."""

    name, title = "bert", "BERT"
    next_sentence_prediction = True

    def build(self, params, special_ids, vocab_size, *, hidden_dropout=None, attention_dropout=None,
              next_sentence_prediction=False):
        return build_bert_model(params, special_ids, vocab_size, next_sentence_prediction=next_sentence_prediction,
                                hidden_dropout=0.1 if hidden_dropout is None else hidden_dropout,
                                attention_dropout=0.1 if attention_dropout is None else attention_dropout)

    def load_weights(self, model, directory):
        load_bert_weights(model, directory)

    def document_inputs(self, batch: dict[str, Any], config: Any) -> dict[str, Any]:
        return document_tensors(batch)  # the 4D mask is made from them on the device (`document_mask`)

    def encode_selected(self, model, positions, *, input_ids, attention_mask=None, token_type_ids=None,
                        position_ids=None, document_ids=None) -> torch.Tensor:
        return encode_selected(model.bert, positions, input_ids, attention_mask, token_type_ids, position_ids,
                               document_ids)

    def mlm_logits(self, model, hidden):
        return model.cls.predictions(hidden)  # BertOnlyMLMHead and BertPreTrainingHeads both hold it

    def nsp_logits(self, model, cls_hidden):
        if not isinstance(model, BertForPreTraining):
            raise UserError("this BERT has no next-sentence head (BertForMaskedLM); train with --nsp for one")
        pooled = model.bert.pooler(cls_hidden.unsqueeze(1))  # it takes (rows, length, hidden)[:, 0]
        return model.cls.seq_relationship(pooled)

    def encoder_flops(self, config, length, tokens, read):
        return encoder_flops(config, length, tokens, read)


BERT = BertFamily()

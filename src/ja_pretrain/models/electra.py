"""ELECTRA's two networks from a preset: a small masked-LM generator and a replaced-token-
detection discriminator, plain transformers models (`ElectraForMaskedLM`,
`ElectraForPreTraining`), so what we train is exactly what `extract-electra` exports and what
users load with the Auto classes. They share one embedding module (word, position and
token-type tables and their LayerNorm), and the generator's output layer is the word-embedding
matrix, as in the ELECTRA paper (Clark et al., 2020, section 3.2). Each network keeps its own
`embeddings_project` from `embedding-size` to its hidden size, which transformers creates when
the two differ.

The objective that trains them is `training.objectives.electra`; the joint checkpoint's files
are `models.electra_checkpoint`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.errors import UserError
from ja_pretrain.models.encoder_config import shared_config_fields
from ja_pretrain.models.family import ModelFamily, document_tensors
from ja_pretrain.models.selected_output import encode_selected, encoder_flops

JOINT_ARCHITECTURE = "ElectraJointModel"  # config.json "architectures" of a joint checkpoint
JOINT_KEY = "ja_pretrain_electra"  # config.json entry holding both configs and the preset
# The shared module's tensors, relative to `electra.embeddings.`
SHARED_EMBEDDING_TENSORS = ("word_embeddings.weight", "position_embeddings.weight",
                            "token_type_embeddings.weight", "LayerNorm.weight", "LayerNorm.bias")


def electra_configs(params: ModelParameters, special_ids: dict[str, int], vocab_size: int, *,
                    hidden_dropout: float = 0.1, attention_dropout: float = 0.1) -> tuple[ElectraConfig, ElectraConfig]:
    """(generator, discriminator) configs for a preset.

    The generator keeps the discriminator's depth and embedding size and scales hidden size,
    heads and FFN by `generator-size`; `max_position_embeddings` is the trained sequence length,
    so the exported models say what they were trained for.
    """
    if not params.is_electra:
        raise UserError(f"preset '{params.model_type}' is not an ELECTRA preset (it has no 'generator-size')")
    gen_hidden, gen_heads, gen_ffn = params.generator_dims()
    common = dict(embedding_size=params.embedding_size or params.hidden_size,
                  **shared_config_fields(params, special_ids, vocab_size, hidden_dropout=hidden_dropout,
                                         attention_dropout=attention_dropout))
    generator = ElectraConfig(hidden_size=gen_hidden, num_attention_heads=gen_heads, intermediate_size=gen_ffn,
                              architectures=["ElectraForMaskedLM"], **common)
    discriminator = ElectraConfig(hidden_size=params.hidden_size, num_attention_heads=params.attention_heads,
                                  intermediate_size=params.ffn_inner_hidden_size,
                                  architectures=["ElectraForPreTraining"], **common)
    return generator, discriminator


class ElectraJointModel(nn.Module):
    """Generator + discriminator with one shared embedding module: the model we train.

    `generator` and `discriminator` are complete transformers models; the generator's
    `electra.embeddings` *is* the discriminator's, and its output layer's weight is the word
    embedding matrix. In `state_dict()` the shared tensors appear once, under
    `discriminator.electra.embeddings.*` (safetensors refuses aliased tensors, and a reload that
    found two copies would untie them); `load_state_dict` fills the generator's aliases back in.
    """

    def __init__(self, generator_config: ElectraConfig, discriminator_config: ElectraConfig):
        super().__init__()
        for key in ("vocab_size", "embedding_size", "max_position_embeddings", "type_vocab_size", "pad_token_id"):
            g, d = getattr(generator_config, key), getattr(discriminator_config, key)
            if g != d:
                raise UserError(f"generator and discriminator configs differ in {key} ({g} vs {d}); "
                                "they must match to share the embeddings")
        self.discriminator = ElectraForPreTraining(discriminator_config)
        self.generator = ElectraForMaskedLM(generator_config)
        self.generator.electra.embeddings = self.discriminator.electra.embeddings
        self.generator.tie_weights()  # re-points generator_lm_head.weight at the shared word embeddings
        if self.generator.generator_lm_head.weight is not self.shared_embeddings.word_embeddings.weight:
            raise RuntimeError("transformers did not tie the generator's output layer to the word embeddings; "
                               "check generator_config.tie_word_embeddings")
        self._register_state_dict_hook(_drop_aliases)
        self.register_load_state_dict_pre_hook(_fill_aliases)

    @property
    def shared_embeddings(self) -> nn.Module:
        return self.discriminator.electra.embeddings

    def joint_config(self, params: ModelParameters | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """config.json of a joint checkpoint: the discriminator's config (so generic readers see
        an ELECTRA model of the trained size) plus both configs and the preset under JOINT_KEY."""
        config = self.discriminator.config.to_dict()
        config["architectures"] = [JOINT_ARCHITECTURE]
        config[JOINT_KEY] = {
            "generator": self.generator.config.to_dict(),
            "discriminator": self.discriminator.config.to_dict(),
            "preset": params.to_json_dict() if params is not None else None,
            "model_type": params.model_type if params is not None else None,
            **(extra or {}),
        }
        return config


def alias_keys(prefix: str = "") -> dict[str, str]:
    """Generator state keys that alias a discriminator tensor -> that tensor's key."""
    aliases = {f"{prefix}generator.generator_lm_head.weight":
               f"{prefix}discriminator.electra.embeddings.word_embeddings.weight"}
    for name in SHARED_EMBEDDING_TENSORS:
        aliases[f"{prefix}generator.electra.embeddings.{name}"] = f"{prefix}discriminator.electra.embeddings.{name}"
    return aliases


def _drop_aliases(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    for alias in alias_keys(prefix):
        state_dict.pop(alias, None)


def _fill_aliases(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    for alias, source in alias_keys(prefix).items():
        if alias not in state_dict and source in state_dict:
            state_dict[alias] = state_dict[source]


def build_electra_model(params: ModelParameters, special_ids: dict[str, int], vocab_size: int, *,
                        hidden_dropout: float = 0.1, attention_dropout: float = 0.1) -> ElectraJointModel:
    return ElectraJointModel(*electra_configs(params, special_ids, vocab_size, hidden_dropout=hidden_dropout,
                                              attention_dropout=attention_dropout))


class ElectraFamily(ModelFamily):
    """ELECTRA trains as the joint model (`build`, `load_weights`); the masked-LM view
    (`encode_selected`, `mlm_logits`) is its generator, an `ElectraForMaskedLM`."""

    name, title = "electra", "ELECTRA"

    def build(self, params, special_ids, vocab_size, *, hidden_dropout=None, attention_dropout=None,
              next_sentence_prediction=False):
        if next_sentence_prediction:
            raise UserError(f"preset '{params.model_type}' is ELECTRA, which has no next-sentence prediction; drop --nsp")
        return build_electra_model(params, special_ids, vocab_size,
                                   hidden_dropout=0.1 if hidden_dropout is None else hidden_dropout,
                                   attention_dropout=0.1 if attention_dropout is None else attention_dropout)

    def load_weights(self, model, directory):
        from ja_pretrain.models.electra_checkpoint import load_electra_weights  # it imports this module

        load_electra_weights(model, directory)

    def document_inputs(self, batch: dict[str, Any], config: Any) -> dict[str, Any]:
        return document_tensors(batch)

    def encode_selected(self, model, positions, *, input_ids, attention_mask=None, token_type_ids=None,
                        position_ids=None, document_ids=None) -> torch.Tensor:
        return encode_selected(model.electra, positions, input_ids, attention_mask, token_type_ids, position_ids,
                               document_ids)

    def mlm_logits(self, model, hidden):
        return model.generator_lm_head(model.generator_predictions(hidden))

    def encoder_flops(self, config, length, tokens, read):
        return encoder_flops(config, length, tokens, read)

    def head_flops(self, config, rows):
        e, h, v = config.embedding_size, config.hidden_size, config.vocab_size
        return 2.0 * (h * e + e * v) * rows


ELECTRA = ElectraFamily()

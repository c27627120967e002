"""The model families by name (a preset's `model-family`, a saved config's `model_type`).

Adding a family is a module in `models/` with a `ModelFamily` (see `models.family`), a line here
and its presets; the objectives, evaluation, export and fine-tuning find it by name."""

from __future__ import annotations

from typing import Any

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.errors import UserError
from ja_pretrain.models.bert import BERT
from ja_pretrain.models.electra import ELECTRA
from ja_pretrain.models.family import ModelFamily
from ja_pretrain.models.modernbert import MODERNBERT

FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (BERT, ELECTRA, MODERNBERT)}


def family_of(params: ModelParameters) -> ModelFamily:
    """The family of preset `params`."""
    return FAMILIES[params.family]


def family_of_config(config: Any) -> ModelFamily | None:
    """The family of a transformers config (by its model_type), or None for a model of another kind."""
    return FAMILIES.get(getattr(config, "model_type", None))


def model_input_names(config: Any) -> tuple[str, ...]:
    """The tokenizer outputs a model of this config takes."""
    family = family_of_config(config)
    if family is not None and not family.takes_token_types:
        return ("input_ids", "attention_mask")
    return ("input_ids", "attention_mask", "token_type_ids")


def require_family(name: str) -> ModelFamily:
    if name not in FAMILIES:
        raise UserError(f"model family {name!r} is not one of {', '.join(FAMILIES)}")
    return FAMILIES[name]

"""Training objectives: what the trainer trains, whatever the model family (the contract is in
`base`); BERT's masked LM (+ NSP) in `bert`, ELECTRA's generator + discriminator in `electra`."""

from __future__ import annotations

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.training.objectives.base import Objective, ObjectiveOptions, ObjectiveOutput
from ja_pretrain.training.objectives.bert import BertObjective, build_bert_objective
from ja_pretrain.training.objectives.electra import ElectraObjective, build_electra_objective

__all__ = ["BertObjective", "ElectraObjective", "Objective", "ObjectiveOptions", "ObjectiveOutput",
           "build_bert_objective", "build_electra_objective", "build_objective"]


def build_objective(
    params: ModelParameters, special_ids: dict[str, int], vocab_size: int, options: ObjectiveOptions | None = None
) -> Objective:
    """The objective for preset `params`: ELECTRA for ELECTRA presets, BERT otherwise."""
    options = options or ObjectiveOptions()
    if params.is_electra:
        return build_electra_objective(params, special_ids, vocab_size, options)
    return build_bert_objective(params, special_ids, vocab_size, options)

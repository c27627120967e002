"""Training objectives: what the trainer trains, whatever the model family (the contract is in
`base`); the masked LM of BERT (+ NSP) and ModernBERT in `masked_lm`, ELECTRA's generator +
discriminator in `electra`."""

from __future__ import annotations

import dataclasses

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.errors import UserError
from ja_pretrain.models.families import family_of
from ja_pretrain.training.objectives.base import Objective, ObjectiveOptions, ObjectiveOutput
from ja_pretrain.training.objectives.electra import ElectraObjective, build_electra_objective
from ja_pretrain.training.objectives.masked_lm import (
    MaskedLMObjective,
    build_bert_objective,
    build_masked_lm_objective,
)

__all__ = ["ElectraObjective", "MaskedLMObjective", "Objective", "ObjectiveOptions", "ObjectiveOutput",
           "build_bert_objective", "build_electra_objective", "build_masked_lm_objective", "build_objective",
           "check_compatible"]


def check_compatible(params: ModelParameters, options: ObjectiveOptions, form: str, *,
                     sequence_length: int | None = None, where: str = "the dataset") -> ObjectiveOptions:
    """The options a run of preset `params` on a dataset of `form` trains with, or a UserError.

    The one rule for preset, objective and dataset, checked by run-pretraining before it builds
    a dataset and by the trainer on the dataset it opens: ELECTRA has no next-sentence
    prediction, nor has ModernBERT; a 'pairs' dataset means NSP and NSP needs one; the dataset's
    sequence length is the preset's.
    """
    family = family_of(params)
    if not family.next_sentence_prediction and (options.next_sentence_prediction or form == "pairs"):
        raise UserError(f"preset '{params.model_type}' is {family.title}, which has no next-sentence prediction; "
                        "drop --nsp and train on a 'full' or 'packed' dataset (or the corpus)")
    if options.next_sentence_prediction and form != "pairs":
        raise UserError(f"{where}: next-sentence prediction needs a dataset of form 'pairs' (this one is {form!r}); "
                        "rebuild it with `build-dataset --form pairs`, pass the corpus directory, or drop --nsp")
    if sequence_length is not None and sequence_length != params.sequence_length:
        raise UserError(f"{where}: built for sequence length {sequence_length}, but preset '{params.model_type}' "
                        f"has {params.sequence_length}")
    if form == "pairs" and not options.next_sentence_prediction:
        return dataclasses.replace(options, next_sentence_prediction=True)
    return options


def build_objective(
    params: ModelParameters, special_ids: dict[str, int], vocab_size: int, options: ObjectiveOptions | None = None
) -> Objective:
    """The objective for preset `params`: ELECTRA's for ELECTRA presets, the masked LM otherwise."""
    options = options or ObjectiveOptions()
    if params.family == "electra":
        return build_electra_objective(params, special_ids, vocab_size, options)
    return build_masked_lm_objective(params, special_ids, vocab_size, options)

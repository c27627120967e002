"""The masked-LM objective of BERT and ModernBERT: dynamic 80/10/10 masking at the preset's rate
(whole words optional), plus next-sentence prediction for BERT on a pairs dataset. It talks to
the model through its family (`models.family`): the encoder's output at the masked positions
only (and at each row's [CLS] for NSP), then the family's head there, so with a 32k vocabulary
the head and its softmax never run at the positions that have no label."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.errors import UserError
from ja_pretrain.models.bert import BERT
from ja_pretrain.models.families import family_of
from ja_pretrain.models.family import ModelFamily
from ja_pretrain.models.selected_output import positions_of_rows
from ja_pretrain.training.masking import MaskNoise
from ja_pretrain.training.objectives.base import Objective, ObjectiveOptions, ObjectiveOutput, mask_batch


class MaskedLMObjective(Objective):
    """Masked LM (+ NSP where the family has it) on a transformers model; see
    `training.objectives.base`. `kind` is the family's name."""

    def __init__(self, family: ModelFamily, model: nn.Module, special_ids: dict[str, int], mask_probability: float,
                 whole_word_mask: bool, next_sentence_prediction: bool = False):
        super().__init__()
        self.family = family
        self.kind = family.name
        self.model = model
        self.nsp = next_sentence_prediction
        self.loss_weights = {"mlm": 1.0, "nsp": 1.0} if self.nsp else {"mlm": 1.0}
        self.mask_token_id = special_ids["mask"]
        self.first_regular_id = max(special_ids.values()) + 1  # random replacements skip specials
        self.mask_probability = mask_probability
        self.whole_word_mask = whole_word_mask

    # -- data -> inputs ---------------------------------------------------------------------
    def prepare(self, batch: dict, noise: MaskNoise) -> dict[str, torch.Tensor]:
        _, masked, positions, masked_labels = mask_batch(
            batch, noise, mask_probability=self.mask_probability, mask_token_id=self.mask_token_id,
            vocab_size=self.model.config.vocab_size, replace_probs=(0.8, 0.1, 0.1), whole_word=self.whole_word_mask,
            first_regular_id=self.first_regular_id)
        attention_mask = torch.from_numpy(batch["attention_mask"]).long()
        inputs = {
            "input_ids": masked,
            # All-ones masks are dropped: SDPA then runs its fastest unmasked kernel.
            "attention_mask": None if bool(attention_mask.all()) else attention_mask,
            "masked_positions": positions,
            "masked_labels": masked_labels,
            **self.family.document_inputs(batch, self.model.config),
        }
        if self.family.takes_token_types:
            inputs["token_type_ids"] = torch.from_numpy(batch["token_type_ids"]).long()
        if self.nsp:
            if "next_sentence_label" not in batch:
                raise UserError("next-sentence prediction needs a dataset of form 'pairs'; rebuild it with --form pairs")
            inputs["next_sentence_label"] = torch.from_numpy(batch["next_sentence_label"]).long()
        return inputs

    def loss_counts(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        counts = {"mlm": torch.tensor(inputs["masked_labels"].numel(), dtype=torch.long)}
        if self.nsp:
            counts["nsp"] = torch.tensor(inputs["input_ids"].shape[0], dtype=torch.long)
        return counts

    # -- the objective --------------------------------------------------------------------------
    def forward(self, input_ids, masked_positions, masked_labels, next_sentence_label=None,
                **model_inputs) -> ObjectiveOutput:
        masked = masked_positions.numel()
        wanted = masked_positions
        if self.nsp:  # the pooler reads each row's [CLS]
            rows, length = input_ids.shape
            wanted = torch.cat([masked_positions, positions_of_rows(rows, length, input_ids.device)])
        selected = self.family.encode_selected(self.model, wanted, input_ids=input_ids, **model_inputs)
        logits = self.family.mlm_logits(self.model, selected[:masked]).float()
        mlm_sum = F.cross_entropy(logits, masked_labels, reduction="sum")
        count = torch.full((), masked_labels.numel(), device=logits.device)  # a fill, not a host copy
        correct = (logits.argmax(dim=-1) == masked_labels).sum()
        result = ObjectiveOutput(sums={"mlm": mlm_sum}, counts={"mlm": count},
                                 metrics={"mlm_accuracy": (correct, count)})
        if self.nsp:
            nsp_logits = self.family.nsp_logits(self.model, selected[masked:]).float()
            pairs = torch.full((), nsp_logits.shape[0], device=logits.device)
            result.sums["nsp"] = F.cross_entropy(nsp_logits, next_sentence_label, reduction="sum")
            result.counts["nsp"] = pairs
            result.metrics["nsp_accuracy"] = ((nsp_logits.argmax(dim=-1) == next_sentence_label).sum(), pairs)
        return result

    def flops(self, inputs: dict[str, torch.Tensor]) -> float:
        """Matmul FLOPs of forward + backward (3x forward) of the work the losses need: the MLM
        head at masked positions, the last layer past its attention there and at [CLS] with NSP."""
        c = self.model.config
        rows, length = inputs["input_ids"].shape
        h = c.hidden_size
        masked = inputs["masked_labels"].numel()
        encoder = self.family.encoder_flops(c, length, rows * length, read=masked + (rows if self.nsp else 0))
        nsp = rows * 2 * (h * h + 2 * h) if self.nsp else 0
        return 3.0 * (encoder + self.family.head_flops(c, masked) + nsp)

    # -- weights ----------------------------------------------------------------------------------
    def save_model(self, directory: str | os.PathLike) -> None:
        self.model.save_pretrained(directory)

    def load_model(self, directory: str | os.PathLike) -> None:
        self.family.load_weights(self.model, directory)


def build_masked_lm_objective(params: ModelParameters, special_ids: dict[str, int], vocab_size: int,
                              options: ObjectiveOptions, family: ModelFamily | None = None) -> MaskedLMObjective:
    family = family or family_of(params)
    model = family.build(params, special_ids, vocab_size, hidden_dropout=options.hidden_dropout,
                         attention_dropout=options.attention_dropout,
                         next_sentence_prediction=options.next_sentence_prediction)
    return MaskedLMObjective(family, model, special_ids, params.mask_probability, options.whole_word_mask,
                             next_sentence_prediction=options.next_sentence_prediction)


def build_bert_objective(params: ModelParameters, special_ids: dict[str, int], vocab_size: int,
                         options: ObjectiveOptions) -> MaskedLMObjective:
    return build_masked_lm_objective(params, special_ids, vocab_size, options, family=BERT)

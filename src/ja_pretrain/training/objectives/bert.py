"""BERT's objective: masked LM with dynamic 80/10/10 masking (whole words optional), plus
next-sentence prediction on a pairs dataset; the prediction head runs at masked positions only
and the last layer past its attention only where a head reads (`models.selected_output`)."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from transformers import BertForMaskedLM, BertForPreTraining

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.errors import UserError
from ja_pretrain.models.bert import build_bert_model, load_bert_weights
from ja_pretrain.models.selected_output import encode_selected, encoder_flops, positions_of_rows
from ja_pretrain.training.masking import MaskNoise
from ja_pretrain.training.objectives.base import Objective, ObjectiveOptions, ObjectiveOutput, document_inputs, mask_batch


class BertObjective(Objective):
    """Masked LM (+ NSP) on a transformers BERT; see `training.objectives.base`."""

    kind = "bert"

    def __init__(self, model: BertForMaskedLM | BertForPreTraining, special_ids: dict[str, int],
                 mask_probability: float, whole_word_mask: bool):
        super().__init__()
        self.model = model
        self.nsp = isinstance(model, BertForPreTraining)
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
            "token_type_ids": torch.from_numpy(batch["token_type_ids"]).long(),
            "masked_positions": positions,
            "masked_labels": masked_labels,
            **document_inputs(batch),
        }
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
    def forward(self, input_ids, attention_mask, token_type_ids, masked_positions, masked_labels,
                next_sentence_label=None, position_ids=None, document_ids=None) -> ObjectiveOutput:
        bert, masked = self.model.bert, masked_positions.numel()
        wanted = masked_positions
        if self.nsp:  # the pooler reads each row's [CLS]
            rows, length = input_ids.shape
            wanted = torch.cat([masked_positions, positions_of_rows(rows, length, input_ids.device)])
        selected = encode_selected(bert, wanted, input_ids, attention_mask, token_type_ids, position_ids, document_ids)
        picked = selected[:masked]
        logits = self.model.cls.predictions(picked).float()
        mlm_sum = F.cross_entropy(logits, masked_labels, reduction="sum")
        count = torch.full((), masked_labels.numel(), device=logits.device)  # a fill, not a host copy
        correct = (logits.argmax(dim=-1) == masked_labels).sum()
        result = ObjectiveOutput(sums={"mlm": mlm_sum}, counts={"mlm": count},
                                 metrics={"mlm_accuracy": (correct, count)})
        if self.nsp:
            pooled = bert.pooler(selected[masked:].unsqueeze(1))  # it takes (rows, length, hidden)[:, 0]
            nsp_logits = self.model.cls.seq_relationship(pooled).float()
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
        h, v = c.hidden_size, c.vocab_size
        masked = inputs["masked_labels"].numel()
        encoder = encoder_flops(c, length, rows * length, read=masked + (rows if self.nsp else 0))
        head = 2 * (h * h + h * v) * masked
        nsp = rows * 2 * (h * h + 2 * h) if self.nsp else 0
        return 3.0 * (encoder + head + nsp)

    # -- weights ----------------------------------------------------------------------------------
    def save_model(self, directory: str | os.PathLike) -> None:
        self.model.save_pretrained(directory)

    def load_model(self, directory: str | os.PathLike) -> None:
        load_bert_weights(self.model, directory)


def build_bert_objective(params: ModelParameters, special_ids: dict[str, int], vocab_size: int,
                         options: ObjectiveOptions) -> BertObjective:
    model = build_bert_model(params, special_ids, vocab_size, hidden_dropout=options.hidden_dropout,
                             attention_dropout=options.attention_dropout,
                             next_sentence_prediction=options.next_sentence_prediction)
    return BertObjective(model, special_ids, params.mask_probability, options.whole_word_mask)

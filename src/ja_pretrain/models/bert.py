"""BERT from a preset: transformers' BertForMaskedLM (or BertForPreTraining with next-sentence
prediction), trained through `BertObjective`, which runs the MLM head only at masked positions,
and the last layer past its attention only where a head reads (`models.selected_output`).

The trained module *is* the transformers model, so `save_pretrained` of it is the export and
AutoModelForMaskedLM / AutoModelForPreTraining load it with no code of ours.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM, BertForPreTraining

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.errors import UserError
from ja_pretrain.models.encoder_config import shared_config_fields
from ja_pretrain.models.selected_output import encode_selected, encoder_flops, positions_of_rows
from ja_pretrain.training.masking import IGNORE_INDEX, MaskNoise, mask_tokens
from ja_pretrain.training.objective import Objective, ObjectiveOptions, ObjectiveOutput

# Config fields that fix the shape of the weights: a checkpoint must agree on all of them.
SHAPE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size")


def bert_config(params: ModelParameters, special_ids: dict[str, int], vocab_size: int,
                options: ObjectiveOptions, *, next_sentence_prediction: bool = False) -> BertConfig:
    return BertConfig(
        hidden_size=params.hidden_size,
        num_attention_heads=params.attention_heads,
        intermediate_size=params.ffn_inner_hidden_size,
        architectures=["BertForPreTraining" if next_sentence_prediction else "BertForMaskedLM"],
        **shared_config_fields(params, special_ids, vocab_size, options),
    )


def build_bert_model(params: ModelParameters, special_ids: dict[str, int], vocab_size: int,
                     options: ObjectiveOptions) -> BertForMaskedLM | BertForPreTraining:
    nsp = options.next_sentence_prediction
    config = bert_config(params, special_ids, vocab_size, options, next_sentence_prediction=nsp)
    return BertForPreTraining(config) if nsp else BertForMaskedLM(config)


class BertObjective(Objective):
    """Masked LM (+ NSP) on a transformers BERT; see `ja_pretrain.training.objective`."""

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
        input_ids = torch.from_numpy(batch["input_ids"]).long()
        special = torch.from_numpy(batch["special_tokens_mask"]).bool()
        word_start = torch.from_numpy(batch["word_start"]).bool() if self.whole_word_mask else None
        masked, labels = mask_tokens(
            input_ids, special, word_start,
            mask_probability=self.mask_probability, mask_token_id=self.mask_token_id,
            vocab_size=self.model.config.vocab_size, replace_probs=(0.8, 0.1, 0.1),
            whole_word=self.whole_word_mask, noise=noise, random_token_low=self.first_regular_id,
        )
        flat_labels = labels.flatten()
        # Positions found here on the CPU, so the device never has to report how many there are.
        positions = (flat_labels != IGNORE_INDEX).nonzero().squeeze(1)
        attention_mask = torch.from_numpy(batch["attention_mask"]).long()
        inputs = {
            "input_ids": masked,
            # All-ones masks are dropped: SDPA then runs its fastest unmasked kernel.
            "attention_mask": None if bool(attention_mask.all()) else attention_mask,
            "token_type_ids": torch.from_numpy(batch["token_type_ids"]).long(),
            "masked_positions": positions,
            "masked_labels": flat_labels[positions],
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
                next_sentence_label=None) -> ObjectiveOutput:
        bert, masked = self.model.bert, masked_positions.numel()
        wanted = masked_positions
        if self.nsp:  # the pooler reads each row's [CLS]
            rows, length = input_ids.shape
            wanted = torch.cat([masked_positions, positions_of_rows(rows, length, input_ids.device)])
        selected = encode_selected(bert, wanted, input_ids, attention_mask, token_type_ids)
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


def load_bert_weights(model: BertForMaskedLM | BertForPreTraining, directory: str | os.PathLike) -> None:
    """Load a save_pretrained BERT dir into `model`; the NSP head may be absent or extra."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config_file, weights_file = directory / "config.json", directory / "model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise UserError(f"{directory}: not a model directory (needs config.json and model.safetensors)")
    saved = json.loads(config_file.read_text(encoding="utf-8"))
    if saved.get("model_type") != "bert":
        raise UserError(f"{directory}: holds a {saved.get('model_type')!r} model, not BERT; use a BERT preset")
    ours = model.config.to_dict()
    differ = [f"{k} {saved.get(k)} (ours {ours[k]})" for k in SHAPE_FIELDS if saved.get(k) != ours[k]]
    if differ:
        raise UserError(f"{directory}: model of another shape: {', '.join(differ)}; "
                        "use the same --model_type/--parameter_file and tokenizer it was trained with")
    state = load_file(str(weights_file))
    optional = ("bert.pooler.", "cls.seq_relationship.")  # present only with NSP
    state = {k: v for k, v in state.items() if not (k.startswith(optional) and k not in model.state_dict())}
    result = model.load_state_dict(state, strict=False)
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    missing = [k for k in result.missing_keys if k not in tied and not k.startswith(optional)]
    if missing or result.unexpected_keys:
        raise UserError(f"{directory}: weights do not match the model (missing {missing[:3]}, "
                        f"unexpected {result.unexpected_keys[:3]})")


def build_bert_objective(params: ModelParameters, special_ids: dict[str, int], vocab_size: int,
                         options: ObjectiveOptions) -> BertObjective:
    model = build_bert_model(params, special_ids, vocab_size, options)
    return BertObjective(model, special_ids, params.mask_probability, options.whole_word_mask)

"""The heads that read one position of each sequence, [CLS] (sequence classification and
regression, multiple choice), computed with the encoder's last layer at that position only.

BERT's pooler and ELECTRA's classification head and sequence summary read the last hidden
state at position 0 and nothing else. Every layer but the last must still run at every
position, and so must the last layer's attention (its keys and values come from every
position), but what follows it (the attention's output projection, its LayerNorm and the
feed-forward block: three quarters of the layer's matmuls) works row by row, and only the
[CLS] row is read: `models.selected_output.encode_selected` runs it there alone. The [CLS] rows
are the ones the whole model computes, the head and the loss are the model's own modules and
rules, so training and predicting this way give the same model and the same predictions.

Models of another shape (another family, an ELECTRA summary that is not the first token) go
through the model's own forward.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch.nn import functional as F

from ja_pretrain.models.selected_output import encode_selected


def _head(model) -> str | None:
    """Which of the known [CLS]-reading heads `model` has, or None."""
    name = type(model).__name__
    if name in ("BertForSequenceClassification", "BertForMultipleChoice") and model.bert.pooler is not None:
        return "bert"
    if name == "ElectraForSequenceClassification":
        return "electra"
    if name == "ElectraForMultipleChoice" and getattr(model.config, "summary_type", "last") == "first":
        return "electra-summary"
    return None


def first_token_logits(model, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The model's logits from the last layer at [CLS] only: (rows, labels), or (rows, choices)
    for multiple choice; None for a model this path does not know."""
    head = _head(model)
    if head is None:
        return None
    ids = batch["input_ids"]
    choices = ids.shape[1] if ids.dim() == 3 else None
    flat = {k: v.reshape(-1, v.shape[-1]) for k, v in batch.items()}
    length = flat["input_ids"].shape[1]
    positions = torch.arange(0, flat["input_ids"].numel(), length, device=ids.device)
    encoder = getattr(model, model.base_model_prefix)
    hidden = encode_selected(encoder, positions, flat["input_ids"], flat.get("attention_mask"),
                             flat.get("token_type_ids"))
    if head == "bert":
        pooler = encoder.pooler
        logits = model.classifier(model.dropout(pooler.activation(pooler.dense(hidden))))
    elif head == "electra":
        logits = model.classifier(hidden[:, None, :])
    else:
        logits = model.classifier(model.sequence_summary(hidden[:, None, :]))
    return logits.view(-1, choices) if choices else logits


def first_token_loss(model, batch: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor | None:
    """The loss the model's own forward computes from `labels`, on first_token_logits."""
    logits = first_token_logits(model, batch)
    if logits is None:
        return None
    if model.config.problem_type == "regression":
        return F.mse_loss(logits.squeeze(), labels.squeeze())
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))


def outputs_of(logits: torch.Tensor) -> SimpleNamespace:
    """What a collector reads from a model's output."""
    return SimpleNamespace(logits=logits)

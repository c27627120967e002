"""The training objective: the one `nn.Module` the trainer trains, whatever the model family.

The trainer knows nothing of BERT or ELECTRA. It builds an objective with `build_objective`,
wraps it in DDP, and per optimizer step does:

    inputs  = [objective.prepare(batch, noise) for each micro-batch]   # CPU tensors, masking done
    counts  = sum of objective.loss_counts(x) over micro-batches, all-reduced over ranks
    for x in inputs:
        out  = objective(**x_on_device)                                # ObjectiveOutput
        loss = sum(w[t] * out.sums[t] / counts[t] for t in terms) * world_size
        loss.backward()                                                # DDP averages over ranks

so a step equals one single-process step on the union of every rank's samples (the
`world_size` factor cancels DDP's gradient averaging). Hence the contract:

- `prepare(batch, noise) -> dict[str, Tensor]`: `batch` is what `Samples.batch(indices)` returns
  (numpy arrays: input_ids, attention_mask, token_type_ids, special_tokens_mask, word_start,
  next_sentence_label for pairs, document_ids and position_ids for rows of several documents
  that must not see each other, which each model family turns into what its attention takes:
  `ModelFamily.document_inputs`); `noise` is this micro-batch's rows of a
  `ja_pretrain.training.masking.MaskNoise`. Returns the keyword arguments of `forward`, as CPU
  tensors (the trainer moves them to the device). Must be deterministic given (batch, noise).
- `loss_counts(inputs) -> dict[str, Tensor]`: for each loss term, the number of items its sum
  runs over (masked tokens, sentence pairs, real tokens...), computed from `inputs` alone,
  before the forward pass, as int64 scalar tensors.
- `forward(**inputs) -> ObjectiveOutput`: `sums[term]` is the loss term *summed* (not averaged)
  over the micro-batch, fp32 scalar; `counts[term]` equals `loss_counts(inputs)[term]`;
  `metrics[name] = (numerator, denominator)` scalar tensors that add over micro-batches and
  ranks (e.g. ("correct masked predictions", "masked tokens") for an accuracy). No
  `.item()`/`.cpu()` inside: the trainer syncs with the host only when it logs.
- `loss_weights: dict[str, float]`: the weight of each term in the total loss (its keys are the
  term names).
- `kind: str` (the model family: "bert", "electra" or "modernbert"): picks the exporter in
  `ja_pretrain.export`.
- `save_model(directory)`: write the model(s) in Hugging Face form (config.json +
  model.safetensors via save_pretrained); used for checkpoints.
- `load_model(directory)`: load weights written by `save_model` (or a final/ export) into this
  objective, raising UserError naming the directory if the shapes or architecture differ.
- `flops(inputs) -> float`: model FLOPs of forward + backward for these inputs, counting the
  work the model needs (e.g. the MLM head at masked positions only); used for MFU.

The two objectives are `training.objectives.masked_lm` (BERT, ModernBERT) and
`training.objectives.electra`; `training.objectives.build_objective` picks one for a preset.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ja_pretrain.training.masking import IGNORE_INDEX, mask_tokens


@dataclass
class ObjectiveOutput:
    sums: dict[str, torch.Tensor]
    counts: dict[str, torch.Tensor]
    metrics: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectiveOptions:
    """Choices that are not part of the preset (the command line sets them)."""

    whole_word_mask: bool = False
    next_sentence_prediction: bool = False  # BERT only: BertForPreTraining with the NSP head
    hidden_dropout: float | None = None  # None: the family's own (0.1 BERT and ELECTRA, 0 ModernBERT)
    attention_dropout: float | None = None
    generator_weight: float = 1.0  # ELECTRA only: weight of the generator's MLM loss
    discriminator_weight: float = 50.0  # ELECTRA only: weight of the replaced-token BCE loss


class Objective(nn.Module, abc.ABC):
    """The contract above as an abstract base: subclasses implement every method."""

    kind: str = ""
    loss_weights: dict[str, float] = {}

    @abc.abstractmethod
    def prepare(self, batch: dict[str, Any], noise: Any) -> dict[str, torch.Tensor]:
        ...

    @abc.abstractmethod
    def loss_counts(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ...

    @abc.abstractmethod
    def forward(self, **inputs: torch.Tensor) -> ObjectiveOutput:  # type: ignore[override]
        ...

    @abc.abstractmethod
    def save_model(self, directory: str | os.PathLike) -> None:
        ...

    @abc.abstractmethod
    def load_model(self, directory: str | os.PathLike) -> None:
        ...

    @abc.abstractmethod
    def flops(self, inputs: dict[str, torch.Tensor]) -> float:
        ...


def mask_batch(batch: dict[str, Any], noise: Any, *, mask_probability: float, mask_token_id: int, vocab_size: int,
               replace_probs: tuple[float, float, float], whole_word: bool,
               first_regular_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch masked on the CPU: (original ids, masked ids, flat positions of the chosen tokens,
    their labels). Positions are found here, so the device never has to report how many there are."""
    input_ids = torch.from_numpy(batch["input_ids"]).long()
    special = torch.from_numpy(batch["special_tokens_mask"]).bool()
    word_start = torch.from_numpy(batch["word_start"]).bool() if whole_word else None
    masked, labels = mask_tokens(
        input_ids, special, word_start, mask_probability=mask_probability, mask_token_id=mask_token_id,
        vocab_size=vocab_size, replace_probs=replace_probs, whole_word=whole_word, noise=noise,
        random_token_low=first_regular_id,
    )
    flat_labels = labels.flatten()
    positions = (flat_labels != IGNORE_INDEX).nonzero().squeeze(1)
    return input_ids, masked, positions, flat_labels[positions]

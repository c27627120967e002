"""ELECTRA's objective on an `ElectraJointModel` (`models.electra`). One step:

1. mask 15% (the preset's `mask-percent`) of the real tokens, 85% as [MASK] and 15% unchanged
   (no random tokens: the generator provides the replacements);
2. run the generator body on the masked input and its head only at the masked positions (with a
   32k vocabulary, the head and its softmax over every position are a large share of a small
   model's work, and they are wasted on the 85% of positions that have no label);
3. draw a replacement at each masked position from the generator's softmax by Gumbel-max, in
   fp32 and without gradient (the discriminator's loss does not train the generator);
4. the discriminator reads the original sequence with those replacements and labels each real
   token replaced (sampled != original; a sample equal to the original counts as original);
5. loss = generator_weight x generator MLM + discriminator_weight x discriminator BCE over real
   tokens (1 and 50 by default, the paper's lambda; `ObjectiveOptions` sets them).

The objective returns loss *sums* and *counts* per term, so that a distributed trainer can
divide by the global count and a step equals the single-process step on all ranks' samples.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.models.electra import ELECTRA, ElectraJointModel
from ja_pretrain.models.electra_checkpoint import load_electra_weights, save_joint_model
from ja_pretrain.models.selected_output import document_mask, encode_selected, encoder_flops
from ja_pretrain.training.masking import MaskNoise
from ja_pretrain.training.objectives.base import Objective, ObjectiveOptions, ObjectiveOutput, mask_batch

# ELECTRA's masking: of the chosen tokens 85% become [MASK], 15% stay; none random.
ELECTRA_REPLACE_PROBS = (0.85, 0.15, 0.0)


def gumbel_max_sample(logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """One draw per row from softmax(logits): argmax(logits + Gumbel noise), in fp32, no gradient.

    `uniforms` holds fp32 draws from [0, 1), one per logit; -log(-log(u)) is Gumbel noise. The
    same distribution as multinomial sampling without normalising; fp32 because bf16 logits and
    noise round enough to skew the draw toward the top few tokens.
    """
    with torch.no_grad():
        # -log(u) is Exp(1) and > 0 (u < 1); the clamp keeps u = 0 from giving an infinite score.
        exponential = uniforms.clamp_(min=torch.finfo(torch.float32).tiny).log_().neg_()
        # logits + Gumbel noise = logits - log(Exp(1))
        return torch.argmax(logits.detach().float() - exponential.log_(), dim=-1)


def row_uniforms(per_row: list[int], seeds: list[int], width: int, device: torch.device) -> torch.Tensor:
    """[sum(per_row), width] uniforms; row r's `per_row[r]` lines come from a generator seeded
    with `seeds[r]`, so a sequence draws the same noise whichever rank or batch it is in."""
    out = torch.empty((sum(per_row), width), dtype=torch.float32, device=device)
    start = 0
    for count, seed in zip(per_row, seeds, strict=True):
        if count:
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
            out[start:start + count].uniform_(generator=generator)
            start += count
    return out


def row_seeds(noise: MaskNoise) -> list[int]:
    """A seed per row for the generator's samples, taken from that row's mask noise.

    ELECTRA masking draws no random tokens, so `noise.random_token` is free to use. The samples
    then depend only on (sequence, noise), as the objective contract asks: a resumed run and
    every held-out evaluation draw the same replacements as before, and a sequence is corrupted
    the same way on whichever rank it lands, so a distributed step equals the single-process one.
    """
    bits = (noise.random_token[:, :3].double() * (1 << 21)).long()
    return ((bits[:, 0] << 42) | (bits[:, 1] << 21) | bits[:, 2]).tolist()


class ElectraObjective(Objective):
    """The ELECTRA loss on an `ElectraJointModel`; see `training.objectives.base`.

    Loss terms: "generator" (cross-entropy summed over masked tokens) and "discriminator"
    (binary cross-entropy summed over real tokens, i.e. not padding; [CLS]/[SEP] included as in
    the reference implementation). Metrics: generator accuracy; discriminator accuracy over real
    tokens, precision and recall of the "replaced" class; replaced fraction of real tokens.
    """

    kind = "electra"

    def __init__(self, model: ElectraJointModel, special_ids: dict[str, int], mask_probability: float,
                 whole_word_mask: bool, generator_weight: float = 1.0, discriminator_weight: float = 50.0,
                 params: ModelParameters | None = None):
        super().__init__()
        self.model = model
        self.params = params
        self.loss_weights = {"generator": float(generator_weight), "discriminator": float(discriminator_weight)}
        self.mask_token_id = special_ids["mask"]
        self.first_regular_id = max(special_ids.values()) + 1
        self.mask_probability = mask_probability
        self.whole_word_mask = whole_word_mask

    # -- data -> inputs ---------------------------------------------------------------------
    def prepare(self, batch: dict, noise: MaskNoise) -> dict[str, Any]:
        input_ids, masked, positions, _ = mask_batch(
            batch, noise, mask_probability=self.mask_probability, mask_token_id=self.mask_token_id,
            vocab_size=self.model.generator.config.vocab_size, replace_probs=ELECTRA_REPLACE_PROBS,
            whole_word=self.whole_word_mask, first_regular_id=self.first_regular_id)
        attention_mask = torch.from_numpy(batch["attention_mask"]).long()
        return {
            "input_ids": input_ids,
            "masked_input_ids": masked,
            "masked_positions": positions,
            # All-ones masks are dropped: SDPA then runs its fastest unmasked kernel.
            "attention_mask": None if bool(attention_mask.all()) else attention_mask,
            "token_type_ids": torch.from_numpy(batch["token_type_ids"]).long(),
            # Counts travel with the batch: creating them on a GPU in forward would wait for it.
            "masked_count": torch.tensor(positions.numel(), dtype=torch.long),
            "real_tokens": torch.tensor(int(attention_mask.sum()), dtype=torch.long),
            # Per row: how many masked tokens, and the seed of its replacement draws.
            "row_masked": torch.bincount(positions // input_ids.shape[1], minlength=input_ids.shape[0]).tolist(),
            "row_seeds": row_seeds(noise),
            **ELECTRA.document_inputs(batch, self.model.discriminator.config),
        }

    def loss_counts(self, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"generator": inputs["masked_count"].detach().clone(),
                "discriminator": inputs["real_tokens"].detach().clone()}

    # -- the objective --------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, masked_input_ids: torch.Tensor, masked_positions: torch.Tensor,
                attention_mask: torch.Tensor | None, token_type_ids: torch.Tensor | None,
                masked_count: torch.Tensor, real_tokens: torch.Tensor, row_masked: list[int],
                row_seeds: list[int], position_ids: torch.Tensor | None = None,
                document_ids: torch.Tensor | None = None) -> ObjectiveOutput:
        generator, discriminator = self.model.generator, self.model.discriminator
        flat_ids = input_ids.flatten()
        targets = flat_ids.index_select(0, masked_positions)

        picked = encode_selected(generator.electra, masked_positions, masked_input_ids, attention_mask, token_type_ids,
                                 position_ids, document_ids)
        # fp32 once (a no-op without autocast) for the loss, the draws and the accuracy.
        gen_logits = generator.generator_lm_head(generator.generator_predictions(picked)).float()
        gen_sum = F.cross_entropy(gen_logits, targets, reduction="sum")

        uniforms = row_uniforms(row_masked, row_seeds, gen_logits.shape[-1], gen_logits.device)
        sampled = gumbel_max_sample(gen_logits, uniforms)
        corrupted = flat_ids.index_copy(0, masked_positions, sampled).view_as(input_ids)
        replaced = corrupted != input_ids

        disc_mask = attention_mask if document_ids is None else document_mask(document_ids, discriminator.config)
        disc_logits = discriminator(corrupted, attention_mask=disc_mask, token_type_ids=token_type_ids,
                                    position_ids=position_ids).logits.float()
        per_token = F.binary_cross_entropy_with_logits(disc_logits, replaced.float(), reduction="none")
        real = torch.ones_like(replaced) if attention_mask is None else attention_mask.bool()
        disc_sum = (per_token * real).sum()

        with torch.no_grad():
            predicted = (disc_logits > 0) & real
            replaced = replaced & real
            true_positive = (predicted & replaced).sum()
            replaced_count = replaced.sum()
            metrics = {
                "generator_accuracy": ((gen_logits.argmax(dim=-1) == targets).sum(), masked_count),
                "discriminator_accuracy": (((predicted == replaced) & real).sum(), real_tokens),
                "discriminator_precision": (true_positive, predicted.sum()),
                "discriminator_recall": (true_positive, replaced_count),
                "replaced_fraction": (replaced_count, real_tokens),
            }
        return ObjectiveOutput(sums={"generator": gen_sum, "discriminator": disc_sum},
                               counts={"generator": masked_count, "discriminator": real_tokens},
                               metrics=metrics)

    def flops(self, inputs: dict[str, Any]) -> float:
        """Matmul FLOPs of forward + backward (3x forward) of both networks; the generator's head
        at masked positions only. Sampling and the losses are not matmuls and are left out."""
        rows, length = inputs["input_ids"].shape
        masked = inputs["masked_positions"].numel()
        gen, disc = self.model.generator.config, self.model.discriminator.config
        e, v = disc.embedding_size, disc.vocab_size
        tokens = rows * length
        bodies = encoder_flops(gen, length, tokens, read=masked) + encoder_flops(disc, length, tokens, read=tokens)
        gen_head = masked * 2 * (gen.hidden_size * e + e * v)
        disc_head = tokens * 2 * (disc.hidden_size * disc.hidden_size + disc.hidden_size)
        return 3.0 * (bodies + gen_head + disc_head)

    # -- weights ----------------------------------------------------------------------------------
    def save_model(self, directory: str | os.PathLike) -> None:
        save_joint_model(self.model, directory, self.params,
                         extra={"generator_weight": self.loss_weights["generator"],
                                "discriminator_weight": self.loss_weights["discriminator"]})

    def load_model(self, directory: str | os.PathLike) -> None:
        load_electra_weights(self.model, directory)


def build_electra_objective(params: ModelParameters, special_ids: dict[str, int], vocab_size: int,
                            options: ObjectiveOptions | None = None) -> ElectraObjective:
    options = options or ObjectiveOptions()
    model = ELECTRA.build(params, special_ids, vocab_size, hidden_dropout=options.hidden_dropout,
                          attention_dropout=options.attention_dropout)
    return ElectraObjective(model, special_ids, params.mask_probability, options.whole_word_mask,
                            generator_weight=options.generator_weight,
                            discriminator_weight=options.discriminator_weight, params=params)

"""Dynamic masking for masked-LM training, vectorised over a batch, with optional whole-word masking.

Which tokens get masked: every row chooses *units* (single tokens, or with `whole_word=True`
whole MeCab words: a word-start token plus the continuation sub-words after it) in a random
order until it has covered `mask_probability` of its real tokens (special tokens and padding
are never chosen). The unit that crosses the target is taken with the probability that makes
the expected count exactly `mask_probability * real tokens`, so the rate is unbiased whatever
the word lengths, and a long word is never cut in half.

What happens to a chosen token: `replace_probs = (mask, keep, random)`, the probabilities of
[MASK], of keeping the token, and of a random token; BERT uses (0.8, 0.1, 0.1), ELECTRA
(0.85, 0.15, 0.0). The decision is made per token, as in BERT's reference data generator.

All randomness is drawn up front as a `MaskNoise` of uniform numbers whose shape depends only
on the batch shape. The trainer draws the noise of a whole *global* micro-batch from one
generator seeded by (seed, step) and gives each rank its rows, so a sample gets the same mask
whichever rank or process count handles it, and a resumed run masks exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE_INDEX = -100  # label of unmasked positions, as torch's cross_entropy and transformers expect


@dataclass(frozen=True)
class MaskNoise:
    """Uniform [0, 1) draws for `rows` x `length` positions; slice rows with `noise[a:b]`."""

    unit_score: torch.Tensor  # [R, L] random order of units (indexed by unit number, not position)
    boundary: torch.Tensor  # [R] decides whether the unit that crosses the target is taken
    action: torch.Tensor  # [R, L] chooses mask / random / keep per token
    random_token: torch.Tensor  # [R, L] picks the random replacement token

    def __getitem__(self, rows: slice) -> "MaskNoise":
        return MaskNoise(self.unit_score[rows], self.boundary[rows], self.action[rows], self.random_token[rows])

    def to(self, device: torch.device | str) -> "MaskNoise":
        return MaskNoise(*(t.to(device, non_blocking=True) for t in
                           (self.unit_score, self.boundary, self.action, self.random_token)))


def draw_mask_noise(rows: int, length: int, generator: torch.Generator | None = None) -> MaskNoise:
    """Draw the noise for a [rows, length] batch from `generator` (on the generator's device)."""
    device = generator.device if generator is not None else torch.device("cpu")

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=device)

    return MaskNoise(uniform(rows, length), uniform(rows), uniform(rows, length), uniform(rows, length))


def mask_tokens(
    input_ids: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    word_start: torch.Tensor | None,
    *,
    mask_probability: float,
    mask_token_id: int,
    vocab_size: int,
    replace_probs: tuple[float, float, float] = (0.8, 0.1, 0.1),
    whole_word: bool = False,
    generator: torch.Generator | None = None,
    noise: MaskNoise | None = None,
    random_token_low: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask a batch; returns (masked_input_ids, labels) with labels = -100 where nothing was chosen.

    input_ids: int [B, L]; special_tokens_mask: bool [B, L], True on [CLS]/[SEP]/[PAD] (never
    chosen); word_start: bool [B, L], True where a MeCab word begins (needed for whole_word).
    replace_probs: (mask, keep, random) probabilities for a chosen token.
    The randomness comes from `noise` if given (see `draw_mask_noise`), else from `generator`.
    Random replacements are drawn uniformly from [random_token_low, vocab_size).
    """
    rows, length = input_ids.shape
    if noise is None:
        noise = draw_mask_noise(rows, length, generator)
    if noise.action.shape != (rows, length):
        raise ValueError(f"mask noise has shape {tuple(noise.action.shape)}, the batch {(rows, length)}")
    if not 0.0 <= mask_probability <= 1.0:
        raise ValueError(f"mask_probability must be in [0, 1], got {mask_probability}")
    p_mask, p_keep, p_random = replace_probs
    if min(replace_probs) < 0 or abs(p_mask + p_random + p_keep - 1.0) > 1e-6:
        raise ValueError(f"replace_probs must be three non-negative numbers summing to 1, got {replace_probs}")
    if whole_word and word_start is None:
        raise ValueError("whole-word masking needs word_start flags")
    noise = noise.to(input_ids.device)
    special = special_tokens_mask.to(torch.bool)

    chosen = choose_positions(special, word_start if whole_word else None, noise, mask_probability)

    action = noise.action
    to_mask = chosen & (action < p_mask)
    to_random = chosen & (action >= p_mask + p_keep)
    span = vocab_size - random_token_low
    random_ids = (random_token_low + (noise.random_token * span).long()).clamp_(max=vocab_size - 1)
    masked = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    masked = torch.where(to_random, random_ids.to(input_ids.dtype), masked)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return masked, labels


def choose_positions(
    special: torch.Tensor, word_start: torch.Tensor | None, noise: MaskNoise, mask_probability: float
) -> torch.Tensor:
    """bool [B, L]: the positions to predict (see the module docstring for the rule)."""
    rows, length = special.shape
    real = ~special
    if word_start is None:
        unit_start = torch.ones_like(special)
    else:
        # A special token is a unit of its own, and whatever follows one starts a new unit, so a
        # stray continuation flag can never glue real tokens to [CLS]/[SEP]/[PAD].
        after_special = torch.cat([torch.ones_like(special[:, :1]), special[:, :-1]], dim=1)
        unit_start = word_start.to(torch.bool) | special | after_special
    unit_id = unit_start.long().cumsum(dim=1) - 1  # [B, L], in 0..L-1
    unit_len = torch.zeros(rows, length, dtype=torch.long, device=special.device)
    unit_len.scatter_add_(1, unit_id, real.long())  # real tokens per unit; 0 for specials and unused ids

    # Units in random order; empty ones (specials, unused unit numbers) last.
    score = noise.unit_score.masked_fill(unit_len == 0, 2.0)
    order = score.argsort(dim=1)
    sorted_len = unit_len.gather(1, order)
    after = sorted_len.cumsum(dim=1)
    before = after - sorted_len
    target = real.sum(dim=1, keepdim=True).to(torch.float32) * mask_probability
    fits = after.to(torch.float32) <= target
    # The unit crossing the target: taken with probability (target - before) / its length.
    crosses = (before.to(torch.float32) < target) & (noise.boundary[:, None] * sorted_len < target - before)
    take_sorted = (fits | crosses) & (sorted_len > 0)
    take_unit = torch.zeros_like(take_sorted).scatter_(1, order, take_sorted)
    return take_unit.gather(1, unit_id) & real

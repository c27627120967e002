"""Held-out figures for one model.

Masked LM (BERT, ModernBERT, ELECTRA generator): mean cross-entropy over the hidden tokens, accuracy of the
arg-max prediction there, perplexity = exp(loss). The prediction head runs only at the hidden
positions, so a 32k vocabulary does not cost a [batch, length, vocab] tensor.

Replaced-token detection (ELECTRA discriminator): the held-out text is corrupted at the masked
positions, either by sampling the paired generator (as in training) or, without one, by a
uniformly random ordinary token; the discriminator then labels every real token. Accuracy is
over all real tokens, precision/recall/F1 over the "replaced" class, AUC over the logits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ja_pretrain.errors import UserError
from ja_pretrain.evaluation.heldout import HeldOutSet
from ja_pretrain.models.families import family_of_config
from ja_pretrain.utils.devices import autocast

CORRUPTION_RANDOM = "random-replacement"


def iter_batches(heldout: HeldOutSet, batch_size: int, pad_id: int) -> Iterator[dict[str, torch.Tensor]]:
    """Padded batches in a fixed order; `mask` marks the hidden positions, `real` the tokens
    that are neither special nor padding."""
    for start in range(0, len(heldout.sequences), batch_size):
        seqs = heldout.sequences[start : start + batch_size]
        length = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), length), dtype=torch.bool)
        real = torch.zeros((len(seqs), length), dtype=torch.bool)
        attention = torch.zeros((len(seqs), length), dtype=torch.long)
        for row, (seq, masked) in enumerate(zip(seqs, heldout.masked[start : start + batch_size], strict=True)):
            ids[row, : len(seq)] = torch.from_numpy(seq)
            mask[row, torch.from_numpy(masked)] = True
            real[row, 1 : len(seq) - 1] = True
            attention[row, : len(seq)] = 1
        yield {"input_ids": ids, "attention_mask": attention, "mask": mask, "real": real, "first": start}


def mlm_logits_at(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits at the positions `where` ([batch, length] bool) only: the encoder
    everywhere, the model family's masked-LM head at those positions."""
    family = family_of_config(model.config)
    if family is None:  # a masked-LM class of no family of ours: the full forward, then pick the positions
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[where]
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[where]
    return family.mlm_logits(model, hidden)


def _on_model(model, batch: dict[str, Any]) -> dict[str, Any]:
    """The batch's tensors on the model's device (the host keeps its own copy for the labels)."""
    device = next(model.parameters()).device
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def masked_lm_metrics(model, heldout: HeldOutSet, *, mask_id: int, pad_id: int, batch_size: int = 32,
                      precision: str = "fp32", progress=None) -> dict[str, float]:
    device = next(model.parameters()).device
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss, correct: read back once, at the end
    count = 0
    for host in iter_batches(heldout, batch_size, pad_id):
        batch = _on_model(model, host)
        targets = batch["input_ids"][batch["mask"]]
        inputs = batch["input_ids"].masked_fill(batch["mask"], mask_id)
        with autocast(device, precision):
            logits = mlm_logits_at(model, inputs, batch["attention_mask"], batch["mask"])
        logits = logits.float()
        sums[0] += F.cross_entropy(logits, targets, reduction="sum")
        sums[1] += (logits.argmax(-1) == targets).sum()
        count += int(host["mask"].sum())
        if progress is not None:
            progress.update(host["input_ids"].shape[0])
    if count == 0:
        raise UserError("no token of the held-out text was masked; give more text (--corpus, --max-sentences)")
    loss_sum, correct = sums.tolist()
    loss = loss_sum / count
    return {"loss": loss, "accuracy": correct / count, "perplexity": math.exp(loss), "masked_tokens": count}


def random_replacements(heldout: HeldOutSet, candidates: np.ndarray, seed: int) -> list[np.ndarray]:
    """For each sequence, one token id per masked position drawn uniformly from `candidates`
    with `default_rng([seed, index, 1])`: the fixed corruption used when no generator is given."""
    out = []
    for index, masked in enumerate(heldout.masked):
        rng = np.random.default_rng([seed, index, 1])
        out.append(candidates[rng.integers(0, len(candidates), size=len(masked))])
    return out


@torch.no_grad()
def replaced_token_metrics(discriminator, heldout: HeldOutSet, *, pad_id: int, mask_id: int, seed: int,
                           generator=None, candidates: np.ndarray | None = None, batch_size: int = 32,
                           precision: str = "fp32", progress=None) -> dict[str, float]:
    """Corrupt, then score the discriminator. `generator` (a masked-LM model) samples the
    replacements; without it `candidates` (ordinary token ids) are drawn uniformly."""
    if generator is None and candidates is None:
        raise ValueError("need a generator or candidate token ids to corrupt the text")
    replacements = None if generator is not None else random_replacements(heldout, candidates, seed)
    sampler = torch.Generator().manual_seed(seed)
    scores: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    device = next(discriminator.parameters()).device
    for batch in iter_batches(heldout, batch_size, pad_id):
        ids, where = batch["input_ids"], batch["mask"]
        corrupted = ids.clone()
        if generator is not None:
            on = _on_model(generator, batch)
            with autocast(device, precision):
                logits = mlm_logits_at(generator, on["input_ids"].masked_fill(on["mask"], mask_id),
                                       on["attention_mask"], on["mask"])
            # sampled on the host, so a GPU run draws the same replacements as a CPU run
            probs = torch.softmax(logits.float().cpu(), dim=-1)
            corrupted[where] = torch.multinomial(probs, 1, generator=sampler).squeeze(-1)
        else:
            first = batch["first"]
            drawn = np.concatenate(replacements[first : first + ids.shape[0]])
            corrupted[where] = torch.from_numpy(drawn)
        with autocast(device, precision):
            out = discriminator(input_ids=corrupted.to(device), attention_mask=batch["attention_mask"].to(device)).logits
        real = batch["real"]
        scores.append(out.float().cpu()[real].numpy())
        labels.append((corrupted != ids)[real].numpy())
        if progress is not None:
            progress.update(ids.shape[0])
    return detection_metrics(np.concatenate(scores), np.concatenate(labels))


def detection_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Binary figures for 'replaced' (label True) at threshold logit 0, plus ROC AUC."""
    predicted = scores > 0
    tp = int(np.sum(predicted & labels))
    fp = int(np.sum(predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "auc": roc_auc(scores, labels),
        "replaced_fraction": float(np.mean(labels)),
        "tokens": int(labels.size),
    }


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a replaced token scores above an original one (ties count half):
    the Mann-Whitney form of the area under the ROC curve. NaN when a class is empty."""
    labels = labels.astype(bool)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    # Rank 1 = lowest score; equal scores share their average rank.
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    rank_sum = ranks[labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))

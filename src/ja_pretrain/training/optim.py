"""AdamW and the learning-rate schedule of the BERT/ELECTRA references.

AdamW with beta1 0.9, beta2 0.999, eps 1e-6, weight decay 0.01 on every weight except biases
and LayerNorm parameters; the learning rate rises linearly over `warmup-steps` and then falls
linearly to zero at `train-steps`. The fused kernel is used (CPU and CUDA): one launch per step,
and it can skip a step on a device-side "found_inf" flag without the host looking at it.
"""

from __future__ import annotations

import torch
from torch import nn

WEIGHT_DECAY = 0.01
BETAS = (0.9, 0.999)
EPS = 1e-6


def parameter_groups(model: nn.Module, weight_decay: float = WEIGHT_DECAY) -> list[dict]:
    decay, no_decay = [], []
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:  # tied weights appear once
                continue
            seen.add(id(param))
            is_norm = isinstance(module, nn.LayerNorm) or "layernorm" in type(module).__name__.lower()
            (no_decay if name == "bias" or is_norm else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, learning_rate: float, weight_decay: float = WEIGHT_DECAY) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=learning_rate, betas=BETAS, eps=EPS,
                             fused=True)


def linear_schedule(step: int, warmup_steps: int, train_steps: int) -> float:
    """Multiplier of the peak learning rate at `step` (0-based: the step about to be taken)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (train_steps - step) / max(1, train_steps - warmup_steps))


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, train_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: linear_schedule(step, warmup_steps, train_steps)
    )

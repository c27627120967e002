"""Where a command computes and in which number format: the one answer run-pretraining,
evaluate and finetune share (`--device`, `--precision`). Importing this module does not import
torch, so the commands' parsers can name the choices without it."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from ja_pretrain.errors import UserError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")
PRECISION_CHOICES = ("auto", *PRECISIONS)


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """auto: a GPU when there is one (under torchrun, the one of this process's local rank),
    else the CPU."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is available; use --device cpu or auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if device == "cpu":
        return torch.device("cpu")
    raise UserError(f"--device {device!r}: choose {', '.join(DEVICES)}")


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto: bf16 on a GPU that has it (fp16 on an older one), fp32 on a CPU, where bf16 matmuls
    are fast only with AVX-512 BF16 or AMX and ~100x slower without (measured on an AVX2 CPU)."""
    import torch

    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}: choose {', '.join(PRECISION_CHOICES)}")
    return precision


def dtype_of(precision: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Mixed precision for `precision` on `device` (nothing for fp32)."""
    import torch

    dtype = dtype_of(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

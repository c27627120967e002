"""The peak that model FLOP utilisation (MFU) is measured against, and where it comes from.

In order: a stated peak (`--peak_tflops`); on a GPU whose name is in the table below, its
datasheet's dense bf16/fp16 tensor-core rate; otherwise the rate of a large matmul in the run's
precision, measured at start-up as the best of several short windows (a single short reading
moved by ±20% on a busy machine). The source travels with every figure (train_log.jsonl,
the summary), so an MFU is never read against the wrong peak.

Datasheet dense (no sparsity) bf16 = fp16 tensor-core TFLOP/s, from NVIDIA's data sheets:
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

# (substring of torch.cuda.get_device_name(), TFLOP/s); the first match wins, so the more
# specific names come first. fp32 runs get no datasheet figure (their matmuls are not tensor-core).
DATASHEET_DENSE_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM (named "H100 80GB HBM3")
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10", 125.0),
)


@dataclass(frozen=True)
class Peak:
    flops: float  # per device, FLOP/s
    source: str

    @property
    def tflops(self) -> float:
        return self.flops / 1e12


def datasheet_peak(device_name: str, dtype: torch.dtype) -> float | None:
    if dtype not in (torch.bfloat16, torch.float16):
        return None
    return next((tflops * 1e12 for name, tflops in DATASHEET_DENSE_TFLOPS if name in device_name), None)


def measure_matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 1.5, windows: int = 6,
                        size: int | None = None) -> float:
    """FLOP/s of a large square matmul on `device` in `dtype`: the best of `windows` timed
    windows over `seconds` in all (the best, as the peak is what the machine can do).
    Uses its own generator so the global RNG (dropout) is untouched."""
    size = size or (8192 if device.type == "cuda" else 1024)
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=torch.float32, generator=generator).to(dtype)
    b = torch.randn(size, size, device=device, dtype=torch.float32, generator=generator).to(dtype)
    torch.matmul(a, b)  # warm-up
    _sync(device)
    best = 0.0
    for _ in range(windows):
        runs, start = 0, time.perf_counter()
        while True:
            torch.matmul(a, b)
            runs += 1
            _sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / windows:
                best = max(best, 2.0 * size**3 * runs / elapsed)
                break
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve_peak(device: torch.device, dtype: torch.dtype, stated_flops: float | None = None) -> Peak:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    if stated_flops:
        return Peak(stated_flops, "--peak_tflops")
    if device.type == "cuda" and (sheet := datasheet_peak(name, dtype)) is not None:
        return Peak(sheet, f"datasheet dense {str(dtype).removeprefix('torch.')} of {name}")
    measured = measure_matmul_peak(device, dtype)
    return Peak(measured, f"measured {str(dtype).removeprefix('torch.')} matmul on {name} at start-up")

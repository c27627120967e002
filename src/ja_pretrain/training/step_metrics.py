"""Training metrics: device-side accumulation (no host sync until a log step), the measured
matmul peak used for model FLOP utilisation (MFU), and the TensorBoard + JSONL writers."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from ja_pretrain.training.distributed import DistContext, all_reduce_sum
from ja_pretrain.utils.atomic import atomic_write_text

TRAIN_LOG_NAME = "train_log.jsonl"
TENSORBOARD_DIR = "runs"


class MetricWindow:
    """Sums of loss terms and metric numerators/denominators over micro-batches and steps.

    Everything stays on the device until `reduce()`, which all-reduces over ranks and reads the
    values back in one transfer. `host` holds numbers the host already knows (tokens, FLOPs).
    """

    def __init__(self) -> None:
        self.device_sums: dict[str, torch.Tensor] = {}
        self.host: dict[str, float] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        value = value.detach().to(torch.float64)
        self.device_sums[name] = self.device_sums[name] + value if name in self.device_sums else value

    def add_host(self, name: str, value: float) -> None:
        self.host[name] = self.host.get(name, 0.0) + float(value)

    def add_output(self, out: Any) -> None:
        """Add an ObjectiveOutput; a micro-batch whose loss is not finite adds nothing."""
        finite = torch.stack([torch.isfinite(s.detach()) for s in out.sums.values()]).all()
        for term, value in out.sums.items():
            self.add(f"loss_sum/{term}", torch.where(finite, value.detach(), 0.0))
            self.add(f"loss_count/{term}", torch.where(finite, out.counts[term], 0))
        for name, (numerator, denominator) in out.metrics.items():
            self.add(f"num/{name}", torch.where(finite, numerator, 0))
            self.add(f"den/{name}", torch.where(finite, denominator, 0))

    def to_json(self) -> dict[str, dict[str, float]]:
        """This process's sums so far, for a checkpoint taken between two logs: a run resumed
        from it logs the same averages as one that was never stopped (float64 sums, which JSON
        carries exactly)."""
        return {"device": {n: float(v) for n, v in self.device_sums.items()}, "host": dict(self.host)}

    def load_json(self, saved: dict[str, dict[str, float]], device: torch.device) -> None:
        self.device_sums = {n: torch.tensor(v, dtype=torch.float64, device=device) for n, v in saved["device"].items()}
        self.host = dict(saved["host"])

    def reduce(self, ctx: DistContext, device: torch.device) -> dict[str, float]:
        names = sorted(self.device_sums)
        host_names = sorted(self.host)
        parts = [self.device_sums[n].to(device) for n in names]
        parts += [torch.tensor(self.host[n], dtype=torch.float64, device=device) for n in host_names]
        if not parts:
            return {}
        stacked = all_reduce_sum(torch.stack(parts), ctx)
        values = dict(zip(names + host_names, stacked.tolist(), strict=True))
        self.device_sums.clear()
        self.host.clear()
        return values


def summarize(values: dict[str, float], loss_weights: dict[str, float]) -> dict[str, float]:
    """Loss per term, the weighted total, and each metric as numerator / denominator."""
    record: dict[str, float] = {}
    total = 0.0
    for term, weight in loss_weights.items():
        count = values.get(f"loss_count/{term}", 0.0)
        mean = values.get(f"loss_sum/{term}", 0.0) / count if count else float("nan")
        record[f"{term}_loss"] = mean
        total += weight * mean
    record["loss"] = total
    for key, numerator in values.items():
        if key.startswith("num/"):
            name = key[4:]
            denominator = values.get(f"den/{name}", 0.0)
            record[name] = numerator / denominator if denominator else float("nan")
    return record


class TrainLogger:
    """Rank 0's TensorBoard writer (MODEL_DIR/runs/) and MODEL_DIR/train_log.jsonl."""
    def __init__(self, model_dir: str | os.PathLike, resume_step: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.jsonl = Path(model_dir) / TRAIN_LOG_NAME
        self.writer = None
        if not enabled:
            return
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        self._truncate_after(resume_step)
        from torch.utils.tensorboard import SummaryWriter  # a slow import, and only rank 0 writes

        # purge_step drops events a crashed run wrote after the checkpoint we resume from.
        self.writer = SummaryWriter(str(Path(model_dir) / TENSORBOARD_DIR), purge_step=resume_step + 1 if resume_step else None)

    def _truncate_after(self, step: int) -> None:
        """Keep only records up to `step`, so a resumed run's log reads like an uninterrupted one."""
        if not self.jsonl.exists():
            return
        if step == 0:
            self.jsonl.unlink()
            return
        kept = [line for line in self.jsonl.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]

        atomic_write_text(self.jsonl, "".join(line + "\n" for line in kept))

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.jsonl, "a", encoding="utf-8") as f:
            f.write(json.dumps(clean, ensure_ascii=False) + "\n")
        split, step = record["split"], record["step"]
        for key, value in record.items():
            if key not in ("split", "step") and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"{split}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

"""Checkpoints: MODEL_DIR/checkpoint-STEP/ holds everything needed to continue exactly.

    checkpoint-STEP/
      config.json, model.safetensors   the model, by save_pretrained (loads with transformers too)
      optimizer.pt, scheduler.pt       torch state dicts (tensors and numbers only)
      scaler.pt                        the fp16 GradScaler's state, when fp16 is used
      rng_state.pt                     every rank's CPU (and CUDA) RNG state, for dropout
      trainer_state.json               step, samples and tokens seen, seed, batch layout, preset

Rank 0 writes the directory under a temporary name and renames it when complete, so a crash
mid-save leaves no directory that looks finished; the oldest are deleted beyond `keep`.
Everything is read back with `torch.load(weights_only=True)` or safetensors.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ja_pretrain.errors import UserError
from ja_pretrain.training.distributed import DistContext, barrier
from ja_pretrain.utils.atomic import atomic_directory, atomic_write_json

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STATE_NAME = "trainer_state.json"


def list_checkpoints(model_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, dir) of the finished checkpoints in `model_dir`, oldest first."""
    found = []
    root = Path(model_dir)
    if root.is_dir():
        for child in root.iterdir():
            match = CHECKPOINT_RE.match(child.name)
            if match and (child / STATE_NAME).is_file():
                found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(model_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(model_dir)
    return found[-1][1] if found else None


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(
    model_dir: str | os.PathLike,
    ctx: DistContext,
    *,
    objective: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler | None,
    state: dict[str, Any],
    keep: int | None = None,
) -> Path:
    """Every rank calls this (it gathers RNG states); rank 0 writes. Returns the directory."""
    rngs: list[Any] = [rng_state(ctx.device)]
    if ctx.distributed:
        rngs = [None] * ctx.world_size
        dist.all_gather_object(rngs, rng_state(ctx.device))
    path = Path(model_dir) / f"checkpoint-{state['step']}"
    if ctx.is_main:
        with atomic_directory(path) as tmp:
            objective.save_model(tmp)
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
            if scaler is not None:
                torch.save(scaler.state_dict(), tmp / "scaler.pt")
            torch.save({"ranks": [{k: v.cpu() for k, v in r.items()} for r in rngs]}, tmp / "rng_state.pt")
            atomic_write_json(tmp / STATE_NAME, state)
        if keep:
            for _, old in list_checkpoints(model_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    barrier(ctx)
    return path


def read_state(path: str | os.PathLike, missing_ok: bool = False) -> dict[str, Any]:
    """DIR/trainer_state.json ({} when it is absent and `missing_ok`: a final/ export of BERT has none)."""
    file = Path(path) / STATE_NAME
    if missing_ok and not file.is_file():
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{file}: unreadable checkpoint state ({err}); "
                        "delete that checkpoint to resume from an older one") from err


# The keys of a preset that change the weights' shapes or kind: resuming under other values
# cannot load the checkpoint (learning rate, steps and the like may change on resume).
MODEL_KEYS = ("number-of-layers", "hidden-size", "sequence-length", "ffn-inner-hidden-size", "attention-heads",
              "generator-size")


def check_resumable(checkpoint: Path, parameters: dict[str, Any]) -> None:
    """Refuse to resume `checkpoint` under a preset of another model (`parameters` as in
    parameter.json), naming the preset it was trained with."""
    state = read_state(checkpoint, missing_ok=True)
    saved = state.get("parameters")
    if not isinstance(saved, dict):
        return  # a checkpoint of an older version: the weights' own shape check still applies
    differ = [f"{key} {saved.get(key)} (now {parameters.get(key)})" for key in MODEL_KEYS
              if saved.get(key) != parameters.get(key)]
    if differ:
        raise UserError(
            f"--do_continue: {checkpoint} holds a model of preset '{state.get('model_type')}', another model than "
            f"this run's ({'; '.join(differ)}); resume with --model_type {state.get('model_type')} and the "
            "--parameter_file it was trained with, or choose an empty --model_dir")


def load_checkpoint(
    path: str | os.PathLike,
    ctx: DistContext,
    *,
    objective: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler | None,
) -> dict[str, Any]:
    """Restore everything saved by `save_checkpoint` into the given objects; returns the trainer state.

    Call it after everything that consumes random numbers at start-up, since it restores the RNGs.
    """
    path = Path(path)
    state = read_state(path)
    objective.load_model(path)  # raises UserError on a model of another shape

    def load(name: str) -> Any:
        return torch.load(path / name, map_location="cpu", weights_only=True)

    try:
        optimizer.load_state_dict(load("optimizer.pt"))
    except (ValueError, RuntimeError) as err:
        raise UserError(f"{path}/optimizer.pt does not fit this model ({err}); start a new --model_dir") from err
    scheduler.load_state_dict(load("scheduler.pt"))
    if scaler is not None and (path / "scaler.pt").is_file():
        scaler.load_state_dict(load("scaler.pt"))
    ranks = load("rng_state.pt")["ranks"]
    if len(ranks) == ctx.world_size:
        set_rng_state(ranks[ctx.rank], ctx.device)
    else:  # dropout noise then differs from the uninterrupted run; everything else is exact
        set_rng_state(ranks[ctx.rank % len(ranks)], ctx.device)
    return state

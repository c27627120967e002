"""What a run directory holds, found by its files rather than by fixed names, so the report
works for the pipeline's runs and for stages run by hand into one directory.

- stages: every `manifest.json` (its `stage`, counts and timings);
- training logs: every `train_log.jsonl` (one JSON object per logging step or evaluation);
- models: every dir with a `config.json` (a save_pretrained model);
- tokenizers: dirs with `tokenizer_config.json` and a vocabulary but no model;
- evaluations: every `metrics.json` written by `ja-pretrain evaluate`;
- downstream scores: every `scores.json` written by `ja-pretrain finetune`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open

from ja_pretrain.downstream.scorecard import is_scores
from ja_pretrain.errors import UserError

SKIP_DIRS = ("checkpoint-", ".")  # training checkpoints and temporary/hidden dirs


@dataclass
class RunContents:
    root: Path
    manifests: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    train_logs: list[Path] = field(default_factory=list)
    models: list[Path] = field(default_factory=list)
    tokenizers: list[Path] = field(default_factory=list)
    metrics: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    valid_texts: list[Path] = field(default_factory=list)
    downstream: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root)) or "."
        except ValueError:
            return str(path)


def _walk(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(SKIP_DIRS))
        yield Path(dirpath), set(filenames)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check_run_dir(run_dir: str | os.PathLike) -> Path:
    root = Path(run_dir)
    if not root.is_dir():
        raise UserError(f"RUN_DIR {root}: " + ("not a directory" if root.exists() else "no such directory"))
    return root


def scan_run_dir(run_dir: str | os.PathLike) -> RunContents:
    root = check_run_dir(run_dir)
    found = RunContents(root=root)
    for directory, files in _walk(root):
        if "manifest.json" in files:
            manifest = _read_json(directory / "manifest.json")
            if isinstance(manifest, dict) and "stage" in manifest:
                found.manifests.append((directory, manifest))
                if "valid.txt" in files:
                    found.valid_texts.append(directory / "valid.txt")
        if "train_log.jsonl" in files:
            found.train_logs.append(directory / "train_log.jsonl")
        if "config.json" in files and (files & {"model.safetensors", "pytorch_model.bin"}):
            found.models.append(directory)
        elif "tokenizer_config.json" in files and (files & {"vocab.txt", "spiece.model", "tokenizer.json"}):
            found.tokenizers.append(directory)
        if "metrics.json" in files:
            metrics = _read_json(directory / "metrics.json")
            if isinstance(metrics, dict) and "models" in metrics:
                found.metrics.append((directory, metrics))
        if "scores.json" in files:
            scores = _read_json(directory / "scores.json")
            if is_scores(scores):
                found.downstream.append((directory, scores))
    return found


def read_train_log(path: Path) -> list[dict[str, Any]]:
    """The records of a train_log.jsonl; a line cut short by a crash is skipped."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "step" in record:
                records.append(record)
    return records


def model_summary(model_dir: Path) -> dict[str, Any]:
    """Architecture and size of a saved model, read from its config and safetensors header."""
    config = _read_json(model_dir / "config.json") or {}
    summary = {
        "architecture": (config.get("architectures") or ["?"])[0],
        "layers": config.get("num_hidden_layers"),
        "hidden": config.get("hidden_size"),
        "heads": config.get("num_attention_heads"),
        "vocab": config.get("vocab_size"),
        "positions": config.get("max_position_embeddings"),
        "parameters": None,
    }
    weights = model_dir / "model.safetensors"
    if weights.is_file():

        total = 0
        with safe_open(str(weights), framework="numpy") as f:
            for key in f.keys():
                count = 1
                for dim in f.get_slice(key).get_shape():
                    count *= dim
                total += count
        summary["parameters"] = total
    return summary

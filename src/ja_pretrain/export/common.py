"""What the BERT and ELECTRA exports share: model-card pieces and final/manifest.json."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ja_pretrain.utils.manifest import fingerprint, write_manifest


def fmt(value: Any, digits: int = 4) -> str:
    """A figure for a model card: n/a for missing or non-finite values."""
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"
    return "n/a" if value is None else str(value)


def usage_lines(auto: str) -> list[str]:
    """The model card's how-to-load snippet."""
    return [
        "```python",
        f"from transformers import AutoTokenizer, {auto}",
        "tokenizer = AutoTokenizer.from_pretrained(PATH)  # BertJapaneseTokenizer: needs fugashi + its dictionary",
        f"model = {auto}.from_pretrained(PATH)",
        "```",
    ]


def write_final_manifest(directory: Path, *, params: Any, options: Any, architecture: str,
                         dataset_dir: str | os.PathLike, dataset_manifest: dict | None, tokenizer_names: list[str],
                         train_state: dict, facts: dict, last_train: dict, last_valid: dict) -> None:
    """final/manifest.json (written last): what the model was trained on, with which options."""
    write_manifest(
        directory, stage="pretrain",
        inputs={"dataset": (dataset_manifest or {}).get("fingerprint", str(dataset_dir)),
                "tokenizer_files": tokenizer_names, "init_from": str(facts.get("init_from") or "")},
        options={"parameters": params.to_json_dict(), "model_type": params.model_type,
                 "objective": {k: v for k, v in vars(options).items() if k != "extra"},
                 "architecture": architecture},
        counts={"steps": train_state.get("step"), "tokens_seen": train_state.get("tokens_seen"),
                "samples_seen": train_state.get("samples_seen")},
        extra={"final_valid": last_valid, "final_train": last_train,
               "train_state_fingerprint": fingerprint(train_state)},
    )

"""Where the models under a MODEL_DIR are: the one resolver of every command that takes one
(`evaluate`, `finetune`).

    MODEL_DIR/config.json                  a save_pretrained model (a final/, a Hub model saved locally)
    MODEL_DIR/final/config.json            a run-pretraining output
    MODEL_DIR/generator/, discriminator/   an extract-electra output (either or both)
"""

from __future__ import annotations

import os
from pathlib import Path

from ja_pretrain.errors import UserError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
ELECTRA_ROLES = ("generator", "discriminator")


def _with_weights(directory: Path) -> Path:
    if not any((directory / w).is_file() for w in WEIGHT_FILES):
        raise UserError(f"MODEL_DIR {directory}: config.json but no model.safetensors or pytorch_model.bin")
    return directory


def resolve_models(model_dir: str | os.PathLike) -> list[tuple[str, Path]]:
    """(label, dir) of every model under `model_dir`: the dir itself (labelled by its name), its
    final/ (labelled "final"), or its generator/ and discriminator/."""
    root = Path(model_dir)
    if not root.is_dir():
        raise UserError(f"MODEL_DIR {root}: no such directory")
    for label, candidate in ((root.name, root), ("final", root / "final")):
        if (candidate / "config.json").is_file():
            return [(label, _with_weights(candidate))]
    pair = [(role, _with_weights(root / role)) for role in ELECTRA_ROLES if (root / role / "config.json").is_file()]
    if pair:
        return pair
    raise UserError(f"MODEL_DIR {root}: no config.json there, in final/, or in generator/ or discriminator/; give a "
                    "model saved by run-pretraining, extract-electra or save_pretrained")


def model_to_finetune(model_dir: str | os.PathLike) -> Path:
    """The one model under `model_dir` that fine-tuning means: of an ELECTRA pair, the discriminator."""
    models = dict(resolve_models(model_dir))
    if "discriminator" in models:
        return models["discriminator"]
    if "generator" in models:
        raise UserError(f"MODEL_DIR {model_dir}: holds only an ELECTRA generator; fine-tune the discriminator "
                        "(extract-electra writes both unless told otherwise)")
    return next(iter(models.values()))

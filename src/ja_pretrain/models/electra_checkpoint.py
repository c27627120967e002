"""The joint ELECTRA checkpoint on disk: one dir with both networks (training checkpoints and
final/), read back for resuming, `--init_from` and `extract-electra`; and loading a
generator/discriminator pair (the output of `extract-electra`) into a joint model."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import ElectraConfig

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.errors import UserError
from ja_pretrain.models.electra import JOINT_KEY, SHARED_EMBEDDING_TENSORS, ElectraJointModel, alias_keys
from ja_pretrain.models.encoder_config import check_shape

log = logging.getLogger(__name__)

DISCRIMINATOR_PREFIX = "discriminator."


def save_joint_model(model: ElectraJointModel, directory: str | os.PathLike, params: ModelParameters | None = None,
                     extra: dict[str, Any] | None = None) -> None:
    """DIR/config.json (see `ElectraJointModel.joint_config`) + DIR/model.safetensors (joint state).

    The discriminator's tensors are stored under its own names (`electra.*`,
    `discriminator_predictions.*`) and the generator's under `generator.*`: with the
    discriminator's config in config.json, `AutoModelForPreTraining.from_pretrained(DIR)` then
    loads the trained discriminator (warning about the generator's keys) instead of a random one.
    """

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k.removeprefix(DISCRIMINATOR_PREFIX): v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(
        json.dumps(model.joint_config(params, extra), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_joint_config(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The JOINT_KEY entry of DIR/config.json, or None when DIR holds no joint ELECTRA model."""
    file = Path(directory) / "config.json"
    if not file.is_file():
        return None
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{file}: unreadable ({err})") from err
    joint = config.get(JOINT_KEY) if isinstance(config, dict) else None
    return joint if isinstance(joint, dict) else None


def joint_model_from_dir(directory: str | os.PathLike) -> tuple[ElectraJointModel, dict[str, Any]]:
    """Rebuild the joint model saved in DIR (a checkpoint or final/) with its weights."""
    directory = Path(directory)
    joint = read_joint_config(directory)
    if joint is None:
        raise UserError(f"{directory}: not a joint ELECTRA model (its config.json lacks {JOINT_KEY!r}); "
                        "give a checkpoint-STEP/ or final/ written by `run-pretraining` with an ELECTRA preset")
    gen_config = ElectraConfig.from_dict(joint["generator"])
    disc_config = ElectraConfig.from_dict(joint["discriminator"])
    model = ElectraJointModel(gen_config, disc_config)
    _load_joint_state(model, directory)
    return model, joint


def _read_state(directory: Path) -> dict[str, torch.Tensor]:
    weights = directory / "model.safetensors"
    if weights.is_file():
        return load_file(str(weights))
    legacy = directory / "pytorch_model.bin"
    if legacy.is_file():
        return torch.load(legacy, map_location="cpu", weights_only=True)
    raise UserError(f"{directory}: no model.safetensors (or pytorch_model.bin); the save is incomplete")


def _load_joint_state(model: ElectraJointModel, directory: Path) -> None:
    state = {(k if k.startswith(("generator.", DISCRIMINATOR_PREFIX)) else DISCRIMINATOR_PREFIX + k): v
             for k, v in _read_state(directory).items()}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(f"{directory}: weights do not match the ELECTRA model (missing {result.missing_keys[:3]}, "
                        f"unexpected {result.unexpected_keys[:3]})")


def load_electra_weights(model: ElectraJointModel, directory: str | os.PathLike) -> None:
    """Load weights into `model` from a joint checkpoint / final/, or from a generator/discriminator
    pair (the output of `extract-electra`, or any two HF ELECTRA dirs that shared embeddings).

    A MODEL_DIR holding final/ is accepted too. Shapes must match; raises UserError otherwise.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory")
    if read_joint_config(directory) is None and read_joint_config(directory / "final") is not None:
        directory = directory / "final"
    joint = read_joint_config(directory)
    if joint is not None:
        check_shape(directory, joint["generator"], model.generator.config.to_dict(), "generator")
        check_shape(directory, joint["discriminator"], model.discriminator.config.to_dict(), "discriminator")
        _load_joint_state(model, directory)
        return
    gen_dir, disc_dir = directory / "generator", directory / "discriminator"
    if (gen_dir / "config.json").is_file() and (disc_dir / "config.json").is_file():
        _load_pair(model, gen_dir, disc_dir)
        return
    raise UserError(f"{directory}: neither a joint ELECTRA model (checkpoint-STEP/ or final/ of run-pretraining) "
                    "nor a pair of generator/ and discriminator/ model dirs (extract-electra output)")


def _load_pair(model: ElectraJointModel, gen_dir: Path, disc_dir: Path) -> None:
    for path, net, what in ((gen_dir, model.generator, "generator"), (disc_dir, model.discriminator, "discriminator")):
        saved = json.loads((path / "config.json").read_text(encoding="utf-8"))
        check_shape(path, saved, net.config.to_dict(), what)
    disc_state = _read_state(disc_dir)
    gen_state = _read_state(gen_dir)
    prefix = "electra.embeddings."
    for name in SHARED_EMBEDDING_TENSORS:
        g, d = gen_state.get(prefix + name), disc_state.get(prefix + name)
        if g is not None and d is not None and not torch.equal(g, d):
            log.warning("%s and %s have different %s; the shared embeddings take the discriminator's",
                        gen_dir, disc_dir, prefix + name)
    state = {f"discriminator.{k}": v for k, v in disc_state.items()}
    # The generator's copies of shared tensors are dropped: the discriminator's are loaded once.
    aliases = alias_keys()
    state.update({f"generator.{k}": v for k, v in gen_state.items() if f"generator.{k}" not in aliases})
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(f"{gen_dir.parent}: the generator/discriminator weights do not match the ELECTRA model "
                        f"(missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})")

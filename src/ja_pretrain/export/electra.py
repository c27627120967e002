"""ELECTRA exports: MODEL_DIR/final/ (the joint model) and `extract-electra` (the two halves).

final/ holds what a checkpoint holds for the model (config.json: the discriminator's config
naming the joint architecture, with both networks' configs and the preset; model.safetensors:
the discriminator under its own names, the generator under `generator.*`, each shared tensor
once) plus the tokenizer files, a model card and manifest.json. `AutoModelForPreTraining` loads
final/ as the trained discriminator, but the intended use is the halves `extract_electra` writes,

    OUT/generator/       ElectraForMaskedLM     (AutoModelForMaskedLM)
    OUT/discriminator/   ElectraForPreTraining  (AutoModelForPreTraining; fine-tune this one)

each by save_pretrained with the tokenizer files and a README.md model card, and
`max_position_embeddings` equal to the trained sequence length. Before a half is renamed into
place it is loaded back through the Auto class and its logits are compared with the joint
model's on a probe batch, so a written half is known to reproduce the trained network.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import transformers

from ja_pretrain.config.parameters import load_parameters
from ja_pretrain.errors import UserError
from ja_pretrain.export.card import card_text, front_matter, portable, read_card
from ja_pretrain.export.common import LICENSE_LINE, figure_rows, training_rows, usage_lines, write_final
from ja_pretrain.models.electra_checkpoint import joint_model_from_dir, read_joint_config
from ja_pretrain.tokenization.files import copy_tokenizer
from ja_pretrain.training.checkpoint import latest_checkpoint, read_state
from ja_pretrain.utils.atomic import atomic_directory, atomic_write_text
from ja_pretrain.utils.manifest import check_output_dir, file_sha256, read_manifest, write_manifest

log = logging.getLogger(__name__)

STAGE = "extract-electra"

# Preset keys that fix the networks' shapes; the others (steps, batch, lr) may differ freely.
SHAPE_KEYS = ("number-of-layers", "hidden-size", "embedding-size", "ffn-inner-hidden-size", "attention-heads",
              "generator-size", "sequence-length")


# -- MODEL_DIR/final --------------------------------------------------------------------------------
def joint_model_card(*, params: Any, options: Any, train_state: dict, last_train: dict, last_valid: dict,
                     facts: dict) -> str:
    gen_hidden, gen_heads, gen_ffn = params.generator_dims()
    lines = [
        f"# Japanese ELECTRA ({params.model_type}), joint generator + discriminator, from ja-pretrain",
        "",
        "The generator and discriminator as trained together (shared embeddings). Split them into two",
        "Hugging Face models before use:",
        "",
        "```bash",
        "ja-pretrain extract-electra --input_dir THIS_DIR --output_dir OUT",
        "```",
        "",
        "OUT/discriminator loads with `AutoModelForPreTraining` (fine-tune it: that is the ELECTRA model);",
        "OUT/generator with `AutoModelForMaskedLM`.",
        "",
        "## Model and training",
        "| setting | value |",
        "| :-- | :-- |",
        f"| preset | {params.model_type} |",
        f"| input | {portable(facts.get('input_file')) or 'n/a'} |",
        f"| discriminator layers / hidden / heads / FFN | {params.number_of_layers} / {params.hidden_size} / "
        f"{params.attention_heads} / {params.ffn_inner_hidden_size} |",
        f"| generator (size {params.generator_size}) hidden / heads / FFN | {gen_hidden} / {gen_heads} / {gen_ffn} |",
        f"| embedding size | {params.embedding_size or params.hidden_size} (shared) |",
        f"| sequence length | {params.sequence_length} |",
        *training_rows(params, train_state, f"{params.mask_percent:g}% dynamic, 85% [MASK] / 15% kept"
                       + (", whole-word (MeCab words)" if getattr(options, "whole_word_mask", False) else "")),
        f"| loss | {getattr(options, 'generator_weight', 1.0):g} x generator MLM + "
        f"{getattr(options, 'discriminator_weight', 50.0):g} x discriminator BCE |",
    ]
    if facts.get("init_from"):
        lines.append(f"| initialised from | {portable(facts['init_from'])} |")
    lines += ["", "## Figures at the final step",
              "| split | loss | generator loss | generator accuracy | discriminator loss | discriminator accuracy "
              "| precision (replaced) | recall (replaced) |",
              "| :-- | --: | --: | --: | --: | --: | --: | --: |"]
    lines += figure_rows(("loss", "generator_loss", "generator_accuracy", "discriminator_loss",
                          "discriminator_accuracy", "discriminator_precision", "discriminator_recall"),
                         last_valid, last_train)
    lines.append(LICENSE_LINE)
    return "\n".join(lines) + "\n"


def export_electra_final(objective: Any, out_dir: str | os.PathLike, *, tokenizer_dir: str | os.PathLike,
                         params: Any, options: Any, dataset_dir: str | os.PathLike, train_state: dict,
                         last_train: dict, last_valid: dict, facts: dict | None = None) -> Path:
    """Write `out_dir` (normally MODEL_DIR/final) for a trained ElectraObjective; returns the path.
    trainer_state.json is kept beside it for extract-electra's model cards."""
    facts = dict(facts or {})
    card = joint_model_card(params=params, options=options, train_state=train_state, last_train=last_train,
                            last_valid=last_valid, facts=facts)
    return write_final(out_dir, save=objective.save_model, architecture="ElectraJointModel", card=card,
                       tokenizer_dir=tokenizer_dir, params=params, options=options, dataset_dir=dataset_dir,
                       train_state=train_state, last_train=last_train, last_valid=last_valid, facts=facts,
                       keep_train_state=True, pipeline_tag=None)


# -- extract-electra --------------------------------------------------------------------------------
def resolve_joint_dir(input_dir: str | os.PathLike) -> Path:
    """The joint model dir: `input_dir` itself, its final/, or (for a MODEL_DIR) its latest checkpoint."""
    root = Path(input_dir)
    if not root.is_dir():
        raise UserError(f"--input_dir {root}: no such directory")
    if read_joint_config(root) is not None:
        return root
    if read_joint_config(root / "final") is not None:
        log.info("using %s", root / "final")
        return root / "final"
    latest = latest_checkpoint(root)
    if latest is not None and read_joint_config(latest) is not None:
        log.info("using the latest checkpoint, %s", latest)
        return latest
    if (root / "config.json").is_file():
        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        kind = (config.get("architectures") or [config.get("model_type")])[0]
        raise UserError(f"--input_dir {root}: holds a {kind} model, not a joint ELECTRA checkpoint; give a "
                        "checkpoint-STEP/ or final/ of `run-pretraining` trained with an ELECTRA preset")
    raise UserError(f"--input_dir {root}: no config.json here or in final/ or checkpoint-*/; give a checkpoint-STEP/ "
                    "or final/ of `run-pretraining` trained with an ELECTRA preset")


def check_preset(joint: dict, directory: Path, parameter_file: str | os.PathLike | None, model_type: str | None) -> Any:
    """With --model_type, the preset must give the saved networks' shapes. Returns the preset (or None)."""
    if not model_type:
        if parameter_file:
            raise UserError("--parameter_file needs --model_type (the preset name within it)")
        return None

    params = load_parameters(model_type, parameter_file)
    if not params.is_electra:
        raise UserError(f"--model_type {model_type}: not an ELECTRA preset (it has no 'generator-size')")
    saved = joint.get("preset") or {}
    ours = params.to_json_dict()
    saved.setdefault("embedding-size", saved.get("hidden-size"))
    ours.setdefault("embedding-size", ours.get("hidden-size"))
    differ = [f"{k} {ours.get(k)} (checkpoint {saved.get(k)})" for k in SHAPE_KEYS
              if k in saved and str(saved.get(k)) != str(ours.get(k))]
    if differ:
        raise UserError(f"--model_type {model_type} does not describe {directory} (trained as "
                        f"'{joint.get('model_type')}'): {', '.join(differ)}; give the preset it was trained with, "
                        "or leave --model_type out to use the one saved with the checkpoint")
    return params


def find_tokenizer_dir(joint_dir: Path, tokenizer_dir: str | os.PathLike | None) -> Path:
    if tokenizer_dir:
        path = Path(tokenizer_dir)
        if not (path / "tokenizer_config.json").is_file():
            raise UserError(f"--tokenizer_dir {path}: no tokenizer_config.json; give the tokenizer the model was trained with")
        return path
    recorded = read_state(joint_dir, missing_ok=True).get("tokenizer_dir")
    for candidate in (joint_dir, joint_dir.parent / "final", Path(recorded) if recorded else None):
        if candidate is not None and (candidate / "tokenizer_config.json").is_file():
            return candidate
    raise UserError(f"--input_dir {joint_dir}: no tokenizer files there or in {joint_dir.parent / 'final'}; "
                    "pass --tokenizer_dir (the tokenizer the model was trained with)")


def half_model_card(*, role: str, architecture: str, auto: str, joint: dict, source: Path, state: dict) -> str:
    preset = joint.get("preset") or {}
    config = joint[role]
    use = ("Fine-tune this model for downstream tasks: it is the ELECTRA model proper."
           if role == "discriminator" else
           "The masked-LM generator that produced the replacements during training; mainly useful to "
           "continue pretraining or to fill masks.")
    front = front_matter(pipeline_tag="fill-mask" if role == "generator" else None,
                         datasets=(read_card(source)[0] or {}).get("datasets") or [])
    return card_text(front, "\n".join([
        f"# Japanese ELECTRA {role} ({joint.get('model_type') or 'custom preset'}), from ja-pretrain",
        "",
        f"An `{architecture}` extracted by `ja-pretrain extract-electra` from `{portable(str(source.resolve()))}`. {use}",
        "",
        *usage_lines(auto),
        "",
        "| setting | value |",
        "| :-- | :-- |",
        f"| preset | {joint.get('model_type')} |",
        f"| layers / hidden / heads / FFN | {config['num_hidden_layers']} / {config['hidden_size']} / "
        f"{config['num_attention_heads']} / {config['intermediate_size']} |",
        f"| embedding size | {config['embedding_size']} (shared by generator and discriminator in training) |",
        f"| max positions (trained sequence length) | {config['max_position_embeddings']} |",
        f"| vocabulary | {config['vocab_size']} |",
        f"| generator size | {preset.get('generator-size', 'n/a')} |",
        f"| steps | {state.get('step', 'n/a')} |",
        f"| tokens seen | {state.get('tokens_seen', 'n/a')} |",
        "",
        LICENSE_LINE.strip(),
        "",
    ]))


def _probe_inputs(config: Any):
    generator = torch.Generator().manual_seed(0)
    length = min(32, config.max_position_embeddings)
    ids = torch.randint(5, config.vocab_size, (2, length), generator=generator) if config.vocab_size > 5 else \
        torch.randint(0, config.vocab_size, (2, length), generator=generator)
    attention = torch.ones_like(ids)
    attention[1, length // 2:] = 0
    return {"input_ids": ids, "attention_mask": attention, "token_type_ids": torch.zeros_like(ids)}


def _verify(saved_dir: Path, net: Any, auto_name: str, role: str) -> float:
    """Load `saved_dir` through the Auto class; its logits must equal the joint model's half."""
    loaded = getattr(transformers, auto_name).from_pretrained(saved_dir)
    loaded.eval()
    net.eval()
    probe = _probe_inputs(net.config)
    with torch.no_grad():
        ours = net(**probe).logits
        theirs = loaded(**probe).logits
    if type(loaded).__name__ != type(net).__name__ or ours.shape != theirs.shape:
        raise RuntimeError(f"{role}: {auto_name} loaded a {type(loaded).__name__}, not a {type(net).__name__}")
    diff = float((ours - theirs).abs().max())
    if diff > 1e-5:
        raise RuntimeError(f"{role}: the saved model's logits differ from the trained model's by {diff:g}")
    return diff


def extract_electra(input_dir: str | os.PathLike, output_dir: str | os.PathLike, *,
                    parameter_file: str | os.PathLike | None = None, model_type: str | None = None,
                    generator: bool = True, discriminator: bool = True,
                    tokenizer_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Split a joint ELECTRA checkpoint (or final/) into OUT/generator and OUT/discriminator.

    Returns {"generator": path, "discriminator": path} for the halves written.
    """

    if not (generator or discriminator):
        raise UserError("nothing to extract: give --generator and/or --discriminator (or neither, for both)")
    started = time.perf_counter()
    joint_dir = resolve_joint_dir(input_dir)
    joint = read_joint_config(joint_dir)
    check_preset(joint, joint_dir, parameter_file, model_type)
    tokenizer = find_tokenizer_dir(joint_dir, tokenizer_dir)
    out = Path(output_dir)
    if out.resolve() == joint_dir.resolve():
        raise UserError(f"--output_dir {out}: is the checkpoint itself; choose another directory")
    check_output_dir(out, (STAGE,), "--output_dir")
    model, joint = joint_model_from_dir(joint_dir)
    model.eval()
    state = read_state(joint_dir, missing_ok=True)
    roles = [(r, net, arch, auto) for r, net, arch, auto, wanted in (
        ("generator", model.generator, "ElectraForMaskedLM", "AutoModelForMaskedLM", generator),
        ("discriminator", model.discriminator, "ElectraForPreTraining", "AutoModelForPreTraining", discriminator),
    ) if wanted]
    weights_sha256 = _sha256(joint_dir / "model.safetensors")
    kept = _halves_to_keep(out, weights_sha256, {role for role, *_ in roles})
    max_diff: dict[str, float] = {}
    # OUT is replaced whole (halves and manifest together): a kill part-way leaves the earlier
    # output as it was, never one half from another checkpoint under a manifest that says done.
    with atomic_directory(out) as tmp:
        for role in kept:
            shutil.copytree(out / role, tmp / role)
        for role, net, architecture, auto in roles:
            half = tmp / role
            half.mkdir()
            net.config.architectures = [architecture]
            net.save_pretrained(half)
            copy_tokenizer(tokenizer, half)
            atomic_write_text(half / "README.md", half_model_card(
                role=role, architecture=architecture, auto=auto, joint=joint, source=joint_dir, state=state))
            max_diff[role] = _verify(half, net, auto, role)
            log.info("built %s (%s)", out / role, architecture)
        write_manifest(
            tmp, stage=STAGE,
            inputs={"checkpoint": str(joint_dir), "weights_sha256": weights_sha256},
            options={"generator": generator or "generator" in kept,
                     "discriminator": discriminator or "discriminator" in kept,
                     "model_type": joint.get("model_type")},
            counts={"step": state.get("step"), "tokens_seen": state.get("tokens_seen")},
            timings={"total": round(time.perf_counter() - started, 3)},
            extra={"verified_max_abs_logit_diff": max_diff},
        )
    written = {role: out / role for role, *_ in roles}
    return written


def _halves_to_keep(out: Path, weights_sha256: str, writing: set[str]) -> list[str]:
    """Halves of an earlier extraction of the same checkpoint that this run does not rewrite
    (`--generator` after `--discriminator` into one OUT keeps both); from another checkpoint, none."""
    earlier = read_manifest(out) if out.is_dir() else None
    if not earlier or earlier.get("inputs", {}).get("weights_sha256") != weights_sha256:
        return []
    return [role for role in ("generator", "discriminator")
            if role not in writing and earlier.get("options", {}).get(role) and (out / role).is_dir()]


def _sha256(path: Path) -> str:
    return file_sha256(path) if path.is_file() else ""

"""ELECTRA pretraining: a small masked-LM generator and a replaced-token-detection discriminator.

The two networks are plain transformers models (`ElectraForMaskedLM`, `ElectraForPreTraining`),
so what we train is exactly what `extract-electra` exports and what users load with the Auto
classes. They share one embedding module (word, position and token-type tables and their
LayerNorm), and the generator's output layer is the word-embedding matrix, as in the ELECTRA
paper (Clark et al., 2020, section 3.2). Each network keeps its own `embeddings_project` from
`embedding-size` to its hidden size, which transformers creates when the two differ.

One step:
1. mask 15% (the preset's `mask-percent`) of the real tokens, 85% as [MASK] and 15% unchanged
   (no random tokens: the generator provides the replacements);
2. run the generator body on the masked input and its head only at the masked positions (with a
   32k vocabulary, the head and its softmax over every position are a large share of a small
   model's work, and they are wasted on the 85% of positions that have no label);
3. draw a replacement at each masked position from the generator's softmax by Gumbel-max, in
   fp32 and without gradient (the discriminator's loss does not train the generator);
4. the discriminator reads the original sequence with those replacements and labels each real
   token replaced (sampled != original; a sample equal to the original counts as original);
5. loss = generator_weight x generator MLM + discriminator_weight x discriminator BCE over real
   tokens (1 and 50 by default, the paper's lambda; `ObjectiveOptions` sets them).

The objective returns loss *sums* and *counts* per term, so that a distributed trainer can
divide by the global count and a step equals the single-process step on all ranks' samples.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.errors import UserError
from ja_pretrain.models.encoder_config import shared_config_fields
from ja_pretrain.models.selected_output import encode_selected, encoder_flops
from ja_pretrain.training.masking import IGNORE_INDEX, MaskNoise, mask_tokens
from ja_pretrain.training.objective import Objective, ObjectiveOptions, ObjectiveOutput

log = logging.getLogger(__name__)

# ELECTRA's masking: of the chosen tokens 85% become [MASK], 15% stay; none random.
ELECTRA_REPLACE_PROBS = (0.85, 0.15, 0.0)
JOINT_ARCHITECTURE = "ElectraJointModel"  # config.json "architectures" of a joint checkpoint
JOINT_KEY = "ja_pretrain_electra"  # config.json entry holding both configs and the preset
# Config fields that fix the shape of the weights: a checkpoint must agree on all of them.
SHAPE_FIELDS = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size")
# The shared module's tensors, relative to `electra.embeddings.`
SHARED_EMBEDDING_TENSORS = ("word_embeddings.weight", "position_embeddings.weight",
                            "token_type_embeddings.weight", "LayerNorm.weight", "LayerNorm.bias")


def electra_configs(params: ModelParameters, special_ids: dict[str, int], vocab_size: int,
                    options: ObjectiveOptions | None = None) -> tuple[ElectraConfig, ElectraConfig]:
    """(generator, discriminator) configs for a preset.

    The generator keeps the discriminator's depth and embedding size and scales hidden size,
    heads and FFN by `generator-size`; `max_position_embeddings` is the trained sequence length,
    so the exported models say what they were trained for.
    """
    if not params.is_electra:
        raise UserError(f"preset '{params.model_type}' is not an ELECTRA preset (it has no 'generator-size')")
    options = options or ObjectiveOptions()
    gen_hidden, gen_heads, gen_ffn = params.generator_dims()
    common = dict(embedding_size=params.embedding_size or params.hidden_size,
                  **shared_config_fields(params, special_ids, vocab_size, options))
    generator = ElectraConfig(hidden_size=gen_hidden, num_attention_heads=gen_heads, intermediate_size=gen_ffn,
                              architectures=["ElectraForMaskedLM"], **common)
    discriminator = ElectraConfig(hidden_size=params.hidden_size, num_attention_heads=params.attention_heads,
                                  intermediate_size=params.ffn_inner_hidden_size,
                                  architectures=["ElectraForPreTraining"], **common)
    return generator, discriminator


def gumbel_max_sample(logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """One draw per row from softmax(logits): argmax(logits + Gumbel noise), in fp32, no gradient.

    `uniforms` holds fp32 draws from [0, 1), one per logit; -log(-log(u)) is Gumbel noise. The
    same distribution as multinomial sampling without normalising; fp32 because bf16 logits and
    noise round enough to skew the draw toward the top few tokens.
    """
    with torch.no_grad():
        # -log(u) is Exp(1) and > 0 (u < 1); the clamp keeps u = 0 from giving an infinite score.
        exponential = uniforms.clamp_(min=torch.finfo(torch.float32).tiny).log_().neg_()
        # logits + Gumbel noise = logits - log(Exp(1))
        return torch.argmax(logits.detach().float() - exponential.log_(), dim=-1)


def row_uniforms(per_row: list[int], seeds: list[int], width: int, device: torch.device) -> torch.Tensor:
    """[sum(per_row), width] uniforms; row r's `per_row[r]` lines come from a generator seeded
    with `seeds[r]`, so a sequence draws the same noise whichever rank or batch it is in."""
    out = torch.empty((sum(per_row), width), dtype=torch.float32, device=device)
    start = 0
    for count, seed in zip(per_row, seeds, strict=True):
        if count:
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
            out[start:start + count].uniform_(generator=generator)
            start += count
    return out


class ElectraJointModel(nn.Module):
    """Generator + discriminator with one shared embedding module: the model we train.

    `generator` and `discriminator` are complete transformers models; the generator's
    `electra.embeddings` *is* the discriminator's, and its output layer's weight is the word
    embedding matrix. In `state_dict()` the shared tensors appear once, under
    `discriminator.electra.embeddings.*` (safetensors refuses aliased tensors, and a reload that
    found two copies would untie them); `load_state_dict` fills the generator's aliases back in.
    """

    def __init__(self, generator_config: ElectraConfig, discriminator_config: ElectraConfig):
        super().__init__()
        for key in ("vocab_size", "embedding_size", "max_position_embeddings", "type_vocab_size", "pad_token_id"):
            g, d = getattr(generator_config, key), getattr(discriminator_config, key)
            if g != d:
                raise UserError(f"generator and discriminator configs differ in {key} ({g} vs {d}); "
                                "they must match to share the embeddings")
        self.discriminator = ElectraForPreTraining(discriminator_config)
        self.generator = ElectraForMaskedLM(generator_config)
        self.generator.electra.embeddings = self.discriminator.electra.embeddings
        self.generator.tie_weights()  # re-points generator_lm_head.weight at the shared word embeddings
        if self.generator.generator_lm_head.weight is not self.shared_embeddings.word_embeddings.weight:
            raise RuntimeError("transformers did not tie the generator's output layer to the word embeddings; "
                               "check generator_config.tie_word_embeddings")
        self._register_state_dict_hook(_drop_aliases)
        self.register_load_state_dict_pre_hook(_fill_aliases)

    @property
    def shared_embeddings(self) -> nn.Module:
        return self.discriminator.electra.embeddings

    def joint_config(self, params: ModelParameters | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """config.json of a joint checkpoint: the discriminator's config (so generic readers see
        an ELECTRA model of the trained size) plus both configs and the preset under JOINT_KEY."""
        config = self.discriminator.config.to_dict()
        config["architectures"] = [JOINT_ARCHITECTURE]
        config[JOINT_KEY] = {
            "generator": self.generator.config.to_dict(),
            "discriminator": self.discriminator.config.to_dict(),
            "preset": params.to_json_dict() if params is not None else None,
            "model_type": params.model_type if params is not None else None,
            **(extra or {}),
        }
        return config


def alias_keys(prefix: str = "") -> dict[str, str]:
    """Generator state keys that alias a discriminator tensor -> that tensor's key."""
    aliases = {f"{prefix}generator.generator_lm_head.weight":
               f"{prefix}discriminator.electra.embeddings.word_embeddings.weight"}
    for name in SHARED_EMBEDDING_TENSORS:
        aliases[f"{prefix}generator.electra.embeddings.{name}"] = f"{prefix}discriminator.electra.embeddings.{name}"
    return aliases


def _drop_aliases(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    for alias in alias_keys(prefix):
        state_dict.pop(alias, None)


def _fill_aliases(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    for alias, source in alias_keys(prefix).items():
        if alias not in state_dict and source in state_dict:
            state_dict[alias] = state_dict[source]


def row_seeds(noise: MaskNoise) -> list[int]:
    """A seed per row for the generator's samples, taken from that row's mask noise.

    ELECTRA masking draws no random tokens, so `noise.random_token` is free to use. The samples
    then depend only on (sequence, noise), as the objective contract asks: a resumed run and
    every held-out evaluation draw the same replacements as before, and a sequence is corrupted
    the same way on whichever rank it lands, so a distributed step equals the single-process one.
    """
    bits = (noise.random_token[:, :3].double() * (1 << 21)).long()
    return ((bits[:, 0] << 42) | (bits[:, 1] << 21) | bits[:, 2]).tolist()


class ElectraObjective(Objective):
    """The ELECTRA loss on an `ElectraJointModel`; see `ja_pretrain.training.objective`.

    Loss terms: "generator" (cross-entropy summed over masked tokens) and "discriminator"
    (binary cross-entropy summed over real tokens, i.e. not padding; [CLS]/[SEP] included as in
    the reference implementation). Metrics: generator accuracy; discriminator accuracy over real
    tokens, precision and recall of the "replaced" class; replaced fraction of real tokens.
    """

    kind = "electra"

    def __init__(self, model: ElectraJointModel, special_ids: dict[str, int], mask_probability: float,
                 whole_word_mask: bool, generator_weight: float = 1.0, discriminator_weight: float = 50.0,
                 params: ModelParameters | None = None):
        super().__init__()
        self.model = model
        self.params = params
        self.loss_weights = {"generator": float(generator_weight), "discriminator": float(discriminator_weight)}
        self.mask_token_id = special_ids["mask"]
        self.first_regular_id = max(special_ids.values()) + 1
        self.mask_probability = mask_probability
        self.whole_word_mask = whole_word_mask

    # -- data -> inputs ---------------------------------------------------------------------
    def prepare(self, batch: dict, noise: MaskNoise) -> dict[str, Any]:
        input_ids = torch.from_numpy(batch["input_ids"]).long()
        special = torch.from_numpy(batch["special_tokens_mask"]).bool()
        word_start = torch.from_numpy(batch["word_start"]).bool() if self.whole_word_mask else None
        masked, labels = mask_tokens(
            input_ids, special, word_start,
            mask_probability=self.mask_probability, mask_token_id=self.mask_token_id,
            vocab_size=self.model.generator.config.vocab_size, replace_probs=ELECTRA_REPLACE_PROBS,
            whole_word=self.whole_word_mask, noise=noise, random_token_low=self.first_regular_id,
        )
        # Positions found here on the CPU, so the device never has to report how many there are.
        positions = (labels.flatten() != IGNORE_INDEX).nonzero().squeeze(1)
        attention_mask = torch.from_numpy(batch["attention_mask"]).long()
        return {
            "input_ids": input_ids,
            "masked_input_ids": masked,
            "masked_positions": positions,
            # All-ones masks are dropped: SDPA then runs its fastest unmasked kernel.
            "attention_mask": None if bool(attention_mask.all()) else attention_mask,
            "token_type_ids": torch.from_numpy(batch["token_type_ids"]).long(),
            # Counts travel with the batch: creating them on a GPU in forward would wait for it.
            "masked_count": torch.tensor(positions.numel(), dtype=torch.long),
            "real_tokens": torch.tensor(int(attention_mask.sum()), dtype=torch.long),
            # Per row: how many masked tokens, and the seed of its replacement draws.
            "row_masked": torch.bincount(positions // input_ids.shape[1], minlength=input_ids.shape[0]).tolist(),
            "row_seeds": row_seeds(noise),
        }

    def loss_counts(self, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"generator": inputs["masked_count"].detach().clone(),
                "discriminator": inputs["real_tokens"].detach().clone()}

    # -- the objective --------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, masked_input_ids: torch.Tensor, masked_positions: torch.Tensor,
                attention_mask: torch.Tensor | None, token_type_ids: torch.Tensor | None,
                masked_count: torch.Tensor, real_tokens: torch.Tensor, row_masked: list[int],
                row_seeds: list[int]) -> ObjectiveOutput:
        generator, discriminator = self.model.generator, self.model.discriminator
        flat_ids = input_ids.flatten()
        targets = flat_ids.index_select(0, masked_positions)

        picked = encode_selected(generator.electra, masked_positions, masked_input_ids, attention_mask, token_type_ids)
        # fp32 once (a no-op without autocast) for the loss, the draws and the accuracy.
        gen_logits = generator.generator_lm_head(generator.generator_predictions(picked)).float()
        gen_sum = F.cross_entropy(gen_logits, targets, reduction="sum")

        uniforms = row_uniforms(row_masked, row_seeds, gen_logits.shape[-1], gen_logits.device)
        sampled = gumbel_max_sample(gen_logits, uniforms)
        corrupted = flat_ids.index_copy(0, masked_positions, sampled).view_as(input_ids)
        replaced = corrupted != input_ids

        disc_logits = discriminator(corrupted, attention_mask=attention_mask,
                                    token_type_ids=token_type_ids).logits.float()
        per_token = F.binary_cross_entropy_with_logits(disc_logits, replaced.float(), reduction="none")
        real = torch.ones_like(replaced) if attention_mask is None else attention_mask.bool()
        disc_sum = (per_token * real).sum()

        with torch.no_grad():
            predicted = (disc_logits > 0) & real
            replaced = replaced & real
            true_positive = (predicted & replaced).sum()
            replaced_count = replaced.sum()
            metrics = {
                "generator_accuracy": ((gen_logits.argmax(dim=-1) == targets).sum(), masked_count),
                "discriminator_accuracy": (((predicted == replaced) & real).sum(), real_tokens),
                "discriminator_precision": (true_positive, predicted.sum()),
                "discriminator_recall": (true_positive, replaced_count),
                "replaced_fraction": (replaced_count, real_tokens),
            }
        return ObjectiveOutput(sums={"generator": gen_sum, "discriminator": disc_sum},
                               counts={"generator": masked_count, "discriminator": real_tokens},
                               metrics=metrics)

    def flops(self, inputs: dict[str, Any]) -> float:
        """Matmul FLOPs of forward + backward (3x forward) of both networks; the generator's head
        at masked positions only. Sampling and the losses are not matmuls and are left out."""
        rows, length = inputs["input_ids"].shape
        masked = inputs["masked_positions"].numel()
        gen, disc = self.model.generator.config, self.model.discriminator.config
        e, v = disc.embedding_size, disc.vocab_size
        tokens = rows * length
        bodies = encoder_flops(gen, length, tokens, read=masked) + encoder_flops(disc, length, tokens, read=tokens)
        gen_head = masked * 2 * (gen.hidden_size * e + e * v)
        disc_head = tokens * 2 * (disc.hidden_size * disc.hidden_size + disc.hidden_size)
        return 3.0 * (bodies + gen_head + disc_head)

    # -- weights ----------------------------------------------------------------------------------
    def save_model(self, directory: str | os.PathLike) -> None:
        save_joint_model(self.model, directory, self.params,
                         extra={"generator_weight": self.loss_weights["generator"],
                                "discriminator_weight": self.loss_weights["discriminator"]})

    def load_model(self, directory: str | os.PathLike) -> None:
        load_electra_weights(self.model, directory)


# -- files ----------------------------------------------------------------------------------------
DISCRIMINATOR_PREFIX = "discriminator."


def save_joint_model(model: ElectraJointModel, directory: str | os.PathLike, params: ModelParameters | None = None,
                     extra: dict[str, Any] | None = None) -> None:
    """DIR/config.json (see `ElectraJointModel.joint_config`) + DIR/model.safetensors (joint state).

    The discriminator's tensors are stored under its own names (`electra.*`,
    `discriminator_predictions.*`) and the generator's under `generator.*`: with the
    discriminator's config in config.json, `AutoModelForPreTraining.from_pretrained(DIR)` then
    loads the trained discriminator (warning about the generator's keys) instead of a random one.
    """
    from safetensors.torch import save_file

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
    from safetensors.torch import load_file

    weights = directory / "model.safetensors"
    if weights.is_file():
        return load_file(str(weights))
    legacy = directory / "pytorch_model.bin"
    if legacy.is_file():
        return torch.load(legacy, map_location="cpu", weights_only=True)
    raise UserError(f"{directory}: no model.safetensors (or pytorch_model.bin); the save is incomplete")


def _check_shape(directory: Path, saved: dict[str, Any], ours: ElectraConfig, what: str) -> None:
    if saved.get("model_type") != "electra":
        raise UserError(f"{directory}: holds a {saved.get('model_type')!r} model, not ELECTRA; "
                        "use an ELECTRA preset with an ELECTRA model")
    mine = ours.to_dict()
    differ = [f"{k} {saved.get(k)} (ours {mine[k]})" for k in SHAPE_FIELDS if saved.get(k) != mine[k]]
    if differ:
        raise UserError(f"{directory}: {what} of another shape: {', '.join(differ)}; use the --model_type/"
                        "--parameter_file and tokenizer it was trained with")


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
        _check_shape(directory, joint["generator"], model.generator.config, "generator")
        _check_shape(directory, joint["discriminator"], model.discriminator.config, "discriminator")
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
        _check_shape(path, saved, net.config, what)
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


def build_electra_model(params: ModelParameters, special_ids: dict[str, int], vocab_size: int,
                        options: ObjectiveOptions | None = None) -> ElectraJointModel:
    return ElectraJointModel(*electra_configs(params, special_ids, vocab_size, options))


def build_electra_objective(params: ModelParameters, special_ids: dict[str, int], vocab_size: int,
                            options: ObjectiveOptions | None = None) -> ElectraObjective:
    options = options or ObjectiveOptions()
    model = build_electra_model(params, special_ids, vocab_size, options)
    return ElectraObjective(model, special_ids, params.mask_probability, options.whole_word_mask,
                            generator_weight=options.generator_weight,
                            discriminator_weight=options.discriminator_weight, params=params)

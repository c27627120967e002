"""Model presets in the first seed's `parameter.json` schema, loaded into a typed, validated object.

The file maps a preset name (`--model_type`) to its keys, spelled as in the seed:

    "bert-base-dist": {"number-of-layers": 12, "hidden-size": 768, "sequence-length": 512,
                       "ffn-inner-hidden-size": 3072, "attention-heads": 12,
                       "warmup-steps": 10000, "learning-rate": 1e-4,
                       "batch-size": {"0": 80, "1": 80, "2": 48, "3": 48},
                       "train-steps": 1000000, "save-steps": 50000, "logging-steps": 5000}

`batch-size` is the batch of one node per optimizer step (before gradient accumulation), split
evenly over that node's processes; a dict gives each node (by `--node_rank`) its own.
ELECTRA presets add `embedding-size`, `generator-size` (a fraction string such as "1/4": the
generator's hidden size, heads and FFN are the discriminator's times this) and `mask-percent`.

ModernBERT presets say `"model-family": "modernbert"` and add `local-attention` (the window of
the sliding-window layers in tokens, as transformers' `local_attention`), `global-attention-every`
(every Nth layer, counting from the first, attends to the whole row), `global-rope-theta` and
`local-rope-theta` (RoPE bases of the two kinds of layer) and `max-position-embeddings` (the
longest input the exported model takes; RoPE has no position table, so this is not a weight
shape). `mask-percent` defaults to 15 for BERT and ELECTRA and to 30 for ModernBERT, as the
ModernBERT recipe masks.
"""

from __future__ import annotations

import dataclasses
import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

from ja_pretrain.errors import UserError
from ja_pretrain.resources import resource_path
from ja_pretrain.utils.paths import require_file

DEFAULT_PARAMETER_FILE = "parameter.json"
FAMILIES = ("bert", "electra", "modernbert")
DEFAULT_MASK_PERCENT = {"bert": 15.0, "electra": 15.0, "modernbert": 30.0}
# ModernBERT keys and the values a preset that leaves them out gets (transformers' ModernBERT
# defaults; max-position-embeddings falls back to the preset's sequence length)
MODERNBERT_DEFAULTS = {"local-attention": 128, "global-attention-every": 3, "global-rope-theta": 160_000.0,
                       "local-rope-theta": 10_000.0}

# JSON key -> (attribute, accepted JSON types, required)
_KEYS: dict[str, tuple[str, tuple[type, ...], bool]] = {
    "number-of-layers": ("number_of_layers", (int,), True),
    "hidden-size": ("hidden_size", (int,), True),
    "sequence-length": ("sequence_length", (int,), True),
    "ffn-inner-hidden-size": ("ffn_inner_hidden_size", (int,), True),
    "attention-heads": ("attention_heads", (int,), True),
    "warmup-steps": ("warmup_steps", (int,), True),
    "learning-rate": ("learning_rate", (float, int), True),
    "batch-size": ("batch_size", (int, dict), True),
    "train-steps": ("train_steps", (int,), True),
    "save-steps": ("save_steps", (int,), True),
    "logging-steps": ("logging_steps", (int,), True),
    "accumulation-steps": ("accumulation_steps", (int,), False),
    "embedding-size": ("embedding_size", (int,), False),
    "generator-size": ("generator_size", (str,), False),
    "mask-percent": ("mask_percent", (int, float), False),
    "model-family": ("model_family", (str,), False),
    "max-position-embeddings": ("max_position_embeddings", (int,), False),
    "local-attention": ("local_attention", (int,), False),
    "global-attention-every": ("global_attention_every", (int,), False),
    "global-rope-theta": ("global_rope_theta", (float, int), False),
    "local-rope-theta": ("local_rope_theta", (float, int), False),
}
MODERNBERT_KEYS = ("max-position-embeddings", *MODERNBERT_DEFAULTS)


@dataclasses.dataclass(frozen=True)
class ModelParameters:
    model_type: str
    number_of_layers: int
    hidden_size: int
    sequence_length: int
    ffn_inner_hidden_size: int
    attention_heads: int
    warmup_steps: int
    learning_rate: float
    batch_size: int | dict[str, int]
    train_steps: int
    save_steps: int
    logging_steps: int
    accumulation_steps: int = 1
    embedding_size: int | None = None
    generator_size: Fraction | None = None
    mask_percent: float = 15.0
    model_family: str | None = None  # as written in the preset; `family` is the one in effect
    max_position_embeddings: int | None = None
    local_attention: int | None = None
    global_attention_every: int | None = None
    global_rope_theta: float | None = None
    local_rope_theta: float | None = None

    @property
    def is_electra(self) -> bool:
        return self.generator_size is not None

    @property
    def family(self) -> str:
        """bert, electra or modernbert: `model-family`, else electra where there is a generator."""
        return self.model_family or ("electra" if self.is_electra else "bert")

    @property
    def mask_probability(self) -> float:
        return self.mask_percent / 100.0

    def node_batch_size(self, node_rank: int) -> int:
        """The batch of node `node_rank` per optimizer step (before accumulation)."""
        if isinstance(self.batch_size, int):
            return self.batch_size
        key = str(node_rank)
        if key not in self.batch_size:
            raise UserError(
                f"preset '{self.model_type}': key 'batch-size' has no entry for node_rank {node_rank} "
                f"(it has nodes {sorted(self.batch_size, key=int)}); add \"{key}\": N to the batch-size dict"
            )
        return self.batch_size[key]

    def global_batch_size(self, num_nodes: int) -> int:
        if isinstance(self.batch_size, int):
            return self.batch_size * num_nodes
        return sum(self.node_batch_size(n) for n in range(num_nodes))

    def generator_dims(self) -> tuple[int, int, int]:
        """(hidden, heads, ffn) of the ELECTRA generator: the discriminator's scaled by generator-size."""
        if self.generator_size is None:
            raise UserError(f"preset '{self.model_type}' is not an ELECTRA preset (no 'generator-size')")
        scale = self.generator_size
        hidden = self.hidden_size * scale
        heads = self.attention_heads * scale
        ffn = self.ffn_inner_hidden_size * scale
        for name, value in (("hidden-size", hidden), ("attention-heads", heads), ("ffn-inner-hidden-size", ffn)):
            if value.denominator != 1 or value < 1:
                raise UserError(
                    f"preset '{self.model_type}': key 'generator-size' {scale} times '{name}' is not a whole number"
                )
        return int(hidden), int(heads), int(ffn)

    def replace(self, **changes: Any) -> "ModelParameters":
        return dataclasses.replace(self, **changes)

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, (attr, _, _required) in _KEYS.items():
            value = getattr(self, attr)
            if value is None:
                continue
            out[key] = str(value) if isinstance(value, Fraction) else value
        return out


def default_parameter_file() -> Path:
    return resource_path(DEFAULT_PARAMETER_FILE)


def _parse_fraction(preset: str, text: str) -> Fraction:
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError) as err:
        raise UserError(
            f"preset '{preset}': key 'generator-size' must be a fraction such as \"1/4\", got {text!r}"
        ) from err
    if not 0 < value <= 1:
        raise UserError(f"preset '{preset}': key 'generator-size' must be in (0, 1], got {text!r}")
    return value


def _check_batch_dict(preset: str, value: dict[str, Any]) -> dict[str, int]:
    if not value:
        raise UserError(f"preset '{preset}': key 'batch-size' is an empty dict; give an int or {{\"0\": N, ...}}")
    out: dict[str, int] = {}
    for node, size in value.items():
        if not str(node).isdigit():
            raise UserError(f"preset '{preset}': key 'batch-size' has node key {node!r}; node keys are ranks \"0\", \"1\", ...")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise UserError(f"preset '{preset}': key 'batch-size' node {node!r} must be a positive int, got {size!r}")
        out[str(int(node))] = size
    missing = [str(n) for n in range(len(out)) if str(n) not in out]
    if missing:
        raise UserError(f"preset '{preset}': key 'batch-size' must name nodes 0..{len(out) - 1}; missing {missing}")
    return out


def parse_preset(preset: str, raw: Any) -> ModelParameters:
    if not isinstance(raw, dict):
        raise UserError(f"preset '{preset}': must be a JSON object of keys, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise UserError(f"preset '{preset}': unknown key {unknown[0]!r}; known keys: {', '.join(_KEYS)}")
    values: dict[str, Any] = {"model_type": preset}
    for key, (attr, types, required) in _KEYS.items():
        if key not in raw:
            if required:
                raise UserError(f"preset '{preset}': missing key '{key}'")
            continue
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = " or ".join("object" if t is dict else t.__name__ for t in types)
            raise UserError(f"preset '{preset}': key '{key}' must be {wanted}, got {json.dumps(value)}")
        if key == "batch-size" and isinstance(value, dict):
            value = _check_batch_dict(preset, value)
        elif key == "generator-size":
            value = _parse_fraction(preset, value)
        elif key == "learning-rate":
            value = float(value)
            if not value > 0:
                raise UserError(f"preset '{preset}': key 'learning-rate' must be > 0, got {value}")
        elif key == "mask-percent":
            value = float(value)
            if not 0 < value < 100:
                raise UserError(f"preset '{preset}': key 'mask-percent' is a percentage in (0, 100), got {value}")
        elif key == "model-family":
            if value not in FAMILIES:
                raise UserError(f"preset '{preset}': key 'model-family' is one of {', '.join(FAMILIES)}, got {value!r}")
        elif key.endswith("rope-theta"):
            value = float(value)
            if not value > 0:
                raise UserError(f"preset '{preset}': key '{key}' must be > 0, got {value}")
        elif isinstance(value, int) and value < (0 if key == "warmup-steps" else 1):
            raise UserError(f"preset '{preset}': key '{key}' must be positive, got {value}")
        values[attr] = value
    values.update(_family_values(preset, raw, values))
    params = ModelParameters(**values)
    if params.hidden_size % params.attention_heads:
        raise UserError(
            f"preset '{preset}': key 'hidden-size' {params.hidden_size} is not divisible by "
            f"'attention-heads' {params.attention_heads}"
        )
    if params.sequence_length < 8:
        raise UserError(f"preset '{preset}': key 'sequence-length' must be at least 8, got {params.sequence_length}")
    if params.is_electra:
        params.generator_dims()
    if params.family == "modernbert":
        _check_modernbert(preset, params)
    return params


def _family_values(preset: str, raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The family's defaults for keys the preset leaves out; a key of another family is refused."""
    family = values.get("model_family") or ("electra" if "generator_size" in values else "bert")
    if family == "electra" and values.get("model_family") and "generator_size" not in values:
        raise UserError(f"preset '{preset}': model-family electra needs key 'generator-size'")
    if family != "electra" and "generator_size" in values:
        raise UserError(f"preset '{preset}': key 'generator-size' is for ELECTRA presets, not model-family {family}")
    foreign = [k for k in MODERNBERT_KEYS if k in raw] if family != "modernbert" else (
        ["embedding-size"] if "embedding-size" in raw else [])
    if foreign:
        raise UserError(f"preset '{preset}': key '{foreign[0]}' is not one model-family {family} takes")
    out: dict[str, Any] = {}
    if "mask_percent" not in values:
        out["mask_percent"] = DEFAULT_MASK_PERCENT[family]
    if family == "modernbert":
        for key, default in MODERNBERT_DEFAULTS.items():
            attr = _KEYS[key][0]
            if attr not in values:
                out[attr] = default
        out.setdefault("max_position_embeddings", values.get("max_position_embeddings", values["sequence_length"]))
    return out


def _check_modernbert(preset: str, params: ModelParameters) -> None:
    if params.local_attention < 2 or params.local_attention % 2:
        raise UserError(f"preset '{preset}': key 'local-attention' is the window in tokens, an even number of 2 or "
                        f"more (half of it on each side), got {params.local_attention}")
    if params.max_position_embeddings < params.sequence_length:
        raise UserError(f"preset '{preset}': key 'max-position-embeddings' {params.max_position_embeddings} is shorter "
                        f"than 'sequence-length' {params.sequence_length}")
    if (params.hidden_size // params.attention_heads) % 2:
        raise UserError(f"preset '{preset}': RoPE needs an even head size; 'hidden-size' / 'attention-heads' is "
                        f"{params.hidden_size // params.attention_heads}")


def read_parameter_file(path: str | os.PathLike | None = None) -> dict[str, Any]:
    file = Path(path) if path else default_parameter_file()
    require_file(file, "--parameter_file", hint="give the parameter.json file itself")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{file}:{err.lineno}: not valid JSON ({err.msg})") from err
    if not isinstance(data, dict):
        raise UserError(f"{file}: the top level must be an object of presets")
    return data


def load_parameters(model_type: str, path: str | os.PathLike | None = None) -> ModelParameters:
    """Load and validate preset `model_type` from `path` (default: the presets shipped with ja-pretrain)."""
    data = read_parameter_file(path)
    if model_type not in data:
        where = path or "the built-in parameter.json"
        raise UserError(f"--model_type {model_type!r} is not a preset in {where}; presets: {', '.join(data)}")
    return parse_preset(model_type, data[model_type])


def list_presets(path: str | os.PathLike | None = None) -> list[str]:
    return list(read_parameter_file(path))

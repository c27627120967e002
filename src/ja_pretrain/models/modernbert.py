"""ModernBERT from a preset: transformers' own `ModernBertForMaskedLM` (so final/ loads with
`AutoModelForMaskedLM`, and every `AutoModelFor...` head fine-tunes it), and the family
interface (`MODERNBERT`) that trains and evaluates it.

What the preset sets (see `config.parameters`): depth and widths (`ffn-inner-hidden-size` is the
GLU's inner size), the window of the sliding-window layers (`local-attention`, in tokens: a
token sees `local-attention // 2` tokens on each side), which layers attend to the whole row
(every `global-attention-every`th, from the first), the RoPE base of each kind of layer, and
the longest input (`max-position-embeddings`; RoPE has no position table, so a context-extension
stage loads the weights of a shorter one unchanged). Dropout is off, as in the ModernBERT
recipe, unless the objective options ask for it.

Rows of several documents. transformers' ModernBERT builds its masks from a 2D padding mask,
so the documents of a full row would see each other (position ids restarting per document do
not stop that), and a single 4D mask would also lift the window of the sliding layers. Its
supported route is a mask per layer type, `{"full_attention": M, "sliding_attention": W}`:
`layer_masks` builds both from the document ids (W is M restricted to the window; float masks
for eager attention, boolean for SDPA). With flash-attn (an optional extra, GPU only) no mask
is built at all: `varlen_arguments` gives the packed form (`cu_seq_lens_*`, `max_length_*`) over
the flattened batch, each document (and each row's padding) a sequence of its own, and the
sliding layers pass their window to the kernel. Training on a CPU takes the same packed form to
`models.packed_attention` (through `models.cpu_ops`), which attends within each document and
scores a sliding layer's window only. Every route gives a document the outputs it has alone in
a row (tests/test_modernbert.py checks them, through local and global layers).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import ModernBertConfig, ModernBertForMaskedLM, ModernBertModel
from transformers.masking_utils import create_bidirectional_mask, create_bidirectional_sliding_window_mask

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.errors import UserError
from ja_pretrain.models.cpu_ops import ATTENTION_NAME
from ja_pretrain.models.family import ModelFamily

FULL, SLIDING = "full_attention", "sliding_attention"
# attention implementations that take the packed (varlen) arguments instead of a mask
VARLEN_IMPLEMENTATIONS = {"flash_attention_2", "flash_attention_3", "kernels-community/flash-attn",
                          "kernels-community/flash-attn3"}
# Config fields that fix the shape of the weights (the window, layer types and RoPE bases do not)
SHAPE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


def layer_types(params: ModelParameters) -> list[str]:
    """Every `global-attention-every`th layer, from the first, is global; the others slide."""
    return [FULL if i % params.global_attention_every == 0 else SLIDING for i in range(params.number_of_layers)]


def modernbert_config(params: ModelParameters, special_ids: dict[str, int], vocab_size: int, *,
                      hidden_dropout: float = 0.0, attention_dropout: float = 0.0) -> ModernBertConfig:
    cls, sep = special_ids["cls"], special_ids["sep"]
    return ModernBertConfig(
        vocab_size=vocab_size,
        hidden_size=params.hidden_size,
        intermediate_size=params.ffn_inner_hidden_size,
        num_hidden_layers=params.number_of_layers,
        num_attention_heads=params.attention_heads,
        max_position_embeddings=params.max_position_embeddings,
        local_attention=params.local_attention,
        layer_types=layer_types(params),
        rope_parameters={FULL: {"rope_type": "default", "rope_theta": params.global_rope_theta},
                         SLIDING: {"rope_type": "default", "rope_theta": params.local_rope_theta}},
        embedding_dropout=hidden_dropout,
        mlp_dropout=hidden_dropout,
        attention_dropout=attention_dropout,
        pad_token_id=special_ids.get("pad", 0),
        cls_token_id=cls, bos_token_id=cls, sep_token_id=sep, eos_token_id=sep,
        architectures=["ModernBertForMaskedLM"],
        attn_implementation="sdpa",
    )


def build_modernbert_model(params: ModelParameters, special_ids: dict[str, int], vocab_size: int, *,
                           hidden_dropout: float = 0.0, attention_dropout: float = 0.0) -> ModernBertForMaskedLM:
    return ModernBertForMaskedLM(modernbert_config(params, special_ids, vocab_size, hidden_dropout=hidden_dropout,
                                                   attention_dropout=attention_dropout))


def load_modernbert_weights(model: ModernBertForMaskedLM, directory: str | os.PathLike) -> None:
    """Load a save_pretrained ModernBERT dir into `model`. Its RoPE bases, window and length may
    differ (a context-extension stage starts from a shorter one); its shape may not."""
    directory = Path(directory)
    config_file, weights_file = directory / "config.json", directory / "model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise UserError(f"{directory}: not a model directory (needs config.json and model.safetensors)")
    saved, ours = json.loads(config_file.read_text(encoding="utf-8")), model.config.to_dict()
    if saved.get("model_type") != "modernbert":
        raise UserError(f"{directory}: holds a {saved.get('model_type')!r} model, not ModernBERT; use a ModernBERT "
                        "preset with a ModernBERT model")
    differ = [f"{k} {saved.get(k)} (ours {ours.get(k)})" for k in SHAPE_FIELDS if saved.get(k) != ours.get(k)]
    if differ:
        raise UserError(f"{directory}: model of another shape: {', '.join(differ)}; use the --model_type/"
                        "--parameter_file and tokenizer it was trained with")
    result = model.load_state_dict(load_file(str(weights_file)), strict=False)
    missing = [k for k in result.missing_keys if k != "decoder.weight"]  # tied to the embeddings
    if missing or result.unexpected_keys:
        raise UserError(f"{directory}: weights do not match the model (missing {missing[:3]}, "
                        f"unexpected {result.unexpected_keys[:3]})")


def layer_masks(document_ids: torch.Tensor, config: ModernBertConfig) -> dict[str, torch.Tensor]:
    """The attention mask of each layer type for rows of several documents (document_ids:
    (batch, length), 0 at padding): a position attends to its own document, and in the sliding
    layers only within `local_attention // 2` positions. Padding attends to padding, so no row
    of a mask is empty. (batch, 1, length, length) each: boolean (True = may attend) for SDPA and
    its kin, additive float for eager attention."""
    same = document_ids[:, None, :, None] == document_ids[:, None, None, :]
    index = torch.arange(document_ids.shape[1], device=document_ids.device)
    near = (index[:, None] - index[None, :]).abs() <= config.local_attention // 2
    masks = {FULL: same, SLIDING: same & near}
    if config._attn_implementation == "eager":  # adds the mask to the scores
        low = torch.finfo(torch.float32).min
        return {kind: torch.zeros(m.shape, dtype=torch.float32, device=m.device).masked_fill_(~m, low)
                for kind, m in masks.items()}
    return masks


def varlen_arguments(document_ids: np.ndarray) -> dict[str, Any]:
    """Flash attention's packed arguments for a (batch, length) array of document ids: the
    batch flattened, each run of one document id within a row (padding included) a sequence."""
    rows, length = document_ids.shape
    flat = document_ids.reshape(-1)
    starts = np.flatnonzero((np.arange(flat.size) % length == 0) | (flat != np.roll(flat, 1)))
    bounds = np.append(starts, flat.size)
    cu = torch.from_numpy(bounds.astype(np.int32))
    longest = int(np.diff(bounds).max())
    return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest, "max_length_k": longest}


def takes_varlen(config: ModernBertConfig) -> bool:
    """Whether the attention takes packed sequences: flash-attn's, and on a CPU ours
    (`models.cpu_ops`, `models.packed_attention`)."""
    return config._attn_implementation in VARLEN_IMPLEMENTATIONS or config._attn_implementation == ATTENTION_NAME


def use_flash_attention(model: torch.nn.Module) -> int:
    """Switch the ModernBERT configs in `model` to flash-attn's kernel where it is installed
    (`pip install ja-pretrain[flash]`, a GPU build): full rows then reach it as packed sequences
    and no mask is built. For a GPU run in bf16 or fp16 (flash-attn has no fp32 kernel); returns
    how many configs it switched (0 without flash-attn)."""
    from transformers.utils import is_flash_attn_2_available

    if not is_flash_attn_2_available():
        return 0
    switched = 0
    for module in model.modules():
        config = getattr(module, "config", None)
        if getattr(config, "model_type", None) == "modernbert" and config._attn_implementation != "flash_attention_2":
            config._attn_implementation = "flash_attention_2"
            switched += 1
    return switched


def _layer_arguments(encoder: ModernBertModel, hidden: torch.Tensor, attention_mask: torch.Tensor | None,
                     document_ids: torch.Tensor | None, varlen: dict[str, Any]) -> dict[str, Any]:
    if varlen:
        return {FULL: None, SLIDING: None}  # the kernel keeps the sequences apart
    if document_ids is not None:
        return layer_masks(document_ids, encoder.config)
    # positional: transformers renamed the second parameter (input_embeds in 5.1, inputs_embeds later)
    return {FULL: create_bidirectional_mask(encoder.config, hidden, attention_mask),
            SLIDING: create_bidirectional_sliding_window_mask(encoder.config, hidden, attention_mask)}


def encode_selected_modernbert(encoder: ModernBertModel, positions: torch.Tensor, input_ids: torch.Tensor,
                               attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                               document_ids: torch.Tensor | None = None, **varlen: Any) -> torch.Tensor:
    """`encoder(...).last_hidden_state.flatten(0, 1)[positions]`, computing the last layer's
    feed-forward block and the final norm (both row by row) at those rows only: with 30% of the
    tokens masked, that leaves 70% of the last MLP out. `document_ids` (with `position_ids`
    restarting per document) or `varlen` keep the documents of a row apart."""
    hidden = encoder.embeddings(input_ids=input_ids)
    if position_ids is None:
        position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
    masks = _layer_arguments(encoder, hidden, attention_mask, document_ids, varlen)
    rope = {kind: encoder.rotary_emb(hidden, position_ids, kind) for kind in set(encoder.config.layer_types)}
    *lower, top = encoder.layers
    for layer in lower:
        kind = layer.attention_type
        hidden = layer(hidden, attention_mask=masks[kind], position_embeddings=rope[kind], **varlen)
    kind = top.attention_type
    attended, _ = top.attn(top.attn_norm(hidden), position_embeddings=rope[kind], attention_mask=masks[kind],
                           **varlen)
    rows = (hidden + attended).flatten(0, 1).index_select(0, positions)
    return encoder.final_norm(rows + top.mlp(top.mlp_norm(rows)))


class ModernBertFamily(ModelFamily):
    name, title = "modernbert", "ModernBERT"
    takes_token_types = False
    auto_tokenizer_reads_class = False

    def build(self, params, special_ids, vocab_size, *, hidden_dropout=None, attention_dropout=None,
              next_sentence_prediction=False):
        if next_sentence_prediction:
            raise UserError(f"preset '{params.model_type}' is ModernBERT, which has no next-sentence prediction; "
                            "drop --nsp")
        return build_modernbert_model(params, special_ids, vocab_size, hidden_dropout=hidden_dropout or 0.0,
                                      attention_dropout=attention_dropout or 0.0)

    def load_weights(self, model, directory):
        load_modernbert_weights(model, directory)

    def document_inputs(self, batch: dict[str, Any], config: Any) -> dict[str, Any]:
        if "document_ids" not in batch:
            return {}
        positions = {"position_ids": torch.from_numpy(batch["position_ids"]).long()}
        if takes_varlen(config):
            return {**positions, **varlen_arguments(batch["document_ids"])}
        return {**positions, "document_ids": torch.from_numpy(batch["document_ids"]).long()}

    def encode_selected(self, model, positions, *, input_ids, attention_mask=None, position_ids=None,
                        document_ids=None, **varlen) -> torch.Tensor:
        return encode_selected_modernbert(model.model, positions, input_ids, attention_mask, position_ids, document_ids,
                                          **varlen)

    def mlm_logits(self, model, hidden):
        return model.decoder(model.head(hidden))

    def encoder_flops(self, config, length, tokens, read):
        """Every layer's projections and attention at every position, the last one's MLP at the
        read rows only. A sliding layer is counted at the window it needs (what a kernel that
        skips the rest computes), not the whole row that SDPA with a mask computes."""
        h, f = config.hidden_size, config.intermediate_size
        projections = 2 * 4 * h * h  # Wqkv and Wo
        mlp = 2 * 3 * h * f  # Wi (input and gate) and Wo
        attention = 0
        for kind in config.layer_types:
            seen = length if kind == FULL else min(length, config.local_attention + 1)
            attention += 4 * seen * h  # scores and context
        layers = config.num_hidden_layers
        return tokens * (layers * projections + attention + (layers - 1) * mlp) + read * mlp

    def card_rows(self, params):
        every = params.global_attention_every
        layers = "every layer global" if every == 1 else (
            f"every {_ordinal(every)} layer global from the first, the others a sliding window of "
            f"{params.local_attention} tokens")
        return [f"| attention | {layers} |",
                f"| RoPE base global / local | {params.global_rope_theta:g} / {params.local_rope_theta:g} |",
                f"| longest input | {params.max_position_embeddings} positions (trained at {params.sequence_length}) |"]

    def tokenizer_settings(self, params):
        # no token types in ModernBERT; inputs as long as its positions go
        return {"model_input_names": ["input_ids", "attention_mask"], "model_max_length": params.max_position_embeddings}


def _ordinal(n: int) -> str:
    return {2: "2nd", 3: "3rd"}.get(n, f"{n}th")


MODERNBERT = ModernBertFamily()

"""`evaluate_model`: held-out figures for a BERT or ModernBERT model, an ELECTRA generator and/or
discriminator.

MODEL_DIR may be a Hugging Face model dir (config.json), a training output (its final/), or an
`extract-electra` output (generator/ and discriminator/: both are evaluated, and the
discriminator is scored on replacements sampled from that generator).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import transformers
from tqdm import tqdm

from ja_pretrain.errors import UserError
from ja_pretrain.evaluation.heldout import (
    DEFAULT_MAX_SENTENCES,
    DEFAULT_SEQUENCE_LENGTH,
    HeldOutSet,
    build_heldout_set,
)
from ja_pretrain.evaluation.heldout_scoring import CORRUPTION_RANDOM, masked_lm_metrics, replaced_token_metrics
from ja_pretrain.export.model_dirs import resolve_models as resolve_model_dirs
from ja_pretrain.tokenization.files import load_saved_tokenizer, tokenizer_fingerprint
from ja_pretrain.utils.atomic import atomic_write_json
from ja_pretrain.utils.devices import resolve_device, resolve_precision
from ja_pretrain.utils.manifest import fingerprint, write_manifest

MASKED_LM = "masked-lm"
REPLACED_TOKEN_DETECTION = "replaced-token-detection"
KIND_OF_ARCHITECTURE = {
    "BertForMaskedLM": MASKED_LM,
    "BertForPreTraining": MASKED_LM,
    "ElectraForMaskedLM": MASKED_LM,
    "ElectraForPreTraining": REPLACED_TOKEN_DETECTION,
    "ModernBertForMaskedLM": MASKED_LM,
}
METRICS_NAME = "metrics.json"


def load_model(path: Path):
    config = transformers.AutoConfig.from_pretrained(path)
    architecture = (config.architectures or [None])[0]
    if architecture not in KIND_OF_ARCHITECTURE:
        known = ", ".join(KIND_OF_ARCHITECTURE)
        raise UserError(
            f"{path}/config.json: architecture {architecture!r} cannot be evaluated; expected one of {known}"
            + (" (a joint ELECTRA model: split it with `ja-pretrain extract-electra` first)" if architecture else "")
        )
    model = getattr(transformers, architecture).from_pretrained(path)
    model.eval()
    return model, architecture, KIND_OF_ARCHITECTURE[architecture]


def load_tokenizer(path: Path):
    try:
        return load_saved_tokenizer(path)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot load its tokenizer ({err}); the model dir must hold the tokenizer files") from err


def tokenizer_key(path: Path) -> str:
    """Same key = same tokenizer, so the held-out set (and its masks) can be shared."""
    return fingerprint(tokenizer_fingerprint(path))


def ordinary_token_ids(tokenizer) -> np.ndarray:
    """Ids a random replacement may take: not special, not [unusedN]."""
    special = set(tokenizer.all_special_ids)
    vocab = tokenizer.get_vocab()
    ids = [i for tok, i in vocab.items() if i not in special and not (tok.startswith("[unused") and tok.endswith("]"))]
    return np.asarray(sorted(ids), dtype=np.int64)


def evaluate_model(
    model_dir: str | os.PathLike | list[str | os.PathLike],
    corpus: str | os.PathLike,
    *,
    generator_dir: str | os.PathLike | None = None,
    seed: int = 0,
    max_sentences: int | None = DEFAULT_MAX_SENTENCES,
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
    mask_probability: float = 0.15,
    batch_size: int = 32,
    device: str = "auto",
    precision: str = "auto",
    out_dir: str | os.PathLike | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Evaluate every model under `model_dir` (one dir or a list) on `corpus` (a corpus dir's
    valid.txt or a text file); return the figures and, with `out_dir`, write OUT/metrics.json
    and OUT/manifest.json. Models are keyed by their dir name ("final" becomes its parent's
    name); a name seen twice is prefixed with its parent's. `device` and `precision` as
    run-pretraining's (utils.devices): a GPU in bf16 when there is one."""
    started = time.time()
    on = resolve_device(device)
    precision = resolve_precision(precision, on)
    if batch_size < 1:
        raise UserError(f"--batch-size must be positive, got {batch_size}")
    model_dirs = model_dir if isinstance(model_dir, (list, tuple)) else [model_dir]
    loaded = []
    for directory in model_dirs:
        targets = resolve_model_dirs(directory)
        pair_generator = next((p for label, p in targets if label == "generator"), None)
        for label, path in targets:
            model, architecture, kind = load_model(path)
            model.to(on)
            label = _unique_label(label, path, [entry[0] for entry in loaded])
            loaded.append((label, path, model, architecture, kind, pair_generator))
    given_generator = resolve_model_dirs(generator_dir)[0][1] if generator_dir else None
    heldout_sets: dict[tuple[str, int], tuple[HeldOutSet, Any]] = {}
    results: dict[str, Any] = {}
    for label, path, model, architecture, kind, pair_generator in loaded:
        generator_path = given_generator or pair_generator
        # Same tokenizer and length: the same sequences and masks, whichever model asks.
        length = min(sequence_length, model.config.max_position_embeddings)
        key = (tokenizer_key(path), length)
        if key not in heldout_sets:
            tokenizer = load_tokenizer(path)
            heldout_sets[key] = (
                build_heldout_set(tokenizer, corpus, sequence_length=length, max_sentences=max_sentences,
                                  mask_probability=mask_probability, seed=seed, tokenizer_dir=path),
                tokenizer,
            )
        heldout, tokenizer = heldout_sets[key]
        bar = tqdm(total=len(heldout.sequences), desc=f"evaluate {label}", unit="seq", file=sys.stderr,
                   disable=not show_progress, leave=False)
        common = {"mask_id": tokenizer.mask_token_id, "pad_id": tokenizer.pad_token_id, "batch_size": batch_size,
                  "progress": bar, "precision": precision}
        if kind == MASKED_LM:
            figures = masked_lm_metrics(model, heldout, **common)
            corruption = None
        else:
            generator = None
            if generator_path is not None:
                generator, _, gen_kind = load_model(generator_path)
                generator.to(on)
                if gen_kind != MASKED_LM:
                    raise UserError(f"--generator {generator_path}: not a masked-LM model")
                if tokenizer_key(generator_path) != key[0]:
                    raise UserError(f"--generator {generator_path}: its tokenizer differs from {path}'s")
            figures = replaced_token_metrics(model, heldout, seed=seed, generator=generator,
                                             candidates=ordinary_token_ids(tokenizer), **common)
            corruption = f"generator:{generator_path}" if generator is not None else CORRUPTION_RANDOM
        bar.close()
        results[label] = {
            "model_dir": str(path),
            "architecture": architecture,
            "kind": kind,
            **({"corruption": corruption} if corruption else {}),
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "sequence_length": int(max(len(s) for s in heldout.sequences)),
            **figures,
        }
    heldout = next(iter(heldout_sets.values()))[0]
    report = {
        "corpus": heldout.source,
        "corpus_sha256": heldout.text_sha256,
        "documents": heldout.documents,
        "sentences": heldout.sentences,
        "sequences": len(heldout.sequences),
        "tokens": heldout.tokens,
        "seed": seed,
        "device": on.type,
        "precision": precision,
        "mask_probability": mask_probability,
        "masking": "training masker at mask_probability of each sequence's tokens, every chosen token "
        "shown as [MASK]; noise per sequence from numpy default_rng([seed, sequence_index])",
        "models": results,
        "seconds": round(time.time() - started, 3),
    }
    if out_dir is not None:
        write_metrics(out_dir, report, model_dir=[str(d) for d in model_dirs], generator_dir=generator_dir)
    return report


def _unique_label(label: str, path: Path, taken: list[str]) -> str:
    if label == "final":
        label = path.parent.name
    if label in taken:
        label = f"{path.parent.name}/{label}"
    return label


def write_metrics(out_dir: str | os.PathLike, report: dict[str, Any], **inputs: Any) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    atomic_write_json(out / METRICS_NAME, report)
    options = {k: report[k] for k in ("seed", "mask_probability")}
    write_manifest(
        out,
        stage="evaluate",
        inputs={**{k: v if isinstance(v, list) else str(v) for k, v in inputs.items() if v},
                "corpus_sha256": report["corpus_sha256"]},
        options=options,
        counts={k: report[k] for k in ("documents", "sentences", "sequences", "tokens")},
        timings={"seconds": report["seconds"]},
    )


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for label, r in report["models"].items():
        if r["kind"] == MASKED_LM:
            lines.append(
                f"{label}: masked-LM loss {r['loss']:.4f}  accuracy {r['accuracy']:.4f}  "
                f"perplexity {r['perplexity']:.2f}  ({r['masked_tokens']} masked tokens)"
            )
        else:
            lines.append(
                f"{label}: replaced-token detection accuracy {r['accuracy']:.4f}  precision {r['precision']:.4f}  "
                f"recall {r['recall']:.4f}  AUC {r['auc']:.4f}  (corruption: {r['corruption']}, "
                f"{r['replaced_fraction']:.1%} replaced)"
            )
    lines.append(
        f"held-out: {report['sentences']} sentences, {report['sequences']} sequences, {report['tokens']} tokens "
        f"from {report['corpus']} (seed {report['seed']}, {report['seconds']:.1f}s)"
    )
    return lines

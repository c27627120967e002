"""What the model families' exports share: the writer of MODEL_DIR/final/, the model card's
training table and figures, its Hub front matter, and final/manifest.json, none of which holds
an absolute local path."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ja_pretrain.export.card import card_text, front_matter, hub_datasets, portable
from ja_pretrain.tokenization.files import CONFIG_FILE, copy_tokenizer
from ja_pretrain.utils.atomic import atomic_directory, atomic_write_json, atomic_write_text
from ja_pretrain.utils.manifest import fingerprint, read_manifest, write_manifest


def fmt(value: Any, digits: int = 4) -> str:
    """A figure for a model card: n/a for missing or non-finite values."""
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"
    return "n/a" if value is None else str(value)


def usage_lines(auto: str, tokenizer_class: str = "BertJapaneseTokenizer", auto_tokenizer: bool = True) -> list[str]:
    """The model card's how-to-load snippet. `auto_tokenizer` False: the model's type makes
    AutoTokenizer ignore the tokenizer class named in tokenizer_config.json, so the snippet
    names a BertJapaneseTokenizer itself."""
    if auto_tokenizer or tokenizer_class != "BertJapaneseTokenizer":
        loader, note = "AutoTokenizer", "  # BertJapaneseTokenizer: needs fugashi + its dictionary"
        if tokenizer_class != "BertJapaneseTokenizer":
            note = ""
    else:
        loader, note = tokenizer_class, ("  # needs fugashi + its dictionary; AutoTokenizer reads a ModernBERT's "
                                         "tokenizer.json only")
    return [
        "```python",
        f"from transformers import {loader}, {auto}",
        f"tokenizer = {loader}.from_pretrained(PATH){note}",
        f"model = {auto}.from_pretrained(PATH)",
        "```",
    ]


def write_final_manifest(directory: Path, *, params: Any, options: Any, architecture: str,
                         dataset_dir: str | os.PathLike, dataset_manifest: dict | None, tokenizer_names: list[str],
                         train_state: dict, facts: dict, last_train: dict, last_valid: dict) -> None:
    """final/manifest.json (written last): what the model was trained on, with which options."""
    write_manifest(
        directory, stage="pretrain",
        inputs=portable({"dataset": (dataset_manifest or {}).get("fingerprint", str(dataset_dir)),
                         "tokenizer_files": tokenizer_names, "init_from": str(facts.get("init_from") or "")}),
        options=portable({"parameters": params.to_json_dict(), "model_type": params.model_type,
                          "objective": dict(vars(options)), "architecture": architecture}),
        counts={"steps": train_state.get("step"), "tokens_seen": train_state.get("tokens_seen"),
                "samples_seen": train_state.get("samples_seen")},
        extra=portable({"final_valid": last_valid, "final_train": last_train,
                        "train_state_fingerprint": fingerprint(train_state)}),
    )


def training_rows(params: Any, train_state: dict, masking: str) -> list[str]:
    """The model card's training table rows that BERT and ELECTRA share."""
    return [
        f"| steps | {train_state.get('step')} |",
        f"| global batch (sequences per step) | "
        f"{train_state.get('global_batch', 0) * train_state.get('accumulation_steps', 1)} |",
        f"| tokens seen | {train_state.get('tokens_seen')} |",
        f"| peak learning rate / warmup | {params.learning_rate} / {params.warmup_steps} |",
        f"| masking | {masking} |",
        f"| precision | {train_state.get('precision')} |",
        f"| processes | {train_state.get('world_size')} |",
    ]


def figure_rows(columns: tuple[str, ...], last_valid: dict, last_train: dict) -> list[str]:
    """One row per split (held out, last train window) of the final step's figures."""
    return [f"| {name} | " + " | ".join(fmt(record.get(k)) for k in columns) + " |"
            for name, record in (("valid (held out)", last_valid), ("train (last log window)", last_train)) if record]


LICENSE_LINE = ("\nLicense: `other` in the front matter until you choose one compatible with the training data "
                "before publishing.")


def corpus_inputs(facts: dict) -> list[str]:
    """Names of the raw files the training corpus was made from (its manifest's inputs)."""
    corpus = Path(str(facts.get("input_file") or ""))
    manifest = read_manifest(corpus) if corpus.is_dir() else None
    files = ((manifest or {}).get("inputs") or {}).get("files") or []
    return [str(f.get("path", "")) for f in files if isinstance(f, dict)] or ([corpus.name] if corpus.name else [])


def write_final(out_dir: str | os.PathLike, *, save: Any, architecture: str, card: str, tokenizer_dir: str | os.PathLike,
                params: Any, options: Any, dataset_dir: str | os.PathLike, train_state: dict, last_train: dict,
                last_valid: dict, facts: dict, keep_train_state: bool = False,
                tokenizer_settings: dict | None = None, pipeline_tag: str | None = "fill-mask") -> Path:
    """MODEL_DIR/final/ for any model family: `save(tmp)` writes the weights and config, then
    the tokenizer files (with `tokenizer_settings` set in their tokenizer_config.json), README.md
    (`card` under the Hub front matter), trainer_state.json if asked, and manifest.json last;
    built under a temporary name and renamed when complete."""
    dataset_manifest = read_manifest(dataset_dir)
    with atomic_directory(out_dir) as tmp:
        save(tmp)
        tokenizer_names = copy_tokenizer(tokenizer_dir, tmp)
        if tokenizer_settings and (tmp / CONFIG_FILE).is_file():
            config = json.loads((tmp / CONFIG_FILE).read_text(encoding="utf-8"))
            atomic_write_json(tmp / CONFIG_FILE, {**config, **tokenizer_settings})
        if keep_train_state:
            atomic_write_json(tmp / "trainer_state.json", portable(train_state))
        front = front_matter(pipeline_tag=pipeline_tag, datasets=hub_datasets(corpus_inputs(facts)))
        atomic_write_text(tmp / "README.md", card_text(front, card))
        write_final_manifest(tmp, params=params, options=options, architecture=architecture,
                             dataset_dir=dataset_dir, dataset_manifest=dataset_manifest,
                             tokenizer_names=tokenizer_names, train_state=train_state, facts=facts,
                             last_train=last_train, last_valid=last_valid)
    return Path(out_dir)

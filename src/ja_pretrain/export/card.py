"""A model dir's README.md as a Hugging Face Hub model card, for every model family: YAML front
matter (language, license, library, pipeline tag, datasets, tags and, once the model has been
fine-tuned under the published protocol, a `model-index` of its dev scores), then the body each
exporter writes. Nothing in it, nor in the dir's JSON files, is an absolute local path, so the
folder can be uploaded as it is (`huggingface-cli upload NAME DIR`).

`license: other` stands until the user chooses: the right licence depends on the training
text, which ja-pretrain cannot judge.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from ja_pretrain.utils.atomic import atomic_write_text

CARD_NAME = "README.md"
CARD_TAG = "ja-pretrain"  # marks a card this package wrote (and so may update)
# Hub dataset ids of the corpora ja-pretrain downloads, recognised by their published file names.
KNOWN_CORPORA = (("jawiki", "wikimedia/wikipedia"), ("cirrussearch", "wikimedia/wikipedia"),
                 ("cc100", "statmt/cc100"), ("ja.txt.xz", "statmt/cc100"))
# The Hub's task type of each kind of downstream task, for the model-index.
TASK_TYPES = {"regression": "text-classification", "classification": "text-classification",
              "multiple_choice": "multiple-choice", "question_answering": "question-answering",
              "token_classification": "token-classification"}
_FRONT = re.compile(r"\A---\n(.*?)\n---\n\n?", re.DOTALL)


def portable(value: Any) -> Any:
    """`value` with every absolute path in it (strings, nested in dicts and lists) cut to its
    last two parts (`/home/me/runs/x/corpus` -> `x/corpus`): what a published card may say."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable(v) for v in value)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and os.path.isabs(value) and "\n" not in value:
        parts = Path(value).parts[1:]
        return "/".join(parts[-2:]) if parts else value
    return value


def hub_datasets(inputs: list[str]) -> list[str]:
    """Hub ids of the known corpora among the training inputs' names (a user's own text has none)."""
    found = []
    for name in inputs:
        lowered = Path(str(name)).name.lower()
        found += [hub for key, hub in KNOWN_CORPORA if key in lowered and hub not in found]
    return found


def front_matter(*, pipeline_tag: str | None, datasets: list[str], model_index: list | None = None) -> dict[str, Any]:
    front: dict[str, Any] = {"language": "ja", "license": "other", "library_name": "transformers"}
    if pipeline_tag:
        front["pipeline_tag"] = pipeline_tag
    if datasets:
        front["datasets"] = datasets
    front["tags"] = [CARD_TAG, "japanese"]
    if model_index:
        front["model-index"] = model_index
    return front


def card_text(front: dict[str, Any], body: str) -> str:
    return "---\n" + yaml.safe_dump(front, allow_unicode=True, sort_keys=False) + "---\n\n" + body


def read_card(directory: str | os.PathLike) -> tuple[dict[str, Any] | None, str]:
    """(front matter or None, body) of DIR/README.md; (None, "") when there is none."""
    path = Path(directory) / CARD_NAME
    if not path.is_file():
        return None, ""
    text = path.read_text(encoding="utf-8")
    match = _FRONT.match(text)
    if not match:
        return None, text
    try:
        front = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None, text
    return (front if isinstance(front, dict) else None), text[match.end():]


def model_index_entry(*, task: str, title: str, kind: str, metrics: dict[str, float], source: str) -> dict[str, Any]:
    """One result of the model-index: a task's dev scores under the published protocol."""
    return {"task": {"type": TASK_TYPES.get(kind, "text-classification"), "name": title},
            "dataset": {"name": title, "type": source.split(",")[0], "split": "validation"},
            "metrics": [{"type": name, "value": round(float(value), 4), "name": f"{name} (dev)"}
                        for name, value in metrics.items()]}


def record_scores(model_dir: str | os.PathLike, name: str, entries: dict[str, dict[str, Any]]) -> bool:
    """Put `entries` ({task: model_index_entry}) into the model-index of DIR/README.md, replacing
    earlier results of the same tasks. Only a card ja-pretrain wrote is changed (a downloaded
    model's own card is left alone); returns whether it was."""
    front, body = read_card(model_dir)
    if front is None or CARD_TAG not in (front.get("tags") or []):
        return False
    index = front.get("model-index") or [{"name": name, "results": []}]
    results = [r for r in index[0].get("results", []) if r.get("task", {}).get("name") not in
               {e["task"]["name"] for e in entries.values()}]
    index[0]["results"] = results + list(entries.values())
    front["model-index"] = index
    atomic_write_text(Path(model_dir) / CARD_NAME, card_text(front, body))
    return True

"""Find a task's files under `--data`, read both splits, and split by document where the
publisher gives no split.

`--data DIR` may be the task's own directory (`DIR/train-v1.3.json`), a parent holding it as
published (`DIR/jsts-v1.3/`, the JGLUE repository's `datasets/` layout, or `ja-pretrain
download jglue`'s output), or, for chABSA and livedoor, a directory holding the publisher's
archive. `--train FILE --valid FILE` name the two splits instead (for chABSA and livedoor this
replaces the seeded split).

Splits by document are drawn from a hash of (seed, document id), so they do not depend on the
order of the files, and the documents on each side are recorded.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ja_pretrain.downstream.readers import Example, read_task_file
from ja_pretrain.downstream.tasks import SPLIT_DOCUMENTS, TaskSpec
from ja_pretrain.errors import UserError
from ja_pretrain.resources import sample_corpus_path
from ja_pretrain.utils.manifest import file_sha256

# The collection a split-by-document task reads, by the names its publisher uses.
_COLLECTIONS = {
    "chabsa": ("chABSA-dataset.zip", "chABSA-dataset", "chabsa*.jsonl*", "chabsa*.zip"),
    "livedoor": ("ldcc-*.tar.gz", "text", "livedoor*.jsonl*"),
    "ner": ("ner.json", "ner*.json"),
}


@dataclass
class TaskData:
    spec: TaskSpec
    train: list[Example]
    valid: list[Example]
    files: dict[str, Path]  # "train"/"valid", or "collection" for a split by document
    split: dict[str, Any] | None = None  # which documents went where
    sampled: dict[str, Any] = field(default_factory=dict)  # --max_train_samples / --max_eval_samples


def _version_key(path: Path) -> tuple:
    numbers = re.findall(r"\d+", path.name)
    return tuple(int(n) for n in numbers)


def _split_file(directory: Path, split: str) -> Path | None:
    """`split`-v1.3.json, else the newest `split`-vX.Y.json, else split.json / split.jsonl."""
    exact = directory / f"{split}-v1.3.json"
    if exact.is_file():
        return exact
    versions = sorted(directory.glob(f"{split}-v*.json"), key=_version_key)
    if versions:
        return versions[-1]
    for name in (f"{split}.json", f"{split}.jsonl", f"{split}.jsonl.gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _task_dirs(spec: TaskSpec, data: Path) -> list[Path]:
    found = [data / name for name in spec.dir_names] + [data / "datasets" / name for name in spec.dir_names]
    return [d for d in found if d.is_dir()] + [data]


def find_split_files(spec: TaskSpec, data: Path) -> dict[str, Path] | None:
    """The train and valid files of `spec` under `data`, or None if it holds neither."""
    if not data.is_dir():
        return None
    for directory in _task_dirs(spec, data):
        train, valid = _split_file(directory, "train"), _split_file(directory, "valid")
        if train and valid:
            return {"train": train, "valid": valid}
        if train or valid:
            have, lacking = ("train", "valid") if train else ("valid", "train")
            raise UserError(f"--data {directory}: has the {have} split of {spec.title} but no {lacking} file "
                            f"({lacking}-v1.3.json); add it or name both with --train and --valid")
    return None


def find_collection(spec: TaskSpec, data: Path, only: bool) -> Path | None:
    """The publisher's archive (or directory, or JSON Lines file) of `spec` at or under `data`.
    A file or directory that is the only --data is taken as it is."""
    patterns = _COLLECTIONS.get(spec.name, ())
    if data.is_file():
        return data if only or any(data.match(p) for p in patterns) else None
    if not data.is_dir():
        return None
    for pattern in patterns:
        matches = sorted(data.glob(pattern))
        if matches:
            return matches[-1]
    return data if only else None


def locate(spec: TaskSpec, data: list[Path]) -> dict[str, Path]:
    """{"train", "valid"} files or {"collection"} for `spec`, from the first --data that has them."""
    missing = [str(p) for p in data if not p.exists()]
    if missing:
        raise UserError(f"--data {' '.join(missing)}: no such file or directory")
    for path in data:
        if spec.split == SPLIT_DOCUMENTS:
            found = find_collection(spec, path, only=len(data) == 1)
            if found is not None:
                return {"collection": found}
        else:
            files = find_split_files(spec, path)
            if files is not None:
                return files
    wanted = ("the publisher's archive (" + ", ".join(_COLLECTIONS.get(spec.name, ())) + ")"
              if spec.split == SPLIT_DOCUMENTS else "train-v1.3.json and valid-v1.3.json (or TASK-v1.3/ holding them)")
    raise UserError(f"--data {' '.join(map(str, data))}: no {spec.title} data found; expected {wanted}, "
                    "or name the files with --train and --valid")


def split_by_document(examples: list[Example], valid_ratio: float, seed: int) -> tuple[list[Example], list[Example],
                                                                                        dict[str, Any]]:
    """Whole documents to train or valid, each by a hash of (seed, document id)."""
    if not 0.0 < valid_ratio < 1.0:
        raise UserError(f"--valid_ratio {valid_ratio}: must be between 0 and 1")

    def to_valid(group: str) -> bool:
        digest = hashlib.blake2b(f"{seed}\0{group}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 < valid_ratio

    groups = sorted({e.group for e in examples})
    valid_groups = {g for g in groups if to_valid(g)}
    train = [e for e in examples if e.group not in valid_groups]
    valid = [e for e in examples if e.group in valid_groups]
    if not train or not valid:
        raise UserError(f"the split by document left the {'dev' if not valid else 'train'} side empty "
                        f"({len(groups)} documents, --valid_ratio {valid_ratio}); change --valid_ratio")
    record = {"seed": seed, "valid_ratio": valid_ratio, "documents": len(groups),
              "train_documents": [g for g in groups if g not in valid_groups],
              "valid_documents": sorted(valid_groups)}
    return train, valid, record


def subsample(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    """At most `limit` examples, drawn with `seed` and kept in file order."""
    if limit is None or limit >= len(examples):
        return examples
    if limit < 1:
        raise UserError(f"a sample limit of {limit}: must be 1 or more")
    keep = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in keep]


def load_task_data(spec: TaskSpec, data: list[str | os.PathLike] | str | os.PathLike | None = None, *,
                   train: str | os.PathLike | None = None, valid: str | os.PathLike | None = None,
                   valid_ratio: float = 0.2, split_seed: int = 0, max_train_samples: int | None = None,
                   max_eval_samples: int | None = None) -> TaskData:
    if (train is None) != (valid is None):
        raise UserError("--train and --valid go together: name both splits, or give --data")
    paths = [Path(p) for p in ([] if data is None else [data] if isinstance(data, (str, os.PathLike)) else data)]
    if train is not None:
        files = {"train": Path(train), "valid": Path(valid)}
    elif paths:
        files = locate(spec, paths)
    elif spec.name == "smoke":

        files = {"collection": sample_corpus_path()}
    else:
        raise UserError(f"{spec.title}: give --data (the task's files as published) or --train FILE --valid FILE")
    if "collection" in files:
        examples = read_task_file(spec, files["collection"])
        train_part, valid_part, record = split_by_document(examples, valid_ratio, split_seed)
        result = TaskData(spec, train_part, valid_part, files, split=record)
    else:
        result = TaskData(spec, read_task_file(spec, files["train"]), read_task_file(spec, files["valid"]), files)
    for name, limit in (("train", max_train_samples), ("valid", max_eval_samples)):
        full = getattr(result, name)
        setattr(result, name, subsample(full, limit, seed=0))
        if len(getattr(result, name)) < len(full):
            result.sampled[name] = {"kept": len(getattr(result, name)), "of": len(full), "seed": 0}
    return result


def path_fingerprint(path: Path) -> str:
    """sha256 of a file, or of the sorted (name, sha256) list of a directory's files."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()

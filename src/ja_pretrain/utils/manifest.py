"""Stage manifests: what a stage read, with which options, what it produced, and how long it took.

Every stage writes `manifest.json` last, atomically. A directory without one is unfinished.
A stage is skipped only when its stored `fingerprint` equals the fingerprint of its current
inputs and options.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from ja_pretrain import __version__
from ja_pretrain.errors import UserError
from ja_pretrain.utils.atomic import atomic_write_json

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(obj: Any) -> str:
    """A stable hash of JSON-able data (dict key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def write_manifest(
    directory: str | os.PathLike,
    *,
    stage: str,
    inputs: dict[str, Any],
    options: dict[str, Any],
    counts: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write DIR/manifest.json; call it after every other file of the stage is in place."""
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "stage": stage,
        "fingerprint": fingerprint({"stage": stage, "inputs": inputs, "options": options}),
        "inputs": inputs,
        "options": options,
        "counts": counts or {},
        "timings": timings or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ja_pretrain_version": __version__,
        "python": platform.python_version(),
    }
    if extra:
        manifest.update(extra)
    atomic_write_json(Path(directory) / MANIFEST_NAME, manifest)
    return manifest


def read_manifest(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a finished stage directory, or None if the stage never finished there."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a valid manifest ({err}); delete the directory and rerun the stage") from err
    if not isinstance(manifest, dict) or "stage" not in manifest:
        raise UserError(f"{path}: not a ja-pretrain manifest; delete the directory and rerun the stage")
    return manifest


def is_up_to_date(directory: str | os.PathLike, stage: str, inputs: dict[str, Any], options: dict[str, Any]) -> bool:
    manifest = read_manifest(directory)
    if manifest is None or manifest.get("stage") != stage:
        return False
    return manifest.get("fingerprint") == fingerprint({"stage": stage, "inputs": inputs, "options": options})


def check_output_dir(directory: str | os.PathLike, stages: tuple[str, ...], option: str = "--out") -> None:
    """Refuse to write over a directory that is neither empty nor an earlier output of `stages`:
    the stage replaces its output directory whole, and must never take a user's files with it."""
    path = Path(directory)
    if not path.exists():
        return
    if not path.is_dir():
        raise UserError(f"{option} {path}: exists and is not a directory")
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return
    manifest = read_manifest(path)
    if manifest is None or manifest.get("stage") not in stages:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise UserError(
            f"{option} {path}: holds files ({shown}) that are not an earlier output of this command; "
            "choose a new or empty directory (nothing was changed)"
        )

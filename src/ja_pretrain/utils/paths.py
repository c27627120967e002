"""Input paths that say what they are when they are not what was asked for."""

from __future__ import annotations

import os
from pathlib import Path

from ja_pretrain.errors import UserError


def require_file(path: str | os.PathLike, label: str = "", hint: str = "") -> Path:
    """`path` as a Path if it is a regular file; else a UserError that says what it is instead
    ("a directory", "no such file", ...), prefixed by `label` (e.g. "--parameter_file")."""
    file = Path(path)
    if file.is_file():
        return file
    where = f"{label} {file}" if label else str(file)
    if file.is_dir():
        what = "is a directory, not a file"
        hint = hint or "name a file inside it"
    elif file.exists():
        what = "is not a regular file (a pipe, socket or device)"
    else:
        what = "no such file"
        hint = hint or "check the path"
    raise UserError(f"{where}: {what}" + (f"; {hint}" if hint else ""))

"""Write-to-temporary-then-rename helpers, so an interrupted run never leaves a file or a
directory that looks finished. Contents are flushed to disk (fsync) before the rename and the
rename itself after it, so a power cut cannot leave a finished-looking name over unwritten data
(on macOS, fsync leaves the drive's own write cache unflushed)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ja_pretrain.errors import UserError


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def fsync_file(path: Path) -> None:
    """Flush a written file's data to disk; an error (EIO, a full disk) is raised, not hidden.
    Opened for writing because Windows' fsync (FlushFileBuffers) needs write access."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename into it, new files in it) to disk where the platform
    allows: Windows cannot open a directory, and some file systems refuse fsync on one."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for directory, _, files in os.walk(root):
        for name in files:
            fsync_file(Path(directory) / name)
        fsync_dir(Path(directory))


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on clean exit it replaces `path`, on error it is removed."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final)
    try:
        yield tmp
        if tmp.is_file():
            fsync_file(tmp)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False) + "\n")


def refuse_enclosing_cwd(target: str | os.PathLike, what: str) -> None:
    """An output replaced as a whole when finished (renamed away, then its new version renamed in)
    must not be the current directory or one above it: the user's other files live there."""
    resolved = Path(os.path.abspath(target))
    cwd = Path.cwd()
    if resolved == cwd or resolved in cwd.parents:
        raise UserError(f"{what}: is {'the current directory' if resolved == cwd else 'above the current directory'}; "
                        f"this output is replaced as a whole when finished, so name a new directory, e.g. "
                        f"{os.path.join(str(target), 'out')}")


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory; on clean exit it becomes `path` (replacing an old one).

    A crash leaves only a dot-named `.NAME.tmp-PID` directory, which no reader mistakes for output
    and which the next run removes.
    """
    final = Path(path)
    refuse_enclosing_cwd(final, str(final))
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = _tmp_sibling(final)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

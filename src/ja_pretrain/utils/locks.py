"""One writer per output: an advisory lock on a hidden `.NAME.lock` beside the output.

Every command that writes an output directory (or a download that appends to a `.part` file)
holds the lock while it works; a second process aiming at the same output is refused at once,
with the other process's pid, instead of both writing and one deleting the other's temporary
files. The kernel drops a lock when its process dies, so a killed run never blocks the next one.
The lock file itself stays (empty but for the pid): deleting a lock file that another process
may be opening at that moment would let two processes hold "the" lock at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ja_pretrain.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; one writer per output is then up to the user
    fcntl = None


def lock_path(target: str | os.PathLike) -> Path:
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


@contextmanager
def exclusive(target: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold the lock of `target` (a directory or file path) while the block runs; `what` names
    the target in the refusal, e.g. "--out run/corpus"."""
    if fcntl is None:
        yield
        return
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(f"{what}: {holder} is writing it now (it holds {path}); wait for it to finish or "
                            "stop it, or choose another output") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"ja-pretrain process {os.getpid()}")
        handle.flush()
        yield

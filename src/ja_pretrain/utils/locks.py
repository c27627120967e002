"""One writer per output: a kernel lock (flock) on a hidden `.NAME.lock` beside the output.

Every command that writes an output directory (or a download that appends to a `.part` file)
holds the lock while it works; a second process aiming at the same output is refused at once,
naming the holder's host and pid, instead of both writing and one deleting the other's
temporary files. Builders that share an output on purpose (the ranks of a job sharing a dataset
cache) wait for the holder instead, saying whom they wait for, and give up after a stated time.

What the lock guarantees:
- The kernel drops it when its process dies (kill -9 included), so a killed run never blocks
  the next one and no lock file is ever "stale": an empty file, one written by another host or
  one naming a pid since reused means nothing; only a live holder blocks.
- On one machine, always. Across machines on a shared file system, as far as the file system
  carries flock: NFSv4 and NFSv3 with lockd (Linux emulates flock with NFS byte-range locks)
  do; Lustre only when mounted with `-o flock` (with `-o localflock` the lock holds per node);
  NFS mounted `nolock` holds it per node only.
- Where the file system refuses locks altogether (ENOLCK, EOPNOTSUPP: NFS without lockd, Lustre
  mounted `noflock`), each command says so in one line and goes on unlocked: starting one run
  per output is then up to the user.

The lock file stays (it holds the last holder's name): deleting a lock file another process may
be opening at that moment would let two processes hold "the" lock at once.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ja_pretrain.errors import UserError
from ja_pretrain.utils.atomic import refuse_enclosing_cwd

try:
    import fcntl
except ImportError:  # Windows: no flock; one writer per output is then up to the user
    fcntl = None

log = logging.getLogger(__name__)

# What a file system without lock support answers: NFS without lockd (ENOLCK), Lustre mounted
# without flock (ENOSYS, EOPNOTSUPP).
UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}
_warned: set[Path] = set()


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of `target`: `.NAME.lock` beside it ("." and "a/.." name real directories)."""
    resolved = Path(os.path.abspath(target))
    if not resolved.name:
        raise UserError(f"{target}: the root of the file system cannot be an output; name a directory below it")
    return resolved.with_name(f".{resolved.name}.lock")


def holder_name() -> str:
    return f"ja-pretrain process {os.getpid()} on host {socket.gethostname()}"


@contextmanager
def exclusive(target: str | os.PathLike, what: str, *, replaced: bool = False,
              wait_s: float | None = None) -> Iterator[None]:
    """Hold the lock of `target` (a directory or file path) while the block runs; `what` names
    the target in messages, e.g. "--out run/corpus". `replaced`: the output is replaced as a
    whole (see refuse_enclosing_cwd). `wait_s`: wait up to that long for another holder (saying
    whom it waits for) instead of refusing at once."""
    if replaced:
        refuse_enclosing_cwd(target, what)
    path = lock_path(target)
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        if _acquire(handle, path, what, wait_s):
            handle.seek(0)
            handle.truncate()
            handle.write(holder_name())
            handle.flush()
        yield


def _acquire(handle, path: Path, what: str, wait_s: float | None) -> bool:
    """Take the lock (True), or go on unlocked where the file system has no locks (False)."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    said = 0.0
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            holder = _holder(handle)
            if deadline is None:
                raise UserError(f"{what}: {holder} is writing it now (it holds {path}); wait for it to finish or "
                                "stop it, or choose another output") from None
            if time.monotonic() > deadline:
                raise UserError(f"{what}: gave up after {wait_s:.0f}s waiting for {holder} (it holds {path}); "
                                "if that process is stuck, stop it and rerun") from None
            if time.monotonic() - said > 600 or not said:
                print(f"ja-pretrain: waiting for {holder} to finish {what} (giving up after {wait_s:.0f}s)",
                      file=sys.stderr, flush=True)
                said = time.monotonic()
            time.sleep(1.0)
        except OSError as err:
            if err.errno not in UNSUPPORTED:
                raise
            if path.parent not in _warned:
                _warned.add(path.parent)
                log.warning("%s: this file system does not support locks (%s); ja-pretrain cannot refuse a second "
                            "run writing %s at the same time, so start one run per output (on Lustre, mount with "
                            "-o flock)", path.parent, os.strerror(err.errno), what)
            return False


def _holder(handle) -> str:
    handle.seek(0)
    return handle.read().strip() or "another process"

"""Child processes that do not outlive their parent.

A pipeline's stage process and the worker processes of the corpus, tokenizer and dataset
builders ask Linux to send them SIGTERM when their parent dies (prctl PR_SET_PDEATHSIG), so a
`kill -9` of the parent does not leave a stage training into a directory a rerun is about to
use, nor workers holding memory. Elsewhere (macOS, Windows) this is a no-op, and the output
locks (`utils.locks`) still refuse a second writer.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None, signum: int = signal.SIGTERM) -> None:
    """Be sent `signum` when the parent process dies. With `parent_pid`, exit at once if the
    parent has already gone (it may die before the request is made)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), signum)

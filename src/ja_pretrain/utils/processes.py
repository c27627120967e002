"""Child processes that do not outlive their parent.

A pipeline's stage process and the worker processes of the corpus, tokenizer and dataset
builders ask Linux to send them SIGTERM when their parent dies (prctl PR_SET_PDEATHSIG), so a
`kill -9` of the parent does not leave a stage training into a directory a rerun is about to
use, nor workers holding memory. Elsewhere (macOS, Windows) this is a no-op, and the output
locks (`utils.locks`) still refuse a second writer.

A stage started under a launcher (`torchrun`, `srun`, `uv run`) has the launcher as its parent,
not the pipeline. So the pipeline runs the launcher through `python -m ja_pretrain.utils.processes
PID COMMAND...`, which asks for the signal on the launcher's behalf and then becomes the launcher
(the request survives exec); the launcher takes its workers down when the signal comes, and each
worker asks for the signal when its own parent, the launcher's agent, dies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1
# Set by the pipeline for a stage it runs directly: the pid that stage must not outlive.
PARENT_PID_ENV = "JA_PRETRAIN_PIPELINE_PID"


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


def become_pool_worker(parent_pid: int | None) -> None:
    """Set up a builder's worker process (a pool's initializer): Ctrl-C is handled once, by the
    parent, which then stops the pool; SIGTERM (the pool's terminate at the end of every run, the
    parent's death) ends the worker at once. A forked worker inherits the command's Python
    SIGTERM handler, which only runs between bytecodes: a SIGTERM caught just before the worker
    blocked on the task queue's lock was lost, and the run hung at its end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent_pid)


def with_parent(parent_pid: int, command: list[str]) -> list[str]:
    """`command` as a process that gets SIGTERM when process `parent_pid` (its parent) dies."""
    return [sys.executable, "-m", __name__, str(parent_pid), *command]


def _exec_with_parent(argv: list[str]) -> None:
    parent, *command = argv
    die_with_parent(int(parent))
    try:
        os.execvp(command[0], command)
    except OSError as err:  # the launcher is not installed, say: one line, as the shell would say it
        print(f"ja-pretrain: cannot run {command[0]!r}: {err.strerror}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    _exec_with_parent(sys.argv[1:])

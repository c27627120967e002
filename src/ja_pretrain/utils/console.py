"""Running a subcommand, shared by the CLI and the pipeline's stage processes: which modules
are the subcommands, how output is set up, and how errors end a command.

Each subcommand lives in `ja_pretrain.commands.<module>` and exposes NAME, HELP, DESCRIPTION,
`add_arguments(parser)` and `run(args) -> int`. They are named here as strings and imported by
name, so the layers below the commands (the pipeline) can run them without importing them.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from ja_pretrain.errors import UserError

# Order is the order of the stages; `ja-pretrain --help` lists them so.
COMMAND_MODULES = (
    "download",
    "corpus",
    "train_tokenizer",
    "build_dataset",
    "run_pretraining",
    "extract_electra",
    "evaluate",
    "finetune",
    "pipeline",
    "report",
)


def command_module_name(module: str) -> str:
    return f"ja_pretrain.commands.{module}"


def configure_output(verbose: bool = False) -> None:
    """Log format, and no transformers progress bar for each local save/load of a few-MB model
    (the stages draw their own)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


class Terminated(KeyboardInterrupt):
    """SIGTERM (what Slurm, Kubernetes and `kill` send) raised as an interrupt, so that it runs the
    same clean-up as Ctrl-C: temporary outputs removed, training checkpointed where it can."""


def raise_terminated(signum, frame):
    """The SIGTERM handler of every command (and of `run_pipeline` called as a function)."""
    raise Terminated()


# OS errors a user can act on, as one line each: the path and what is wrong with it.
_OS_ERRORS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "not a directory (a file stands where a directory is needed)",
    errno.EEXIST: "exists and is not a directory (a file stands where a directory is needed)",
    errno.EISDIR: "is a directory (a file is needed)",
    errno.ENAMETOOLONG: "file name too long",
}


def os_error_message(err: OSError) -> str | None:
    """'PATH: what is wrong' for an OS error a user can fix, else None."""
    what = _OS_ERRORS.get(err.errno)
    if what is None:
        return None
    path = err.filename if err.filename is not None else "(output)"
    return f"{path}: {what}"


def run_guarded(name: str, run: Callable[[argparse.Namespace], int | None], args: argparse.Namespace,
                interrupted: str = "rerun the same command to finish.") -> int:
    """Run a subcommand: a UserError or an OS error a user can act on (a full disk, a read-only
    directory) prints as one line and exits 2; Ctrl-C exits 130 and SIGTERM 143, each after the
    command's own clean-up, with `interrupted` saying how to go on."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, raise_terminated) if main_thread else None
    try:
        return int(run(args) or 0)
    except UserError as err:
        print(f"ja-pretrain {name}: error: {err}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"ja-pretrain {name}: terminated (SIGTERM); {interrupted}", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"ja-pretrain {name}: interrupted; {interrupted}", file=sys.stderr)
        return 130
    except OSError as err:
        message = os_error_message(err)
        if message is None:
            raise
        print(f"ja-pretrain {name}: error: {message}; nothing left that looks finished", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

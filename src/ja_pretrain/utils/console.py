"""Running a subcommand, shared by the CLI and the pipeline's stage processes: which modules
are the subcommands, how output is set up, and how errors end a command.

Each subcommand lives in `ja_pretrain.commands.<module>` and exposes NAME, HELP, DESCRIPTION,
`add_arguments(parser)` and `run(args) -> int`. They are named here as strings and imported by
name, so the layers below the commands (the pipeline) can run them without importing them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
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


def run_guarded(name: str, run: Callable[[argparse.Namespace], int | None], args: argparse.Namespace,
                interrupted: str = "rerun the same command to finish.") -> int:
    """Run a subcommand: a UserError prints as one line and exits 2, Ctrl-C exits 130."""
    try:
        return int(run(args) or 0)
    except UserError as err:
        print(f"ja-pretrain {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ja-pretrain {name}: interrupted; {interrupted}", file=sys.stderr)
        return 130

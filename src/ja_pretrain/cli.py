"""Command-line entry point: `ja-pretrain SUBCOMMAND ...`.

Each subcommand lives in `ja_pretrain.commands.<module>` and exposes NAME, HELP, DESCRIPTION,
`add_arguments(parser)` and `run(args) -> int`. Heavy imports (torch, transformers) stay inside
`run`, so `ja-pretrain --help` answers instantly.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable

from ja_pretrain import __version__
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ja-pretrain",
        description="Pretrain Japanese BERT and ELECTRA models: raw text -> corpus -> tokenizer "
        "-> dataset -> model -> evaluation.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ja-pretrain {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(f"ja_pretrain.commands.{module_name}")
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_output(args.verbose)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return run_guarded(args.command, args._run, args)

if __name__ == "__main__":
    sys.exit(main())

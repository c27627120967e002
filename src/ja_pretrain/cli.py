"""Command-line entry point: `ja-pretrain SUBCOMMAND ...`.

The subcommands are the modules named in `utils.console.COMMAND_MODULES`. Heavy imports (torch,
transformers) stay inside each command's `run`, so `ja-pretrain --help` answers instantly.
"""

from __future__ import annotations

import argparse
import importlib

from ja_pretrain import __version__
from ja_pretrain.utils.console import COMMAND_MODULES, command_module_name, configure_output, run_guarded


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
        module = importlib.import_module(command_module_name(module_name))
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_output(args.verbose)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    module = importlib.import_module(args._run.__module__)
    return run_guarded(args.command, args._run, args, **_interrupted_hint(module))


def _interrupted_hint(module) -> dict[str, str]:
    """A command may say how to go on after an interrupt (INTERRUPTED); the default: rerun it."""
    hint = getattr(module, "INTERRUPTED", None)
    return {"interrupted": hint} if hint else {}

"""Every option has both spellings, and docs/cli.md is what the parsers' --help says now."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ja_pretrain.cli import build_parser
from ja_pretrain.utils.options import spellings

ROOT = Path(__file__).resolve().parents[1]


def test_spellings():
    assert spellings("--max_steps", "--train-steps", "-v") == ["--max_steps", "--max-steps", "--train-steps",
                                                              "--train_steps", "-v"]
    assert spellings("--seed") == ["--seed"]
    assert spellings("--a_b", "--a-b") == ["--a_b", "--a-b"]


def test_every_option_of_every_command_has_both_spellings():
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in subcommands.choices.items():
        options = {o for action in parser._actions for o in action.option_strings if o.startswith("--")}
        for option in options:
            body = option[2:]
            assert "--" + body.replace("_", "-") in options and "--" + body.replace("-", "_") in options, (name, option)


def test_cli_reference_is_current():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "write_cli_docs.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

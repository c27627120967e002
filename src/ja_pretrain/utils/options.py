"""Command-line options in both spellings: every `--long_option` is also `--long-option`.

The first seed's scripts spell options with underscores (`--input_file`), most tools with
hyphens; users of either type what they know. `add_option` registers each long name in both
spellings (the given one first, so `--help` shows it first), so no option can miss one.
"""

from __future__ import annotations

import argparse


def spellings(*names: str) -> list[str]:
    """Each name, and after each long name its other spelling (_ and - swapped), once each."""
    out: list[str] = []
    for name in names:
        variants = [name]
        if name.startswith("--"):
            body = name[2:]
            variants.append("--" + (body.replace("_", "-") if "_" in body else body.replace("-", "_")))
        out.extend(v for v in variants if v not in out)
    return out


def add_option(container: argparse._ActionsContainer, *names: str, **kwargs) -> argparse.Action:
    """`container.add_argument` with every long name in both spellings."""
    return container.add_argument(*spellings(*names), **kwargs)

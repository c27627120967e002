"""Child-process entry of one pipeline stage: `python -m ja_pretrain.pipeline.child SPEC ARGV...`.

SPEC is a command module (`ja_pretrain.commands.corpus`) or `module:object`; the object has the
subcommand interface (NAME, add_arguments, run). Errors print as the CLI prints them.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from ja_pretrain.pipeline.stages import load_command
from ja_pretrain.utils.console import configure_output, run_guarded
from ja_pretrain.utils.processes import PARENT_PID_ENV, die_with_parent


def main(argv: list[str]) -> int:
    # A pipeline started in the background inherits an ignored SIGINT; the pipeline stops its
    # stage with SIGINT, so take it back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # A stage must not outlive its pipeline (kill -9 of the pipeline would leave it running).
    # Run directly, the pipeline is the parent and names itself; under a launcher the parent is
    # the launcher's agent (which itself dies with the pipeline: utils.processes.with_parent).
    parent = os.environ.get(PARENT_PID_ENV)
    die_with_parent(int(parent) if parent else os.getppid())
    spec, *args = argv
    command = load_command(spec)
    name = getattr(command, "NAME", spec)
    parser = argparse.ArgumentParser(prog=f"ja-pretrain {name}")
    command.add_arguments(parser)
    parsed = parser.parse_args(args)
    configure_output()
    return run_guarded(name, command.run, parsed, interrupted="rerun the pipeline to finish.")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

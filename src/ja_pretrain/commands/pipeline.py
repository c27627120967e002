"""`ja-pretrain pipeline`: run the stages of a YAML config in order, skipping finished ones."""

from __future__ import annotations

import argparse

from ja_pretrain.utils.options import add_option

NAME = "pipeline"
HELP = "run a config's stages in order (corpus -> tokenizer -> model -> evaluation -> report), skipping finished ones"
DESCRIPTION = """\
Run the stages that CONFIG.yaml names, in order, each as its ja-pretrain subcommand. A stage
whose recorded fingerprint (its command line, its input files, and its upstream stages'
fingerprints and output manifests) still matches is skipped ("skipped: up to date"); change one
option and that stage and everything after it reruns. A run killed mid-stage reruns that stage.

Every key of the config is checked before any work: an unknown key or option, a wrong type, a
missing input file stops the run with the file and line. The resolved config is saved as
RUN_DIR/pipeline.yaml, each stage's output as RUN_DIR/logs/STAGE.log.

Overrides: KEY=VALUE after the config, with STAGE.OPTION short for stages.STAGE.args.OPTION
(values are YAML: 20, true, [a, b]); run_dir=DIR; vars.NAME=VALUE.

examples:
  ja-pretrain pipeline configs/quickstart.yaml
  ja-pretrain pipeline configs/quickstart.yaml bert.train_steps=40 run_dir=runs/q40
  ja-pretrain pipeline configs/jawiki-bert-small.yaml --stage tokenizer
  ja-pretrain pipeline configs/cc100-jawiki-tiny.yaml --from train-model-jawiki
  ja-pretrain pipeline configs/financial.yaml vars.domain_text=/data/reports --dry-run
"""


class _OptionThenOverrides(argparse.Action):
    """`--stage NAME` / `--force` that also take KEY=VALUE words written after them, so that
    `pipeline CONFIG --stage bert bert.train_steps=10` works (argparse alone rejects a
    positional that follows an option once the positionals were read)."""

    def __call__(self, parser, namespace, values, option_string=None):
        values = list(values or [])
        if self.nargs == "+":
            setattr(namespace, self.dest, values.pop(0))
        else:
            setattr(namespace, self.dest, True)
        bad = [v for v in values if "=" not in v]
        if bad:
            parser.error(f"{option_string}: {bad[0]!r} is not a KEY=VALUE override")
        namespace.late_overrides = [*getattr(namespace, "late_overrides", []), *values]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG.yaml", help="pipeline config (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. bert.train_steps=20")
    add_option(parser, "--stage", default=None, nargs="+", action=_OptionThenOverrides, metavar=("NAME", "KEY=VALUE"),
                        help="run only this stage (its upstream must be done)")
    add_option(parser, "--from", dest="start", default=None, nargs="+", action=_OptionThenOverrides,
                        metavar=("NAME", "KEY=VALUE"),
                        help="rerun this stage and every later one, even if up to date")
    add_option(parser, "--force", default=False, nargs="*", action=_OptionThenOverrides,
                        metavar="KEY=VALUE", help="run the selected stages even if up to date")
    add_option(parser, "--dry-run", "--dry_run", dest="dry_run", default=False, nargs="*",
                        action=_OptionThenOverrides, metavar="KEY=VALUE",
                        help="check the config, print each stage's command and whether it would run; run nothing")
    parser.set_defaults(late_overrides=[])


def run(args: argparse.Namespace) -> int:
    from ja_pretrain.pipeline import run_pipeline

    run_pipeline(args.config, [*args.overrides, *args.late_overrides], stage=args.stage, start=args.start,
                 force=bool(args.force), dry_run=bool(args.dry_run))
    return 0

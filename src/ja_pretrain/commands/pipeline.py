"""`ja-pretrain pipeline`: run the stages of a YAML config in order, skipping finished ones."""

from __future__ import annotations

import argparse

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG.yaml", help="pipeline config (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. bert.train_steps=20")
    parser.add_argument("--stage", default=None, metavar="NAME", help="run only this stage (its upstream must be done)")
    parser.add_argument("--from", dest="start", default=None, metavar="NAME",
                        help="rerun this stage and every later one, even if up to date")
    parser.add_argument("--force", action="store_true", help="run the selected stages even if up to date")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="check the config, print each stage's command and whether it would run; run nothing")


def run(args: argparse.Namespace) -> int:
    from ja_pretrain.pipeline import run_pipeline

    run_pipeline(args.config, args.overrides, stage=args.stage, start=args.start, force=args.force,
                 dry_run=args.dry_run)
    return 0

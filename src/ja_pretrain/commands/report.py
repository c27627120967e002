"""`ja-pretrain report`: report.md with plots and tables for a run directory."""

from __future__ import annotations

import argparse

from ja_pretrain.utils.options import add_option

NAME = "report"
HELP = "write report.md with training plots, data counts, tokenizer statistics and held-out figures"
DESCRIPTION = """\
Summarise a run directory: every stage's counts (from its manifest.json), tokenizer statistics
on the corpus' valid.txt ([UNK] rate, subwords per word, vocabulary used), the saved models,
their held-out figures (metrics.json from `ja-pretrain evaluate`), and PNG plots of the training
logs (train_log.jsonl): loss (train and held-out), learning rate, tokens/s.

Writes OUT/report.md, OUT/loss.png, OUT/learning_rate.png, OUT/tokens_per_s.png (OUT defaults to
RUN_DIR/report).

examples:
  ja-pretrain report runs/quickstart
  ja-pretrain report runs/jawiki-bert-small --out /tmp/report
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory (a pipeline's run_dir, or any dir of stage outputs)")
    add_option(parser, "--out", default=None, metavar="DIR", help="where to write report.md and plots (default RUN_DIR/report)")
    add_option(parser, "--tokenizer-sentences", "--tokenizer_sentences", dest="tokenizer_sentences", type=int,
                        default=5000, help="held-out sentences for the tokenizer statistics (default 5000)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ja_pretrain.evaluation.report import write_report
    from ja_pretrain.evaluation.rundir import check_run_dir
    from ja_pretrain.utils.locks import exclusive

    out = Path(args.out) if args.out else check_run_dir(args.run_dir) / "report"
    with exclusive(out, f"--out {out}"):
        path = write_report(args.run_dir, out, tokenizer_sentences=args.tokenizer_sentences)
    print(f"report: {path}")
    return 0

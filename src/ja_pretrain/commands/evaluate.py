"""`ja-pretrain evaluate`: held-out masked-LM and replaced-token-detection figures."""

from __future__ import annotations

import argparse
import json

from ja_pretrain.utils.devices import DEVICES, PRECISION_CHOICES
from ja_pretrain.utils.options import add_option

NAME = "evaluate"
HELP = "held-out masked-LM loss/accuracy/perplexity and ELECTRA replaced-token detection"
DESCRIPTION = """\
Score a model on held-out text with a fixed masking seed, so that two models sharing a
tokenizer are compared on exactly the same masked positions.

MODEL_DIR is a saved model (config.json), a run-pretraining output (its final/), or an
extract-electra output (generator/ and discriminator/, both evaluated); give several to score
them on the same masks into one metrics.json.
  BERT (BertForMaskedLM / BertForPreTraining), ModernBERT (ModernBertForMaskedLM) and ELECTRA
  generators (ElectraForMaskedLM):
    masked-LM loss, accuracy and perplexity = exp(loss), every hidden token shown as [MASK].
  ELECTRA discriminators (ElectraForPreTraining): the masked positions are replaced by samples
    from the generator (--generator, or the generator/ beside it) or, without one, by uniformly
    random ordinary tokens; then accuracy, precision, recall, F1 and ROC AUC of "replaced".

examples:
  ja-pretrain evaluate runs/quickstart/bert --corpus runs/quickstart/corpus
  ja-pretrain evaluate runs/q/bert runs/q/electra-extracted --corpus runs/q/corpus --out runs/q/evaluation
  ja-pretrain evaluate runs/quickstart/electra-extracted --corpus valid.txt --json
  ja-pretrain evaluate out/discriminator --generator out/generator --corpus valid.txt --out eval/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", nargs="+", metavar="MODEL_DIR",
                        help="model dir, training output or extract-electra output (several: one metrics.json)")
    add_option(parser, "--corpus", required=True,
                        help="held-out text: a corpus dir (its valid.txt is used) or a corpus-format text file")
    add_option(parser, "--generator", default=None, metavar="DIR",
                        help="ELECTRA generator that corrupts the text for a discriminator")
    add_option(parser, "--seed", type=int, default=0, help="masking and sampling seed (default 0)")
    add_option(parser, "--max-sentences", "--max_sentences", dest="max_sentences", type=int, default=20000,
                        help="evaluate on at most N sentences, whole documents first (default 20000; 0 = all)")
    add_option(parser, "--sequence-length", "--sequence_length", dest="sequence_length", type=int, default=128,
                        help="packed sequence length, capped by the model's positions (default 128)")
    add_option(parser, "--mask-probability", "--mask_probability", dest="mask_probability", type=float,
                        default=0.15, help="share of tokens hidden (default 0.15)")
    add_option(parser, "--batch-size", "--batch_size", dest="batch_size", type=int, default=32)
    add_option(parser, "--device", choices=DEVICES, default="auto", help="default auto: a GPU when there is one")
    add_option(parser, "--precision", choices=PRECISION_CHOICES, default="auto",
               help="auto (default): bf16 on a GPU that has it, fp16 on an older one, fp32 on a CPU")
    add_option(parser, "--out", default=None, metavar="DIR", help="write DIR/metrics.json (and a manifest)")
    add_option(parser, "--json", action="store_true", help="print the figures as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from ja_pretrain.evaluation.evaluate import evaluate_model, summary_lines
    from ja_pretrain.utils.locks import exclusive

    with exclusive(args.out, f"--out {args.out}") if args.out else nullcontext():
        report = evaluate_model(
            args.model_dir,
            args.corpus,
            generator_dir=args.generator,
            seed=args.seed,
            max_sentences=args.max_sentences or None,
            sequence_length=args.sequence_length,
            mask_probability=args.mask_probability,
            batch_size=args.batch_size,
            device=args.device,
            precision=args.precision,
            out_dir=args.out,
        )
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print("\n".join(summary_lines(report)))
    return 0

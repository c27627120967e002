"""`ja-pretrain finetune`: fine-tune a model on downstream tasks and score it on their dev splits."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ja_pretrain.utils.devices import DEVICES, PRECISION_CHOICES
from ja_pretrain.utils.options import add_option

NAME = "finetune"
HELP = ("fine-tune and score a model on JGLUE (JSTS, JNLI, JCommonsenseQA, JSQuAD, MARC-ja), chABSA, livedoor "
        "or Wikipedia NER")
DESCRIPTION = """\
Fine-tune MODEL_DIR on each --task's train split and score it on the dev split, under the
protocol of the published JGLUE baselines: every point of the grid they searched (learning
rates 5e-5, 3e-5, 2e-5 x 3 and 4 epochs) is trained and the best on dev is reported, warmup
over the first 10% of the steps then linear decay, the task's published maximum length and
batch size. --quick trains one point (5e-5, 4 epochs) instead. With --seeds N each grid point
runs N seeds and the mean and standard deviation are reported. A run that departs from the
published protocol (--quick, a subsample, another length, batch or grid) says so in scores.json
and is marked in every table as not comparable with published figures.

MODEL_DIR is a run-pretraining output (its final/), an extract-electra output (its
discriminator/), or any BERT/ELECTRA save_pretrained dir with a BertJapaneseTokenizer (MeCab or
Sudachi words, WordPiece or SentencePiece subwords) beside it or given with --tokenizer.

tasks and their data (--data DIR, as published; or --train FILE --valid FILE):
  jsts            JGLUE JSTS: train-v1.3.json, valid-v1.3.json -> Pearson, Spearman
  jnli            JGLUE JNLI -> accuracy
  jcommonsenseqa  JGLUE JCommonsenseQA (5 choices) -> accuracy
  jsquad          JGLUE JSQuAD (SQuAD format; any SQuAD-format file such as JaQuAD with --train and
                  --valid): windows of 384 tokens, a new one every 128 (run_squad.py) -> exact
                  match, character F1
  marc_ja         JGLUE MARC-ja (your own files; no longer distributed) -> accuracy
  chabsa          chABSA-dataset.zip, its e*_ann.json files, or JSON Lines of them: target polarity
                  (sentence + target) -> accuracy, macro-F1; split by document (--valid_ratio)
  livedoor        ldcc-20140209.tar.gz, its text/ directory, or JSON Lines (category, title,
                  body) -> accuracy, macro-F1; split by article (--valid_ratio)
  ner             Stockmark's Wikipedia NER ner.json: BIO labels per token -> entity F1,
                  precision, recall; split by article (--valid_ratio)
  smoke           next-sentence pairs from a corpus (default: the bundled sample); a smoke test
--data DIR may hold the task's files, or hold them under TASK-v1.3/ (JGLUE's datasets/ layout
and `ja-pretrain download jglue`'s output), so one --data serves several JGLUE tasks; give
several paths for tasks from several publishers (each task takes the first that has its data).
`ja-pretrain download jglue|chabsa|livedoor|ner-wikipedia --out DIR` fetches them.

Writes OUT/scores.json (each metric on dev, every run, the protocol and how it departs from the
published one, the model's and the data's hashes), OUT/predictions.jsonl (one line per dev
example: id, gold label, prediction) and OUT/scores.md (the table beside published reference
figures); with several tasks, one such directory per task under OUT, plus OUT/suite.json and
OUT/scores.md for all of them. Per-seed jobs run on several machines (--seed K --seeds 1 each)
come back together in `ja-pretrain report`, as mean and std over their seeds.

examples:
  ja-pretrain download jglue --out data/jglue
  ja-pretrain finetune runs/jawiki-bert-small/bert --task jsts jnli jcommonsenseqa jsquad --data data/jglue --out runs/ft
  ja-pretrain finetune runs/q/electra-extracted --task jcommonsenseqa --data data/jglue --out runs/ft-jcqa
  ja-pretrain finetune models/bert-base-japanese-v3 --task chabsa --data data/chABSA-dataset.zip --seeds 5 --out ft/
  ja-pretrain finetune runs/fin/bert --task chabsa jsts --data data/chabsa data/jglue --out runs/fin/finetune
  ja-pretrain finetune runs/q/bert --task jsts --data data/jglue --quick --max_train_samples 2000 \\
      --out /tmp/quick     # a quick look on a CPU (marked as not comparable)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ja_pretrain.downstream.tasks import TASKS

    io = parser.add_argument_group("model, tasks and data")
    io.add_argument("model_dir", metavar="MODEL_DIR", help="model to fine-tune (final/ and discriminator/ are found)")
    add_option(io, "--task", "--tasks", dest="task", nargs="+", required=True, choices=tuple(TASKS), metavar="TASK",
                    help=f"one or more of: {', '.join(TASKS)}")
    add_option(io, "--data", metavar="PATH", nargs="+",
                    help="the tasks' data as published: directories, archives or files (each task takes the first "
                         "that holds its data)")
    add_option(io, "--train", metavar="FILE", help="the train split (with --valid, instead of --data)")
    add_option(io, "--valid", metavar="FILE", help="the dev split scored (with --train)")
    add_option(io, "--out", required=True, metavar="DIR", help="where scores.json, predictions.jsonl go")
    add_option(io, "--tokenizer", metavar="DIR", help="tokenizer dir, when MODEL_DIR has none beside the model")

    grid = parser.add_argument_group("protocol")
    add_option(grid, "--learning_rate", "--learning-rate", type=float, nargs="+",
                      help="learning rates tried; the best mean on dev is reported (default: JGLUE's 5e-5 3e-5 2e-5; "
                           "with --quick 5e-5)")
    add_option(grid, "--epochs", "--num_train_epochs", "--num-train-epochs", type=int, nargs="+",
                      help="epochs tried (default: JGLUE's 3 4; with --quick 4)")
    add_option(grid, "--quick", action="store_true",
                      help="one grid point (lr 5e-5, 4 epochs) instead of the six JGLUE searched: a quick look, "
                           "marked as not comparable with published figures")
    add_option(grid, "--seeds", type=int, default=1, help="seeds per grid point: mean and std are reported (default 1)")
    add_option(grid, "--seed", type=int, default=42, help="the first seed (default 42)")
    add_option(grid, "--batch_size", "--batch-size", "--per_device_train_batch_size", type=int,
                      help="train batch (default: the task's published one, 32; JCommonsenseQA 64)")
    add_option(grid, "--max_length", "--max-length", "--max_seq_length", type=int,
                      help="tokens per sequence (default: the task's published one: 128; JCommonsenseQA 64, "
                           "JSQuAD 384, MARC-ja and livedoor 512; cut to the model's positions where it has fewer)")
    add_option(grid, "--warmup_ratio", "--warmup-ratio", type=float, default=0.1, help="default 0.1")
    add_option(grid, "--weight_decay", "--weight-decay", type=float, default=0.0, help="default 0 (as Trainer)")
    add_option(grid, "--max_train_samples", "--max-train-samples", type=int,
                      help="train on at most N examples (a seeded sample), for quick runs")
    add_option(grid, "--max_eval_samples", "--max-eval-samples", type=int, help="score at most N dev examples")
    add_option(grid, "--valid_ratio", "--valid-ratio", type=float, default=0.2,
                      help="chABSA, livedoor, smoke: share of documents in the dev split (default 0.2)")
    add_option(grid, "--split_seed", "--split-seed", type=int, default=0, help="seed of the split by document")

    run = parser.add_argument_group("run")
    add_option(run, "--precision", choices=PRECISION_CHOICES, default="auto",
                     help="auto (default): bf16 on a GPU that has it, fp32 on a CPU")
    add_option(run, "--device", choices=DEVICES, default="auto", help="default auto: a GPU when there is one")
    add_option(run, "--save_model", "--save-model", action="store_true",
                     help="save the chosen run's fine-tuned model to OUT/model (loads with the task's Auto class: "
                          "AutoModelForSequenceClassification, AutoModelForMultipleChoice, "
                          "AutoModelForQuestionAnswering or AutoModelForTokenClassification)")
    add_option(run, "--torch_dropout", "--torch-dropout", action="store_true",
                     help="on a CPU, keep PyTorch's dropout and SDPA attention instead of our cheaper ones")
    add_option(run, "--no_progress", "--no-progress", action="store_true", help="no progress bar")
    add_option(run, "--json", action="store_true", help="print the scores as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    from ja_pretrain.downstream.suite import Protocol, SuiteOptions, run_suite, summary_lines
    from ja_pretrain.downstream.tasks import DEFAULT_EPOCHS, DEFAULT_LEARNING_RATES, QUICK_EPOCHS, QUICK_LEARNING_RATES
    from ja_pretrain.utils.locks import exclusive

    rates = args.learning_rate or (QUICK_LEARNING_RATES if args.quick else DEFAULT_LEARNING_RATES)
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else DEFAULT_EPOCHS)
    protocol = Protocol(
        learning_rates=tuple(rates), epochs=tuple(epochs), seeds=args.seeds, seed=args.seed,
        batch_size=args.batch_size, max_length=args.max_length, warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay, max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples, valid_ratio=args.valid_ratio, split_seed=args.split_seed,
        precision=args.precision,
    )
    options = SuiteOptions(tasks=args.task, out=Path(args.out), data=args.data, train=args.train, valid=args.valid,
                           tokenizer=args.tokenizer, protocol=protocol, device=args.device,
                           cpu_ops=not args.torch_dropout, save_model=args.save_model,
                           progress=not args.no_progress)
    with exclusive(args.out, f"--out {args.out}"):
        result = run_suite(args.model_dir, options)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print("\n".join(summary_lines(result)))
    return 0

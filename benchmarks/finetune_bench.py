"""Fine-tuning speed and dev scores: `ja-pretrain finetune`'s path against the route users run today.

    python benchmarks/finetune_bench.py --model runs/shared-sample/bert/final [--repeats 3]

The baseline is what the JGLUE fine-tuning scripts do (transformers' run_glue.py): the model's
BertJapaneseTokenizer through AutoTokenizer, every example padded to max_seq_length 128
(run_glue's default --pad_to_max_length), and transformers' Trainer (AdamW, linear schedule with
10% warmup, given as warmup_steps=0.1 in transformers 5, no evaluation during training).
Token type ids are asked for explicitly: under
transformers 5 BertJapaneseTokenizer no longer returns them by default, while the published
scores were made with them. A second baseline arm gives the Trainer the best options it has
(dynamic padding with DataCollatorWithPadding and group_by_length) to show where the gap comes
from.

Ours is `ja-pretrain finetune`'s code path: FastEncoder ids (equal to AutoTokenizer's),
batches grouped by length and padded to their own longest row, our training loop (on a CPU,
cheaper dropout and attention).

The same examples, model, learning rate, epochs, batch size and seed for every arm; each arm
runs as a fresh process (spawned, so no allocator state is shared) and the arms alternate, the
first one rotating, over --repeats rounds. Timed: everything after the imports: loading the
tokenizer and model, encoding, training and predicting the dev split. Ratios are per round,
then the median over rounds. Dev scores are given per arm (mean and std over rounds; each round
has its own seed, shared by the arms).

Data: ../shared/data/eval/jglue/jsts (train-v1.3.json, valid-v1.3.json) and
../shared/data/eval/chabsa/chabsa_train.jsonl (split by document, seed 0, 20% dev; the same
split for every arm). Prints a table and writes benchmarks/out/finetune_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no bar per local model load

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "eval"
OUT_DIR = ROOT / "benchmarks" / "out"
TASK_DATA = {"jsts": SHARED / "jglue" / "jsts", "chabsa": SHARED / "chabsa" / "chabsa_train.jsonl"}
ARMS = ("ours", "trainer", "trainer-dynamic")
ARM_NAMES = {"ours": "ja-pretrain finetune", "trainer": "Trainer + BertJapaneseTokenizer, padded to max length (JGLUE scripts)",
             "trainer-dynamic": "Trainer, dynamic padding + group_by_length"}


def load_examples(task: str, max_train: int | None, max_eval: int | None):
    """The train and dev examples every arm uses (our readers; the split by document for chABSA)."""
    from ja_pretrain.downstream.data import load_task_data
    from ja_pretrain.downstream.tasks import TASKS

    data = load_task_data(TASKS[task], [TASK_DATA[task]], valid_ratio=0.2, split_seed=0,
                          max_train_samples=max_train, max_eval_samples=max_eval)
    return TASKS[task], data.train, data.valid


# -- the arms (each runs in its own process) --------------------------------------------------

def run_ours(spec, train, valid, args) -> dict:
    from transformers import AutoModelForSequenceClassification  # noqa: F401

    from ja_pretrain.downstream.encoding import encode_split
    from ja_pretrain.downstream.finetune import RunOptions, train_and_predict
    from ja_pretrain.models.cpu_ops import use_cpu_ops  # noqa: F401 - imported before the clock, as the baseline's
    from ja_pretrain.tokenization.encoder import FastEncoder

    started = time.perf_counter()
    encoder = FastEncoder(args.model)
    train_split = encode_split(encoder, train, spec, args.max_length)
    valid_split = encode_split(encoder, valid, spec, args.max_length)
    encoded = time.perf_counter()
    opts = RunOptions(learning_rate=args.learning_rate, epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
                      eval_batch_size=args.batch_size, device="cpu", progress=False)
    result = train_and_predict(Path(args.model), spec, train_split, valid_split, opts, encoder.special_ids["pad"])
    return {"seconds": time.perf_counter() - started, "encode_seconds": encoded - started,
            "train_seconds": result.train_seconds, "predict_seconds": result.predict_seconds,
            "metrics": result.metrics, "positions": result.padded_tokens, "text_tokens": result.text_tokens}


def run_trainer(spec, train, valid, args, dynamic: bool) -> dict:
    import numpy as np
    import torch
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    from ja_pretrain.downstream.heads import model_config
    from ja_pretrain.downstream.metrics import task_metrics
    from ja_pretrain.downstream.tasks import REGRESSION

    transformers.logging.set_verbosity_error()  # one truncation warning per pair otherwise
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    def features(examples):
        first = [e.pairs[0][0] for e in examples]
        second = [e.pairs[0][1] for e in examples]
        encoded = tokenizer(first, second, truncation=True, max_length=args.max_length, return_token_type_ids=True,
                            padding=False if dynamic else "max_length")
        label_type = float if spec.kind == REGRESSION else int
        return [{**{k: encoded[k][i] for k in encoded}, "labels": label_type(e.label)} for i, e in enumerate(examples)]

    train_features, valid_features = features(train), features(valid)
    encoded = time.perf_counter()
    torch.manual_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, config=model_config(Path(args.model), spec))
    training_args = TrainingArguments(
        output_dir=args.scratch, per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=args.batch_size,
        learning_rate=args.learning_rate, num_train_epochs=args.epochs, warmup_steps=0.1, lr_scheduler_type="linear",
        weight_decay=0.0, seed=args.seed, eval_strategy="no", save_strategy="no", report_to=[], logging_strategy="no",
        use_cpu=True, train_sampling_strategy="group_by_length" if dynamic else "random", disable_tqdm=True,
        dataloader_num_workers=0)
    collator = DataCollatorWithPadding(tokenizer) if dynamic else default_data_collator
    trainer = Trainer(model=model, args=training_args, train_dataset=train_features, data_collator=collator)
    trained_at = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - trained_at
    predicted_at = time.perf_counter()
    logits = trainer.predict(valid_features).predictions
    predict_seconds = time.perf_counter() - predicted_at
    predictions = logits[:, 0] if spec.kind == REGRESSION else np.argmax(logits, axis=-1)
    gold = np.array([e.label for e in valid])
    positions = sum(len(f["input_ids"]) for f in train_features) * args.epochs if not dynamic else None
    return {"seconds": time.perf_counter() - started, "encode_seconds": encoded - started,
            "train_seconds": train_seconds, "predict_seconds": predict_seconds,
            "metrics": task_metrics(spec.metrics, predictions, gold, num_classes=len(spec.labels)),
            "positions": positions}


def arm_main(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    spec, train, valid = load_examples(args.task, args.max_train_samples, args.max_eval_samples)
    if args.arm == "ours":
        result = run_ours(spec, train, valid, args)
    else:
        result = run_trainer(spec, train, valid, args, dynamic=args.arm == "trainer-dynamic")
    result.update(train_examples=len(train), dev_examples=len(valid))
    print("RESULT " + json.dumps(result))
    return 0


# -- the parent: alternate the arms, summarise ------------------------------------------------

def run_arm(arm: str, task: str, seed: int, args) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="finetune-bench-") as scratch:
        command = [sys.executable, __file__, "--arm", arm, "--task", task, "--seed", str(seed), "--scratch", scratch,
                   "--model", args.model, "--epochs", str(args.epochs), "--learning_rate", str(args.learning_rate),
                   "--batch_size", str(args.batch_size), "--max_length", str(args.max_length),
                   "--threads", str(args.threads)]
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(args, name) is not None:
                command += [f"--{name}", str(getattr(args, name))]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"arm {arm} on {task} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def summarise(task: str, rounds: list[dict[str, dict]], spec_metrics: tuple[str, ...]) -> tuple[list[str], dict]:
    arms = [a for a in ARMS if a in rounds[0]]
    lines, figures = [], {}
    for arm in arms:
        seconds = [r[arm]["seconds"] for r in rounds]
        scores = {m: [r[arm]["metrics"][m] for r in rounds] for m in spec_metrics}
        ratio = statistics.median(r[arm]["seconds"] / r["ours"]["seconds"] for r in rounds)
        low = min(r[arm]["seconds"] / r["ours"]["seconds"] for r in rounds)
        high = max(r[arm]["seconds"] / r["ours"]["seconds"] for r in rounds)
        score_text = ", ".join(f"{m} {statistics.fmean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0:.4f}"
                               for m, v in scores.items())
        figures[arm] = {"seconds": seconds, "median_seconds": statistics.median(seconds), "scores": scores,
                        "time_over_ours": ratio, "train_seconds": [r[arm]["train_seconds"] for r in rounds],
                        "encode_seconds": [r[arm]["encode_seconds"] for r in rounds]}
        lines.append(f"| {task} | {ARM_NAMES[arm]} | {statistics.median(seconds):.1f} | "
                     f"{statistics.median(figures[arm]['train_seconds']):.1f} | "
                     f"{statistics.median(figures[arm]['encode_seconds']):.2f} | "
                     + (f"{ratio:.2f}x ({low:.2f}-{high:.2f})" if arm != "ours" else "1.00x") + f" | {score_text} |")
    return lines, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "runs" / "shared-sample" / "bert" / "final"),
                        help="a BERT dir with its tokenizer (default: the shared-sample pretraining's final/)")
    parser.add_argument("--tasks", nargs="+", default=["jsts", "chabsa"], choices=tuple(TASK_DATA))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--max_train_samples", type=int, default=3000, help="a seeded subset of the train split")
    parser.add_argument("--max_eval_samples", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no_dynamic_arm", action="store_true", help="leave out the Trainer arm with dynamic padding")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        return arm_main(args)
    if not (Path(args.model) / "config.json").is_file():
        raise SystemExit(f"--model {args.model}: no config.json; pretrain it first with "
                         "`ja-pretrain pipeline benchmarks/configs/shared-sample-bert.yaml` or pass --model DIR")
    missing = [str(TASK_DATA[t]) for t in args.tasks if not TASK_DATA[t].exists()]
    if missing:
        raise SystemExit(f"this benchmark reads ../shared/data/eval; missing: {', '.join(missing)}")
    from ja_pretrain.downstream.tasks import TASKS

    arms = [a for a in ARMS if not (args.no_dynamic_arm and a == "trainer-dynamic")]
    body = ["| task | arm | seconds (median) | train s | encode s | time / ours (min-max) | dev score (mean ± std "
            "over rounds) |", "| :-- | :-- | --: | --: | --: | --: | :-- |"]
    figures = {}
    started = time.time()
    for task in args.tasks:
        rounds = []
        for r in range(args.repeats):
            order = arms[r % len(arms):] + arms[:r % len(arms)]
            result = {}
            for arm in order:
                result[arm] = run_arm(arm, task, seed=r, args=args)
                print(f"  {task} round {r + 1}/{args.repeats} {arm}: {result[arm]['seconds']:.1f} s, "
                      f"{result[arm]['metrics']}", file=sys.stderr, flush=True)
            rounds.append(result)
        lines, figures[task] = summarise(task, rounds, TASKS[task].metrics)
        figures[task]["rounds"] = rounds
        body += lines
    header = (f"finetune_bench on CPU ({os.cpu_count()} cores), {args.threads} torch threads; model {args.model}; "
              f"{args.epochs} epochs, lr {args.learning_rate:g}, batch {args.batch_size}, max length {args.max_length}, "
              f"train subset {args.max_train_samples}; {args.repeats} rounds; {time.time() - started:.0f} s in all")
    table = "\n".join([header, "", *body])
    print(table)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "finetune_bench.json").write_text(json.dumps({
        "python": platform.python_version(), "options": vars(args), "figures": figures, "table": table,
    }, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())

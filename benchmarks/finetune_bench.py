"""Fine-tuning speed and dev scores on every kind of task: `ja-pretrain finetune`'s path against
the transformers Trainer as a user would tune it.

    python benchmarks/finetune_bench.py --model runs/shared-sample/bert/final [--repeats 2]

Arms (each a fresh, spawned process; they alternate, the first one rotating, over --repeats
rounds; the same examples, model, learning rate, epochs, batch size and seed, one per round):

- ours: `ja-pretrain finetune`'s code path: FastEncoder ids, batches grouped by length and padded
  to their own longest row, the kind's training step (heads that read [CLS] run the last layer
  at that row only), cheaper CPU dropout and attention.
- trainer-dynamic ("tuned Trainer"): transformers' Trainer with dynamic padding (the task's
  data collator) and `train_sampling_strategy="group_by_length"`. Sequence tasks are encoded by
  the model's BertJapaneseTokenizer through AutoTokenizer (token types asked for: transformers 5
  no longer returns them by default); JCommonsenseQA, JSQuAD and NER start from our encoded
  rows (the same ids: BertJapaneseTokenizer has no offset mapping to place answers and entities
  with, which is why the JGLUE scripts patch transformers), so that arm times training only.
- trainer (with --padded_arm, JSTS and chABSA only): what the JGLUE scripts run, every pair
  padded to max length 128 (run_glue.py's default).

The Trainer's predictions come back in its evaluation sampler's order, and under
`group_by_length` transformers 5 length-groups (and shuffles) evaluation too: predictions are
made with a sequential sampler (`train_sampling_strategy="random"` set for predict), so they
line up with the dev examples. (Before this, the tuned arm was scored against the dev labels
in the wrong order: its chABSA accuracy of 0.489 was chance agreement, not a worse model.)

Timed: everything after the imports: loading the tokenizer and model, encoding, training and
predicting the dev split. Ratios are per round, then the median over rounds.

Data (../shared/data/eval): JSTS train/valid; chABSA split by document (seed 0, 20% dev);
JCommonsenseQA is not in the shared data, so a stand-in of its shape is built from JSQuAD v1.3
valid: each question with its answer and the answers of four other questions of the same
article as the five choices (train from the first 80% of the articles, dev from the rest);
JSQuAD trained on JaQuAD train (JSQuAD's train split is not there) and scored on JSQuAD valid;
Wikipedia NER split by article (seed 0, 20% dev). Prints a table and writes
benchmarks/out/finetune_bench.json (or --json NAME).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no bar per local model load

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "eval"
OUT_DIR = ROOT / "benchmarks" / "out"
TASK_DATA = {
    "jsts": {"data": [SHARED / "jglue" / "jsts"]},
    "chabsa": {"data": [SHARED / "chabsa" / "chabsa_train.jsonl"]},
    "jcommonsenseqa": {"stand_in": SHARED / "jglue" / "jsquad" / "valid-v1.3.json"},
    "jsquad": {"train": SHARED / "jaquad" / "jaquad_train.json.gz", "valid": SHARED / "jglue" / "jsquad" / "valid-v1.3.json"},
    "ner": {"data": [SHARED / "ner-wikipedia" / "ner.json"]},
}
ARMS = ("ours", "trainer-dynamic", "trainer")
ARM_NAMES = {"ours": "ja-pretrain finetune", "trainer-dynamic": "Trainer, dynamic padding + group_by_length",
             "trainer": "Trainer + BertJapaneseTokenizer, padded to max length (JGLUE scripts)"}
PADDED_TASKS = ("jsts", "chabsa")


def choice_stand_in(path: Path):
    """JCommonsenseQA-shaped examples from a SQuAD-format file: question -> its answer among four
    answers of other questions of the same article; (train, dev) by article, 80/20."""
    from ja_pretrain.downstream.readers import Example, read_task_file
    from ja_pretrain.downstream.tasks import TASKS

    questions = read_task_file(TASKS["jsquad"], path)
    by_article: dict[str, list] = {}
    for q in questions:
        by_article.setdefault(q.group, []).append(q)
    rng = random.Random(0)
    articles = sorted(by_article)
    split = {name: ("train" if i < 0.8 * len(articles) else "valid") for i, name in enumerate(articles)}
    out = {"train": [], "valid": []}
    for name in articles:
        members = by_article[name]
        answers = sorted({q.answers[0][0] for q in members})
        for q in members:
            others = [a for a in answers if a != q.answers[0][0]]
            if len(others) < 4:
                continue
            choices = rng.sample(others, 4)
            label = rng.randrange(5)
            choices.insert(label, q.answers[0][0])
            out[split[name]].append(Example(uid=q.uid, pairs=tuple((q.question, c) for c in choices), label=label))
    return out["train"], out["valid"]


def load_examples(task: str, max_train: int | None, max_eval: int | None):
    """The train and dev examples every arm uses."""
    from ja_pretrain.downstream.data import load_task_data, subsample
    from ja_pretrain.downstream.tasks import TASKS

    spec = TASKS[task]
    if task == "jcommonsenseqa":
        train, valid = choice_stand_in(TASK_DATA[task]["stand_in"])
        return spec, subsample(train, max_train, seed=0), subsample(valid, max_eval, seed=0)
    data = load_task_data(spec, **TASK_DATA[task], valid_ratio=0.2, split_seed=0, max_train_samples=max_train,
                          max_eval_samples=max_eval)
    return spec, data.train, data.valid


# -- the arms (each runs in its own process) --------------------------------------------------

def run_ours(spec, train, valid, args) -> dict:
    from transformers import AutoModelForSequenceClassification  # noqa: F401

    from ja_pretrain.downstream.finetune import RunOptions, train_and_predict
    from ja_pretrain.downstream.kinds import task_kind
    from ja_pretrain.models.cpu_ops import use_cpu_ops  # noqa: F401 - imported before the clock, as the baseline's
    from ja_pretrain.tokenization.encoder import FastEncoder

    started = time.perf_counter()
    encoder = FastEncoder(args.model)
    kind = task_kind(spec)
    length = min(spec.max_length, args.max_length)
    train_split, _ = kind.encode(encoder, train, length)
    valid_split, _ = kind.encode(encoder, valid, length)
    encoded = time.perf_counter()
    opts = RunOptions(learning_rate=args.learning_rate, epochs=args.epochs, seed=args.seed,
                      batch_size=args.batch_size or spec.batch_size, eval_batch_size=args.batch_size or spec.batch_size,
                      device="cpu", progress=False)
    result = train_and_predict(Path(args.model), spec, train_split, valid_split, opts, encoder.special_ids["pad"])
    return {"seconds": time.perf_counter() - started, "encode_seconds": encoded - started,
            "train_seconds": result.train_seconds, "predict_seconds": result.predict_seconds,
            "metrics": result.metrics, "positions": result.padded_tokens, "text_tokens": result.text_tokens}


def _row_features(kind, split, rows_of_labels):
    """Trainer features from our encoded rows: per row, its ids, token types and targets."""
    import numpy as np

    features = []
    for row in range(split.num_rows):
        c = split.num_choices
        seqs = range(row * c, row * c + c)
        ids = [split.ids[split.offsets[s]:split.offsets[s] + split.lengths[s]].tolist() for s in seqs]
        types = [(np.arange(split.lengths[s]) >= split.first_lengths[s]).astype(int).tolist() for s in seqs]
        feature = {"input_ids": ids if c > 1 else ids[0], "token_type_ids": types if c > 1 else types[0],
                   "attention_mask": [[1] * len(i) for i in ids] if c > 1 else [1] * len(ids[0])}
        feature.update(rows_of_labels(row))
        features.append(feature)
    return features


def run_trainer(spec, train, valid, args, dynamic: bool) -> dict:
    import numpy as np
    import torch
    import transformers
    from transformers import (
        AutoModelForMultipleChoice,
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForMultipleChoice,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    from ja_pretrain.downstream.kinds import task_kind
    from ja_pretrain.downstream.kinds.qa import best_spans, qa_metrics
    from ja_pretrain.downstream.kinds.tokens import decode_entities, ner_metrics
    from ja_pretrain.downstream.prediction_scores import task_metrics
    from ja_pretrain.downstream.tasks import MULTIPLE_CHOICE, QUESTION_ANSWERING, REGRESSION, TOKEN_CLASSIFICATION
    from ja_pretrain.tokenization.encoder import FastEncoder

    transformers.logging.set_verbosity_error()  # one truncation warning per pair otherwise
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    kind = task_kind(spec)
    length = min(spec.max_length, args.max_length)
    auto = {MULTIPLE_CHOICE: AutoModelForMultipleChoice, QUESTION_ANSWERING: AutoModelForQuestionAnswering,
            TOKEN_CLASSIFICATION: AutoModelForTokenClassification}.get(spec.kind, AutoModelForSequenceClassification)
    if spec.kind in (REGRESSION, "classification"):
        def features(examples):
            first = [e.pairs[0][0] for e in examples]
            second = [e.pairs[0][1] for e in examples]
            encoded = tokenizer(first, second, truncation=True, max_length=length,
                                return_token_type_ids=True, padding=False if dynamic else "max_length")
            label_type = float if spec.kind == REGRESSION else int
            return [{**{k: encoded[k][i] for k in encoded}, "labels": label_type(e.label)}
                    for i, e in enumerate(examples)]

        train_features, valid_features = features(train), features(valid)
        collator = DataCollatorWithPadding(tokenizer) if dynamic else default_data_collator
    else:  # our rows, the same ids as AutoTokenizer's (see the docstring)
        encoder = FastEncoder(args.model)
        train_split, _ = kind.encode(encoder, train, length)
        valid_split, _ = kind.encode(encoder, valid, length)

        def labels_of(split):
            if spec.kind == QUESTION_ANSWERING:
                return lambda row: {"start_positions": int(split.labels[row][0]), "end_positions": int(split.labels[row][1])}
            if spec.kind == TOKEN_CLASSIFICATION:
                return lambda row: {"labels": split.token_labels[split.offsets[row]:split.offsets[row]
                                                                 + split.lengths[row]].tolist()}
            return lambda row: {"labels": int(split.labels[row])}

        train_features = _row_features(kind, train_split, labels_of(train_split))
        valid_features = _row_features(kind, valid_split, labels_of(valid_split))
        collator = {MULTIPLE_CHOICE: DataCollatorForMultipleChoice(tokenizer),
                    TOKEN_CLASSIFICATION: DataCollatorForTokenClassification(tokenizer)}.get(
            spec.kind, DataCollatorWithPadding(tokenizer))
    encoded = time.perf_counter()
    torch.manual_seed(args.seed)
    model = auto.from_pretrained(args.model, config=kind.model_config(Path(args.model)))
    batch = args.batch_size or spec.batch_size
    training_args = TrainingArguments(
        output_dir=args.scratch, per_device_train_batch_size=batch, per_device_eval_batch_size=batch,
        learning_rate=args.learning_rate, num_train_epochs=args.epochs, warmup_steps=0.1, lr_scheduler_type="linear",
        weight_decay=0.0, seed=args.seed, eval_strategy="no", save_strategy="no", report_to=[], logging_strategy="no",
        use_cpu=True, train_sampling_strategy="group_by_length" if dynamic else "random", disable_tqdm=True,
        dataloader_num_workers=0)
    trainer = Trainer(model=model, args=training_args, train_dataset=train_features, data_collator=collator)
    trained_at = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - trained_at
    predicted_at = time.perf_counter()
    # under group_by_length transformers 5 length-groups the evaluation sampler too: predictions
    # would come back shuffled; "random" gives evaluation its sequential sampler
    trainer.args.train_sampling_strategy = "random"
    output = trainer.predict(valid_features)
    predict_seconds = time.perf_counter() - predicted_at
    if spec.kind == QUESTION_ANSWERING:
        starts, ends = output.predictions
        lengths = valid_split.lengths
        predicted = best_spans(valid_split, [starts[r, :lengths[r]] for r in range(len(lengths))],
                               [ends[r, :lengths[r]] for r in range(len(lengths))])
        metrics = qa_metrics(predicted, valid_split.gold)
    elif spec.kind == TOKEN_CLASSIFICATION:
        labels = np.argmax(output.predictions, axis=-1)
        spans = valid_split.char_spans
        predicted = [decode_entities(labels[r, :valid_split.lengths[r]],
                                     spans[valid_split.offsets[r]:valid_split.offsets[r] + valid_split.lengths[r]])
                     for r in range(valid_split.num_rows)]
        metrics = ner_metrics(predicted, valid_split.gold)
    else:
        logits = output.predictions
        predicted = logits[:, 0] if spec.kind == REGRESSION else np.argmax(logits, axis=-1)
        metrics = task_metrics(spec.metrics, predicted, np.array([e.label for e in valid]))
    return {"seconds": time.perf_counter() - started, "encode_seconds": encoded - started,
            "train_seconds": train_seconds, "predict_seconds": predict_seconds, "metrics": metrics}


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
                   "--max_length", str(args.max_length), "--threads", str(args.threads)]
        for name in ("max_train_samples", "max_eval_samples", "batch_size"):
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
        ratios = [r[arm]["seconds"] / r["ours"]["seconds"] for r in rounds]
        train_ratios = [r[arm]["train_seconds"] / r["ours"]["train_seconds"] for r in rounds]
        score_text = ", ".join(f"{m} {statistics.fmean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0:.4f}"
                               for m, v in scores.items())
        figures[arm] = {"seconds": seconds, "median_seconds": statistics.median(seconds), "scores": scores,
                        "time_over_ours": statistics.median(ratios), "train_time_over_ours": statistics.median(train_ratios),
                        "train_seconds": [r[arm]["train_seconds"] for r in rounds],
                        "encode_seconds": [r[arm]["encode_seconds"] for r in rounds]}
        ratio = (f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}); train "
                 f"{statistics.median(train_ratios):.2f}x" if arm != "ours" else "1.00x")
        lines.append(f"| {task} | {ARM_NAMES[arm]} | {statistics.median(seconds):.1f} | "
                     f"{statistics.median(figures[arm]['train_seconds']):.1f} | "
                     f"{statistics.median(figures[arm]['encode_seconds']):.2f} | {ratio} | {score_text} |")
    return lines, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "runs" / "shared-sample" / "bert" / "final"),
                        help="a BERT dir with its tokenizer (default: the shared-sample pretraining's final/)")
    parser.add_argument("--tasks", nargs="+", default=list(TASK_DATA), choices=tuple(TASK_DATA))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--batch_size", type=int, help="default: each task's published one")
    parser.add_argument("--max_length", type=int, default=128, help="a cap on each task's published length "
                        "(the model's positions)")
    parser.add_argument("--max_train_samples", type=int, default=1500, help="a seeded subset of the train split")
    parser.add_argument("--max_eval_samples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default="finetune_bench.json", help="file name under benchmarks/out")
    parser.add_argument("--padded_arm", action="store_true", help="add the JGLUE scripts' padded Trainer (JSTS, chABSA)")
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
    missing = [str(p) for t in args.tasks for v in TASK_DATA[t].values() for p in (v if isinstance(v, list) else [v])
               if not p.exists()]
    if missing:
        raise SystemExit(f"this benchmark reads ../shared/data/eval; missing: {', '.join(missing)}")
    from ja_pretrain.downstream.tasks import TASKS

    body = ["| task | arm | seconds (median) | train s | encode s | time / ours (min-max) | dev score (mean ± std "
            "over rounds) |", "| :-- | :-- | --: | --: | --: | --: | :-- |"]
    figures = {}
    started = time.time()
    for task in args.tasks:
        arms = [a for a in ARMS if a != "trainer" or (args.padded_arm and task in PADDED_TASKS)]
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
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (f"finetune_bench on CPU ({os.cpu_count()} cores, load {load:.1f} at the end), {args.threads} torch threads; "
              f"model {args.model}; {args.epochs} epochs, lr {args.learning_rate:g}, batch {args.batch_size or 'published'}, "
              f"max length {args.max_length}, train subset {args.max_train_samples}, dev subset {args.max_eval_samples}; "
              f"{args.repeats} rounds; {time.time() - started:.0f} s in all")
    table = "\n".join([header, "", *body])
    print(table)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / args.json).write_text(json.dumps({
        "python": platform.python_version(), "options": vars(args), "figures": figures, "table": table,
    }, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())

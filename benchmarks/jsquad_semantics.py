"""How much JSQuAD's figure moves with run_squad.py's semantics: one model fine-tuned and scored
by `ja-pretrain finetune` as it was before (doc_stride as the overlap of windows, run_qa.py's
reading; no max-context filter) and as it is now (doc_stride as the step between window
starts and the max-context filter, as JGLUE ran JSQuAD with the legacy run_squad.py).

    python benchmarks/jsquad_semantics.py --model runs/shared-sample/bert/final [--before fa10140]

The "before" code is the package at git revision --before (exported with `git archive`); the
"after" code is this tree. Both run the same command on the same model, data and protocol:
trained on JaQuAD train (JSQuAD's train split is not in ../shared/data), scored on JSQuAD v1.3
valid. Also counted, without training: how many windows the dev contexts make under each
reading, at the model's length and at JGLUE's 384, and how many dev questions have context
tokens in more than one window (where the max-context filter can change a prediction).
Prints a table and writes benchmarks/out/jsquad_semantics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "eval"
OUT_DIR = ROOT / "benchmarks" / "out"
TRAIN = SHARED / "jaquad" / "jaquad_train.json.gz"
VALID = SHARED / "jglue" / "jsquad" / "valid-v1.3.json"


def export_revision(revision: str, into: Path) -> Path:
    """The package source at `revision`, as `git archive` gives it; returns its src/ dir."""
    archive = into / "before.tar"
    with open(archive, "wb") as f:
        subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src"], stdout=f, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def finetune(src: Path, model: str, out: Path, args) -> tuple[dict, float]:
    command = [sys.executable, "-m", "ja_pretrain", "finetune", model, "--task", "jsquad", "--train", str(TRAIN),
               "--valid", str(VALID), "--learning_rate", str(args.learning_rate), "--epochs", str(args.epochs),
               "--max_train_samples", str(args.max_train_samples), "--out", str(out), "--device", "cpu",
               "--no_progress"]
    if args.max_eval_samples:
        command += ["--max_eval_samples", str(args.max_eval_samples)]
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src)})
    if done.returncode != 0:
        raise SystemExit(f"finetune with {src} failed:\n{done.stderr[-3000:]}")
    return json.loads((out / "scores.json").read_text(encoding="utf-8")), time.time() - started


def window_counts(model: str, lengths: tuple[int, ...]) -> dict[str, dict[str, int]]:
    """Dev windows under each reading of doc_stride 128, and questions with tokens in several."""
    from ja_pretrain.downstream.kinds.qa import DOC_STRIDE, MAX_QUESTION_TOKENS, window_step, windows
    from ja_pretrain.downstream.readers import read_task_file
    from ja_pretrain.downstream.tasks import TASKS
    from ja_pretrain.tokenization.encoder import FastEncoder

    examples = read_task_file(TASKS["jsquad"], VALID)
    encoder = FastEncoder(model)
    texts = list(dict.fromkeys(e.question for e in examples))
    questions = {t: len(ids) for t, ids in zip(texts, encoder.encode_sentences(texts), strict=True)}
    contexts = list(dict.fromkeys(e.context for e in examples))
    context_tokens = {t: len(ids) for t, ids in zip(contexts, encoder.encode_sentences(contexts), strict=True)}
    out = {}
    for length in lengths:
        counts = {"questions": len(examples), "windows_before": 0, "windows_after": 0, "several_windows_after": 0}
        for e in examples:
            room = length - min(questions[e.question], MAX_QUESTION_TOKENS) - 3
            n = context_tokens[e.context]
            before = windows(n, room, room - min(DOC_STRIDE, room // 2))  # the old overlap reading
            after = windows(n, room, window_step(room, DOC_STRIDE))
            counts["windows_before"] += len(before)
            counts["windows_after"] += len(after)
            counts["several_windows_after"] += len(after) > 1
        out[str(length)] = counts
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "runs" / "shared-sample" / "bert" / "final"))
    parser.add_argument("--before", default="fa10140", help="the git revision of the code before the change")
    parser.add_argument("--learning_rate", type=float, default=2e-4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max_train_samples", type=int, default=1000)
    parser.add_argument("--max_eval_samples", type=int, help="default: all of JSQuAD valid")
    args = parser.parse_args()
    if not (Path(args.model) / "config.json").is_file():
        raise SystemExit(f"--model {args.model}: no config.json")
    if not (TRAIN.is_file() and VALID.is_file()):
        raise SystemExit(f"this benchmark reads {TRAIN} and {VALID}")
    sys.path.insert(0, str(ROOT / "src"))
    positions = json.loads((Path(args.model) / "config.json").read_text())["max_position_embeddings"]
    counts = window_counts(args.model, tuple(sorted({min(positions, 384), 384})))
    results, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="jsquad-semantics-") as scratch:
        trees = {"before": export_revision(args.before, Path(scratch)), "after": ROOT / "src"}
        for label, src in trees.items():
            results[label], seconds[label] = finetune(src, args.model, Path(scratch) / label, args)
    before, after = (results[k]["metrics"] for k in ("before", "after"))
    lines = [f"jsquad_semantics: {args.model}; JaQuAD train {args.max_train_samples} questions, lr "
             f"{args.learning_rate:g}, {args.epochs} epochs, max length {results['after']['protocol']['max_length']}; "
             f"JSQuAD valid {results['after']['data']['dev_examples']} questions; before = {args.before}; "
             f"{seconds['before']:.0f} s and {seconds['after']:.0f} s", "",
             "| code | exact match | F1 | train windows | dev windows |", "| :-- | --: | --: | --: | --: |"]
    for label in ("before", "after"):
        data = results[label]["data"]
        lines.append(f"| {label} | {results[label]['metrics']['exact_match']:.4f} | {results[label]['metrics']['f1']:.4f} "
                     f"| {data.get('train_windows', 'n/a')} | {data.get('dev_windows', 'n/a')} |")
    lines.append(f"| after - before | {after['exact_match'] - before['exact_match']:+.4f} | "
                 f"{after['f1'] - before['f1']:+.4f} | | |")
    lines += ["", "| max length | dev questions | windows (overlap reading) | windows (step reading) | "
              "questions in several windows |", "| --: | --: | --: | --: | --: |"]
    for length, c in counts.items():
        lines.append(f"| {length} | {c['questions']} | {c['windows_before']} | {c['windows_after']} | "
                     f"{c['several_windows_after']} |")
    table = "\n".join(lines)
    print(table)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "jsquad_semantics.json").write_text(json.dumps(
        {"options": vars(args), "seconds": seconds, "windows": counts, "table": table,
         "scores": {k: {"metrics": v["metrics"], "data": v["data"], "protocol": v["protocol"]} for k, v in results.items()}},
        indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

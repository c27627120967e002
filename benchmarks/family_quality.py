"""Quality at equal CPU time: BERT-small against ModernBERT-small, the same corpus and tokenizer.

    python benchmarks/family_quality.py [--cpu_minutes 45] [--arms bert modernbert]
    python benchmarks/family_quality.py --arms modernbert-sp --sp_tokenizer DIR   # a MeCab-free tokenizer

Each arm pretrains with its family's own recipe for the same budget of CPU time (this process's
children's CPU seconds, one torch thread each by default: other users' load on a shared machine
then costs wall time, not budget): BERT-small (12 layers, hidden 256) on full rows of 128 tokens, 15% masked;
ModernBERT-small (10 layers, hidden 256, GLU 1024, window 128, a global layer every 3rd) on full
rows of 1,024, 30% masked; 4,096 positions a step for both, the same learning rate and warmup
share. The number of steps is the budget over a CPU time per step measured first in a short
run of each arm (so the schedule decays to zero at the budget), and the table gives the CPU time
each run took. Then, for every arm:

    held-out   `ja-pretrain evaluate` of all arms together: masked-LM loss and accuracy at the
               same fixed 15% of the same held-out tokens (the corpus's valid.txt, rows of 128)
    chabsa     ../shared/data/eval/chabsa, split by document (seed 0, 20% dev), --seeds seeds
    jsquad     trained on JaQuAD train (a subset), scored on JSQuAD v1.3 valid, windows of 128

fine-tuned under one protocol for all arms (the learning rate and epochs below, the task's
batch size), mean +- std over the seeds. The corpus is the Wikipedia and web-lead parts of
../shared/data/corpus-ja (2% held out, seed 42) and the tokenizer MeCab ipadic + WordPiece 32768,
as benchmarks/configs/shared-sample-bert.yaml builds them. Everything is written under
benchmarks/out/family_quality/ and an interrupted run resumes (a finished stage is skipped, a
stopped pretraining continues from its last checkpoint: `kill -TERM -PGID` of this process's group
stops the runs at a checkpoint and keeps the CPU time they spent, in runs.json). Prints a table and writes
benchmarks/out/family_quality.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
OUT_DIR = ROOT / "benchmarks" / "out"
WORK = OUT_DIR / "family_quality"
# arm -> (preset, rows per step, which tokenizer)
ARMS = {"bert": ("bert-small", 32, "mecab"), "modernbert": ("modernbert-small", 4, "mecab"),
        "modernbert-sp": ("modernbert-small", 4, "sp")}
TASK_DATA = {
    "chabsa": {"data": [str(SHARED / "eval" / "chabsa" / "chabsa_train.jsonl")]},
    "jsquad": {"train": str(SHARED / "eval" / "jaquad" / "jaquad_train.json.gz"),
               "valid": str(SHARED / "eval" / "jglue" / "jsquad" / "valid-v1.3.json")},
}


THREADS = "1"  # torch threads of every child (main sets it from --threads)
STOP = threading.Event()  # set by a SIGTERM: start nothing more
STOPPED = 143  # run-pretraining's exit after a SIGTERM: a checkpoint at a step boundary, `--do_continue` resumes


def start(argv: list[str], log: Path) -> subprocess.Popen:
    """Start a ja-pretrain command in a child process, its output to `log`."""
    env = {**os.environ, "OMP_NUM_THREADS": THREADS, "MKL_NUM_THREADS": THREADS}
    with open(log, "a", encoding="utf-8") as out:
        return subprocess.Popen([sys.executable, "-m", "ja_pretrain", *argv], stdout=out, stderr=subprocess.STDOUT,
                                env=env)


def finish(child: subprocess.Popen, log: Path, stopped_is_fine: bool = False) -> float:
    """Wait for a child started by `start`; its own CPU seconds (wait4's, so children running at
    the same time in other threads are not counted). With `stopped_is_fine`, a pretraining that a
    SIGTERM stopped at a checkpoint returns its seconds too, so the budget carries over."""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0 and not (stopped_is_fine and child.returncode == STOPPED):
        raise SystemExit(f"{child.args[3]} failed (exit {child.returncode}); see {log}")
    return usage.ru_utime + usage.ru_stime


def run(argv: list[str], log: Path) -> float:
    """Run a ja-pretrain command to its end; its CPU seconds."""
    return finish(start(argv, log), log)


def cpu_seconds_so_far(pid: int) -> float:
    """A running child's CPU seconds (itself and its waited-for children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def sentencepiece_tokenizer(corpus: Path, work: Path) -> Path:
    """The MeCab-free tokenizer of the modernbert-sp arm: SentencePiece unigram on the raw NFKC text
    of the same corpus, the same vocabulary size as the WordPiece one."""
    tokenizer = work / "tokenizer-sp"
    run(["train-tokenizer", "--input_file", str(corpus), "--model_dir", str(tokenizer), "--word_tokenizer", "none",
         "--sentencepiece_model", "unigram", "--vocab_size", "32768"], work / "prepare.log")
    return tokenizer


def prepare(work: Path) -> tuple[Path, Path]:
    corpus, tokenizer = work / "corpus", work / "tokenizer"
    inputs = [str(SHARED / "corpus-ja" / f) for f in ("wikipedia_ja_sample.txt.gz", "web_kwdlc_leads.txt.gz")]
    run(["corpus", *inputs, "--out", str(corpus), "--valid_ratio", "0.02", "--seed", "42",
         "--no_progress"], work / "prepare.log")
    run(["train-tokenizer", "--input_file", str(corpus), "--model_dir", str(tokenizer), "--mecab_dic_type", "ipadic",
         "--tokenizer_type", "wordpiece", "--vocab_size", "32768", "--min_frequency", "2", "--limit_alphabet", "6129",
         "--num_unused_tokens", "10"], work / "prepare.log")
    return corpus, tokenizer


def compile_flag(preset: str) -> str:
    """What run-pretraining chooses by default for a long run of this preset on a CPU, stated, so
    that the short calibration runs step as the long run does."""
    import torch

    from ja_pretrain.config.parameters import load_parameters
    from ja_pretrain.training.compilation import MIN_STEPS, should_compile

    return "--compile" if should_compile(None, load_parameters(preset).family, torch.device("cpu"), MIN_STEPS) \
        else "--no_compile"


def pretrain_argv(preset: str, rows: int, corpus: Path, tokenizer: Path, model_dir: Path, steps: int,
                  learning_rate: float, checkpoints: int = 8, evaluations: int = 4) -> list[str]:
    return ["run-pretraining", compile_flag(preset), "--input_file", str(corpus), "--tokenizer_dir", str(tokenizer),
            "--model_dir", str(model_dir), "--model_type", preset, "--batch_size", str(rows), "--train_steps", str(steps),
            "--warmup_steps", str(max(1, steps // 10)), "--learning_rate", str(learning_rate),
            "--save_steps", str(max(1, steps // checkpoints)), "--logging_steps", str(max(1, steps // 40)),
            "--eval_steps", str(max(1, steps // evaluations)), "--eval_samples", "256", "--save_total_limit", "2",
            "--cache_dir", str(model_dir.parent / f"dataset-{preset}-{tokenizer.name}"), "--seed", "0", "--no_progress"]


def seconds_per_step(preset: str, rows: int, corpus: Path, tokenizer: Path, work: Path, learning_rate: float) -> float:
    """CPU seconds per step: short runs of the same command, 2 and 8 steps, each with one
    checkpoint and one evaluation (at its end); their difference over 6 (start-up, the dataset
    build, the save, the evaluation, a compile and the first step's allocations cancel out). A
    first 2-step run is left out: it fills torch.compile's cache, which a compiled arm's later
    runs read, so that they compile alike."""
    record = work / "calibration.json"
    known = json.loads(record.read_text()) if record.is_file() else {}
    key = f"{preset}/{rows}/{tokenizer.name}/{THREADS} threads/{compile_flag(preset)}"
    if key not in known:
        spent = []
        for steps in (2, 2, 8):  # the first fills torch.compile's cache, which the other two then read alike
            directory = work / f"calibrate-{preset}-{tokenizer.name}-{steps}"
            if directory.exists():
                shutil.rmtree(directory)
            spent.append(run(pretrain_argv(preset, rows, corpus, tokenizer, directory, steps, learning_rate,
                                           checkpoints=1, evaluations=1), work / "calibration.log"))
        known[key] = (spent[2] - spent[1]) / 6
        if known[key] <= 0:
            raise SystemExit(f"{key}: 8 steps took no more CPU time than 2 ({spent}); the machine moved too much "
                             "to calibrate, run again")
        record.write_text(json.dumps(known, indent=2))
    return known[key]


def finetune(model: Path, task: str, out: Path, args: argparse.Namespace) -> dict:
    scores = out / "scores.json"
    if not scores.is_file():
        if STOP.is_set():
            raise SystemExit("stopped by SIGTERM before fine-tuning finished: run again to go on")
        lr, epochs, subset = {"chabsa": (args.chabsa_lr, args.chabsa_epochs, None),
                              "jsquad": (args.jsquad_lr, args.jsquad_epochs, args.jsquad_train)}[task]
        data = TASK_DATA[task]
        out.parent.mkdir(parents=True, exist_ok=True)  # the log goes beside the task's OUT
        where = (["--data", *data["data"]] if "data" in data else ["--train", data["train"], "--valid", data["valid"]])
        run(["finetune", str(model), "--task", task, *where, "--learning_rate", str(lr), "--epochs", str(epochs),
             "--seeds", str(args.seeds), "--max_length", "128", "--device", "cpu", "--no_progress", "--out", str(out),
             *(["--max_train_samples", str(subset)] if subset else [])], out.parent / f"finetune-{task}.log")
    return json.loads(scores.read_text(encoding="utf-8"))


def mean_std(scores: dict, metric: str) -> str:
    return f"{scores['metrics'][metric]:.3f} ± {scores['std'].get(metric, 0.0):.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", nargs="+", default=["bert", "modernbert"], choices=tuple(ARMS))
    parser.add_argument("--cpu_minutes", type=float, default=45.0, help="pretraining budget per arm, CPU minutes")
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="pretraining peak rate, every arm")
    parser.add_argument("--sp_tokenizer", type=Path,
                        help="the MeCab-free tokenizer of the modernbert-sp arm (default: trained here on the corpus)")
    parser.add_argument("--parallel", action="store_true",
                        help="pretrain the arms at the same time, each on its own --threads (a machine with a core "
                             "per arm; the budget is CPU time, so each arm's steps stay the same)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--chabsa_lr", type=float, default=2e-4)
    parser.add_argument("--chabsa_epochs", type=int, default=3)
    parser.add_argument("--jsquad_lr", type=float, default=1e-4)
    parser.add_argument("--jsquad_epochs", type=int, default=2)
    parser.add_argument("--jsquad_train", type=int, default=1500, help="JaQuAD training questions")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per run (1: on a shared machine, idle OpenMP threads spinning against "
                             "other users' processes would count as CPU time)")
    parser.add_argument("--skip_finetune", action="store_true")
    args = parser.parse_args()
    global THREADS
    THREADS = str(args.threads)
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.time()
    corpus, mecab = prepare(WORK)
    sp = args.sp_tokenizer or (sentencepiece_tokenizer(corpus, WORK) if "modernbert-sp" in args.arms else None)
    tokenizers = {"mecab": mecab, "sp": sp}
    record = WORK / "runs.json"
    runs = json.loads(record.read_text()) if record.is_file() else {}
    # every arm's step measured first, close together in time, so a change in the machine's load
    # between the arms' runs does not move one arm's budget
    per_step = {arm: seconds_per_step(ARMS[arm][0], ARMS[arm][1], corpus, tokenizers[ARMS[arm][2]], WORK,
                                      args.learning_rate) for arm in args.arms}
    # A SIGTERM to the process group (`kill -TERM -PGID`) stops the runs at a checkpoint; this
    # process then records the CPU time they spent and exits, and a rerun continues them.
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    started_runs = {}
    for arm in args.arms:
        preset, rows, which = ARMS[arm]
        model_dir = WORK / arm
        if (model_dir / "final" / "manifest.json").is_file() or STOP.is_set():
            continue
        steps = runs.get(arm, {}).get("steps") or int(args.cpu_minutes * 60 / per_step[arm])
        argv = pretrain_argv(preset, rows, corpus, tokenizers[which], model_dir, steps, args.learning_rate)
        resume = ["--do_continue"] if model_dir.exists() else []
        runs[arm] = {"preset": preset, "rows": rows, "tokenizer": str(tokenizers[which]), "steps": steps,
                     "calibrated_cpu_s_per_step": per_step[arm], "threads": args.threads,
                     "cpu_seconds": runs.get(arm, {}).get("cpu_seconds", 0.0)}
        record.write_text(json.dumps(runs, indent=2))
        started_runs[arm] = start(argv + resume, WORK / f"{arm}.log")
        if not args.parallel:
            runs[arm]["cpu_seconds"] += finish(started_runs.pop(arm), WORK / f"{arm}.log", stopped_is_fine=True)
            record.write_text(json.dumps(runs, indent=2))
    if started_runs:
        # the record also shows each running arm's spending, in `cpu_seconds_running`
        def watch() -> None:
            while not STOP.wait(60):
                for arm, child in list(started_runs.items()):
                    with contextlib.suppress(OSError):
                        runs[arm]["cpu_seconds_running"] = runs[arm]["cpu_seconds"] + cpu_seconds_so_far(child.pid)
                record.write_text(json.dumps(runs, indent=2))

        threading.Thread(target=watch, daemon=True).start()
    for arm, child in started_runs.items():
        runs[arm]["cpu_seconds"] += finish(child, WORK / f"{arm}.log", stopped_is_fine=True)
        runs[arm].pop("cpu_seconds_running", None)
        record.write_text(json.dumps(runs, indent=2))
    if STOP.is_set():
        raise SystemExit("stopped by SIGTERM; the runs saved a checkpoint and their CPU time: run again to go on")
    evaluation = WORK / "evaluation"
    if not (evaluation / "metrics.json").is_file() or set(json.loads(
            (evaluation / "metrics.json").read_text())["models"]) != set(args.arms):
        run(["evaluate", *[str(WORK / arm) for arm in args.arms], "--corpus", str(corpus), "--sequence-length", "128",
             "--out", str(evaluation)], WORK / "evaluate.log")
    heldout = json.loads((evaluation / "metrics.json").read_text())
    results = {}
    if not args.skip_finetune:
        with ThreadPoolExecutor(len(args.arms) if args.parallel else 1) as pool:
            # task by task, so that every arm's chABSA (the cheaper task) is scored first
            jobs = {arm: {} for arm in args.arms}
            for task in ("chabsa", "jsquad"):
                for arm in args.arms:
                    jobs[arm][task] = pool.submit(finetune, WORK / arm, task, WORK / f"finetune-{arm}" / task, args)
        results = {arm: {task: job.result() for task, job in by_task.items()} for arm, by_task in jobs.items()}
    lines = [f"family_quality: {args.cpu_minutes:g} CPU minutes of pretraining per arm, lr {args.learning_rate:g}; "
             f"fine-tuning {args.seeds} seeds (chABSA lr {args.chabsa_lr:g} x {args.chabsa_epochs} epochs, JSQuAD "
             f"lr {args.jsquad_lr:g} x {args.jsquad_epochs} epochs on {args.jsquad_train} JaQuAD questions); "
             f"{time.time() - started:.0f} s", "",
             "| arm | preset (rows x length) | steps | CPU min | text tokens seen | held-out MLM loss | held-out "
             "accuracy | chABSA accuracy | chABSA macro-F1 | JSQuAD EM | JSQuAD F1 |",
             "| :-- | :-- | --: | --: | --: | --: | --: | --: | --: | --: | --: |"]
    for arm in args.arms:
        r, figures = runs[arm], heldout["models"][arm]
        state = json.loads((WORK / arm / "final" / "manifest.json").read_text())["counts"]
        ft = results.get(arm)
        downstream = " | ".join(mean_std(ft[task], metric) if ft else "n/a" for task, metric in (
            ("chabsa", "accuracy"), ("chabsa", "macro_f1"), ("jsquad", "exact_match"), ("jsquad", "f1")))
        length = 1024 if "modernbert" in arm else 128
        lines.append(f"| {arm} | {r['preset']} ({r['rows']} x {length}) | {r['steps']} | {r['cpu_seconds'] / 60:.1f} | "
                     f"{state['tokens_seen']:,} | {figures['loss']:.4f} | {figures['accuracy']:.4f} | {downstream} |")
    lines.append(f"\nHeld out: {heldout['masked_tokens'] if 'masked_tokens' in heldout else ''}"
                 f"{heldout['sequences']} rows of up to 128 tokens, {heldout['tokens']} tokens, the same 15% masked "
                 f"for every arm (seed {heldout['seed']}).")
    table = "\n".join(lines)
    print(table)
    (OUT_DIR / "family_quality.json").write_text(json.dumps(
        {"options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "runs": runs,
         "heldout": heldout, "finetune": {a: {t: {"metrics": s["metrics"], "std": s["std"]} for t, s in by.items()}
                                          for a, by in results.items()},
         "table": table}, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

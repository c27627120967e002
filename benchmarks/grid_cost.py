"""What the published grid costs against one point: `ja-pretrain finetune` with its default
protocol (learning rates 5e-5, 3e-5, 2e-5 x 3 and 4 epochs: six runs, 21 epochs of training)
against `--quick` (5e-5, 4 epochs: one run), on the same model, task and data.

    python benchmarks/grid_cost.py --model runs/shared-sample/bert/final [--task jsts] [--repeats 1]

The two alternate, the first one rotating, over --repeats rounds; each is a fresh command. The
expected ratio is about 21/4 = 5.25 for training and 6 for predicting the dev split. Prints a
table and writes benchmarks/out/grid_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "eval"
OUT_DIR = ROOT / "benchmarks" / "out"
DATA = {"jsts": SHARED / "jglue" / "jsts", "chabsa": SHARED / "chabsa" / "chabsa_train.jsonl"}
ARMS = {"published grid": [], "--quick": ["--quick"]}


def run(arm: str, args, out: Path) -> tuple[float, dict]:
    command = [sys.executable, "-m", "ja_pretrain", "finetune", args.model, "--task", args.task, "--data",
               str(DATA[args.task]), "--max_train_samples", str(args.max_train_samples), "--max_eval_samples",
               str(args.max_eval_samples), "--out", str(out), "--device", "cpu", "--no_progress", *ARMS[arm]]
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    if done.returncode != 0:
        raise SystemExit(f"{arm} failed:\n{done.stderr[-3000:]}")
    return time.time() - started, json.loads((out / "scores.json").read_text(encoding="utf-8"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "runs" / "shared-sample" / "bert" / "final"))
    parser.add_argument("--task", default="jsts", choices=tuple(DATA))
    parser.add_argument("--max_train_samples", type=int, default=300)
    parser.add_argument("--max_eval_samples", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    scores: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="grid-cost-") as scratch:
        for r in range(args.repeats):
            order = list(ARMS)[r % 2:] + list(ARMS)[:r % 2]
            for arm in order:
                took, record = run(arm, args, Path(scratch) / f"{arm.strip('-').replace(' ', '-')}-{r}")
                seconds[arm].append(took)
                scores[arm] = record
                print(f"  round {r + 1} {arm}: {took:.1f} s", file=sys.stderr, flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [f"grid_cost: {args.model}, {args.task}, train {args.max_train_samples} / dev {args.max_eval_samples} "
             f"examples, {args.repeats} round(s), CPU ({os.cpu_count()} cores, load {load:.1f} at the end)", "",
             "| protocol | runs | epochs trained | train s | predict s | seconds (median) | cost / one point | "
             "chosen point | dev score |", "| :-- | --: | --: | --: | --: | --: | --: | :-- | :-- |"]
    quick = statistics.median(seconds["--quick"])
    for arm in ARMS:
        record = scores[arm]
        chosen = record["chosen"]
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in record["metrics"].items())
        lines.append(f"| {arm} | {len(record['runs'])} | {sum(r['epochs'] for r in record['runs'])} | "
                     f"{record['timings']['train_seconds']:.1f} | {record['timings']['predict_seconds']:.1f} | "
                     f"{statistics.median(seconds[arm]):.1f} | {statistics.median(seconds[arm]) / quick:.2f}x | "
                     f"lr {chosen['learning_rate']:g}, {chosen['epochs']} epochs | {metrics} |")
    table = "\n".join(lines)
    print(table)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "grid_cost.json").write_text(json.dumps({"options": vars(args), "seconds": seconds, "table": table},
                                                       indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

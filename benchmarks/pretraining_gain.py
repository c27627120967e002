"""What pretraining buys downstream: a model pretrained by ja-pretrain against the same
architecture from random initialisation, fine-tuned under the same protocol.

    python benchmarks/pretraining_gain.py --model runs/shared-sample/bert/final

The pretrained model is any run-pretraining output (by default the 4-layer BERT that
`ja-pretrain pipeline benchmarks/configs/shared-sample-bert.yaml` pretrains on the Wikipedia and
web parts of ../shared/data/corpus-ja). Its random twin has the same config, tokenizer and
classifier-head seed, with every weight drawn from BERT's initialisation (seed 0). Both go
through `ja-pretrain finetune`'s suite with the same learning-rate grid, epochs and seeds, on:

    jsts     ../shared/data/eval/jglue/jsts (train, valid)
    chabsa   ../shared/data/eval/chabsa/chabsa_train.jsonl, split by document (seed 0, 20% dev)
    jsquad   trained on JaQuAD train (../shared/data/eval/jaquad; JSQuAD's train split is not in
             the shared data), scored on JSQuAD v1.3 valid
    ner      ../shared/data/eval/ner-wikipedia/ner.json, split by article (seed 0, 20% dev)

Prints a table and writes benchmarks/out/pretraining_gain.json (or --json NAME); the suites'
own outputs (scores.json, predictions.jsonl) stay under benchmarks/out/pretraining_gain/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no bar per local model load

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "eval"
OUT_DIR = ROOT / "benchmarks" / "out"
TASK_DATA = {
    "jsts": {"data": [str(SHARED / "jglue" / "jsts")]},
    "chabsa": {"data": [str(SHARED / "chabsa" / "chabsa_train.jsonl")]},
    "jsquad": {"train": str(SHARED / "jaquad" / "jaquad_train.json.gz"),
               "valid": str(SHARED / "jglue" / "jsquad" / "valid-v1.3.json")},
    "ner": {"data": [str(SHARED / "ner-wikipedia" / "ner.json")]},
}


def random_twin(model_dir: Path, out: Path) -> Path:
    """The same architecture and tokenizer, every weight freshly initialised."""
    import torch
    from transformers import AutoConfig, AutoModelForMaskedLM

    from ja_pretrain.tokenization.files import copy_tokenizer

    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_config(AutoConfig.from_pretrained(model_dir))
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    copy_tokenizer(model_dir, out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "runs" / "shared-sample" / "bert" / "final"))
    parser.add_argument("--tasks", nargs="+", default=["jsts", "chabsa"], choices=tuple(TASK_DATA))
    parser.add_argument("--learning_rate", type=float, nargs="+", default=[1e-4, 5e-5])
    parser.add_argument("--epochs", type=int, nargs="+", default=[3])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--max_train_samples", type=int)
    parser.add_argument("--json", default="pretraining_gain.json",
                        help="file name under benchmarks/out (one per task group when groups run apart)")
    args = parser.parse_args()
    model = Path(args.model)
    if not (model / "config.json").is_file():
        raise SystemExit(f"--model {model}: no config.json; run `ja-pretrain pipeline "
                         "benchmarks/configs/shared-sample-bert.yaml` first or pass --model DIR")
    needed = [Path(p) for t in args.tasks for v in TASK_DATA[t].values() for p in (v if isinstance(v, list) else [v])]
    if not all(p.exists() for p in needed):
        raise SystemExit(f"this benchmark reads {', '.join(map(str, needed))}; not found")
    from ja_pretrain.downstream.scorecard import scores_cell as cell
    from ja_pretrain.downstream.suite import Protocol, SuiteOptions, run_suite

    work = OUT_DIR / "pretraining_gain"
    # one twin per --json name: two groups of tasks may run at once, and the twin is rewritten
    twin = random_twin(model, work / ("random-init-model" + ("" if args.json == "pretraining_gain.json"
                                                             else f"-{Path(args.json).stem}")))
    protocol = Protocol(learning_rates=tuple(args.learning_rate), epochs=tuple(args.epochs), seeds=args.seeds,
                        max_train_samples=args.max_train_samples)
    results, seconds = {}, {}
    for label, directory in (("pretrained", model), ("random init", twin)):
        started = time.time()
        results[label] = {}
        for task in args.tasks:  # one suite per task: JSQuAD names its two files apart
            options = SuiteOptions(tasks=[task], out=work / label.replace(" ", "-") / task, protocol=protocol,
                                   device="cpu", progress=False, **TASK_DATA[task])
            results[label].update(run_suite(directory, options)["tasks"])
        seconds[label] = time.time() - started
    lines = [f"pretraining_gain: {model} against its random twin; lr {args.learning_rate}, epochs {args.epochs}, "
             f"{args.seeds} seed(s), train subset {args.max_train_samples or 'all'}; "
             f"{seconds['pretrained']:.0f} s and {seconds['random init']:.0f} s", "",
             "| task (metrics) | pretrained by ja-pretrain | random init | gain | chosen lr (pretrained / random) |",
             "| :-- | --: | --: | --: | --: |"]
    for task in args.tasks:
        a, b = results["pretrained"][task], results["random init"][task]
        gains = "/".join(f"{a['metrics'][m] - b['metrics'][m]:+.3f}" for m in a["metrics"])
        lines.append(f"| {task} ({'/'.join(a['metrics'])}) | {cell(a)} | {cell(b)} | {gains} | "
                     f"{a['chosen']['learning_rate']:g} / {b['chosen']['learning_rate']:g} |")
    table = "\n".join(lines)
    print(table)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / args.json).write_text(json.dumps(
        {"options": vars(args), "seconds": seconds, "table": table,
         "scores": {label: {t: {"metrics": s["metrics"], "std": s["std"], "chosen": s["chosen"], "grid": s["grid"]}
                            for t, s in by_task.items()} for label, by_task in results.items()}},
        indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())

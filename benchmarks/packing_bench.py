"""How rows are filled: the share of each row that is text, and the held-out loss each packing
gives after the same number of text tokens.

    python benchmarks/packing_bench.py [--part fill|loss|both] [--seeds 1] [--text_tokens 1000000]

Forms (build-dataset --form):
    packed   whole sentences of one document per row, the rest padding (before this benchmark, the only form)
    full     rows filled with several documents, each attending to itself only, positions from 0
    joined   rows filled with documents separated by [SEP] that attend to each other (RoBERTa)

fill: each file of ../shared/data/corpus-ja alone and the three together, cleaned by `ja-pretrain
corpus` (no held-out split), encoded once with the shared-sample tokenizer, then laid out in
each form at sequence length 128. `text` is the share of positions holding text, `not padding`
adds the [CLS]/[SEP] each form needs.

loss: bert-mini (benchmarks/configs/parameter.json) trained on runs/shared-sample/corpus in each
form for as many steps as it takes to see about --text_tokens tokens of text (the form's text
share decides the steps; warmup is 10% of them), then all three scored by `ja-pretrain evaluate`
on the corpus's valid.txt, which no run trained on, with the same masks (evaluate lays out its
own fixed rows, whatever the form a model was trained on). The arms alternate over seeds.

Needs runs/shared-sample/{corpus,tokenizer} (`ja-pretrain pipeline benchmarks/configs/shared-sample-bert.yaml`).
Prints tables and writes benchmarks/out/packing_bench.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "corpus-ja"
RUN = ROOT / "runs" / "shared-sample"
OUT_DIR = ROOT / "benchmarks" / "out"
WORK = OUT_DIR / "packing_bench"
FILES = ("wikipedia_ja_sample", "web_kwdlc_leads", "aozora_pd_sample")
FORMS = ("packed", "full", "joined")
LENGTH = 128


def cli(*argv: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    subprocess.run([sys.executable, "-m", "ja_pretrain", *argv], check=True, env=env, cwd=ROOT)


def fill_of(corpus: Path, name: str) -> dict[str, dict[str, float]]:
    """Each form's text share and non-padding share of a corpus's rows, from one encoding."""
    from ja_pretrain.dataset import build_dataset
    from ja_pretrain.dataset.build import write_split_samples

    dataset = build_dataset(corpus, RUN / "tokenizer", WORK / f"dataset-{name}", sequence_length=LENGTH, workers=2,
                            progress=False)
    result = {}
    for form in FORMS:  # the same tokens, laid out again (this rewrites the dataset's sample index)
        counts = write_split_samples(dataset, "train", form, LENGTH, seed=0)
        result[form] = {"rows": counts["samples"], "text": counts["text_fill"], "not_padding": counts["fill"]}
    write_split_samples(dataset, "train", "packed", LENGTH, seed=0)  # back to what its manifest says
    return result


def fill_part() -> dict:
    inputs = {name: [SHARED / f"{name}.txt.gz"] for name in FILES}
    inputs["all three"] = [SHARED / f"{name}.txt.gz" for name in FILES]
    results = {}
    for name, files in inputs.items():
        corpus = WORK / f"corpus-{name.replace(' ', '-')}"
        cli("corpus", *map(str, files), "--out", str(corpus), "--valid_ratio", "0", "--seed", "42", "--no_progress")
        results[name] = fill_of(corpus, name.replace(" ", "-"))
        print(f"{name}: " + ", ".join(f"{f} {r['text']:.1%}" for f, r in results[name].items()), flush=True)
    return results


def fill_table(results: dict) -> str:
    lines = [f"Share of row positions (sequence length {LENGTH}) that hold text / that are not padding:", "",
             "| input | rows packed | packed | full | joined |", "| :-- | --: | --: | --: | --: |"]
    for name, forms in results.items():
        cells = " | ".join(f"{forms[f]['text']:.1%} / {forms[f]['not_padding']:.1%}" for f in FORMS)
        lines.append(f"| {name} | {forms['packed']['rows']:,} | {cells} |")
    return "\n".join(lines)


def train_arm(form: str, seed: int, text_tokens: int) -> tuple[Path, dict]:
    from ja_pretrain.dataset import build_dataset

    dataset = build_dataset(RUN / "corpus", RUN / "tokenizer", WORK / f"train-{form}", sequence_length=LENGTH,
                            form=form, workers=2, progress=False)
    manifest = json.loads((dataset / "manifest.json").read_text(encoding="utf-8"))
    text_share = manifest["splits"]["train"]["text_fill"]
    params = json.loads((ROOT / "benchmarks" / "configs" / "parameter.json").read_text(encoding="utf-8"))["bert-mini"]
    steps = math.ceil(text_tokens / (params["batch-size"] * LENGTH * text_share))
    model = WORK / f"model-{form}-seed{seed}"
    started = time.perf_counter()
    if (model / "final" / "manifest.json").is_file():  # trained by an earlier run of this benchmark
        log = [json.loads(line) for line in (model / "train_log.jsonl").read_text(encoding="utf-8").splitlines()]
        train = [r for r in log if r.get("split") == "train"]
        seconds = sum(r["tokens_per_s"] and (r["tokens_seen"] - p) / r["tokens_per_s"]
                      for r, p in zip(train, [0] + [r["tokens_seen"] for r in train[:-1]], strict=True))
        return model, {"steps": steps, "text_share": text_share, "tokens_seen": train[-1]["tokens_seen"],
                       "seconds": seconds, "reused": True}
    cli("run-pretraining", "--input_file", str(dataset), "--tokenizer_dir", str(RUN / "tokenizer"),
        "--model_dir", str(model), "--parameter_file", "benchmarks/configs/parameter.json", "--model_type", "bert-mini",
        "--train_steps", str(steps), "--warmup_steps", str(max(1, steps // 10)), "--save_steps", str(steps),
        "--logging_steps", str(max(1, steps // 10)), "--do_whole_word_mask", "--seed", str(seed), "--device", "cpu",
        "--precision", "fp32", "--no_progress")
    log = [json.loads(line) for line in (model / "train_log.jsonl").read_text(encoding="utf-8").splitlines()]
    seen = max(r["tokens_seen"] for r in log if r.get("split") == "train")
    return model, {"steps": steps, "text_share": text_share, "tokens_seen": seen,
                   "seconds": time.perf_counter() - started}


def loss_part(seeds: int, text_tokens: int) -> dict:
    results: dict[str, list] = {form: [] for form in FORMS}
    for seed in range(seeds):
        order = FORMS[seed % len(FORMS):] + FORMS[:seed % len(FORMS)]  # the first arm rotates
        models = {}
        for form in order:
            models[form], run = train_arm(form, seed, text_tokens)
            results[form].append(run)
            print(f"seed {seed} {form}: {run['steps']} steps, {run['tokens_seen']:,} text tokens, "
                  f"{run['seconds']:.0f} s", flush=True)
        out = WORK / f"evaluation-seed{seed}"
        cli("evaluate", *(str(models[f]) for f in FORMS), "--corpus", str(RUN / "corpus"), "--out", str(out))
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["models"]
        for form, (label, scores) in zip(FORMS, metrics.items(), strict=True):
            results[form][-1].update(label=label, loss=scores["loss"], accuracy=scores["accuracy"])
    return results


def loss_table(results: dict, text_tokens: int) -> str:
    import statistics

    def spread(values: list[float]) -> str:
        mean = statistics.fmean(values)
        return f"{mean:.4f}" + (f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else "")

    lines = [f"Held-out masked-LM loss after about {text_tokens:,} text tokens (bert-mini, fp32, "
             f"{len(results['packed'])} seed(s); lower is better):", "",
             "| form | steps | text tokens seen | held-out loss | held-out accuracy | train time |",
             "| :-- | --: | --: | --: | --: | --: |"]
    for form, runs in results.items():
        lines.append(f"| {form} | {runs[0]['steps']} | {runs[0]['tokens_seen']:,} | {spread([r['loss'] for r in runs])} | "
                     f"{spread([r['accuracy'] for r in runs])} | {statistics.fmean(r['seconds'] for r in runs):.0f} s |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("fill", "loss", "both"), default="both")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--text_tokens", type=int, default=1_000_000)
    args = parser.parse_args()
    if not (RUN / "corpus" / "manifest.json").is_file() or not (RUN / "tokenizer" / "manifest.json").is_file():
        raise SystemExit(f"needs {RUN}/corpus and tokenizer: run `ja-pretrain pipeline "
                         "benchmarks/configs/shared-sample-bert.yaml` first")
    WORK.mkdir(parents=True, exist_ok=True)
    report, tables = {"options": vars(args)}, []
    if args.part in ("fill", "both"):
        report["fill"] = fill_part()
        tables.append(fill_table(report["fill"]))
    if args.part in ("loss", "both"):
        report["loss"] = loss_part(args.seeds, args.text_tokens)
        tables.append(loss_table(report["loss"], args.text_tokens))
    report["table"] = "\n\n".join(tables)
    print("\n" + report["table"])
    name = "packing_bench.json" if args.part == "both" else f"packing_bench_{args.part}.json"
    (OUT_DIR / name).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())

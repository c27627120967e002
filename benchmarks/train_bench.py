"""BERT pretraining throughput: ja-pretrain's trainer against transformers' Trainer.

    python benchmarks/train_bench.py [--steps 2] [--warmup 1] [--budget 420] [--threads 1]

The baseline is what a user would otherwise run, as transformers' run_mlm.py does it:
`Trainer` + `BertForMaskedLM` + `DataCollatorForLanguageModeling` (15% masking, 80/10/10) with
the same model configuration (the preset, SDPA attention), the same packed samples, the same
optimizer settings and precision. Ours is `ja_pretrain.training.trainer.Trainer` (MLM head at
masked positions only, vectorised masking from the memmap dataset, fused AdamW, no host sync
per step, and on a CPU the cheaper dropout and attention of `ja_pretrain.models.cpu_ops`). On a
CPU a third arm, ours with PyTorch's dropout and SDPA (`--torch_dropout`), runs in the same
rotation and shows that last part's share (skip it with --no_ablation). Configurations: the bert-small preset at sequence 128 and batch 32 (the issue's),
and the bert-tiny preset at its sequence 512 with batch 8 (the same 4,096 positions per step);
fp32 and bf16 autocast each.

Per configuration both live in one process and alternate step by step: the baseline's
Trainer.train() runs, and after each of its steps a callback runs one step of ours, timed
apart (so a load spike from the machine's other users hits both alike). --warmup first steps
of each are dropped, then --steps pairs are timed (wall time from step end to step end: data,
collation/masking, forward, backward, optimizer). tokens/s counts sequence positions, from the
median step; the ratio is the median over pairs of baseline step time / our step time. On a
CPU the clock is this process's CPU time (other users' load on a shared machine inflates wall
time, not CPU time; run with --threads 1 there, since idle OpenMP threads spin on the CPU);
the wall-time ratio is shown beside it. On a GPU the clock is wall time.
MFU = useful model FLOPs (encoder + MLM head at the masked positions, forward + backward) per
second over this machine's measured matmul peak in that precision (a 1024^3 or 4096^3 matmul).

Data: ../shared/data/corpus-ja (real Japanese text) when present, else the bundled sample;
built through our own stages (corpus -> tokenizer with the seed's 32768 vocabulary -> dataset)
under benchmarks/out/train_bench_cache/, reused by later runs. Prints a table and writes
benchmarks/out/train_bench.json. A --budget in seconds stops starting new runs when spent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "corpus-ja"
OUT_DIR = ROOT / "benchmarks" / "out"
CACHE = OUT_DIR / "train_bench_cache"
CONFIGS = [  # (preset, sequence length, batch)
    ("bert-small", 128, 32),
    ("bert-tiny", 512, 8),
]
PRECISIONS = ("fp32", "bf16")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def prepare_data(max_sentences: int, vocab_size: int) -> tuple[Path, dict[int, Path], str]:
    from ja_pretrain.corpus.build import build_corpus
    from ja_pretrain.dataset import build_dataset
    from ja_pretrain.resources import sample_corpus_path
    from ja_pretrain.tokenization.train import train_tokenizer

    inputs = sorted(SHARED.glob("*.txt.gz")) or [sample_corpus_path()]
    source = "shared/data/corpus-ja" if SHARED.is_dir() and inputs[0].parent == SHARED else "bundled sample"
    corpus, tokenizer = CACHE / "corpus", CACHE / f"tokenizer-{vocab_size}"
    # each stage skips itself when its manifest matches its inputs and options
    build_corpus(inputs, corpus, max_sentences=max_sentences, valid_ratio=0.01, progress=False)
    train_tokenizer(corpus, tokenizer, vocab_size=vocab_size, min_frequency=2, limit_alphabet=6129)
    datasets = {}
    for _, length, _ in CONFIGS:
        out = CACHE / f"dataset-{vocab_size}-{length}"
        build_dataset(corpus, tokenizer, out, sequence_length=length, form="packed", progress=False)
        datasets[length] = out
    return tokenizer, datasets, source


def params_for(preset: str, batch: int):
    from ja_pretrain.config.parameters import load_parameters

    return load_parameters(preset).replace(batch_size=batch, accumulation_steps=1, train_steps=10_000,
                                           warmup_steps=100, save_steps=10_000, logging_steps=10_000)


# -- ours ---------------------------------------------------------------------------------------------
class Ours:
    """ja-pretrain's Trainer, stepped one optimizer step at a time."""

    def __init__(self, preset, batch, tokenizer, dataset, precision, peak, model_dir, cpu_ops=True):
        from ja_pretrain.training.distributed import DistContext
        from ja_pretrain.training.metrics import MetricWindow
        from ja_pretrain.training.trainer import TrainConfig, Trainer

        cfg = TrainConfig(dataset_dir=dataset, tokenizer_dir=tokenizer, model_dir=Path(model_dir),
                          params=params_for(preset, batch), precision=precision, progress=False, peak_flops=peak,
                          export=False, cpu_ops=cpu_ops)
        self.trainer = Trainer(cfg, DistContext(device=torch.device("cuda" if torch.cuda.is_available() else "cpu")))
        self.window = MetricWindow()
        self.steps = 0

    def step(self) -> tuple[float, float]:
        start = clocks()
        self.trainer.train_step(self.window)
        _sync()
        self.steps += 1
        return elapsed(start)

    def flops_per_step(self) -> float:
        return self.window.reduce(self.trainer.ctx, self.trainer.ctx.device)["flops"] / self.steps


# -- the baseline: transformers Trainer as run_mlm.py uses it ---------------------------------------------
class PackedRows(torch.utils.data.Dataset):
    """Our packed samples as the per-example dicts a transformers Trainer expects."""

    def __init__(self, dataset: Path):
        from ja_pretrain.dataset import open_samples

        self.samples = open_samples(dataset, "train")

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        row = self.samples.batch(np.array([i]))
        return {k: row[k][0].tolist() for k in ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask")}


def run_interleaved(preset, batch, tokenizer_dir, dataset, precision, warmup, steps, peak, ablation):
    """transformers' Trainer.train() for warmup + steps steps; after each of its steps, one step of
    ours (from a callback, timed apart), so the two alternate step by step under the same load; with
    `ablation`, then one step of ours with PyTorch's dropout and SDPA (cpu_ops=False).
    Returns (baseline step seconds, our step seconds, ablation step seconds or [], our useful FLOPs
    per step), warm-up dropped."""
    from transformers import (AutoTokenizer, BertForMaskedLM, DataCollatorForLanguageModeling, Trainer,
                              TrainerCallback, TrainingArguments)
    from transformers.utils import logging as hf_logging

    from ja_pretrain.models.bert import bert_config
    from ja_pretrain.training.objective import ObjectiveOptions
    from ja_pretrain.training.trainer import embedding_rows

    hf_logging.set_verbosity_error()
    rows = PackedRows(dataset)
    params = params_for(preset, batch)
    torch.manual_seed(0)
    vocab = embedding_rows(tokenizer_dir, rows.samples.vocab_size)  # the same embedding as ours
    model = BertForMaskedLM(bert_config(params, rows.samples.special_ids, vocab, ObjectiveOptions()))
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    baseline_times: list[tuple[float, float]] = []
    our_times: list[tuple[float, float]] = []
    torch_ops_times: list[tuple[float, float]] = []

    with tempfile.TemporaryDirectory() as tmp:
        ours = Ours(preset, batch, tokenizer_dir, dataset, precision, peak, Path(tmp) / "ours")
        torch_ops = (Ours(preset, batch, tokenizer_dir, dataset, precision, peak, Path(tmp) / "torch-ops", cpu_ops=False)
                     if ablation else None)

        class Alternate(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                if not baseline_times and not hasattr(self, "mark"):
                    _sync()
                    self.mark = clocks()

            def on_step_end(self, args, state, control, **kwargs):
                _sync()
                baseline_times.append(elapsed(self.mark))
                our_times.append(ours.step())
                if torch_ops is not None:
                    torch_ops_times.append(torch_ops.step())
                self.mark = clocks()

        args = TrainingArguments(
            output_dir=str(Path(tmp) / "baseline"), per_device_train_batch_size=batch, max_steps=warmup + steps,
            learning_rate=params.learning_rate, warmup_steps=params.warmup_steps, weight_decay=0.01, adam_epsilon=1e-6,
            bf16=precision == "bf16", use_cpu=not torch.cuda.is_available(), report_to=[], save_strategy="no",
            logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=0,
        )
        collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm_probability=params.mask_probability)
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator, callbacks=[Alternate()])
        with contextlib.redirect_stdout(sys.stderr):  # its end-of-training summary is not our table
            trainer.train()
        flops = ours.flops_per_step()
        ours.trainer.logger.close()
        if torch_ops is not None:
            torch_ops.trainer.logger.close()
    return baseline_times[warmup:], our_times[warmup:], torch_ops_times[warmup:], flops


def clocks() -> tuple[float, float]:
    """(wall, this process's CPU time)."""
    return time.perf_counter(), time.process_time()


def elapsed(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clocks()
    return wall - start[0], cpu - start[1]


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure_peaks(clock: int) -> dict[str, float]:
    """Matmul FLOP/s per precision, by the clock the table uses (0 wall, 1 CPU time)."""
    from ja_pretrain.training.metrics import measure_matmul_peak
    from ja_pretrain.training.trainer import PRECISIONS as DTYPES

    if torch.cuda.is_available():
        return {p: measure_matmul_peak(torch.device("cuda"), DTYPES[p], seconds=1.0) for p in PRECISIONS}
    peaks = {}
    for p in PRECISIONS:
        a = torch.randn(1024, 1024).to(DTYPES[p])
        b = torch.randn(1024, 1024).to(DTYPES[p])
        torch.matmul(a, b)
        best = 0.0
        for _ in range(5):  # best of five short bursts: the least disturbed by other users
            start = clocks()
            for _ in range(4):
                torch.matmul(a, b)
            best = max(best, 4 * 2 * 1024**3 / elapsed(start)[clock])
        peaks[p] = best
    return peaks


def ablation_lines(rows: list[dict], speed_header: str, baseline_name: str) -> list[str]:
    """The ablation table (ours with PyTorch's dropout and SDPA) for the rows that ran it."""
    ran = [r for r in rows if "cpu_ops_gain_median" in r]
    if not ran:
        return []
    lines = ["", "Ablation: ours with PyTorch's dropout and SDPA attention (`--torch_dropout`), in the same step rotation:",
             "", (f"| preset (seq x batch) | precision | {speed_header} | its ratio to {baseline_name} | "
                  "gain from our CPU dropout/attention |"),
             "| :-- | :-- | --: | --: | --: |"]
    for r in ran:
        lines.append(f"| {r['preset']} ({r['sequence_length']}x{r['batch']}) | {r['precision']} | "
                     f"{r['ours_torch_ops_tokens_per_s']:.0f} | "
                     f"{r['ours_torch_ops_tokens_per_s'] / r['baseline_tokens_per_s']:.2f}x | {r['cpu_ops_gain_median']:.2f}x |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps of each, alternating")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps of each")
    parser.add_argument("--max_sentences", type=int, default=60_000, help="corpus sentences to build the data from")
    parser.add_argument("--vocab_size", type=int, default=32768)
    parser.add_argument("--budget", type=float, default=420.0, help="seconds; no new configuration starts after this")
    parser.add_argument("--only", choices=[c[0] for c in CONFIGS], help="run one preset")
    parser.add_argument("--threads", type=int, help="torch threads for both (default: torch's choice)")
    parser.add_argument("--prepare_only", action="store_true", help="build the data and stop")
    parser.add_argument("--no_ablation", action="store_true",
                        help="on a CPU, skip the third arm: ours with PyTorch's dropout and SDPA (--torch_dropout)")
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    load_start = load_average()

    tokenizer, datasets, source = prepare_data(args.max_sentences, args.vocab_size)
    setup_s = time.perf_counter() - started
    if args.prepare_only:
        print(f"data ready in {setup_s:.0f} s: {tokenizer}, {', '.join(map(str, datasets.values()))}")
        return 0
    # On a CPU shared with other users, CPU seconds of this process measure the work; wall time
    # also counts other users' load. (Use --threads 1 there: idle OpenMP threads spin and burn CPU.)
    clock = 0 if torch.cuda.is_available() else 1
    ablation = not torch.cuda.is_available() and not args.no_ablation  # cpu_ops only act on a CPU
    clock_name = "wall" if clock == 0 else "CPU-time"
    peaks = measure_peaks(clock)
    from ja_pretrain.dataset import open_samples

    vocab = open_samples(datasets[128]).vocab_size
    rows, skipped = [], []
    for preset, length, batch in CONFIGS:
        if args.only and preset != args.only:
            continue
        for precision in PRECISIONS:
            if time.perf_counter() - started > args.budget:
                skipped.append(f"{preset} {precision}")
                continue
            tokens = batch * length
            b, o, t, flops = run_interleaved(preset, batch, tokenizer, datasets[length], precision, args.warmup,
                                             args.steps, peaks[precision], ablation)
            ratios = [bt[clock] / ot[clock] for bt, ot in zip(b, o)]  # step-time ratio = tokens/s ratio
            wall_ratios = [bt[0] / ot[0] for bt, ot in zip(b, o)]
            base_tps = tokens / statistics.median(t[clock] for t in b)
            ours_tps = tokens / statistics.median(t[clock] for t in o)
            print(f"  {preset} {precision}: baseline steps (wall, cpu) {[tuple(round(x, 2) for x in t) for t in b]}, "
                  f"ours {[tuple(round(x, 2) for x in t) for t in o]}", file=sys.stderr, flush=True)
            per_token = flops / tokens
            rows.append({
                "preset": preset, "sequence_length": length, "batch": batch, "precision": precision, "clock": clock_name,
                "timed_steps": len(ratios), "baseline_step_wall_cpu_s": b, "ours_step_wall_cpu_s": o,
                "baseline_tokens_per_s": base_tps, "ours_tokens_per_s": ours_tps,
                "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                "wall_ratio_median": statistics.median(wall_ratios),
                "baseline_mfu": base_tps * per_token / peaks[precision], "ours_mfu": ours_tps * per_token / peaks[precision],
                "useful_flops_per_token": per_token,
            })
            if t:  # the cheaper CPU dropout/attention's share: ours with PyTorch's ops, same pairs
                rows[-1].update({"ours_torch_ops_step_wall_cpu_s": t,
                                 "ours_torch_ops_tokens_per_s": tokens / statistics.median(x[clock] for x in t),
                                 "cpu_ops_gain_median": statistics.median(x[clock] / y[clock] for x, y in zip(t, o))})

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    header = (f"train_bench on {device}, {torch.get_num_threads()} torch threads; torch {torch.__version__}; "
              f"data: {source}, vocab {vocab}; load average {load_start} at start, {load_average()} at end; "
              f"matmul peak ({clock_name}) fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s")
    lines = [header, "",
             f"| preset (seq x batch) | precision | baseline tok/s ({clock_name}) | ours tok/s ({clock_name}) | "
             "ours/baseline (min-max) | wall-time ratio | baseline MFU | ours MFU |",
             "| :-- | :-- | --: | --: | --: | --: | --: | --: |"]
    for r in rows:
        lines.append(
            f"| {r['preset']} ({r['sequence_length']}x{r['batch']}) | {r['precision']} | {r['baseline_tokens_per_s']:.0f} | "
            f"{r['ours_tokens_per_s']:.0f} | {r['ratio_median']:.2f}x ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) | "
            f"{r['wall_ratio_median']:.2f}x | {100 * r['baseline_mfu']:.1f}% | {100 * r['ours_mfu']:.1f}% |")
    lines += ablation_lines(rows, f"ours, PyTorch ops tok/s ({clock_name})", "baseline")
    lines.append(f"\nBaseline and ours alternate step by step in one process: {args.steps} timed steps each after "
                 f"{args.warmup} warm-up; tok/s from the median step, ratio = median per-pair step-time ratio; "
                 f"setup (data build) {setup_s:.0f} s, total {time.perf_counter() - started:.0f} s."
                 + (f" Skipped for the time budget: {', '.join(skipped)}." if skipped else ""))
    table = "\n".join(lines)
    print(table)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "train_bench.json").write_text(json.dumps({
        "device": device, "python": platform.python_version(), "torch": torch.__version__, "data": source,
        "vocab_size": vocab, "load_average_start": load_start, "load_average_end": load_average(),
        "matmul_peak_flops": peaks, "clock": clock_name, "steps": args.steps, "warmup": args.warmup,
        "setup_seconds": setup_s, "rows": rows, "skipped": skipped, "table": table,
    }, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

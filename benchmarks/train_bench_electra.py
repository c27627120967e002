"""ELECTRA training throughput: ja-pretrain's trainer against the naive composition the first seed uses.

    python benchmarks/train_bench_electra.py [--steps 5] [--warmup 1] [--threads N]

Both train the electra-small preset (12 layers, hidden 256, embedding 128, generator 1/1) on
sequences of 128 in batches of 32, from the same packed samples, fp32 and bf16 autocast.

- baseline: the seed's ELECTRA as a transformers `Trainer` model: `ElectraForMaskedLM` run with
  labels over every position (its head and softmax over all 4,096 positions), replacements by
  Gumbel-max at the masked positions, `ElectraForPreTraining` with labels over the attention
  mask, loss = generator + 50 x discriminator, shared embeddings; masking by
  `DataCollatorForLanguageModeling` (15%, 85% [MASK], 15% kept, no random tokens); the
  Trainer's AdamW, linear schedule, clipping, weight decay and precision flags.
- ours: `ja_pretrain.training.trainer.Trainer` with the ELECTRA objective (generator head at
  masked positions only, masking from pre-drawn noise on the batch, count-weighted loss, fused
  AdamW, no host sync per step, and on a CPU the cheaper dropout and attention of
  `ja_pretrain.models.cpu_ops`).
- on a CPU, a third arm: ours with PyTorch's dropout and SDPA (`--torch_dropout`), in the same
  rotation, to show that last part's share (skip it with --no_ablation).

Both live in one process and alternate step by step: after each baseline step (timed from the
end of our previous step, so its data loading and masking count) a callback runs one step of
ours (timed around the call, data included). On a shared machine the load then falls on both
alike; --warmup steps of each are dropped, the medians of --steps timed ones give tokens/s, and
the per-pair ratios give the spread. tokens/s counts sequence positions. Data: the packed dataset that benchmarks/train_bench.py builds (real Japanese text
from ../shared/data/corpus-ja when present, else the bundled sample; our tokenizer with the
seed's 32768 vocabulary), reused from benchmarks/out/train_bench_cache/ or built there.
Prints a table and writes benchmarks/out/train_bench_electra.json, with the load average: on a
shared machine both sides slow down, and the ratio is the figure to read.
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_bench import OUT_DIR, PackedRows, ablation_lines, load_average, params_for, prepare_data  # noqa: E402  (shared with the BERT bench)

PRESET, LENGTH, BATCH = "electra-small", 128, 32
PRECISIONS = ("fp32", "bf16")
RTD_WEIGHT = 50.0


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# -- ours: the real trainer ----------------------------------------------------------------------------
def make_ours(tokenizer: Path, dataset: Path, precision: str, peak: float, model_dir: Path, cpu_ops: bool = True):
    from ja_pretrain.training.distributed import DistContext
    from ja_pretrain.training.trainer import TrainConfig, Trainer

    cfg = TrainConfig(dataset_dir=dataset, tokenizer_dir=tokenizer, model_dir=model_dir,
                      params=params_for(PRESET, BATCH), precision=precision, progress=False, peak_flops=peak,
                      export=False, cpu_ops=cpu_ops)
    return Trainer(cfg, DistContext(device=device()))


class NaiveElectra(torch.nn.Module):
    """Generator + discriminator composed as HF-based ELECTRA pretraining scripts do it."""

    def __init__(self, generator, discriminator):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        self.discriminator.electra.embeddings = self.generator.electra.embeddings  # shared embeddings

    def forward(self, input_ids, attention_mask, labels, token_type_ids=None, **_):
        gen = self.generator(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             labels=labels)
        masked = labels != -100
        with torch.no_grad():
            logits = gen.logits[masked].float()
            u = torch.rand_like(logits).clamp_(min=1e-9, max=1 - 1e-7)
            sampled = (logits - torch.log(-torch.log(u))).argmax(dim=-1)
            original = torch.where(masked, labels, input_ids)
            corrupted = original.clone()
            corrupted[masked] = sampled
            replaced = (corrupted != original).long()
        disc = self.discriminator(input_ids=corrupted, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                  labels=replaced)
        return {"loss": gen.loss + RTD_WEIGHT * disc.loss}


def run_pair(tokenizer_dir: Path, dataset: Path, precision: str, warmup: int, steps: int, peak: float,
             ablation: bool):
    """Baseline and ours alternating step by step (then, with `ablation`, ours with PyTorch's dropout
    and SDPA); returns (baseline times, our times, ablation times or [], our FLOPs/step)."""
    from transformers import (AutoTokenizer, DataCollatorForLanguageModeling, ElectraForMaskedLM,
                              ElectraForPreTraining, Trainer, TrainerCallback, TrainingArguments)
    from transformers.utils import logging as hf_logging

    from ja_pretrain.models.electra import electra_configs
    from ja_pretrain.training.metrics import MetricWindow
    from ja_pretrain.training.trainer import embedding_rows

    hf_logging.set_verbosity_error()
    rows = PackedRows(dataset)
    params = params_for(PRESET, BATCH)
    torch.manual_seed(0)
    vocab = embedding_rows(tokenizer_dir, rows.samples.vocab_size)
    gen_config, disc_config = electra_configs(params, rows.samples.special_ids, vocab)
    model = NaiveElectra(ElectraForMaskedLM(gen_config), ElectraForPreTraining(disc_config))
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    baseline_times: list[float] = []
    our_times: list[float] = []
    torch_ops_times: list[float] = []
    window = MetricWindow()

    with tempfile.TemporaryDirectory() as tmp:
        ours = make_ours(tokenizer_dir, dataset, precision, peak, Path(tmp) / "ours")
        torch_ops = make_ours(tokenizer_dir, dataset, precision, peak, Path(tmp) / "torch-ops", cpu_ops=False) if ablation else None

        class Interleave(TrainerCallback):
            last = 0.0

            def on_train_begin(self, args, state, control, **kwargs):
                Interleave.last = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                _sync()
                now = time.perf_counter()
                baseline_times.append(now - Interleave.last)
                ours.train_step(window)
                _sync()
                Interleave.last = time.perf_counter()
                our_times.append(Interleave.last - now)
                if torch_ops is not None:
                    torch_ops.train_step(MetricWindow())
                    _sync()
                    now, Interleave.last = Interleave.last, time.perf_counter()
                    torch_ops_times.append(Interleave.last - now)

        args = TrainingArguments(
            output_dir=str(Path(tmp) / "hf"), per_device_train_batch_size=BATCH, max_steps=warmup + steps,
            learning_rate=params.learning_rate, warmup_steps=params.warmup_steps, weight_decay=0.01, adam_epsilon=1e-6,
            bf16=precision == "bf16", use_cpu=not torch.cuda.is_available(), report_to=[], save_strategy="no",
            logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=0, remove_unused_columns=False,
        )
        collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm_probability=params.mask_probability,
                                                   mask_replace_prob=0.85, random_replace_prob=0.0)
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator, callbacks=[Interleave()])
        with contextlib.redirect_stdout(sys.stderr):
            trainer.train()
        flops = window.reduce(ours.ctx, ours.ctx.device)["flops"] / len(our_times)
        ours.logger.close()
        if torch_ops is not None:
            torch_ops.logger.close()
    return baseline_times[warmup:], our_times[warmup:], torch_ops_times[warmup:], flops


def measure_peaks() -> dict[str, float]:
    from ja_pretrain.training.metrics import measure_matmul_peak
    from ja_pretrain.training.trainer import PRECISIONS as DTYPES

    return {p: measure_matmul_peak(device(), DTYPES[p], seconds=1.0) for p in PRECISIONS}


def main(argv: list[str] | None = None) -> int:
    global BATCH
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each side per precision")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each side first")
    parser.add_argument("--max_sentences", type=int, default=60_000, help="corpus sentences (if the data is built here)")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--threads", type=int, help="torch threads for both (default: torch's choice)")
    parser.add_argument("--batch", type=int, default=BATCH, help="sequences per step (32 is the issue's)")
    parser.add_argument("--no_ablation", action="store_true",
                        help="on a CPU, skip the third arm: ours with PyTorch's dropout and SDPA (--torch_dropout)")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    BATCH = args.batch
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    load_start = load_average()
    tokenizer, datasets, source = prepare_data(args.max_sentences, 32768)
    dataset = datasets[LENGTH]
    setup_s = time.perf_counter() - started
    peaks = measure_peaks()
    from ja_pretrain.dataset import open_samples

    vocab = open_samples(dataset).vocab_size
    tokens = BATCH * LENGTH
    rows = []
    ablation = not torch.cuda.is_available() and not args.no_ablation  # cpu_ops only act on a CPU
    for precision in args.precisions.split(","):
        base, ours, torch_ops, flops = run_pair(tokenizer, dataset, precision, args.warmup, args.steps,
                                                peaks[precision], ablation)
        base_tps = [tokens / t for t in base]
        ours_tps = [tokens / t for t in ours]
        ratios = [b / o for b, o in zip(base, ours)]
        print(f"  {precision}: baseline steps {[round(t, 2) for t in base]} s, ours {[round(t, 2) for t in ours]} s "
              f"(load {load_average()})", file=sys.stderr, flush=True)
        per_token = flops / tokens
        rows.append({
            "preset": PRESET, "sequence_length": LENGTH, "batch": BATCH, "precision": precision,
            "steps": len(ratios), "baseline_tokens_per_s": statistics.median(base_tps),
            "ours_tokens_per_s": statistics.median(ours_tps),
            "ratio": statistics.median(ours_tps) / statistics.median(base_tps),
            "ratio_min": min(ratios), "ratio_max": max(ratios), "baseline_step_s": base, "ours_step_s": ours,
            "baseline_mfu": statistics.median(base_tps) * per_token / peaks[precision],
            "ours_mfu": statistics.median(ours_tps) * per_token / peaks[precision],
            "useful_flops_per_token": per_token,
        })
        if torch_ops:  # the cheaper CPU dropout/attention's share: ours with PyTorch's ops, same rotation
            rows[-1].update({"ours_torch_ops_step_s": torch_ops,
                             "ours_torch_ops_tokens_per_s": statistics.median(tokens / t for t in torch_ops),
                             "cpu_ops_gain_median": statistics.median(t / o for t, o in zip(torch_ops, ours))})

    where = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    header = (f"train_bench_electra on {where}, {torch.get_num_threads()} torch threads; torch {torch.__version__}; "
              f"data: {source}, vocab {vocab}; load average {load_start} at start, {load_average()} at end; "
              f"matmul peak fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s")
    lines = [header, "",
             "| preset (seq x batch) | precision | naive HF tok/s | ours tok/s | ours/naive (min-max) | naive MFU | ours MFU |",
             "| :-- | :-- | --: | --: | --: | --: | --: |"]
    for r in rows:
        lines.append(
            f"| {r['preset']} ({r['sequence_length']}x{r['batch']}) | {r['precision']} | {r['baseline_tokens_per_s']:.0f} | "
            f"{r['ours_tokens_per_s']:.0f} | {r['ratio']:.2f}x ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) | "
            f"{100 * r['baseline_mfu']:.1f}% | {100 * r['ours_mfu']:.1f}% |")
    lines += ablation_lines(rows, "ours, PyTorch ops tok/s", "naive")
    lines.append(f"\nSteps alternate naive/ours; medians of {args.steps} timed steps each after {args.warmup} warm-up "
                 f"(ratio spread: per step pair); MFU counts useful FLOPs (generator head at masked positions only) "
                 f"for both; setup {setup_s:.0f} s, total {time.perf_counter() - started:.0f} s.")
    table = "\n".join(lines)
    print(table)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "train_bench_electra.json").write_text(json.dumps({
        "device": where, "python": platform.python_version(), "torch": torch.__version__, "data": source,
        "vocab_size": vocab, "threads": torch.get_num_threads(), "load_average_start": load_start,
        "load_average_end": load_average(), "matmul_peak_flops": peaks,
        "steps": args.steps, "warmup": args.warmup, "setup_seconds": setup_s, "rows": rows,
        "table": table,
    }, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

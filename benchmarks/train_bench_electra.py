"""ELECTRA training throughput: ja-pretrain's trainer against the naive composition the first seed uses.

    python benchmarks/train_bench_electra.py [--repeats 3] [--steps 3] [--warmup 1] [--threads N]

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
  AdamW, no host sync per step; on a CPU also the cheaper dropout and attention of
  `ja_pretrain.models.cpu_ops` and the malloc settings of `ja_pretrain.training.host_memory`).

Each arm runs in blocks of steps in fresh processes, the arms' blocks alternating over several
repeats (benchmarks/arms.py; the same scheme and clocks as train_bench.py): each step is timed
from the command to its end, so data loading and masking count. On a CPU the clock is each
arm's own CPU time and the wall-time ratio is shown beside it; on a GPU, wall time. On a CPU
the ablation arms of train_bench.py run too (ours with PyTorch's ops, ours with glibc's default
malloc settings, ours with the generator's last layer at every position, the baseline under
ours' malloc settings; skip them with --no_ablation).
--warmup steps of each block are dropped, the medians of the timed ones give tokens/s, and the
per-repeat ratios give the spread. tokens/s counts sequence positions. Data: the packed dataset
that benchmarks/train_bench.py builds (real Japanese text from ../shared/data/corpus-ja when
present, else the bundled sample; our tokenizer with the seed's 32768 vocabulary), reused from
benchmarks/out/train_bench_cache/ or built there.
Prints a table and writes benchmarks/out/train_bench_electra.json, with the load average.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the parts both training benches share live in the BERT bench
from train_bench import (ablation_lines, collator_tokenizer, text_share, build_arms, hf_training_arguments, load_average,  # noqa: I001
                         main_table_lines, measure_configuration, measure_peaks, ours_arm, params_for, prepare_data,
                         run_hf_trainer, write_report)

PRESET, LENGTH, BATCH = "electra-small", 128, 32
PRECISIONS = ("fp32", "bf16")
RTD_WEIGHT = 50.0


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


class PackedRows(torch.utils.data.Dataset):
    """Our packed samples as the per-example dicts a transformers Trainer expects (both arms
    train on the same rows here: the comparison is of the objectives' implementations)."""

    def __init__(self, dataset):
        from ja_pretrain.dataset import open_samples

        self.samples = open_samples(dataset, "train")

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        row = self.samples.batch(np.array([i]))
        return {k: row[k][0].tolist() for k in ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask")}


def baseline_arm(control, batch, tokenizer_dir, dataset, precision, steps, keep_memory=False):
    """A child process's arm: the naive ELECTRA in transformers' Trainer for `steps` steps; with
    `keep_memory`, under the malloc settings our trainer makes."""
    from transformers import DataCollatorForLanguageModeling, ElectraForMaskedLM, ElectraForPreTraining

    from ja_pretrain.models.electra import electra_configs
    from ja_pretrain.training.host_memory import keep_freed_memory
    from ja_pretrain.training.trainer import embedding_rows

    if keep_memory:
        keep_freed_memory()
    rows = PackedRows(dataset)
    params = params_for(PRESET, batch)
    torch.manual_seed(0)
    vocab = embedding_rows(tokenizer_dir, rows.samples.vocab_size)
    gen_config, disc_config = electra_configs(params, rows.samples.special_ids, vocab)
    model = NaiveElectra(ElectraForMaskedLM(gen_config), ElectraForPreTraining(disc_config))
    collator = DataCollatorForLanguageModeling(tokenizer=collator_tokenizer(tokenizer_dir),
                                               mlm_probability=params.mask_probability,
                                               mask_replace_prob=0.85, random_replace_prob=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        args = hf_training_arguments(Path(tmp), params, batch, steps, precision, remove_unused_columns=False)
        run_hf_trainer(control, model, rows, collator, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="blocks of each arm, alternating")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per block")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps per block")
    parser.add_argument("--max_sentences", type=int, default=60_000, help="corpus sentences (if the data is built here)")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--threads", type=int, help="torch threads for every arm (default: torch's choice)")
    parser.add_argument("--batch", type=int, default=BATCH, help="sequences per step (32 is the issue's)")
    parser.add_argument("--no_ablation", action="store_true",
                        help="on a CPU, run only the baseline and ours, not the ablation arms")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--warmup, --steps and --repeats must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    load_start = load_average()
    tokenizer, datasets, source = prepare_data(args.max_sentences, 32768, "packed")
    dataset = datasets[LENGTH]
    setup_s = time.perf_counter() - started
    clock = 0 if torch.cuda.is_available() else 1
    clock_name = "wall" if clock == 0 else "CPU-time"
    peaks = measure_peaks(clock)
    from ja_pretrain.dataset import open_samples

    vocab = open_samples(dataset).vocab_size
    tokens = args.batch * LENGTH
    rows = []
    ablation = not torch.cuda.is_available() and not args.no_ablation  # what they switch off acts on a CPU only
    for precision in args.precisions.split(","):
        common = {"batch": args.batch, "dataset": dataset, "precision": precision}
        arms = build_arms((baseline_arm, {"tokenizer_dir": tokenizer, "steps": args.warmup + args.steps}),
                          (ours_arm, {"preset": PRESET, "tokenizer": tokenizer, "peak": peaks[precision]}), ablation,
                          **common)
        share = text_share(dataset)  # both arms train on the same rows here
        rows.append({"preset": PRESET, "sequence_length": LENGTH, "batch": args.batch, "precision": precision,
                     "clock": clock_name, **measure_configuration(arms, args, f"{PRESET} {precision}", clock, tokens,
                                                                  peaks[precision], share, share)})

    lines = [*main_table_lines(rows, clock_name, "naive"), *ablation_lines(rows, f"tok/s ({clock_name})", "naive HF baseline")]
    lines.append(f"\nEach arm in blocks of {args.warmup} warm-up + {args.steps} timed steps in a fresh process, the arms' "
                 f"blocks alternating over {args.repeats} repeats (ratio spread: per repeat); MFU counts useful FLOPs "
                 f"(generator head at masked positions only) for both; setup {setup_s:.0f} s, "
                 f"total {time.perf_counter() - started:.0f} s.")
    write_report("train_bench_electra", lines, {
        "data": source, "vocab_size": vocab, "load_average_start": load_start, "matmul_peak_flops": peaks,
        "clock": clock_name, "steps": args.steps, "warmup": args.warmup, "setup_seconds": setup_s, "rows": rows,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""BERT and ModernBERT pretraining throughput: ja-pretrain's trainer against transformers' Trainer.

    python benchmarks/train_bench.py [--repeats 3] [--steps 3] [--warmup 1] [--only bert-small] [--threads 2]

The baseline is what a user would otherwise run, as transformers' run_mlm.py does it:
`Trainer` + `BertForMaskedLM` + `DataCollatorForLanguageModeling` (15% masking, 80/10/10) with
the same model configuration (the preset, SDPA attention), the same optimizer settings and
precision, in a plain Python process, on run_mlm's rows: the token stream of the same text cut
into full rows ([CLS] 126 tokens [SEP] at 128; no padding, documents attending to each other).
Ours trains on our dataset in --form (default full: rows filled with documents kept apart; packed:
one document per row, padded). tokens/s counts positions; text tok/s counts the positions that
hold text (the share the dataset's manifest gives for ours, (L-2)/L for run_mlm's rows), the
figure that says how fast the model learns from the corpus. Ours is
`ja_pretrain.training.trainer.Trainer` as `ja-pretrain run-pretraining` runs it (MLM head, and
the last layer past attention, at masked positions only; vectorised masking from the memmap
dataset, fused AdamW, no host sync per step; on a CPU also the cheaper dropout and attention of
`ja_pretrain.models.cpu_ops` and the malloc settings of `ja_pretrain.training.host_memory`).
Configurations: the bert-small preset at sequence 128 and batch 32 (the issue's), and the
bert-tiny preset at its sequence 512 with batch
8 (the same 4,096 positions per step); fp32 and bf16 autocast each.

ModernBERT (modernbert-small at 512 x 8 and 1,024 x 4): the baseline is `Trainer` +
`ModernBertForMaskedLM` + `DataCollatorForLanguageModeling(mlm_probability=0.3)` on one document
per row (each document cut into pieces of at most L-2 tokens, [CLS] piece [SEP]), padded per batch
to its longest row, as llm-jp-modernbert trains; its text share is counted on the batches it made.
Ours trains on full rows with the documents kept apart by a mask per layer type. Two more arms
for it: the baseline with ModernBERT's own `sparse_prediction` (its head at the masked positions
only), and ours with `--compile` flipped from its default (`training/compilation.py`).

Each arm runs in blocks (benchmarks/arms.py): a fresh process, --warmup untimed and --steps timed
optimizer steps, exit; the arms' blocks alternate over --repeats rounds, so each runs alone as a
user runs it and a slow spell of the machine falls on neighbouring blocks of different arms. On
a CPU four more arms run in the same rounds (skip them with --no_ablation): ours with
PyTorch's dropout and SDPA (`--torch_dropout`), ours with glibc's default malloc settings
(`--system_malloc`), ours with the encoder's last layer run at every position (as transformers
runs it; ours runs it past attention only where the MLM head reads, see
ja_pretrain/models/selected_output.py), and the baseline under ours' malloc settings; they show
what each part adds, and how much of the lead the malloc setting alone makes. A step is timed from the
command to its end (data, collation/masking, forward, backward, optimizer). tokens/s counts
sequence positions, from the median timed step of all blocks; the ratio is the median over
repeats of (baseline's median step time / ours') in the same round, with its min and max. On a
CPU the clock is each arm's own CPU time (other users' load on a shared machine inflates wall
time, not CPU time); the wall-time ratio is shown beside it. On a GPU the clock is wall time.
MFU = useful model FLOPs (the encoder, with its last layer past attention and the MLM head at the
masked positions only, forward + backward) spent on text, per second, over this machine's measured matmul peak
in that precision (a 1024^3 or 4096^3 matmul).

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
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arms import clocks, elapsed, run_blocks, serve_steps, step_on_command  # (shared by the benches)

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "corpus-ja"
OUT_DIR = ROOT / "benchmarks" / "out"
CACHE = OUT_DIR / "train_bench_cache"
CONFIGS = [  # (preset, sequence length, batch)
    ("bert-small", 128, 32),
    ("bert-tiny", 512, 8),
    ("modernbert-small", 512, 8),
    ("modernbert-small", 1024, 4),
]
PRECISIONS = ("fp32", "bf16")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def prepare_data(max_sentences: int, vocab_size: int, form: str,
                 lengths: tuple[int, ...] = tuple(c[1] for c in CONFIGS)) -> tuple[Path, dict[int, Path], str]:
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
    for length in sorted(set(lengths)):
        out = CACHE / (f"dataset-{vocab_size}-{length}" + ("" if form == "packed" else f"-{form}"))
        build_dataset(corpus, tokenizer, out, sequence_length=length, form=form, progress=False)
        datasets[length] = out
    return tokenizer, datasets, source


def text_share(dataset: Path) -> float:
    """The share of the dataset's row positions that hold text (computed for a dataset built
    before manifests gave it)."""
    from ja_pretrain.dataset import open_samples

    share = json.loads((dataset / "manifest.json").read_text())["splits"]["train"].get("text_fill")
    if share is None:
        samples = open_samples(dataset).samples
        share = float((samples[:, 1] - samples[:, 0]).sum()) / (len(samples) * open_samples(dataset).sequence_length)
    return share


def params_for(preset: str, batch: int, length: int | None = None):
    from ja_pretrain.config.parameters import load_parameters

    params = load_parameters(preset)
    return params.replace(batch_size=batch, accumulation_steps=1, train_steps=10_000, warmup_steps=100,
                          save_steps=10_000, logging_steps=10_000, sequence_length=length or params.sequence_length)


# -- ours ---------------------------------------------------------------------------------------------
class Ours:
    """ja-pretrain's Trainer, stepped one optimizer step at a time."""

    def __init__(self, preset, batch, tokenizer, dataset, precision, peak, model_dir, **train_options):
        from ja_pretrain.dataset import open_samples
        from ja_pretrain.training.distributed import DistContext
        from ja_pretrain.training.step_metrics import MetricWindow
        from ja_pretrain.training.trainer import TrainConfig, Trainer

        length = open_samples(dataset).sequence_length
        cfg = TrainConfig(dataset_dir=dataset, tokenizer_dir=tokenizer, model_dir=Path(model_dir),
                          params=params_for(preset, batch, length), precision=precision, progress=False,
                          peak_flops=peak, **train_options)
        self.trainer = Trainer(cfg, DistContext(device=torch.device("cuda" if torch.cuda.is_available() else "cpu")))
        self.window = MetricWindow()
        self.steps = 0

    def step(self) -> None:
        self.trainer.train_step(self.window)
        self.steps += 1

    def flops_per_step(self) -> float:
        return self.window.reduce(self.trainer.ctx, self.trainer.ctx.device)["flops"] / self.steps


def full_rows(encoder, positions, input_ids, attention_mask, token_type_ids, position_ids=None, document_ids=None):
    """`encode_selected` the way transformers computes it: the whole encoder at every position,
    then the read rows."""
    from ja_pretrain.models.selected_output import document_mask

    if document_ids is not None:
        attention_mask = document_mask(document_ids, encoder.config)
    out = encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                  position_ids=position_ids)
    return out.last_hidden_state.flatten(0, 1).index_select(0, positions)


def full_rows_modernbert(encoder, positions, input_ids, attention_mask=None, position_ids=None, document_ids=None,
                         **varlen):
    """The same for ModernBERT: its whole forward (the masks of each layer type for full rows)."""
    from ja_pretrain.models.modernbert import layer_masks

    if document_ids is not None:
        attention_mask = layer_masks(document_ids, encoder.config)
    out = encoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **varlen)
    return out.last_hidden_state.flatten(0, 1).index_select(0, positions)


def run_top_layer_everywhere() -> None:
    """In this process, run the encoder's last layer at every position (`full_rows`); ours runs
    it past attention only at the rows the heads read."""
    import ja_pretrain.models.bert
    import ja_pretrain.models.electra
    import ja_pretrain.models.modernbert

    ja_pretrain.models.bert.encode_selected = full_rows
    ja_pretrain.models.electra.encode_selected = full_rows
    ja_pretrain.models.modernbert.encode_selected_modernbert = full_rows_modernbert


def ours_arm(control, preset, batch, tokenizer, dataset, precision, peak, full_top_layer=False, **train_options):
    """A child process's arm: our trainer (`train_options`: TrainConfig fields, e.g. cpu_ops=False;
    `full_top_layer`: see run_top_layer_everywhere). Last reports our useful FLOPs per step."""
    if full_top_layer:
        run_top_layer_everywhere()
    with tempfile.TemporaryDirectory() as tmp:
        ours = Ours(preset, batch, tokenizer, dataset, precision, peak, Path(tmp) / "ours", **train_options)
        serve_steps(control, ours.step)
        control.final(ours.flops_per_step())
        ours.trainer.logger.close()


# -- the baseline: transformers Trainer as run_mlm.py uses it ---------------------------------------------
class ConcatenatedRows(torch.utils.data.Dataset):
    """run_mlm's group_texts rows of the dataset's text: the token stream cut every L-2 tokens,
    each piece as [CLS] piece [SEP], as the per-example dicts a transformers Trainer expects."""

    def __init__(self, dataset: Path):
        from ja_pretrain.dataset import open_samples

        self.samples = open_samples(dataset, "train")
        self.text = self.samples.sequence_length - 2
        self.cls, self.sep = self.samples.special_ids["cls"], self.samples.special_ids["sep"]

    def __len__(self):
        return len(self.samples.store.tokens) // self.text

    def __getitem__(self, i):
        piece = self.samples.store.tokens[i * self.text:(i + 1) * self.text].tolist()
        ids = [self.cls, *piece, self.sep]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "token_type_ids": [0] * len(ids),
                "special_tokens_mask": [1, *[0] * len(piece), 1]}


def hf_training_arguments(output_dir: Path, params, batch: int, steps: int, precision: str, **extra):
    """The transformers TrainingArguments both benches' baselines run with: our preset's optimizer
    settings, no logging, saving or progress bar."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=batch, max_steps=steps,
        learning_rate=params.learning_rate, warmup_steps=params.warmup_steps, weight_decay=0.01, adam_epsilon=1e-6,
        bf16=precision == "bf16", use_cpu=not torch.cuda.is_available(), report_to=[], save_strategy="no",
        logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=0, **extra,
    )


def run_hf_trainer(control, model, rows, collator, args, final=lambda: None) -> None:
    """Train a transformers Trainer one step per parent command (see arms.step_on_command); last
    reports `final()`."""
    from transformers import Trainer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator,
                      callbacks=[step_on_command(control)])
    with contextlib.redirect_stdout(sys.stderr):  # its end-of-training summary is not our table
        trainer.train()
    control.final(final())


def collator_tokenizer(tokenizer_dir: Path):
    """What DataCollatorForLanguageModeling reads of a tokenizer (vocabulary size, [MASK] and
    [PAD] ids; the rows bring their special-token masks): a BertTokenizerFast over the same
    vocab.txt gives the same, and needs no MeCab, which the GPU machine does not have."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab_file=str(Path(tokenizer_dir) / "vocab.txt"), do_lower_case=False)


def parse_configs(text: str) -> list[tuple[str, int, int]]:
    """"preset:length:batch,..." -> [(preset, length, batch), ...]."""
    try:
        return [(p, int(length), int(batch)) for p, length, batch in (item.split(":") for item in text.split(","))]
    except ValueError:
        raise SystemExit(f"--configs {text!r}: give preset:length:batch items separated by commas") from None


class DocumentRows(torch.utils.data.Dataset):
    """One document per row, as llm-jp-modernbert trains: each document of the dataset's text cut
    into pieces of at most L-2 tokens, each piece [CLS] piece [SEP], unpadded (the collator pads
    each batch to its longest row)."""

    def __init__(self, dataset: Path):
        from ja_pretrain.dataset import open_samples

        self.samples = open_samples(dataset, "train")
        text = self.samples.sequence_length - 2
        bounds = self.samples.store.document_offsets()
        self.pieces = [(start, min(start + text, end)) for begin, end in zip(bounds[:-1], bounds[1:], strict=True)
                       for start in range(int(begin), int(end), text)]
        self.cls, self.sep = self.samples.special_ids["cls"], self.samples.special_ids["sep"]

    def __len__(self):
        return len(self.pieces)

    def __getitem__(self, i):
        start, end = self.pieces[i]
        ids = [self.cls, *self.samples.store.tokens[start:end].tolist(), self.sep]
        return {"input_ids": ids, "special_tokens_mask": [1, *[0] * (end - start), 1]}


class CountingCollator:
    """A collator that also counts the text tokens of the batches it made and their positions."""

    def __init__(self, collator):
        self.collator, self.text, self.batches = collator, [], []

    def __call__(self, examples):
        batch = self.collator(examples)
        self.text.append(sum(len(e["input_ids"]) - 2 for e in examples))
        self.batches.append(batch["input_ids"].numel())
        return batch


def baseline_arm(control, preset, batch, tokenizer_dir, dataset, precision, steps, keep_memory=False,
                 sparse_prediction=False):
    """A child process's arm: transformers' Trainer + the family's masked-LM model (BertForMaskedLM
    on run_mlm's rows; ModernBertForMaskedLM on one document per row, padded per batch) +
    DataCollatorForLanguageModeling at the preset's rate, for `steps` steps; with `keep_memory`,
    under the malloc settings our trainer makes; `sparse_prediction`: ModernBERT's own option to
    run its head at the masked positions only. Last reports the share of its rows that was text
    (None for run_mlm's rows: (L-2)/L)."""
    from transformers import BertForMaskedLM, DataCollatorForLanguageModeling, ModernBertForMaskedLM

    from ja_pretrain.dataset import open_samples
    from ja_pretrain.models.bert import bert_config
    from ja_pretrain.models.modernbert import modernbert_config
    from ja_pretrain.training.host_memory import keep_freed_memory
    from ja_pretrain.training.trainer import embedding_rows

    if keep_memory:
        keep_freed_memory()
    length = open_samples(dataset).sequence_length
    params = params_for(preset, batch, length)
    modern = params.family == "modernbert"
    rows = DocumentRows(dataset) if modern else ConcatenatedRows(dataset)
    torch.manual_seed(0)
    vocab = embedding_rows(tokenizer_dir, rows.samples.vocab_size)  # the same embedding as ours
    if modern:
        config = modernbert_config(params, rows.samples.special_ids, vocab)
        config.sparse_prediction = sparse_prediction
        model = ModernBertForMaskedLM(config)
    else:
        model = BertForMaskedLM(bert_config(params, rows.samples.special_ids, vocab))
    collator = CountingCollator(DataCollatorForLanguageModeling(tokenizer=collator_tokenizer(tokenizer_dir),
                                                                mlm_probability=params.mask_probability))
    with tempfile.TemporaryDirectory() as tmp:
        run_hf_trainer(control, model, rows, collator, hf_training_arguments(Path(tmp), params, batch, steps, precision),
                       final=lambda: sum(collator.text) / (len(collator.text) * batch * length) if modern else None)


# Arms beyond the baseline and ours, on a CPU: (name, what it is); each runs in the same rotation.
ABLATIONS = (
    ("ours_torch_ops", "ours with PyTorch's dropout and SDPA attention (`--torch_dropout`)"),
    ("ours_system_malloc", "ours with glibc's default malloc settings (`--system_malloc`)"),
    ("ours_full_top_layer", "ours with the last layer at every position"),
    ("baseline_kept_memory", "the baseline under the malloc settings ours makes"),
    ("baseline_sparse_prediction", "the baseline with ModernBERT's sparse_prediction (its head at masked positions)"),
    ("ours_compile_flipped", "ours with --compile the other way from its default (on for BERT, off for ModernBERT)"),
)
ABLATION_OPTIONS = {"ours_torch_ops": {"cpu_ops": False}, "ours_system_malloc": {"keep_host_memory": False},
                    "ours_full_top_layer": {"full_top_layer": True}}
MALLOC_ARMS = ("ours_system_malloc", "baseline_kept_memory")  # only where malloc can be tuned (glibc)


def arm_summary(times: dict[str, list[list[tuple[float, float]]]], clock: int, tokens: int) -> dict:
    """Tokens/s of every arm (from the median of all its timed steps) and, per repeat, the ratio of
    the baseline's and each ablation arm's median step time to ours' (median, min, max over
    repeats; the wall-clock median too)."""
    def median_step(block, which):
        return statistics.median(t[which] for t in block)

    summary = {f"{name}_step_wall_cpu_s": blocks for name, blocks in times.items()}
    summary.update({f"{name}_tokens_per_s": tokens / statistics.median(t[clock] for block in blocks for t in block)
                    for name, blocks in times.items()})
    ours = times["ours"]
    for name, blocks in times.items():
        if name == "ours":
            continue
        ratios = [median_step(a, clock) / median_step(o, clock) for a, o in zip(blocks, ours, strict=True)]  # time = 1/speed
        key = "ratio" if name == "baseline" else f"ours_over_{name}"
        summary.update({f"{key}_median": statistics.median(ratios), f"{key}_min": min(ratios), f"{key}_max": max(ratios),
                        f"{key}_per_repeat": ratios,
                        f"{key}_wall_median": statistics.median(median_step(a, 0) / median_step(o, 0)
                                                                for a, o in zip(blocks, ours, strict=True))})
    return summary


def measure_peaks(clock: int) -> dict[str, float]:
    """Matmul FLOP/s per precision, by the clock the table uses (0 wall, 1 CPU time)."""
    from ja_pretrain.training.peak import measure_matmul_peak
    from ja_pretrain.utils.devices import dtype_of

    if torch.cuda.is_available():
        return {p: measure_matmul_peak(torch.device("cuda"), dtype_of(p), seconds=1.0) for p in PRECISIONS}
    peaks = {}
    for p in PRECISIONS:
        a = torch.randn(1024, 1024).to(dtype_of(p))
        b = torch.randn(1024, 1024).to(dtype_of(p))
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
    """The ablation table: each extra arm's speed and ours' speed over it, for the rows that ran them."""
    lines = []
    for r in rows:
        for name, what in ABLATIONS:
            if f"ours_over_{name}_median" in r:
                lines.append(f"| {r['preset']} ({r['sequence_length']}x{r['batch']}) | {r['precision']} | "
                             f"{what.replace('the baseline', f'the {baseline_name}')} | {r[f'{name}_tokens_per_s']:.0f} | "
                             f"{r[f'ours_over_{name}_median']:.2f}x ({r[f'ours_over_{name}_min']:.2f}-"
                             f"{r[f'ours_over_{name}_max']:.2f}) |")
    if not lines:
        return []
    return ["", "Ablations, in the same rounds (ours over an arm > 1: that arm is slower than ours):", "",
            f"| preset (seq x batch) | precision | arm | {speed_header} | ours over it (min-max) |",
            "| :-- | :-- | :-- | --: | --: |", *lines]


def build_arms(baseline: tuple, ours: tuple, ablation: bool, only: list[str] | None = None,
               **common) -> list[tuple[str, Callable, dict]]:
    """(name, target, kwargs) of the baseline and ours, plus the ablation arms (those named in
    `only`, when given); `baseline` and `ours` are (target, extra kwargs), `common` goes to every arm."""
    from ja_pretrain.config.parameters import load_parameters
    from ja_pretrain.training.compilation import should_compile
    from ja_pretrain.training.host_memory import malloc_tunable

    (base_target, base_kwargs), (ours_target, ours_kwargs) = baseline, ours
    preset = common.get("preset") or ours_kwargs.get("preset")
    family = load_parameters(preset).family
    arms = [("baseline", base_target, {**common, **base_kwargs}), ("ours", ours_target, {**common, **ours_kwargs})]
    if ablation:
        for name, _ in ABLATIONS:
            if only is not None and name not in only:
                continue
            if name in MALLOC_ARMS and not malloc_tunable():  # they would run as plain ours and baseline
                continue
            if name == "baseline_kept_memory":
                arms.append((name, base_target, {**common, **base_kwargs, "keep_memory": True}))
            elif name == "baseline_sparse_prediction":
                if family == "modernbert":
                    arms.append((name, base_target, {**common, **base_kwargs, "sparse_prediction": True}))
            elif name == "ours_compile_flipped":
                flipped = not should_compile(None, family, torch.device("cpu"), params_for(preset, 1).train_steps)
                arms.append((name, ours_target, {**common, **ours_kwargs, "compile": flipped}))
            else:
                arms.append((name, ours_target, {**common, **ours_kwargs, **ABLATION_OPTIONS[name]}))
    return arms


def log_progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def measure_configuration(arms: list[tuple[str, Callable, dict]], args: argparse.Namespace, label: str,
                          clock: int, tokens: int, peak: float, ours_share: float, baseline_share: float) -> dict:
    """Run one configuration's arms in alternating blocks; its figures: tok/s and ratios of every arm
    (`arm_summary`), useful FLOPs per text token and the MFU of the baseline and ours against `peak`.
    `tokens` is positions per step, the shares the part of them that is text in each arm's rows:
    our trainer reports the FLOPs of its text positions, and MFU counts text for both arms."""
    log_progress(f"{label}:")
    times, finals = run_blocks(arms, args.repeats, args.warmup, args.steps, args.threads, log_progress)
    per_text_token = finals["ours"] / (tokens * ours_share)
    baseline_share = finals.get("baseline") or baseline_share  # measured on the batches it made, where it pads
    row = {"repeats": args.repeats, "timed_steps_per_block": args.steps, **arm_summary(times, clock, tokens),
           "useful_flops_per_text_token": per_text_token, "ours_text_share": ours_share,
           "baseline_text_share": baseline_share}
    row["baseline_mfu"] = row["baseline_tokens_per_s"] * baseline_share * per_text_token / peak
    row["ours_mfu"] = row["ours_tokens_per_s"] * ours_share * per_text_token / peak
    return row


def main_table_lines(rows: list[dict], clock_name: str, baseline_name: str) -> list[str]:
    """The main table: the baseline's and our tok/s, the ratio with its spread, the wall-time ratio,
    MFU, then the same speeds counted in tokens of text."""
    lines = [(f"| preset (seq x batch) | precision | {baseline_name} tok/s ({clock_name}) | ours tok/s ({clock_name}) | "
              f"ours/{baseline_name} (min-max) | wall-time ratio | {baseline_name} MFU | ours MFU | "
              f"{baseline_name} text tok/s | ours text tok/s | text ratio |"),
             "| :-- | :-- | --: | --: | --: | --: | --: | --: | --: | --: | --: |"]
    for r in rows:
        base_text = r["baseline_tokens_per_s"] * r["baseline_text_share"]
        ours_text = r["ours_tokens_per_s"] * r["ours_text_share"]
        text_ratio = r["ratio_median"] * r["ours_text_share"] / r["baseline_text_share"]
        lines.append(
            f"| {r['preset']} ({r['sequence_length']}x{r['batch']}) | {r['precision']} | {r['baseline_tokens_per_s']:.0f} | "
            f"{r['ours_tokens_per_s']:.0f} | {r['ratio_median']:.2f}x ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) | "
            f"{r['ratio_wall_median']:.2f}x | {100 * r['baseline_mfu']:.1f}% | {100 * r['ours_mfu']:.1f}% | "
            f"{base_text:.0f} | {ours_text:.0f} | {text_ratio:.2f}x |")
    return lines


def write_report(name: str, body: list[str], figures: dict) -> None:
    """Print a header line (machine, data, load, matmul peak from `figures`) and `body`, and write
    both with `figures` and the machine's facts to OUT_DIR/`name`.json."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    load_end, peaks, clock_name = load_average(), figures["matmul_peak_flops"], figures["clock"]
    header = (f"{name} on {device}, {torch.get_num_threads()} torch threads; torch {torch.__version__}; "
              f"data: {figures['data']}, vocab {figures['vocab_size']}; load average {figures['load_average_start']} "
              f"at start, {load_end} at end; matmul peak ({clock_name}) fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, "
              f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s")
    table = "\n".join([header, "", *body])
    print(table)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"{name}.json").write_text(json.dumps({
        "device": device, "python": platform.python_version(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), **figures, "load_average_end": load_end, "table": table,
    }, indent=2, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="blocks of each arm, alternating")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per block")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps per block")
    parser.add_argument("--max_sentences", type=int, default=60_000, help="corpus sentences to build the data from")
    parser.add_argument("--vocab_size", type=int, default=32768)
    parser.add_argument("--budget", type=float, default=1800.0, help="seconds; no new configuration starts after this")
    parser.add_argument("--only", choices=[c[0] for c in CONFIGS], help="run one preset")
    parser.add_argument("--configs", type=parse_configs, default=CONFIGS,
                        help="preset:length:batch,... to run instead of " + ",".join(f"{p}:{s}:{b}" for p, s, b in CONFIGS))
    parser.add_argument("--precision", choices=PRECISIONS, help="run one precision (a CPU without AVX-512 runs "
                        "bf16 matmuls far slower than fp32)")
    parser.add_argument("--form", choices=("full", "packed"), default="full", help="our dataset's form")
    parser.add_argument("--threads", type=int, help="torch threads for both (default: torch's choice)")
    parser.add_argument("--prepare_only", action="store_true", help="build the data and stop")
    parser.add_argument("--no_ablation", action="store_true",
                        help="on a CPU, run only the baseline and ours, not the ablation arms")
    parser.add_argument("--ablations", nargs="+", choices=[name for name, _ in ABLATIONS],
                        help="on a CPU, run these ablation arms only (default: all that apply)")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--warmup, --steps and --repeats must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    load_start = load_average()

    tokenizer, datasets, source = prepare_data(args.max_sentences, args.vocab_size, args.form,
                                               tuple(c[1] for c in args.configs))
    setup_s = time.perf_counter() - started
    if args.prepare_only:
        print(f"data ready in {setup_s:.0f} s: {tokenizer}, {', '.join(map(str, datasets.values()))}")
        return 0
    # On a CPU shared with other users, CPU seconds of this process measure the work; wall time
    # also counts other users' load. (Use --threads 1 there: idle OpenMP threads spin and burn CPU.)
    clock = 0 if torch.cuda.is_available() else 1
    ablation = not torch.cuda.is_available() and not args.no_ablation  # what they switch off acts on a CPU only
    clock_name = "wall" if clock == 0 else "CPU-time"
    peaks = measure_peaks(clock)
    from ja_pretrain.dataset import open_samples

    vocab = open_samples(next(iter(datasets.values()))).vocab_size
    rows, skipped = [], []
    for preset, length, batch in args.configs:
        if args.only and preset != args.only:
            continue
        for precision in PRECISIONS:
            if args.precision and precision != args.precision:
                continue
            if time.perf_counter() - started > args.budget:
                skipped.append(f"{preset} {precision}")
                continue
            tokens = batch * length
            common = {"preset": preset, "batch": batch, "dataset": datasets[length], "precision": precision}
            arms = build_arms((baseline_arm, {"tokenizer_dir": tokenizer, "steps": args.warmup + args.steps}),
                              (ours_arm, {"tokenizer": tokenizer, "peak": peaks[precision]}), ablation, args.ablations,
                              **common)
            rows.append({"preset": preset, "sequence_length": length, "batch": batch, "precision": precision,
                         "form": args.form, "clock": clock_name,
                         **measure_configuration(arms, args, f"{preset} {precision}", clock, tokens, peaks[precision],
                                                 text_share(datasets[length]), (length - 2) / length)})

    lines = [*main_table_lines(rows, clock_name, "baseline"), *ablation_lines(rows, f"tok/s ({clock_name})", "baseline")]
    lines.append(f"\nEach arm in blocks of {args.warmup} warm-up + {args.steps} timed steps in a fresh process, the arms' "
                 f"blocks alternating over {args.repeats} repeats; tok/s from the median step, ratio = median over "
                 f"repeats of the blocks' median step-time ratio; "
                 f"setup (data build) {setup_s:.0f} s, total {time.perf_counter() - started:.0f} s."
                 + (f" Skipped for the time budget: {', '.join(skipped)}." if skipped else ""))
    write_report("train_bench", lines, {
        "data": source, "vocab_size": vocab, "load_average_start": load_start, "matmul_peak_flops": peaks,
        "clock": clock_name, "steps": args.steps, "warmup": args.warmup, "setup_seconds": setup_s, "rows": rows,
        "skipped": skipped,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`ja-pretrain run-pretraining`: pretrain BERT, ELECTRA or ModernBERT from a corpus or a built dataset."""

from __future__ import annotations

import argparse
import json
import logging
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ja_pretrain.config.forms import DEFAULT_FORM, FORM_HELP, FORM_OPTIONS, stored_form
from ja_pretrain.errors import UserError
from ja_pretrain.utils.devices import DEVICES, PRECISION_CHOICES
from ja_pretrain.utils.options import add_option

NAME = "run-pretraining"
# After Ctrl-C or SIGTERM: the same command refuses an existing checkpoint without --do_continue.
INTERRUPTED = "resume with the same command and --do_continue (from the last checkpoint)."
HELP = ("pretrain BERT (masked LM, optional NSP), ELECTRA or ModernBERT on a corpus or dataset; single process or "
        "torchrun")
DESCRIPTION = """\
Pretrain a model of a parameter.json preset (--model_type) on --input_file, which is a corpus
directory (built into a cached dataset first) or a dataset directory from `build-dataset`.
Writes MODEL_DIR/checkpoint-STEP/ every save-steps, MODEL_DIR/train_log.jsonl and TensorBoard
events in MODEL_DIR/runs/, and at the end MODEL_DIR/final/ (loads with AutoModelForMaskedLM /
AutoModelForPreTraining and AutoTokenizer).

The preset picks the model family: bert-*, electra-* and modernbert-* (transformers'
ModernBertForMaskedLM: RoPE, GLU, a global layer every 3rd and sliding-window attention in the
others, 30% masking). A ModernBERT context extension is a second run at a longer preset started
from the first one's weights: --model_type modernbert-small-long --init_from STAGE1/final.

--fp16_type (the first seed's Apex levels): 0 = fp32; 1 = fp16 mixed precision (autocast +
GradScaler, fp32 master weights). 2 ("almost fp16", Apex O2) and 3 (pure fp16, Apex O3) run as
1, since our mixed precision already keeps fp32 master weights and pure fp16 is unstable; a
warning says so. --precision bf16 is usually the better choice on recent GPUs and CPUs.

batch-size in the preset is per node and per micro-step (a dict gives each --node_rank its
own); it is split evenly over the node's processes. A step uses batch x accumulation-steps
sequences per node. The loss of a step is weighted over all ranks' masked tokens, so a step
equals a single process on the union of the samples.

examples:
  ja-pretrain run-pretraining --input_file run/corpus --tokenizer_dir run/tokenizer \\
      --model_dir run/model --model_type bert-small --precision bf16 --do_whole_word_mask
  ja-pretrain run-pretraining --input_file run/dataset --tokenizer_dir run/tokenizer \\
      --model_dir run/model --model_type bert-small --do_continue
  ja-pretrain run-pretraining --input_file run/corpus --tokenizer_dir run/tokenizer \
      --model_dir run/modernbert --model_type modernbert-small --precision bf16
  torchrun --nnodes 2 --node_rank 0 --nproc_per_node 4 --master_addr 10.0.0.1 --master_port 29500 \\
      -m ja_pretrain run-pretraining --input_file run/dataset --tokenizer_dir run/tokenizer \\
      --model_dir run/model --model_type bert-base-dist --fp16_type 1
"""

FP16_TYPES = {0: "fp32", 1: "fp16", 2: "fp16", 3: "fp16"}
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    io = p.add_argument_group("input and output")
    add_option(io, "--input_file", "--input-file", required=True,
                    help="corpus directory (or text file) to build a dataset from, or a built dataset directory")
    add_option(io, "--tokenizer_dir", "--tokenizer-dir", required=True, help="tokenizer from `train-tokenizer`")
    add_option(io, "--model_dir", "--model-dir", required=True, help="output: checkpoints, logs, final/")
    add_option(io, "--parameter_file", "--parameter-file", help="parameter.json with presets (default: built-in)")
    add_option(io, "--model_type", "--model-type", default="bert-small", help="preset name (default bert-small)")
    add_option(io, "--cache_dir", "--cache-dir", help="where a corpus is built into a dataset (default MODEL_DIR/dataset_cache)")
    add_option(io, "--disable_overwrite_cache", "--disable-overwrite-cache", action="store_true",
                    help="seed flag: reuse a cached dataset built from the same corpus, tokenizer, length and "
                         "form (the default here, as the cache key covers all of them)")
    add_option(io, "--overwrite_cache", "--overwrite-cache", action="store_true",
                    help="rebuild the cached dataset even if its key matches")
    add_option(io, "--workers", type=int, default=1, help="processes for building the dataset")
    add_option(io, "--form", choices=tuple(FORM_OPTIONS), default=None,
               help="the rows a corpus is built into (a built dataset has its own). " + FORM_HELP)
    add_option(io, "--tokenizer_type", "--tokenizer-type", choices=("wordpiece", "sentencepiece"),
                    help="seed flag: checked against the tokenizer directory")
    add_option(io, "--mecab_dic_type", "--mecab-dic-type", choices=("ipadic", "unidic_lite", "unidic"),
                    help="seed flag: checked against the tokenizer directory")

    obj = p.add_argument_group("objective")
    add_option(obj, "--do_whole_word_mask", "--do-whole-word-mask", action="store_true",
                     help="mask whole MeCab words instead of single subword tokens (refused for a tokenizer "
                          "without a word segmenter)")
    add_option(obj, "--generator_weight", "--generator-weight", type=float, default=1.0,
                     help="ELECTRA: weight of the generator's masked-LM loss (default 1)")
    add_option(obj, "--discriminator_weight", "--discriminator-weight", "--rtd_weight", type=float, default=50.0,
                     help="ELECTRA: weight of the discriminator's replaced-token loss (default 50, as the paper)")
    add_option(obj, "--nsp", action="store_true",
                     help="add next-sentence prediction (BertForPreTraining; builds a 'pairs' dataset); "
                          "implied by a pairs dataset")

    run = p.add_argument_group("run")
    add_option(run, "--precision", choices=PRECISION_CHOICES,
                     help="default fp32 (or from --fp16_type); auto: bf16 on a GPU that has it, fp16 on an older one, "
                          "fp32 on a CPU")
    add_option(run, "--fp16_type", "--fp16-type", type=int, choices=(0, 1, 2, 3),
                     help="seed flag: 0 fp32, 1 fp16 mixed precision, 2 and 3 run as 1")
    add_option(run, "--do_continue", "--do-continue", action="store_true",
                     help="resume from the latest MODEL_DIR/checkpoint-* exactly")
    add_option(run, "--init_from", "--init-from",
                     help="start from this model's weights (final/ or checkpoint) with a fresh optimizer")
    add_option(run, "--seed", type=int, default=42)
    add_option(run, "--device", default="auto", choices=DEVICES,
                     help="default auto: this rank's GPU when there is one, else the CPU")
    add_option(run, "--node_rank", "--node-rank", type=int, help="seed flag: this node's rank (torchrun's GROUP_RANK wins)")
    add_option(run, "--local_rank", "--local-rank", type=int, help="seed flag: accepted; torchrun's LOCAL_RANK wins")
    add_option(run, "--save_total_limit", "--save-total-limit", type=int, help="keep only the last N checkpoints")
    add_option(run, "--eval_steps", "--eval-steps", type=int, help="held-out evaluation every N steps (default save-steps)")
    add_option(run, "--eval_samples", "--eval-samples", type=int, default=1024, help="valid samples per evaluation")
    add_option(run, "--stop_after_steps", "--stop-after-steps", type=int,
                     help="checkpoint and stop after this step (continue later with --do_continue)")
    add_option(run, "--max_nonfinite_steps", "--max-nonfinite-steps", type=int, default=10,
                     help="stop with an error after this many non-finite steps in a row")
    add_option(run, "--peak_tflops", "--peak-tflops", type=float,
                     help="per-device peak for MFU (default: measured matmul throughput)")
    add_option(run, "--no_progress", "--no-progress", action="store_true", help="no progress bar")
    add_option(run, "--torch_dropout", "--torch-dropout", action="store_true",
                     help="on a CPU, keep PyTorch's dropout and SDPA attention instead of our cheaper ones "
                          "(same maths; ours rounds the dropout rate to a multiple of 1/65536)")
    add_option(run, "--compile", action="store_true", default=None,
               help="torch.compile the model (default: on for ModernBERT on a CPU in runs of 500 steps or more, "
                    "where it measured faster; the first step then takes a minute or two longer)")
    add_option(run, "--no_compile", "--no-compile", dest="compile", action="store_false", help="never compile")
    add_option(run, "--system_malloc", "--system-malloc", action="store_true",
                     help="on a CPU, leave glibc's malloc settings alone (by default freed memory is kept for "
                          "reuse, which saves a page fault per 4 KiB per step but holds the peak step memory)")

    over = p.add_argument_group("preset overrides")
    add_option(over, "--train_steps", "--train-steps", "--max_steps", type=int)
    add_option(over, "--batch_size", "--batch-size", help='per-node batch: N or a JSON dict {"0": 80, "1": 48}')
    add_option(over, "--learning_rate", "--learning-rate", type=float)
    add_option(over, "--warmup_steps", "--warmup-steps", type=int)
    add_option(over, "--save_steps", "--save-steps", type=int)
    add_option(over, "--logging_steps", "--logging-steps", type=int)
    add_option(over, "--accumulation_steps", "--accumulation-steps", type=int)
    add_option(over, "--mask_percent", "--mask-percent", type=float,
               help="percent of the real tokens chosen for the masked-LM loss (the preset's mask-percent; "
                    "default 15 for BERT and ELECTRA, 30 for ModernBERT)")


def precision_option(precision: str | None, fp16_type: int | None) -> str:
    """--precision, or the first seed's --fp16_type in its place."""
    if fp16_type is None:
        return precision or "fp32"
    mapped = FP16_TYPES[fp16_type]
    if fp16_type in (2, 3):
        log.warning("--fp16_type %d (Apex O%d) runs as fp16 mixed precision with fp32 master weights (as 1)",
                    fp16_type, fp16_type)
    if precision is not None and precision != mapped:
        raise UserError(f"--precision {precision} contradicts --fp16_type {fp16_type} ({mapped}); give one of them")
    return mapped


def apply_overrides(params: Any, **overrides: Any) -> Any:
    """The preset with command-line overrides, validated like the parameter file."""
    from ja_pretrain.config.parameters import parse_preset

    raw = params.to_json_dict()
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "batch-size" and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as err:
                raise UserError(f'--batch_size {value!r}: give an integer or a JSON dict such as {{"0": 80, "1": 48}}') from err
        raw[key] = value
    return parse_preset(params.model_type, raw)


def check_tokenizer_flags(tokenizer_dir: Path, tokenizer_type: str | None, mecab_dic_type: str | None,
                          whole_word_mask: bool = False) -> None:
    from ja_pretrain.tokenization.files import require_word_segmenter, subword_type

    config_file = tokenizer_dir / "tokenizer_config.json"
    if not config_file.is_file():
        raise UserError(f"--tokenizer_dir {tokenizer_dir}: no tokenizer_config.json; run `ja-pretrain train-tokenizer`")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if whole_word_mask:
        require_word_segmenter(tokenizer_dir, "--do_whole_word_mask")
    subword = subword_type(config)
    if tokenizer_type and tokenizer_type != subword:
        raise UserError(f"--tokenizer_type {tokenizer_type}: {config_file} is a {subword} tokenizer")
    dic = (config.get("mecab_kwargs") or {}).get("mecab_dic")
    if mecab_dic_type and dic and mecab_dic_type != dic:
        raise UserError(f"--mecab_dic_type {mecab_dic_type}: {config_file} uses {dic}")


def dataset_form(input_file: str | os.PathLike, nsp: bool, form: str | None = None) -> str:
    """The form a run trains on: a built dataset's own ('pairs' implies NSP), else `form`,
    'pairs' for --nsp, or the default."""
    from ja_pretrain.utils.manifest import read_manifest

    path = Path(input_file)
    form = stored_form(form) if form is not None else None
    manifest = read_manifest(path) if path.is_dir() else None
    if manifest is not None and manifest.get("stage") == "dataset":
        built = manifest.get("options", {}).get("form", "packed")
        if form is not None and form != built:
            raise UserError(f"--form {form}: --input_file {path} is a dataset of form {built!r}; build one with "
                            f"`build-dataset --form {form}`, or pass the corpus directory")
        return built
    if nsp and form not in (None, "pairs"):
        raise UserError(f"--form {form}: next-sentence prediction (--nsp) trains on pairs; drop one of the two")
    return "pairs" if nsp else form or DEFAULT_FORM


def run(args: argparse.Namespace) -> int:
    """Flags -> preset and objective options (checked once) -> dataset -> TrainConfig -> train()
    -> final/ on rank 0 when this run finished the preset's steps."""
    from ja_pretrain.config.parameters import load_parameters
    from ja_pretrain.dataset import prepare_dataset
    from ja_pretrain.export import export_final
    from ja_pretrain.training.checkpoint import check_resumable, latest_checkpoint
    from ja_pretrain.training.distributed import barrier, setup_distributed, teardown_distributed
    from ja_pretrain.training.objectives import ObjectiveOptions, check_compatible
    from ja_pretrain.training.trainer import TrainConfig, train
    from ja_pretrain.utils.locks import exclusive

    tokenizer_dir, model_dir = Path(args.tokenizer_dir), Path(args.model_dir)
    check_tokenizer_flags(tokenizer_dir, args.tokenizer_type, args.mecab_dic_type, args.do_whole_word_mask)
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        raise UserError("--peak_tflops must be positive")
    if args.init_from is not None and not Path(args.init_from).is_dir():
        raise UserError(f"--init_from {args.init_from}: no such model directory")
    params = apply_overrides(
        load_parameters(args.model_type, args.parameter_file),
        **{"train-steps": args.train_steps, "batch-size": args.batch_size, "learning-rate": args.learning_rate,
           "warmup-steps": args.warmup_steps, "save-steps": args.save_steps, "logging-steps": args.logging_steps,
           "accumulation-steps": args.accumulation_steps, "mask-percent": args.mask_percent})
    if args.do_continue and (latest := latest_checkpoint(model_dir)) is not None:
        check_resumable(latest, params.to_json_dict())  # before a dataset is built for the wrong preset
    form = dataset_form(args.input_file, args.nsp, args.form)
    options = check_compatible(params, ObjectiveOptions(
        whole_word_mask=args.do_whole_word_mask, next_sentence_prediction=args.nsp,
        generator_weight=args.generator_weight, discriminator_weight=args.discriminator_weight),
        form, where=str(args.input_file))
    ctx = setup_distributed(args.device, node_rank=args.node_rank, local_rank=args.local_rank)
    final_dir = None
    lock = ExitStack()
    try:
        if ctx.rank == 0:  # one writer of MODEL_DIR: rank 0 writes it for all ranks
            lock.enter_context(exclusive(model_dir, f"--model_dir {model_dir}"))
        dataset_dir = prepare_dataset(
            args.input_file, tokenizer_dir, sequence_length=params.sequence_length, form=form,
            cache_dir=Path(args.cache_dir) if args.cache_dir else model_dir / "dataset_cache",
            overwrite_cache=args.overwrite_cache and not args.disable_overwrite_cache, workers=args.workers,
            progress=not args.no_progress)
        cfg = TrainConfig(
            dataset_dir=Path(dataset_dir), tokenizer_dir=tokenizer_dir, model_dir=model_dir, params=params,
            options=options, precision=precision_option(args.precision, args.fp16_type), seed=args.seed,
            do_continue=args.do_continue, init_from=Path(args.init_from) if args.init_from else None,
            save_total_limit=args.save_total_limit, eval_steps=args.eval_steps, eval_samples=args.eval_samples,
            stop_after_steps=args.stop_after_steps, max_nonfinite_steps=args.max_nonfinite_steps,
            peak_flops=args.peak_tflops * 1e12 if args.peak_tflops else None, progress=not args.no_progress,
            cpu_ops=not args.torch_dropout, keep_host_memory=not args.system_malloc, compile=args.compile)
        result = train(cfg, ctx)
        # A --do_continue of a finished run trains nothing, and final/ already holds its export.
        if result.finished and result.steps_run:
            if ctx.is_main:
                final_dir = export_final(
                    result.objective, model_dir / "final", tokenizer_dir=tokenizer_dir, params=params,
                    options=result.options, dataset_dir=cfg.dataset_dir, train_state=result.state,
                    last_train=result.last_train, last_valid=result.last_valid,
                    facts={"input_file": str(args.input_file), "init_from": args.init_from})
            barrier(ctx)
    finally:
        lock.close()
        teardown_distributed()
    if ctx.is_main:
        print(summary_line(result, final_dir, model_dir))
    return 0


def summary_line(result, final_dir: Path | None, model_dir: Path) -> str:
    if result.finished and not result.steps_run:
        return (f"run-pretraining: {model_dir} is already complete (its last step, {result.step}, was trained "
                "before); nothing trained, final/ left as it was")
    valid = result.last_valid
    figures = "".join(f", {key.replace('_', ' ')} {value:.4f}" for key, value in valid.items()
                      if key.endswith("accuracy") and isinstance(value, float))
    figures = f"; held-out loss {valid['loss']:.4f}{figures}" if valid else ""
    train = result.last_train
    if isinstance(train.get("mfu"), float):
        figures += f"; MFU {train['mfu']:.1%} of {train['mfu_peak_tflops']:.4g} TFLOP/s ({train['mfu_peak']})"
    where = f"model in {final_dir}" if final_dir else f"checkpoint in {model_dir}"
    return f"run-pretraining: step {result.step}, {result.tokens_seen} tokens{figures}; {where}"

"""The pretraining loop: `train(TrainConfig)` trains an objective on a built dataset.

One optimizer step, on every rank:
  1. read this rank's rows of each global micro-batch (a run of the job's sample order) and
     mask them with noise drawn for the whole global micro-batch (rank-independent masks);
  2. all-reduce the per-term item counts of the step (masked tokens, pairs...) over ranks;
  3. forward/backward each micro-batch with loss = sum_t w_t * sum_t / global_count_t * world,
     syncing gradients (DDP's mean) only on the last micro-batch;
  4. clip to 1.0, AdamW (skipping the update on the device if anything is not finite), schedule.
So a step equals one single-process step over the union of all ranks' samples, whatever the
per-node batch sizes. The host waits for the device only at log, eval and checkpoint steps.

Launch (see `ja-pretrain run-pretraining --help`):
    ja-pretrain run-pretraining --input_file corpus/ --tokenizer_dir tok/ --model_dir out/ --model_type bert-small
    torchrun --nproc_per_node 2 -m ja_pretrain run-pretraining ...            # one node, 2 GPUs
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --master_addr HOST --master_port 29500 \
        -m ja_pretrain run-pretraining ...                                     # node 0 of 2
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.dataset import open_samples
from ja_pretrain.errors import UserError
from ja_pretrain.models.cpu_ops import use_cpu_ops
from ja_pretrain.models.modernbert import use_flash_attention
from ja_pretrain.training import checkpoint as ckpt
from ja_pretrain.training.compilation import should_compile
from ja_pretrain.training.distributed import DistContext, all_reduce_sum, batch_layout, check_same_step, setup_distributed
from ja_pretrain.training.host_memory import keep_freed_memory
from ja_pretrain.training.interrupts import StopAtStepBoundary
from ja_pretrain.training.masking import draw_mask_noise
from ja_pretrain.training.objectives import Objective, ObjectiveOptions, build_objective, check_compatible
from ja_pretrain.training.optim import build_optimizer, build_scheduler
from ja_pretrain.training.peak import Peak, resolve_peak
from ja_pretrain.training.sampler import SampleOrder
from ja_pretrain.training.step_metrics import MetricWindow, TrainLogger, summarize
from ja_pretrain.utils.devices import autocast, dtype_of, resolve_precision

log = logging.getLogger(__name__)

TRAIN_NOISE, EVAL_NOISE = 0, 1
MAX_GRAD_NORM = 1.0


@dataclass
class TrainConfig:
    dataset_dir: Path
    tokenizer_dir: Path
    model_dir: Path
    params: ModelParameters
    options: ObjectiveOptions = field(default_factory=ObjectiveOptions)
    precision: str = "fp32"  # or bf16, fp16, auto (utils.devices)
    seed: int = 42
    do_continue: bool = False
    init_from: Path | None = None
    save_total_limit: int | None = None
    eval_steps: int | None = None  # default: save-steps
    eval_samples: int = 1024
    max_nonfinite_steps: int = 10
    stop_after_steps: int | None = None  # checkpoint and stop early (e.g. to split a run into jobs)
    peak_flops: float | None = None  # per device; measured when None
    progress: bool = True
    cpu_ops: bool = True  # on a CPU, models/cpu_ops.py's cheaper dropout and attention
    keep_host_memory: bool = True  # on a CPU, malloc reuses freed memory (training/host_memory.py)
    compile: bool | None = None  # torch.compile the objective (None: where it measured faster, training.compilation)
    # Read, mask and pin the next step's batches in a thread while this step runs, so that a
    # GPU does not wait on the host between steps (None: on a GPU). Batches are fixed by the
    # sample position alone, so prefetching changes no figure.
    prefetch: bool | None = None


@dataclass
class TrainResult:
    """Where training stopped. The caller exports: `finished` says the preset's last step is
    done, `steps_run` how many steps this call took (0 for a --do_continue of a finished run)."""

    step: int
    tokens_seen: int
    last_train: dict[str, Any]
    last_valid: dict[str, Any]
    steps_run: int
    finished: bool
    state: dict[str, Any]  # the checkpoint state at the end (step, tokens_seen, precision...)
    options: ObjectiveOptions  # as trained (a 'pairs' dataset turns NSP on)
    objective: Any = field(default=None, repr=False)  # the trained objective, unwrapped


def noise_generator(seed: int, purpose: int, position: int) -> torch.Generator:
    """A generator fixed by (seed, purpose, job position), the same on every rank."""
    state = np.random.SeedSequence([seed, purpose, position]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def embedding_rows(tokenizer_dir: Path, vocab_size: int) -> int:
    """Rows the embedding needs. BERT tokenizers use vocab.txt line numbers as ids, so a file with
    a repeated line has ids up to its line count, beyond its number of distinct tokens."""
    vocab = Path(tokenizer_dir) / "vocab.txt"
    if vocab.is_file():
        with open(vocab, "rb") as f:
            return max(vocab_size, sum(1 for _ in f))
    return vocab_size


def to_device(inputs: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors to `device`; to a GPU through pinned memory, so the copy does not wait for the GPU."""
    if device.type != "cuda":
        return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    return {k: (pinned(v).to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
            for k, v in inputs.items()}


def pinned(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor.is_pinned() else tensor.pin_memory()


class Trainer:
    def __init__(self, cfg: TrainConfig, ctx: DistContext):
        self.cfg, self.ctx = cfg, ctx
        params = cfg.params
        self.precision = resolve_precision(cfg.precision, ctx.device)  # ("auto" picks one for the device)
        self.train_set = open_samples(cfg.dataset_dir, "train")
        try:
            self.valid_set = open_samples(cfg.dataset_dir, "valid")
        except UserError:
            self.valid_set = None
        self.options = options = check_compatible(params, cfg.options, self.train_set.form,
                                                  sequence_length=self.train_set.sequence_length,
                                                  where=str(cfg.dataset_dir))
        self.layout = batch_layout(params, ctx)
        self.accumulation = params.accumulation_steps

        # The same initial weights on every rank; dropout then differs per rank.
        torch.manual_seed(cfg.seed)
        vocab_size = embedding_rows(cfg.tokenizer_dir, self.train_set.vocab_size)
        self.objective: Objective = build_objective(params, self.train_set.special_ids, vocab_size, options)
        if cfg.init_from is not None:
            self.objective.load_model(cfg.init_from)
            log.info("initialised the weights from %s", cfg.init_from)
        self.objective.to(ctx.device)
        if ctx.device.type == "cuda" and cfg.precision != "fp32":
            use_flash_attention(self.objective)  # ModernBERT, where flash-attn is installed
        if ctx.device.type == "cpu":  # GPUs keep PyTorch's kernels and the host's defaults
            if cfg.cpu_ops:
                use_cpu_ops(self.objective)
            if cfg.keep_host_memory:
                keep_freed_memory()  # for this whole process: a CPU training run's steps dominate it
        torch.manual_seed(cfg.seed + 1_000_003 * ctx.rank)

        self.optimizer = build_optimizer(self.objective, params.learning_rate)
        self.scheduler = build_scheduler(self.optimizer, params.warmup_steps, params.train_steps)
        self.dtype = dtype_of(self.precision)
        self.scaler = torch.amp.GradScaler(ctx.device.type) if self.precision == "fp16" else None
        self.order = SampleOrder(len(self.train_set), cfg.seed)
        self.step = 0
        self.samples_seen = 0
        self.tokens_seen = 0  # over all ranks, as of the last resume
        self.local_tokens = 0.0  # this rank's real (non-padding) tokens since then
        self.nonfinite_total = 0
        self._saved_window: dict | None = None  # metrics since the last log, from a resumed checkpoint
        self.consecutive_nonfinite = torch.zeros((), dtype=torch.long, device=ctx.device)
        self.skipped = torch.zeros((), dtype=torch.long, device=ctx.device)

        # Only rank 0 logs MFU, so only it measures; the others would only slow the start.
        if ctx.is_main:
            self.peak = resolve_peak(ctx.device, self.dtype, cfg.peak_flops)
            log.info("MFU is measured against %.4g TFLOP/s per device (%s)", self.peak.tflops, self.peak.source)
        else:
            self.peak = Peak(cfg.peak_flops or float("nan"), "rank 0's")
        self._resume_or_check_fresh()
        check_same_step(self.step, ctx)
        steps_left = (cfg.stop_after_steps or params.train_steps) - self.step
        if should_compile(cfg.compile, params.family, ctx.device, steps_left):
            # in place: the state dict and checkpoints keep their names; dynamic: the number of
            # masked positions differs every step
            self.objective.compile(dynamic=True)
        if ctx.distributed:

            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.objective, device_ids=ids)
        else:
            self.model = self.objective
        self.logger = TrainLogger(cfg.model_dir, resume_step=self.step, enabled=ctx.is_main)
        prefetch = cfg.prefetch if cfg.prefetch is not None else ctx.device.type == "cuda"
        self._prefetcher = ThreadPoolExecutor(1, thread_name_prefix="ja-pretrain-prefetch") if prefetch else None
        self._pending: tuple[int, Future] | None = None  # (samples_seen it is for, its batches)

    # -- state -------------------------------------------------------------------------------------
    def global_tokens(self) -> int:
        """Tokens seen by all ranks (a collective: call it on every rank)."""
        local = torch.tensor(self.local_tokens, dtype=torch.float64, device=self.ctx.device)
        return self.tokens_seen + int(all_reduce_sum(local, self.ctx).item())

    def state(self, tokens_seen: int, window: MetricWindow | None = None) -> dict[str, Any]:
        """The checkpoint's trainer_state.json (a collective with `window`: call it on every rank).
        With `window` (the metrics since the last log), every rank's sums are saved too, so the
        first log after a resume averages the same steps as a run that was never stopped."""
        saved_window = {}
        if window is not None:
            windows = [window.to_json()]
            if self.ctx.distributed:
                windows = [None] * self.ctx.world_size
                dist.all_gather_object(windows, window.to_json(), group=self.ctx.control_group)
            if any(w["device"] or w["host"] for w in windows):
                saved_window = {"metric_windows": windows}
        return {
            "step": self.step,
            "samples_seen": self.samples_seen,
            "tokens_seen": tokens_seen,
            # skips since the last log are still on the device; a checkpoint between logs counts them too
            "nonfinite_steps": self.nonfinite_total + int(self.skipped),
            "seed": self.cfg.seed,
            "global_batch": self.layout.global_rows,
            "accumulation_steps": self.accumulation,
            "world_size": self.ctx.world_size,
            "precision": self.precision,
            "form": self.train_set.form,
            "model_type": self.cfg.params.model_type,
            "parameters": self.cfg.params.to_json_dict(),
            "tokenizer_dir": str(Path(self.cfg.tokenizer_dir).resolve()),
            **saved_window,
        }

    def _resume_or_check_fresh(self) -> None:
        cfg = self.cfg
        latest = ckpt.latest_checkpoint(cfg.model_dir)
        if not cfg.do_continue:
            if latest is not None:
                raise UserError(f"--model_dir {cfg.model_dir} already has {latest.name}; pass --do_continue to resume "
                                "it or choose an empty --model_dir")
            return
        if latest is None:
            log.info("--do_continue: no checkpoint in %s yet; starting at step 0", cfg.model_dir)
            return
        ckpt.check_resumable(latest, cfg.params.to_json_dict())
        state = ckpt.load_checkpoint(latest, self.ctx, objective=self.objective, optimizer=self.optimizer,
                                     scheduler=self.scheduler, scaler=self.scaler)
        for key, ours in (("seed", cfg.seed), ("global_batch", self.layout.global_rows),
                          ("accumulation_steps", self.accumulation)):
            if state.get(key) != ours:
                log.warning("%s: %s was %s, now %s; the data order will differ from the interrupted run",
                            latest, key, state.get(key), ours)
        self.step = int(state["step"])
        self.samples_seen = int(state["samples_seen"])
        self.tokens_seen = int(state["tokens_seen"])
        self.nonfinite_total = int(state.get("nonfinite_steps", 0))
        windows = state.get("metric_windows") or ([state["metric_window"]] if "metric_window" in state else [])
        if len(windows) == self.ctx.world_size:  # (under another world size the first log starts afresh)
            self._saved_window = windows[self.ctx.rank]
        log.info("resumed %s: step %d, %d samples seen", latest, self.step, self.samples_seen)

    # -- one step --------------------------------------------------------------------------------------
    def _micro_batches(self, samples_seen: int | None = None) -> tuple[list[dict], float, float]:
        """The micro-batches of the step that starts at `samples_seen` (default: the next one),
        prepared on the host: (objective inputs, text tokens, model FLOPs)."""
        layout, objective = self.layout, self.objective
        length = self.train_set.sequence_length
        first = self.samples_seen if samples_seen is None else samples_seen
        inputs, tokens, flops = [], 0.0, 0.0
        for micro in range(self.accumulation):
            start = first + micro * layout.global_rows
            indices = self.order.indices(start + layout.offset, layout.per_rank)
            batch = self.train_set.batch(indices)
            noise = draw_mask_noise(layout.global_rows, length, noise_generator(self.cfg.seed, TRAIN_NOISE, start))
            x = objective.prepare(batch, noise[layout.offset:layout.offset + layout.per_rank])
            text = float((~batch["special_tokens_mask"]).sum())  # not [CLS], [SEP] or padding
            tokens += text
            # MFU counts the work done on text: the model's FLOPs over this micro-batch's positions,
            # times the share of them that are text (padding is computed, but is not work done).
            flops += objective.flops(x) * text / batch["special_tokens_mask"].size
            inputs.append(x)
        return inputs, tokens, flops

    def _pinned_micro_batches(self, samples_seen: int) -> tuple[list[dict], float, float]:
        inputs, tokens, flops = self._micro_batches(samples_seen)
        if self.ctx.device.type == "cuda":  # the page-locking too, off the training thread
            inputs = [{k: pinned(v) if isinstance(v, torch.Tensor) else v for k, v in x.items()} for x in inputs]
        return inputs, tokens, flops

    def _step_inputs(self) -> tuple[list[dict], float, float]:
        """This step's micro-batches: with prefetching, the ones made while the last step ran
        (if they are for this position), and the next step's are started now."""
        if self._prefetcher is None:
            return self._micro_batches()
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == self.samples_seen:
            ready = pending[1].result()
        else:  # the first step, or the position moved (a resume)
            ready = self._micro_batches()
        following = self.samples_seen + self.layout.global_rows * self.accumulation
        self._pending = (following, self._prefetcher.submit(self._pinned_micro_batches, following))
        return ready

    def close(self) -> None:
        """Stop the prefetching thread (the trainer can still be stepped: it prepares inline)."""
        if self._prefetcher is not None:
            self._prefetcher.shutdown(wait=True, cancel_futures=True)
            self._prefetcher, self._pending = None, None

    def _autocast(self):
        return autocast(self.ctx.device, self.precision)

    def train_step(self, window: MetricWindow) -> torch.Tensor:
        """One optimizer step; returns the gradient norm (a device tensor)."""
        finite = self.accumulate_gradients(window)
        return self.apply_update(finite)

    def accumulate_gradients(self, window: MetricWindow) -> torch.Tensor:
        """Forward and backward over this step's micro-batches, leaving the step's gradient
        (synced over ranks) in `.grad`; returns whether every loss was finite (device bool)."""
        ctx, objective = self.ctx, self.objective
        inputs, tokens, flops = self._step_inputs()
        terms = list(objective.loss_weights)
        counts = torch.stack([sum(objective.loss_counts(x)[t] for x in inputs) for t in terms]).to(torch.float32)
        counts, weights = to_device({"c": counts, "w": torch.tensor([objective.loss_weights[t] for t in terms])},
                                    ctx.device).values()
        weights = weights * ctx.world_size / all_reduce_sum(counts, ctx).clamp_min(1.0)
        finite = torch.ones((), dtype=torch.bool, device=ctx.device)
        for micro, x in enumerate(inputs):
            last = micro == len(inputs) - 1
            sync = contextlib.nullcontext() if last or not ctx.distributed else self.model.no_sync()
            with sync:
                with self._autocast():
                    out = self.model(**to_device(x, ctx.device))
                loss = sum(weights[i] * out.sums[t] for i, t in enumerate(terms))
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            finite &= torch.isfinite(loss.detach())
            window.add_output(out)
        window.add_host("tokens", tokens)
        window.add_host("flops", flops)
        window.add_host("samples", self.layout.per_rank * self.accumulation)
        self.local_tokens += tokens
        return finite

    def apply_update(self, finite: torch.Tensor) -> torch.Tensor:
        """Clip, step the optimizer (skipped on the device if not finite) and the schedule."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.objective.parameters(), MAX_GRAD_NORM, foreach=True)
        # Each rank saw only its own losses: every rank must count a step as bad when any rank's
        # loss was, or the counts (and the --max_nonfinite_steps stop) differ between ranks.
        if self.scaler is not None:  # the scaler skips overflowing steps itself
            self.scaler.step(self.optimizer)
            self.scaler.update()
            # Only the loss: gradients overflow while the scaler finds its scale, which is not an error.
            bad = all_reduce_sum((~finite).to(torch.float32), self.ctx) > 0
        else:
            # and agree on skipping, or the replicas drift apart
            bad = all_reduce_sum((~(finite & torch.isfinite(grad_norm))).to(torch.float32), self.ctx) > 0
            self.optimizer.found_inf = bad.to(torch.float32)  # the fused AdamW skips on the device
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.consecutive_nonfinite = (self.consecutive_nonfinite + 1) * bad
        self.skipped += bad
        self.step += 1
        self.samples_seen += self.layout.global_rows * self.accumulation
        return grad_norm

    # -- evaluation --------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """Held-out loss and accuracies on the first `eval_samples` valid samples, fixed masks."""
        total = min(len(self.valid_set), self.cfg.eval_samples) if self.valid_set is not None else 0
        if total < self.ctx.world_size:
            return {}  # (the same decision on every rank: evaluation is collective, each rank needs a row)
        ctx, objective = self.ctx, self.objective
        length = self.valid_set.sequence_length
        noise = draw_mask_noise(total, length, noise_generator(self.cfg.seed, EVAL_NOISE, 0))
        mine = np.array_split(np.arange(total), ctx.world_size)[ctx.rank]
        window = MetricWindow()
        objective.eval()
        try:
            chunk = max(1, self.layout.per_rank)
            for begin in range(0, len(mine), chunk):
                rows = mine[begin:begin + chunk]
                x = objective.prepare(self.valid_set.batch(rows), noise[int(rows[0]):int(rows[-1]) + 1])
                with self._autocast():
                    window.add_output(objective(**to_device(x, ctx.device)))
        finally:
            objective.train()
        record = summarize(window.reduce(ctx, ctx.device), objective.loss_weights)
        return {"split": "valid", "step": self.step, "tokens_seen": self.global_tokens(), **record,
                "samples": total}

    # -- the loop ----------------------------------------------------------------------------------------
    def _log_train(self, window: MetricWindow, grad_norm: torch.Tensor, elapsed: float) -> dict[str, Any]:
        values = window.reduce(self.ctx, self.ctx.device)
        skipped = torch.stack([self.consecutive_nonfinite, self.skipped]).float()
        consecutive, skipped_here = skipped.tolist()
        self.nonfinite_total += int(skipped_here)
        self.skipped.zero_()
        record = summarize(values, self.objective.loss_weights)
        tokens = values.get("tokens", 0.0)
        per_s = tokens / elapsed if elapsed > 0 else float("nan")
        mfu = values.get("flops", 0.0) / elapsed / (self.peak.flops * self.ctx.world_size) if elapsed > 0 else float("nan")
        out = {"split": "train", "step": self.step, "tokens_seen": self.global_tokens(), **record,
               "lr": self.scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
               "tokens_per_s": per_s, "mfu": mfu, "mfu_peak_tflops": self.peak.tflops, "mfu_peak": self.peak.source,
               "nonfinite_steps": self.nonfinite_total}
        if consecutive >= self.cfg.max_nonfinite_steps:
            raise UserError(
                f"the loss or gradients were not finite for {int(consecutive)} steps in a row (up to step {self.step}); "
                "lower the learning rate, use --precision bf16 or fp32, or resume from an earlier checkpoint"
            )
        return out

    def run(self) -> TrainResult:
        cfg, params = self.cfg, self.params
        end = params.train_steps if cfg.stop_after_steps is None else min(params.train_steps, cfg.stop_after_steps)
        eval_every = cfg.eval_steps or params.save_steps
        last_train: dict[str, Any] = {}
        last_valid: dict[str, Any] = {}
        bar = tqdm(total=params.train_steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not (self.ctx.is_main and cfg.progress), desc="pretraining")
        window = MetricWindow()
        if self._saved_window:  # the metrics of the steps since the last log, from the checkpoint
            window.load_json(self._saved_window, self.ctx.device)
        first_step = self.step
        window_start = time.perf_counter()
        paused = 0.0  # evaluation and checkpoint seconds inside the window: not training time
        grad_norm = torch.zeros(())
        with StopAtStepBoundary() as stop:
            try:
                while self.step < end:
                    grad_norm = self.train_step(window)
                    bar.update(1)
                    stopping = stop.agreed(self.ctx)  # the same answer on every rank
                    finished = self.step == params.train_steps  # (not a --stop_after_steps stop: logs stay on schedule)
                    logging_step = self.step % params.logging_steps == 0 or finished
                    if logging_step:
                        last_train = self._log_train(window, grad_norm, time.perf_counter() - window_start - paused)
                        self.logger.log(last_train)
                        bar.set_postfix(loss=f"{last_train['loss']:.3f}", tok_s=f"{last_train['tokens_per_s']:.0f}")
                    pause_start = time.perf_counter()
                    if self.step % eval_every == 0 or finished:
                        last_valid = self.evaluate() or last_valid
                        if last_valid:
                            self.logger.log(last_valid)
                    if self.step % params.save_steps == 0 or self.step == end or stopping:
                        self._checkpoint(window)
                    paused += time.perf_counter() - pause_start
                    if logging_step:
                        window_start, paused = time.perf_counter(), 0.0
                    stop.raise_for(stopping)  # after the step's checkpoint: --do_continue resumes from here
            finally:
                bar.close()
                self.logger.close()
                self.close()
        tokens = self.global_tokens()
        return TrainResult(self.step, int(last_train.get("tokens_seen", 0)), last_train, last_valid,
                           steps_run=self.step - first_step, finished=self.step >= params.train_steps,
                           state=self.state(tokens), options=self.options, objective=self.objective)

    def _checkpoint(self, window: MetricWindow | None = None) -> None:
        ckpt.save_checkpoint(self.cfg.model_dir, self.ctx, objective=self.objective, optimizer=self.optimizer,
                             scheduler=self.scheduler, scaler=self.scaler, state=self.state(self.global_tokens(), window),
                             keep=self.cfg.save_total_limit)

    @property
    def params(self) -> ModelParameters:
        return self.cfg.params


def train(cfg: TrainConfig, ctx: DistContext | None = None) -> TrainResult:
    """Train per `cfg` (the dataset already built); returns the last step's figures."""
    ctx = ctx or setup_distributed()
    return Trainer(cfg, ctx).run()

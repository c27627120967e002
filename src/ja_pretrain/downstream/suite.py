"""Fine-tune a model on one or several tasks under the published protocol and write the scores.

For each task: read and check both splits, encode each once, then run every learning rate and
number of epochs of the grid with `seeds` seeds; the grid point with the best mean dev score
(the task's first metric) is the one reported, as the JGLUE baselines report theirs. Written
per task, into OUT (one task) or OUT/TASK (several):

    scores.json        the task, every metric of the chosen grid point (mean and std over seeds),
                       every run, the protocol and how it departs from the published one
                       (`departures`), the model's and the data's hashes
    predictions.jsonl  one line per dev example: id, gold label, prediction (per seed when several)
    split.json         chABSA, livedoor, smoke: which documents went to train and to dev
    model/             with --save_model: the chosen run's fine-tuned model (save_pretrained)
    manifest.json      written last

and OUT/scores.md: the table, beside published reference figures. Each task's directory is
built under a temporary name and renamed when complete; a rerun with the same model, data and
protocol reuses a finished task instead of training it again. Tasks scored under the published
protocol go into the model-index of the model's card, when ja-pretrain wrote the card.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ja_pretrain import __version__
from ja_pretrain.downstream.data import TaskData, load_task_data, path_fingerprint
from ja_pretrain.downstream.encoding import EncodedSplit
from ja_pretrain.downstream.finetune import RunOptions, RunResult, train_and_predict
from ja_pretrain.downstream.kinds import TaskKind, task_kind
from ja_pretrain.downstream.scorecard import SCORES_KIND, combine, departures, pool_runs, rank_value, scorecard_lines
from ja_pretrain.downstream.tasks import DEFAULT_EPOCHS, DEFAULT_LEARNING_RATES, TASKS, TaskSpec, get_task
from ja_pretrain.errors import UserError
from ja_pretrain.export.card import model_index_entry, record_scores
from ja_pretrain.export.model_dirs import WEIGHT_FILES, model_to_finetune
from ja_pretrain.tokenization.encoder import FastEncoder
from ja_pretrain.tokenization.files import copy_tokenizer, tokenizer_fingerprint
from ja_pretrain.utils.atomic import atomic_directory, atomic_write_json, atomic_write_text
from ja_pretrain.utils.devices import resolve_device, resolve_precision
from ja_pretrain.utils.manifest import check_output_dir, fingerprint, read_manifest, write_manifest

log = logging.getLogger(__name__)
STAGE = "finetune"


@dataclass
class Protocol:
    """Everything that decides a task's scores besides the model and the data."""
    learning_rates: tuple[float, ...] = DEFAULT_LEARNING_RATES
    epochs: tuple[int, ...] = DEFAULT_EPOCHS
    seeds: int = 1
    seed: int = 42
    batch_size: int | None = None  # None: the task's published batch size
    max_length: int | None = None  # None: the task's published maximum length
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    valid_ratio: float = 0.2
    split_seed: int = 0
    precision: str = "auto"

    def check(self) -> None:
        if not self.learning_rates or any(lr <= 0 for lr in self.learning_rates):
            raise UserError(f"--learning_rate {list(self.learning_rates)}: give one or more positive rates")
        if not self.epochs or any(e < 1 for e in self.epochs):
            raise UserError(f"--epochs {list(self.epochs)}: give one or more counts of 1 or more")
        if self.seeds < 1:
            raise UserError(f"--seeds {self.seeds}: must be 1 or more")
        for name in ("batch_size", "max_length", "max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name} {value}: must be 1 or more")
        if self.max_length is not None and self.max_length < 8:
            raise UserError(f"--max_length {self.max_length}: too short to hold a pair of texts (8 or more)")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise UserError(f"--warmup_ratio {self.warmup_ratio}: must be in [0, 1)")

    def for_task(self, spec: TaskSpec) -> dict[str, Any]:
        record = asdict(self)
        record["batch_size"] = self.batch_size or spec.batch_size
        record["max_length"] = self.max_length or spec.max_length
        record["selection"] = (f"the grid point with the best mean dev {spec.primary_metric} over seeds "
                               "(as the JGLUE baselines report)")
        record["optimizer"] = "AdamW (0.9, 0.999), eps 1e-8; linear warmup then linear decay to 0"
        return record


@dataclass
class SuiteOptions:
    tasks: list[str]
    out: Path
    data: list[str] | None = None
    train: str | None = None
    valid: str | None = None
    tokenizer: str | None = None
    protocol: Protocol = field(default_factory=Protocol)
    device: str = "auto"
    cpu_ops: bool = True
    save_model: bool = False
    progress: bool = True


# -- the model and its tokenizer --------------------------------------------------------------

def check_tokenizer(model_dir: Path, tokenizer_dir: str | os.PathLike | None) -> Path:
    """The tokenizer to encode with, checked against the model's embedding."""
    directory = Path(tokenizer_dir) if tokenizer_dir else model_dir
    if tokenizer_dir is None and not (directory / "tokenizer_config.json").is_file():
        raise UserError(f"MODEL_DIR {model_dir}: no tokenizer beside the model (tokenizer_config.json and vocab.txt); "
                        "copy the tokenizer's files into it or pass --tokenizer DIR")
    encoder = FastEncoder(directory)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    rows = config.get("vocab_size")
    ids = _tokenizer_ids(directory, encoder.vocab_size)
    if rows != ids:
        raise UserError(f"the tokenizer in {directory} has {ids} ids but the model in {model_dir} has an embedding of "
                        f"{rows} rows: they were not trained together; pass --tokenizer DIR with the model's own "
                        "tokenizer")
    return directory


def _tokenizer_ids(directory: Path, vocab_size: int) -> int:
    vocab = directory / "vocab.txt"
    if vocab.is_file():
        with open(vocab, "rb") as f:
            return max(vocab_size, sum(1 for _ in f))
    return vocab_size


def model_fingerprint(model_dir: Path) -> dict[str, str]:
    weights = next(model_dir / w for w in WEIGHT_FILES if (model_dir / w).is_file())
    return {"dir": str(model_dir), "config_sha256": path_fingerprint(model_dir / "config.json"),
            "weights_sha256": path_fingerprint(weights)}


# -- one task --------------------------------------------------------------------------------

def prediction_lines(kind: TaskKind, valid: EncodedSplit, chosen: list[RunResult]) -> list[str]:
    lines = []
    for i, uid in enumerate(valid.uids):
        record = {"index": i, "id": uid, "label": kind.readable(valid, i, None, gold=True),
                  "prediction": kind.readable(valid, i, chosen[0].predictions[i])}
        if len(chosen) > 1:
            record["by_seed"] = {str(r.seed): kind.readable(valid, i, r.predictions[i]) for r in chosen}
        lines.append(json.dumps(record, ensure_ascii=False))
    return lines


def _inputs(model: dict[str, str], tokenizer: Path, data: TaskData) -> dict[str, Any]:
    return {"model": model,
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "data": {name: {"path": str(path), "sha256": path_fingerprint(path)} for name, path in data.files.items()}}


def run_grid(spec: TaskSpec, model_dir: Path, train: EncodedSplit, valid: EncodedSplit, pad_id: int,
             opts: SuiteOptions, task_protocol: dict[str, Any], device) -> tuple[list[RunResult], RunResult | None]:
    """Every learning rate x epochs x seed run; with --save_model, the first run of the best grid
    point so far keeps its model (one model held at a time)."""
    protocol = opts.protocol
    results: list[RunResult] = []
    kept: tuple[float, RunResult] | None = None
    for learning_rate in protocol.learning_rates:
        for epochs in protocol.epochs:
            point = []
            for seed in range(protocol.seed, protocol.seed + protocol.seeds):
                run_opts = RunOptions(
                    learning_rate=learning_rate, epochs=epochs, seed=seed, batch_size=task_protocol["batch_size"],
                    warmup_ratio=protocol.warmup_ratio, weight_decay=protocol.weight_decay,
                    max_grad_norm=protocol.max_grad_norm, precision=task_protocol["precision"], device=str(device),
                    cpu_ops=opts.cpu_ops, progress=opts.progress, keep_model=opts.save_model and not point,
                    label=f"{spec.name} lr {learning_rate:g} x{epochs} seed {seed}")
                result = train_and_predict(model_dir, spec, train, valid, run_opts, pad_id)
                log.info("%s lr %g, %d epochs, seed %d: %s (%.1f s)", spec.name, learning_rate, epochs, seed,
                         ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()), result.train_seconds)
                point.append(result)
            results += point
            mean = rank_value(statistics.fmean(r.metrics[spec.primary_metric] for r in point))
            if opts.save_model and (kept is None or mean > kept[0]):
                if kept is not None:
                    kept[1].model = None
                kept = (mean, point[0])
            else:
                point[0].model = None
    return results, kept[1] if kept else None


def run_task(spec: TaskSpec, model_dir: Path, tokenizer: Path, model: dict[str, str], opts: SuiteOptions,
             task_out: Path) -> dict[str, Any]:
    """Fine-tune and score one task into `task_out`; returns its scores record."""
    protocol = opts.protocol
    started = time.perf_counter()
    data = load_task_data(spec, opts.data, train=opts.train, valid=opts.valid, valid_ratio=protocol.valid_ratio,
                          split_seed=protocol.split_seed, max_train_samples=protocol.max_train_samples,
                          max_eval_samples=protocol.max_eval_samples)
    task_protocol = protocol.for_task(spec)
    positions = json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("max_position_embeddings")
    if positions and task_protocol["max_length"] > positions:
        log.warning("%s: max_length %d is beyond the model's %d positions; using %d (marked as not comparable "
                    "with published figures)", spec.name, task_protocol["max_length"], positions, positions)
        task_protocol["max_length_cut_from"] = task_protocol["max_length"]
        task_protocol["max_length"] = positions
    device = resolve_device(opts.device)
    task_protocol["precision"] = resolve_precision(protocol.precision, device)
    inputs = _inputs(model, tokenizer, data)
    # cpu_ops changes how dropout draws its masks on a CPU, so it changes the scores too
    options = {"task": spec.name, "protocol": task_protocol, "sampled": data.sampled, "save_model": opts.save_model,
               "cpu_ops": opts.cpu_ops and device.type == "cpu"}
    manifest = read_manifest(task_out) if task_out.is_dir() else None
    if manifest and manifest.get("stage") == STAGE and manifest.get("fingerprint") == fingerprint(
            {"stage": STAGE, "inputs": inputs, "options": options}) and (task_out / "scores.json").is_file():
        log.info("%s: up to date in %s (same model, data and protocol); not trained again", spec.name, task_out)
        return json.loads((task_out / "scores.json").read_text(encoding="utf-8"))
    check_output_dir(task_out, (STAGE,))
    encoder = FastEncoder(tokenizer)
    read_seconds = time.perf_counter() - started
    encoded_at = time.perf_counter()
    kind = task_kind(spec)
    train, train_counts = kind.encode(encoder, data.train, task_protocol["max_length"])
    valid, valid_counts = kind.encode(encoder, data.valid, task_protocol["max_length"])
    encode_seconds = time.perf_counter() - encoded_at
    log.info("%s: %d train and %d dev examples (%d and %d cut to %d tokens), encoded in %.1f s", spec.name,
             len(train), len(valid), train.truncated, valid.truncated, task_protocol["max_length"], encode_seconds)
    results, kept = run_grid(spec, model_dir, train, valid, encoder.special_ids["pad"], opts, task_protocol, device)
    chosen_point, grid = pool_runs(spec.name, [r.summary() for r in results])
    chosen = [r for r in results if (r.learning_rate, r.epochs) == (chosen_point["learning_rate"],
                                                                     chosen_point["epochs"])]
    scores = {
        "kind": SCORES_KIND,
        "task": spec.name,
        "title": spec.title,
        "split": "dev",
        "metrics": chosen_point["mean"],
        "std": chosen_point["std"],
        "seeds": len(chosen),
        "chosen": {"learning_rate": chosen_point["learning_rate"], "epochs": chosen_point["epochs"]},
        "grid": grid,
        "runs": [r.summary() for r in results],
        "protocol": task_protocol,
        "departures": departures(spec.name, task_protocol, data.sampled, named_splits=opts.train is not None),
        "model": model,
        "tokenizer": str(tokenizer),
        "data": {**inputs["data"], "train_examples": len(train), "dev_examples": len(valid),
                 "train_truncated": train.truncated, "dev_truncated": valid.truncated, "sampled": data.sampled,
                 **{f"train_{k}": v for k, v in train_counts.items()}, **{f"dev_{k}": v for k, v in valid_counts.items()},
                 "source": spec.source},
        "labels": list(spec.labels),
        "task_kind": spec.kind,
        "predictions": "predictions.jsonl",
        "timings": {"read_seconds": round(read_seconds, 3), "encode_seconds": round(encode_seconds, 3),
                    "train_seconds": round(sum(r.train_seconds for r in results), 3),
                    "predict_seconds": round(sum(r.predict_seconds for r in results), 3),
                    "total_seconds": round(time.perf_counter() - started, 3)},
        "ja_pretrain_version": __version__,
    }
    with atomic_directory(task_out) as tmp:
        atomic_write_json(tmp / "scores.json", scores)
        atomic_write_text(tmp / "predictions.jsonl", "\n".join(prediction_lines(kind, valid, chosen)) + "\n")
        if data.split is not None:
            atomic_write_json(tmp / "split.json", data.split)
        if kept is not None:
            save_finetuned(kept, tokenizer, tmp / "model")
        atomic_write_text(tmp / "scores.md", "\n".join(scorecard_lines(combine([(str(task_out), scores)]))))
        write_manifest(tmp, stage=STAGE, inputs=inputs, options=options,
                       counts={"train_examples": len(train), "dev_examples": len(valid), "runs": len(results)},
                       timings=scores["timings"])
    return scores


def save_finetuned(result: RunResult, tokenizer: Path, out: Path) -> None:
    """The run's model as a save_pretrained dir that loads with AutoModelFor...: the attention
    and dropout switches of training are not saved, so it loads as a plain transformers model."""

    model = result.model
    model.config._attn_implementation = "sdpa"
    model.save_pretrained(out)
    copy_tokenizer(tokenizer, out)


# -- the suite -------------------------------------------------------------------------------

def check_suite_dir(out: Path) -> None:
    """A suite's OUT may be new, empty, an earlier suite, or a suite stopped part-way (finished
    task directories, no manifest yet), which the rerun completes."""
    if out.is_dir() and read_manifest(out) is None:
        entries = [p for p in out.iterdir() if not p.name.startswith(".")]
        if all(p.is_dir() and p.name in TASKS and (read_manifest(p) or {}).get("stage") == STAGE
               or p.name in ("scores.md", "suite.json") for p in entries):
            return
    check_output_dir(out, (STAGE,))


def run_suite(model_dir: str | os.PathLike, opts: SuiteOptions) -> dict[str, Any]:
    """Fine-tune MODEL_DIR on every task of `opts`; returns {"model": ..., "tasks": {name: scores}}."""
    opts.protocol.check()
    specs = [get_task(name) for name in dict.fromkeys(opts.tasks)]
    if not specs:
        raise UserError("--task: name one or more tasks")
    if len(specs) > 1 and (opts.train or opts.valid):
        raise UserError("--train/--valid name one task's files; with several tasks give --data DIR")
    model_path = model_to_finetune(model_dir)
    tokenizer = check_tokenizer(model_path, opts.tokenizer)
    model = model_fingerprint(model_path)
    out = Path(opts.out)
    if len(specs) > 1:
        check_suite_dir(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "manifest.json").unlink(missing_ok=True)
    started = time.perf_counter()
    by_task = {}
    for spec in specs:
        task_out = out if len(specs) == 1 else out / spec.name
        by_task[spec.name] = run_task(spec, model_path, tokenizer, model, opts, task_out)
    record_model_index(model_path, by_task)
    if len(specs) > 1:
        table = scorecard_lines(combine([(str(out / name), s) for name, s in by_task.items()]))
        atomic_write_text(out / "scores.md", "\n".join(table))
        summary = {"kind": "ja-pretrain/downstream-suite", "model": model,
                   "tasks": {name: {"metrics": s["metrics"], "std": s["std"], "chosen": s["chosen"],
                                    "scores": f"{name}/scores.json"} for name, s in by_task.items()}}
        atomic_write_json(out / "suite.json", summary)
        write_manifest(out, stage=STAGE, inputs={"model": model}, options={"tasks": list(by_task)},
                       counts={"tasks": len(by_task)}, timings={"seconds": round(time.perf_counter() - started, 3)})
    return {"model": model, "tasks": by_task}


def record_model_index(model_path: Path, by_task: dict[str, dict[str, Any]]) -> None:
    """Put the tasks scored under the published protocol into the model card's model-index (a
    card ja-pretrain wrote; a run that departs from the protocol is not quoted there)."""
    entries = {name: model_index_entry(task=name, title=s["title"], kind=s["task_kind"], metrics=s["metrics"],
                                       source=get_task(name).source)
               for name, s in by_task.items() if not s.get("departures")}
    name = model_path.parent.name if model_path.name in ("final", "discriminator") else model_path.name
    if entries and record_scores(model_path, name, entries):
        log.info("model card %s: model-index now has %s", model_path / "README.md", ", ".join(entries))


def summary_lines(result: dict[str, Any]) -> list[str]:
    rows = []
    for name, scores in result["tasks"].items():
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in scores["metrics"].items())
        chosen = scores["chosen"]
        rows.append(f"  {name:<15} {metrics}  (lr {chosen['learning_rate']:g}, {chosen['epochs']} epochs, "
                    f"{scores['seeds']} seed(s); {scores['data']['train_examples']:,} train / "
                    f"{scores['data']['dev_examples']:,} dev; {scores['timings']['total_seconds']:.1f} s)")
    return [f"finetune: {result['model']['dir']}", *rows]


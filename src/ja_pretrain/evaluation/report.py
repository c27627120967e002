"""`write_report(run_dir)`: report.md with plots of training, tables of data counts per stage,
tokenizer statistics, the models and their held-out figures."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from ja_pretrain.downstream.scorecard import combine, scorecard_lines
from ja_pretrain.evaluation import plots
from ja_pretrain.evaluation.rundir import RunContents, model_summary, read_train_log, scan_run_dir
from ja_pretrain.evaluation.tokenizer_stats import tokenizer_statistics
from ja_pretrain.utils.atomic import atomic_write_text
from ja_pretrain.utils.manifest import fingerprint, write_manifest

REPORT_NAME = "report.md"


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_number(v).replace("|", "\\|") for v in row) + " |")
    return lines + [""]


def _flatten(counts: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in counts.items():
        if isinstance(value, dict):
            out.extend(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)):
            out.append((f"{prefix}{key}", value))
    return out


def stage_section(run: RunContents) -> list[str]:
    rows = []
    # In the order they were made; zero counts (nothing dropped...) are left out to keep it short.
    for directory, manifest in sorted(run.manifests, key=lambda m: str(m[1].get("created", ""))):
        if manifest["stage"] == "report":
            continue
        counts = ", ".join(f"{k} {_number(v)}" for k, v in _flatten(manifest.get("counts", {})) if v)
        timings = {k: v for k, v in (manifest.get("timings") or {}).items() if isinstance(v, (int, float))}
        seconds = timings.get("total", timings.get("seconds", sum(timings.values()))) if timings else None
        rows.append([manifest["stage"], f"`{run.rel(directory)}`", counts,
                     round(float(seconds), 1) if seconds is not None else "n/a"])
    if not rows:
        return ["No finished stage (no manifest.json) in this run directory.", ""]
    return _table(["stage", "directory", "counts", "seconds"], rows)


def pipeline_section(run: RunContents) -> list[str]:
    """Stages the pipeline ran here (RUN_DIR/.pipeline/STAGE.json), in the order of its plan."""
    plan_path = run.root / "pipeline-plan.json"
    try:
        order = [entry["stage"] for entry in json.loads(plan_path.read_text(encoding="utf-8"))
                 if entry.get("command") != "report"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    rows = []
    for name in order:
        try:
            state = json.loads((run.root / ".pipeline" / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            rows.append([name, "", "not finished", ""])
            continue
        rows.append([name, state.get("command", ""), state.get("finished", ""), round(float(state.get("seconds", 0)), 1)])
    return ["Stages as the pipeline last ran them (`pipeline.yaml` holds the resolved config):", ""] + _table(
        ["stage", "command", "finished", "seconds"], rows)


def tokenizer_section(run: RunContents, max_sentences: int) -> list[str]:
    if not run.tokenizers:
        return ["No tokenizer in this run directory.", ""]
    if not run.valid_texts:
        return ["No corpus valid.txt in this run directory to measure the tokenizer on.", ""]
    text = run.valid_texts[0]
    rows = []
    for directory in run.tokenizers:
        s = tokenizer_statistics(directory, text, max_sentences=max_sentences)
        no_words = s["words"] is None  # no word segmenter: SentencePiece on raw text
        rows.append([f"`{run.rel(directory)}`", s["tokenizer_class"], s["vocab_size"], s["sentences"],
                     "n/a" if no_words else s["words"], s["tokens"], f"{s['unk_rate']:.3%}", f"{s['byte_rate']:.3%}",
                     "n/a" if no_words else f"{s['unk_word_rate']:.3%}",
                     "n/a" if no_words else round(s["subwords_per_word"], 3), round(s["characters_per_token"], 3),
                     f"{s['vocabulary_used']:.1%}"])
    lines = [f"Measured on the first {max_sentences:,} sentences (at most) of `{run.rel(text)}`.", ""]
    return lines + _table(["tokenizer", "class", "vocab", "sentences", "words", "tokens", "[UNK] rate",
                           "byte pieces", "words with [UNK]", "subwords/word", "chars/token", "vocabulary used"], rows)


def _last(records: list[dict[str, Any]], key: str, split: str) -> Any:
    for r in reversed(records):
        if r.get("split", "train") == split and key in r:
            return r[key]
    return None


def training_rows(run: RunContents, logs: list[tuple[str, list[dict[str, Any]]]]) -> list[str]:
    rows = []
    for label, records in logs:
        speeds = [r["tokens_per_s"] for r in records if isinstance(r.get("tokens_per_s"), (int, float))]
        rows.append([f"`{label}`", _last(records, "step", "train"), _last(records, "tokens_seen", "train"),
                     _last(records, "loss", "train"), _last(records, "loss", "valid"),
                     sum(speeds) / len(speeds) if speeds else None])
    if not rows:
        return []
    return _table(["training log", "last step", "tokens seen", "last train loss", "last held-out loss",
                   "mean tokens/s"], rows)


def model_section(run: RunContents) -> list[str]:
    rows = []
    for directory in run.models:
        s = model_summary(directory)
        rows.append([f"`{run.rel(directory)}`", s["architecture"], s["layers"], s["hidden"], s["heads"], s["vocab"],
                     s["positions"], s["parameters"]])
    if not rows:
        return ["No saved model in this run directory.", ""]
    return _table(["model", "architecture", "layers", "hidden", "heads", "vocab", "positions", "parameters"], rows)


def evaluation_section(run: RunContents) -> list[str]:
    if not run.metrics:
        return ["No metrics.json (run `ja-pretrain evaluate MODEL_DIR --corpus ... --out DIR`).", ""]
    mlm, rtd, lines = [], [], []
    for directory, report in run.metrics:
        lines.append(
            f"`{run.rel(directory / 'metrics.json')}`: {report.get('sentences', '?'):,} held-out sentences, "
            f"{report.get('tokens', '?'):,} tokens, seed {report.get('seed')}."
        )
        for label, r in report["models"].items():
            name = f"`{run.rel(Path(r.get('model_dir', label)))}`"
            if r.get("kind") == "masked-lm":
                mlm.append([name, r.get("architecture"), r.get("masked_tokens"), r.get("loss"), r.get("accuracy"),
                            r.get("perplexity")])
            else:
                corruption = str(r.get("corruption", ""))
                if corruption.startswith("generator:"):
                    corruption = f"generator `{run.rel(Path(corruption.split(':', 1)[1]))}`"
                rtd.append([name, corruption, f"{r.get('replaced_fraction', float('nan')):.1%}", r.get("accuracy"),
                            r.get("precision"), r.get("recall"), r.get("f1"), r.get("auc")])
    out = lines + [""]
    if mlm:
        out += ["Masked LM (every hidden token shown as [MASK]):", ""]
        out += _table(["model", "architecture", "masked tokens", "loss", "accuracy", "perplexity"], mlm)
    if rtd:
        out += ["Replaced-token detection (ELECTRA discriminator):", ""]
        out += _table(["model", "corruption", "replaced", "accuracy", "precision", "recall", "F1", "AUC"], rtd)
    return out


def downstream_section(run: RunContents) -> list[str]:
    """Our models' dev scores per task (from `ja-pretrain finetune`) beside published figures:
    every run found, per-seed runs of one protocol pooled, departures from the published
    protocol marked."""
    if not run.downstream:
        return ["No downstream scores (run `ja-pretrain finetune MODEL_DIR --task ... --out DIR`).", ""]
    entries = combine([(run.rel(directory), scores) for directory, scores in run.downstream])
    lines = ["Dev-split scores of fine-tuned models, measured here: the best grid point's mean over seeds "
             "(runs of one model, task and protocol that differ only in their seeds are pooled).", ""]
    lines += scorecard_lines(entries, label_of=lambda e: f"`{run.rel(Path(e.model))}`")
    rows = []
    for entry in entries:
        chosen = entry.chosen
        rows.append([", ".join(f"`{s}`" for s in entry.sources), entry.task, f"`{run.rel(Path(entry.model))}`",
                     chosen.get("learning_rate"), chosen.get("epochs"), ", ".join(map(str, entry.seeds)),
                     "; ".join(entry.departures) or "published protocol"])
    lines += ["Every run found (a row pools the runs it names):", ""]
    return lines + _table(["scores", "task", "model", "learning rate", "epochs", "seeds", "protocol"], rows)


def write_report(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                 tokenizer_sentences: int = 5000) -> Path:
    """Write OUT/report.md (default RUN_DIR/report/) and its PNG plots; return the report's path."""
    started = time.time()
    run = scan_run_dir(run_dir)
    out = Path(out_dir) if out_dir else run.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    logs = [(run.rel(p.parent), read_train_log(p)) for p in run.train_logs]
    images = [
        ("Loss", plots.plot_losses(logs, out / "loss.png")),
        ("Learning rate", plots.plot_metric(logs, "lr", "learning rate", "Learning rate", out / "learning_rate.png")),
        ("Throughput", plots.plot_metric(logs, "tokens_per_s", "tokens/s", "Training throughput (tokens/s)",
                                         out / "tokens_per_s.png", from_zero=True)),
    ]
    lines = [f"# ja-pretrain report: `{run.root}`", "", f"Written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.", ""]
    lines += ["## Data per stage", ""] + stage_section(run) + pipeline_section(run)
    lines += ["## Tokenizer", ""] + tokenizer_section(run, tokenizer_sentences)
    lines += ["## Models", ""] + model_section(run) + training_rows(run, logs)
    lines += ["## Held-out evaluation", ""] + evaluation_section(run)
    lines += ["## Downstream tasks", ""] + downstream_section(run)
    lines += ["## Training curves", ""]
    drawn = [(title, path) for title, path in images if path is not None]
    if drawn:
        for title, path in drawn:
            lines += [f"### {title}", "", f"![{title}]({os.path.relpath(path, out)})", ""]
    else:
        lines += ["No train_log.jsonl in this run directory.", ""]
    report_path = out / REPORT_NAME
    atomic_write_text(report_path, "\n".join(lines))
    write_manifest(
        out,
        stage="report",
        inputs={"stages": fingerprint([m.get("fingerprint") for _, m in run.manifests if m["stage"] != "report"])},
        options={"tokenizer_sentences": tokenizer_sentences},
        counts={"stages": len(run.manifests), "training_logs": len(logs), "models": len(run.models),
                "downstream_scores": len(run.downstream), "plots": len(drawn)},
        timings={"seconds": round(time.time() - started, 3)},
    )
    return report_path

"""The scorecard: our models' dev scores per task beside published reference figures, with
every run shown and no silent choice between runs.

A cell holds a task's metrics joined by "/" (JSTS: Pearson/Spearman; chABSA and livedoor:
accuracy/macro-F1), with "± std" over seeds when there were several.

Runs (`scores.json` records) of one model and task that differ only in their seeds are one
entry: per-seed jobs spread over machines come back together as if run with `--seeds N`. Their
runs are pooled, each grid point's mean and std taken over all their seeds, and the best mean
chosen, as one run with every seed would have. Runs under different protocols are separate
rows, each saying how it departs from the published one.

A run that departs from the published protocol (a subsampled split, a maximum length cut to
the model's positions or set by hand, fewer epochs or learning rates than the grid JGLUE
searched, another batch size or warmup, splits named by hand) has its cell marked and sits in
a table of its own, below the published rows, with its departures listed: it is not an equal
beside published figures.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from ja_pretrain.downstream.published import PUBLISHED
from ja_pretrain.downstream.tasks import DEFAULT_EPOCHS, DEFAULT_LEARNING_RATES, TASKS, get_task
from ja_pretrain.utils.manifest import fingerprint

SCORES_KIND = "ja-pretrain/downstream-scores"
MARK = "†"  # a cell whose run departs from the published protocol
# What a run's protocol record holds that may differ between per-seed jobs of one protocol.
SEED_KEYS = ("seed", "seeds")


def is_scores(record: Any) -> bool:
    return isinstance(record, dict) and record.get("kind") == SCORES_KIND and record.get("task") in TASKS


def departures(task: str, protocol: dict[str, Any], sampled: dict[str, Any] | None = None,
               named_splits: bool = False) -> list[str]:
    """How a run's protocol departs from the published one, in words; [] when it does not."""
    spec = get_task(task)
    out = []
    for split, record in (sampled or {}).items():
        out.append(f"{'train' if split == 'train' else 'dev'} subsampled ({record['kept']:,} of {record['of']:,})")
    if protocol.get("max_length_cut_from"):
        out.append(f"max length {protocol['max_length']} (cut from {protocol['max_length_cut_from']} to the "
                   "model's positions)")
    elif protocol.get("max_length") not in (None, spec.max_length):
        out.append(f"max length {protocol['max_length']} (published {spec.max_length})")
    if protocol.get("batch_size") not in (None, spec.batch_size):
        out.append(f"batch {protocol['batch_size']} (published {spec.batch_size})")
    rates = sorted(protocol.get("learning_rates") or ())
    if rates != sorted(DEFAULT_LEARNING_RATES):
        out.append(f"learning rates {', '.join(f'{r:g}' for r in rates)} (published grid "
                   f"{', '.join(f'{r:g}' for r in DEFAULT_LEARNING_RATES)})")
    epochs = sorted(protocol.get("epochs") or ())
    if epochs != sorted(DEFAULT_EPOCHS):
        out.append(f"epochs {', '.join(map(str, epochs))} (published grid {', '.join(map(str, DEFAULT_EPOCHS))})")
    if protocol.get("warmup_ratio", 0.1) != 0.1:
        out.append(f"warmup {protocol['warmup_ratio']:g} (published 0.1)")
    if protocol.get("weight_decay", 0.0) != 0.0:
        out.append(f"weight decay {protocol['weight_decay']:g} (published 0)")
    if named_splits:
        out.append("splits named by --train/--valid")
    return out


def scores_departures(scores: dict[str, Any]) -> list[str]:
    """A scores.json record's departures: as it recorded them, or worked out from its protocol
    (records written before they were recorded)."""
    if "departures" in scores:
        return list(scores["departures"])
    data = scores.get("data") or {}
    return departures(scores["task"], scores.get("protocol") or {}, data.get("sampled"))


@dataclass
class Entry:
    """One model's scores on one task under one protocol: one or more runs pooled over seeds."""

    task: str
    model: str
    sources: list[str]  # where each pooled scores.json came from
    metrics: dict[str, float]
    std: dict[str, float]
    seeds: list[int]
    chosen: dict[str, Any]
    departures: list[str]
    notes: list[str] = field(default_factory=list)  # e.g. a seed found in two runs

    @property
    def comparable(self) -> bool:
        return not self.departures


def _group_key(scores: dict[str, Any]) -> str:
    protocol = {k: v for k, v in (scores.get("protocol") or {}).items() if k not in SEED_KEYS}
    model = scores.get("model") or {}
    data = {k: v for k, v in (scores.get("data") or {}).items() if isinstance(v, dict) and "sha256" in v}
    return fingerprint({"task": scores["task"], "weights": model.get("weights_sha256", model.get("dir")),
                        "config": model.get("config_sha256"), "data": {k: v["sha256"] for k, v in data.items()},
                        "protocol": protocol, "departures": scores_departures(scores)})


def rank_value(score: float) -> float:
    """A score to choose a grid point by: an undefined one (NaN: constant predictions) ranks last."""
    return score if score == score else float("-inf")


def pool_runs(task: str, runs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the chosen grid point, every point) from the runs of every seed: per (learning rate,
    epochs) the mean and std over seeds, the best mean of the task's first metric chosen."""
    spec = get_task(task)
    points: dict[tuple[float, int], list[dict[str, Any]]] = {}
    for run in runs:
        points.setdefault((run["learning_rate"], run["epochs"]), []).append(run)
    grid = []
    for (lr, epochs), members in points.items():
        values = {m: [r["metrics"][m] for r in members] for m in spec.metrics}
        grid.append({"learning_rate": lr, "epochs": epochs, "seeds": [r["seed"] for r in members],
                     "mean": {m: statistics.fmean(v) for m, v in values.items()},
                     "std": {m: statistics.stdev(v) if len(v) > 1 else 0.0 for m, v in values.items()}})

    return max(grid, key=lambda point: rank_value(point["mean"][spec.primary_metric])), grid


def combine(records: list[tuple[str, dict[str, Any]]]) -> list[Entry]:
    """Entries from (source, scores.json record) pairs: records of one model, task, data and
    protocol that differ only in seeds pooled into one entry; any other difference keeps
    records apart. In the order first seen."""
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for source, scores in records:
        groups.setdefault(_group_key(scores), []).append((source, scores))
    entries = []
    for members in groups.values():
        first = members[0][1]
        runs, seen, notes = [], {}, []
        for source, scores in members:
            for run in scores.get("runs") or []:
                key = (run["learning_rate"], run["epochs"], run["seed"])
                if key in seen:
                    notes.append(f"seed {run['seed']} (lr {run['learning_rate']:g}, {run['epochs']} epochs) is in "
                                 f"both {seen[key]} and {source}; the first is used")
                    continue
                seen[key] = source
                runs.append(run)
        if runs:
            chosen, _ = pool_runs(first["task"], runs)
            metrics, std, seeds = chosen["mean"], chosen["std"], chosen["seeds"]
            point = {"learning_rate": chosen["learning_rate"], "epochs": chosen["epochs"]}
        else:  # a record without its runs: as it stands
            metrics, std = first["metrics"], first.get("std") or {}
            seeds, point = list(range(first.get("seeds", 1))), first.get("chosen", {})
        entries.append(Entry(task=first["task"], model=(first.get("model") or {}).get("dir", "?"),
                             sources=[s for s, _ in members], metrics=metrics, std=std, seeds=seeds,
                             chosen=point, departures=scores_departures(first), notes=notes))
    return entries


def cell(task: str, metrics: dict[str, float], std: dict[str, float] | None = None, seeds: int = 1,
         marked: bool = False) -> str:
    """'0.812/0.790' (± the largest std over seeds when there are several; † when marked)."""
    spec = TASKS[task]
    values = "/".join(f"{metrics[m]:.3f}" for m in spec.metrics)
    if seeds > 1 and std:
        values += f" ± {max(std.get(m, 0.0) for m in spec.metrics):.3f}"
    return values + (f" {MARK}" if marked else "")


def scores_cell(scores: dict[str, Any]) -> str:
    """The cell of one scores.json record."""
    return cell(scores["task"], scores["metrics"], scores.get("std"), scores.get("seeds", 1),
                marked=bool(scores_departures(scores)))


def metric_header(task: str) -> str:
    spec = TASKS[task]
    short = {"accuracy": "acc", "macro_f1": "F1", "pearson": "P", "spearman": "S", "exact_match": "EM", "f1": "F1",
             "precision": "prec", "recall": "rec"}
    return f"{spec.title} ({'/'.join(short.get(m, m) for m in spec.metrics)})"


def _rows(entries: list[Entry], label_of) -> list[tuple[str, dict[str, Entry]]]:
    """Rows of entries: one per (label, protocol); a task seen twice under one row's key starts
    another row (two runs are never merged into one cell, nor one hidden)."""
    rows: list[tuple[str, dict[str, Entry]]] = []
    for entry in entries:
        label = label_of(entry)
        for row_label, cells in rows:
            if row_label == label and entry.task not in cells:
                cells[entry.task] = entry
                break
        else:
            rows.append((label, {entry.task: entry}))
    return rows


def scorecard_lines(entries: list[Entry], label_of=lambda e: e.model, with_published: bool = True) -> list[str]:
    """Markdown: the runs under the published protocol beside the published rows; then, in a
    table of their own, the runs that depart from it, each with its departures."""
    tasks = [t for t in TASKS if any(e.task == t for e in entries)]
    if not tasks:
        return []

    def table(rows: list[tuple[str, dict[str, Entry]]], marked: bool) -> list[str]:
        lines = ["| model | " + " | ".join(metric_header(t) for t in tasks) + " |", "|---|" + "---|" * len(tasks)]
        for label, cells in rows:
            lines.append(f"| {label} | " + " | ".join(
                cell(t, cells[t].metrics, cells[t].std, len(cells[t].seeds), marked) if t in cells else ""
                for t in tasks) + " |")
        return lines

    comparable = [e for e in entries if e.comparable]
    departing = [e for e in entries if not e.comparable]
    lines: list[str] = []
    notes = []
    if comparable or with_published:
        lines += table(_rows(comparable, label_of), marked=False)
    if with_published:
        for number, model in enumerate(PUBLISHED, start=1):
            if not any(t in model.scores for t in tasks):
                continue
            cells = ["/".join(f"{v:.3f}" for v in model.scores[t]) if t in model.scores else "" for t in tasks]
            lines.append(f"| {model.name} (published[{number}]) | " + " | ".join(cells) + " |")
            notes.append(f"[{number}] {model.source}.")
    lines.append("")
    if notes:
        lines += ["Rows marked published are the figures their publishers printed (JGLUE dev sets), not "
                  "measured by ja-pretrain:", ""] + [f"- {n}" for n in notes] + [""]
    if departing:
        rows = _rows(departing, lambda e: f"{label_of(e)}; {'; '.join(e.departures)}")
        lines += [f"{MARK} Not comparable with the published figures: these runs depart from the published "
                  "protocol as each row says.", ""]
        lines += table(rows, marked=True) + [""]
    for entry in entries:
        lines += [f"Note ({entry.task}, {label_of(entry)}): {note}." for note in entry.notes]
    return lines

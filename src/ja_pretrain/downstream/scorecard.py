"""The scorecard: our models' dev scores per task beside published reference figures.

A cell holds a task's metrics joined by "/" (JSTS: Pearson/Spearman; chABSA and livedoor:
accuracy/macro-F1), with "± std" over seeds when there were several. Published rows are marked
as such and footnoted with their sources; they are never mixed with figures measured here.
"""

from __future__ import annotations

from typing import Any

from ja_pretrain.downstream.published import PUBLISHED
from ja_pretrain.downstream.tasks import TASKS

SCORES_KIND = "ja-pretrain/downstream-scores"


def is_scores(record: Any) -> bool:
    return isinstance(record, dict) and record.get("kind") == SCORES_KIND and record.get("task") in TASKS


def cell(scores: dict[str, Any]) -> str:
    """'0.812/0.790' (± the largest std over seeds when there are several)."""
    spec = TASKS[scores["task"]]
    values = "/".join(f"{scores['metrics'][m]:.3f}" for m in spec.metrics)
    std = scores.get("std") or {}
    if scores.get("seeds", 1) > 1 and std:
        values += f" ± {max(std.get(m, 0.0) for m in spec.metrics):.3f}"
    return values


def metric_header(task: str) -> str:
    spec = TASKS[task]
    short = {"accuracy": "acc", "macro_f1": "F1", "pearson": "P", "spearman": "S", "exact_match": "EM", "f1": "F1",
             "precision": "prec", "recall": "rec"}
    return f"{spec.title} ({'/'.join(short.get(m, m) for m in spec.metrics)})"


def scorecard_lines(measured: list[tuple[str, dict[str, dict[str, Any]]]], with_published: bool = True) -> list[str]:
    """A markdown table: one row per measured model (label, {task: scores}), then the
    published rows for the same tasks, then the sources."""
    tasks = [t for t in TASKS if any(t in by_task for _, by_task in measured)]
    if not tasks:
        return []
    lines = ["| model | " + " | ".join(metric_header(t) for t in tasks) + " |",
             "|---|" + "---|" * len(tasks)]
    for label, by_task in measured:
        lines.append(f"| {label} | " + " | ".join(cell(by_task[t]) if t in by_task else "" for t in tasks) + " |")
    notes = []
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
    return lines

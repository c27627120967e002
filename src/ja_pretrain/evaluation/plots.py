"""PNG plots of training logs (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A model's log as (label, records); records are train_log.jsonl objects.
Log = tuple[str, list[dict[str, Any]]]


def _pyplot():
    # Here, not at the top: matplotlib takes a second to import and only the report draws.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(records: list[dict[str, Any]], key: str, split: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        if r.get("split", "train") == split and isinstance(r.get(key), (int, float)) and r[key] == r[key]:
            xs.append(r["step"])
            ys.append(float(r[key]))
    return xs, ys


def loss_keys(records: list[dict[str, Any]]) -> list[str]:
    """Every numeric key that names a loss, `loss` first; a term equal to `loss` throughout (a
    BERT run without NSP logs its MLM loss twice) is left out, as it would hide the total."""
    keys = {k for r in records for k, v in r.items() if "loss" in k and isinstance(v, (int, float))}
    ordered = sorted(keys, key=lambda k: (k != "loss", k))
    if "loss" in keys:
        total = [r.get("loss") for r in records]
        ordered = ["loss"] + [k for k in ordered[1:] if [r.get(k) for r in records] != total]
    return ordered


def _grid(plt, count: int, title: str):
    fig, axes = plt.subplots(1, count, figsize=(5.5 * count, 4), squeeze=False)
    fig.suptitle(title)
    return fig, axes[0]


def plot_losses(logs: list[Log], path: Path) -> Path | None:
    """One panel per model: every train loss term as a line, held-out losses as dots."""
    logs = [(label, records) for label, records in logs if loss_keys(records)]
    if not logs:
        return None
    plt = _pyplot()
    fig, axes = _grid(plt, len(logs), "Loss (train lines, held-out dots)")
    for ax, (label, records) in zip(axes, logs, strict=True):
        values = []
        for index, key in enumerate(loss_keys(records)):
            color = f"C{index % 10}"
            xs, ys = _series(records, key, "train")
            if xs:
                ax.plot(xs, ys, color=color, label=f"train {key}")
                values += ys
            xs, ys = _series(records, key, "valid")
            if xs:
                ax.plot(xs, ys, "o--", color=color, label=f"held-out {key}", markersize=5)
                values += ys
        positive = [v for v in values if v > 0]
        # ELECTRA's total (generator + 50 x discriminator) dwarfs its terms: a log axis shows all.
        if positive and len(positive) == len(values) and max(positive) / min(positive) > 20:
            ax.set_yscale("log")
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(plt, fig, path)


def plot_metric(logs: list[Log], key: str, ylabel: str, title: str, path: Path,
                from_zero: bool = False) -> Path | None:
    """`key` over steps, one line per model, on one panel."""
    series = [(label, *_series(records, key, "train")) for label, records in logs]
    series = [s for s in series if s[1]]
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    styles = ["-", "--", ":", "-."]  # equal curves (same schedule) stay visible on top of each other
    for index, (label, xs, ys) in enumerate(series):
        ax.plot(xs, ys, styles[index % len(styles)], marker="." if len(xs) < 30 else None, label=label,
                linewidth=1.5 + 0.8 * (len(series) - 1 - index))
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
    if from_zero:  # so that noise around a steady rate does not look like a swing
        ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.05)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def _save(plt, fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

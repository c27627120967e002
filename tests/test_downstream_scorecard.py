"""The scorecard and the report's downstream section never choose between runs silently:
per-seed jobs of one protocol pool into mean ± std over their seeds (the grid point chosen on
the pooled means, as one run with every seed would), a run under another protocol is a row of
its own, and a run that departs from the published protocol is marked and kept out of the
table beside the published figures."""

from __future__ import annotations

import json
import statistics

import pytest

from ja_pretrain.downstream.scorecard import MARK, SCORES_KIND, combine, departures, scorecard_lines
from ja_pretrain.evaluation.report import write_report

PUBLISHED_PROTOCOL = {"learning_rates": [5e-5, 3e-5, 2e-5], "epochs": [3, 4], "batch_size": 32, "max_length": 128,
                      "warmup_ratio": 0.1, "weight_decay": 0.0, "precision": "fp32"}
MODEL = {"dir": "/runs/x/bert/final", "config_sha256": "c0", "weights_sha256": "w0"}


def record(seed: int, pearsons: dict[float, float], protocol=None, sampled=None) -> dict:
    """A scores.json record of one seed over a grid of learning rates (4 epochs each)."""
    runs = [{"learning_rate": lr, "epochs": 4, "seed": seed, "metrics": {"pearson": p, "spearman": p - 0.01}}
            for lr, p in pearsons.items()]
    best = max(runs, key=lambda r: r["metrics"]["pearson"])
    protocol = dict(protocol or PUBLISHED_PROTOCOL, seed=seed, seeds=1)
    return {"kind": SCORES_KIND, "task": "jsts", "metrics": best["metrics"], "std": {"pearson": 0.0, "spearman": 0.0},
            "seeds": 1, "chosen": {"learning_rate": best["learning_rate"], "epochs": 4}, "runs": runs,
            "protocol": protocol, "model": MODEL,
            "data": {"train": {"path": "t", "sha256": "t0"}, "valid": {"path": "v", "sha256": "v0"},
                     "train_examples": 100, "dev_examples": 10, "sampled": sampled or {}},
            "timings": {"total_seconds": 1.0}}


def test_per_seed_jobs_pool_into_mean_and_std_on_the_pooled_grid():
    # alone, seed 1 would choose 5e-5 and seed 2 3e-5; pooled, 3e-5 has the better mean
    one = record(1, {5e-5: 0.80, 3e-5: 0.79})
    two = record(2, {5e-5: 0.70, 3e-5: 0.78})
    (entry,) = combine([("ft/seed1", one), ("ft/seed2", two)])
    assert entry.sources == ["ft/seed1", "ft/seed2"] and entry.seeds == [1, 2]
    assert entry.chosen == {"learning_rate": 3e-5, "epochs": 4}
    assert entry.metrics["pearson"] == pytest.approx(statistics.fmean([0.79, 0.78]))
    assert entry.std["pearson"] == pytest.approx(statistics.stdev([0.79, 0.78]))
    assert entry.comparable
    table = "\n".join(scorecard_lines([entry]))
    assert f"| /runs/x/bert/final | 0.785/0.775 ± {statistics.stdev([0.79, 0.78]):.3f} |" in table


def test_a_quick_look_beside_the_full_run_is_shown_apart_and_marked():
    full = record(1, {5e-5: 0.80, 3e-5: 0.79, 2e-5: 0.75})
    quick_protocol = dict(PUBLISHED_PROTOCOL, learning_rates=[5e-5], epochs=[4])
    quick = record(1, {5e-5: 0.60}, protocol=quick_protocol, sampled={"train": {"kept": 20, "of": 100, "seed": 0}})
    entries = combine([("ft/full", full), ("ft/quick", quick)])
    assert [e.sources for e in entries] == [["ft/full"], ["ft/quick"]]
    assert entries[1].departures == ["train subsampled (20 of 100)",
                                     "learning rates 5e-05 (published grid 5e-05, 3e-05, 2e-05)",
                                     "epochs 4 (published grid 3, 4)"]
    lines = scorecard_lines(entries)
    published = lines.index(next(line for line in lines if "(published[1])" in line))
    marked = [i for i, line in enumerate(lines) if f"0.600/0.590 {MARK}" in line]
    assert len(marked) == 1 and marked[0] > published  # below the published rows, not beside them
    assert "train subsampled (20 of 100)" in lines[marked[0]]
    assert any("| /runs/x/bert/final | 0.800/0.790 |" == line for line in lines[:published])


def test_departures_name_each_way_a_run_differs():
    assert departures("jsts", PUBLISHED_PROTOCOL) == []
    cut = dict(PUBLISHED_PROTOCOL, max_length=128, max_length_cut_from=384)
    assert departures("jsquad", dict(cut, batch_size=32)) == [
        "max length 128 (cut from 384 to the model's positions)"]
    assert departures("jcommonsenseqa", dict(PUBLISHED_PROTOCOL, max_length=64, batch_size=16, warmup_ratio=0.0),
                      named_splits=True) == ["batch 16 (published 64)", "warmup 0 (published 0.1)",
                                             "splits named by --train/--valid"]


def test_the_report_shows_every_run(tmp_path):
    run = tmp_path / "run"
    for name, scores in (("ft-seed1", record(1, {5e-5: 0.80, 3e-5: 0.79})),
                         ("ft-seed2", record(2, {5e-5: 0.70, 3e-5: 0.78})),
                         ("ft-quick", record(1, {5e-5: 0.60}, protocol=dict(PUBLISHED_PROTOCOL, epochs=[1])))):
        (run / name).mkdir(parents=True)
        (run / name / "scores.json").write_text(json.dumps(scores), encoding="utf-8")
    text = write_report(run).read_text(encoding="utf-8")
    section = text[text.index("## Downstream tasks"):text.index("## Training curves")]
    assert "0.785/0.775 ±" in section and f"0.600/0.590 {MARK}" in section
    assert "`ft-seed1`, `ft-seed2`" in section and "`ft-quick`" in section
    assert "epochs 1 (published grid 3, 4)" in section

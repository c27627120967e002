"""The downstream metrics equal an independent computation (scipy for the correlations, counts
written out here for F1)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ja_pretrain.downstream.metrics import accuracy, average_ranks, macro_f1, pearson, spearman, task_metrics


@pytest.mark.parametrize("seed", range(5))
def test_correlations_equal_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 26, 300) / 5  # JSTS-like labels: many ties
    predicted = gold + rng.normal(0, 1, 300)
    predicted[:40] = np.round(predicted[:40])  # ties on the predicted side too
    assert pearson(predicted, gold) == pytest.approx(stats.pearsonr(predicted, gold).statistic, abs=1e-12)
    assert spearman(predicted, gold) == pytest.approx(stats.spearmanr(predicted, gold).statistic, abs=1e-12)
    np.testing.assert_allclose(average_ranks(gold), stats.rankdata(gold))


def test_macro_f1_and_accuracy_from_counts():
    gold = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
    predicted = np.array([0, 1, 0, 1, 2, 2, 2, 0, 2, 0])
    # class 0: tp 3, fp 1, fn 1 -> 6/8; class 1: tp 1, fp 1, fn 1 -> 2/4; class 2: tp 3, fp 1, fn 1 -> 6/8
    assert macro_f1(predicted, gold, 3) == pytest.approx((0.75 + 0.5 + 0.75) / 3)
    assert accuracy(predicted, gold) == pytest.approx(0.7)
    # a class never predicted and never present counts 0 (scikit-learn's zero_division=0)
    assert macro_f1(predicted, gold, 4) == pytest.approx((0.75 + 0.5 + 0.75) / 4)


def test_task_metrics_names_and_constant_predictions():
    out = task_metrics(("pearson", "spearman"), np.ones(5), np.arange(5.0))
    assert set(out) == {"pearson", "spearman"} and np.isnan(out["pearson"])  # undefined, not a crash
    with pytest.raises(ValueError, match="unknown metric"):
        task_metrics(("bleu",), np.ones(2), np.ones(2))

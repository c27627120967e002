"""The downstream metrics equal independent implementations: scipy for the correlations,
scikit-learn for macro-F1 (absent classes included), counts written out here for accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from ja_pretrain.downstream.prediction_scores import accuracy, average_ranks, macro_f1, pearson, spearman, task_metrics


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
    assert macro_f1(predicted, gold) == pytest.approx((0.75 + 0.5 + 0.75) / 3)
    assert accuracy(predicted, gold) == pytest.approx(0.7)


@pytest.mark.parametrize("seed", range(6))
def test_macro_f1_equals_scikit_learn_with_absent_classes(seed):
    """Classes of the task that neither the gold labels nor the predictions hold (a small dev
    split of livedoor's 9 categories), classes never predicted, classes only predicted."""
    rng = np.random.default_rng(seed)
    gold = rng.choice([0, 2, 3, 5], size=40)  # 1, 4, 6, 7, 8 absent from gold
    predicted = np.where(rng.random(40) < 0.6, gold, rng.choice([0, 3, 4, 7], size=40))  # 4, 7 only predicted
    predicted[gold == 5] = 0  # class 5 never predicted
    expected = f1_score(gold, predicted, average="macro", zero_division=0)
    assert macro_f1(predicted, gold) == pytest.approx(expected, abs=1e-12)
    assert task_metrics(("macro_f1",), predicted, gold)["macro_f1"] == pytest.approx(expected, abs=1e-12)


def test_task_metrics_names_and_constant_predictions():
    out = task_metrics(("pearson", "spearman"), np.ones(5), np.arange(5.0))
    assert set(out) == {"pearson", "spearman"} and np.isnan(out["pearson"])  # undefined, not a crash
    with pytest.raises(ValueError, match="unknown metric"):
        task_metrics(("bleu",), np.ones(2), np.ones(2))

"""Tests of training.metrics against hand-computed examples and the O(mn) DeLong definition."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wilcoxon

from training.metrics import (
    auc_with_ci,
    binary_metrics,
    brier_score,
    calibration_table,
    classification_summary,
    delong_auc,
    dice_scores,
    dice_summary,
    net_benefit,
    paired_dice_test,
    youden_threshold,
)

Y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
P = [0.9, 0.8, 0.7, 0.2, 0.6, 0.3, 0.2, 0.1, 0.1, 0.05]


def _delong_by_definition(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """DeLong (1988) straight from its definition: psi kernel, structural components."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)


def test_delong_auc_four_cases_hand_computed() -> None:
    auc, variance = delong_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert auc == pytest.approx(0.75)
    assert variance == pytest.approx(0.125)  # S10 = S01 = var([0.5, 1]) = 0.125; 0.125/2 * 2


def test_delong_auc_random_scores_with_ties_match_definition() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 80)
    s = np.round(rng.normal(size=80) + 0.8 * y, 1)  # rounding makes ties
    auc, variance = delong_auc(y, s)
    expected_auc, expected_variance = _delong_by_definition(y, s)
    assert auc == pytest.approx(expected_auc)
    assert variance == pytest.approx(expected_variance)


def test_delong_auc_one_class_raises() -> None:
    with pytest.raises(ValueError, match="positive and one negative"):
        delong_auc([1, 1], [0.2, 0.3])


def test_auc_with_ci_interval_contains_auc_clipped() -> None:
    auc, low, high = auc_with_ci([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert auc == pytest.approx(0.75)
    assert low == pytest.approx(0.75 - 1.959964 * 0.125**0.5, abs=1e-5)
    assert high == 1.0


def test_auc_with_ci_one_class_all_none() -> None:
    assert auc_with_ci([0, 0, 0], [0.1, 0.2, 0.3]) == (None, None, None)


def test_binary_metrics_hand_example_all_figures() -> None:
    m = binary_metrics(Y, P, 0.5)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (3, 1, 1, 5)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["sensitivity"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(5 / 6)
    assert m["ppv"] == pytest.approx(0.75)
    assert m["npv"] == pytest.approx(5 / 6)
    assert m["lr_pos"] == pytest.approx(4.5)
    assert m["lr_neg"] == pytest.approx(0.3)
    assert m["f1"] == pytest.approx(0.75)
    assert m["kappa"] == pytest.approx((0.8 - 0.52) / 0.48)


def test_binary_metrics_one_class_no_positive_calls_undefined_are_none() -> None:
    m = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3], 0.5)
    assert m["accuracy"] == 1.0 and m["specificity"] == 1.0
    for key in ("sensitivity", "ppv", "lr_pos", "lr_neg", "f1", "kappa"):
        assert m[key] is None, key


def test_binary_metrics_perfect_specificity_lr_pos_none() -> None:
    m = binary_metrics([1, 0], [0.9, 0.1], 0.5)
    assert m["lr_pos"] is None and m["lr_neg"] == 0.0


def test_binary_metrics_no_cases_accuracy_none() -> None:
    assert binary_metrics([], [], 0.5)["accuracy"] is None


def test_youden_threshold_hand_example_best_cut() -> None:
    assert youden_threshold(Y, P) == pytest.approx(0.7)


def test_youden_threshold_midpoint_halfway_to_next_lower_score() -> None:
    assert youden_threshold(Y, P, midpoint=True) == pytest.approx(0.65)  # 0.7 and 0.6


def test_youden_threshold_midpoint_separable_scores_between_the_classes() -> None:
    threshold = youden_threshold([0, 0, 1, 1], [0.01, 0.1, 0.97, 0.99], midpoint=True)

    assert threshold == pytest.approx(0.535)


def test_youden_threshold_one_class_default() -> None:
    assert youden_threshold([1, 1], [0.2, 0.9], default=0.4) == 0.4


def test_brier_score_two_cases_hand_computed() -> None:
    assert brier_score([1, 0], [0.8, 0.4]) == pytest.approx(0.1)
    assert brier_score([], []) is None


def test_calibration_table_bins_counts_and_fractions() -> None:
    table = calibration_table([0, 0, 1, 1], [0.05, 0.15, 0.12, 0.95], bins=10)
    assert [(r["bin_low"], r["n"]) for r in table] == [(0.0, 1), (0.1, 2), (0.9, 1)]
    assert [r["observed_fraction"] for r in table] == [0.0, 0.5, 1.0]
    assert table[1]["mean_predicted"] == pytest.approx(0.135)


def test_calibration_table_one_class_still_counts() -> None:
    table = calibration_table([0, 0], [0.05, 0.95], bins=2)
    assert [(r["n"], r["observed_fraction"]) for r in table] == [(1, 0.0), (1, 0.0)]


def test_net_benefit_hand_example_model_and_treat_all() -> None:
    (point,) = net_benefit(Y, P, [0.5])
    assert point["model"] == pytest.approx(3 / 10 - 1 / 10)
    assert point["treat_all"] == pytest.approx(0.4 - 0.6)
    assert point["treat_none"] == 0.0


def test_net_benefit_threshold_out_of_range_raises() -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        net_benefit(Y, P, [1.0])


def test_dice_scores_overlap_and_empty_conventions() -> None:
    pred = np.zeros((4, 4), np.uint8)
    pred[0, 0:2] = 1
    ref = np.zeros((4, 4), np.uint8)
    ref[0, 0] = 1
    empty = np.zeros((4, 4), np.uint8)
    scores = dice_scores([pred, empty, pred], [ref, empty, empty])
    assert scores == pytest.approx([2 / 3, 1.0, 0.0])


def test_dice_summary_empty_list_none() -> None:
    assert dice_summary([]) == {"dice_mean": None, "dice_median": None, "dice_n": 0}
    assert dice_summary([0.2, 0.4, 0.9])["dice_median"] == pytest.approx(0.4)


def test_classification_summary_has_auc_ci_and_brier() -> None:
    summary = classification_summary(Y, P, 0.5)
    assert summary["auc"] == pytest.approx(21.5 / 24)
    assert summary["auc_ci_low"] < summary["auc"] < summary["auc_ci_high"]
    assert summary["brier"] is not None and summary["threshold"] == 0.5


def test_paired_dice_test_matches_scipy_and_ties_give_one() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 0.9, 30)
    b = a - rng.normal(0.05, 0.05, 30)
    result = paired_dice_test(a, b)
    assert result["n"] == 30 and result["difference_mean"] == pytest.approx(float((a - b).mean()))
    assert result["p_value"] == pytest.approx(wilcoxon(a, b).pvalue) and result["p_value"] < 0.05
    assert paired_dice_test(a, a)["p_value"] == 1.0
    assert paired_dice_test([0.7], [0.6])["p_value"] is None
    with pytest.raises(ValueError, match="3 and 2"):
        paired_dice_test([0.1, 0.2, 0.3], [0.1, 0.2])

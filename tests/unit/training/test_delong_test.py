"""DeLong's test of two correlated AUCs: a hand-worked case and the textbook O(mn) formula."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import delong_test


def _textbook(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(AUC difference, its variance) straight from DeLong et al. 1988 (placement values)."""
    v10, v01, aucs = [], [], []
    for s in (a, b):
        kernel = (s[y == 1][:, None] > s[y == 0][None, :]) + 0.5 * (
            s[y == 1][:, None] == s[y == 0][None, :]
        )
        aucs.append(kernel.mean())
        v10.append(kernel.mean(axis=1))
        v01.append(kernel.mean(axis=0))
    s10, s01 = np.cov(np.vstack(v10)), np.cov(np.vstack(v01))
    m, n = len(v10[0]), len(v01[0])
    s = s10 / m + s01 / n
    return aucs[0] - aucs[1], s[0, 0] + s[1, 1] - 2 * s[0, 1]


def test_delong_test_hand_worked_example_matches() -> None:
    # a separates perfectly (AUC 1, zero variance); b has AUC 0.5 with variance 0.5/2 = 0.25
    result = delong_test([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], [0.9, 0.1, 0.8, 0.2])
    assert result["auc_a"] == 1.0 and result["auc_b"] == 0.5
    assert result["variance"] == pytest.approx(0.25)
    assert result["z"] == pytest.approx(1.0)
    assert result["p_value"] == pytest.approx(0.31731, abs=1e-5)


def test_delong_test_random_scores_with_ties_match_textbook_formula() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 80)
    a = np.round(y + rng.normal(0, 1, 80), 1)
    b = np.round(y + rng.normal(0, 1.6, 80), 1)
    result = delong_test(y, a, b)
    difference, variance = _textbook(y, a, b)
    assert result["difference"] == pytest.approx(difference)
    assert result["variance"] == pytest.approx(variance)
    assert result["p_value"] == pytest.approx(
        2 * (1 - 0.5 * (1 + math.erf(abs(result["z"]) / 2**0.5)))
    )


def test_delong_test_identical_scores_p_value_one() -> None:
    scores = [0.1, 0.4, 0.35, 0.8, 0.7, 0.2]
    result = delong_test([0, 0, 1, 1, 1, 0], scores, scores)
    assert result["difference"] == 0.0 and result["p_value"] == 1.0


def test_delong_test_one_class_raises() -> None:
    with pytest.raises(ValueError, match="two positive and two negative"):
        delong_test([1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])

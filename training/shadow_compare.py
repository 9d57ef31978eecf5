"""Compare model versions on the live studies that later got pathology labels (shadow mode)."""

from __future__ import annotations

from itertools import combinations

import numpy as np
from sqlalchemy.orm import Session

from training.metrics import auc_with_ci, delong_test


def compare_predictions(predictions: dict[str, dict[int, tuple[float, int]]]) -> list[dict]:
    """For each pair of versions: the shared labelled studies, each AUC and DeLong's test.

    ``predictions`` is version -> {study id: (probability, outcome)}; figures that need both
    classes (or two of each for the test) are None when the cases do not allow them.
    """
    pairs = []
    for a, b in combinations(sorted(predictions), 2):
        shared = sorted(set(predictions[a]) & set(predictions[b]))
        y = np.array([predictions[a][s][1] for s in shared], int)
        pa = np.array([predictions[a][s][0] for s in shared], float)
        pb = np.array([predictions[b][s][0] for s in shared], float)
        entry: dict = {"a": a, "b": b, "n": len(shared), "n_positive": int(y.sum()),
                       "auc_a": None, "auc_b": None, "p_value": None}  # fmt: skip
        if len(shared):
            entry["auc_a"] = auc_with_ci(y, pa)[0]
            entry["auc_b"] = auc_with_ci(y, pb)[0]
        if 2 <= y.sum() <= len(y) - 2:
            entry["p_value"] = delong_test(y, pa, pb)["p_value"]
        pairs.append(entry)
    return pairs


def compare_versions(session: Session, model_key: str) -> list[dict]:
    """:func:`compare_predictions` of ``model_key``'s versions from the node's database."""
    from db.labels import labelled_predictions

    return compare_predictions(labelled_predictions(session, model_key))

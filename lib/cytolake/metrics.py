"""Scores, all from scikit-learn: macro-F1 over the areas present in the truth of the nodes scored."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean of per-area F1 over the areas that occur in `y_true` (an area predicted but absent
    from the truth lowers the precision of the true areas, not the mean's denominator); nan when empty."""
    if not len(y_true):
        return float("nan")
    return float(f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0))


def per_area_f1(y_true: np.ndarray, y_pred: np.ndarray) -> dict[int, float]:
    labels = np.unique(y_true)
    return dict(zip(labels.tolist(), f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0).tolist()))

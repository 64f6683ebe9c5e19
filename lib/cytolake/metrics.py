"""Scores: macro-F1 over the areas present in the truth of the nodes scored (scikit-learn's), and its
bootstrap, paired (two predictions of the same nodes on the same resamples), over nodes or over whole groups
of them (sections)."""

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


def resampled_macro_f1(y: np.ndarray, pred: np.ndarray, idx) -> np.ndarray:
    """`macro_f1(y[i], pred[i])` for each row i of `idx` (rows, or a list of index arrays), by counting
    (sklearn's per-call overhead would dominate a bootstrap's many resamples of a few hundred nodes):
    per-area F1 = 2 TP / (true + predicted), averaged over the areas present in the resample's truth."""
    classes, codes = np.unique(np.r_[y, pred], return_inverse=True)
    yc, pc = codes[: len(y)], codes[len(y):]
    k, out = len(classes), np.empty(len(idx))
    for r, i in enumerate(idx):
        t, p = yc[i], pc[i]
        true, predicted = np.bincount(t, minlength=k), np.bincount(p, minlength=k)
        tp = np.bincount(t[t == p], minlength=k)
        present = true > 0
        out[r] = np.mean(2 * tp[present] / (true[present] + predicted[present]))
    return out


def bootstrap_resamples(n: int, seed: int, resamples: int) -> np.ndarray:
    """(resamples, n) node indices drawn with replacement, seeded: a rerun draws the same."""
    return np.random.default_rng(seed).integers(0, n, (resamples, n))


def group_resamples(groups: np.ndarray, seed: int, resamples: int, strata: np.ndarray | None = None) -> list[np.ndarray]:
    """Node indices of `resamples` cluster-bootstrap draws: as many groups as there are, drawn with replacement,
    each bringing all its nodes; with `strata` (one label per node, constant within a group, e.g. its brain)
    each stratum's groups are drawn from that stratum alone, so every draw keeps each brain's share. Nodes of
    one section share its staining, its cut and overlapping patches, so they are not independent draws;
    resampling whole sections gives the spread between sections, which a node bootstrap leaves out."""
    _, codes = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)]
    stratum_of = np.zeros(len(members), np.int64) if strata is None else np.unique(
        np.asarray(strata)[[m[0] for m in members]], return_inverse=True)[1]
    pools = [np.flatnonzero(stratum_of == s) for s in range(stratum_of.max() + 1)]
    rng = np.random.default_rng(seed)
    draws = np.concatenate([rng.choice(pool, (resamples, len(pool))) for pool in pools], axis=1)
    return [np.concatenate([members[g] for g in row]) for row in draws]


def paired_differences(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, seed: int,
                       resamples: int = 1000, groups: np.ndarray | None = None,
                       strata: np.ndarray | None = None) -> np.ndarray:
    """macro-F1 of `pred_a` minus that of `pred_b` on each bootstrap resample, both scored on the same
    resample: the paired bootstrap, whose spread leaves out what the two share (which nodes are easy). The
    resamples are of nodes, or of whole `groups` (one label per node, e.g. its section) within `strata`
    (`group_resamples`).
    `pred_a` may be several predictions of the same nodes (rows: e.g. one per GNN seed): their mean macro-F1."""
    if len(y) < 2:
        return np.zeros(resamples)
    idx = (bootstrap_resamples(len(y), seed, resamples) if groups is None
           else group_resamples(groups, seed, resamples, strata))
    a = np.mean([resampled_macro_f1(y, p, idx) for p in np.atleast_2d(pred_a)], axis=0)
    return a - resampled_macro_f1(y, pred_b, idx)


def paired_interval(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, seed: int = 0, level: float = 0.95,
                    resamples: int = 1000, groups: np.ndarray | None = None,
                    strata: np.ndarray | None = None) -> tuple[float, float]:
    """The two-sided percentile interval of macro-F1(a) - macro-F1(b) over paired bootstrap resamples (of
    nodes, or of whole `groups` within `strata`); (nan, nan) for whole groups when fewer than two are there
    to draw: one section has no spread between sections to estimate. With a handful of sections the
    percentile interval is still too narrow (it misses the between-section variance's (G-1)/G and has few
    distinct resamples): a lower bound on the uncertainty, not its measure."""
    if groups is not None and len(np.unique(groups)) < 2:
        return float("nan"), float("nan")
    d = paired_differences(y, pred_a, pred_b, seed, resamples, groups, strata)
    return float(np.quantile(d, (1 - level) / 2)), float(np.quantile(d, (1 + level) / 2))

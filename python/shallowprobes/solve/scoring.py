"""CV scores of predictions: squared error, accuracy and AUROC (with average ranks), on the host
or on a torch device, and R^2 for `score`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import is_torch_tensor
from ..backends import ops_of, to_numpy

SCORINGS = ("squared_error", "accuracy", "roc_auc")


# ---------------------------------------------------------------------------------- scoring
def average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    boundaries = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [xs.size]))
    avg = (starts + ends + 1) / 2.0  # 1-based average rank of each tie group
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def binary_roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0 or not np.isfinite(scores).all():
        return np.nan
    ranks = average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def score_predictions(
    preds: np.ndarray, Y: np.ndarray, scoring: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-target (A, k) and joint (A,) scores of held-out predictions (A, n, k); higher is better.

    For classifiers Y holds the +-1 codes. Joint accuracy of a multiclass problem is the accuracy
    of the arg-max decision; per-target accuracy/AUC are those of each one-vs-rest column.
    Torch predictions are scored on their device; the (A, k) and (A,) scores are numpy either
    way.
    """
    if is_torch_tensor(preds):
        return score_predictions_torch(preds, Y, scoring)
    A, _, k = preds.shape
    if scoring == "squared_error":
        per = -np.mean((preds - Y[None]) ** 2, axis=1)
        joint = per.mean(axis=1)
    elif scoring == "accuracy":
        per = np.mean((preds > 0) == (Y[None] > 0), axis=1)
        per = np.where(np.isnan(preds).any(axis=1), np.nan, per)
        if k == 1:
            joint = per[:, 0].copy()
        else:
            truth = np.argmax(Y, axis=1)
            joint = np.mean(np.argmax(preds, axis=2) == truth[None], axis=1)
            joint = np.where(np.isnan(preds).any(axis=(1, 2)), np.nan, joint)
    elif scoring == "roc_auc":
        per = np.empty((A, k))
        for a in range(A):
            for t in range(k):
                per[a, t] = binary_roc_auc(preds[a, :, t], Y[:, t] > 0)
        joint = per.mean(axis=1)
    else:  # pragma: no cover - validated earlier
        raise ValueError(scoring)
    return per, joint


def score_predictions_torch(preds: Any, Y: Any, scoring: str) -> tuple[np.ndarray, np.ndarray]:
    """`score_predictions` for torch predictions, on their device (only scores come back)."""
    xp = ops_of(preds)
    Y = xp.asarray(Y)
    k = preds.shape[2]
    if scoring == "roc_auc":
        A = preds.shape[0]
        per = np.array([[binary_roc_auc_torch(preds[a, :, t], Y[:, t] > 0) for t in range(k)]
                        for a in range(A)]).reshape(A, k)  # fmt: skip
        return per, per.mean(axis=1)
    if scoring == "squared_error":
        per = -((preds - Y[None]) ** 2).mean(dim=1)
        return to_numpy(per), to_numpy(per.mean(dim=1))
    nan_any = xp.isnan(preds).any(dim=1)  # (A, k)
    per = ((preds > 0) == (Y[None] > 0)).double().mean(dim=1)
    per = xp.where(nan_any, float("nan"), per)
    if k == 1:
        joint = per[:, 0]
    else:
        truth = Y.argmax(dim=1)
        joint = (preds.argmax(dim=2) == truth[None]).double().mean(dim=1)
        joint = xp.where(nan_any.any(dim=1), float("nan"), joint)
    return to_numpy(per), to_numpy(joint)


def binary_roc_auc_torch(scores: Any, positive: Any) -> float:
    """`binary_roc_auc` on a torch device: average ranks of tied scores from one sort."""
    import torch

    n_pos = int(positive.sum())
    n_neg = positive.numel() - n_pos
    if n_pos == 0 or n_neg == 0 or not bool(torch.isfinite(scores).all()):
        return float("nan")
    values, order = torch.sort(scores, stable=True)
    _, inverse, counts = torch.unique_consecutive(values, return_inverse=True,
                                                   return_counts=True)  # fmt: skip
    ends = torch.cumsum(counts, 0).double()
    avg = (2.0 * ends - counts.double() + 1.0) / 2.0  # 1-based average rank of each tie group
    rank_sum = float(avg[inverse][positive[order]].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def argmax_first(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Arg-max treating NaN as the worst value; ties go to the first entry. (Alpha and gamma
    selection break ties by value instead: `best_index`.)"""
    return np.argmax(np.where(np.isnan(values), -np.inf, values), axis=axis)


def mean_r2(Y: np.ndarray, P: np.ndarray) -> float:
    ss_res = ((Y - P) ** 2).sum(axis=0)
    ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res > 0, 0.0, 1.0))
    return float(r2.mean())

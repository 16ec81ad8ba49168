"""How well a transferred monitor agrees with its source on model A: R^2 and whitened R^2, rank
correlation, AUROC, and the weighted agreement statistics at the monitor's operating point
(decision AUROC, decision agreement) with bootstrap intervals. Plain numpy on the host.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .._params import (
    RANDOM_STATE,
    Interval,
    check_param,
)
from ..backends import is_torch_tensor, to_numpy
from ..solve.scoring import average_ranks, binary_roc_auc
from .monitor import PolynomialMonitor

# The verdict threshold on the held-out decision AUROC, chosen by the calibration study in
# docs/transfer_verdicts.md (benches/calibrate_verdicts.py).
DEFAULT_MIN_DECISION_AUROC = 0.97
# The four verdict statistics, in report order.
STATISTICS = ("decision_auroc", "decision_agreement", "rank_correlation", "fidelity_r2")
_STAT_LABELS = {
    "decision_auroc": "decision AUROC",
    "decision_agreement": "decision agreement",
    "rank_correlation": "rank correlation",
    "fidelity_r2": "score R^2",
}
_BOOTSTRAP_ENTRIES = 1 << 22  # resamples x rows evaluated at a time


# ---------------------------------------------------------------------------------- scores
def r2_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """Pooled R^2 = 1 - sum (pred - truth)^2 / sum (truth - mean truth)^2 over all columns
    (scikit-learn's "variance_weighted" average for several columns)."""
    truth = np.asarray(truth, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    sst = float(np.sum((truth - truth.mean(axis=0)) ** 2))
    sse = float(np.sum((pred - truth) ** 2))
    if sst <= 0.0:
        return 1.0 if sse <= 1e-24 * max(truth.size, 1) else 0.0
    return 1.0 - sse / sst


def whitened_r2(truth: np.ndarray, pred: np.ndarray, covariance: np.ndarray) -> float:
    """R^2 averaged over whitened coordinates: 1 - tr(S^+ E) / rank(S), with S the covariance
    of the true coordinates (from the training pairs) and E the mean squared-error matrix of
    the predictions. It does not depend on the basis the coordinates are written in (any
    invertible linear change of basis of truth and prediction leaves it unchanged), so it means
    the same for z_A, whichever basis C the quotient picked, and for h_A in any coordinates."""
    if is_torch_tensor(pred) or is_torch_tensor(truth):  # reduce on the device
        err = pred.double() - truth.double()
        E = np.asarray(to_numpy(err.T @ err)) / err.shape[0]
    else:
        err = np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
        E = err.T @ err / err.shape[0]
    lam, V = np.linalg.eigh(0.5 * (covariance + covariance.T))
    keep = lam > 1e-10 * max(float(lam.max()), 1e-300)
    if not np.any(keep):
        return float("nan")
    Vk = V[:, keep]
    return 1.0 - float(np.sum((Vk.T @ E @ Vk).diagonal() / lam[keep])) / int(keep.sum())


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    ra, rb = average_ranks(np.asarray(a, float)), average_ranks(np.asarray(b, float))
    ra -= ra.mean()
    rb -= rb.mean()
    denom = float(np.sqrt(np.sum(ra * ra) * np.sum(rb * rb)))
    return float(np.sum(ra * rb) / denom) if denom > 0 else float("nan")


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC of scores for binary labels (positive = the larger label)."""
    labels = np.asarray(labels).ravel()
    classes = np.unique(labels)
    if classes.size != 2:
        return float("nan")
    return binary_roc_auc(np.asarray(scores, float).ravel(), labels == classes[1])


# ------------------------------------------------------------------ weighted statistics
# The statistics of one monitor under row weights c (B, n): c = 1 gives the plain estimates,
# multinomial counts give bootstrap resamples, all from one sort of each score. A row counted
# k times is k tied copies: ranks are mid-ranks, AUROC ties count 1/2.
class _Sorted:
    """One score sorted once: order, and its tie groups (None when all values differ).
    Weights are laid out (n, B): rows x resamples, so that reordering rows copies rows."""

    def __init__(self, x: np.ndarray) -> None:
        self.order = np.argsort(x, kind="mergesort")
        xs = x[self.order]
        new = np.concatenate(([True], xs[1:] != xs[:-1]))
        self.starts = None if new.all() else np.flatnonzero(new)
        if self.starts is not None:
            self.sizes = np.diff(np.concatenate((self.starts, [x.size])))

    def group(self, cs: np.ndarray) -> np.ndarray:
        """Per tie group sums of weights given in sorted order (groups, B)."""
        return cs if self.starts is None else np.add.reduceat(cs, self.starts, axis=0)

    def spread(self, g: np.ndarray) -> np.ndarray:
        """Group values back to the sorted rows."""
        return g if self.starts is None else np.repeat(g, self.sizes, axis=0)

    def midranks(self, cs: np.ndarray) -> np.ndarray:
        """Weighted mid-ranks of the sorted rows (weights cs in sorted order)."""
        g = self.group(cs)
        r = np.cumsum(g, axis=0)
        r -= 0.5 * g
        r += 0.5
        return self.spread(r)


class _Prepared:
    """What one monitor's statistics need, computed once for all resamples."""

    def __init__(self, s: np.ndarray, t: np.ndarray, theta: float) -> None:
        self.S, self.T = _Sorted(s), _Sorted(t)
        dec_s, dec_t = s > theta, t > theta
        self.pos_t = dec_s[self.T.order].astype(np.float64)[:, None]  # decisions, in t order
        self.agree = (dec_s == dec_t).astype(np.float64)
        rank_of = np.empty(t.size, dtype=np.intp)
        rank_of[self.T.order] = np.arange(t.size)
        self.t_to_s = rank_of[self.S.order]  # t-sorted position of each s-sorted row
        s0 = s - s.mean()
        self.s0, self.s0sq, self.err2 = s0, s0 * s0, (t - s) ** 2

    def stats(self, c: np.ndarray) -> np.ndarray:
        """(4, B) for weights c (n, B): decision AUROC, decision agreement, rank
        correlation, score R^2."""
        total = c.sum(axis=0)
        ct = c[self.T.order]
        cs = c[self.S.order]
        # decision AUROC: weighted Mann-Whitney count of t for the source's decisions
        gp = self.T.group(ct * self.pos_t)
        gn = self.T.group(ct) - gp
        below = np.cumsum(gn, axis=0)
        below -= 0.5 * gn  # negatives strictly below, plus half of the tied ones
        num = np.einsum("ij,ij->j", gp, below)
        den = gp.sum(axis=0) * gn.sum(axis=0)
        # rank correlation: weighted Pearson of mid-ranks, in s order (their mean is (N+1)/2)
        mid = 0.5 * (total + 1.0)
        rs = self.S.midranks(cs)
        rs -= mid
        rt = self.T.midranks(ct)[self.t_to_s]
        rt -= mid
        crs = cs * rs
        cov = np.einsum("ij,ij->j", crs, rt)
        var_s = np.einsum("ij,ij->j", crs, rs)
        rt *= np.sqrt(cs)
        var_t = np.einsum("ij,ij->j", rt, rt)
        m1 = self.s0 @ c
        sst = self.s0sq @ c - m1 * m1 / total
        sse = self.err2 @ c
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
            vv = var_s * var_t
            rho = np.where(vv > 0, cov / np.sqrt(np.where(vv > 0, vv, 1.0)), np.nan)
            r2 = np.where(sst > 1e-300, 1.0 - sse / np.where(sst > 1e-300, sst, 1.0), np.nan)
        return np.vstack([auc, (self.agree @ c) / total, rho, r2])


def _operating_point(s: np.ndarray, threshold: float) -> tuple[float, bool]:
    """(theta, moved): the monitor's threshold, or the median of its held-out source scores
    when fewer than 2 of them fall on one side of the threshold (moved=True)."""
    above = int(np.sum(s > threshold))
    if min(above, s.size - above) >= 2:
        return float(threshold), False
    med = float(np.median(s))
    if min(int(np.sum(s > med)), int(np.sum(s <= med))) >= 2:
        return med, True
    return float(threshold), False  # (nearly) constant scores: the statistics are NaN


def _monitor_threshold(monitor: PolynomialMonitor) -> float:
    """The monitor's operating point: info["threshold"] when it is a finite number, else 0."""
    value = monitor.info.get("threshold", 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0.0
    return float(value)


def agreement_statistics(
    source_scores: Any,
    transferred_scores: Any,
    thresholds: Any = 0.0,
    *,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    random_state: Any = 0,
) -> dict:
    """The label-free verdict statistics of transferred monitors on held-out pairs.

    source_scores, transferred_scores : (n,) or (n, m): each monitor's score on model A and
        the transferred monitor's score on model B, row i being the same input.
    thresholds : the monitors' operating points (a number, or one per monitor). A monitor
        with fewer than 2 source scores on one side of its threshold is judged at the median
        of its source scores instead (reported in ``"threshold"``).
    n_bootstrap : percentile-bootstrap resamples of the n rows for the intervals (0: none).
    confidence : coverage of the intervals (default 0.95).

    Returns a dict with, for each statistic in ``STATISTICS`` ("decision_auroc",
    "decision_agreement", "rank_correlation", "fidelity_r2"), an (m,) array of point
    estimates and, under ``name + "_interval"``, an (m, 2) array of interval ends (NaN where
    undefined or without resamples); and ``"threshold"`` (m,) the operating points used and
    ``"moved"`` (m,) booleans (True where the median replaced the threshold).
    """
    owner = "agreement_statistics"
    check_param("n_bootstrap", n_bootstrap, [Interval("int", 0, None)], owner=owner)
    check_param("confidence", confidence, [Interval("real", 0.0, 1.0, closed="neither")],
                owner=owner)  # fmt: skip
    check_param("random_state", random_state, RANDOM_STATE, owner=owner)
    S = np.asarray(to_numpy(source_scores), dtype=np.float64)
    T = np.asarray(to_numpy(transferred_scores), dtype=np.float64)
    S, T = S.reshape(S.shape[0], -1), T.reshape(T.shape[0], -1)
    if S.shape != T.shape:
        raise ValueError(
            f"source_scores {S.shape} and transferred_scores {T.shape} must have the same shape."
        )
    n, m = S.shape
    if n < 2:
        raise ValueError(f"agreement statistics need at least 2 rows, got {n}.")
    if not (np.all(np.isfinite(S)) and np.all(np.isfinite(T))):
        raise ValueError("source_scores and transferred_scores must be finite.")
    th = np.broadcast_to(np.asarray(thresholds, dtype=np.float64).reshape(-1), (m,)).copy()
    return _agreement(S, T, th, int(n_bootstrap), float(confidence), _bootstrap_rng(random_state))


def _bootstrap_rng(random_state: Any) -> np.random.Generator:
    """A generator for the resamples, on another stream than the split's for integer seeds."""
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(None if random_state is None else [int(random_state), 1])
    return np.random.default_rng(random_state)


def _agreement(S: np.ndarray, T: np.ndarray, thresholds: np.ndarray, n_bootstrap: int,
               confidence: float, rng: np.random.Generator) -> dict:  # fmt: skip
    n, m = S.shape
    out = {k: np.full(m, np.nan) for k in STATISTICS}
    out.update({f"{k}_interval": np.full((m, 2), np.nan) for k in STATISTICS})
    out["threshold"] = np.zeros(m)
    out["moved"] = np.zeros(m, dtype=bool)
    counts = None
    if n_bootstrap:  # (n, B): row i of A and B counted counts[i, b] times in resample b
        counts = np.ascontiguousarray(
            rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap).T, dtype=np.float64
        )
    lo, hi = 50.0 * (1.0 - confidence), 50.0 * (1.0 + confidence)
    chunk = max(1, _BOOTSTRAP_ENTRIES // max(n, 1))
    for j in range(m):
        s, t = S[:, j], T[:, j]
        theta, moved = _operating_point(s, thresholds[j])
        out["threshold"][j], out["moved"][j] = theta, moved
        prep = _Prepared(s, t, theta)
        point = prep.stats(np.ones((n, 1)))[:, 0]
        for k, name in enumerate(STATISTICS):
            out[name][j] = point[k]
        if counts is None:
            continue
        if chunk >= n_bootstrap:
            draws = prep.stats(counts)
        else:
            draws = np.hstack([prep.stats(np.ascontiguousarray(counts[:, b : b + chunk]))
                               for b in range(0, n_bootstrap, chunk)])  # fmt: skip
        for k, name in enumerate(STATISTICS):
            vals = draws[k][np.isfinite(draws[k])]
            if vals.size >= max(10, n_bootstrap // 2):
                out[f"{name}_interval"][j] = np.percentile(vals, [lo, hi])
    return out

"""Label-free monitor transfer from model A to model B through A's probe-visible quotient.

Given a bank of monitors fitted on model A and the hidden states of both models on the same
unlabeled inputs (paired rows H_A, H_B), :class:`QuotientAligner` fits an affine ridge map from
B's hidden states to A's quotient coordinates z_A = C^T (h_A - m) (r numbers, see
:class:`~shallowprobes.quotient.Quotient`, built in the metric of A's data), with alpha chosen
by the core's exact CV, and composes it with every monitor. A monitor on z composed with an
affine map of h_B is again a polynomial of degree <= 2 in h_B, so the transferred monitors are
stored as such and read B's hidden states directly. No labels on B are used.

A point of honesty, tested in the suite: a ridge map decouples across output columns, so with
the same alpha, "map h_B -> h_A, then project onto the quotient" gives exactly the same
transferred monitors as "map h_B -> z_A". What the quotient adds is

1. the right diagnostic: held-out R^2 on z_A says whether the visible part aligns, while the
   full-state R^2 need not (directions no monitor reads may be unalignable);
2. the right target for alpha selection (CV on the r visible coordinates, not on d_A - r
   coordinates that no monitor reads);
3. r outputs instead of d_A;
4. a subspace that contains the monitors' directions, unlike e.g. A's top-r PCA subspace.

The baselines are available under the same API (``target="full"`` and ``target="pca"``), and
:func:`few_label_probe` trains a probe on B with a few labels for comparison.

Verdicts
--------
Every transfer produces a :class:`CoverageReport`. The map is first fitted on a training split
of the pairs; on the held-out pairs the source score s (the monitor on h_A) and the
transferred score t (the moved monitor on h_B) are compared by four label-free statistics,
each with a percentile bootstrap interval over the held-out pairs:

- decision AUROC: the AUROC of t for the source monitor's own decisions s > theta at its
  operating point theta (``info["threshold"]``, default 0, the decision rule of the library's
  classifiers): how well the transferred score still separates what the monitor flags from
  what it does not. This is the statistic the verdict uses;
- decision agreement: the fraction of pairs with (t > theta) == (s > theta);
- rank correlation (Spearman) of s and t;
- score R^2 of t against s (``fidelity_r2``).

A monitor is *portable* when its coverage (below) is >= `min_coverage` and its decision AUROC
is >= `min_decision_auroc` (optional extra thresholds on the rank correlation and the score
R^2 are off by default). The default threshold comes from a calibration study over synthetic
pairs with controlled degradation (docs/transfer_verdicts.md, benches/calibrate_verdicts.py):
the decision AUROC predicts the transferred AUROC best of the four, while the score R^2 and the
rank correlation also penalise within-class detail that B does not encode and that labels do
not depend on (well-separated concepts transfer with R^2 ~0.85 and no AUROC loss).

Coverage: for a monitor outside the bank (`extra_monitors`), the share of its score variance on
A's data that the bank's visible span carries (1 = fully covered, 0 = reads only invisible
directions); for the bank's own monitors it is 1 by construction and reported as "in bank",
unless the quotient's cut-off (rtol / rank) dropped directions they read.

After the held-out estimate the map is refitted on all pairs (``refit=True``); the report's
statistics are those of the split fit, the returned monitors use the refitted map.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Optional, Union

import numpy as np

from ._backends import float64_row_blocks, is_torch_tensor, to_numpy
from ._base import BaseEstimator, NotFittedError, user_stacklevel
from ._params import (
    ALPHAS,
    ARRAY_LIKE,
    BACKEND,
    BOOL,
    CV,
    RANDOM_STATE,
    Interval,
    Options,
    ParameterError,
    ParameterTypeError,
    _show,
    check_param,
    params_of,
    validate_params,
)
from ._validation import check_X
from .bank import PolynomialMonitor, ProbeBank, _evaluate
from .errors import BundleError, EmptyBankError, NotPortableError
from .io import json_bool, json_fields, json_float, json_int, json_list, json_number, json_str
from .linear import LinearProbe, _average_ranks, _roc_auc
from .metrics import METRICS, check_readout
from .quotient import Quotient, project_rows, reference_moments
from .threads import interruptible

__all__ = [
    "QuotientAligner",
    "transfer",
    "CoverageReport",
    "MonitorCoverage",
    "agreement_statistics",
    "few_label_probe",
    "compare_transfer",
    "TransferComparison",
    "TARGETS",
    "DEFAULT_MIN_DECISION_AUROC",
]

TARGETS = ("quotient", "full", "pca")
_UNPORTABLE = ("mark", "drop", "raise")
_QUOTIENT_METRICS = ("data", "euclidean")

# The verdict threshold on the held-out decision AUROC, chosen by the calibration study in
# docs/transfer_verdicts.md (benches/calibrate_verdicts.py).
DEFAULT_MIN_DECISION_AUROC = 0.97
# Share of an in-bank monitor's score variance (on A's pairs) outside the kept quotient rank
# above which the aligner warns.
_LOST_SHARE_TOL = 1e-6
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
    ra, rb = _average_ranks(np.asarray(a, float)), _average_ranks(np.asarray(b, float))
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
    return _roc_auc(np.asarray(scores, float).ravel(), labels == classes[1])


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


# ---------------------------------------------------------------------------------- report
_NAN = float("nan")
_NO_INTERVAL = (_NAN, _NAN)


@dataclass
class MonitorCoverage:
    """One row of a CoverageReport (the statistics are on the held-out pairs).

    coverage : share of the monitor's score variance on A's data carried by the visible
        quotient (1 for the bank's own monitors unless the cut-off dropped directions).
    fidelity_r2 : score R^2 of the transferred score against the source score.
    rank_correlation : Spearman correlation of the two scores.
    decision_auroc : AUROC of the transferred score for the source's decisions (s > threshold).
    decision_agreement : share of pairs on which the two scores decide alike at `threshold`.
    threshold : the operating point the decisions were taken at.
    *_interval : (low, high) percentile-bootstrap interval of that statistic.
    """

    name: str
    kind: str
    in_bank: bool
    coverage: float
    fidelity_r2: float
    rank_correlation: float
    portable: bool
    reason: str = ""
    decision_auroc: float = _NAN
    decision_agreement: float = _NAN
    threshold: float = _NAN
    decision_auroc_interval: tuple = _NO_INTERVAL
    decision_agreement_interval: tuple = _NO_INTERVAL
    rank_correlation_interval: tuple = _NO_INTERVAL
    fidelity_r2_interval: tuple = _NO_INTERVAL

    def interval(self, statistic: str) -> tuple:
        """The (low, high) bootstrap interval of `statistic` (one of STATISTICS)."""
        if statistic not in STATISTICS:
            raise KeyError(f"no statistic {statistic!r}; choose from {STATISTICS}.")
        return tuple(getattr(self, f"{statistic}_interval"))

    @property
    def coverage_measured(self) -> bool:
        """False for a bank monitor whose coverage is 1 by construction."""
        return not self.in_bank or not self.coverage >= 1.0 - _LOST_SHARE_TOL


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "n/a" if x is None or not np.isfinite(x) else format(float(x), spec)


def _fmt_interval(iv: tuple) -> str:
    lo, hi = iv
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    return f"[{lo:.3f}, {hi:.3f}]"


@dataclass
class CoverageReport:
    """Label-free portability of monitors moved from model A to model B.

    rows : one MonitorCoverage per monitor (coverage, held-out statistics, verdict).
    target : "quotient", "full" or "pca": what B's hidden states were aligned to.
    rank : r, the dimension of A's visible quotient.
    quotient_r2 : held-out R^2 of B -> z_A (the diagnostic that predicts transfer), averaged
        over whitened coordinates so that it does not depend on the basis of z (see
        `whitened_r2`).
    full_state_r2 : the same for B -> h_A (None if not computed); it can be low, even
        negative, when every monitor transfers, because directions no monitor reads need not
        be alignable (the report then says so in a note).
    alpha : the ridge penalty of the map that produced the monitors (chosen by CV; the
        refitted map when n_refit > 0), heldout_alpha : that of the split fit the held-out
        statistics come from.
    n_train, n_heldout : the split; n_refit : pairs the final map was refitted on (0: no refit).
    min_coverage, min_decision_auroc, min_rank_correlation, min_fidelity : the verdict's
        thresholds (None: not used).
    confidence, n_bootstrap : of the intervals.
    metric : geometry of B's side of the map; quotient_metric : "data" or "euclidean".
    """

    rows: list
    target: str
    rank: int
    quotient_r2: float
    full_state_r2: Optional[float]
    alpha: float
    n_train: int
    n_heldout: int
    min_coverage: float
    min_fidelity: Optional[float]
    metric: str = "euclidean"
    notes: list = field(default_factory=list)
    min_decision_auroc: Optional[float] = DEFAULT_MIN_DECISION_AUROC
    min_rank_correlation: Optional[float] = None
    confidence: float = 0.95
    n_bootstrap: int = 0
    n_refit: int = 0
    heldout_alpha: float = _NAN
    quotient_metric: str = "data"

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rows]

    @property
    def portable(self) -> list[str]:
        """Names of the monitors judged portable."""
        return [r.name for r in self.rows if r.portable]

    @property
    def not_portable(self) -> list[str]:
        return [r.name for r in self.rows if not r.portable]

    def __getitem__(self, name: str) -> MonitorCoverage:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no monitor named {name!r} in the report; it has {self.names}.")

    @property
    def rule(self) -> str:
        """The verdict rule in words."""
        parts = [f"coverage >= {self.min_coverage:g}"]
        for key, label in (("min_decision_auroc", "decision AUROC"),
                           ("min_rank_correlation", "rank correlation"),
                           ("min_fidelity", "score R^2")):  # fmt: skip
            value = getattr(self, key)
            if value is not None and np.isfinite(value):
                parts.append(f"{label} >= {value:g}")
        return " and ".join(parts)

    def best(self, statistic: str = "decision_auroc") -> Optional[MonitorCoverage]:
        """The row with the highest `statistic` (None when no row has a finite one)."""
        rows = [r for r in self.rows if np.isfinite(getattr(r, statistic))]
        return max(rows, key=lambda r: getattr(r, statistic)) if rows else None

    def to_dict(self) -> dict:
        """JSON-serialisable form (NaN becomes None)."""
        out = asdict(self)
        rows = []
        for r in self.rows:
            row = {}
            for k, v in asdict(r).items():
                if k.endswith("_interval"):
                    v = [json_number(x) for x in v]
                elif isinstance(v, float):
                    v = json_number(v)
                row[k] = v
            rows.append(row)
        out["rows"] = rows
        for key in ("quotient_r2", "full_state_r2", "alpha", "min_coverage", "min_fidelity",
                    "min_decision_auroc", "min_rank_correlation", "confidence",
                    "heldout_alpha"):  # fmt: skip
            out[key] = json_number(out[key])
        return out

    @classmethod
    def from_dict(
        cls, data: dict, *, where: str = "CoverageReport.from_dict", field: str = "report"
    ) -> CoverageReport:
        """The report back from `to_dict` (None becomes NaN again).

        `data` is held to the schema of `to_dict` (known keys only, typed values); anything
        else raises `BundleError` (a ValueError) naming `where` and the field. Reports written
        before the decision statistics existed (no "min_decision_auroc" nor any other newer
        key) load with those statistics NaN.
        """
        if isinstance(data, dict) and not any(k in data for k in _NEW_REPORT_KEYS):
            return cls._from_legacy(data, where, field)
        data = json_fields(data, where, field, _REPORT_SCHEMA, optional=("metric", "notes"))
        rows = []
        for j, row in enumerate(json_list(data.pop("rows"), where, f"{field}.rows")):
            row = json_fields(row, where, f"{field}.rows[{j}]", _ROW_SCHEMA, optional=("reason",))
            rows.append(MonitorCoverage(**{k: _nan_for_none(k, v) for k, v in row.items()}))
        for key in ("quotient_r2", "alpha", "min_coverage", "confidence", "heldout_alpha"):
            if data.get(key) is None:
                data[key] = _NAN
        return cls(rows=rows, **data)

    @classmethod
    def _from_legacy(cls, data: dict, where: str, field: str) -> CoverageReport:
        data = json_fields(data, where, field, _LEGACY_REPORT_SCHEMA, optional=("metric", "notes"))
        rows = []
        for j, row in enumerate(json_list(data.pop("rows"), where, f"{field}.rows")):
            row = json_fields(row, where, f"{field}.rows[{j}]", _LEGACY_ROW_SCHEMA,
                              optional=("reason",))  # fmt: skip
            rows.append(MonitorCoverage(**{k: _nan_for_none(k, v) for k, v in row.items()}))
        for key in ("quotient_r2", "alpha", "min_coverage", "min_fidelity"):
            if data.get(key) is None:
                data[key] = _NAN
        return cls(rows=rows, **data, min_decision_auroc=None, quotient_metric="euclidean")

    def to_frame(self):
        """The per-monitor rows as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows]).set_index("name")

    def __str__(self) -> str:
        if self.full_state_r2 is None:
            full = "n/a"
        elif self.full_state_r2 < 0:
            full = f"{self.full_state_r2:.3f} (not comparable, see note)"
        else:
            full = f"{self.full_state_r2:.3f}"
        alpha = "n/a" if not np.isfinite(self.alpha) else f"{self.alpha:.3g}"
        lines = [
            f"Coverage report: B aligned to A's {self.target} "
            f"(quotient rank r = {self.rank}, quotient metric = {self.quotient_metric}, "
            f"metric = {self.metric}, alpha = {alpha})",
        ]
        if self.n_refit:
            lines.append(
                f"  held-out pairs: {self.n_heldout} (statistics of the map fitted on "
                f"{self.n_train}, alpha = {_fmt(self.heldout_alpha, '.3g')}; the monitors use "
                f"the map refitted on all {self.n_refit})"
            )
        else:
            lines.append(f"  held-out pairs: {self.n_heldout} (map fitted on {self.n_train})")
        lines.append(
            f"  held-out R^2 (whitened)   quotient z_A: {_fmt(self.quotient_r2)}   "
            f"full state h_A: {full}"
        )
        lines.append(f"  portable = {self.rule}")
        if self.n_bootstrap:
            lines.append(
                f"  [intervals: {100 * self.confidence:g}% percentile bootstrap over the "
                f"held-out pairs, {self.n_bootstrap} resamples]"
            )
        lines.append("")
        width = max([len("monitor")] + [len(r.name) for r in self.rows])
        head = (f"  {'monitor':<{width}}  {'kind':<9} {'coverage':>8}  {'threshold':>9}  "
                f"{'decision AUROC':<22} {'agree':>6} {'rank corr':>9} {'score R2':>8}  "
                "verdict")  # fmt: skip
        lines += [head, "  " + "-" * (len(head) - 2)]
        for r in self.rows:
            verdict = "portable" if r.portable else f"NOT portable ({r.reason})"
            cov = _fmt(r.coverage) if r.coverage_measured else "in bank"
            dauc = f"{_fmt(r.decision_auroc)} {_fmt_interval(r.decision_auroc_interval)}"
            lines.append(
                f"  {r.name:<{width}}  {r.kind:<9} {cov:>8}  {_fmt(r.threshold, '.3g'):>9}  "
                f"{dauc:<22} {_fmt(r.decision_agreement):>6} {_fmt(r.rank_correlation):>9} "
                f"{_fmt(r.fidelity_r2):>8}  {verdict}"
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__


def _nan_for_none(key: str, value: Any) -> Any:
    if key.endswith("_interval"):
        return tuple(_NAN if v is None else v for v in value)
    return _NAN if value is None and key != "reason" else value


def _json_interval(value: Any, where: str, field: str) -> list:
    """[low, high]: two numbers or nulls."""
    items = json_list(value, where, field, item=partial(json_float, nullable=True))
    if len(items) != 2:
        raise BundleError(f"{where}: field {field!r} must hold 2 numbers (low, high), "
                          f"got {len(items)}.")  # fmt: skip
    return items


# The schema of CoverageReport.to_dict (numbers may be None: NaN in the report).
_maybe_float = partial(json_float, nullable=True)
_LEGACY_ROW_SCHEMA = {
    "name": json_str, "kind": json_str, "in_bank": json_bool, "coverage": _maybe_float,
    "fidelity_r2": _maybe_float, "rank_correlation": _maybe_float, "portable": json_bool,
    "reason": json_str,
}  # fmt: skip
_ROW_SCHEMA = {
    **_LEGACY_ROW_SCHEMA, "decision_auroc": _maybe_float, "decision_agreement": _maybe_float,
    "threshold": _maybe_float, **{f"{k}_interval": _json_interval for k in STATISTICS},
}  # fmt: skip
_LEGACY_REPORT_SCHEMA = {
    "rows": json_list, "target": json_str, "rank": partial(json_int, lo=0),
    "quotient_r2": _maybe_float, "full_state_r2": _maybe_float, "alpha": _maybe_float,
    "n_train": partial(json_int, lo=0), "n_heldout": partial(json_int, lo=0),
    "min_coverage": _maybe_float, "min_fidelity": _maybe_float, "metric": json_str,
    "notes": partial(json_list, item=json_str),
}  # fmt: skip
_REPORT_SCHEMA = {
    **_LEGACY_REPORT_SCHEMA, "min_decision_auroc": _maybe_float,
    "min_rank_correlation": _maybe_float, "confidence": _maybe_float,
    "n_bootstrap": partial(json_int, lo=0), "n_refit": partial(json_int, lo=0),
    "heldout_alpha": _maybe_float,
    "quotient_metric": partial(json_str, choices=_QUOTIENT_METRICS),
}  # fmt: skip
_NEW_REPORT_KEYS = tuple(k for k in _REPORT_SCHEMA if k not in _LEGACY_REPORT_SCHEMA)
# ---------------------------------------------------------------------------------- aligner
_FRACTION = [Interval("real", 0.0, 1.0)]
_HOLDOUT = [
    Interval("real", 0.0, 1.0, closed="neither", desc="a fraction in (0, 1)"),
    Interval("int", 2, None, desc="a number of held-out pairs >= 2"),
]


def _split(n: int, holdout: Any, random_state: Any) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) row indices of n pairs (holdout: a fraction or a count)."""
    check_param("holdout", holdout, _HOLDOUT)
    check_param("random_state", random_state, RANDOM_STATE)
    if isinstance(holdout, numbers.Integral):
        n_hold = int(holdout)
    else:
        n_hold = int(round(float(holdout) * n))
    if n_hold < 2 or n - n_hold < 3:
        raise ParameterError(
            f"with {n} paired rows, holdout={holdout!r} leaves {n_hold} held-out and "
            f"{n - n_hold} training pairs; need at least 2 held-out pairs (to measure fidelity) "
            "and 3 training pairs. Pass more pairs or change holdout."
        )
    perm = np.random.default_rng(random_state).permutation(n)
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def _column_moments(X: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and variance (/n) of X in one blocked pass, about the first row (so
    large offsets do not cancel), as numpy."""
    s1 = s2 = shift = None
    for _, block in float64_row_blocks(X):
        if shift is None:
            shift = block[0].clone() if is_torch_tensor(block) else block[0].copy()
            s1, s2 = 0.0 * shift, 0.0 * shift
        u = block - shift
        s1 = s1 + u.sum(0)
        s2 = s2 + (u * u).sum(0)
    n = X.shape[0]
    shift, s1, s2 = (np.asarray(to_numpy(a), dtype=np.float64) for a in (shift, s1, s2))
    return shift + s1 / n, np.maximum(s2 / n - (s1 / n) ** 2, 0.0)


def _take(X: Any, idx: np.ndarray) -> Any:
    """Rows idx of X (numpy or a tensor; a tensor's rows are gathered on its device)."""
    if is_torch_tensor(X):
        import torch

        return X[torch.as_tensor(idx, device=X.device)]
    return np.asarray(X[idx])


def _alpha_grid(H: Any, metric: str, readout: Any, moments: Any = None) -> np.ndarray:
    """logspace(-10, 3, 27) times the mean eigenvalue of the (metric-transformed) centred Gram.

    Wider at the bottom than the probes' default grid: maps between (nearly) equivalent models
    are nearly noiseless, and CV must be able to pick an almost unpenalised map. `moments`:
    H's column (mean, variance) when already known."""
    n, d = H.shape
    mean, var = _column_moments(H) if moments is None else moments
    if metric == "euclidean":
        trace = float(var.sum())
    elif metric == "standardize":
        trace = float(np.count_nonzero(var > 1e-12 * max(float(var.max()), 1e-300)))
    elif metric == "whiten":
        trace = float(d)
    else:  # tr(W S W^T) = ||(H - mu) W^T||^2 / n
        W = np.asarray(to_numpy(readout), dtype=np.float64)
        trace = 0.0
        for _, block in float64_row_blocks(H):
            if is_torch_tensor(block):
                Wt = block.new_tensor(W)
                trace += float((((block - block.new_tensor(mean)) @ Wt.T) ** 2).sum())
            else:
                trace += float(np.sum(((block - mean) @ W.T) ** 2))
        trace /= n
    scale = n * trace / max(d, 1)
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return np.logspace(-10, 3, 27) * scale


class QuotientAligner(BaseEstimator):
    """Move a bank of monitors from model A to model B without labels.

    Follows scikit-learn's parameter conventions (get_params / set_params / clone), but
    `fit` takes the bank and both models' paired hidden states: fit(bank, H_A, H_B).

    Parameters
    ----------
    target : what B's hidden states are mapped to.
        "quotient" (default): A's visible quotient coordinates z_A (r outputs).
        "full": all of h_A (the full-state baseline; d_A outputs).
        "pca": A's top-`pca_rank` principal coordinates (the PCA-subspace baseline).
    alphas : ridge penalties searched for the map (default: a grid relative to B's scale,
        1e-10 .. 1e3 times the mean eigenvalue). One alpha is shared by all outputs.
    cv : "gcv" (default), "loo" or K: how alpha is chosen (see LinearProbe).
    alpha_per_target : choose alpha per output coordinate instead of one for the whole map
        (default False). The full-state baseline is strongest with True, because one shared
        alpha is then dominated by the d_A - r coordinates no monitor reads.
    metric, readout : geometry of B's side for the ridge penalty (see LinearProbe):
        "euclidean", "standardize", "whiten" or "readout" (with readout=W_B).
    quotient_metric : geometry of A's quotient. "data" (default): built in the metric of A's
        training pairs (covectors scaled by their covariance; z is whitened there), so units
        the data never moves cannot dominate it. "euclidean": by coefficient norms (the
        data-free quotient). Either way the aligner warns when a monitor of the bank puts
        more than 1e-6 of its score variance on A outside the kept rank.
    rtol, rank : the quotient's cut-off (see Quotient).
    pca_rank : dimension of the PCA baseline (default: the quotient's rank).
    holdout : fraction (or number) of the pairs kept out of the map to measure the verdict
        statistics.
    refit : after the held-out estimate, refit the map on all pairs (default True); the
        report keeps the held-out figures of the split fit.
    random_state : seed of the holdout split and of the bootstrap.
    min_coverage : coverage threshold of the verdict (default 0.9).
    min_decision_auroc : threshold on the held-out decision AUROC (default
        DEFAULT_MIN_DECISION_AUROC, from the calibration study in docs/transfer_verdicts.md).
    min_rank_correlation, min_fidelity : optional thresholds on the held-out rank correlation
        and score R^2 (default None: reported, not part of the verdict).
    n_bootstrap, confidence : percentile-bootstrap intervals of the statistics (default 200
        resamples, 95%; n_bootstrap=0 skips them).
    unportable : what happens to monitors judged not portable: "mark" (default: kept, with
        ``info["portable"] = False`` and a warning), "drop" (left out of `bank_`, with a
        warning; EmptyBankError when that would leave nothing) or "raise" (NotPortableError).
    full_state_diagnostic : also fit B -> h_A to report the full-state R^2 (default True).
    backend : backend of the ridge solves.

    Attributes (after `fit`)
    ------------------------
    quotient_ : the Quotient of the source bank.
    map_ : the fitted LinearProbe from h_B to the target coordinates that the monitors use
        (refitted on all pairs when refit=True).
    split_map_ : the same map fitted on the training pairs only (the held-out statistics).
    bank_ : ProbeBank of the transferred monitors, reading h_B; ``bank_.report`` is report_.
    report_ : the CoverageReport.
    train_index_, heldout_index_ : the split of the pairs.
    zmap_, split_zmap_ : the maps h_B -> z_A (final and split); full_map_ : h_B -> h_A (the
        final one for target="full", else the diagnostic fitted on the training pairs; None
        when full_state_diagnostic=False and target != "full").
    pca_basis_ : (d_A, r) A's top principal directions for target="pca", else None.
    heldout_scores_ : (source, transferred) scores (n_heldout, m) on the held-out pairs from
        the split fit, in report order (bank monitors, then extra monitors).
    moved_ : dict name -> transferred PolynomialMonitor (final map), before the verdict.
    """

    def __init__(
        self,
        target: str = "quotient",
        *,
        alphas: Any = None,
        cv: Union[str, int] = "gcv",
        alpha_per_target: bool = False,
        metric: str = "euclidean",
        readout: Any = None,
        quotient_metric: str = "data",
        rtol: float = 1e-6,
        rank: Optional[int] = None,
        pca_rank: Optional[int] = None,
        holdout: Union[float, int] = 0.2,
        refit: bool = True,
        random_state: Any = 0,
        min_coverage: float = 0.9,
        min_decision_auroc: Optional[float] = DEFAULT_MIN_DECISION_AUROC,
        min_rank_correlation: Optional[float] = None,
        min_fidelity: Optional[float] = None,
        n_bootstrap: int = 200,
        confidence: float = 0.95,
        unportable: str = "mark",
        full_state_diagnostic: bool = True,
        backend: str = "auto",
    ) -> None:
        self.target = target
        self.alphas = alphas
        self.cv = cv
        self.alpha_per_target = alpha_per_target
        self.metric = metric
        self.readout = readout
        self.quotient_metric = quotient_metric
        self.rtol = rtol
        self.rank = rank
        self.pca_rank = pca_rank
        self.holdout = holdout
        self.refit = refit
        self.random_state = random_state
        self.min_coverage = min_coverage
        self.min_decision_auroc = min_decision_auroc
        self.min_rank_correlation = min_rank_correlation
        self.min_fidelity = min_fidelity
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.unportable = unportable
        self.full_state_diagnostic = full_state_diagnostic
        self.backend = backend

    # ------------------------------------------------------------------ checks
    def _param_constraints(self) -> dict:
        """name -> constraints of every parameter (see `shallowprobes._params`)."""
        return {
            "target": [Options(TARGETS)],
            "alphas": ALPHAS,
            "cv": CV,
            "alpha_per_target": BOOL,
            "metric": [Options(METRICS)],
            "readout": [None, ARRAY_LIKE],
            "quotient_metric": [Options(_QUOTIENT_METRICS)],
            "rtol": [Interval("real", 0.0, 1.0, closed="left")],
            "rank": [Interval("int", 1, None), None],
            "pca_rank": [Interval("int", 1, None), None],
            "holdout": _HOLDOUT,
            "refit": BOOL,
            "random_state": RANDOM_STATE,
            "min_coverage": _FRACTION,
            "min_decision_auroc": [*_FRACTION, None],
            "min_rank_correlation": [Interval("real", -1.0, 1.0), None],
            "min_fidelity": [*_FRACTION, None],
            "n_bootstrap": [Interval("int", 0, None)],
            "confidence": [Interval("real", 0.0, 1.0, closed="neither")],
            "unportable": [Options(_UNPORTABLE)],
            "full_state_diagnostic": BOOL,
            "backend": BACKEND,
        }

    def _check_params(self) -> None:
        """Validate every parameter (ParameterError naming it) before any work."""
        constraints = self._param_constraints()
        validate_params(params_of(self, constraints), constraints, owner="QuotientAligner")
        if self.metric == "readout" and self.readout is None:
            raise ParameterError('metric="readout" needs readout=W_B, model B\'s readout matrix.')
        if self.readout is not None and self.metric != "readout":
            raise ParameterError(
                f'readout= is used by metric="readout" only (metric={self.metric!r}).'
            )

    def _map(self, H: Any, Y: Any, alphas: Any) -> LinearProbe:
        probe = LinearProbe(
            alphas=alphas, cv=self.cv, alpha_per_target=bool(self.alpha_per_target),
            metric=self.metric,
            readout=self.readout, backend=self.backend,
        )  # fmt: skip
        # The aligner's grid reaches 1e-10 x the data scale on purpose: (near-)equivalent
        # models legitimately choose its bottom edge, and the report states the alpha, so
        # the probes' grid-edge warning would only be noise here.
        from .linear import GridEdgeWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GridEdgeWarning)
            return probe.fit(H, Y)

    # ------------------------------------------------------------------ fitting
    @interruptible
    def fit(
        self,
        bank: ProbeBank,
        H_A: Any,
        H_B: Any,
        *,
        extra_monitors: Optional[ProbeBank] = None,
    ) -> QuotientAligner:
        """Fit the map on paired hidden states and transfer the bank's monitors.

        bank : ProbeBank on model A (defines the quotient and the monitors to move).
        H_A, H_B : (n, d_A) and (n, d_B) hidden states of A and B on the same n inputs.
        extra_monitors : optional ProbeBank of other monitors on A, *not* used to build the
            quotient: each is moved through its best z-only approximation and gets a coverage
            that says how much of it the bank's quotient can carry.
        """
        where = "the aligner's report_ (also bank_.report)"
        return self._fit(bank, H_A, H_B, extra_monitors, where)

    def _fit(self, bank, H_A, H_B, extra_monitors, where_report: str) -> QuotientAligner:
        self._check_params()
        if not isinstance(bank, ProbeBank) or len(bank) == 0:
            raise TypeError("bank must be a non-empty ProbeBank of monitors on model A.")
        d_A = bank.n_features_in_
        XA = check_X(H_A, name="H_A", n_features=d_A, min_samples=5, owner="the bank",
                     keep_tensor=is_torch_tensor(H_A))  # fmt: skip
        XB = check_X(H_B, name="H_B", min_samples=5, owner="the aligner",
                     keep_tensor=is_torch_tensor(H_B))  # fmt: skip
        XA, XB = _same_place(XA, XB)
        if XA.shape[0] != XB.shape[0]:
            raise ValueError(
                f"H_A has {XA.shape[0]} rows and H_B {XB.shape[0]}; they must be the hidden "
                "states of the two models on the same inputs, row by row."
            )
        if extra_monitors is not None:
            if not isinstance(extra_monitors, ProbeBank):
                raise TypeError("extra_monitors must be a ProbeBank (or None).")
            if len(extra_monitors) and extra_monitors.n_features_in_ != d_A:
                raise ValueError("extra_monitors must read model A's hidden states (width d_A).")
            clash = set(extra_monitors) & set(bank)
            if clash:
                raise ValueError(f"extra_monitors repeats names of the bank: {sorted(clash)}.")
        # the parameters that need the widths, before any work
        if self.metric == "readout":
            check_readout(self.readout, XB.shape[1])
        Quotient(self.rtol, rank=self.rank)._check_params(d_A)
        n = XA.shape[0]
        train, hold = _split(n, self.holdout, self.random_state)
        A_tr, A_ho = _take(XA, train), _take(XA, hold)
        B_tr, B_ho = _take(XB, train), _take(XB, hold)
        B_moments = _column_moments(B_tr)
        mu_B = B_moments[0]
        # one alpha grid for every map of this fit
        alphas = self.alphas
        if alphas is None:
            alphas = _alpha_grid(B_tr, self.metric, self.readout, B_moments)
        # CUDA tensors: the statistics, solves and scores stay on their device; only d x d
        # moments, coefficients and n_heldout x m score tables come to the host
        device = XA.device if is_torch_tensor(XA) and XA.device.type != "cpu" else None

        moments = reference_moments(A_tr, d_A, self.backend)
        quotient = Quotient(self.rtol, rank=self.rank, centre=moments[0], device=device)
        with warnings.catch_warnings():
            # the aligner words its own warning about dropped directions, in A's data metric
            warnings.simplefilter("ignore")
            quotient.fit(bank, _moments=moments if self.quotient_metric == "data" else None)
        extra = extra_monitors if extra_monitors is not None else ProbeBank()
        geometry = quotient._geometry(moments)  # A's training pairs: shared by every monitor
        z_monitors = {name: m for name, m in quotient.monitors_.items()}
        for name, m in extra.items():
            z_monitors[name] = quotient.project(m, _geometry=geometry)
        # label-free coverage, in the geometry of A's training pairs
        coverage = {name: quotient._coverage_one(m, geometry)
                    for name, m in [*bank.items(), *extra.items()]}  # fmt: skip
        lost = {name: 1.0 - coverage[name] for name in bank
                if 1.0 - coverage[name] > _LOST_SHARE_TOL}  # fmt: skip
        if lost:
            worst = sorted(lost, key=lost.get, reverse=True)
            listed = ", ".join(f"{name!r} {100 * lost[name]:.3g}%" for name in worst[:5])
            warnings.warn(
                f"{len(lost)} monitor(s) of the bank are not reproduced exactly from the "
                f"{quotient.rank_} kept quotient coordinates: part of their weight lies "
                f"outside the kept rank (share of the score variance on A's pairs lost: "
                f"{listed}{', ...' if len(worst) > 5 else ''}). Lower rtol or raise rank to "
                "keep those directions"
                + (", or use quotient_metric='data'" if self.quotient_metric != "data" else "")
                + ".",
                UserWarning,
                stacklevel=user_stacklevel(),
            )

        # the quotient map: used for the monitors (target="quotient") and the diagnostic
        Z_tr, Z_ho = quotient.transform(A_tr), quotient.transform(A_ho)
        split_zmap = self._map(B_tr, Z_tr, alphas)
        Z_cov = quotient.visible_basis_.T @ moments[1] @ quotient.visible_basis_
        quotient_r2 = whitened_r2(Z_ho, split_zmap.predict(B_ho).reshape(Z_ho.shape), Z_cov)
        split_full = None
        if self.full_state_diagnostic or self.target == "full":
            split_full = self._map(B_tr, A_tr, alphas)
        full_r2 = (
            None if split_full is None
            else whitened_r2(A_ho, split_full.predict(B_ho), moments[1])
        )  # fmt: skip

        sources = {**dict(bank.items()), **dict(extra.items())}
        P = None
        if self.target == "pca":
            r_pca = self.pca_rank if self.pca_rank is not None else quotient.rank_
            r_pca = min(int(r_pca), d_A)
            lam, vecs = np.linalg.eigh(moments[1])
            P = vecs[:, np.argsort(lam)[::-1][:r_pca]]  # (d_A, r) top principal directions

        def targets_of(XA_rows):
            if self.target == "quotient":
                return quotient.transform(XA_rows)
            if self.target == "full":
                return XA_rows
            return project_rows(XA_rows, moments[0], P)

        def moved_by(the_map, centre_B):
            if self.target == "quotient":
                G, z0 = _affine_of(the_map, centre_B, quotient.rank_)
                return {name: zm.compose_affine(G, z0, centre_B)
                        for name, zm in z_monitors.items()}  # fmt: skip
            if self.target == "full":
                G, a0 = _affine_of(the_map, centre_B, d_A)
            else:
                G_p, p0 = _affine_of(the_map, centre_B, P.shape[1])
                G, a0 = P @ G_p, moments[0] + P @ p0
            # the baselines apply every monitor, as it is, to the reconstructed h_A
            return {name: m.compose_affine(G, a0, centre_B) for name, m in sources.items()}

        if self.target == "quotient":
            split_map = split_zmap
        elif self.target == "full":
            split_map = split_full
        else:
            split_map = self._map(B_tr, targets_of(A_tr), alphas)
        split_moved = moved_by(split_map, mu_B)
        src_scores = np.asarray(to_numpy(_evaluate(A_ho, list(sources.values()))))
        dst_scores = np.asarray(to_numpy(_evaluate(B_ho, [split_moved[k] for k in sources])))
        thresholds = np.array([_monitor_threshold(m) for m in sources.values()])
        stats = _agreement(src_scores, dst_scores, thresholds, int(self.n_bootstrap),
                           float(self.confidence), _bootstrap_rng(self.random_state))  # fmt: skip

        # after the held-out estimate: the map the monitors use, fitted on every pair
        notes = []
        if self.refit:
            mu_all = _column_moments(XB)[0]
            final_map = self._map(XB, targets_of(XA), alphas)
            moved = moved_by(final_map, mu_all)
            final_zmap = final_map if self.target == "quotient" else split_zmap
            final_full = final_map if self.target == "full" else split_full
        else:
            final_map, moved = split_map, split_moved
            final_zmap, final_full = split_zmap, split_full

        rows = []
        for j, name in enumerate(sources):
            cov = float(coverage[name])
            st = {key: float(stats[key][j]) for key in STATISTICS}
            reasons = []
            if not cov >= self.min_coverage:
                reasons.append(f"coverage {cov:.2f} < {self.min_coverage:g}")
            for key, limit in (("decision_auroc", self.min_decision_auroc),
                               ("rank_correlation", self.min_rank_correlation),
                               ("fidelity_r2", self.min_fidelity)):  # fmt: skip
                if limit is not None and not st[key] >= limit:
                    value = "undefined" if not np.isfinite(st[key]) else f"{st[key]:.3f}"
                    reasons.append(f"{_STAT_LABELS[key]} {value} < {limit:g}")
            if stats["moved"][j]:
                notes.append(
                    f"{name!r} was judged at the median of its held-out source scores "
                    f"({stats['threshold'][j]:.4g}): fewer than 2 of them fall on one side of "
                    f"its threshold {thresholds[j]:g}."
                )
            rows.append(MonitorCoverage(
                name, sources[name].kind, name in bank, cov, st["fidelity_r2"],
                st["rank_correlation"], not reasons, "; ".join(reasons),
                decision_auroc=st["decision_auroc"],
                decision_agreement=st["decision_agreement"],
                threshold=float(stats["threshold"][j]),
                **{f"{k}_interval": tuple(float(x) for x in stats[f"{k}_interval"][j])
                   for k in STATISTICS},
            ))  # fmt: skip
        if self.refit:
            notes.insert(0, f"the monitors use the map refitted on all {n} pairs (alpha = "
                            f"{_median_alpha(final_map):.3g}); the statistics above are those "
                            f"of the map fitted on the {train.size} training pairs.")  # fmt: skip
        if full_r2 is not None and full_r2 < 0:
            notes.append(
                f"the full-state R^2 ({full_r2:.3f}) is below 0: the map predicts some "
                "directions of h_A worse than their mean. It averages the R^2 of all "
                f"{d_A} whitened directions of h_A with equal weight, however little variance "
                "they carry, under one ridge alpha shared by all outputs (chosen mostly for "
                "the large ones); directions that no monitor reads, and that B need not "
                "encode, dominate it. It is not comparable with the quotient R^2 and says "
                "nothing about the monitors (their statistics do)."
            )
        if np.isfinite(quotient_r2) and quotient_r2 < 0.2:
            notes.append(
                f"B predicts little of A's visible coordinates (quotient R^2 = "
                f"{quotient_r2:.3f}): check that row i of H_A and of H_B is the same input, "
                "or B does not encode what the monitors read."
            )
        if self.alpha_per_target:
            notes.append("alpha chosen per output coordinate (the median is shown)")
        report = CoverageReport(
            rows=rows, target=self.target, rank=quotient.rank_, quotient_r2=quotient_r2,
            full_state_r2=full_r2, alpha=_median_alpha(final_map), n_train=train.size,
            n_heldout=hold.size, min_coverage=float(self.min_coverage),
            min_fidelity=_opt_float(self.min_fidelity), metric=self.metric, notes=notes,
            min_decision_auroc=_opt_float(self.min_decision_auroc),
            min_rank_correlation=_opt_float(self.min_rank_correlation),
            confidence=float(self.confidence), n_bootstrap=int(self.n_bootstrap),
            n_refit=n if self.refit else 0, heldout_alpha=_median_alpha(split_map),
            quotient_metric=self.quotient_metric,
        )  # fmt: skip
        bad = report.not_portable
        if bad and self.unportable == "raise":
            raise NotPortableError(
                f"{len(bad)} monitor(s) are not portable to model B: "
                + "; ".join(f"{k} ({report[k].reason})" for k in bad)
                + ". Pass unportable='mark' (the default) or 'drop' to transfer them "
                "flagged, or the others.\n" + str(report)
            )
        if bad and self.unportable == "drop" and len(bad) == len(rows):
            raise EmptyBankError(_empty_message(report))
        kept = ProbeBank(metadata={"transferred_from": dict(bank.metadata),
                                   "target": self.target})  # fmt: skip
        for row in rows:
            if row.portable or self.unportable == "mark":
                m = moved[row.name]
                info = {**m.info, "portable": bool(row.portable),
                        "coverage": json_number(row.coverage),
                        "decision_auroc": json_number(row.decision_auroc),
                        "fidelity_r2": json_number(row.fidelity_r2),
                        "threshold": json_number(row.threshold)}  # fmt: skip
                kept.add(row.name, PolynomialMonitor(m.linear, m.intercept, m.quadratic,
                                                     m.centre, m.kind, info))  # fmt: skip
        if bad:
            listed = ", ".join(f"{k} ({report[k].reason})" for k in bad[:5])
            listed += ", ..." if len(bad) > 5 else ""
            if self.unportable == "drop":
                report.notes.append(f"left out of the transferred bank: {', '.join(bad)}")
                message = (
                    f"{len(bad)} of {len(rows)} monitor(s) are not portable to model B and were "
                    f"left out of the transferred bank: {listed}. See {where_report} for "
                    "their statistics; unportable='mark' keeps them, flagged."
                )
            else:
                message = (
                    f"{len(bad)} of {len(rows)} monitor(s) are marked NOT portable to model B "
                    f"(kept, with info['portable'] = False): {listed}. See {where_report} "
                    "for their statistics."
                )
            warnings.warn(message, UserWarning, stacklevel=user_stacklevel())
        kept.report = report
        self.quotient_, self.map_, self.zmap_, self.full_map_ = (
            quotient, final_map, final_zmap, final_full
        )
        self.split_map_, self.split_zmap_ = split_map, split_zmap
        self.bank_, self.report_ = kept, report
        self.train_index_, self.heldout_index_ = train, hold
        self.moved_ = moved
        self.pca_basis_ = P  # (d_A, r) for target="pca", else None
        self.heldout_scores_ = (src_scores, dst_scores)  # (source, transferred), sources order
        return self

    def transform(self, H_B: Any) -> np.ndarray:
        """Predicted quotient coordinates z_A of B's hidden states (n, r), by the final map."""
        if not hasattr(self, "zmap_"):
            raise NotFittedError("This QuotientAligner is not fitted yet; call fit first.")
        Z = self.zmap_.predict(H_B)
        return Z.reshape(Z.shape[0], -1)


def _median_alpha(probe: LinearProbe) -> float:
    return float(np.median(np.atleast_1d(to_numpy(probe.alpha_))))


def _opt_float(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def _empty_message(report: CoverageReport) -> str:
    """Why a drop-everything transfer returns nothing, naming the best statistic seen."""
    best = report.best("decision_auroc")
    if best is None:
        seen = "no monitor has a defined decision AUROC on the held-out pairs"
    else:
        lo, hi = best.decision_auroc_interval
        iv = (f" (interval {lo:.3f} to {hi:.3f})" if np.isfinite(lo) and np.isfinite(hi)
              else "")  # fmt: skip
        seen = (
            f"the best was {best.name!r}: decision AUROC {best.decision_auroc:.3f}{iv}, rank "
            f"correlation {_fmt(best.rank_correlation)}, score R^2 {_fmt(best.fidelity_r2)}, "
            f"coverage {_fmt(best.coverage)} ({best.reason})"
        )
    return (
        f"no monitor is portable to model B, so unportable='drop' would return an empty bank; "
        f"{seen}. The rule is {report.rule}. Check the pairing of H_A and H_B (row i must be "
        "the same input in both), or pass unportable='mark' to get the monitors flagged."
    )
def _affine_of(probe: LinearProbe, centre: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(G (k, d), offset (k,)) with probe.predict(h) = G (h - centre) + offset."""
    G = np.asarray(to_numpy(probe.coef_), dtype=np.float64).reshape(k, -1)
    b = np.asarray(to_numpy(probe.intercept_), dtype=np.float64).reshape(k)
    return G, G @ centre + b


def _same_place(XA: Any, XB: Any) -> tuple[Any, Any]:
    """Both numpy, or both torch tensors on XA's device (else XB's): a numpy side is moved to
    the tensor's device, a tensor on another device is moved to XA's."""
    if not (is_torch_tensor(XA) or is_torch_tensor(XB)):
        return XA, XB
    import torch

    device = XA.device if is_torch_tensor(XA) else XB.device

    def place(X):
        if is_torch_tensor(X):
            return X if X.device == device else X.to(device)
        return torch.from_numpy(np.ascontiguousarray(X)).to(device)

    return place(XA), place(XB)


@interruptible
def transfer(
    bank: ProbeBank,
    H_A: Any,
    H_B: Any,
    *,
    extra_monitors: Optional[ProbeBank] = None,
    **params: Any,
) -> ProbeBank:
    """Move the monitors of `bank` (on model A) to model B, label-free.

    Fits a QuotientAligner(**params) on the paired hidden states and returns the transferred
    ProbeBank (reading B's hidden states); its ``.report`` is the CoverageReport. See
    QuotientAligner for the parameters (target, alphas, cv, metric, holdout, thresholds,
    unportable, ...). By default every monitor comes back, the ones judged not portable
    flagged (``info["portable"] = False``, with a warning); unportable="drop" leaves them out
    and raises EmptyBankError rather than return an empty bank.
    """
    aligner = QuotientAligner(**params)
    return aligner._fit(bank, H_A, H_B, extra_monitors, "the returned bank's .report").bank_


# ---------------------------------------------------------------------------------- baselines
def few_label_probe(
    H_B: Any,
    labels: Any,
    n_labels: Optional[int] = None,
    *,
    degree: int = 1,
    random_state: Any = 0,
    **params: Any,
):
    """The "train a target probe on B with a few labels" baseline.

    Fits a LinearProbeClassifier (degree=1) or QuadraticProbeClassifier (degree=2) with
    `params` on `n_labels` rows of H_B drawn at random (at least one of each class; all rows
    when n_labels is None) and returns the fitted probe (add it to a ProbeBank to compare).
    """
    from .linear import LinearProbeClassifier
    from .quadratic import QuadraticProbeClassifier

    owner = "few_label_probe"
    check_param("degree", degree, [Options((1, 2))], owner=owner)
    check_param("n_labels", n_labels, [Interval("int", 1, None), None], owner=owner)
    check_param("random_state", random_state, RANDOM_STATE, owner=owner)
    y = np.asarray(to_numpy(labels)).ravel()
    cls = LinearProbeClassifier if degree == 1 else QuadraticProbeClassifier
    if "cv" not in params:
        n_rows = y.size if n_labels is None else min(int(n_labels), y.size)
        params["cv"] = "loo" if n_rows < 200 else "gcv"
    probe = cls(**params)  # TypeError naming an unknown parameter
    probe._check_params()  # every probe parameter, before any work
    X = check_X(H_B, name="H_B", min_samples=2, owner="the few-label probe",
                keep_tensor=is_torch_tensor(H_B))  # fmt: skip
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"labels has {y.shape[0]} entries but H_B has {X.shape[0]} rows.")
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError("labels has a single class; a probe needs at least two.")
    rng = np.random.default_rng(random_state)
    if n_labels is None or n_labels >= y.size:
        rows = np.arange(y.size)
    else:
        if n_labels < classes.size:
            raise ParameterError(
                f"n_labels={n_labels} cannot cover the {classes.size} classes (one row of "
                f"each is needed); pass n_labels >= {classes.size}."
            )
        # one row of each class first, then the rest at random
        first = np.array([rng.choice(np.flatnonzero(y == c)) for c in classes])
        rest = rng.permutation(np.setdiff1d(np.arange(y.size), first))[: n_labels - first.size]
        rows = np.sort(np.concatenate([first, rest]))
    return probe.fit(_take(X, rows), y[rows])


@dataclass
class TransferComparison:
    """Held-out comparison of transfer methods (see compare_transfer)."""

    rows: list  # dicts: method, monitor, decision_auroc, fidelity_r2, rank_correlation,
    # auroc, source_auroc
    quotient_r2: float
    full_state_r2: Optional[float]
    rank: int

    def mean(self, method: str, key: str) -> float:
        vals = np.array([r[key] for r in self.rows if r["method"] == method], dtype=float)
        vals = vals[np.isfinite(vals)]
        return float(vals.mean()) if vals.size else float("nan")

    def __str__(self) -> str:
        methods = list(dict.fromkeys(r["method"] for r in self.rows))
        lines = [
            f"Transfer comparison (quotient rank r = {self.rank}; held-out R^2 quotient "
            f"{self.quotient_r2:.3f}, full state "
            f"{'n/a' if self.full_state_r2 is None else f'{self.full_state_r2:.3f}'})",
            f"  {'method':<28} {'decision AUROC':>14} {'score R2':>8} {'rank corr':>9} "
            f"{'AUROC':>7} {'source':>7}",
        ]
        for meth in methods:
            lines.append(
                f"  {meth:<28} {self.mean(meth, 'decision_auroc'):>14.3f} "
                f"{self.mean(meth, 'fidelity_r2'):>8.3f} "
                f"{self.mean(meth, 'rank_correlation'):>9.3f} {self.mean(meth, 'auroc'):>7.3f} "
                f"{self.mean(meth, 'source_auroc'):>7.3f}"
            )
        lines.append("  (means over monitors, on held-out pairs; decision AUROC: of the score for "
                     "the source monitor's decisions, label-free)")
        return "\n".join(lines)

    __repr__ = __str__


@interruptible
def compare_transfer(
    bank: ProbeBank,
    H_A: Any,
    H_B: Any,
    labels: Any = None,
    *,
    targets: tuple = TARGETS,
    n_labels: tuple = (),
    **params: Any,
) -> TransferComparison:
    """Run the transfer targets (and optionally few-label probes on B) on the same split.

    labels : optional (n, m) binary labels, one column per bank monitor (in bank order), used
        only to report AUROC on the held-out pairs and to train the few-label baselines on
        the training pairs. The transfers themselves never see labels.
    targets : which alignment targets to run; "full" runs twice, with one shared alpha and
        with an alpha per coordinate of h_A (the stronger full-state baseline).
    n_labels : sizes of the few-label baselines to add (e.g. (16, 64, 256)).
    """
    owner = "compare_transfer"
    if not isinstance(targets, (list, tuple)) or not targets:
        raise (ParameterError if isinstance(targets, (list, tuple)) else ParameterTypeError)(
            f"{owner}: targets must be a non-empty tuple of target names from {TARGETS}, got "
            f"{_show(targets)}."
        )
    bad = [t for t in targets if not isinstance(t, str) or t not in TARGETS]
    if bad:
        raise ParameterError(
            f"{owner}: targets has unknown target(s) {bad}; choose from {TARGETS}."
        )
    if not isinstance(n_labels, (list, tuple)):
        raise ParameterTypeError(
            f"{owner}: n_labels must be a tuple of label counts (integers >= 1), got "
            f"{_show(n_labels)}."
        )
    for k in n_labels:
        check_param("n_labels entries", k, [Interval("int", 1, None)], owner=owner)
    if n_labels and labels is None:
        raise ParameterError("n_labels needs labels= (one column of labels per monitor).")
    params = {**params, "unportable": "mark"}
    for target in targets:  # every aligner's parameters, before the first fit
        QuotientAligner(target, **params)._check_params()
    Y = None if labels is None else np.asarray(labels)
    if Y is not None:
        Y = Y.reshape(Y.shape[0], -1)
        if Y.shape[1] != len(bank):
            raise ValueError(f"labels needs one column per monitor ({len(bank)}), got {Y.shape}.")
    rows, first = [], None
    runs = []
    for target in targets:
        runs.append((f"transfer: {target}", target, {}))
        if target == "full":
            runs.append(("transfer: full, alpha/coord", target, {"alpha_per_target": True}))
    for label, target, extra_params in runs:
        with warnings.catch_warnings():  # the rows below show every verdict
            warnings.filterwarnings("ignore", message=".*NOT portable")
            al = QuotientAligner(target, **{**params, **extra_params}).fit(bank, H_A, H_B)
        first = first or al
        src, dst = (scores[:, : len(bank)] for scores in al.heldout_scores_)
        for j, name in enumerate(bank.names):
            row = al.report_[name]
            rows.append({
                "method": label, "monitor": name, "decision_auroc": row.decision_auroc,
                "fidelity_r2": row.fidelity_r2, "rank_correlation": row.rank_correlation,
                "auroc": np.nan if Y is None else roc_auc(dst[:, j], Y[al.heldout_index_, j]),
                "source_auroc": np.nan if Y is None else roc_auc(src[:, j],
                                                                 Y[al.heldout_index_, j]),
            })  # fmt: skip
    if Y is not None and n_labels:
        XB = check_X(H_B, name="H_B", keep_tensor=is_torch_tensor(H_B))
        train, hold = first.train_index_, first.heldout_index_
        src = first.heldout_scores_[0][:, : len(bank)]
        B_tr, B_ho = _take(XB, train), _take(XB, hold)
        for k in n_labels:
            for j, name in enumerate(bank.names):
                probe = few_label_probe(B_tr, Y[train, j], k, random_state=j)
                score = np.asarray(to_numpy(probe.decision_function(B_ho)))
                theta = first.report_[name].threshold
                rows.append({
                    "method": f"few labels on B: {k}", "monitor": name,
                    # label-free agreement with the source's decisions, as for the transfers
                    "decision_auroc": roc_auc(score, src[:, j] > theta),
                    # a probe trained on labels has its own scale: R^2 against the source
                    # score means nothing, the rank correlation does
                    "fidelity_r2": np.nan,
                    "rank_correlation": rank_correlation(src[:, j], score),
                    "auroc": roc_auc(score, Y[hold, j]),
                    "source_auroc": roc_auc(src[:, j], Y[hold, j]),
                })  # fmt: skip
    return TransferComparison(rows, first.report_.quotient_r2, first.report_.full_state_r2,
                              first.report_.rank)  # fmt: skip

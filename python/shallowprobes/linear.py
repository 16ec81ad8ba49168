"""Linear (degree-1) ridge probes with exact alpha selection: LinearProbe, LinearProbeClassifier.

Both are solved from `SufficientStats` with one symmetric eigendecomposition of the centred
Gram (plus one per fold for K-fold CV), which yields the coefficients for every alpha and every
target at once, and the selection criterion for every alpha without refitting:

* ``cv="gcv"``: generalised cross-validation, n * RSS / (n - dof)^2, from statistics alone;
* ``cv="loo"``: exact leave-one-out via leverages (needs the rows, so only with `fit`);
* ``cv=K``: exact K-fold, training statistics = total - fold, held-out error from the fold's
  statistics (one pass over the data for all folds, alphas and targets).
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from ._backends import copy_of, get_backend, ops_of, to_numpy, uses_torch
from ._base import (
    BaseEstimator,
    ClassifierMixin,
    DataConversionWarning,
    NotFittedError,
    RegressorMixin,
    streaming_method,
)
from ._numpy_backend import residual_outside_span
from ._validation import check_fold_ids, check_targets, check_X, is_torch_tensor
from .errors import GridEdgeWarning  # noqa: F401 - re-exported: linear.GridEdgeWarning
from .metrics import Geometry, check_readout, fit_geometry
from .stats import SufficientStats
from .threads import commit_guard, interruptible

__all__ = ["LinearProbe", "LinearProbeClassifier", "default_alpha_grid"]

_SCORINGS = ("squared_error", "accuracy", "roc_auc")
_PREDICT_BLOCK = 8192


def default_alpha_grid(gram: np.ndarray, n_alphas: int = 19) -> np.ndarray:
    """logspace(-6, 3, n_alphas) times the mean eigenvalue of the (centred) Gram.

    Relative to the data's scale, so the same grid suits raw activations, z-scores and any n.
    """
    d = gram.shape[0]
    scale = float(gram.trace()) / max(d, 1)
    if not np.isfinite(scale) or scale <= 0.0:
        scale = 1.0
    return np.logspace(-6, 3, n_alphas) * scale


@dataclass
class _Solution:
    coef: np.ndarray  # (d, k) in input coordinates
    intercept: np.ndarray  # (k,)
    alphas: np.ndarray  # (A,)
    alpha_index: np.ndarray  # (k,) index into alphas chosen per target
    scores: np.ndarray  # (A, k) per-target CV score (higher is better)
    joint_scores: np.ndarray  # (A,) the criterion used when alpha_per_target=False
    calibration: Optional[float] = None  # logistic slope (classifiers)

    # Arrays used at predict time; they live where the fit ran (numpy, or torch tensors on the
    # fit's device) and are copied elsewhere on demand (`placed`), or moved by `to`.
    _PREDICT_FIELDS = ("coef", "intercept", "quadratic", "centre", "factors")

    def placed(self, device: Any) -> dict:
        """{field: array} of the predict-time arrays as numpy (device None) or as float64
        tensors on `device`; copies are cached, so repeated predictions move nothing."""
        cache = self.__dict__.setdefault("_placed", {})
        key = None if device is None else str(device)
        if key not in cache:
            cache[key] = {f: _place(getattr(self, f, None), device) for f in self._PREDICT_FIELDS}
            geom = getattr(self, "geometry", None)
            cache[key]["geometry"] = geom if geom is None else geom.to(_ops_at(device))
        return cache[key]

    def to(self, device: Any) -> None:
        """Move the predict-time arrays to `device` (None: numpy) in place."""
        moved = self.placed(device)
        for f in self._PREDICT_FIELDS:
            if getattr(self, f, None) is not None:
                setattr(self, f, moved[f])
        self.__dict__["_placed"] = {}


def _ops_at(device: Any) -> Any:
    from ._backends import NUMPY_OPS, torch_backend

    return NUMPY_OPS if device is None else torch_backend().ops_for(device)


def _place(a: Any, device: Any) -> Any:
    """An array (or tuple of arrays) as numpy (device None) or a float64 tensor on device."""
    if a is None:
        return None
    if isinstance(a, tuple):
        return tuple(_place(x, device) for x in a)
    if device is None:
        return to_numpy(a)
    return _ops_at(device).asarray(a)


# ---------------------------------------------------------------------------------- scoring
def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    boundaries = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [xs.size]))
    avg = (starts + ends + 1) / 2.0  # 1-based average rank of each tie group
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def _roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0 or not np.isfinite(scores).all():
        return np.nan
    ranks = _average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _score_predictions(
    preds: np.ndarray, Y: np.ndarray, scoring: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-target (A, k) and joint (A,) scores of held-out predictions (A, n, k); higher is better.

    For classifiers Y holds the +-1 codes. Joint accuracy of a multiclass problem is the accuracy
    of the arg-max decision; per-target accuracy/AUC are those of each one-vs-rest column.
    Torch predictions are scored on their device; the (A, k) and (A,) scores are numpy either
    way.
    """
    if is_torch_tensor(preds):
        return _score_predictions_torch(preds, Y, scoring)
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
                per[a, t] = _roc_auc(preds[a, :, t], Y[:, t] > 0)
        joint = per.mean(axis=1)
    else:  # pragma: no cover - validated earlier
        raise ValueError(scoring)
    return per, joint


def _score_predictions_torch(preds: Any, Y: Any, scoring: str) -> tuple[np.ndarray, np.ndarray]:
    """`_score_predictions` for torch predictions, on their device (only scores come back)."""
    xp = ops_of(preds)
    Y = xp.asarray(Y)
    k = preds.shape[2]
    if scoring == "roc_auc":
        A = preds.shape[0]
        per = np.array([[_roc_auc_torch(preds[a, :, t], Y[:, t] > 0) for t in range(k)]
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


def _roc_auc_torch(scores: Any, positive: Any) -> float:
    """`_roc_auc` on a torch device: average ranks of tied scores from one sort."""
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


def _argmax_first(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Arg-max treating NaN as the worst value; ties go to the first entry. (Alpha and gamma
    selection break ties by value instead: `_best_index`.)"""
    return np.argmax(np.where(np.isnan(values), -np.inf, values), axis=axis)


# ---------------------------------------------------------------------------------- selection
# Scores within this relative distance of the best count as tied (exact CV ties: accuracy and
# AUROC are discrete, and GCV flattens to round-off at the ends of a grid).
_TIE_RTOL = 1e-12
# An edge value whose score beats its grid neighbour by no more than this (relative) sits on a
# plateau: going further cannot change the probe, so the grid is neither extended nor flagged.
_FLAT_RTOL = 1e-4
# Default alpha grids (logspace(-6, 3, 19) x the mean eigenvalue) grow by this many points
# (3 decades at the default spacing) on the side where the choice sits, at most twice per
# side: from 1e-12 to 1e9 times the mean eigenvalue in all.
_EXTEND_POINTS = 6
# automatic extension: implemented, off by default until sweep batches agree (issue 16)
_MAX_EXTENSIONS = 0


def _best_index(values: np.ndarray, prefer: Optional[np.ndarray] = None, axis: int = 0):
    """Arg-max over `axis`, NaN counting as the worst score. Among tied scores (within
    `_TIE_RTOL` of the best) the entry with the largest `prefer` wins (for alpha: the most
    regularised probe; pass -gamma to prefer the smallest gamma). Independent of the order of
    the grid."""
    v = np.where(np.isnan(values), -np.inf, np.asarray(values, dtype=np.float64))
    if prefer is None:
        return np.argmax(v, axis=axis)
    v = np.moveaxis(v, axis, 0)
    best = v.max(axis=0)
    slack = np.where(np.isfinite(best), _TIE_RTOL * np.abs(best), 0.0)
    tied = v >= best - slack
    key = np.asarray(prefer, dtype=np.float64).reshape((-1,) + (1,) * (v.ndim - 1))
    return np.argmax(np.where(tied, key, -np.inf), axis=0)


def _edge_side(scores: np.ndarray, grid: np.ndarray, index: int) -> Optional[str]:
    """"low" / "high" when grid[index] is the smallest / largest value of the grid and its
    score (higher is better) beats that of the nearest other grid value by more than
    `_FLAT_RTOL` (a plateau is no reason to look further); else None."""
    grid = np.asarray(grid, dtype=np.float64)
    values = np.unique(grid)
    if values.size < 2:
        return None
    a = grid[index]
    if a == values[0]:
        side, neighbour = "low", values[1]
    elif a == values[-1]:
        side, neighbour = "high", values[-2]
    else:
        return None
    s = np.where(np.isnan(scores), -np.inf, scores)
    here, there = float(s[index]), float(s[grid == neighbour].max())
    if not np.isfinite(here):
        return None
    if not np.isfinite(there):
        return side
    return side if here - there > _FLAT_RTOL * max(abs(here), abs(there), 1e-300) else None


def _edge_sides(per: np.ndarray, joint: np.ndarray, grid: np.ndarray, idx: np.ndarray,
                per_target: bool) -> list:
    """Edge side (or None) of each target's choice: on its own column with per-target
    selection, else on the joint criterion that chose the shared value."""
    if per_target:
        return [_edge_side(per[:, t], grid, int(idx[t])) for t in range(per.shape[1])]
    side = _edge_side(joint, grid, int(idx[0]))
    return [side] * per.shape[1]


def _extended_grid(grid: np.ndarray, side: str) -> np.ndarray:
    """_EXTEND_POINTS new values beyond the `side` edge of a log-spaced grid, at its spacing."""
    values = np.unique(np.asarray(grid, dtype=np.float64))
    pos = values[values > 0]
    step = float(np.log10(pos[1] / pos[0])) if pos.size >= 2 else 0.5
    step = step if np.isfinite(step) and step > 0 else 0.5
    k = np.arange(1, _EXTEND_POINTS + 1)
    if side == "low":
        return (pos[0] * 10.0 ** (-step * k))[::-1]
    return values[-1] * 10.0 ** (step * k)


def _select_alpha(scores: Any, alphas: np.ndarray, default_grid: bool, per_target: bool):
    """Alpha selection shared by every ridge solve: scores(grid) -> (per (A, k), joint (A,)).

    The best score wins, ties going to the larger alpha; a default grid is extended while the
    choice sits at an improving edge (see `_ridge_solve`). Returns (alphas, per, joint, idx
    (k,), edge side of each target's choice)."""
    alphas = np.asarray(alphas, dtype=np.float64)
    per, joint = scores(alphas)
    k = per.shape[1]

    def select() -> np.ndarray:
        if per_target:
            return _best_index(per, alphas, axis=0)
        return np.full(k, _best_index(joint, alphas))

    idx = select()
    grown = {"low": 0, "high": 0}
    while default_grid:
        sides = [s for s in _edge_sides(per, joint, alphas, idx, per_target) if s]
        side = next((s for s in ("low", "high") if s in sides and grown[s] < _MAX_EXTENSIONS),
                    None)  # fmt: skip
        if side is None:
            break
        grown[side] += 1
        extra = _extended_grid(alphas, side)
        p2, j2 = scores(extra)
        if side == "low":
            alphas = np.concatenate([extra, alphas])
            per, joint = np.concatenate([p2, per]), np.concatenate([j2, joint])
        else:
            alphas = np.concatenate([alphas, extra])
            per, joint = np.concatenate([per, p2]), np.concatenate([joint, j2])
        idx = select()
    return alphas, per, joint, idx, _edge_sides(per, joint, alphas, idx, per_target)


def _warn_grid_edge(owner: str, what: str, grid: np.ndarray, sides: list, default: bool,
                    cv: str) -> None:
    """One GridEdgeWarning naming the parameter, the edge and how many targets sit there."""
    flagged = [s for s in sides if s is not None]
    if not flagged:
        return
    from ._base import user_stacklevel

    side = "smallest" if flagged[0] == "low" else "largest"
    lo, hi = float(np.min(grid)), float(np.max(grid))
    targets = "" if len(sides) == 1 else f" for {len(flagged)} of {len(sides)} targets"
    param = "alphas" if what == "alpha" else what
    if default:
        advice = f"pass {param}= explicitly, reaching further on that side"
    else:
        advice = f"pass {param}= reaching further on that side"
    warnings.warn(
        f"{owner}: the {what} chosen by cv={cv!r} is the {side} value of the grid searched "
        f"({lo:.3g} .. {hi:.3g}){targets}, and the CV score was still improving there, so the "
        f"best {what} may lie outside the grid: {advice}.",
        GridEdgeWarning,
        stacklevel=user_stacklevel(),
    )


# ---------------------------------------------------------------------------------- base
class _RidgeProbeBase(BaseEstimator):
    """Shared machinery of the linear ridge probes (not public)."""

    _is_classifier = False
    _feature_degree = 1  # degree of the features the statistics hold (input magnitude range)
    _takes_precision = False  # whether `precision` is a parameter (the linear probes)

    def __init__(
        self,
        alphas: Any = None,
        *,
        cv: Union[str, int] = "gcv",
        alpha_per_target: bool = False,
        fit_intercept: bool = True,
        metric: str = "euclidean",
        reference: Any = None,
        readout: Any = None,
        backend: str = "auto",
    ) -> None:
        self.alphas = alphas
        self.cv = cv
        self.alpha_per_target = alpha_per_target
        self.fit_intercept = fit_intercept
        self.metric = metric
        self.reference = reference
        self.readout = readout
        self.backend = backend

    # ------------------------------------------------------------------ parameters
    def _scoring(self) -> str:
        return "squared_error"

    def _n_folds(self) -> int:
        """Validated cv: 1 for gcv/loo, K for K-fold."""
        cv = self.cv
        if cv is None or (isinstance(cv, str) and cv in ("gcv", "loo")):
            return 1
        if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
            if cv < 2:
                raise ValueError(f"cv={cv} folds: K-fold CV needs at least 2 folds.")
            return int(cv)
        raise ValueError(f"cv must be 'gcv', 'loo' or an integer K >= 2, got {cv!r}.")

    def _cv_name(self) -> str:
        return "gcv" if self.cv is None else str(self.cv)

    def _param_constraints(self) -> dict:
        """name -> constraints of every parameter (see `shallowprobes._params`)."""
        from ._params import ALPHAS, ARRAY_LIKE, BACKEND, BOOL, CV, MATRIX, InstanceOf, Options
        from .metrics import METRICS

        extra = {"precision": [Options(("auto", "float64", "float32"))]}
        return {
            **(extra if self._takes_precision else {}),
            "alphas": ALPHAS,
            "cv": CV,
            "alpha_per_target": BOOL,
            "fit_intercept": BOOL,
            "metric": [Options(METRICS)],
            "reference": [None, InstanceOf(SufficientStats, "SufficientStats"), MATRIX],
            "readout": [None, ARRAY_LIKE],
            "backend": BACKEND,
        }

    def _check_params(self) -> None:
        """Validate every parameter (ParameterError naming it) before any work."""
        from ._params import Options, ParameterError, check_param, params_of, validate_params

        owner = type(self).__name__
        constraints = self._param_constraints()
        validate_params(params_of(self, constraints), constraints, owner=owner)
        scoring = self._scoring()
        check_param("scoring", scoring, [Options(_SCORINGS)], owner=owner)
        if self.reference is not None and self.metric != "whiten":
            raise ParameterError(
                f'reference= is used by metric="whiten" only (metric={self.metric!r}).'
            )
        if self.readout is not None and self.metric != "readout":
            raise ParameterError(
                f'readout= is used by metric="readout" only (metric={self.metric!r}).'
            )
        if self.metric == "readout" and self.readout is None:
            raise ParameterError(
                'metric="readout" needs the model\'s readout matrix: pass readout=W with W of '
                "shape (m, d) (logits = W h + b)."
            )
        get_backend(self.backend)  # ImportError naming the extra when torch is missing
        if scoring != "squared_error" and self._cv_name() == "gcv":
            raise ParameterError(
                f"scoring={scoring!r} needs held-out decision values, which GCV does not give: "
                "use cv='loo' or an integer number of folds."
            )

    def _explicit_alphas(self) -> Optional[np.ndarray]:
        if self.alphas is None:
            return None
        if is_torch_tensor(self.alphas):
            alphas = self.alphas.detach().cpu().numpy()
        else:
            alphas = self.alphas
        try:
            arr = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"alphas must be numbers, got {self.alphas!r}.") from None
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"alphas must be a non-empty 1-D sequence, got shape {arr.shape}.")
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise ValueError(f"alphas must be finite and >= 0, got {arr}.")
        return arr

    # ------------------------------------------------------------------ fitting
    def _prepare_targets(
        self, y: Any, n: int, *, first: bool, classes: Any = None, keep_tensor: bool = False
    ):
        """Return (Y float64 (n,k), labels or None, state dict) for this estimator type.
        keep_tensor: a torch y stays a tensor on its device (the torch backend)."""
        Y, one_d = check_targets(y, n, owner=type(self).__name__, keep_tensor=keep_tensor)
        return Y, None, {"y_1d": one_d}

    @interruptible
    def fit(self, X: Any, y: Any, fold_ids: Any = None) -> _RidgeProbeBase:
        """Fit on all rows at once, selecting alpha by the chosen cv.

        fold_ids (optional, with integer cv=K): the fold of each row, e.g. to keep all rows of
        one document in one fold. By default row i goes to fold i % K.

        X may be a dask array: statistics are computed per block on the workers and only
        they reach the client (see `shallowprobes._dask.fit_estimator`).
        """
        self._check_params()
        # --- dask arrays: per-block statistics on the workers (shallowprobes._dask) ---
        from ._dask import fit_estimator, is_dask_array

        if is_dask_array(X):
            return fit_estimator(self, X, y, fold_ids)
        # --- end dask ---
        # One pass over X checks finiteness and magnitude (the kernels also catch NaN/inf).
        on_torch = uses_torch(self.backend, X)
        Xa = check_X(
            X, min_samples=2, owner=type(self).__name__, keep_tensor=on_torch,
            degree=self._feature_degree,
        )  # fmt: skip
        self._check_metric_inputs(Xa.shape[1])
        n = Xa.shape[0]
        Y, labels, state = self._prepare_targets(y, n, first=True, keep_tensor=on_torch)
        K = self._n_folds()
        if K > 1:
            if K > n:
                raise ValueError(f"cv={K} folds but only {n} samples; use cv <= n_samples.")
            folds = (
                np.arange(n, dtype=np.int64) % K
                if fold_ids is None
                else check_fold_ids(fold_ids, n, K)
            )
        else:
            if fold_ids is not None:
                raise ValueError("fold_ids is only used with integer cv (K-fold).")
            folds = None
        stats, solution = self._fit_rows(Xa, Y, folds)
        # Commit only after everything succeeded: a failed (or interrupted) fit leaves the
        # estimator as it was.
        with commit_guard():
            self._stats = stats
            self._solution_cache = solution
            self._target_state = state
            self.n_features_in_ = Xa.shape[1]
        return self

    def _check_partial_fit(self, first: bool) -> None:
        """Hook: raise if this estimator cannot stream (e.g. a dual-route solve)."""

    def _new_stats(self, n_folds: int) -> SufficientStats:
        return SufficientStats(n_folds, self.backend, precision=getattr(self, "precision", "auto"))

    def _fit_rows(self, X: np.ndarray, Y: np.ndarray, folds: Optional[np.ndarray]):
        """(statistics, solution) from validated rows; subclasses may solve without statistics."""
        stats = self._new_stats(self._n_folds())
        stats._accumulate_validated(X, Y, folds)
        return stats, self._solve(stats, rows=(X, Y, folds))

    def _streams(self) -> bool:
        """Whether rows can be added chunk by chunk (`partial_fit`)."""
        return True

    def _no_stream_reason(self) -> str:
        return f"{type(self).__name__} has no partial_fit."

    @streaming_method
    @interruptible
    def partial_fit(self, X: Any, y: Any, **kwargs: Any) -> _RidgeProbeBase:
        """Add a chunk of rows to the statistics; the solve happens at first use.

        With integer cv=K, row i (counted across all chunks) goes to fold i % K, so any
        chunking gives the same result as `fit` on the concatenated rows.
        """
        self._check_params()
        first = getattr(self, "_stats", None) is None
        self._check_partial_fit(first)
        n_features = None if first else self.n_features_in_
        on_torch = uses_torch(self.backend, X) if first else self._stats._keeps_tensors(X)
        Xa = check_X(
            X, n_features=n_features, owner=type(self).__name__, keep_tensor=on_torch,
            degree=self._feature_degree,
        )  # fmt: skip
        if first:
            self._check_metric_inputs(Xa.shape[1])
        Y, labels, state = self._prepare_targets(
            y, Xa.shape[0], first=first, classes=kwargs.get("classes"), keep_tensor=on_torch
        )
        K = self._n_folds()
        if first:
            stats = self._new_stats(K)
        else:
            stats = self._stats
            if stats.n_folds != K:
                raise ValueError(
                    f"cv changed from {stats.n_folds} to {K} fold(s) between partial_fit calls; "
                    "call fit() or start a new estimator."
                )
            if Y.shape[1] != stats.n_targets:
                raise ValueError(
                    f"y has {Y.shape[1]} target column(s) but earlier chunks had {stats.n_targets}."
                )
        folds = None
        if K > 1:
            folds = (np.arange(stats.rows_seen, stats.rows_seen + Xa.shape[0]) % K).astype(np.int64)
        if not first:
            # derived from the statistics, recomputed lazily: dropped before they change, so
            # an interrupted update never leaves a stale solution next to new statistics
            self._solution_cache = None
        stats._accumulate_validated(Xa, Y, folds)  # all-or-nothing
        if first:
            with commit_guard():
                self._stats = stats
                self._solution_cache = None
                self._target_state = state
                self.n_features_in_ = Xa.shape[1]
        return self

    def _solution(self) -> _Solution:
        sol = getattr(self, "_solution_cache", None)
        if sol is not None:
            return sol
        stats = getattr(self, "_stats", None)
        if stats is None:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' or "
                "'partial_fit' with appropriate arguments before using this estimator."
            )
        self._check_params()
        if stats.n_samples < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 samples to solve; got "
                f"{stats.n_samples} sample(s) so far."
            )
        sol = interruptible(self._solve)(stats, rows=None)
        with commit_guard():
            self._solution_cache = sol
        return sol

    def _check_metric_inputs(self, d: int) -> None:
        """Fail before any work when readout= / reference= do not match X's width, or hold
        NaN / infinity (ParameterError; NonFiniteParameterError for non-finite entries)."""
        from ._backends import all_finite
        from ._params import NonFiniteParameterError, ParameterError

        if self.metric == "readout":
            check_readout(self.readout, d)
        ref = self.reference
        if ref is None:
            return
        from .stats import SufficientStats as _Stats

        if isinstance(ref, _Stats):
            if ref.n_inputs != d:
                raise ParameterError(
                    f"reference statistics have {ref.n_inputs} inputs but X has {d} features."
                )
            if ref.n_samples < 2:
                raise ParameterError(
                    f"reference statistics hold {ref.n_samples} row(s); the whitening "
                    "covariance needs a minimum of 2."
                )
            return
        if np.ndim(ref) == 2 and np.shape(ref)[1] != d:
            raise ParameterError(
                f"reference has {np.shape(ref)[1]} features, but X has {d}: the reference "
                "rows must be activations of the same hidden units."
            )
        try:
            R = check_X(ref, name="reference", n_features=d, min_samples=2, owner="the probe",
                        check_finite=False, keep_tensor=is_torch_tensor(ref))  # fmt: skip
        except ValueError as exc:
            raise ParameterError(f"reference (the whitening rows) is invalid: {exc}") from None
        if not all_finite(R):
            raise NonFiniteParameterError(
                "reference contains NaN or infinity; the reference rows must be finite."
            )

    def _geometry(self, covariance: Any, d: int, xp: Any = None) -> Geometry:
        """The fitted metric (see `shallowprobes.metrics`); covariance() gives the training
        rows' centred covariance when the metric needs it. xp: the namespace of the fit."""
        return fit_geometry(
            self.metric,
            covariance,
            d,
            reference=self.reference,
            readout=self.readout,
            backend=self.backend,
            xp=xp,
        )

    def _solve(self, stats: SufficientStats, rows: Optional[tuple]) -> _Solution:
        geom = self._geometry(stats.input_covariance, stats.n_inputs, xp=stats._ops())
        if geom.is_identity:
            sol = self._ridge_solve(stats, rows, self._explicit_alphas())
        else:
            # ridge on the features A x, from the exactly transformed statistics
            fmap = _RowMap(geom, stats.n_inputs)
            sol = self._ridge_solve(
                geom.transform_stats(stats, 1), rows, self._explicit_alphas(), feature_map=fmap
            )
            sol.coef = geom.pull_back_linear(sol.coef)
        sol.geometry = geom
        return sol

    def _ridge_solve(
        self,
        stats: SufficientStats,
        rows: Optional[tuple],
        alphas: Optional[np.ndarray],
        feature_map: Optional[Any] = None,
        warn_edges: bool = True,
    ) -> _Solution:
        """Ridge on the features whose (degree-1) statistics are `stats`, alpha chosen by CV.

        rows = (X, Y, folds) of the training data when available (LOO and decision-value
        scoring need them); feature_map turns a block of X rows into the features the
        statistics describe (None: the rows are the features).

        Selection: the best CV score; exact ties go to the larger alpha (more regularisation).
        The default grid (alphas=None) can be extended, 3 decades at a time and at most
        _MAX_EXTENSIONS times per side (0 today: off, see `_MAX_EXTENSIONS`), while the choice
        sits at an edge with the score still improving there (all from the one spectrum). A
        choice left at an edge of its grid gives a GridEdgeWarning (warn_edges=False: only
        recorded in sol.alpha_edges, for callers that choose among several solutions and warn
        about the one they keep).
        """
        backend = stats._backend_module()
        xp = stats._ops()
        fit_intercept = bool(self.fit_intercept)
        scoring = self._scoring()
        cv_name = self._cv_name()
        ne = stats.normal_equations(fit_intercept)
        if not (xp.all_finite(ne.gram) and xp.all_finite(ne.cxy)):
            raise ValueError(
                "the Gram matrix overflowed float64: some features or targets have magnitude "
                "around 1e150 or more. Rescale X (and y) before fitting."
            )
        fold_specs = None
        if cv_name not in ("gcv", "loo"):
            (lam, V, B), fold_specs = _kfold_spectra(stats, ne, fit_intercept, backend)
        else:
            lam, V, B = backend.spectrum(ne.gram, ne.cxy)
        default_grid = alphas is None
        if default_grid:
            alphas = default_alpha_grid(ne.gram)
        alphas = np.asarray(alphas, dtype=np.float64)
        k = B.shape[1]
        # Residual degrees of freedom left at alpha -> 0, and the part of y outside the span of
        # X (exactly zero when the rows are interpolated): both enter GCV without cancellation.
        rank = int((lam > 0).sum())
        free = ne.n - (1.0 if fit_intercept else 0.0) - rank
        span = backend.residual_outside_span if xp.is_torch else residual_outside_span
        perp = span(lam, B, ne.cyy) if free > 0 else xp.zeros(k)

        def scores(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """(per (A, k), joint (A,)) CV scores of the alphas in `grid`."""
            if cv_name == "gcv":
                _, rss, _ = backend.ridge_path(lam, V, B, perp, grid, False)
                rss = to_numpy(rss)
                lam_pos = to_numpy(lam[lam > 0])
                resid_dof = np.array(
                    [max(free, 0.0) + float(np.sum(a / (lam_pos + a))) if a > 0 else free
                     for a in grid]
                )  # fmt: skip
                with np.errstate(divide="ignore", invalid="ignore"):
                    gcv = ne.n * rss / (resid_dof * resid_dof)[:, None]
                gcv[resid_dof <= 0] = np.inf
                per = -gcv
                return per, per.mean(axis=1)
            if cv_name == "loo":
                if rows is None:
                    raise ValueError(
                        "cv='loo' needs the training rows, which partial_fit does not keep; "
                        "use cv='gcv' or an integer number of folds with partial_fit, or call "
                        "fit()."
                    )
                X, Y, _ = rows
                if scoring == "squared_error" and hasattr(backend, "loo_sse"):
                    # fused in the core: no (A, n, k) predictions
                    sse = np.zeros((len(grid), k))
                    for sl, F in _feature_blocks(X, feature_map):
                        sse += backend.loo_sse(
                            F, ne.x_mean, V, lam, B, Y[sl], ne.y_mean, grid, ne.n, fit_intercept
                        )
                    per = -sse / X.shape[0]
                    return per, per.mean(axis=1)
                preds = xp.empty((len(grid), X.shape[0], k))
                for sl, F in _feature_blocks(X, feature_map):
                    preds[:, sl] = backend.loo_predictions(
                        F, ne.x_mean, V, lam, B, Y[sl], ne.y_mean, grid, ne.n, fit_intercept
                    )
                return _score_predictions(preds, Y, scoring)
            return self._kfold_scores(stats, grid, rows, backend, scoring, fold_specs,
                                      feature_map)  # fmt: skip

        alphas, per, joint, idx, edges = _select_alpha(
            scores, alphas, default_grid, bool(self.alpha_per_target)
        )
        if warn_edges:
            _warn_grid_edge(type(self).__name__, "alpha", alphas, edges, default_grid, cv_name)
        chosen = np.unique(idx)
        coefs, _, _ = backend.ridge_path(lam, V, B, perp, alphas[chosen], True)
        pos = np.searchsorted(chosen, idx)
        coef = copy_of(coefs[xp.index(pos), :, xp.index(np.arange(k))].T)  # (d, k)
        intercept = ne.y_mean - ne.x_mean @ coef
        sol = _Solution(coef, intercept, alphas, idx, per, joint)
        sol.alpha_edges = edges
        sol.default_grid = default_grid
        if self._is_classifier:
            sol.calibration = _gaussian_calibration(stats, coef, intercept)
        return sol

    def _kfold_scores(self, stats, alphas, rows, backend, scoring, fold_specs, feature_map=None):
        xp = stats._ops()
        K = stats.n_folds
        k = stats.n_targets
        A = len(alphas)
        n_total = stats.n_samples
        if scoring == "squared_error":
            sse = np.zeros((A, k))
        else:
            if rows is None:
                raise ValueError(
                    f"scoring={scoring!r} with K-fold CV needs held-out decision values, which "
                    "need the rows: call fit() with all rows, or use scoring='squared_error' "
                    "with partial_fit."
                )
            X, Y, folds = rows
            preds = xp.empty((A, X.shape[0], k))
        for f in range(K):
            if stats.count[f] == 0:
                continue
            ne, (lam, V, B) = fold_specs[f]
            coefs, _, _ = backend.ridge_path(lam, V, B, xp.zeros(k), alphas, True)
            intercepts = ne.y_mean[None, :] - xp.einsum("d,adk->ak", ne.x_mean, coefs)
            if scoring == "squared_error":
                # held-out error from the fold's own (shifted) statistics
                offsets = (
                    intercepts
                    + xp.einsum("d,adk->ak", stats.shift_x, coefs)
                    - stats.shift_y[None, :]
                )
                sse += to_numpy(backend.heldout_sse(
                    stats.xtx[f], stats.xty[f], copy_of(xp.diagonal(stats.yty[f])),
                    stats.sum_x[f], stats.sum_y[f], float(stats.count[f]), coefs, offsets,
                ))  # fmt: skip
            else:
                sel = np.flatnonzero(folds == f)
                if is_torch_tensor(X):
                    sel = ops_of(X).index(sel)
                for sl, F in _feature_blocks(X[sel], feature_map):
                    for a in range(A):
                        preds[a, sel[sl]] = _linear_decision(F, coefs[a], intercepts[a])
        if scoring == "squared_error":
            per = -sse / n_total
            return per, per.mean(axis=1)
        return _score_predictions(preds, Y, scoring)

    # ------------------------------------------------------------------ prediction
    def _decision(self, X: Any) -> np.ndarray:
        sol = self._solution()
        Xa, params = self._predict_inputs(X, sol)
        return _linear_decision(Xa, params["coef"], params["intercept"])

    def _predict_inputs(self, X: Any, sol: _Solution) -> tuple[Any, dict]:
        """Validated rows and the predict-time arrays next to them: a torch tensor stays on
        its device (the arrays are copied there once, cached), anything else is numpy."""
        if is_torch_tensor(X):
            Xa = check_X(X, n_features=self.n_features_in_, owner=type(self).__name__,
                         keep_tensor=True)  # fmt: skip
            return Xa, sol.placed(Xa.device)
        Xa = check_X(X, n_features=self.n_features_in_, owner=type(self).__name__)
        return Xa, sol.placed(None)

    def to(self, device: Any) -> _RidgeProbeBase:
        """Move the fitted arrays used at predict time to a torch device ("cpu", "cuda:0",
        torch.device), or to numpy with device=None / "numpy"; returns self.

        Predictions work on numpy and torch inputs wherever the arrays live (they are copied
        next to the input once and cached); `to` only chooses their home, e.g. so that
        predicting on CUDA tensors moves nothing. Fitted attributes (coef_, ...) follow.
        """
        sol = self._solution()
        if device is None or (isinstance(device, str) and device == "numpy"):
            sol.to(None)
            return self
        from ._backends import torch_backend

        torch_backend()
        import torch

        sol.to(torch.device(device))
        return self

    # ------------------------------------------------------------------ fitted attributes
    @property
    def coef_(self) -> np.ndarray:
        """Coefficients in input coordinates: (n_features,) for 1-D y, else (n_targets, d)."""
        coef = self._solution().coef
        return copy_of(coef[:, 0]) if self._single_output() else copy_of(coef.T)

    @property
    def intercept_(self):
        intercept = self._solution().intercept
        return float(intercept[0]) if self._single_output() else copy_of(intercept)

    @property
    def alpha_(self):
        """Selected alpha: a float, or one per target with alpha_per_target=True."""
        sol = self._solution()
        chosen = sol.alphas[sol.alpha_index]
        if self.alpha_per_target and not self._single_output():
            return chosen
        return float(chosen[0])

    @property
    def alphas_(self) -> np.ndarray:
        """The alpha grid that was searched (the default grid is relative to the data scale)."""
        return self._solution().alphas.copy()

    @property
    def cv_results_(self) -> dict:
        """CV results: 'alphas' (A,), 'scores' (A, n_targets) per-target score (higher is
        better: negative mean squared error, accuracy or AUROC), 'mean_scores' (A,) the
        criterion used for a shared alpha, 'scoring' and 'cv'."""
        sol = self._solution()
        return {
            "alphas": sol.alphas.copy(),
            "scores": sol.scores.copy(),
            "mean_scores": sol.joint_scores.copy(),
            "scoring": self._scoring(),
            "cv": self._cv_name(),
        }

    @property
    def best_score_(self):
        sol = self._solution()
        if self.alpha_per_target:
            return sol.scores[sol.alpha_index, np.arange(sol.scores.shape[1])]
        return float(sol.joint_scores[sol.alpha_index[0]])

    @property
    def geometry_(self) -> Geometry:
        """The fitted metric: `geometry_.as_matrix(d)` is A (features are A (x - mu))."""
        return self._solution().geometry

    @property
    def stats_(self) -> SufficientStats:
        """The sufficient statistics the probe was solved from."""
        stats = getattr(self, "_stats", None)
        if stats is None:
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet.")
        return stats

    def _single_output(self) -> bool:
        return bool(self._target_state.get("y_1d", False))

    def __sklearn_is_fitted__(self) -> bool:
        return (
            getattr(self, "_stats", None) is not None
            or getattr(self, "_solution_cache", None) is not None
        )


# Largest number of float64 entries in a stack of Grams decomposed together (1 GiB).
_BATCH_ENTRIES = 1 << 27


def _kfold_spectra(stats: SufficientStats, ne, fit_intercept: bool, backend):
    """Spectrum of the full data and of every K-fold training set.

    Decomposed together (one sequential eigendecomposition per thread, which scales far better
    than one threaded eigendecomposition) unless the stack of Grams would exceed 1 GiB.
    Returns ((lam, V, B) of all rows, {fold: (normal equations, (lam, V, B))}).
    """
    folds = [f for f in range(stats.n_folds) if stats.count[f] > 0]
    n = stats.n_samples
    for f in folds:
        if n - stats.count[f] < 1:
            raise ValueError(f"fold {f} holds every row; K-fold CV needs rows in other folds.")
    fold_nes = [stats.normal_equations(fit_intercept, exclude_fold=f) for f in folds]
    everything = [ne, *fold_nes]
    d = ne.gram.shape[0]
    xp = stats._ops()
    if len(everything) * d * d <= _BATCH_ENTRIES:
        lams, Vs, Bs = backend.spectra(
            xp.stack([e.gram for e in everything]), xp.stack([e.cxy for e in everything])
        )
        specs = [(lams[i], Vs[i], Bs[i]) for i in range(len(everything))]
    else:
        specs = [backend.spectrum(e.gram, e.cxy) for e in everything]
    return specs[0], {f: (fold_nes[i], specs[i + 1]) for i, f in enumerate(folds)}


class _RowMap:
    """Feature map x -> A x of a fitted metric (block-wise; see `_feature_blocks`)."""

    def __init__(self, geometry: Geometry, d: int) -> None:
        self.geometry = geometry
        self.width = d

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.geometry.rows(X)


def _feature_blocks(X: np.ndarray, feature_map: Optional[Any]):
    """Yield (slice, features) over X: the rows themselves, or mapped block by block (so an
    expanded feature matrix never exists for all rows at once)."""
    if feature_map is None:
        yield slice(0, X.shape[0]), X
        return
    # ~32 MiB of features per block
    block = int(np.clip((1 << 22) // max(feature_map.width, 1), 16, _PREDICT_BLOCK))
    for start in range(0, X.shape[0], block):
        sl = slice(start, min(start + block, X.shape[0]))
        yield sl, feature_map(X[sl])


def _linear_decision(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """X @ coef + intercept in float64, in row blocks (float32 inputs are never fully copied).
    A torch X gives a float64 tensor on its device (coef, intercept must be there too)."""
    n = X.shape[0]
    if is_torch_tensor(X) or is_torch_tensor(coef):
        xp = ops_of(coef, X)
        out = xp.empty((n, coef.shape[1]))
        for start in range(0, n, _PREDICT_BLOCK):
            block = xp.asarray(X[start : start + _PREDICT_BLOCK])
            out[start : start + _PREDICT_BLOCK] = block @ coef
        return out + intercept
    out = np.empty((n, coef.shape[1]))
    for start in range(0, n, _PREDICT_BLOCK):
        block = X[start : start + _PREDICT_BLOCK].astype(np.float64, copy=False)
        np.matmul(block, coef, out=out[start : start + _PREDICT_BLOCK])
    out += intercept
    return out


def _r2_score(Y: np.ndarray, P: np.ndarray) -> float:
    ss_res = ((Y - P) ** 2).sum(axis=0)
    ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res > 0, 0.0, 1.0))
    return float(r2.mean())


# ---------------------------------------------------------------------------------- regression
class _ProbeRegressorMixin:
    """predict / score of the ridge probe regressors (linear and degree-2)."""

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets: (n,) for 1-D training y, else (n, n_targets)."""
        out = self._decision(X)
        return out[:, 0] if self._single_output() else out

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Coefficient of determination R^2 (averaged uniformly over targets)."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by score yet.")
        P = to_numpy(self._decision(X))
        Y, _ = check_targets(y, P.shape[0])
        return _r2_score(Y, P)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


class LinearProbe(_ProbeRegressorMixin, RegressorMixin, _RidgeProbeBase):
    """Linear ridge probe (regression, any number of targets) with exact alpha selection.

    Parameters
    ----------
    alphas : array-like of float, optional
        Ridge penalties to choose from. Explicit values are absolute, as in scikit-learn
        (penalty ``alpha * ||w||^2`` on the summed squared error). The default is
        ``logspace(-6, 3, 19)`` times the mean eigenvalue of the centred Gram, i.e. relative
        to the data's scale (see `alphas_` for the values used).
    cv : {"gcv", "loo"} or int, default "gcv"
        How alpha is chosen. "gcv": generalised cross-validation from statistics alone (works
        with `partial_fit`). "loo": exact leave-one-out (uses the rows; `fit` only). int K:
        exact K-fold CV, row i in fold i % K unless `fit` is given ``fold_ids``.
    alpha_per_target : bool, default False
        Choose alpha separately for each target column.
    fit_intercept : bool, default True
        Fit an unpenalised intercept (centre X and y).
    metric : {"euclidean", "standardize", "whiten", "readout"}, default "euclidean"
        Geometry of the penalty: features are built from A (x - mu), with A = I, the inverse
        standard deviations, the (pseudo-)inverse square root of a reference covariance, or
        (W^T W)^1/2 of a readout matrix. Each gives exactly invariant predictions under a
        stated group of coordinate changes (table in `shallowprobes.metrics`). A is fitted
        from the statistics (it streams); coefficients are reported in your coordinates.
    reference : array (n_ref, d) or SufficientStats, optional
        metric="whiten" only: rows (e.g. unlabeled calibration activations) whose covariance
        defines the whitening. Default: the training rows.
    readout : array (m, d), optional
        metric="readout" only (required there): the model's readout matrix W, logits = W h + b.
    backend : {"auto", "rust", "numpy"}, default "auto"
        "rust" is the compiled core, "numpy" the plain reference implementation.
    precision : {"auto", "float64", "float32"}, default "auto"
        Arithmetic of the Gram in the Rust core (see `SufficientStats`): "float32" forms
        block Grams by float32 GEMM (about twice as fast, bounded error, docs/design.md §8);
        "auto" does so for bfloat16/float16 input only.

    Attributes
    ----------
    coef_, intercept_, alpha_, alphas_, cv_results_, best_score_, n_features_in_, stats_,
    geometry_ (the fitted metric)
    """

    _takes_precision = True

    def __init__(
        self,
        alphas: Any = None,
        *,
        cv: Union[str, int] = "gcv",
        alpha_per_target: bool = False,
        fit_intercept: bool = True,
        metric: str = "euclidean",
        reference: Any = None,
        readout: Any = None,
        backend: str = "auto",
        precision: str = "auto",
    ) -> None:
        super().__init__(
            alphas, cv=cv, alpha_per_target=alpha_per_target, fit_intercept=fit_intercept,
            metric=metric, reference=reference, readout=readout, backend=backend,
        )  # fmt: skip
        self.precision = precision


# ---------------------------------------------------------------------------------- classification
def _gaussian_calibration(stats: SufficientStats, coef: np.ndarray, intercept: np.ndarray) -> float:
    """Slope `a` of the logistic map decision -> probability, from statistics alone.

    Model: within each class the decision value f of a one-vs-rest column is Gaussian with a
    shared variance (the LDA view of a ridge probe on +-1 codes); the log-odds are then linear
    in f with slope a_j = (m+ - m-)/s^2 (class means m+-, pooled within-class variance s^2 of f).
    These moments are linear or quadratic in the rows, so they come from the sufficient
    statistics and stream with partial_fit. One slope is shared by all columns (the mean of the
    a_j) and no offset is used, so that probabilities rank classes exactly as the decision
    values do and `argmax(predict_proba) == predict`.
    """
    raw = stats.normal_equations(fit_intercept=False)
    n = raw.n
    sum_x = stats.shift_x * n + stats.sum_x.sum(axis=0)
    sum_y = stats.shift_y * n + stats.sum_y.sum(axis=0)
    slopes = []
    for t in range(coef.shape[1]):
        # Python floats from here on (torch statistics: one scalar each from the device)
        w, c, sy = coef[:, t], float(intercept[t]), float(sum_y[t])
        n_pos = 0.5 * (n + sy)
        n_neg = n - n_pos
        if n_pos < 0.5 or n_neg < 0.5:
            continue
        w_sx = float(w @ sum_x)
        sum_f = w_sx + n * c
        # sum over positives of x = (sum x + sum x*y) / 2 for codes y in {-1, +1}
        sum_f_pos = 0.5 * (float(w @ (sum_x + raw.cxy[:, t])) + c * (n + sy))
        sum_f_neg = sum_f - sum_f_pos
        sum_f2 = float(w @ raw.gram @ w) + 2.0 * c * w_sx + n * c * c
        m_pos, m_neg = sum_f_pos / n_pos, sum_f_neg / n_neg
        within = sum_f2 - n_pos * m_pos**2 - n_neg * m_neg**2
        total = max(sum_f2 - sum_f**2 / n, 0.0)
        s2 = max(within / max(n - 2.0, 1.0), 1e-12 * total / n, 1e-300)
        slopes.append((m_pos - m_neg) / s2)
    slope = float(np.mean(slopes)) if slopes else 1.0
    if not np.isfinite(slope) or slope <= 0:
        slope = 1.0  # a probe that does not separate: fall back to the raw decision scale
    return min(slope, 1e12)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


class _ProbeClassifierMixin:
    """Everything the ridge probe classifiers (linear and degree-2) share: labels to +-1
    codes, decision values, predictions, probabilities."""

    _is_classifier = True

    def _scoring(self) -> str:
        return self.scoring

    def _prepare_targets(
        self, y: Any, n: int, *, first: bool, classes: Any = None, keep_tensor: bool = False
    ):
        # Labels are checked on the host (n label values); the +-1 codes are numpy and the
        # torch backend moves them to its device with the row blocks.
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        if is_torch_tensor(y):
            y = y.detach().cpu().numpy()
        arr = np.asarray(y)
        if arr.ndim == 2 and arr.shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change the "
                "shape of y to (n_samples,), for example using ravel().",
                DataConversionWarning,
                stacklevel=3,
            )
            arr = arr.ravel()
        if arr.ndim != 1:
            raise ValueError(
                f"y must be a 1-D array of class labels, got shape {arr.shape}. (For several "
                "regression targets use LinearProbe.)"
            )
        if arr.shape[0] != n:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: X has {n} rows "
                f"but y has {arr.shape[0]}."
            )
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all():
                raise ValueError("Input y contains NaN or infinity.")
            if np.any(arr != np.round(arr)):
                raise ValueError(
                    "Unknown label type: continuous. LinearProbeClassifier needs class labels "
                    "(integers or strings); for real-valued targets use LinearProbe."
                )
        if arr.dtype.kind == "O":
            try:
                arr = arr.astype(str) if all(isinstance(v, str) for v in arr) else arr
            except TypeError:
                pass
        if first:
            if classes is not None:
                cls = np.unique(np.asarray(classes))
            else:
                cls = np.unique(arr)
            if cls.size < 2:
                raise ValueError(
                    f"Classifier needs samples of at least 2 classes in the data, but the data "
                    f"contains only one class: {cls[0]!r}."
                    if cls.size == 1
                    else "Classifier needs at least 2 classes; got none."
                )
        else:
            cls = self.classes_
        idx = np.searchsorted(cls, arr)
        idx_clipped = np.clip(idx, 0, cls.size - 1)
        unknown = cls[idx_clipped] != arr
        if unknown.any():
            raise ValueError(
                f"y contains labels {np.unique(arr[unknown])[:5]!r} not in classes {cls!r}; "
                "pass all classes to the first partial_fit call via classes=."
            )
        if cls.size == 2:
            Y = np.where(idx_clipped == 1, 1.0, -1.0)[:, None]
        else:
            Y = -np.ones((n, cls.size))
            Y[np.arange(n), idx_clipped] = 1.0
        return Y, idx_clipped, {"classes": cls}

    def fit(self, X: Any, y: Any, fold_ids: Any = None) -> LinearProbeClassifier:
        super().fit(X, y, fold_ids=fold_ids)
        return self

    @streaming_method
    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> LinearProbeClassifier:
        """Add a chunk of labelled rows. The first call must name all classes (``classes=``)
        unless this chunk already contains every class."""
        super().partial_fit(X, y, classes=classes)
        return self

    @property
    def classes_(self) -> np.ndarray:
        state = getattr(self, "_target_state", None)
        if state is None:
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet.")
        return state["classes"]

    def _single_output(self) -> bool:
        return False

    @property
    def alpha_(self):
        sol = self._solution()
        chosen = sol.alphas[sol.alpha_index]
        if self.alpha_per_target and chosen.size > 1:
            return chosen
        return float(chosen[0])

    def decision_function(self, X: Any) -> np.ndarray:
        """Decision values: (n,) for binary problems (positive means classes_[1]), else
        (n, n_classes)."""
        out = self._decision(X)
        return out[:, 0] if out.shape[1] == 1 else out

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels. For a torch tensor X: a tensor on X's device when the
        classes are numbers, else (strings, objects) a numpy array of labels."""
        dec = self._decision(X)
        cls = self.classes_
        if is_torch_tensor(dec):
            idx = (dec[:, 0] > 0).long() if dec.shape[1] == 1 else dec.argmax(dim=1)
            if cls.dtype.kind in "biuf":
                import torch

                return torch.as_tensor(cls, device=dec.device)[idx]
            return cls[to_numpy(idx)]
        if dec.shape[1] == 1:
            return cls[(dec[:, 0] > 0).astype(np.intp)]
        return cls[np.argmax(dec, axis=1)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n, n_classes) from the documented logistic calibration
        (a float64 tensor on X's device for a torch tensor X)."""
        dec = self._decision(X)
        slope = self._solution().calibration
        if is_torch_tensor(dec):
            import torch

            if dec.shape[1] == 1:
                p = torch.sigmoid(slope * dec)
                return torch.cat([1.0 - p, p], dim=1)
            return torch.softmax(slope * dec, dim=1)
        if dec.shape[1] == 1:
            p = _sigmoid(slope * dec)
            return np.hstack([1.0 - p, p])
        z = slope * dec
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        if is_torch_tensor(proba):
            return proba.log()
        with np.errstate(divide="ignore"):
            return np.log(proba)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by score yet.")
        pred = to_numpy(self.predict(X))
        return float(np.mean(pred == np.asarray(to_numpy(y)).ravel()))


class LinearProbeClassifier(_ProbeClassifierMixin, ClassifierMixin, _RidgeProbeBase):
    """Linear ridge probe for classification (binary or multiclass, one-vs-rest +-1 codes).

    Each class gets a ridge regression of its +-1 code; the decision is the arg-max (binary: the
    sign). Alpha is chosen by GCV/LOO/K-fold on the codes' squared error, or, with
    ``scoring="accuracy"`` / ``"roc_auc"``, on the accuracy / AUROC of LOO or K-fold decision
    values (exact, no refitting).

    Parameters
    ----------
    alphas, cv, alpha_per_target, fit_intercept, metric, reference, readout, backend
        As for `LinearProbe`.
    scoring : {"squared_error", "accuracy", "roc_auc"}, default "squared_error"
        Criterion for alpha. "accuracy" and "roc_auc" need held-out decision values:
        cv="loo" or integer K with `fit`. With alpha_per_target=True each one-vs-rest column
        is scored on its own (binary accuracy / AUROC of that column); otherwise multiclass
        accuracy is that of the arg-max and AUROC the mean one-vs-rest AUROC.

    Notes
    -----
    `predict_proba` maps decision values f to probabilities with a logistic (binary:
    sigmoid(a f)) or softmax (multiclass: softmax(a f)) link whose slope `a` is fitted in
    closed form from the sufficient statistics: decision values within each class are modelled
    as Gaussian with a shared variance, whose log-odds slope is (m+ - m-)/s^2 (see
    `_gaussian_calibration`). It has no offset, so the most probable class is always the
    predicted one; it streams with `partial_fit`. It is a model, not a held-out calibration:
    for calibrated probabilities, calibrate decision values on held-out data.

    Attributes
    ----------
    classes_, coef_ (1, d) binary or (n_classes, d), intercept_, alpha_, alphas_, cv_results_,
    best_score_, n_features_in_, stats_
    """

    _is_classifier = True
    _takes_precision = True

    def __init__(
        self,
        alphas: Any = None,
        *,
        cv: Union[str, int] = "gcv",
        alpha_per_target: bool = False,
        fit_intercept: bool = True,
        metric: str = "euclidean",
        reference: Any = None,
        readout: Any = None,
        scoring: str = "squared_error",
        backend: str = "auto",
        precision: str = "auto",
    ) -> None:
        super().__init__(
            alphas,
            cv=cv,
            alpha_per_target=alpha_per_target,
            fit_intercept=fit_intercept,
            metric=metric,
            reference=reference,
            readout=readout,
            backend=backend,
        )
        self.scoring = scoring
        self.precision = precision

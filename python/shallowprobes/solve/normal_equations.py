"""The ridge normal equations of a selection of folds, read off `SufficientStats`: the centred
(or raw) Gram, cross-moments and target energy, with the arguments that pick the folds checked.

Apart from `solve.stats` because this is where the statistics end and the solve begins: the
class accumulates and merges, this turns what it holds into the float64 system every ridge
route decomposes. Works on any statistics object with the per-fold fields (count, sum_x, sum_y,
xtx, xty, yty, shift_x, shift_y), so `stats` does not need importing here.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np


class NormalEquations(NamedTuple):
    """Ridge normal equations for one selection of rows, in float64.

    With an intercept these are centred (gram = Xc^T Xc, cxy = Xc^T Yc, cyy = ||Yc||^2 per
    target); without one they are raw. Means are zero without an intercept.
    """

    n: float
    gram: np.ndarray  # (d, d)
    cxy: np.ndarray  # (d, k)
    cyy: np.ndarray  # (k,)
    x_mean: np.ndarray  # (d,)
    y_mean: np.ndarray  # (k,)


def symmetric(a: Any) -> Any:
    """The symmetric part (a + a^T) / 2 of a square matrix (exact symmetry for eigensolvers)."""
    return 0.5 * (a + a.T)


def check_fold_args(n_folds: int, fit_intercept: Any, exclude_fold: Any, only_fold: Any) -> None:
    """Validate the arguments of `normal_equations` (cheap: it runs once per fold)."""
    from .._params import (
        BOOL,
        Interval,
        ParameterError,
        ParameterIndexError,
        check_param,
    )

    owner = "SufficientStats.normal_equations"
    check_param("fit_intercept", fit_intercept, BOOL, owner=owner)
    fold = [Interval("int", 0, n_folds, closed="left", error=ParameterIndexError,
                     desc=f"a fold index in [0, {n_folds}) (these statistics have "
                          f"{n_folds} fold(s))"), None]  # fmt: skip
    check_param("exclude_fold", exclude_fold, fold, owner=owner)
    check_param("only_fold", only_fold, fold, owner=owner)
    if exclude_fold is not None and only_fold is not None:
        raise ParameterError(
            f"{owner}: pass exclude_fold or only_fold, not both (got "
            f"exclude_fold={exclude_fold!r}, only_fold={only_fold!r})."
        )


def normal_equations_of(
    stats: Any,
    fit_intercept: bool = True,
    exclude_fold: Optional[int] = None,
    only_fold: Optional[int] = None,
) -> NormalEquations:
    """The normal equations of the rows of `stats` (non-empty, checked arguments) in all
    folds, all but `exclude_fold`, or `only_fold` alone; in the statistics' namespace."""
    xp = stats._ops()
    K = stats.n_folds
    if exclude_fold is not None:
        sel = [f for f in range(K) if f != exclude_fold]
    elif only_fold is not None:
        sel = [only_fold]
    else:
        sel = list(range(K))
    yy = xp.einsum("fjj->j", stats.yty[sel]) if stats.n_targets else xp.zeros(0)
    return _centred(
        stats, fit_intercept, float(stats.count[sel].sum()), stats.sum_x[sel].sum(axis=0),
        stats.sum_y[sel].sum(axis=0), stats.xtx[sel].sum(axis=0), stats.xty[sel].sum(axis=0), yy,
    )  # fmt: skip


def training_normal_equations(stats: Any, fit_intercept: bool, folds: list) -> list:
    """The normal equations of every K-fold training set (all rows but fold f, for each f in
    `folds`), as `normal_equations_of(stats, fit_intercept, exclude_fold=f)` gives them.

    Formed as the totals minus each fold: one pass over the per-fold statistics, then one
    subtraction per fold, instead of summing K - 1 folds for each of the K training sets. Each
    fold holds part of the training set's rows, so the subtraction loses no more than a few
    units of rounding relative to the totals (no cancellation of the training set's own
    size)."""
    xp = stats._ops()
    totals = [stats.sum_x.sum(axis=0), stats.sum_y.sum(axis=0), stats.xtx.sum(axis=0),
              stats.xty.sum(axis=0)]  # fmt: skip
    yy_folds = xp.einsum("fjj->fj", stats.yty) if stats.n_targets else None
    yy_total = yy_folds.sum(axis=0) if yy_folds is not None else xp.zeros(0)
    out = []
    for f in folds:
        sx, sy, xtx, xty = (t - part[f] for t, part in zip(
            totals, (stats.sum_x, stats.sum_y, stats.xtx, stats.xty)))  # fmt: skip
        yy = yy_total - yy_folds[f] if yy_folds is not None else yy_total
        n = float(stats.count.sum() - stats.count[f])
        out.append(_centred(stats, fit_intercept, n, sx, sy, xtx, xty, yy))
    return out


def _centred(stats: Any, fit_intercept: bool, n: float, sx: Any, sy: Any, xtx: Any, xty: Any,
             yy: Any) -> NormalEquations:  # fmt: skip
    """NormalEquations from the sums of a selection of rows in the statistics' shifted frame:
    centred with an intercept, moved back to the raw frame without one."""
    xp = stats._ops()
    s, t = stats.shift_x, stats.shift_y
    if fit_intercept:
        gram = xtx - xp.outer(sx, sx) / n
        cxy = xty - xp.outer(sx, sy) / n
        cyy = yy - sy * sy / n
        return NormalEquations(
            n, symmetric(gram), cxy, xp.maximum(cyy, 0.0), s + sx / n, t + sy / n
        )
    gram = xtx + xp.outer(s, sx) + xp.outer(sx, s) + n * xp.outer(s, s)
    cxy = xty + xp.outer(sx, t) + xp.outer(s, sy) + n * xp.outer(s, t)
    cyy = yy + 2.0 * t * sy + n * t * t
    d, k = stats.n_features, stats.n_targets
    return NormalEquations(n, symmetric(gram), cxy, cyy, xp.zeros(d), xp.zeros(k))

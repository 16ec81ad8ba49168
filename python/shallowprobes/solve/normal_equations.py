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
    n = float(stats.count[sel].sum())
    sx = stats.sum_x[sel].sum(axis=0)
    sy = stats.sum_y[sel].sum(axis=0)
    xtx = stats.xtx[sel].sum(axis=0)
    xty = stats.xty[sel].sum(axis=0)
    yy = xp.einsum("fjj->j", stats.yty[sel]) if stats.n_targets else xp.zeros(0)
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

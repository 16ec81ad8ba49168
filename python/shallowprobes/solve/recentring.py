"""Degree-2 statistics re-expressed exactly about another centre (`SufficientStats.recentred`):
the check of the centre it is given and the re-centring of every per-fold field.

Apart from `solve.stats` because it is the one operation that changes what degree-2 statistics
mean (the features become phi(h - centre)) rather than adding rows to them; the formulas for one
array are `solve.features.recentre_rows` / `recentre_gram` / `recentre_constant`, this applies
them to all fields. Works on the statistics' fields, so `stats` does not need importing here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import is_torch_tensor
from . import features as _quadratic


def checked_centre(centre: Any, d: int, xp: Any) -> Any:
    """centre as a float64 (d,) array in namespace xp: ParameterError unless it is a real
    1-D vector of length d, NonFiniteError (a NonFiniteParameterError) for NaN or infinity."""
    from .._params import (
        NonFiniteParameterError,
        ParameterError,
        ParameterTypeError,
        shown,
    )

    who = "SufficientStats.recentred: "
    if centre is None or isinstance(centre, (str, bytes, bool, np.bool_)):
        raise ParameterTypeError(
            f"{who}centre must be a real 1-D array of length {d}, got {shown(centre)}."
        )
    if not is_torch_tensor(centre):
        try:
            raw = np.asarray(centre)
        except (TypeError, ValueError):  # ragged sequences
            raw = np.asarray(None)
        if raw.dtype.kind not in "iuf":
            raise ParameterTypeError(
                f"{who}centre must be a real 1-D array of length {d}, got {shown(centre)} "
                f"(dtype {raw.dtype})."
            )
    elif centre.is_complex():
        raise ParameterTypeError(f"{who}centre must be real, got a {centre.dtype} tensor.")
    out = xp.ascontiguousarray(centre, dtype=np.float64)
    if tuple(out.shape) != (d,):
        raise ParameterError(
            f"{who}centre must be a 1-D array of shape ({d},) (one entry per input), got "
            f"shape {tuple(out.shape)}."
        )
    if not xp.all_finite(out):
        raise NonFiniteParameterError(
            f"{who}centre contains NaN or infinity ({shown(centre)}); it must be finite."
        )
    return out


def fill_recentred(out: Any, stats: Any, centre: Any) -> None:
    """Fill `out` (new, empty degree-2 statistics with the folds and backend of `stats`) with
    the statistics of the rows of `stats` about `centre` (checked). O(p^2) per fold."""
    delta = centre - stats.input_shift
    shift_x = stats.shift_x.clone() if stats._device is not None else stats.shift_x.copy()
    _quadratic.recentre_rows(shift_x, delta)
    shift_x += _quadratic.recentre_constant(delta)
    out._device = stats._device
    out.rows_seen = stats.rows_seen
    out._allocate(stats.n_features, stats.n_targets, shift_x, stats.shift_y, centre)
    out.count[...] = stats.count
    out.sum_y[...] = stats.sum_y
    out.yty[...] = stats.yty
    for f in range(stats.n_folds):
        out.sum_x[f] = stats.sum_x[f]
        _quadratic.recentre_rows(out.sum_x[f], delta)
        out.xty[f] = stats.xty[f]
        _quadratic.recentre_rows(out.xty[f], delta)
        out.xtx[f] = _quadratic.recentre_gram(stats.xtx[f] * 1.0, delta)

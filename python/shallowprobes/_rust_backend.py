"""The Rust core behind the same function signatures as `_numpy_backend`.

Only dtype/contiguity adaptation happens here: X is handed over as it is (float32 or float64,
any strides; the core reads it in place), small float64 arrays are made contiguous.
"""

from __future__ import annotations

import numpy as np

from . import _core

name = "rust"


def _f64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def all_finite(X: np.ndarray) -> bool:
    return bool(_core.all_finite(X))


def accumulate(X, Y, fold_ids, shift_x, shift_y, count, sum_x, sum_y, xtx, xty, yty) -> None:
    folds = None if fold_ids is None else np.ascontiguousarray(fold_ids, dtype=np.int64)
    _core.accumulate(
        X, _f64(Y), folds, _f64(shift_x), _f64(shift_y), count, sum_x, sum_y, xtx, xty, yty
    )


def spectrum(gram: np.ndarray, cxy: np.ndarray):
    return _core.spectrum(_f64(gram), _f64(cxy))


def spectra(grams: np.ndarray, cxys: np.ndarray):
    return _core.spectra(_f64(grams), _f64(cxys))


def ridge_path(lam, V, B, perp, alphas, with_coefs: bool = True):
    return _core.ridge_path(_f64(lam), _f64(V), _f64(B), _f64(perp), _f64(alphas), with_coefs)


def heldout_sse(xtx, xty, yty_diag, sum_x, sum_y, n, coefs, offsets) -> np.ndarray:
    return _core.heldout_sse(
        _f64(xtx), _f64(xty), _f64(yty_diag), _f64(sum_x), _f64(sum_y), float(n),
        _f64(coefs), _f64(offsets),
    )  # fmt: skip


def loo_predictions(X, x_mean, V, lam, B, Y, y_mean, alphas, n_total, fit_intercept):
    return _core.loo_predictions(
        X, _f64(x_mean), _f64(V), _f64(lam), _f64(B), _f64(Y), _f64(y_mean), _f64(alphas),
        float(n_total), bool(fit_intercept),
    )  # fmt: skip


def accumulate_quadratic(
    X, Y, fold_ids, shift_in, shift_x, shift_y, count, sum_x, sum_y, xtx, xty, yty
) -> None:
    folds = None if fold_ids is None else np.ascontiguousarray(fold_ids, dtype=np.int64)
    _core.accumulate_quadratic(
        X, _f64(Y), folds, _f64(shift_in), _f64(shift_x), _f64(shift_y),
        count, sum_x, sum_y, xtx, xty, yty,
    )  # fmt: skip


def expand_quadratic(X, shift_in, quad_scale: float) -> np.ndarray:
    return _core.expand_quadratic(X, _f64(shift_in), float(quad_scale))

"""Plain numpy implementation of the numerical primitives (the reference and the fallback).

Every function here has a twin with the same signature in the Rust core
(`shallowprobes._core`); tests check that the two agree. The formulas are those of DESIGN.md §3:
statistics are additive over rows; a ridge path comes from one symmetric eigendecomposition of
the (centred) Gram; residual sums of squares, held-out errors and leave-one-out values follow
from the spectrum without refitting.
"""

from __future__ import annotations

import numpy as np

name = "numpy"

NON_FINITE = "X contains NaN or infinity"  # same message as the Rust core

# Rows handled at a time when a pass over X is needed; bounds temporary memory to O(block * d).
_BLOCK_ROWS = 4096


def all_finite(X: np.ndarray) -> bool:
    for start in range(0, X.shape[0], _BLOCK_ROWS):
        if not np.isfinite(X[start : start + _BLOCK_ROWS]).all():
            return False
    return True


def accumulate(
    X: np.ndarray,
    Y: np.ndarray,
    fold_ids: np.ndarray | None,
    shift_x: np.ndarray,
    shift_y: np.ndarray,
    count: np.ndarray,
    sum_x: np.ndarray,
    sum_y: np.ndarray,
    xtx: np.ndarray,
    xty: np.ndarray,
    yty: np.ndarray,
) -> None:
    """Add the shifted statistics of rows (X, Y) into the per-fold accumulators, in place.

    With shift s (and t for Y) the statistics are of (x - s) and (y - t): choosing s near the
    data mean keeps the later centring free of catastrophic cancellation.
    """
    n_folds = count.shape[0]
    if fold_ids is None:
        fold_ids = np.zeros(X.shape[0], dtype=np.int64)
    for f in range(n_folds):
        rows = np.flatnonzero(fold_ids == f)
        for start in range(0, rows.size, _BLOCK_ROWS):
            idx = rows[start : start + _BLOCK_ROWS]
            xb = X[idx].astype(np.float64)
            if not np.isfinite(xb).all():
                raise ValueError(NON_FINITE)
            xb -= shift_x
            yb = Y[idx].astype(np.float64) - shift_y
            count[f] += idx.size
            sum_x[f] += xb.sum(axis=0)
            sum_y[f] += yb.sum(axis=0)
            xtx[f] += xb.T @ xb
            xty[f] += xb.T @ yb
            yty[f] += yb.T @ yb


def _clamp_tol(lam: np.ndarray) -> float:
    top = float(lam.max()) if lam.size else 0.0
    return max(top, 0.0) * lam.size * np.finfo(np.float64).eps


def spectrum(gram: np.ndarray, cxy: np.ndarray):
    """Eigendecomposition of a symmetric Gram and the target projections B = V^T cxy.

    Eigenvalues below round-off (relative to the largest, times the dimension) are set to zero,
    and so are the matching rows of B: those directions carry no signal, only rounding noise,
    and zeroing them makes alpha = 0 give the minimum-norm least-squares solution.
    Returns (lam ascending, V, B).
    """
    lam, V = np.linalg.eigh(gram)
    tol = _clamp_tol(lam)
    null = lam <= tol
    lam = np.where(null, 0.0, lam)
    B = V.T @ cxy
    B[null] = 0.0
    return lam, V, B


def spectra(grams: np.ndarray, cxys: np.ndarray):
    """`spectrum` of each of a stack of Grams (K, d, d) and cross-products (K, d, k)."""
    out = [spectrum(g, c) for g, c in zip(grams, cxys)]
    return (
        np.stack([o[0] for o in out]),
        np.stack([o[1] for o in out]),
        np.stack([o[2] for o in out]),
    )


def _inv_shifted(lam: np.ndarray, alpha: float) -> np.ndarray:
    """1/(lam + alpha) where positive, else 0 (pseudo-inverse; never divides by alpha alone)."""
    den = lam + alpha
    out = np.zeros_like(lam)
    pos = den > 0
    out[pos] = 1.0 / den[pos]
    return out


def ridge_path(
    lam: np.ndarray,
    V: np.ndarray,
    B: np.ndarray,
    perp: np.ndarray,
    alphas: np.ndarray,
    with_coefs: bool = True,
):
    """Coefficients, residual sums of squares and effective degrees of freedom for every alpha.

    W(alpha) = V diag(1/(lam+alpha)) B;  dof = sum_j lam_j/(lam_j+alpha) (the intercept's +1 is
    added by the caller). The RSS is written without cancellation:
    RSS = perp + sum_{lam_j>0} (alpha/(lam_j+alpha))^2 b_j^2/lam_j, where perp (per target) is the
    squared norm of the part of the centred targets outside the column space of X (see
    `residual_outside_span`). This equals ||yc||^2 - sum_j (lam_j + 2 alpha)/(lam_j+alpha)^2 b_j^2
    but stays accurate when alpha is tiny and the fit nearly interpolates (n < d).
    Returns (coefs (A,d,k) or None, rss (A,k), dof (A,)).
    """
    A = len(alphas)
    d, k = B.shape
    coefs = np.empty((A, d, k)) if with_coefs else None
    rss = np.empty((A, k))
    dof = np.empty(A)
    pos = lam > 0
    b2_over_lam = np.zeros_like(B)
    b2_over_lam[pos] = B[pos] ** 2 / lam[pos, None]
    for a, alpha in enumerate(alphas):
        r = _inv_shifted(lam, float(alpha))
        if with_coefs:
            coefs[a] = V @ (B * r[:, None])
        shrink = np.where(pos, alpha * r, 0.0)
        rss[a] = perp + (shrink * shrink) @ b2_over_lam
        dof[a] = float(lam @ r)
    return coefs, rss, dof


def residual_outside_span(lam: np.ndarray, B: np.ndarray, cyy: np.ndarray) -> np.ndarray:
    """||yc||^2 - sum_{lam_j>0} b_j^2/lam_j: the least-squares residual (alpha -> 0), per target."""
    pos = lam > 0
    explained = (B[pos] ** 2 / lam[pos, None]).sum(axis=0)
    return np.maximum(cyy - explained, 0.0)


def heldout_sse(
    xtx: np.ndarray,
    xty: np.ndarray,
    yty_diag: np.ndarray,
    sum_x: np.ndarray,
    sum_y: np.ndarray,
    n: float,
    coefs: np.ndarray,
    offsets: np.ndarray,
) -> np.ndarray:
    """Sum of squared errors of linear models on rows known only through their statistics.

    The rows' statistics are of shifted data (x~ = x - s, y~ = y - t), and each model is given in
    the same shifted frame: prediction error e = y~ - x~^T W - c~. Expanding the square:
    SSE = y~y~ - 2 diag(W^T X~^T y~) + diag(W^T X~^T X~ W) - 2 c~ (sum y~ - W^T sum x~) + n c~^2.
    coefs (A,d,k), offsets (A,k) -> (A,k).
    """
    A, _, k = coefs.shape
    out = np.empty((A, k))
    for a in range(A):
        W = coefs[a]
        c = offsets[a]
        quad = np.einsum("ij,ij->j", W, xtx @ W)
        cross = np.einsum("ij,ij->j", W, xty)
        lin = sum_y - W.T @ sum_x
        out[a] = yty_diag - 2.0 * cross + quad - 2.0 * c * lin + n * c * c
    return np.maximum(out, 0.0)


def loo_predictions(
    X: np.ndarray,
    x_mean: np.ndarray,
    V: np.ndarray,
    lam: np.ndarray,
    B: np.ndarray,
    Y: np.ndarray,
    y_mean: np.ndarray,
    alphas: np.ndarray,
    n_total: float,
    fit_intercept: bool,
) -> np.ndarray:
    """Exact leave-one-out predictions for rows X (a chunk of the training rows).

    With Z = (X - x_mean) V: fitted value yhat = y_mean + Z diag(1/(lam+a)) B, leverage
    h = 1/n (intercept) + sum_j z_j^2/(lam_j+a), and the LOO prediction is y - (y - yhat)/(1 - h).
    Rows whose leverage is 1 (interpolated exactly, e.g. alpha = 0 with n <= d) get NaN.
    Returns (A, n, k).
    """
    A = len(alphas)
    n = X.shape[0]
    k = B.shape[1]
    out = np.empty((A, n, k))
    base = 1.0 / n_total if fit_intercept else 0.0
    for start in range(0, n, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n)
        Z = (X[start:stop].astype(np.float64) - x_mean) @ V
        Z2 = Z * Z
        yb = Y[start:stop]
        for a, alpha in enumerate(alphas):
            r = _inv_shifted(lam, float(alpha))
            fitted = y_mean + Z @ (B * r[:, None])
            h = base + Z2 @ r
            one_minus_h = 1.0 - h
            with np.errstate(divide="ignore", invalid="ignore"):
                loo = yb - (yb - fitted) / one_minus_h[:, None]
            loo[one_minus_h <= 1e-12] = np.nan
            out[a, start:stop] = loo
    return out

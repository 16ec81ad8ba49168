"""Plain numpy implementation of the numerical primitives (the reference and the fallback).

Every function here has a twin with the same signature in the Rust core
(`shallowprobes._core`); tests check that the two agree. The formulas are those of
docs/design.md §3: statistics are additive over rows; a ridge path comes from one symmetric
eigendecomposition of the (centred) Gram; residual sums of squares, held-out errors and
leave-one-out values follow from the spectrum without refitting.
"""

from __future__ import annotations

import numpy as np

from ._interrupt import check_interrupt
from .errors import NonFiniteError

name = "numpy"

NON_FINITE = "X contains NaN or infinity"  # same message as the Rust core

# Rows handled at a time when a pass over X is needed; bounds temporary memory to O(block * d).
_BLOCK_ROWS = 4096


def finite_max_abs(X: np.ndarray) -> float:
    """max |X| when every entry is finite, else nan (0 for an empty array); row blocks."""
    best = 0.0
    for start in range(0, X.shape[0], _BLOCK_ROWS):
        check_interrupt()  # Ctrl-C between row blocks
        block = np.abs(np.asarray(X[start : start + _BLOCK_ROWS], dtype=np.float64))
        if block.size:
            m = float(block.max())
            if not np.isfinite(m) or np.isnan(block).any():
                return float("nan")
            best = max(best, m)
    return best


def all_finite(X: np.ndarray) -> bool:
    return not np.isnan(finite_max_abs(X))


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
    stats = (count, sum_x, sum_y, xtx, xty, yty)
    _accumulate_blocks(X, Y, fold_ids, shift_x, shift_y, stats, _BLOCK_ROWS)


def _accumulate_blocks(X, Y, fold_ids, shift_x, shift_y, stats, step, features=None) -> None:
    """Add the statistics of (features(x) - shift_x, y - shift_y) into `stats`, fold by fold.

    `stats` is (count, sum_x, sum_y, xtx, xty, yty); rows are taken `step` at a time, as
    float64, and `features` (None: the identity) maps each block of X rows to its feature
    block. Raises ValueError(NON_FINITE) on a NaN or infinity in X.
    """
    count, sum_x, sum_y, xtx, xty, yty = stats
    if fold_ids is None:
        fold_ids = np.zeros(X.shape[0], dtype=np.int64)
    for f in range(count.shape[0]):
        rows = np.flatnonzero(fold_ids == f)
        for start in range(0, rows.size, step):
            check_interrupt()  # Ctrl-C between row blocks
            idx = rows[start : start + step]
            xb = X[idx].astype(np.float64)
            if not np.isfinite(xb).all():
                raise NonFiniteError(NON_FINITE)
            fb = xb if features is None else features(xb)
            fb -= shift_x
            yb = Y[idx].astype(np.float64) - shift_y
            count[f] += idx.size
            sum_x[f] += fb.sum(axis=0)
            sum_y[f] += yb.sum(axis=0)
            xtx[f] += fb.T @ fb
            xty[f] += fb.T @ yb
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
        if coefs is not None:
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
        check_interrupt()  # Ctrl-C between row blocks
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


# --- degree-2 (quadratic) features ------------------------------------------------------------


def n_quadratic_features(d: int) -> int:
    """Number of quadratic features of d inputs: d linear terms and d(d+1)/2 products."""
    d = int(d)
    return d + d * (d + 1) // 2


def _quadratic_rows_per_block(p: int) -> int:
    """Rows per block for p features: about 32 MB of float64 at most (as in the Rust core)."""
    return min(max(4_194_304 // max(p, 1), 256), _BLOCK_ROWS)


def _quadratic_terms(d: int, quad_scale: float):
    """Indices (a, b) of the products, a <= b in numpy.triu_indices order, and their weights."""
    a, b = np.triu_indices(d)
    weights = np.where(a == b, 1.0, np.sqrt(2.0)) * float(quad_scale)
    return a, b, weights


def _expand_block(u: np.ndarray, a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[u, w_ab * u_a * u_b] for a block of shifted float64 rows u (m, d)."""
    return np.concatenate([u, u[:, a] * u[:, b] * weights], axis=1)


def expand_quadratic(X: np.ndarray, shift_in: np.ndarray, quad_scale: float) -> np.ndarray:
    """Degree-2 features of the rows of X, (n, d + d(d+1)/2) float64.

    With u = x - shift_in: [u_0..u_{d-1}, then c * s_ab * u_a * u_b for a <= b (a outer)], where
    s_aa = 1, s_ab = sqrt(2) and c = quad_scale, so <phi(x), phi(g)> = <u, v> + c^2 <u, v>^2.
    """
    n, d = X.shape
    shift_in = np.asarray(shift_in, dtype=np.float64)
    if shift_in.shape != (d,):
        raise ValueError(f"shift_in has shape {shift_in.shape}, X has {d} columns")
    if not np.isfinite(quad_scale):
        raise ValueError(f"quad_scale must be finite, got {quad_scale}")
    p = n_quadratic_features(d)
    a, b, weights = _quadratic_terms(d, quad_scale)
    out = np.empty((n, p))
    step = _quadratic_rows_per_block(p)
    for start in range(0, n, step):
        check_interrupt()  # Ctrl-C between row blocks
        xb = X[start : start + step].astype(np.float64)
        if not np.isfinite(xb).all():
            raise NonFiniteError(NON_FINITE)
        out[start : start + step] = _expand_block(xb - shift_in, a, b, weights)
    return out


def _check_quadratic_shapes(X, Y, fold_ids, shift_in, shift_x, shift_y, stats) -> None:
    """ValueError (before anything is written) when the arrays disagree in shape."""
    count, sum_x, sum_y, xtx, xty, yty = stats
    n, d = X.shape
    n_folds = count.shape[0]
    p = n_quadratic_features(d)
    k = sum_y.shape[1] if sum_y.ndim == 2 else -1
    if n_folds == 0:
        raise ValueError("statistics need at least one fold")
    expected = {
        "shift_in": (shift_in, (d,)),
        "shift_x": (shift_x, (p,)),
        "shift_y": (shift_y, (k,)),
        "Y": (Y, (n, k)),
        "sum_x": (sum_x, (n_folds, p)),
        "xtx": (xtx, (n_folds, p, p)),
        "xty": (xty, (n_folds, p, k)),
        "yty": (yty, (n_folds, k, k)),
    }
    for what, (arr, shape) in expected.items():
        if np.shape(arr) != shape:
            raise ValueError(f"{what} has shape {np.shape(arr)}, expected {shape}")
    if fold_ids is not None:
        fold_ids = np.asarray(fold_ids)
        if fold_ids.shape != (n,):
            raise ValueError(f"{fold_ids.size} fold ids for {n} rows")
        if fold_ids.size and (fold_ids.min() < 0 or fold_ids.max() >= n_folds):
            raise ValueError(f"fold ids must lie in [0, {n_folds})")


def accumulate_quadratic(
    X: np.ndarray,
    Y: np.ndarray,
    fold_ids: np.ndarray | None,
    shift_in: np.ndarray,
    shift_x: np.ndarray,
    shift_y: np.ndarray,
    count: np.ndarray,
    sum_x: np.ndarray,
    sum_y: np.ndarray,
    xtx: np.ndarray,
    xty: np.ndarray,
    yty: np.ndarray,
) -> None:
    """`accumulate` for the quadratic features: statistics of f = phi(x; shift_in) - shift_x.

    phi is `expand_quadratic` with quad_scale = 1; shift_in has d entries, shift_x and the
    feature statistics p = d + d(d+1)/2. Y is shifted by shift_y as in `accumulate`. Rows are
    expanded one block at a time, so memory stays O(block * p).
    """
    stats = (count, sum_x, sum_y, xtx, xty, yty)
    _check_quadratic_shapes(X, Y, fold_ids, shift_in, shift_x, shift_y, stats)
    d = X.shape[1]
    a, b, weights = _quadratic_terms(d, 1.0)
    step = _quadratic_rows_per_block(n_quadratic_features(d))

    def features(xb: np.ndarray) -> np.ndarray:
        return _expand_block(xb - shift_in, a, b, weights)

    _accumulate_blocks(X, Y, fold_ids, shift_x, shift_y, stats, step, features)

"""Plain numpy implementation of the numerical primitives (the reference and the fallback).

Every function here has a twin with the same signature in the Rust core
(`shallowprobes._core`); tests check that the two agree. The formulas are those of
docs/design.md §3: statistics are additive over rows; a ridge path comes from one symmetric
eigendecomposition of the (centred) Gram; residual sums of squares, held-out errors and
leave-one-out values follow from the spectrum without refitting.
"""

from __future__ import annotations

import numpy as np

from .._interrupt import check_interrupt
from ..errors import NonFiniteError
from . import formulas
from .numpy_ops import NUMPY_OPS

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


# The ridge kernels: one statement in `formulas`, shared with torch_kernels; here only the host
# namespace and the row blocking.
def spectrum(gram: np.ndarray, cxy: np.ndarray):
    """Eigendecomposition of a symmetric Gram and the target projections B = V^T cxy, null
    directions zeroed (`formulas.clamp_spectrum`). Returns (lam ascending, V, B)."""
    lam, V = np.linalg.eigh(gram)
    return formulas.clamp_spectrum(lam, V, np.asarray(cxy, dtype=np.float64), NUMPY_OPS)


def spectra(grams: np.ndarray, cxys: np.ndarray):
    """`spectrum` of each of a stack of Grams (K, d, d) and cross-products (K, d, k)."""
    lam, V = np.linalg.eigh(grams)
    return formulas.clamp_spectrum(lam, V, np.asarray(cxys, dtype=np.float64), NUMPY_OPS)


def ridge_path(lam, V, B, perp, alphas, with_coefs: bool = True):
    """`formulas.ridge_path`: (coefs (A, d, k) or None, rss (A, k), dof (A,))."""
    al = np.asarray(alphas, dtype=np.float64).reshape(-1)
    return formulas.ridge_path(lam, V, B, np.asarray(perp, dtype=np.float64), al, NUMPY_OPS,
                               with_coefs)  # fmt: skip


def residual_outside_span(lam: np.ndarray, B: np.ndarray, cyy: np.ndarray) -> np.ndarray:
    """`formulas.residual_outside_span`, per target."""
    return formulas.residual_outside_span(lam, B, np.asarray(cyy, dtype=np.float64), NUMPY_OPS)


def heldout_sse(xtx, xty, yty_diag, sum_x, sum_y, n, coefs, offsets) -> np.ndarray:
    """`formulas.heldout_sse`: (A, k) held-out SSE of the models on rows known through their
    shifted statistics."""
    return formulas.heldout_sse(xtx, xty, np.asarray(yty_diag, dtype=np.float64), sum_x, sum_y,
                                float(n), coefs, offsets, NUMPY_OPS)  # fmt: skip


def loo_predictions(X, x_mean, V, lam, B, Y, y_mean, alphas, n_total, fit_intercept):
    """Exact leave-one-out predictions (A, n, k) for rows X (a chunk of the training rows),
    block by block (`formulas.loo_block`); leverage-1 rows get NaN."""
    al = np.asarray(alphas, dtype=np.float64).reshape(-1)
    n, k = X.shape[0], B.shape[1]
    out = np.empty((al.size, n, k))
    base = 1.0 / n_total if fit_intercept else 0.0
    interpolating = formulas.loo_interpolating(lam, n_total, fit_intercept)
    step = formulas.loo_block_size(X.shape[1], al.size, k, cap=_BLOCK_ROWS)
    for start in range(0, n, step):
        check_interrupt()  # Ctrl-C between row blocks
        sl = slice(start, min(start + step, n))
        Z = (X[sl].astype(np.float64) - x_mean) @ V
        out[:, sl] = formulas.loo_block(Z, np.asarray(Y[sl], dtype=np.float64), lam, B, y_mean,
                                        al, base, NUMPY_OPS, interpolating)  # fmt: skip
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


# --- monitors: the quotient projection and the scores of a bank -------------------------------
# Rows per block: about this many float64 entries of X at a time (as the monitors' code does).
_MONITOR_BLOCK_ENTRIES = 1 << 22


def check_projection(X, centre, M) -> None:
    """ValueError unless X is (n, d), centre (d,) and M (d, r) (shapes only: any array type)."""
    shape = tuple(np.shape(X))
    if len(shape) != 2:
        raise ValueError(f"X must be a 2-D array (n, d), got shape {shape}")
    d = shape[1]
    if tuple(np.shape(centre)) != (d,):
        raise ValueError(f"centre has shape {tuple(np.shape(centre))}, X has {d} columns")
    m_shape = tuple(np.shape(M))
    if len(m_shape) != 2 or m_shape[0] != d:
        raise ValueError(f"M has shape {m_shape}, expected ({d}, r) for X's {d} columns")


def check_polynomials(X, linear, centres, intercepts, quadratics) -> int:
    """The number m of monitors; ValueError unless X is (n, d), linear and centres (m, d),
    intercepts (m,) and quadratics a sequence of m entries, each None or (d, d)."""
    shape = tuple(np.shape(X))
    if len(shape) != 2:
        raise ValueError(f"X must be a 2-D array (n, d), got shape {shape}")
    d = shape[1]
    w_shape = tuple(np.shape(linear))
    if len(w_shape) != 2 or w_shape[1] != d:
        raise ValueError(f"linear has shape {w_shape}, expected (m, {d}) for X's {d} columns")
    m = w_shape[0]
    for what, arr, want in (("centres", centres, (m, d)), ("intercepts", intercepts, (m,))):
        if tuple(np.shape(arr)) != want:
            raise ValueError(f"{what} has shape {tuple(np.shape(arr))}, expected {want}")
    if isinstance(quadratics, np.ndarray) or len(quadratics) != m:
        raise ValueError(f"quadratics must be a sequence of {m} entries (None or ({d}, {d}))")
    for j, Q in enumerate(quadratics):
        if Q is not None and tuple(np.shape(Q)) != (d, d):
            raise ValueError(f"quadratics[{j}] has shape {tuple(np.shape(Q))}, expected "
                             f"({d}, {d})")  # fmt: skip
    return m


def _monitor_blocks(X):
    """(rows, float64 block) of X, about `_MONITOR_BLOCK_ENTRIES` entries at a time."""
    step = max(16, _MONITOR_BLOCK_ENTRIES // max(X.shape[1], 1))
    for start in range(0, X.shape[0], step):
        check_interrupt()  # Ctrl-C between row blocks
        rows = slice(start, start + step)
        yield rows, np.asarray(X[rows], dtype=np.float64)


def project_rows(X, centre, M) -> np.ndarray:
    """(X - centre) @ M as (n, r) float64, in float64 row blocks (never a float64 copy of all
    of X). NaN and infinity in X propagate to their rows' outputs."""
    check_projection(X, centre, M)
    centre, M = np.asarray(centre, dtype=np.float64), np.asarray(M, dtype=np.float64)
    out = np.empty((X.shape[0], M.shape[1]))
    for rows, Xb in _monitor_blocks(X):
        out[rows] = (Xb - centre) @ M
    return out


def evaluate_polynomials(X, linear, centres, intercepts, quadratics) -> np.ndarray:
    """(n, m) float64 scores of m polynomial monitors
    f_j(x) = (x - c_j)^T Q_j (x - c_j) + w_j . (x - c_j) + b_j on the rows of X (n, d).

    linear: (m, d) covectors w_j; centres: (m, d); intercepts: (m,); quadratics: m entries,
    None for a degree-1 monitor or Q_j (d, d) (only its symmetric part enters the score). The
    degree-1 monitors are one product X @ W + (b - w . c); each degree-2 one is
    U @ w + b + ((U @ Q) * U).sum(1) with U = X - c; float64 row blocks. NaN and infinity in
    X propagate to their rows' outputs.
    """
    check_polynomials(X, linear, centres, intercepts, quadratics)
    W, C = np.asarray(linear, dtype=np.float64), np.asarray(centres, dtype=np.float64)
    b = np.asarray(intercepts, dtype=np.float64)
    Qs = [None if Q is None else np.asarray(Q, dtype=np.float64) for Q in quadratics]
    out = np.empty((X.shape[0], len(Qs)))
    return formulas.polynomial_scores(_monitor_blocks(X), W, C, b, Qs, out, NUMPY_OPS)

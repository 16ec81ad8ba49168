"""The ridge kernels, stated once for every array namespace (numpy and torch).

Each function takes its arrays already in one namespace -- float64 numpy arrays, or float64
tensors on one device -- and `xp`, that namespace's ops (`backends.NUMPY_OPS` or a
`torch_kernels.TorchOps`). `numpy_kernels` and `torch_kernels` only move their inputs into the
namespace and call these; the Rust core (rust/ridge.rs) is the one other statement of the same
formulas, and tests/test_backend_contract.py checks the three against each other.

Conventions (docs/design.md section 3): eigenvalues ascending; directions whose eigenvalue is
below round-off (largest x dimension x eps) count as null and are zeroed with their rows of
B = V^T cxy, so alpha = 0 gives the minimum-norm least-squares solution; 1/(lam + alpha) is 0
where lam + alpha is not positive (a pseudo-inverse, never a division by alpha alone).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

_EPS = float(np.finfo(np.float64).eps)
# (rows x alphas x targets) of LOO predictions formed at a time: bounds the block memory
_LOO_BLOCK_ENTRIES = 1 << 22


def null_mask(lam: Any, xp: Any) -> Any:
    """Eigenvalues at or below round-off: top x dimension x eps, per trailing axis (the
    largest eigenvalue is the last: eigenvalues are ascending)."""
    d = lam.shape[-1]
    if d == 0:
        return lam > 0
    top = xp.maximum(lam[..., -1:], 0.0)  # a negative top (round-off) clamps to 0
    return lam <= top * (d * _EPS)


def clamp_spectrum(lam: Any, V: Any, cxy: Any, xp: Any) -> tuple:
    """(lam, V, B) from an eigendecomposition: null eigenvalues and their rows of B zeroed.
    Works for one Gram (lam (d,), V (d, d), cxy (d, k)) and for stacks (leading axis K)."""
    null = null_mask(lam, xp)
    lam = xp.where(null, 0.0, lam)
    B = xp.swapaxes(V, -1, -2) @ cxy
    B = xp.where(null[..., :, None], 0.0, B)
    return lam, V, B


def inv_shifted(lam: Any, alphas: Any, xp: Any) -> Any:
    """(A, d): 1/(lam + alpha) where positive, else 0."""
    den = lam[None, :] + alphas[:, None]
    pos = den > 0
    return xp.where(pos, 1.0 / xp.where(pos, den, 1.0), 0.0)


def _b2_over_lam(lam: Any, B: Any, xp: Any) -> Any:
    pos = lam > 0
    safe = xp.where(pos, lam, 1.0)
    return xp.where(pos[:, None], B * B / safe[:, None], 0.0)


def ridge_path(lam: Any, V: Any, B: Any, perp: Any, alphas: Any, xp: Any,
               with_coefs: bool = True) -> tuple:  # fmt: skip
    """Coefficients, residual sums of squares and effective degrees of freedom for every alpha.

    W(alpha) = V diag(1/(lam+alpha)) B;  dof = sum_j lam_j/(lam_j+alpha) (the intercept's +1 is
    added by the caller). The RSS is written without cancellation:
    RSS = perp + sum_{lam_j>0} (alpha/(lam_j+alpha))^2 b_j^2/lam_j, where perp (per target) is
    the squared norm of the part of the centred targets outside the column space of X
    (`residual_outside_span`). This equals ||yc||^2 - sum_j (lam_j + 2 alpha)/(lam_j+alpha)^2
    b_j^2 but stays accurate when alpha is tiny and the fit nearly interpolates (n < d).
    Returns (coefs (A, d, k) or None, rss (A, k), dof (A,)).
    """
    r = inv_shifted(lam, alphas, xp)  # (A, d)
    shrink = xp.where((lam > 0)[None, :], alphas[:, None] * r, 0.0)
    rss = perp[None, :] + (shrink * shrink) @ _b2_over_lam(lam, B, xp)
    dof = r @ lam
    coefs = V @ (B[None, :, :] * r[:, :, None]) if with_coefs else None
    return coefs, rss, dof


def residual_outside_span(lam: Any, B: Any, cyy: Any, xp: Any) -> Any:
    """||yc||^2 - sum_{lam_j>0} b_j^2/lam_j: the least-squares residual (alpha -> 0), per
    target, clamped at 0."""
    explained = xp.einsum("dk->k", _b2_over_lam(lam, B, xp))
    return xp.maximum(cyy - explained, 0.0)


def heldout_sse(xtx: Any, xty: Any, yty_diag: Any, sum_x: Any, sum_y: Any, n: float,
                coefs: Any, offsets: Any, xp: Any) -> Any:  # fmt: skip
    """Sum of squared errors of linear models on rows known only through their statistics.

    The rows' statistics are of shifted data (x~ = x - s, y~ = y - t), and each model is given
    in the same shifted frame: prediction error e = y~ - x~^T W - c~. Expanding the square:
    SSE = y~y~ - 2 diag(W^T X~^T y~) + diag(W^T X~^T X~ W) - 2 c~ (sum y~ - W^T sum x~) + n c~^2.
    coefs (A, d, k), offsets (A, k) -> (A, k), clamped at 0.
    """
    if coefs.shape[0] == 0:
        return xp.zeros((0, coefs.shape[2]))
    rows = []
    for a in range(coefs.shape[0]):  # one alpha at a time: xtx @ W is (width, k)
        W, c = coefs[a], offsets[a]
        quad = xp.einsum("dk,dk->k", W, xtx @ W)
        cross = xp.einsum("dk,dk->k", W, xty)
        lin = sum_y - W.T @ sum_x
        rows.append(yty_diag - 2.0 * cross + quad - 2.0 * c * lin + float(n) * c * c)
    return xp.maximum(xp.stack(rows), 0.0)


def loo_block_size(width: int, n_alphas: int, k: int, cap: Optional[int] = None) -> int:
    """Rows per LOO block: A x k predictions per row, at most _LOO_BLOCK_ENTRIES at a time."""
    step = max(16, _LOO_BLOCK_ENTRIES // max(n_alphas * k, 1))
    return min(step, cap) if cap is not None else step


def loo_interpolating(lam: Any, n_total: float, fit_intercept: bool) -> bool:
    """Whether the Gram's kept directions span all n_total training rows (rank n - [intercept],
    as with more features than rows): `loo_block` then forms 1 - h and y - yhat directly."""
    return float((lam > 0).sum()) == float(n_total) - (1.0 if fit_intercept else 0.0)


def loo_block(Z: Any, yb: Any, lam: Any, B: Any, y_mean: Any, alphas: Any, base: float,
              xp: Any, interpolating: bool = False) -> Any:  # fmt: skip
    """Exact leave-one-out predictions (A, m, k) of one block of rows, given Z = (X - x_mean) V.

    Fitted value yhat = y_mean + Z diag(1/(lam+a)) B, leverage h = base + sum_j z_j^2/(lam_j+a)
    (base = 1/n with an intercept, else 0), LOO prediction y - (y - yhat)/(1 - h). Rows whose
    leverage is 1 (interpolated exactly, e.g. alpha = 0 with n <= d) get NaN.

    `interpolating` (`loo_interpolating`): the projection onto the Gram's kept directions is
    then I - base 11^T, so sum_j z_j^2 / lam_j = 1 - base and Z diag(1/lam) B = y - y_mean,
    and 1 - h and y - yhat are sum_j z_j^2 w_j and Z diag(w) B with w_j = alpha / (lam_j (lam_j +
    alpha)) = 1/lam_j - 1/(lam_j + alpha): no cancellation as alpha -> 0, where both tend to 0
    (formed as 1 - h and y - yhat they carried eps / (alpha / lam) of relative error, and NaN
    once 1 - h fell below 1e-12).
    """
    if interpolating:
        pos = lam > 0
        W = xp.where(pos[None, :], alphas[:, None] / xp.where(pos, lam, 1.0)[None, :], 0.0)
        W = W * inv_shifted(lam, alphas, xp)  # (A, d): alpha / lam / (lam + alpha)
        resid = Z @ (B[None, :, :] * W[:, :, None])  # (A, m, k)
        one_minus_h = ((Z * Z) @ W.T).T[:, :, None]  # (A, m, 1), sums of non-negative terms
        ok = one_minus_h > 0
        return xp.where(ok, yb[None] - resid / xp.where(ok, one_minus_h, 1.0), float("nan"))
    R = inv_shifted(lam, alphas, xp)  # (A, d)
    fitted = y_mean + Z @ (B[None, :, :] * R[:, :, None])
    one_minus_h = (1.0 - (base + (Z * Z) @ R.T)).T[:, :, None]  # (A, m, 1)
    ok = one_minus_h > 1e-12
    safe = xp.where(ok, one_minus_h, 1.0)
    loo = yb[None] - (yb[None] - fitted) / safe
    return xp.where(ok, loo, float("nan"))


def polynomial_scores(blocks: Any, W: Any, C: Any, b: Any, Qs: list, out: Any, xp: Any) -> Any:
    """Fill `out` (n, m) with the scores of m polynomial monitors
    f_j(x) = (x - c_j)^T Q_j (x - c_j) + w_j . (x - c_j) + b_j over float64 row `blocks`
    ((rows, block) pairs in the namespace of W, C and Qs).

    W, C (m, d), b (m,) floats, Qs m entries (None for a degree-1 monitor). The degree-1
    monitors are one product X @ W + (b - w . c); each degree-2 one is
    U @ w + b + ((U @ Q) * U).sum(1) with U = X - c. NaN and infinity in X propagate to their
    rows' outputs. (The Rust core, rust/project.rs, is the other statement: it reads one
    triangle of Q, half the arithmetic.)"""
    m = len(Qs)
    lin = [j for j in range(m) if Qs[j] is None]
    quad = [j for j in range(m) if Qs[j] is not None]
    if lin:
        W_lin = xp.stack([W[j] for j in lin], axis=1)
        const = xp.asarray([float(b[j]) - float(W[j] @ C[j]) for j in lin])
    for rows, Xb in blocks:
        if lin:
            out[rows, lin] = Xb @ W_lin + const
        for j in quad:
            U = Xb - C[j]
            out[rows, j] = U @ W[j] + float(b[j]) + ((U @ Qs[j]) * U).sum(1)
    return out

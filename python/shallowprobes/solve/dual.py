"""The dual (kernel) route of the exact degree-2 probe: the polynomial kernel from the row Gram,
double centring, and exact GCV / LOO / K-fold scores for every alpha from one
eigendecomposition of the n x n kernel (docs/design.md section 2).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_folds_leave_rows
from ..backends import formulas, ops_of, to_numpy
from ..solve.scoring import score_predictions


def poly_kernel(G: np.ndarray, gamma: float, in_place: bool) -> np.ndarray:
    """G + gamma G∘G (row-block-wise to bound temporaries)."""
    K = G if in_place else ops_of(G).empty(G.shape)
    step = max(1, (1 << 22) // max(G.shape[1], 1))
    for start in range(0, G.shape[0], step):
        g = G[start : start + step]
        K[start : start + step] = g + gamma * g * g
    return K


def double_centre(K: np.ndarray) -> None:
    """In place K <- H K H, H = I - 11^T/n (centres the features in kernel space)."""
    row = K.mean(axis=1)
    grand = row.mean()
    K -= row[:, None]
    K -= row[None, :]
    K += grand
    # exact symmetry for the eigensolver, block by block (K += K.T would copy all of K)
    n = K.shape[0]
    step = max(1, (1 << 22) // max(n, 1))
    for i in range(0, n, step):
        avg = 0.5 * (K[i : i + step, i:] + K[i:, i : i + step].T)
        K[i : i + step, i:] = avg
        K[i:, i : i + step] = avg.T


def inv_shifted(lam: Any, alpha: float) -> Any:
    """1/(lam + alpha), with 0 where lam + alpha is not positive (`formulas.inv_shifted`)."""
    xp = ops_of(lam)
    return formulas.inv_shifted(lam, xp.asarray(np.array([float(alpha)])), xp)[0]


def torch_ops_of_backend(backend: Any) -> Any:
    """TorchOps of the CPU device (backend="torch" on numpy rows)."""
    return backend.ops_for(backend.device_of())


def row_covariance(Uc: Any, xp: Any) -> Any:
    """Centred covariance (d, d), /n, of the rows Uc (as numpy.cov(bias=True))."""
    d = Uc.shape[1]
    if not xp.is_torch:
        return np.cov(Uc, rowvar=False, bias=True).reshape(d, d)
    Z = Uc - Uc.mean(axis=0)
    return (Z.T @ Z) / Uc.shape[0]


def dual_scores(lam, U, Bv, Y, Yc, y_mean, alphas, cv_name, scoring, folds, fit_intercept, K):
    """(per (A, k), joint (A,)) CV scores of kernel ridge on the centred kernel's spectrum.
    numpy or torch (on the spectrum's device) inputs; the scores are numpy."""
    xp = ops_of(lam)
    n, k = Y.shape
    A = len(alphas)
    pos = lam > 0
    base = 1.0 / n if fit_intercept else 0.0
    if cv_name == "gcv":
        per = np.empty((A, k))
        rank = int(pos.sum())
        unfit = n - (1.0 if fit_intercept else 0.0) - rank  # residual dof at alpha -> 0
        # The part of y outside the kernel's range, computed directly (the spectrum zeroes B
        # on clamped eigenvalues; ||Yc||^2 - ||B||^2 would cancel): exactly 0 at full rank.
        if unfit > 0:
            R = Yc - U[:, pos] @ Bv[pos]
            free = (R * R).sum(axis=0)
        else:
            free = xp.zeros(k)
        for i, a in enumerate(alphas):
            shrink = a / (lam[pos] + a) if a > 0 else xp.zeros(rank)
            rss = free + ((shrink[:, None] * Bv[pos]) ** 2).sum(axis=0)
            # as on the primal route: no cancellation between n and the dof
            resid = max(unfit, 0.0) + float(shrink.sum())
            per[i] = to_numpy(-(n * rss / (resid * resid))) if resid > 0 else -np.inf
        return per, per.mean(axis=1)
    preds = xp.empty((A, n, k))
    if cv_name == "loo":
        step = max(1, (1 << 22) // max(n, 1))
        for i, a in enumerate(alphas):
            r = lam * inv_shifted(lam, float(a))
            fitted = y_mean + U @ (r[:, None] * Bv)
            h = xp.empty(n)
            for start in range(0, n, step):
                blk = U[start : start + step]
                h[start : start + step] = base + (blk * blk) @ r
            one_minus_h = 1.0 - h
            with xp.errstate(divide="ignore", invalid="ignore"):
                loo = Y - (Y - fitted) / one_minus_h[:, None]
            loo[one_minus_h <= 1e-12] = np.nan
            preds[i] = loo
    else:
        check_folds_leave_rows(np.bincount(folds, minlength=K), n)
        for i, a in enumerate(alphas):
            r = lam * inv_shifted(lam, float(a))
            fitted = y_mean + U @ (r[:, None] * Bv)
            for f in range(K):
                sel = np.flatnonzero(folds == f)
                if sel.size == 0:
                    continue
                sel = xp.index(sel)
                Uf = U[sel]
                H = base + (Uf * r) @ Uf.T
                I_H = xp.eye(H.shape[0]) - H
                try:
                    resid = xp.solve(I_H, Y[sel] - fitted[sel])
                    preds[i, sel] = Y[sel] - resid
                except (np.linalg.LinAlgError, RuntimeError):  # torch's LinAlgError too
                    preds[i, sel] = np.nan
    if scoring == "squared_error" and not xp.is_torch:
        per = -np.mean((preds - Y[None]) ** 2, axis=1)
        return per, per.mean(axis=1)
    return score_predictions(preds, Y, scoring)

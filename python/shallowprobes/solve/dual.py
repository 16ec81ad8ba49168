"""The dual (kernel) route of the exact degree-2 probe: the polynomial kernel from the row Gram,
double centring, exact GCV / LOO / K-fold scores for every alpha from one eigendecomposition of
the n x n kernel (docs/design.md section 2), the solve for one gamma, and the polynomial
(Q, w, b) that the dual coefficients of the chosen solve expand to.

Estimator-free: `probes.quadratic` passes in the rows and its CV settings and keeps the gamma
search, the metric and the fitted attributes.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._validation import check_folds_leave_rows
from ..backends import formulas, ops_of, to_numpy
from ..solve.scoring import score_predictions
from .degree2 import default_alpha_grid_from_trace
from .ridge import RidgeSolution, select_alpha


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


def centred_copy(X: Any, Y: Any, backend: Any, fit_intercept: bool) -> tuple:
    """(xp, Uc, Y, centre) for the routes that solve from the rows (dual, subspace): Uc is a
    private float64 copy of X centred at its mean (at 0 without an intercept), in the
    namespace xp where the solve runs (torch's CPU device for numpy rows with
    backend="torch"), and Y is in that namespace too."""
    d = X.shape[1]
    on_host = backend.name != "torch" or ops_of(X).is_torch
    xp = ops_of(X) if on_host else torch_ops_of_backend(backend)
    if xp.is_torch:
        Uc, Y = xp.array(X), xp.asarray(Y)  # a private float64 copy on the device
    else:
        Uc = X.astype(np.float64)  # a private copy, centred in place
    centre = Uc.mean(axis=0) if fit_intercept else xp.zeros(d)
    Uc -= centre
    return xp, Uc, Y, centre


def fit_dual_gamma(
    G: Any,
    gamma: float,
    *,
    in_place: bool,
    alphas: Optional[np.ndarray],
    n_features: int,
    backend: Any,
    Y: Any,
    Yc: Any,
    y_mean: Any,
    fit_intercept: bool,
    cv_name: str,
    scoring: str,
    folds: Optional[np.ndarray],
    n_folds: int,
    alpha_per_target: bool,
) -> RidgeSolution:
    """Kernel ridge with the kernel G + gamma G∘G of the row Gram G (double-centred with an
    intercept; in_place: G itself becomes the kernel), alpha chosen by CV on `alphas` (None:
    the default grid from the kernel's trace, p = n_features, extended at improving edges).

    The solution has no coefficients yet: it keeps the spectrum (lam, U, B) of the kernel in
    `spectrum` for `dual_polynomial` (of the gamma finally chosen)."""
    K = poly_kernel(G, float(gamma), in_place=in_place)
    if fit_intercept:
        double_centre(K)
    default = alphas is None
    if alphas is None:
        alphas = default_alpha_grid_from_trace(float(K.trace()), n_features)
    lam, Ue, Bv = backend.spectrum(K, Yc)
    del K

    def scores(grid: np.ndarray) -> tuple:
        return dual_scores(
            lam, Ue, Bv, Y, Yc, y_mean, grid, cv_name, scoring, folds, fit_intercept, n_folds
        )

    alphas, per, joint, idx, edges, searched = select_alpha(
        scores, alphas, default, alpha_per_target
    )
    sol = RidgeSolution(None, None, alphas, idx, per, joint, searched=searched)
    sol.alpha_edges, sol.default_grid = edges, default
    sol.spectrum = (lam, Ue, Bv)
    return sol


def dual_polynomial(
    sol: RidgeSolution, gamma: float, Uc: Any, y_mean: Any, fit_intercept: bool, xp: Any
) -> tuple:
    """(Q (k, d, d), w (d, k), fitted (n, k)): the kernel expansion sum_i a_i k(h, h_i) of
    the solution `sol` of `fit_dual_gamma` at its chosen alphas, as a quadratic polynomial of
    u = h - mu (Uc: the centred rows, in namespace xp); sets sol.intercept and drops the
    spectrum."""
    n, d = Uc.shape
    g = float(gamma)
    lam, Ue, Bv = sol.__dict__.pop("spectrum")
    k = Bv.shape[1]
    dual = xp.empty((n, k))
    fitted = xp.empty((n, k))
    for t in range(k):
        alpha = float(sol.alphas[sol.alpha_index[t]])
        inv = inv_shifted(lam, alpha)
        dual[:, t] = Ue @ (inv * Bv[:, t])
        fitted[:, t] = y_mean[t] + Ue @ (lam * inv * Bv[:, t])
    if fit_intercept:
        # exactly in the centred subspace (sum_i a_i = 0): round-off along the constant
        # vector would otherwise add gamma sum(a) Uc^T Uc / n to Q below
        dual -= dual.mean(axis=0)
    # the kernel expansion sum_i a_i k(h, h_i) as a quadratic polynomial of u = h - mu
    w = Uc.T @ dual
    Q = xp.empty((k, d, d))
    for t in range(k):
        Qt = g * (Uc.T @ (Uc * dual[:, t : t + 1]))
        Q[t] = 0.5 * (Qt + Qt.T)
    if fit_intercept:
        S = Uc.T @ Uc
        intercept = y_mean - xp.einsum("tij,ij->t", Q, S) / n
    else:
        intercept = xp.zeros(k)
    sol.intercept = intercept
    return Q, w, fitted

"""The spectral cut-off of the quadratic block (quadratic_rank, and CP's sketch start): principal
Hessian directions of the ridge-whitened rows, the exact ridge on the subspace features, and
the refitting K-fold CV that chooses m, gamma and alpha with the subspace re-estimated in each
fold. Every step is orthogonally equivariant, so each metric keeps its invariance group.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..backends import copy_of, ops_of, to_numpy
from ..threads import check_interrupt
from . import degree2
from . import features as _quadratic
from .degree2 import (
    PHD_SHRINK,
    RANK_FOLDS,
)
from .ridge import (
    best_index,
    default_alpha_grid,
    edge_side,
    feature_blocks,
    warn_grid_edge,
)
from .stats import SufficientStats


# ---------------------------------------------------------------------------------- subspaces
def sorted_eig(M: Any, xp: Any, by_abs: bool, backend: Any = None) -> tuple:
    """(eigenvalues (host, descending by value or by |value|), eigenvectors as columns in M's
    namespace, in that order) of the symmetric part of M. Host matrices go through the
    backend's symmetric eigensolver (the Rust core's is several times faster than LAPACK's
    here), shifted to be positive semi-definite because it clamps negative eigenvalues."""
    S = 0.5 * (M + M.T)
    if backend is None or xp.is_torch:
        lam, V = xp.eigh(S)
        lam = np.asarray(to_numpy(lam), dtype=np.float64)
    else:
        d = S.shape[0]
        shift = 1.01 * float(np.sqrt((S * S).sum())) + 1e-300
        lam, V, _ = backend.spectrum(S + shift * np.eye(d), np.zeros((d, 1)))
        lam = np.asarray(lam, dtype=np.float64) - shift
    order = np.argsort(-np.abs(lam) if by_abs else -lam, kind="stable")
    return lam[order], V[:, xp.index(order)]


def eig_backend(est: Any, xp: Any) -> Any:
    """The backend module whose eigensolver `sorted_eig` uses for host arrays."""
    from ..backends import get_backend

    return None if xp.is_torch else get_backend(stats_backend_name(est, xp))


def loewdin_orthonormal(C: Any, xp: Any) -> Any:
    """The orthonormal basis closest to the columns of C (C (C^T C)^-1/2, Loewdin): equivariant
    under orthogonal maps of the rows and a function of C alone."""
    lam, E = xp.eigh(C.T @ C)
    lam_h = np.asarray(to_numpy(lam), dtype=np.float64)
    top = float(lam_h.max()) if lam_h.size else 0.0
    inv = np.where(lam_h > top * 1e-12, 1.0 / np.sqrt(np.maximum(lam_h, 1e-300)), 0.0)
    return C @ ((E * xp.asarray(inv)) @ E.T)


class WhitenedRows:
    """Ridge-whitened rows w = B (z - mean), B = (S + s I)^-1/2 with S the covariance of Z and
    s = PHD_SHRINK x its mean eigenvalue. It uses no labels, so it is computed once from all
    training rows and shared by every fold and target (like the centring)."""

    def __init__(self, Z: Any, xp: Any, backend: Any = None) -> None:
        n, d = Z.shape
        self.xp, self.backend = xp, backend
        Zc = Z - Z.mean(axis=0)
        lam, V = sorted_eig((Zc.T @ Zc) / n, xp, by_abs=False, backend=backend)
        lam = np.maximum(lam, 0.0)
        shrink = PHD_SHRINK * float(lam.mean()) if lam.mean() > 0 else 1.0
        self.B = (V * xp.asarray(1.0 / np.sqrt(lam + shrink))) @ V.T
        self.W = Zc @ self.B

    def directions(self, Yc: Any, m: int, rows: Any = None) -> Any:
        """`phd_directions` from the targets Yc of `rows` (None: all rows)."""
        xp = self.xp
        W = self.W if rows is None else self.W[rows]
        n, d = W.shape
        k = Yc.shape[1]
        if k == 1:
            M = W.T @ (W * Yc[:, :1]) / n
            _, P = sorted_eig(M, xp, by_abs=True, backend=self.backend)
        else:
            M2 = xp.zeros((d, d))
            for t in range(k):
                Mt = W.T @ (W * Yc[:, t : t + 1]) / n
                M2 += Mt @ Mt
            _, P = sorted_eig(M2, xp, by_abs=False, backend=self.backend)
        return loewdin_orthonormal(self.B @ P[:, : max(1, min(int(m), d))], xp)


def phd_directions(Z: Any, Yc: Any, m: int, xp: Any, backend: Any = None) -> Any:
    """(d, m) orthonormal covectors spanning the quadratic block's subspace, from the rows
    Z (n, d; the metric's coordinates) and centred targets Yc (n, k).

    The label-weighted second moment M = sum_i y_i w_i w_i^T / n of ridge-whitened rows
    w = B z, B = (S + s I)^-1/2 (S the covariance of Z, s = 0.1 x its mean eigenvalue) -- M is
    the gradient of the ridge loss with respect to Q at Q = 0 in those coordinates, and its
    leading eigenvectors are principal Hessian directions (Li, 1992). Take the m of largest
    |eigenvalue| (several targets: the m leading eigenvectors of sum_t M_t^2), map them back
    (B P) and orthonormalise. Every step commutes with an orthogonal change of Z, so the
    probe built on the subspace keeps the metric's invariance group; with metric="whiten"
    (S ~ I) this is plain pHd in whitened coordinates, an affine-equivariant reduction.
    Cost: O(n d^2) for S, the whitened rows and each M_t, plus two d x d eigendecompositions.
    """
    return WhitenedRows(Z, xp, backend).directions(Yc, m)


class SubspaceFeatureMap:
    """Features [z, scale * (s_ab (C^T z)_a (C^T z)_b)_{a<=b}] of rows z (already centred and
    in the metric's coordinates): the degree-2 features with Q restricted to span(C)."""

    def __init__(self, C: Any, scale: float) -> None:
        self.C = C
        self.scale = float(scale)
        d, m = C.shape
        self.width = d + m * (m + 1) // 2
        self.pairs = _quadratic.pairs_like(m, C)

    def __call__(self, X: Any) -> Any:
        xp = ops_of(self.C)
        Z = xp.asarray(X, dtype=np.float64)
        P = Z @ self.C
        a, b, s = self.pairs
        return xp.concatenate([Z, P[:, a] * P[:, b] * (s * self.scale)], axis=1)


def scaled_columns(stats: SufficientStats, start: int, scale: float) -> SufficientStats:
    """A copy of degree-1 statistics with the columns from `start` on scaled by `scale`."""
    out = stats.copy()
    r = float(scale)
    if r != 1.0:
        out.shift_x[start:] *= r
        out.sum_x[:, start:] *= r
        out.xtx[:, start:, :] *= r
        out.xtx[:, :, start:] *= r
        out.xty[:, start:, :] *= r
    return out


def select_columns(stats: SufficientStats, keep: np.ndarray) -> SufficientStats:
    """Degree-1 statistics of the feature columns `keep` only (exact: a sub-block)."""
    xp = stats._ops()
    idx = xp.index(np.asarray(keep))
    out = SufficientStats(stats.n_folds, stats.backend)
    out._device = stats._device
    out._allocate(len(keep), stats.n_targets, stats.shift_x[idx], stats.shift_y)
    out.count[...] = stats.count
    out.sum_x[...] = stats.sum_x[:, idx]
    out.sum_y[...] = stats.sum_y
    out.xtx[...] = stats.xtx[:, idx][:, :, idx]
    out.xty[...] = stats.xty[:, idx]
    out.yty[...] = stats.yty
    out.rows_seen = stats.rows_seen
    return out


def stats_backend_name(est: Any, xp: Any) -> str:
    if xp.is_torch:
        return "torch"
    return "auto" if est.backend == "torch" else est.backend


def subspace_coefficients(coef: Any, C: Any, gamma: float, xp: Any) -> tuple:
    """(Q (k, d, d), w (d, k)) of coefficients on `SubspaceFeatureMap` features."""
    d, m = C.shape
    k = coef.shape[1]
    padded = xp.concatenate([xp.zeros((m, k)), coef[d:]], axis=0)
    S, _ = _quadratic.coef_to_quadratic(padded, m, float(np.sqrt(gamma)))
    Q = xp.einsum("ia,tab,jb->tij", C, S, C)
    return 0.5 * (Q + xp.einsum("tij->tji", Q)), coef[:d] * 1.0


def linear_decision_rows(Z: Any, w: Any, b: Any) -> Any:
    return Z @ w + b


class RefitCV:
    """Refitting K-fold CV of the subspace probe (`fit_selected_subspace`): in each fold the
    subspace is re-estimated from the fold's training rows -- it is chosen with their labels,
    so CV on a subspace chosen with all rows would favour whatever fits the noise (a large
    m, a weak penalty of the quadratic block) -- the ridge is solved on them and the held-out
    rows' squared error is summed over folds, for every m <= m_max, gamma and alpha of a
    relative grid (alpha = multiplier x the mean eigenvalue of the fold's Gram; an explicit
    alphas grid as given). Per fold: one pass over the rows for the statistics of the widest
    subspace (the narrower ones are sub-blocks), then one eigendecomposition per (m, gamma).
    """

    def __init__(self, est: Any, Z: Any, Y: Any, m_max: int, folds, xp: Any,
                 white: Optional[WhitenedRows] = None) -> None:
        n, d = Z.shape
        white = WhitenedRows(Z, xp, eig_backend(est, xp)) if white is None else white
        self.est, self.n, self.d, self.k = est, n, d, Y.shape[1]
        self.fit_intercept = bool(est.fit_intercept)
        K = est._n_folds()
        if K > 1 and folds is not None:
            assign = np.asarray(folds)
        else:
            K = max(2, min(RANK_FOLDS, n))
            assign = np.arange(n) % K
        self.explicit = est._explicit_alphas()
        self.n_alphas = 19 if self.explicit is None else self.explicit.size
        _, self.pair_b, _ = _quadratic.pairs(m_max)
        name = stats_backend_name(est, xp)
        self.folds = []
        for f in range(K):
            check_interrupt()  # Ctrl-C between folds
            held = assign == f
            if not held.any() or (~held).sum() < 2:
                continue
            tr = np.flatnonzero(~held)
            tr = xp.index(tr) if xp.is_torch else tr
            Ytr = Y[tr]
            Yc = Ytr - Ytr.mean(axis=0) if self.fit_intercept else Ytr
            C = white.directions(Yc, m_max, tr)
            stats = SufficientStats(2, name)
            which = held.astype(np.int64)  # fold 1: the held-out rows
            for sl, F in feature_blocks(Z, SubspaceFeatureMap(C, 1.0)):
                stats._accumulate_validated(F, Y[sl], which[sl])
            self.folds.append(stats)

    def _fold_parts(self, i: int) -> tuple:
        """Per fold (cached): the training normal equations of the widest subspace and the
        eigendecomposition of their linear block A = V diag(lam) V^T, with V^T applied to the
        linear-quadratic block and to the linear part of X^T y."""
        cache = self.__dict__.setdefault("_parts", {})
        if i not in cache:
            stats = self.folds[i]
            sxp = stats._ops()
            ne = stats.normal_equations(self.fit_intercept, exclude_fold=1)
            d = self.d
            A = 0.5 * (ne.gram[:d, :d] + ne.gram[:d, :d].T)
            if sxp.is_torch:
                lam, V = sxp.eigh(A)
                cV = V.T @ ne.cxy[:d]
            else:  # the backend's solver (the core's: faster than LAPACK's here)
                lam, V, cV = stats._backend_module().spectrum(A, ne.cxy[:d])
            cache[i] = (ne, lam, V, V.T @ ne.gram[:d, d:], cV)
        return cache[i]

    def sse(self, m: int, gamma: float) -> np.ndarray:
        """(A, k) held-out squared error summed over the folds.

        Each (m, gamma) is a ridge on [z, sqrt(gamma) phi_quad(C^T z)_(first m)]: solved for
        every alpha by block elimination against the fold's one eigendecomposition of the
        linear block (exact; O(d q^2 + q^3 + d^2 k) per alpha with q = m(m+1)/2 quadratic
        columns, instead of a (d + q)^3 eigendecomposition per (m, gamma))."""
        d, k = self.d, self.k
        out = np.zeros((self.n_alphas, k))
        quad = np.flatnonzero(self.pair_b < m)
        keep = np.concatenate([np.arange(d), d + quad])
        r = float(np.sqrt(gamma))
        for i, stats in enumerate(self.folds):
            check_interrupt()
            ne, lam, V, BV, cV = self._fold_parts(i)
            sxp = stats._ops()
            qi = sxp.index(quad)
            BVq = BV[:, qi] * r  # V^T A-block coupling (d, q)
            Cq = ne.gram[d:, d:][qi][:, qi] * gamma
            c2 = ne.cxy[d:][qi] * r
            width = d + quad.size
            trace = float(lam.sum()) + float(sxp.diagonal(Cq).sum())
            scale = trace / width if trace > 0 else 1.0
            grid = self.explicit if self.explicit is not None else np.logspace(-6, 3, 19) * scale
            coefs = sxp.zeros((len(grid), width, k))
            eye = sxp.eye(quad.size)
            top = float(lam.max()) if lam.shape[0] else 0.0
            tiny = top * d * np.finfo(np.float64).eps  # the core's clamp of round-off
            lam_c = sxp.where(lam > tiny, lam, 0.0)
            for j, alpha in enumerate(grid):
                den = lam_c + float(alpha)
                inv = sxp.where(den > 0, 1.0 / sxp.where(den > 0, den, 1.0), 0.0)
                if quad.size:
                    S = Cq + float(alpha) * eye - BVq.T @ (BVq * inv[:, None])
                    rhs = c2 - BVq.T @ (cV * inv[:, None])
                    try:
                        b2 = sxp.solve(0.5 * (S + S.T), rhs)
                    except (np.linalg.LinAlgError, RuntimeError):
                        b2 = sxp.zeros((quad.size, k))
                    b1 = V @ (inv[:, None] * (cV - BVq @ b2))
                    coefs[j, :d], coefs[j, d:] = b1, b2
                else:
                    coefs[j, :d] = V @ (inv[:, None] * cV)
            x_mean = ne.x_mean[sxp.index(keep)] * sxp.asarray(
                np.concatenate([np.ones(d), np.full(quad.size, r)]))
            sub = scaled_columns(select_columns(stats, keep), d, r)
            icpt = ne.y_mean[None, :] - sxp.einsum("d,adk->ak", x_mean, coefs)
            offsets = icpt + sxp.einsum("d,adk->ak", sub.shift_x, coefs) - sub.shift_y[None, :]
            out += to_numpy(sub._backend_module().heldout_sse(
                sub.xtx[1], sub.xty[1], copy_of(sxp.diagonal(sub.yty[1])), sub.sum_x[1],
                sub.sum_y[1], float(sub.count[1]), coefs, offsets,
            ))  # fmt: skip
        return out


def refit_select(est: Any, Z: Any, Y: Any, ranks: list, folds, xp: Any,
                  white: Optional[WhitenedRows] = None) -> dict:
    """(m, gamma, alpha index) of the subspace probe by refitting K-fold CV (`RefitCV`) on
    the joint squared error; ties go to the smaller m, the smaller gamma, the larger alpha.
    The default gamma grid grows at an improving edge as in `_search_gammas`. Returns
    {"m", "gamma", "alpha_index", "ranks", "gammas", "scores" (M, G, A), "alpha_edge",
    "gamma_edge"}."""
    n = Z.shape[0]
    cv = RefitCV(est, Z, Y, max(ranks), folds, xp, white)
    gammas = [float(g) for g in est._gamma_values(float((Z * Z).sum()) / n)]
    table = {}

    def column(g: float) -> np.ndarray:  # (M, A) joint scores of one gamma
        if g not in table:
            table[g] = np.stack([-cv.sse(m, g).sum(axis=1) / n for m in ranks])
        return table[g]

    grown = {"low": 0, "high": 0}
    while True:
        scores = np.stack([column(g) for g in gammas], axis=1)  # (M, G, A)
        M, G, A = scores.shape
        flat = scores.reshape(-1)
        # preference among ties: smaller m, then smaller gamma, then larger alpha
        mi, gi, ai = np.unravel_index(np.arange(flat.size), scores.shape)
        order_g = np.argsort(np.argsort(gammas))
        prefer = -(mi * G * A + order_g[gi] * A) * 1.0 + ai
        best = int(best_index(flat, prefer))
        bm, bg, ba = (int(v) for v in np.unravel_index(best, scores.shape))
        by_gamma = scores[bm].max(axis=1)  # (G,)
        g_side = edge_side(by_gamma, np.asarray(gammas), bg) if G > 1 else None
        extensible = grown[g_side] < degree2.GAMMA_EXTENSIONS if g_side is not None else False
        grow = est.gamma is None and extensible
        side = g_side if grow else None
        if side is None:
            break
        grown[side] += 1
        if side == "low":
            gammas.insert(0, min(gammas) / degree2.GAMMA_STEP)
        else:
            gammas.append(max(gammas) * degree2.GAMMA_STEP)
    a_side = edge_side(scores[bm, bg], np.arange(A, dtype=np.float64), ba)
    return {"m": ranks[bm], "gamma": gammas[bg], "alpha_index": ba, "ranks": list(ranks),
            "gammas": np.asarray(gammas), "scores": scores, "alpha_edge": a_side,
            "gamma_edge": g_side, "explicit": cv.explicit}  # fmt: skip


def fit_selected_subspace(est: Any, Z: Any, Y: Any, folds, choice: dict, xp: Any,
                           quiet: bool = False, white: Optional[WhitenedRows] = None) -> tuple:
    """The subspace probe on all rows at the (m, gamma, alpha) of `refit_select`: the
    subspace from all rows, one ridge solve. Returns (solution, C)."""
    n, d = Z.shape
    Yc = Y - Y.mean(axis=0) if est.fit_intercept else Y
    white = WhitenedRows(Z, xp, eig_backend(est, xp)) if white is None else white
    C = white.directions(Yc, choice["m"])
    base = SufficientStats(est._n_folds(), stats_backend_name(est, xp))
    scale = float(np.sqrt(choice["gamma"]))
    fmap = SubspaceFeatureMap(C, scale)
    for sl, F in feature_blocks(Z, fmap):
        base._accumulate_validated(F, Y[sl], None if folds is None else folds[sl])
    if choice["explicit"] is not None:
        grid = choice["explicit"]
    else:
        grid = default_alpha_grid(base.normal_equations(bool(est.fit_intercept)).gram)
    alpha = float(grid[choice["alpha_index"]])
    sol = est._ridge_solve(base, (Z, Y, folds), np.array([alpha]), feature_map=fmap,
                           warn_edges=False)  # fmt: skip
    sol.refit_alphas = np.asarray(grid, dtype=np.float64)
    if not quiet and not est._quiet_edges:
        owner, cv = type(est).__name__, est._cv_name()
        warn_grid_edge(owner, "alpha", sol.refit_alphas, [choice["alpha_edge"]],
                        choice["explicit"] is None, cv)  # fmt: skip
        if len(choice["gammas"]) > 1:
            warn_grid_edge(owner, "gamma", choice["gammas"], [choice["gamma_edge"]],
                            est.gamma is None, cv)  # fmt: skip
    return sol, C

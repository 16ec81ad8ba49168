"""The dual (kernel) route of the exact degree-2 probe: the polynomial kernel from the row Gram,
double centring, exact GCV / LOO / K-fold scores for every alpha from one decomposition of the
n x n kernel (GCV: a band reduction in the core; otherwise its eigendecomposition;
docs/design.md section 2), the solve for one gamma, and the polynomial (Q, w, b) that the dual
coefficients of the chosen solve expand to.

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

# Most entries (doubles) of the LOO residuals of a chunk of alphas, (n, alphas, k): 128 MiB.
LOO_RESIDUAL_ENTRIES = 1 << 24


def _row_block(n: int, xp: Any) -> int:
    """Rows per block of the n x n kernel's elementwise passes: 2^18 entries on the host, so
    that a block's temporary stays in cache and each pass reads K once (a quarter of the time
    of whole-matrix expressions at n = 5000); 2^22 on torch, where each block costs kernel
    launches."""
    return max(1, (1 << (22 if xp.is_torch else 18)) // max(n, 1))


def poly_kernel(G: np.ndarray, gamma: float, in_place: bool) -> np.ndarray:
    """G + gamma G∘G, row block by row block (one temporary block)."""
    xp = ops_of(G)
    K = G if in_place else xp.empty(G.shape)
    step = _row_block(G.shape[1], xp)
    for start in range(0, G.shape[0], step):
        g = G[start : start + step]
        sq = g * gamma  # (gamma g) g, as the expression g + gamma * g * g rounds
        sq *= g
        if in_place:
            g += sq
        else:
            sq += g
            K[start : start + step] = sq
    return K


def double_centre(K: np.ndarray) -> None:
    """In place K <- H K H, H = I - 11^T/n (centres the features in kernel space), row block by
    row block: K_ij - r_i - r_j + g with r the row means and g their mean, subtracted in that
    order because K_ij and r_i are of one size, so the first subtraction is exact (rounding
    r_i + r_j first left the intercept's null eigenvalue above the clamp at n = 3). The two
    triangles then differ by rounding; every solver the kernel goes to reads the lower one
    (`_core.band_reduce`, the core's and LAPACK's eigendecompositions, torch's eigh)."""
    row = K.mean(axis=1)
    _subtract_row_and_column(K, row, grand=row.mean())


def _subtract_row_and_column(M: Any, r: Any, grand: Any = None) -> None:
    """In place M_ij <- M_ij - r_i - r_j (+ grand), row block by row block, in that order
    (`double_centre` says why the order matters). M may be a view (the deflation's trailing
    block)."""
    step = _row_block(M.shape[0], ops_of(M))
    for start in range(0, M.shape[0], step):
        blk = M[start : start + step]
        blk -= r[start : start + step, None]
        blk -= r[None, :]
        if grand is not None:
            blk += grand


def lower_matvec(K: Any, v: Any) -> Any:
    """K v for the symmetric K whose lower triangle holds it (the upper one is not read: the
    two differ by rounding after `double_centre`), row block by row block."""
    xp = ops_of(K)
    n = K.shape[0]
    out = xp.zeros(n)
    step = _row_block(n, xp)
    for start in range(0, n, step):
        stop = min(start + step, n)
        below = K[start:stop, :start]  # wholly in the lower triangle
        out[start:stop] += below @ v[:start]
        out[:start] += below.T @ v[start:stop]
        square = K[start:stop, start:stop]
        lower = square.tril() if xp.is_torch else np.tril(square)
        out[start:stop] += lower @ v[start:stop]
        out[start:stop] += (lower.T @ v[start:stop]) - lower.diagonal() * v[start:stop]
    return out


class ConstantDeflation:
    """The double-centred kernel with its known null direction, the constant vector u =
    1/sqrt(n), taken out exactly: a Householder reflection P (P u = -e_1) turns K into P K P,
    whose first row and column hold only the round-off of the centring, and the kernel's
    spectrum is that of the trailing (n - 1) x (n - 1) block, its eigenvectors P [0; U'].

    Why: the spectrum of K itself returns u's eigenvalue as round-off of the centring, n eps
    max |K_ij| before centring, which on rows far from 0 exceeds the clamp n eps lam_max and
    counts u as a fitted direction (GCV scores off by 1e14 at n = 3), and which round-off
    mixes with the smallest kept eigenvector. The band route lifts u instead (K + c 11^T /
    n); a lift would do here only with c above lam_max, which would raise every eigenvalue's
    round-off to eps c.

    P = I - beta v v^T with v = u + e_1, beta = 1 / (1 + 1/sqrt(n)); v is 1/sqrt(n) in every
    row but the first, so P K P on rows and columns 1.. is K - s 1 z^T - s z 1^T, s =
    1/sqrt(n), z = p - (beta/2)(v^T p) v, p = beta K v: two rank-one passes like
    `double_centre`'s."""

    def __init__(self, K: Any) -> None:
        xp = ops_of(K)
        n = K.shape[0]
        self.xp, self.n = xp, n
        self.s = 1.0 / float(np.sqrt(n))
        self.beta = 1.0 / (1.0 + self.s)
        v = xp.full((n,), self.s)
        v[0] += 1.0
        self.v = v
        p = lower_matvec(K, v) * self.beta
        z = p - (0.5 * self.beta * float(v @ p)) * v
        trailing = K[1:, 1:]  # reflected in place
        _subtract_row_and_column(trailing, z[1:] * self.s)
        self.kernel = trailing if xp.is_torch else _compact_trailing_block(K)

    def targets(self, Yc: Any) -> Any:
        """(P Yc) without its first row: Yc in the reflected coordinates (Yc is orthogonal to
        u, so the dropped row is round-off)."""
        return Yc[1:] - (self.beta * self.s) * (self.v @ Yc)[None, :]

    def eigenvectors(self, U_inner: Any) -> Any:
        """P [0; U'] (n, m) from the trailing block's eigenvectors U' (n - 1, m)."""
        xp = self.xp
        along_v = U_inner.sum(axis=0) * (self.s * self.beta)  # beta v^T [0; U']
        U = xp.empty((self.n, U_inner.shape[1]))
        U[0] = -along_v * float(self.v[0])
        U[1:] = U_inner
        U[1:] -= along_v[None, :] * self.s
        return U


def _compact_trailing_block(K: np.ndarray) -> np.ndarray:
    """K[1:, 1:] moved, row block by row block, to the front of K's own buffer: a contiguous
    (n - 1, n - 1) array viewing K's memory (K itself is garbage afterwards). Why: the
    strided view K[1:, 1:] is copied whole by the Rust backend's `spectrum`
    (np.ascontiguousarray), one n^2 array more at the peak of the fit (measured: +33.6 MiB
    at n = 2100); LAPACK copies its input into its own workspace in any layout, so that copy
    bought nothing. A block's rows move to lower addresses than any row still to move; numpy
    buffers the overlap within a block (a block's size)."""
    if not K.flags.c_contiguous:
        return K[1:, 1:]
    m = K.shape[0] - 1
    flat = K.reshape(-1)
    step = _row_block(m, ops_of(K))
    for start in range(0, m, step):
        stop = min(start + step, m)
        flat[start * m : stop * m].reshape(stop - start, m)[...] = K[1 + start : 1 + stop, 1:]
    return flat[: m * m].reshape(m, m)


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
    # Squared error is summed per alpha as the residuals come (no (A, n, k) array of
    # held-out predictions: 1.6 GB at n = 2000, k = 4096 targets, 25 alphas, as when a map
    # between two models' hidden states is fitted); other scorings need the predictions.
    squared = scoring == "squared_error"
    sse = xp.zeros((A, k)) if squared else None
    preds = None if squared else xp.empty((A, n, k))
    # per alpha and direction j: r_j = lam_j / (lam_j + alpha), the shrinkage of the fit, and
    # 1 - r_j formed directly (alpha / (lam_j + alpha); 1 on clamped directions), without
    # the cancellation of 1 - r_j where r_j is near 1. Both CV schemes need I - H through it:
    # [1/sqrt(n) | U] (with an intercept, U deflated to n - 1 columns; U alone without one)
    # is orthogonal, so I - H = U diag(1 - r) U^T.
    m = lam.shape[0]
    al = xp.asarray(np.asarray(alphas, dtype=np.float64).reshape(-1))
    inv = formulas.inv_shifted(lam, al, xp)  # (A, m)
    shrink = lam[None, :] * inv
    one_minus_shrink = xp.where(pos[None, :], al[:, None] * inv, 1.0)
    if cv_name == "loo":
        # LOO residual e_i / (1 - h_ii), e = (I - H) y, for a chunk of alphas at a time: one
        # product with U for the chunk's residuals, one pass over U for all leverages (not
        # one of each per alpha). Both go through I - H = U diag(1 - r) U^T, so neither
        # cancels: e is not y - fitted (which cancels as alpha -> 0, where y - fitted is
        # ~alpha / lam of y and carries eps ||y|| of round-off), and 1 - h_i is
        # sum_j U_ij^2 (1 - r_j), not one minus the leverage.
        clamped = xp.index(np.flatnonzero(~to_numpy(pos)))
        outside = None
        if clamped.shape[0]:
            # B is zeroed on clamped directions (1 - r = 1 there whatever alpha): their part
            # of y is U_c U_c^T Yc, one term for every alpha
            U_clamped = U[:, clamped]
            outside = U_clamped @ (U_clamped.T @ Yc)
        keep = one_minus_shrink.T  # (m, A)
        one_minus_h = xp.empty((n, A))
        step = max(1, (1 << 22) // max(m, 1))
        for start in range(0, n, step):
            blk = U[start : start + step]
            one_minus_h[start : start + step] = (blk * blk) @ keep
        chunk = max(1, LOO_RESIDUAL_ENTRIES // max(n * k, 1))
        for a0 in range(0, A, chunk):
            c = min(chunk, A - a0)
            scaled = one_minus_shrink[a0 : a0 + c].T[:, :, None] * Bv[:, None, :]
            resid = (U @ scaled.reshape(m, c * k)).reshape(n, c, k)
            if outside is not None:
                resid += outside[:, None, :]
            for j in range(c):
                omh = one_minus_h[:, a0 + j]
                with xp.errstate(divide="ignore", invalid="ignore"):
                    err = resid[:, j] / omh[:, None]  # LOO prediction minus y, negated
                # a sum of non-negative terms, accurate where tiny: 0 only where a row is
                # interpolated exactly (alpha = 0 at full rank), NaN there
                err[omh <= 0] = np.nan
                if squared:
                    sse[a0 + j] = (err * err).sum(axis=0)  # type: ignore[index]
                else:
                    preds[a0 + j] = Y - err  # type: ignore[index]
    else:
        check_folds_leave_rows(np.bincount(folds, minlength=K), n)
        # Held-out residuals of fold f: (I - H_ff)^-1 (y_f - fitted_f), I - H_ff = U_f diag(1
        # - r) U_f^T: one symmetric product S S^T (numpy: SYRK, 2/3 of the time of forming
        # H_ff and subtracting it from I). Fold by fold, so each fold's rows of U are
        # gathered once, not once per alpha.
        for f in range(K):
            sel = np.flatnonzero(folds == f)
            if sel.size == 0:
                continue
            sel = xp.index(sel)
            Uf, Yf = U[sel], Y[sel]
            for i in range(A):
                fitted = y_mean + Uf @ (shrink[i][:, None] * Bv)
                S = Uf * xp.sqrt(one_minus_shrink[i])
                try:
                    resid = xp.solve(S @ S.T, Yf - fitted)
                except (np.linalg.LinAlgError, RuntimeError):  # torch's LinAlgError too
                    resid = xp.full((sel.shape[0], k), np.nan)
                if squared:
                    sse[i] += (resid * resid).sum(axis=0)  # type: ignore[index]
                else:
                    preds[i, sel] = Yf - resid  # type: ignore[index]
    if squared:
        per = to_numpy(-(sse / n))
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


class KernelSolve:
    """Kernel ridge on one (centred) kernel K along alpha grids, and the dual coefficients of
    the alphas finally chosen, from one decomposition of K.

    GCV with every alpha > 0 on the core (the rust backend, numpy arrays) goes through the
    core's band reduction K = Q B Q^T (`_core.band_reduce`): RSS(alpha) and the degrees of
    freedom from a band Cholesky per alpha, no eigenvectors (docs/design.md section 2), about
    a third of an eigendecomposition at n = 5000. That needs K numerically positive definite
    apart from known null directions, so it is taken only where K's rank is n (n - 1 with an
    intercept, whose null direction, the constant vector, is lifted exactly below) by
    construction: at most `n_features` + 1 rows. Everything else (LOO, K-fold, alpha = 0,
    more rows than features, the numpy and torch backends) uses K's spectrum (lam, U, B =
    U^T Yc), round-off eigenvalues clamped; with an intercept that is the spectrum of K with
    the constant vector deflated exactly (`ConstantDeflation`), so the null direction is
    neither counted nor mixed into a kept one. If B + alpha I is not positive definite for some
    alpha anyway (round-off eigenvalues below -alpha, e.g. from duplicated rows), K's spectrum
    takes over from then on.

    The solve owns K: the band route reduces it in place and keeps no copy (K is n^2 doubles,
    3.2 GB at n = 20000), so the rare fallback above gets K back as Q B Q^T from the
    reduction (`band_expand`, the cost of the reduction again)."""

    def __init__(self, K: Any, Yc: Any, backend: Any, cv_name: str,
                 alphas: Optional[np.ndarray], fit_intercept: bool, n_features: int):  # fmt: skip
        self.backend, self.Yc, self.fit_intercept = backend, Yc, fit_intercept
        self.kernel: Any = K  # None once the band reduction has overwritten it
        self.band: Optional[tuple] = None  # (reduced, factors) of `_core.band_reduce`
        self.spectrum: Optional[tuple] = None  # (lam, U, B)
        self.null_shift = 0.0
        n = K.shape[0]
        usable = (
            cv_name == "gcv"
            and getattr(backend, "name", "") == "rust"
            and isinstance(K, np.ndarray)
            and isinstance(Yc, np.ndarray)
            and n - int(fit_intercept) <= n_features
            and (alphas is None or bool(np.all(np.asarray(alphas) > 0)))
        )
        if usable:
            owned = K.dtype == np.float64 and K.flags.writeable and K.flags.aligned
            reduced = K if owned else np.array(K, dtype=np.float64, order="C")
            self.kernel = None
            if fit_intercept and n > 1:
                # The double-centred K has the constant vector as an exact null direction,
                # computed as a round-off eigenvalue whose alpha / (lam + alpha) would carry an
                # error of lam / alpha into the degrees of freedom at small alphas. Lifting it
                # to the mean eigenvalue c (K + c 11^T / n) changes nothing Yc (orthogonal to
                # 1) sees, and its term in alpha tr((K + alpha I)^-1) becomes alpha / (c +
                # alpha), which `scores` takes out exactly.
                self.null_shift = max(float(np.trace(K)) / (n - 1), np.finfo(float).tiny)
                reduced += self.null_shift / n
            self.band = (reduced, backend.band_reduce(reduced))
        else:
            self._use_spectrum()

    def _use_spectrum(self) -> None:
        if self.spectrum is None:
            if self.band is not None:
                # K back from its reduction, which then goes (it is n^2 doubles too). The
                # lift of the intercept's null direction (__init__) stays: it is c u u^T, and
                # the deflation below, which follows whenever there is a lift, turns it into
                # c e_1 e_1^T, in the first row and column it drops.
                self.kernel = self.backend.band_expand(*self.band)
                self.band = None
                self.null_shift = 0.0
            if self.kernel is None:
                raise RuntimeError("the kernel was released before its spectrum was needed")
            if self.fit_intercept and self.kernel.shape[0] > 1:
                deflation = ConstantDeflation(self.kernel)
                self.kernel = None
                lam, U_inner, Bv = self.backend.spectrum(
                    deflation.kernel, deflation.targets(self.Yc)
                )
                del deflation.kernel
                self.spectrum = (lam, deflation.eigenvectors(U_inner), Bv)
            else:
                self.spectrum = self.backend.spectrum(self.kernel, self.Yc)
        self.band = None
        self.kernel = None

    def release_kernel(self) -> None:
        """Drops K (alpha selection is over; the coefficients need only the decomposition)."""
        self.kernel = None

    def scores(self, alphas, Y, y_mean, cv_name, scoring, folds, fit_intercept, n_folds):
        """(per (A, k), joint (A,)) CV scores along `alphas` (`dual_scores` for the spectrum)."""
        grid = np.asarray(alphas, dtype=np.float64)
        if self.band is not None and cv_name == "gcv" and bool(np.all(grid > 0)):
            try:
                rss, resid = self.backend.band_gcv(*self.band, self.Yc, grid)
            except np.linalg.LinAlgError:
                self._use_spectrum()  # round-off eigenvalues below -alpha: clamp them
            else:
                n = self.Yc.shape[0]
                # the intercept's null direction is not a residual degree of freedom: take
                # out its term alpha / (c + alpha) (see __init__)
                if self.null_shift > 0:
                    resid = resid - grid / (self.null_shift + grid)
                with np.errstate(divide="ignore", invalid="ignore"):
                    per = np.where(
                        resid[:, None] > 0, -(n * rss) / (resid * resid)[:, None], -np.inf
                    )
                return per, per.mean(axis=1)
        self._use_spectrum()
        lam, U, Bv = self.spectrum  # type: ignore[misc]
        return dual_scores(
            lam, U, Bv, Y, self.Yc, y_mean, grid, cv_name, scoring, folds, fit_intercept, n_folds
        )

    def coefficients(self, alphas: list, y_mean: Any, xp: Any) -> tuple:
        """(dual (n, k), fitted (n, k)) of target t at alphas[t]."""
        n, k = self.Yc.shape
        if self.band is not None:
            al = np.asarray(alphas, dtype=np.float64)
            dual = self.backend.band_solve(*self.band, self.Yc, al)
            # (K + c 11^T / n + alpha I) a = Yc, so K a = Yc - alpha a - c mean(a) 1: the
            # fitted values without a product by K
            fitted = y_mean + self.Yc - al * dual - self.null_shift * dual.mean(axis=0)
            return dual, fitted
        lam, Ue, Bv = self.spectrum  # type: ignore[misc]
        dual = xp.empty((n, k))
        fitted = xp.empty((n, k))
        for t in range(k):
            inv = inv_shifted(lam, float(alphas[t]))
            dual[:, t] = Ue @ (inv * Bv[:, t])
            fitted[:, t] = y_mean[t] + Ue @ (lam * inv * Bv[:, t])
        return dual, fitted


def fit_dual_gamma(
    G: Any,
    gamma: float,
    *,
    in_place: bool,
    alphas: Optional[np.ndarray],
    n_features: int,
    fit_intercept: bool,
    **selection: Any,
) -> RidgeSolution:
    """Kernel ridge with the kernel G + gamma G∘G of the row Gram G (double-centred with an
    intercept; in_place: G itself becomes the kernel), alpha chosen by CV on `alphas` (None:
    the default grid from the kernel's trace, p = n_features, extended at improving edges);
    `selection`: the other keywords of `fit_kernel`.

    The solution has no coefficients yet: it keeps the kernel's decomposition (a
    `KernelSolve`) in `kernel_solve` for `dual_polynomial` (of the gamma finally chosen)."""
    K = poly_kernel(G, float(gamma), in_place=in_place)
    if fit_intercept:
        double_centre(K)
    return fit_kernel(
        K, alphas=alphas, n_features=n_features, fit_intercept=fit_intercept, **selection
    )


def fit_kernel(
    K: Any,
    *,
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
    """Kernel ridge on the centred kernel K (which the solve takes over: `KernelSolve`), alpha
    chosen by CV on `alphas` (None: the default grid from K's trace, the primal Gram's, with
    p = n_features, extended at improving edges). No coefficients yet: the decomposition is
    in the solution's `kernel_solve` (`KernelSolve.coefficients` gives them)."""
    default = alphas is None
    if alphas is None:
        alphas = default_alpha_grid_from_trace(float(K.trace()), n_features)
    solve = KernelSolve(
        K, Yc, backend, cv_name, None if default else alphas, fit_intercept, n_features
    )
    del K

    def scores(grid: np.ndarray) -> tuple:
        return solve.scores(grid, Y, y_mean, cv_name, scoring, folds, fit_intercept, n_folds)

    alphas, per, joint, idx, edges, searched = select_alpha(
        scores, alphas, default, alpha_per_target
    )
    solve.release_kernel()
    sol = RidgeSolution(None, None, alphas, idx, per, joint, searched=searched)
    sol.alpha_edges, sol.default_grid = edges, default
    sol.kernel_solve = solve
    return sol


def chosen_dual_coefficients(sol: RidgeSolution, y_mean: Any, fit_intercept: bool,
                             xp: Any) -> tuple:  # fmt: skip
    """(dual (n, k), fitted (n, k)) of target t at its chosen alpha, from the decomposition
    that `fit_kernel` left in `sol` (dropped here). With an intercept the dual coefficients
    are put exactly in the centred subspace (sum_i a_i = 0): round-off along the constant
    vector would otherwise reach the coefficients (the expansions of the callers weight it by
    the rows' mean, which the centring made 0 only up to rounding)."""
    solve = sol.__dict__.pop("kernel_solve")
    k = solve.Yc.shape[1]
    dual, fitted = solve.coefficients(
        [float(sol.alphas[sol.alpha_index[t]]) for t in range(k)], y_mean, xp
    )
    if fit_intercept:
        dual -= dual.mean(axis=0)
    return dual, fitted


def fit_linear_dual(Uc: Any, Y: Any, y_mean: Any, *, alphas: Optional[np.ndarray],
                    backend: Any, fit_intercept: bool, cv_name: str, scoring: str,
                    folds: Optional[np.ndarray], n_folds: int,
                    alpha_per_target: bool) -> tuple:  # fmt: skip
    """Linear ridge from the rows: the kernel Uc Uc^T (n x n) of the centred rows Uc (n, d),
    alpha chosen by exact GCV / LOO / K-fold on its decomposition, and w = Uc^T a of the dual
    coefficients a. The same probe as the primal solve from the d x d Gram (its nonzero
    eigenvalues are the kernel's; the hat matrix is the same), for n^2 d + n^3 instead of
    n d^2 + d^3: the cheaper route when there are fewer rows than features.

    Returns (solution without coef / intercept, w (d, k) in the coordinates of Uc, fitted
    values (n, k))."""
    K = Uc @ Uc.T
    xp = ops_of(K)
    if not backend.all_finite(K):
        raise ValueError(
            "the row Gram overflowed float64: some features have magnitude around 1e150 or "
            "more. Rescale X before fitting."
        )
    sol = fit_kernel(
        K, alphas=alphas, n_features=Uc.shape[1], backend=backend, Y=Y, Yc=Y - y_mean,
        y_mean=y_mean, fit_intercept=fit_intercept, cv_name=cv_name, scoring=scoring,
        folds=folds, n_folds=n_folds, alpha_per_target=alpha_per_target,
    )  # fmt: skip
    del K
    dual, fitted = chosen_dual_coefficients(sol, y_mean, fit_intercept, xp)
    return sol, Uc.T @ dual, fitted


def dual_polynomial(
    sol: RidgeSolution, gamma: float, Uc: Any, y_mean: Any, fit_intercept: bool, xp: Any
) -> tuple:
    """(Q (k, d, d), w (d, k), fitted (n, k)): the kernel expansion sum_i a_i k(h, h_i) of
    the solution `sol` of `fit_dual_gamma` at its chosen alphas, as a quadratic polynomial of
    u = h - mu (Uc: the centred rows, in namespace xp); sets sol.intercept and drops the
    kernel's decomposition."""
    n, d = Uc.shape
    g = float(gamma)
    # with an intercept, round-off in sum(a) would add gamma sum(a) Uc^T Uc / n to Q below:
    # the dual coefficients come exactly centred
    dual, fitted = chosen_dual_coefficients(sol, y_mean, fit_intercept, xp)
    k = dual.shape[1]
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

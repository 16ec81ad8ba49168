"""The CP factorisation's numerics: what the CP probes (`probes.cp`) compute without needing
the estimator -- column statistics of the rows, the alternating ridge (feature map, start,
rebalancing, and its loop around a half-step solver passed in), the rank-R start from a
symmetric Q and its L-BFGS polish, the probes' decision values, and the per-target store of
fitted probes both methods fill. Kept apart from the estimators, as scikit-learn keeps its
ridge solvers apart from its ridge estimators, so that the estimators hold parameters, the
choice of start and CV, and fitted attributes. Every function runs in the namespace of its
arrays (numpy, or torch tensors on their device; only Python scalars reach the host).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from ..backends import copy_of, ops_of, torch_backend
from ..threads import check_interrupt
from .subspace import sorted_eig


class CPFit(NamedTuple):
    """One target column's CP probe f(z) = sum_r (U[r] . z)(V[r] . z) + w . z + b, with its
    training decision values f, the iterations run and whether the stopping rule was met."""

    U: Any
    V: Any
    w: Any
    b: Any
    f: Any
    n_iter: int
    converged: bool


class CPFits:
    """The CP probes of k target columns, filled in one column at a time (`store`): factors
    (k, R, d) each, linear parts (d, k), intercepts (k,) and training decision values (n, k) in
    the namespace xp; iterations and convergence per column on the host."""

    def __init__(self, n: int, d: int, k: int, R: int, xp: Any) -> None:
        self.xp = xp
        self.factors_u = xp.zeros((k, R, d))
        self.factors_v = xp.zeros((k, R, d))
        self.w = xp.zeros((d, k))
        self.b = xp.zeros(k)
        self.fitted = xp.zeros((n, k))
        self.n_iter = np.zeros(k, dtype=np.intp)
        self.converged = np.zeros(k, dtype=bool)

    def store(self, t: int, fit: CPFit) -> None:
        """Column t's probe."""
        self.factors_u[t], self.factors_v[t] = fit.U, fit.V
        self.w[:, t], self.b[t] = fit.w, fit.b
        self.fitted[:, t] = fit.f
        self.n_iter[t], self.converged[t] = fit.n_iter, fit.converged

    def pulled_back(self, geom: Any) -> tuple:
        """(factors_u, factors_v, w) of probes fitted on the rows A h, in the coordinates of h:
        u . (A z) = (A^T u) . z for every factor and the linear part."""
        k, R, d = self.factors_u.shape
        fu = geom.pull_back_linear(self.factors_u.reshape(-1, d).T).T.reshape(k, R, d)
        fv = geom.pull_back_linear(self.factors_v.reshape(-1, d).T).T.reshape(k, R, d)
        return fu, fv, geom.pull_back_linear(self.w)


# ------------------------------------------------------------------------ row statistics
def column_mean(X: Any, xp: Any) -> Any:
    """Float64 column means of the rows X (numpy, or a tensor in its own namespace)."""
    if xp.is_torch:
        return X.detach().mean(dim=0, dtype=torch_backend().F64)
    return X.mean(axis=0, dtype=np.float64)


def row_covariance(X: Any, mean: Any, xp: Any) -> Any:
    """Centred covariance (d, d), /n, of the rows X (as numpy.cov(bias=True)); a tensor X
    is centred in float64 row blocks on its device."""
    n, d = X.shape
    if not xp.is_torch:
        return np.cov(np.asarray(X, dtype=np.float64), rowvar=False, bias=True).reshape(d, d)
    S = xp.zeros((d, d))
    step = max(1, (1 << 22) // max(d, 1))
    for start in range(0, n, step):
        Z = xp.asarray(X[start : start + step]) - mean
        S += Z.T @ Z
    return S / n


# ------------------------------------------------------------------------ alternating ridge
class CPFeatureMap:
    """Half-step features [(f_1 . z) z, ..., (f_R . z) z, z] of rows, z = h - centre."""

    def __init__(self, centre: np.ndarray, fixed: np.ndarray) -> None:
        self.centre = centre
        self.fixed = fixed  # (R, d)
        self.width = (fixed.shape[0] + 1) * centre.shape[0]

    def __call__(self, X: np.ndarray) -> np.ndarray:
        xp = ops_of(self.fixed)
        if xp.is_torch:  # a float64 copy of the block on the factors' device
            Z = xp.asarray(X) - self.centre
            P = Z @ self.fixed.T
            return xp.concatenate([*(P[:, r : r + 1] * Z for r in range(P.shape[1])), Z], axis=1)
        Z = X.astype(np.float64) - self.centre
        P = Z @ self.fixed.T  # (m, R)
        return np.hstack([*(P[:, r : r + 1] * Z for r in range(P.shape[1])), Z])


def initial_factor(X: Any, y: Any, centre: Any, R: int, rng: np.random.Generator, xp: Any,
                   random: bool) -> Any:
    """(R, d) starting factors, in X's namespace (random draws come from the host rng, so
    both namespaces start from the same numbers).

    Unit-norm factors are scaled by 1 / rms(h - centre) (the root-mean-square coordinate),
    so that v.z stays of order one whatever the data's units and the half-step features
    (v.z) z have the scale of the linear features z. Alpha is chosen in
    the first alternation and then held, so without this the fit would not be
    scale-equivariant (data at 1e20 collapsed to chance while data at 1 fitted well).
    """
    d = X.shape[1]
    M = xp.zeros((d, d))
    yc = y - y.mean()
    col_sq = xp.zeros(d)
    step = max(1, (1 << 22) // max(d, 1))
    for start in range(0, X.shape[0], step):
        Z = xp.asarray(X[start : start + step], dtype=np.float64) - centre
        col_sq += (Z * Z).sum(axis=0)
        if not random:
            M += Z.T @ (Z * yc[start : start + step, None])
    # rms per moving coordinate: constant columns (which the fit ignores) do not count
    moving = int((col_sq > 0).sum())
    rms = np.sqrt(float(col_sq.sum()) / max(X.shape[0] * moving, 1))
    unit = 1.0 / rms if np.isfinite(rms) and rms > 0 else 1.0
    if random:
        V = rng.standard_normal((R, d)) / np.sqrt(d) * unit
        return xp.asarray(V) if xp.is_torch else V
    lam, vecs = xp.eigh(0.5 * (M + M.T))
    if xp.is_torch:
        order = (-lam.abs()).argsort(stable=True)[:R]
    else:
        order = np.argsort(-np.abs(lam), kind="stable")[:R]
    V = copy_of(vecs[:, order].T) * unit
    if V.shape[0] < R:  # d < R: pad with random directions
        pad = rng.standard_normal((R - V.shape[0], d)) / np.sqrt(d) * unit
        V = xp.concatenate([V, xp.asarray(pad) if xp.is_torch else pad], axis=0)
    return V


def rebalance(U: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale u_r up and v_r down (or vice versa) to equal norms: the product is unchanged
    and ||u_r||^2 + ||v_r||^2 is minimal (numpy, or tensors on their device)."""
    xp = ops_of(U, V)
    if xp.is_torch:
        nu = (U * U).sum(axis=1).sqrt()
        nv = (V * V).sum(axis=1).sqrt()
        ok = (nu > 0) & (nv > 0)
        c = xp.where(ok, (nv / xp.where(ok, nu, 1.0)).sqrt(), 1.0)
        return U * c[:, None], V / c[:, None]
    nu = np.linalg.norm(U, axis=1)
    nv = np.linalg.norm(V, axis=1)
    ok = (nu > 0) & (nv > 0)
    c = np.ones_like(nu)
    c[ok] = np.sqrt(nv[ok] / nu[ok])
    return U * c[:, None], V / c[:, None]


def alternate(X: Any, y: Any, centre: Any, V: Any, half_step: Callable[[Any, Any], tuple],
              alphas: Any, max_iter: int, tol: float) -> tuple[CPFit, Any, Any]:
    """Alternating ridge for one target column y (n, 1), started from the factors V (R, d).
    `half_step(fixed, alphas)` is the ridge for the free factor with `fixed` held and returns
    (free (R, d), w (d, 1), b (1,), solution). Alpha is chosen by the half-steps' CV over
    `alphas` in the first alternation and then held, so that every later half-step (an exact
    ridge minimiser over its block) and every rebalancing decreases one objective,

        J = ||y - f||^2 + alpha (sum_r ||u_r||^2 + ||v_r||^2 + ||w||^2);

    stops after the first alternation t with J_{t-1} - J_t <= tol * J_t, or after max_iter.
    Returns (the fit, with w (d, 1) and b (1,); the last half-step's solution; the first's).
    """
    U = copy_of(V)
    objective = np.inf
    converged = False
    for it in range(1, max_iter + 1):
        check_interrupt()  # Ctrl-C between alternations
        U, _, _, _ = half_step(V, alphas)
        V, w, b, sol = half_step(U, alphas)
        if it == 1:
            # alpha is chosen by CV in the first alternation and then held, so that every
            # half-step decreases one objective (see the docstring)
            alpha = float(sol.alphas[sol.alpha_index[0]])
            alphas = np.array([alpha])
            first = sol
        U, V = rebalance(U, V)
        f = cp_decision_rows(X, centre, U[None], V[None], w, b)[:, 0]
        previous = objective
        # J as Python floats (one scalar each from a device)
        objective = float(((y[:, 0] - f) ** 2).sum()) + alpha * float(
            (U * U).sum() + (V * V).sum() + (w * w).sum()
        )
        if previous - objective <= tol * objective:
            converged = True
            break
    return CPFit(U, V, w, b, f, it, converged), sol, first


# ------------------------------------------------------------------------ polishing
def cp_from_symmetric(S: Any, R: int, xp: Any, backend: Any = None) -> tuple:
    """(U, V), each (R, m), with sym(U^T V) the best Frobenius approximation of the symmetric
    S that a rank-R CP term sum can hold: the R largest positive and the R most negative
    eigenpairs, one of each per pair (u, v) = (a + c, a - c), a = sqrt(l+) q+,
    c = sqrt(-l-) q-, since sym((a + c)(a - c)^T) = a a^T - c c^T. (A sum of R terms has at
    most R positive and R negative eigenvalues, so this is exact when S has; u and v have
    equal norms.) This contains the R eigenpairs of largest |eigenvalue|."""
    lam, E = sorted_eig(S, xp, by_abs=False, backend=backend)  # descending
    m = lam.shape[0]
    pos = [i for i in range(m) if lam[i] > 0]
    neg = [i for i in range(m - 1, -1, -1) if lam[i] < 0]
    U = xp.zeros((R, m))
    V = xp.zeros((R, m))
    for r in range(R):
        a = E[:, pos[r]] * float(np.sqrt(lam[pos[r]])) if r < len(pos) else xp.zeros(m)
        c = E[:, neg[r]] * float(np.sqrt(-lam[neg[r]])) if r < len(neg) else xp.zeros(m)
        U[r] = a + c
        V[r] = a - c
    return U, V


def polish(Z: Any, y: Any, model: dict, R: int, intercept: bool, max_iter: int, tol: float,
           xp: Any, backend: Any = None) -> CPFit:
    """L-BFGS on the rank-R restriction of the starting probe's ridge objective

        J_F = ||y - f||^2 + alpha ||w||^2 + (alpha / gamma) ||Q||_F^2,
        f(z) = sum_r (u_r . P z)(v_r . P z) + w . z + b,  Q = P^T sym(U^T V) P,

    with P = C^T for a sketch start (the factors stay in its subspace: the objective the
    subspace probe minimised) and P = I for an exact start (the exact probe's objective). Run
    in units where the rows have unit root-mean-square norm and y unit spread (J scales
    exactly, so the minimiser is the same and the fit commutes with rescaling X and y).
    Returns the fit: U (R, d), V (R, d), w (d,), b a float, training decision values.
    """
    n, d = Z.shape
    C = model["C"]
    rho = float(((Z * Z).sum() / max(n, 1)) ** 0.5)  # rms row norm: zero columns do not count
    rho = rho if np.isfinite(rho) and rho > 0 else 1.0
    yv = xp.asarray(y, dtype=np.float64)
    tau = float((((yv - yv.mean()) ** 2).mean()) ** 0.5)
    tau = tau if np.isfinite(tau) and tau > 0 else 1.0
    Zn = Z / rho
    Zq = Zn if C is None else Zn @ C
    yn = yv / tau
    alpha = float(model["alpha"]) / rho**2
    gamma = float(model["gamma"]) * rho**2
    U0, V0 = cp_from_symmetric(model["S"] * (rho**2 / tau), R, xp, backend)
    m = U0.shape[1]
    w0 = xp.asarray(model["w"]) * (rho / tau)
    b0 = float(model["b"]) / tau if intercept else 0.0
    size = R * m

    def unpack(theta):
        U = theta[:size].reshape(R, m)
        V = theta[size : 2 * size].reshape(R, m)
        w = theta[2 * size : 2 * size + d]
        b = theta[2 * size + d] if intercept else 0.0
        return U, V, w, b

    def decision(U, V, w, b):
        PU, PV = Zq @ U.T, Zq @ V.T
        return (PU * PV).sum(axis=1) + Zn @ w + b, PU, PV

    pen = alpha / gamma

    def fg(theta):
        U, V, w, b = unpack(theta)
        f, PU, PV = decision(U, V, w, b)
        r = f - yn
        GUU, GVV, GUV = U @ U.T, V @ V.T, U @ V.T
        q2 = 0.5 * float((GUU * GVV).sum()) + 0.5 * float((GUV * GUV.T).sum())  # ||Q||_F^2
        J = float((r * r).sum()) + alpha * float((w * w).sum()) + pen * q2
        gU = 2.0 * ((r[:, None] * PV).T @ Zq) + pen * (GUV.T @ V + GVV @ U)
        gV = 2.0 * ((r[:, None] * PU).T @ Zq) + pen * (GUV @ U + GUU @ V)
        gw = 2.0 * (Zn.T @ r) + 2.0 * alpha * w
        parts = [gU.reshape(-1), gV.reshape(-1), gw]
        if intercept:
            parts.append((2.0 * r.sum()).reshape(1))
        return J, xp.concatenate(parts)

    parts = [U0.reshape(-1), V0.reshape(-1), w0.reshape(-1)]
    if intercept:
        parts.append(xp.asarray(np.array([b0])))
    theta, it, converged = lbfgs(fg, xp.concatenate(parts), max_iter, tol)
    U, V, w, b = unpack(theta)
    U, V = rebalance(U * 1.0, V * 1.0)
    f = decision(U, V, w, b)[0] * tau
    root = float(np.sqrt(tau)) / rho
    U, V = U * root, V * root
    if C is not None:
        U, V = U @ C.T, V @ C.T
    return CPFit(U, V, w * (tau / rho), float(b) * tau, f, it, converged)


def lbfgs(fg: Callable[[Any], tuple[float, Any]], x: Any, max_iter: int, tol: float,
          memory: int = 10) -> tuple[Any, int, bool]:
    """Minimise J with limited-memory BFGS (two-loop recursion, Armijo backtracking, curvature
    pairs with s.y <= 0 skipped), in the namespace of x (numpy, or a tensor: only scalars
    reach the host). Stops at once when x is already stationary (|grad J| |x| <= 1e-10 J:
    reported as 1 iteration, the gradient evaluation), at the first iteration t >= 2 with
    J_{t-2} - J_t <= tol * J_t (converged), when no step decreases J any more (converged: the
    round-off floor), or after max_iter iterations. Returns (x, iterations, converged)."""
    f, g = fg(x)
    gnorm = float((g * g).sum()) ** 0.5
    # already stationary (an exact start that the rank constraint does not bind): no step of
    # the size of x could change J by more than round-off, so stop before the first iteration
    if gnorm == 0.0 or gnorm * float((x * x).sum()) ** 0.5 <= 1e-10 * abs(f):
        return x, 1, True
    history = [f]
    S: list[Any] = []  # curvature pairs (s, y) and 1 / s.y, oldest first
    Yd: list[Any] = []
    rho: list[float] = []
    it = 0
    for it in range(1, max_iter + 1):
        check_interrupt()
        q = g * 1.0
        coeffs = []
        for s, yv, r in zip(reversed(S), reversed(Yd), reversed(rho)):
            a = r * float((s * q).sum())
            coeffs.append(a)
            q = q - yv * a
        if S:
            h0 = float((S[-1] * Yd[-1]).sum()) / max(float((Yd[-1] * Yd[-1]).sum()), 1e-300)
        else:  # first step: a tenth of |x| (or unit length) along -g
            gn = float((g * g).sum()) ** 0.5
            xn = float((x * x).sum()) ** 0.5
            h0 = (0.1 * xn if xn > 0 else 1.0) / max(gn, 1e-300)
        d = q * h0
        for (s, yv, r), a in zip(zip(S, Yd, rho), reversed(coeffs)):
            d = d + s * (a - r * float((yv * d).sum()))
        d = -d
        slope = float((g * d).sum())
        if not slope < 0:  # not a descent direction: restart from steepest descent
            S, Yd, rho = [], [], []
            d = -g * (1.0 / max(float((g * g).sum()) ** 0.5, 1e-300))
            slope = float((g * d).sum())
        step, accepted = 1.0, False
        for _ in range(40):
            x_new = x + d * step
            f_new, g_new = fg(x_new)
            if np.isfinite(f_new) and f_new <= f + 1e-4 * step * slope:
                accepted = True
                break
            step *= 0.5
        if not accepted or not f_new < f:
            return x, it, True  # no decrease left: the minimum to round-off
        s, yv = x_new - x, g_new - g
        sy = float((s * yv).sum())
        if sy > 1e-12 * float((s * s).sum()) ** 0.5 * float((yv * yv).sum()) ** 0.5:
            S.append(s)
            Yd.append(yv)
            rho.append(1.0 / sy)
            if len(S) > memory:
                S.pop(0), Yd.pop(0), rho.pop(0)
        x, f, g = x_new, f_new, g_new
        history.append(f)
        if len(history) >= 3 and history[-3] - f <= tol * abs(f):
            return x, it, True
    return x, it, False


def cp_decision_rows(X: Any, centre: Any, fu: Any, fv: Any, w: Any, b: Any) -> Any:
    """(n, k) decision values of CP probes with factors fu, fv (k, R, d), w (d, k), b (k,)."""
    n, d = X.shape
    k = fu.shape[0]
    xp = ops_of(fu, X)
    out = xp.empty((n, k))
    step = max(16, (1 << 22) // max(d, 1))
    for start in range(0, n, step):
        Z = xp.asarray(X[start : start + step], dtype=np.float64) - centre
        for t in range(k):
            if xp.is_torch:
                out[start : start + step, t] = ((Z @ fu[t].T) * (Z @ fv[t].T)).sum(axis=1)
            else:
                out[start : start + step, t] = np.einsum("nr,nr->n", Z @ fu[t].T, Z @ fv[t].T)
        out[start : start + step] += Z @ w + b
    return out

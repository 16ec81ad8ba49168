"""Low-rank (CP) degree-2 probes: CPProbe, CPProbeClassifier.

    f(h) = sum_r (u_r . z)(v_r . z) + w . z + b,    z = h - mu (training mean),

the paper's rank-R quadratic probe: Q = sum_r (u_r v_r^T + v_r u_r^T)/2 has rank <= 2R, a family
that is still closed under affine changes of coordinates. It is for widths where neither exact
degree-2 route fits (p = d(d+3)/2 features, or an n x n kernel), at O(n R d) memory per block.

Fitting: alternating ridge. With the v_r fixed, f is linear in (u_1..u_R, w) with features
[(v_1 . z) z, ..., (v_R . z) z, z]; that half-step is an ordinary linear ridge problem solved by
the core (statistics of these (R+1) d features accumulated block by block, one
eigendecomposition, alpha chosen by the probe's cv on that sub-problem). The other half-step
swaps the roles of u and v. After each full iteration the pairs are rebalanced
(||u_r|| = ||v_r||, which leaves f unchanged and minimises the penalty of the product).

Initialisation ("moments"): v_r are the R eigenvectors of largest |eigenvalue| of the
label-weighted second moment sum_i (y_i - ybar) z_i z_i^T / n (principal Hessian
directions), which picks out an interaction such as XOR at once; "random": Gaussian v_r.

Alpha: chosen by the probe's `cv` in each half-step of the first alternation, then held
fixed, so that every later half-step (an exact ridge minimiser over its block) and every
rebalancing decreases one objective,

    J = ||y - f||^2 + alpha (sum_r ||u_r||^2 + ||v_r||^2 + ||w||^2).

Stopping rule: stop after the first full alternation t with J_{t-1} - J_t <= tol * J_t, or
after `max_iter` alternations (then a ConvergenceWarning). `n_iter_` and `converged_`
report it.

Backends: with backend="torch" (or "auto" and a CUDA tensor) the whole alternation -- the
moments initialisation, every half-step's statistics, eigendecomposition and CV, the
rebalancing and J -- runs in the torch namespace on the data's device (the CPU device for
numpy rows); only Python scalars and the half-steps' small CV score tables reach the host.
factors_, quadratic_, linear_ (and intercept_ for several targets) are then float64 tensors
on that device. Otherwise the fit runs on the host (Rust core or numpy).
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Union

import numpy as np

from ._backends import (
    NUMPY_OPS,
    copy_of,
    get_backend,
    is_torch_tensor,
    ops_of,
    to_numpy,
    torch_backend,
    uses_torch,
)
from ._base import ClassifierMixin, RegressorMixin, user_stacklevel
from ._params import RANDOM_STATE, Interval, Options
from ._validation import check_rows_finite
from .linear import (
    _feature_blocks,
    _ProbeClassifierMixin,
    _ProbeRegressorMixin,
    _RidgeProbeBase,
    _Solution,
)
from .quadratic import _gaussian_slope_from_values, _PolynomialOutputs
from .stats import SufficientStats
from .threads import check_interrupt

__all__ = ["CPProbe", "CPProbeClassifier", "ConvergenceWarning"]

_INITS = ("moments", "random")

try:  # the same class as scikit-learn's when it is installed
    from sklearn.exceptions import ConvergenceWarning
except ImportError:  # pragma: no cover

    class ConvergenceWarning(UserWarning):
        """Alternating fit stopped at max_iter before meeting its tolerance."""


class _CPFeatureMap:
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


class _CPProbeBase(_PolynomialOutputs, _RidgeProbeBase):
    """Shared machinery of the CP probes (not public)."""

    _feature_degree = 2  # products of inputs: degree-2 magnitude range

    def __init__(
        self,
        rank: int = 2,
        alphas: Any = None,
        *,
        cv: Union[str, int] = "gcv",
        alpha_per_target: bool = False,
        fit_intercept: bool = True,
        metric: str = "euclidean",
        reference: Any = None,
        readout: Any = None,
        max_iter: int = 100,
        tol: float = 1e-4,
        init: str = "moments",
        random_state: Optional[int] = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(
            alphas,
            cv=cv,
            alpha_per_target=alpha_per_target,
            fit_intercept=fit_intercept,
            metric=metric,
            reference=reference,
            readout=readout,
            backend=backend,
        )
        self.rank = rank
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.random_state = random_state

    def _param_constraints(self) -> dict:
        return {
            **super()._param_constraints(),
            "rank": [Interval("int", 1, None)],
            "max_iter": [Interval("int", 1, None)],
            "tol": [Interval("real", 0.0, None)],
            "init": [Options(_INITS)],
            "random_state": RANDOM_STATE,
        }

    def _streams(self) -> bool:
        return False

    def _no_stream_reason(self) -> str:
        return (
            f"{type(self).__name__} has no partial_fit: it alternates between two ridge "
            "problems and needs several passes over the rows. Call fit(), or use "
            "QuadraticProbe (exact, streams) when its p = d(d+3)/2 features fit in memory."
        )

    # ------------------------------------------------------------------ fitting
    def _host_backend(self) -> str:
        """The backend of a host fit (Rust core or numpy): "auto" unless the user named one."""
        return "auto" if self.backend == "torch" else self.backend

    def _new_stats(self, n_folds: int, on_torch: bool = False) -> SufficientStats:
        return SufficientStats(n_folds, "torch" if on_torch else self._host_backend())

    def _fit_rows(self, X: np.ndarray, Y: np.ndarray, folds: Optional[np.ndarray]):
        # backend="torch" (or "auto" with a CUDA tensor): the whole alternation runs in the
        # torch namespace on the data's device (CPU for numpy rows); only Python scalars and
        # the half-steps' CV score tables reach the host. Otherwise it runs on the host.
        on_torch = uses_torch(self.backend, X)
        if on_torch:
            tb = torch_backend()
            if not is_torch_tensor(X):
                with warnings.catch_warnings():  # read-only arrays: X is never written to
                    warnings.simplefilter("ignore", UserWarning)
                    X = tb.host_tensor(X)  # a CPU view (copied only where torch needs it)
            xp = tb.ops_for(X.device)
            Y = xp.asarray(Y)
            check_rows_finite(X, tb)
        else:
            from .stats import _host

            xp = NUMPY_OPS
            X, Y = _host(X), np.ascontiguousarray(to_numpy(Y), dtype=np.float64)
            check_rows_finite(X, get_backend(self._host_backend()))
        n, d = X.shape
        mean = _column_mean(X, xp)
        geom = self._geometry(lambda: _row_covariance(X, mean, xp), d, xp=xp)
        if not geom.is_identity:
            X = geom.rows(X)  # fit on A h; coefficients are pulled back below
        R = int(self.rank)
        centre = _column_mean(X, xp) if self.fit_intercept else xp.zeros(d)
        rng = np.random.default_rng(self.random_state)
        k = Y.shape[1]
        factors_u = xp.zeros((k, R, d))
        factors_v = xp.zeros((k, R, d))
        w = xp.zeros((d, k))
        b = xp.zeros(k)
        fitted = xp.zeros((n, k))
        halfsteps = []
        n_iter = np.zeros(k, dtype=np.intp)
        converged = np.zeros(k, dtype=bool)
        for t in range(k):
            # The CP objective is not homogeneous in y (f is bilinear in U, V and linear in
            # w), so with the data-relative alpha grid each target is fitted in units of its
            # own spread and scaled back at the end: the fit then commutes with rescaling y,
            # as ridge does. Explicit alphas keep their absolute meaning (no rescaling).
            y_unit = 1.0
            if self.alphas is None:
                y_unit = float(((Y[:, t] - Y[:, t].mean()) ** 2).mean()) ** 0.5
                y_unit = y_unit if np.isfinite(y_unit) and y_unit > 0 else 1.0
            y = Y[:, t : t + 1] / y_unit
            V = self._initial_factor(X, y[:, 0], centre, R, rng, xp)
            U = copy_of(V)
            alphas = self._explicit_alphas()
            objective = np.inf
            for it in range(1, int(self.max_iter) + 1):
                check_interrupt()  # Ctrl-C between alternations
                U, _, _, _ = self._half_step(X, y, folds, centre, V, alphas)
                V, w_t, b_t, sol = self._half_step(X, y, folds, centre, U, alphas)
                if it == 1:
                    # alpha is chosen by CV in the first alternation and then held, so that
                    # every half-step decreases one objective (see the module docstring)
                    alpha = float(sol.alphas[sol.alpha_index[0]])
                    alphas = np.array([alpha])
                U, V = _rebalance(U, V)
                f = _cp_decision_rows(X, centre, U[None], V[None], w_t, b_t)[:, 0]
                n_iter[t] = it
                previous = objective
                # J as Python floats (one scalar each from a device)
                objective = float(((y[:, 0] - f) ** 2).sum()) + alpha * float(
                    (U * U).sum() + (V * V).sum() + (w_t * w_t).sum()
                )
                if previous - objective <= self.tol * objective:
                    converged[t] = True
                    break
            U, V = _rebalance(U * y_unit, V)  # f scales with y_unit: scale one factor
            factors_u[t], factors_v[t] = U, V
            w[:, t], b[t] = w_t[:, 0] * y_unit, b_t[0] * y_unit
            fitted[:, t] = f * y_unit
            halfsteps.append(sol)
        if not converged.all():
            warnings.warn(
                f"{type(self).__name__} did not meet tol={self.tol} within max_iter="
                f"{self.max_iter} alternations for {int((~converged).sum())} target(s); "
                "raise max_iter or tol.",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )
        # alphas differ per target (each half-step has its own grid): keep the chosen ones
        chosen = np.array([h.alphas[h.alpha_index[0]] for h in halfsteps])
        if not geom.is_identity:
            # u . (A z) = (A^T u) . z for every factor and the linear part
            factors_u = geom.pull_back_linear(factors_u.reshape(-1, d).T).T.reshape(k, R, d)
            factors_v = geom.pull_back_linear(factors_v.reshape(-1, d).T).T.reshape(k, R, d)
            w = geom.pull_back_linear(w)
            centre = mean if self.fit_intercept else xp.zeros(d)
        out = _Solution(w, b, chosen, np.arange(k), None, None)
        out.geometry = geom
        out.halfsteps = halfsteps
        out.centre = centre
        out.factors = (factors_u, factors_v)
        out.n_iter = n_iter
        out.converged = converged
        if self._is_classifier:
            out.calibration = _gaussian_slope_from_values(fitted, Y)  # on fitted's device
        return None, out

    def _initial_factor(self, X, y, centre, R, rng, xp=NUMPY_OPS) -> np.ndarray:
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
            if self.init != "random":
                M += Z.T @ (Z * yc[start : start + step, None])
        # rms per moving coordinate: constant columns (which the fit ignores) do not count
        moving = int((col_sq > 0).sum())
        rms = np.sqrt(float(col_sq.sum()) / max(X.shape[0] * moving, 1))
        unit = 1.0 / rms if np.isfinite(rms) and rms > 0 else 1.0
        if self.init == "random":
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

    def _half_step(self, X, y, folds, centre, fixed, alphas):
        """Ridge for the free factor with `fixed` held: returns (free (R, d), w (d, 1),
        b (1,), solution). In the namespace of `fixed` (statistics on its device)."""
        fmap = _CPFeatureMap(centre, fixed)
        stats = self._new_stats(self._n_folds(), on_torch=ops_of(fixed).is_torch)
        for sl, F in _feature_blocks(X, fmap):
            stats._accumulate_validated(F, y[sl], None if folds is None else folds[sl])
        sol = self._ridge_solve(stats, (X, y, folds), alphas, feature_map=fmap)
        R, d = fixed.shape
        coef = sol.coef[:, 0]
        return coef[: R * d].reshape(R, d), coef[R * d :, None], sol.intercept, sol

    # ------------------------------------------------------------------ prediction
    def _decision(self, X: Any) -> np.ndarray:
        sol = self._solution()
        Xa, prm = self._predict_inputs(X, sol)
        fu, fv = prm["factors"]
        return _cp_decision_rows(Xa, prm["centre"], fu, fv, prm["coef"], prm["intercept"])

    # ------------------------------------------------------------------ fitted attributes
    _coefficient_names = "factors_ (U, V), quadratic_, linear_ and intercept_"

    def _centred_quadratic(self) -> np.ndarray:
        fu, fv = self._solution().factors
        xp = ops_of(fu)
        return 0.5 * (xp.einsum("tri,trj->tij", fu, fv) + xp.einsum("tri,trj->tij", fv, fu))

    @property
    def factors_(self) -> tuple[np.ndarray, np.ndarray]:
        """(U, V), each (n_targets, rank, d): f = sum_r (U[t, r] . z)(V[t, r] . z) + ...,
        z = h - centre_. quadratic_ is sum_r (u_r v_r^T + v_r u_r^T)/2 in input coordinates."""
        fu, fv = self._solution().factors
        return fu * 1.0, fv * 1.0

    @property
    def n_iter_(self) -> np.ndarray:
        """Full alternations run, per target."""
        return self._solution().n_iter.copy()

    @property
    def converged_(self) -> np.ndarray:
        """Whether the stopping rule was met (per target) before max_iter."""
        return self._solution().converged.copy()

    @property
    def stats_(self):
        raise AttributeError(f"{type(self).__name__} keeps no sufficient statistics.")

    @property
    def alpha_(self):
        """Alpha chosen in the last half-step: a float, or one per target column."""
        chosen = self._solution().alphas
        return float(chosen[0]) if chosen.size == 1 else chosen.copy()

    @property
    def alphas_(self) -> np.ndarray:
        """The alpha grid of the last half-step (of the first target column)."""
        return self._solution().halfsteps[0].alphas.copy()

    @property
    def cv_results_(self) -> dict:
        """CV of the last half-step, per target column: 'alphas', 'scores' (lists)."""
        hs = self._solution().halfsteps
        return {
            "alphas": [h.alphas.copy() for h in hs],
            "scores": [h.joint_scores.copy() for h in hs],
            "scoring": self._scoring(),
            "cv": self._cv_name(),
        }

    @property
    def best_score_(self):
        hs = self._solution().halfsteps
        best = np.array([h.joint_scores[h.alpha_index[0]] for h in hs])
        return float(best[0]) if best.size == 1 else best


def _column_mean(X: Any, xp: Any) -> Any:
    """Float64 column means of the rows X (numpy, or a tensor in its own namespace)."""
    if xp.is_torch:
        return X.detach().mean(dim=0, dtype=torch_backend().F64)
    return X.mean(axis=0, dtype=np.float64)


def _row_covariance(X: Any, mean: Any, xp: Any) -> Any:
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


def _rebalance(U: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _cp_decision_rows(X, centre, fu, fv, w, b) -> np.ndarray:
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


# ---------------------------------------------------------------------------------- public
class CPProbe(_ProbeRegressorMixin, RegressorMixin, _CPProbeBase):
    """Rank-R (CP) degree-2 probe f(h) = sum_r (u_r . z)(v_r . z) + w . z + b, z = h - mu.

    Fitted by alternating ridge half-steps, each a linear ridge problem solved by the core
    with alpha chosen by `cv` (see the module docstring for the initialisation and the
    stopping rule). Multi-target y gets one CP probe per column.

    Parameters
    ----------
    rank : int, default 2
        Number of product terms R.
    alphas : array-like of float, optional
        Penalties for each half-step (absolute); default: the linear probes' relative grid.
    cv : {"gcv", "loo"} or int, default "gcv"
        Alpha selection in the half-steps of the first alternation (then held fixed).
    alpha_per_target, fit_intercept, metric, reference, readout, backend
        As for `LinearProbe` (the probe is fitted on A h for the metric's A, and its factors
        are reported in your coordinates). backend="torch", or "auto" with a CUDA tensor,
        fits on the tensor's device (see the module docstring).
    max_iter : int, default 100
        Maximum full alternations (each is two half-steps).
    tol : float, default 1e-4
        Stop when one full alternation decreases the objective J by at most tol * J.
    init : {"moments", "random"}, default "moments"
    random_state : int, optional
        Seed for init="random" (and padding when d < rank).

    Attributes
    ----------
    factors_, quadratic_, linear_, intercept_, centre_, alpha_ (of the last half-step),
    alphas_, cv_results_ (last half-step), n_iter_, converged_, n_features_in_
    """


class CPProbeClassifier(_ProbeClassifierMixin, ClassifierMixin, _CPProbeBase):
    """Rank-R (CP) degree-2 probe for classification: one CP probe per one-vs-rest +-1
    code column (binary: one), decision = arg-max (binary: sign). Parameters as for
    `CPProbe`, plus `scoring` as for `LinearProbeClassifier` (used inside the half-steps)."""

    def __init__(
        self,
        rank: int = 2,
        alphas: Any = None,
        *,
        cv: Union[str, int] = "gcv",
        alpha_per_target: bool = False,
        fit_intercept: bool = True,
        metric: str = "euclidean",
        reference: Any = None,
        readout: Any = None,
        scoring: str = "squared_error",
        max_iter: int = 100,
        tol: float = 1e-4,
        init: str = "moments",
        random_state: Optional[int] = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(
            rank,
            alphas,
            cv=cv,
            alpha_per_target=alpha_per_target,
            fit_intercept=fit_intercept,
            metric=metric,
            reference=reference,
            readout=readout,
            max_iter=max_iter,
            tol=tol,
            init=init,
            random_state=random_state,
            backend=backend,
        )
        self.scoring = scoring

    alpha_ = _CPProbeBase.alpha_  # not the linear classifiers' (grids differ per column)

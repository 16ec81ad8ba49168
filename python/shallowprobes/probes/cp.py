"""Low-rank (CP) degree-2 probes: CPProbe, CPProbeClassifier.

    f(h) = sum_r (u_r . z)(v_r . z) + w . z + b,    z = h - mu (training mean),

the paper's rank-R quadratic probe: Q = sum_r (u_r v_r^T + v_r u_r^T)/2 has at most R positive
and R negative eigenvalues, a family that is still closed under affine changes of
coordinates. Multi-target y (and one-vs-rest classifier codes) get one CP probe per column.

Two fitting methods, chosen by `init`.

1. init="auto" (default), "sketch" or "exact": the rank-R restriction of the exact degree-2
   ridge probe (`QuadraticProbe`), i.e. of its objective

       J_F = ||y - f||^2 + alpha ||w||^2 + (alpha / gamma) ||Q||_F^2

   (the same penalty as the exact probe's features phi_gamma), started from a probe whose Q
   is known and polished by L-BFGS:

   * "exact": the exact probe itself (primal or dual route, alpha and gamma chosen by its
     exact CV -- per target column, one eigendecomposition per gamma for all columns). The
     start takes its R largest positive and R most negative eigenpairs, one of each per pair
     (u, v) = (a + c, a - c), a = sqrt(l+) q+, c = sqrt(-l-) q-, which is the best Frobenius
     approximation a rank-R CP can hold (it contains the top-R eigenpairs by |eigenvalue|);
     the polish then runs on all of R^d with the exact probe's alpha and gamma. When Q has
     at most R positive and R negative eigenvalues (e.g. rank Q <= R) the start is the
     exact probe and is already stationary: the CP reproduces its predictions.
   * "sketch": no n x n kernel and no p x p Gram. From the statistics: the covariance S of
     the rows and the label-weighted second moment M = sum_i y_i w_i w_i^T / n of the
     ridge-whitened rows w = (S + 0.1 mean-eig(S) I)^-1/2 z (principal Hessian directions;
     `solve.subspace.phd_directions`); its 2R eigenvectors of largest |eigenvalue|, mapped back
     and orthonormalised, give a subspace C. The exact ridge probe with Q restricted to
     span(C) (features [z, sqrt(gamma) phi_quad(C^T z)], width d + R(2R + 1)) is solved on
     the core's statistics, with gamma and alpha chosen by refitting K-fold CV (the folds of
     an integer cv, else 5; the subspace is re-estimated from each fold's training rows, as
     it is chosen with the labels); its Q starts the polish, which keeps the factors in
     span(C) (the objective that probe minimised).
   * "auto": "exact" when the exact probe is well determined and cheap -- p = d(d+3)/2 <= n
     (the primal route) and one solve within ~2e12 flops -- else "sketch". Where p > n (LLM
     widths) the exact probe's Q is noise-dominated and was a worse start than the sketch
     on the synthetic wide tasks (`datasets.make_wide_interaction`; benches/bench_wide.py),
     besides costing an n x n eigendecomposition per gamma.

   What is exact: for "exact", alpha (and gamma) are chosen by the exact CV (GCV / LOO /
   K-fold from the statistics) of the exact probe; for "sketch", by refitting K-fold CV of
   the subspace probe (honest, but refitted, not from one set of statistics). The polish has
   no CV of its own and the rank is the user's.

   Stopping rule (L-BFGS, two-loop recursion, Armijo backtracking): converged at the first
   iteration t >= 2 with J_{t-2} - J_t <= tol * J_t, when no step decreases J any more, or
   at once when the start is stationary (|grad J| |theta| <= 1e-10 J; n_iter_ = 1); else
   after max_iter iterations with a ConvergenceWarning. Per iteration (about 1-2 evaluations
   of J and its gradient): O(n R m + n d) flops with m = 2R for "sketch" and m = d for
   "exact" -- a few products of the rows with R-column matrices, never a Gram. The fit runs
   in units where the rows have unit root-mean-square norm and y unit spread (J scales
   exactly), so it commutes with rescaling X and y.

2. init="moments" or "random": alternating ridge (the former default). With the v_r fixed,
   f is linear in (u_1..u_R, w) with features [(v_1 . z) z, ..., (v_R . z) z, z]; that
   half-step is an ordinary linear ridge problem solved by the core (statistics of these
   (R+1) d features accumulated block by block, one eigendecomposition, alpha chosen by the
   probe's cv on that sub-problem). The other half-step swaps the roles of u and v. After
   each full iteration the pairs are rebalanced (||u_r|| = ||v_r||, which leaves f unchanged
   and minimises the penalty of the product). Start ("moments"): v_r are the R eigenvectors
   of largest |eigenvalue| of sum_i (y_i - ybar) z_i z_i^T / n; "random": Gaussian v_r. Alpha
   is chosen by the probe's `cv` in each half-step of the first alternation and then held
   fixed, so that every later half-step (an exact ridge minimiser over its block) and every
   rebalancing decreases one objective,

       J = ||y - f||^2 + alpha (sum_r ||u_r||^2 + ||v_r||^2 + ||w||^2).

   Stopping rule: after the first full alternation t with J_{t-1} - J_t <= tol * J_t, or
   after `max_iter` alternations (then a ConvergenceWarning). Each alternation costs two
   statistics passes of n ((R+1) d)^2 flops and two ((R+1) d)^3 eigendecompositions: this is
   what took minutes at d = 768.

`n_iter_` and `converged_` report the iterations of either method; `init_` the start used.
A chosen alpha or gamma at an edge of its grid gives a `errors.GridEdgeWarning`.

Backends: with backend="torch" (or "auto" and a CUDA tensor) the whole fit -- the start
(statistics, eigendecompositions, CV), the polish or the alternation, the rebalancing and J
-- runs in the torch namespace on the data's device (the CPU device for numpy rows); only
Python scalars and small CV score tables reach the host. factors_, quadratic_, linear_ (and
intercept_ for several targets) are then float64 tensors on that device. Otherwise the fit
runs on the host (Rust core or numpy).

The numerics (polish, alternation, rebalancing, decision values) are in `solve.cp`; the starts
of the polish in `probes.cp_starts`. This module holds the estimators.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Union

import numpy as np

from .._base import ClassifierMixin, RegressorMixin, user_stacklevel
from .._params import RANDOM_STATE, Array, Interval, Options
from .._validation import check_rows_finite
from ..backends import (
    NUMPY_OPS,
    get_backend,
    is_torch_tensor,
    ops_of,
    to_numpy,
    torch_backend,
    uses_torch,
)
from ..solve.cp import (
    CPFeatureMap,
    CPFits,
    alternate,
    column_mean,
    cp_decision_rows,
    initial_factor,
    polish,
    rebalance,
    row_covariance,
)
from ..solve.degree2 import gaussian_slope_from_values
from ..solve.ridge import RidgeSolution, feature_blocks, warn_grid_edge
from ..solve.stats import SufficientStats
from ..solve.subspace import eig_backend
from .base import RidgeProbeBase
from .classifier import ProbeClassifierMixin
from .cp_starts import CPStarts
from .outputs import ProbeRegressorMixin
from .polynomial import GammaSearch, PolynomialOutputs

__all__ = ["CPProbe", "CPProbeClassifier", "ConvergenceWarning"]

_INITS = ("auto", "exact", "sketch", "moments", "random")
_ALS_INITS = ("moments", "random")


try:  # the same class as scikit-learn's when it is installed
    from sklearn.exceptions import ConvergenceWarning
except ImportError:  # pragma: no cover

    class ConvergenceWarning(UserWarning):
        """Alternating fit stopped at max_iter before meeting its tolerance."""


class CPProbeBase(CPStarts, GammaSearch, PolynomialOutputs, RidgeProbeBase):
    """Shared machinery of the CP probes (not public)."""

    _feature_degree = 2  # products of inputs: degree-2 magnitude range
    _stats_check_values = False  # X is checked up front: its rows may not reach statistics

    def __init__(
        self,
        rank: int = 2,
        alphas: Any = None,
        *,
        gamma: Any = None,
        cv: Union[str, int] = "gcv",
        alpha_per_target: bool = False,
        fit_intercept: bool = True,
        metric: str = "euclidean",
        reference: Any = None,
        readout: Any = None,
        max_iter: int = 100,
        tol: float = 1e-4,
        init: str = "auto",
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
        self.gamma = gamma
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
            "gamma": [
                Interval("real", 0.0, None, closed="neither", desc="a positive finite number"),
                Options(("scale",)),
                Array(
                    1,
                    low=0.0,
                    low_closed=False,
                    desc="a non-empty 1-D sequence of positive finite numbers",
                ),
                None,
            ],
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
        # backend="torch" (or "auto" with a CUDA tensor): the whole fit runs in the torch
        # namespace on the data's device (CPU for numpy rows); only Python scalars and the CV
        # score tables reach the host. Otherwise it runs on the host.
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
            from ..solve.stats import host_array

            xp = NUMPY_OPS
            X, Y = host_array(X), np.ascontiguousarray(to_numpy(Y), dtype=np.float64)
            check_rows_finite(X, get_backend(self._host_backend()))
        n, d = X.shape
        mean = column_mean(X, xp)
        geom = self._geometry(lambda: row_covariance(X, mean, xp), d, xp=xp)
        if not geom.is_identity:
            X = geom.rows(X)  # fit on A h; coefficients are pulled back below
        if self.init in _ALS_INITS:
            return self._fit_alternating(X, Y, folds, xp, mean, geom)
        return self._fit_from_exact(X, Y, folds, xp, mean, geom)

    def _cp_solution(self, fits: CPFits, Y: Any, centre: Any, mean: Any, geom: Any,
                     chosen: np.ndarray, halfsteps: list, init: str, gammas: Any, *,
                     steps: str) -> RidgeSolution:
        """The fitted probes as the estimator's solution, in input coordinates (fits on the
        metric's rows A h are pulled back), with a ConvergenceWarning for the target columns
        that stopped at max_iter (`steps` says what max_iter counts)."""
        if not fits.converged.all():
            warnings.warn(
                f"{type(self).__name__} did not meet tol={self.tol} within max_iter="
                f"{self.max_iter} {steps} for {int((~fits.converged).sum())} target(s); "
                "raise max_iter or tol.",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )
        factors_u, factors_v, w = fits.factors_u, fits.factors_v, fits.w
        if not geom.is_identity:
            factors_u, factors_v, w = fits.pulled_back(geom)
            centre = mean if self.fit_intercept else fits.xp.zeros(w.shape[0])
        out = RidgeSolution(w, fits.b, chosen, np.arange(Y.shape[1]), None, None)
        out.geometry = geom
        out.halfsteps = halfsteps
        out.centre = centre
        out.factors = (factors_u, factors_v)
        out.n_iter = fits.n_iter
        out.converged = fits.converged
        out.init = init
        out.gammas = gammas
        if self._is_classifier:
            out.calibration = gaussian_slope_from_values(fits.fitted, Y)  # on fitted's device
        return out

    # ------------------------------------------------------------------ alternating ridge
    def _fit_alternating(self, X: Any, Y: Any, folds: Any, xp: Any, mean: Any,
                         geom: Any) -> tuple[None, RidgeSolution]:
        """init="moments" / "random": alternating ridge on J_als (module docstring)."""
        n, d = X.shape
        R = int(self.rank)
        centre = column_mean(X, xp) if self.fit_intercept else xp.zeros(d)
        rng = np.random.default_rng(self.random_state)
        k = Y.shape[1]
        fits = CPFits(n, d, k, R, xp)
        halfsteps, selections = [], []
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
            V = initial_factor(X, y[:, 0], centre, R, rng, xp, random=self.init == "random")

            def half_step(fixed: Any, alphas: Any, y: Any = y) -> tuple:
                return self._half_step(X, y, folds, centre, fixed, alphas)

            fit, sol, first = alternate(X, y, centre, V, half_step, self._explicit_alphas(),
                                        int(self.max_iter), self.tol)  # fmt: skip
            U, V = rebalance(fit.U * y_unit, fit.V)  # f scales with y_unit: scale one factor
            fits.store(t, fit._replace(U=U, V=V, w=fit.w[:, 0] * y_unit, b=fit.b[0] * y_unit,
                                       f=fit.f * y_unit))  # fmt: skip
            halfsteps.append(sol)
            selections.append(first)
        # alphas differ per target (each half-step has its own grid): keep the chosen ones
        chosen = np.array([h.alphas[h.alpha_index[0]] for h in halfsteps])
        out = self._cp_solution(fits, Y, centre, mean, geom, chosen, halfsteps, self.init,
                                None, steps="alternations")  # fmt: skip
        if selections and selections[0].alphas.size > 1:  # the grid search of alpha
            warn_grid_edge(
                type(self).__name__, "alpha", selections[0].alphas,
                [h.alpha_edges[0] for h in selections], selections[0].default_grid,
                self._cv_name(),
            )  # fmt: skip
        return None, out

    def _half_step(self, X: Any, y: Any, folds: Any, centre: Any, fixed: Any,
                   alphas: Any) -> tuple:
        """Ridge for the free factor with `fixed` held: returns (free (R, d), w (d, 1),
        b (1,), solution). In the namespace of `fixed` (statistics on its device)."""
        fmap = CPFeatureMap(centre, fixed)
        stats = self._new_stats(self._n_folds(), on_torch=ops_of(fixed).is_torch)
        for sl, F in feature_blocks(X, fmap):
            stats._accumulate_validated(F, y[sl], None if folds is None else folds[sl])
        sol = self._ridge_solve(stats, (X, y, folds), alphas, feature_map=fmap, warn_edges=False)
        R, d = fixed.shape
        coef = sol.coef[:, 0]
        return coef[: R * d].reshape(R, d), coef[R * d :, None], sol.intercept, sol

    # ------------------------------------------------------------------ polish of a start
    def _fit_from_exact(self, X: Any, Y: Any, folds: Any, xp: Any, mean: Any,
                        geom: Any) -> tuple[None, RidgeSolution]:
        """init="auto" / "exact" / "sketch": the rank-R restriction of the exact probe's ridge
        objective J_F, started from its (or the sketch's) Q and polished by L-BFGS."""
        n, d = X.shape
        R = int(self.rank)
        k = Y.shape[1]
        centre = column_mean(X, xp) if self.fit_intercept else xp.zeros(d)
        Z = xp.asarray(X, dtype=np.float64) - centre  # a new array: X is never written to
        init = self._resolve_init(n, d)
        if init == "exact":
            models = self._start_exact(X, Y, folds, Z, xp)
        else:
            models = self._start_sketch(Y, folds, Z, xp)
        fits = CPFits(n, d, k, R, xp)
        selections = []
        for t, mdl in enumerate(models):
            fit = polish(
                Z, Y[:, t], mdl, R, bool(self.fit_intercept), int(self.max_iter),
                float(self.tol), xp, eig_backend(self, xp),
            )  # fmt: skip
            fits.store(t, fit)
            w_t, b_t = fit.w, fit.b
            sel = RidgeSolution(w_t[:, None] * 1.0, xp.asarray([b_t]) if xp.is_torch
                            else np.array([b_t]), np.asarray(mdl["alphas"], dtype=np.float64),
                            np.array([mdl["index"]]), np.asarray(mdl["scores"])[:, None],
                            np.asarray(mdl["scores"], dtype=np.float64))  # fmt: skip
            selections.append(sel)
        owner, cv = type(self).__name__, self._cv_name()
        warn_grid_edge(owner, "alpha", models[0]["alphas"], [m_["alpha_edge"] for m_ in models],
                        models[0]["default_grid"], cv)  # fmt: skip
        warn_grid_edge(owner, "gamma", models[0]["gammas"], [m_["gamma_edge"] for m_ in models],
                        self.gamma is None, cv)  # fmt: skip
        chosen = np.array([m_["alpha"] for m_ in models])
        gammas = np.array([m_["gamma"] for m_ in models])
        out = self._cp_solution(fits, Y, centre, mean, geom, chosen, selections, init, gammas,
                                steps="L-BFGS iterations")  # fmt: skip
        return None, out

    # ------------------------------------------------------------------ prediction
    def _decision(self, X: Any) -> np.ndarray:
        sol = self._solution()
        Xa, prm = self._predict_inputs(X, sol)
        fu, fv = prm["factors"]
        return cp_decision_rows(Xa, prm["centre"], fu, fv, prm["coef"], prm["intercept"])

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
    def gamma_(self):
        """The quadratic block's weight of the starting probe (per target column; a float for
        one column); None for init="moments"/"random"."""
        g = self._solution().gammas
        if g is None:
            return None
        return float(g[0]) if g.size == 1 else g.copy()

    @property
    def init_(self) -> str:
        """The start that was used: "exact", "sketch", "moments" or "random"."""
        return self._solution().init

    @property
    def n_iter_(self) -> np.ndarray:
        """L-BFGS iterations (or full alternations) run, per target."""
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
        """Alpha used (the starting probe's, or that of the last half-step): a float, or one per
        target column."""
        chosen = self._solution().alphas
        return float(chosen[0]) if chosen.size == 1 else chosen.copy()

    @property
    def alphas_(self) -> np.ndarray:
        """The alpha grid searched (starting probe or half-step) of the first target column."""
        return self._solution().halfsteps[0].alphas.copy()

    @property
    def cv_results_(self) -> dict:
        """CV of the alpha selection (starting probe at its chosen gamma, or the last
        half-step), per target column: 'alphas', 'scores' (lists)."""
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


# ---------------------------------------------------------------------------------- public
class CPProbe(ProbeRegressorMixin, RegressorMixin, CPProbeBase):
    """Rank-R (CP) degree-2 probe f(h) = sum_r (u_r . z)(v_r . z) + w . z + b, z = h - mu.

    By default the rank-R restriction of the exact degree-2 ridge probe, started from the
    exact probe (p = d(d+3)/2 <= n) or from a subspace sketch (wider), and polished by L-BFGS;
    init="moments"/"random" give the former alternating ridge. See the module docstring for
    the methods, what is exact and the stopping rules. Multi-target y gets one CP probe per
    column.

    Parameters
    ----------
    rank : int, default 2
        Number of product terms R.
    alphas : array-like of float, optional
        Ridge penalties (absolute). Default: the data-relative grid of the starting probe (or
        of the half-steps); a choice at an improving edge gives a GridEdgeWarning.
    gamma : float, sequence of float or "scale", optional
        Weight of the quadratic block in the starting probe, as for `QuadraticProbe`
        (default: the scale-free 1 / mean ||h - mu||^2). Not used by
        init="moments"/"random".
    cv : {"gcv", "loo"} or int, default "gcv"
        Alpha (and gamma) selection of the starting probe, or in the half-steps of the first
        alternation (then held fixed).
    alpha_per_target, fit_intercept, metric, reference, readout, backend
        As for `LinearProbe` (the probe is fitted on A h for the metric's A, and its factors
        are reported in your coordinates). backend="torch", or "auto" with a CUDA tensor,
        fits on the tensor's device (see the module docstring). Alpha and gamma are always
        chosen per target column.
    max_iter : int, default 100
        Maximum L-BFGS iterations (or full alternations, each two half-steps).
    tol : float, default 1e-4
        Relative decrease of the objective that stops the fit (module docstring).
    init : {"auto", "exact", "sketch", "moments", "random"}, default "auto"
    random_state : int, optional
        Seed for init="random" (and padding when d < rank).

    Attributes
    ----------
    factors_, quadratic_, linear_, intercept_, centre_, alpha_ (per target), gamma_,
    init_, alphas_, cv_results_ (of the alpha selection), n_iter_, converged_,
    n_features_in_
    """


class CPProbeClassifier(ProbeClassifierMixin, ClassifierMixin, CPProbeBase):
    """Rank-R (CP) degree-2 probe for classification: one CP probe per one-vs-rest +-1
    code column (binary: one), decision = arg-max (binary: sign). Parameters as for
    `CPProbe`, plus `scoring` as for `LinearProbeClassifier` (used by the alpha selection of
    the starting probe or of the half-steps)."""

    def __init__(
        self,
        rank: int = 2,
        alphas: Any = None,
        *,
        gamma: Any = None,
        cv: Union[str, int] = "gcv",
        alpha_per_target: bool = False,
        fit_intercept: bool = True,
        metric: str = "euclidean",
        reference: Any = None,
        readout: Any = None,
        scoring: str = "squared_error",
        max_iter: int = 100,
        tol: float = 1e-4,
        init: str = "auto",
        random_state: Optional[int] = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(
            rank,
            alphas,
            gamma=gamma,
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

    alpha_ = CPProbeBase.alpha_  # not the linear classifiers' (grids differ per column)

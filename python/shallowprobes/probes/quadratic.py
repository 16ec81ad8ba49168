"""Exact degree-2 ridge probes: QuadraticProbe, QuadraticProbeClassifier.

The probe is f(h) = (h - mu)^T Q (h - mu) + w^T (h - mu) + b, i.e. ridge regression on the
degree-2 features phi_gamma(h - mu) = [u, sqrt(gamma) (s_ab u_a u_b)_{a<=b}], u = h - mu,
s_aa = 1, s_ab = sqrt(2) (docs/design.md §2), whose kernel is <u, v> + gamma <u, v>^2. mu is the
training mean (with fit_intercept=False: mu = 0 and b = 0).

Two exact routes give the same probe:

* primal: the statistics of phi (width p = d + d(d+1)/2) are accumulated block by block by
  the core (never an n x p array), re-centred exactly at mu, and solved like a linear probe:
  one p x p eigendecomposition for every alpha, GCV / LOO / exact K-fold. Streams
  (`partial_fit`) and needs O(p^2) memory.
* dual: the n x n kernel K = Uc Uc^T + gamma (Uc Uc^T)^2 of the centred rows, double-centred,
  one n x n eigendecomposition for every alpha, GCV, exact LOO and exact K-fold (held-out
  residuals of fold F are (I - H_FF)^-1 (y_F - yhat_F) with H the hat matrix). Needs the rows
  and O(n^2) memory; the route for LLM widths.

Either way the fitted probe is stored as (mu, Q, w, b) and predicts in O(d^2) per row.
In CV the feature map (the centring mu) is fixed from all training rows -- it uses no
labels -- and only the ridge is refitted per fold.

Selection. Alpha: the best CV score, exact ties going to the larger alpha (more
regularisation), on the default grid logspace(-6, 3, 19) x the mean eigenvalue, extended by 3
decades at a time (at most twice per side) while the choice sits at an edge where the score
still improves. Gamma: the default (None) searches g0 x (0.1, 1, 10) with g0 = 1 / mean
||h - mu||^2, extended by factors of 10 (at most twice per side) the same way; "scale" is g0
alone; a list of gammas is searched as given. One eigendecomposition (n x n kernel or p x p
Gram) per gamma, ties going to the smaller gamma. A choice left at an edge of its grid where
the score still improves gives a `errors.GridEdgeWarning` (then widen alphas= or gamma=).
With alpha_per_target each target's grid grows on its own, so a multi-target fit (and sweep's
batched solves) picks what separate fits pick.

Spectral cut-off (quadratic_rank=m, a list of m, or "auto"): Q is restricted to an
m-dimensional subspace of the metric's coordinates, spanned by the principal Hessian
directions of the ridge-whitened rows (`phd_directions`), and the same ridge (same
penalty ||w||^2 + ||Q||_F^2 / gamma) is solved exactly on the d + m(m+1)/2 features
[u, sqrt(gamma) phi_quad(C^T u)] -- no n x n kernel, no p x p Gram; route "subspace". m,
gamma and alpha are chosen together by refitting K-fold CV (cv's folds when cv is an integer,
else 5): the subspace is re-estimated from each fold's training rows, because it is chosen
with the labels and CV on a subspace chosen with all rows would favour fitting the noise.
That selection is not the exact statistics-only CV of the other routes (it refits), but it is
honest. The subspace is built by orthogonally equivariant steps, so each
metric keeps its invariance group; with metric="whiten" (optionally reference= unlabelled
rows) the probe is affine-invariant and, unlike the full whitened probe, works at d ~ n.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from .._base import ClassifierMixin, RegressorMixin, streaming_method
from .._validation import check_rows_finite, check_X
from ..backends import ops_of, resolve_backend
from ..solve import features as _quadratic
from ..solve import routes
from ..solve.degree2 import (
    DEFAULT_QUADRATIC_RANKS,
    PREDICT_ENTRIES,
    QuadraticFeatureMap,
    gaussian_slope_from_values,
)
from ..solve.dual import dual_polynomial, fit_dual_gamma
from ..solve.ridge import RidgeSolution, best_index
from ..solve.stats import SufficientStats
from ..solve.subspace import (
    WhitenedRows,
    eig_backend,
    fit_selected_subspace,
    linear_decision_rows,
    refit_select,
    subspace_coefficients,
)
from .base import RidgeProbeBase
from .classifier import ProbeClassifierMixin
from .outputs import ProbeRegressorMixin
from .polynomial import GammaSearch, PolynomialOutputs, _quadratic_rank_constraints

__all__ = ["QuadraticProbe", "QuadraticProbeClassifier"]


class QuadraticProbeBase(GammaSearch, PolynomialOutputs, RidgeProbeBase):
    """Shared machinery of the degree-2 probes (not public)."""

    _feature_degree = 2  # products of inputs: degree-2 magnitude range
    _stats_check_values = False  # X is checked up front: its rows may not reach statistics

    def __init__(
        self,
        alphas: Any = None,
        *,
        gamma: Any = None,
        cv: Union[str, int] = "gcv",
        alpha_per_target: bool = False,
        fit_intercept: bool = True,
        metric: str = "euclidean",
        reference: Any = None,
        readout: Any = None,
        solver: str = "auto",
        memory_limit: Optional[float] = None,
        quadratic_rank: Any = None,
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
        self.gamma = gamma
        self.solver = solver
        self.memory_limit = memory_limit
        self.quadratic_rank = quadratic_rank

    # ------------------------------------------------------------------ parameters
    def _param_constraints(self) -> dict:
        import math

        from .._params import Array, Interval, Options

        return {
            **super()._param_constraints(),
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
            "solver": [Options(routes.SOLVERS)],
            "quadratic_rank": _quadratic_rank_constraints(),
            "memory_limit": [
                Interval("real", 0.0, math.inf, closed="right", desc="a positive number of bytes"),
                None,
            ],
        }

    def _check_params(self) -> None:
        super()._check_params()  # every parameter, from _param_constraints
        self._gamma_values(1.0)
        self._memory_limit()

    # ------------------------------------------------------------------ route
    # The memory model and the route decision are `solve.routes`; these read the settings that
    # change the peak off the parameters (sweep's and dask's planners call them too).
    def _memory_limit(self) -> float:
        return routes.memory_limit_bytes(self.memory_limit)

    def _memory_knobs(self) -> tuple[int, int, int]:
        """(K folds, G gammas, T eigendecompositions the Rust core runs at once)."""
        return self._n_folds(), self._n_gammas_hint(), routes.eigensolver_threads(self.backend)

    def _bytes_primal(self, p: int) -> float:
        """Peak bytes of a primal-route fit with p features (`solve.routes.bytes_primal`)."""
        K, G, T = self._memory_knobs()
        return routes.bytes_primal(p, K, G, T, loo=self._cv_name() == "loo")

    def _bytes_dual(self, n: int, d: int, n_gammas: int, backend: Any = None,
                    X: Any = None) -> float:  # fmt: skip
        """Peak bytes of a dual-route fit on n rows of d inputs (`solve.routes.bytes_dual`);
        with the backend and rows of the fit, less where they take the band GCV route."""
        _, _, T = self._memory_knobs()
        heldout = 0
        if self._cv_name() != "gcv":  # held-out predictions for each alpha of the grid
            alphas = self._explicit_alphas()
            heldout = 19 if alphas is None else alphas.size  # 19: the default grid's length
        euclidean = self.metric == "euclidean"
        band = self._takes_band_route(n, d, backend, X)
        return routes.bytes_dual(
            n, d, n_gammas, T, euclidean=euclidean, heldout_alphas=heldout, band=band
        )

    def _takes_band_route(self, n: int, d: int, backend: Any, X: Any) -> bool:
        """Whether a dual fit of the rows X on `backend` takes the band GCV route, by the
        conditions of `solve.dual.KernelSolve`: GCV on the Rust core with numpy rows, every
        alpha > 0, and a kernel of full rank by construction (n - intercept <= p)."""
        if getattr(backend, "name", "") != "rust" or not isinstance(X, np.ndarray):
            return False
        if self._cv_name() != "gcv":
            return False
        alphas = self._explicit_alphas()
        if alphas is not None and not bool(np.all(np.asarray(alphas) > 0)):
            return False
        return n - int(bool(self.fit_intercept)) <= _quadratic.n_features(d)

    def _route(self, n: Optional[int], d: int, backend: Any = None, X: Any = None) -> str:
        """"primal" or "dual" for a fit of n rows (None: partial_fit) of d inputs (the rows X
        and their backend, when known, refine the dual route's estimate)."""
        p = _quadratic.n_features(d)
        limit = self._memory_limit()
        primal = self._bytes_primal(p)
        dual = None if n is None else self._bytes_dual(n, d, self._n_gammas_hint(), backend, X)
        return routes.choose_route(self.solver, n, d, primal, dual, limit, type(self).__name__)

    # ------------------------------------------------------------------ fitting
    def _new_stats(self, n_folds: int) -> SufficientStats:
        return SufficientStats(n_folds, self.backend, degree=2)

    def _streams(self) -> bool:
        return self.solver != "dual" and self.quadratic_rank is None

    def _no_stream_reason(self) -> str:
        if self.quadratic_rank is not None:
            return (
                f"{type(self).__name__}(quadratic_rank=...) has no partial_fit: the quadratic "
                "block's subspace is estimated from the labelled rows first, then the probe "
                "is fitted on it (two passes). Call fit()."
            )
        return (
            f"{type(self).__name__}(solver='dual') has no partial_fit: partial_fit streams "
            "statistics, which is the primal route, and the dual route needs all rows at "
            "once. Call fit(), or use solver='auto' or 'primal'."
        )

    def _fit_rows(self, X: np.ndarray, Y: np.ndarray, folds: Optional[np.ndarray]):
        if self.quadratic_rank is not None:
            backend = resolve_backend(self.backend, X)
            check_rows_finite(X, backend)
            return None, self._solve_subspace(X, Y, folds, backend)
        backend = resolve_backend(self.backend, X)
        route = self._route(X.shape[0], X.shape[1], backend, X)
        if route == "primal":
            return super()._fit_rows(X, Y, folds)
        check_rows_finite(X, backend)
        return None, self._solve_dual(X, Y, folds, backend)

    @streaming_method
    def partial_fit(self, X: Any, y: Any, **kwargs: Any):
        """Add a chunk of rows to the degree-2 statistics (primal route); the solve happens
        at first use. Memory O(p^2) with p = d + d(d+1)/2, whatever the number of rows."""
        if getattr(self, "_stats", None) is None and self.solver != "dual":
            d = check_X(
                X, owner=type(self).__name__, check_finite=False, keep_tensor=True
            ).shape[1]
            self._check_params()
            p = _quadratic.n_features(d)
            need, limit = self._bytes_primal(p), self._memory_limit()
            routes.check_streaming_fits(type(self).__name__, d, p, need, limit)
        return RidgeProbeBase.partial_fit.fn(self, X, y, **kwargs)

    # ------------------------------------------------------------------ primal
    def _solve(self, stats: SufficientStats, rows: Optional[tuple]) -> RidgeSolution:
        backend = stats._backend_module()
        xp = stats._ops()
        d = stats.n_inputs
        fit_intercept = bool(self.fit_intercept)
        centre = stats.input_mean if fit_intercept else xp.zeros(d)
        base = stats.recentred(centre)
        geom = self._geometry(base.input_covariance, d, xp=xp)
        if not geom.is_identity:
            base = geom.transform_stats(base, 2)  # statistics of phi(A (h - centre))
        n = float(base.count.sum())
        a, b, _ = _quadratic.pairs(d)
        diag = xp.index(d + np.flatnonzero(a == b))  # columns u_a^2: raw sums give ||u||^2
        mean_sq = float((base.shift_x[diag] + base.sum_x[:, diag].sum(axis=0) / n).sum())
        gammas = self._gamma_values(mean_sq)
        explicit = self._explicit_alphas()

        def fit_one(g: float) -> RidgeSolution:
            fs = base.copy()
            scale = float(np.sqrt(g))
            fs._as_features(scale)
            fmap = None if rows is None else QuadraticFeatureMap(centre, scale, backend, geom)
            return self._ridge_solve(fs, rows, explicit, feature_map=fmap, warn_edges=False)

        gammas, solutions, best = self._search_gammas(gammas, fit_one)
        sol = solutions[best]
        g = float(gammas[best])
        self._warn_edges(sol, gammas, solutions, best)
        Q, w = _quadratic.coef_to_quadratic(sol.coef, d, float(np.sqrt(g)))
        Q, w = geom.pull_back_quadratic(Q), geom.pull_back_linear(w)
        sol.geometry = geom
        return self._finish(sol, Q, w, centre, gammas, best, solutions, "primal")

    def _best_gamma(self, solutions: list) -> int:
        """Index of the best gamma's solution (ties: the first; `_search_gammas` breaks ties
        toward the smaller gamma)."""
        return int(best_index(self._gamma_criteria(solutions), None))

    @staticmethod
    def _finish(sol, Q, w, centre, gammas, best, solutions, route) -> RidgeSolution:
        sol.coef = w
        sol.quadratic = Q
        sol.centre = centre
        sol.gamma = float(gammas[best])
        sol.gammas = np.asarray(gammas, dtype=np.float64)
        sol.all_scores = [(s.alphas, s.scores, s.joint_scores, s.searched) for s in solutions]
        sol.route = route
        return sol

    # ------------------------------------------------------------------ dual
    def _solve_dual(self, X: np.ndarray, Y: np.ndarray, folds, backend) -> RidgeSolution:
        """The dual route: one n x n kernel eigendecomposition per gamma (`solve.dual`)."""
        n, d = X.shape
        fit_intercept = bool(self.fit_intercept)
        cv_name, scoring, n_folds = self._cv_name(), self._scoring(), self._n_folds()
        xp, Uc, Y, centre, geom = self._centred_rows(X, Y, backend)
        y_mean = Y.mean(axis=0) if fit_intercept else xp.zeros(Y.shape[1])
        Yc = Y - y_mean
        G = Uc @ Uc.T
        gammas = self._gamma_values(float(G.trace()) / n)
        explicit = self._explicit_alphas()
        one_kernel = len(gammas) == 1 and self.gamma is not None  # G may become the kernel

        def fit_one(g: float) -> RidgeSolution:
            return fit_dual_gamma(
                G, g, in_place=one_kernel, alphas=explicit, n_features=_quadratic.n_features(d),
                backend=backend, Y=Y, Yc=Yc, y_mean=y_mean, fit_intercept=fit_intercept,
                cv_name=cv_name, scoring=scoring, folds=folds, n_folds=n_folds,
                alpha_per_target=bool(self.alpha_per_target),
            )  # fmt: skip

        gammas, solutions, best = self._search_gammas(gammas, fit_one)
        sol = solutions[best]
        g = float(gammas[best])
        self._warn_edges(sol, gammas, solutions, best)
        G = None  # the row Gram (or the kernel it became) is no longer needed
        Q, w, fitted = dual_polynomial(sol, g, Uc, y_mean, fit_intercept, xp)
        if self._is_classifier:
            sol.calibration = gaussian_slope_from_values(fitted, Y)
        Q, w = geom.pull_back_quadratic(Q), geom.pull_back_linear(w)
        sol.geometry = geom
        return self._finish(sol, Q, w, centre, gammas, best, solutions, "dual")

    # ------------------------------------------------------------------ spectral cut-off
    def _quadratic_ranks(self, d: int) -> list:
        """The subspace dimensions m to try (each <= d), sorted."""
        q = self.quadratic_rank
        if isinstance(q, str):  # "auto"
            vals = [m for m in DEFAULT_QUADRATIC_RANKS if m < d] + [min(d, 16)]
        else:
            vals = [int(v) for v in np.atleast_1d(np.asarray(q))]
        return sorted({min(int(v), d) for v in vals})

    def _solve_subspace(self, X: np.ndarray, Y: np.ndarray, folds, backend) -> RidgeSolution:
        """quadratic_rank: the exact ridge probe with Q restricted to an m-dimensional subspace
        of the metric's coordinates (see `phd_directions`); m (when several), gamma and
        alpha chosen by refitting K-fold CV (`refit_select`)."""
        d = X.shape[1]
        xp, Uc, Y, centre, geom = self._centred_rows(X, Y, backend)
        ranks = self._quadratic_ranks(d)
        white = WhitenedRows(Uc, xp, eig_backend(self, xp))
        choice = refit_select(self, Uc, Y, ranks, folds, xp, white)
        sol, C = fit_selected_subspace(self, Uc, Y, folds, choice, xp, white=white)
        m, g = choice["m"], choice["gamma"]
        Q, w = subspace_coefficients(sol.coef, C, g, xp)
        if self._is_classifier:
            fitted = linear_decision_rows(Uc, w, sol.intercept) + _quadratic.quadratic_form_rows(
                Uc, Q
            )
            sol.calibration = gaussian_slope_from_values(fitted, Y)
        gammas = np.array([g])
        table = {"ranks": choice["ranks"], "gammas": choice["gammas"], "scores": choice["scores"]}
        Q, w = geom.pull_back_quadratic(Q), geom.pull_back_linear(w)
        sol.geometry = geom
        sol.quadratic_rank = m
        sol.rank_table = table
        return self._finish(sol, Q, w, centre, gammas, 0, [sol], "subspace")

    # ------------------------------------------------------------------ prediction
    def _decision(self, X: Any) -> np.ndarray:
        sol = self._solution()
        Xa, prm = self._predict_inputs(X, sol)
        xp = ops_of(Xa)
        n, d = Xa.shape
        out = xp.empty((n, prm["quadratic"].shape[0]))
        block = max(16, PREDICT_ENTRIES // max(d, 1))
        for start in range(0, n, block):
            Z = xp.asarray(Xa[start : start + block], dtype=np.float64) - prm["centre"]
            out[start : start + block] = (
                Z @ prm["coef"] + prm["intercept"]
                + _quadratic.quadratic_form_rows(Z, prm["quadratic"])
            )  # fmt: skip
        return out

    # ------------------------------------------------------------------ fitted attributes
    def _centred_quadratic(self) -> np.ndarray:
        return self._solution().quadratic

    @property
    def gamma_(self) -> float:
        """The weight of the quadratic block that was used (chosen by CV from a grid)."""
        return self._solution().gamma

    @property
    def solver_(self) -> str:
        """The route that solved the probe: "primal", "dual", or "subspace" (quadratic_rank)."""
        return self._solution().route

    @property
    def quadratic_rank_(self) -> Optional[int]:
        """The dimension m of the quadratic block's subspace (quadratic_rank), else None."""
        return self._solution().quadratic_rank

    @property
    def cv_results_(self) -> dict:
        """As for the linear probes, for the chosen gamma, plus 'gammas' (G,), and
        'gamma_scores' / 'gamma_mean_scores' / 'gamma_alphas': the same per gamma."""
        sol = self._solution()
        out = super().cv_results_
        out["gamma"] = sol.gamma
        out["gammas"] = sol.gammas.copy()
        out["gamma_alphas"] = [a.copy() for a, _, _, _ in sol.all_scores]
        out["gamma_scores"] = [s.copy() for _, s, _, _ in sol.all_scores]
        out["gamma_mean_scores"] = [j.copy() for _, _, j, _ in sol.all_scores]
        table = sol.rank_table
        if table is not None:  # quadratic_rank: the refitting K-fold CV that chose m, gamma, alpha
            out["quadratic_ranks"] = list(table["ranks"])
            out["refit_gammas"] = table["gammas"].copy()
            out["refit_alphas"] = sol.refit_alphas.copy()
            out["quadratic_rank_scores"] = table["scores"].copy()
        return out

# ---------------------------------------------------------------------------------- public
class QuadraticProbe(ProbeRegressorMixin, RegressorMixin, QuadraticProbeBase):
    """Exact degree-2 ridge probe f(h) = h^T Q h + w^T h + c (regression, multi-target).

    Ridge regression on the coordinate-stable degree-2 features of the centred rows,
    phi(u) = [u, sqrt(gamma) (s_ab u_a u_b)_{a<=b}] (s_ab = sqrt(2) off the diagonal, so the
    kernel is <u, v> + gamma <u, v>^2), with alpha (and gamma, when given a grid) chosen by
    exact GCV, LOO or K-fold CV. Solved by the primal route (statistics of the p = d + d(d+1)/2
    features, accumulated block by block, streaming) or the dual route (n x n kernel, for LLM
    widths); both give the same probe. See the module docstring.

    Parameters
    ----------
    alphas : array-like of float, optional
        Ridge penalties (absolute, on the summed squared error). Default: logspace(-6, 3, 19)
        times the mean eigenvalue of the feature Gram (relative to the data's scale); a
        choice at an improving edge gives a GridEdgeWarning.
    gamma : float, sequence of float or "scale", optional
        Weight of the quadratic block. A sequence is searched jointly with alpha (one
        eigendecomposition per gamma). Default None (same as "scale"): g0 = 1 / mean
        ||h - mu||^2, which makes the two kernel terms comparable and keeps the probe
        invariant to rescaling h. For a search pass e.g. gamma=[0.1 * g, g, 10 * g].
    cv : {"gcv", "loo"} or int, default "gcv"
        As for `LinearProbe` ("loo" needs `fit`; all modes work on both routes).
    alpha_per_target : bool, default False
    fit_intercept : bool, default True
        Centre at the training mean and fit an unpenalised intercept. False: f has no
        constant term and the features are of h itself.
    solver : {"auto", "primal", "dual"}, default "auto"
        "auto": primal when p <= n and its memory (O(p^2)) fits `memory_limit`, else dual
        when the n x n kernel fits, else primal if it fits, else a MemoryError naming the
        numbers and the options (CPProbe, fewer rows, fewer inputs).
    metric, reference, readout
        Geometry of the penalty, as for `LinearProbe`: the features are phi_gamma(A (h - mu)),
        and the degree-2 map keeps each metric's invariance group (`shallowprobes.metrics`).
    memory_limit : float, optional
        Bytes the solve may use, consulted by solver="auto" (to choose the route) and by
        `partial_fit` (the statistics must fit); default half the physical memory. An
        explicit solver="primal"/"dual" in `fit` is taken as the caller's decision. It is
        compared with an upper bound of each route's peak memory (measured: 1.0-1.6 times
        the real peak), which counts every array alive at once: on the primal route about
        8 p^2 bytes times 9 (gcv, one gamma) to 40-90 (5-fold, several gammas, several core
        threads; the most for p < 2048), since K-fold keeps per-fold statistics and their
        eigendecompositions and each extra gamma copies the statistics; on the dual route
        about 8 n^2 bytes times 6-12, plus the rows and Q (d x d).
    quadratic_rank : int, sequence of int or "auto", optional
        Spectral cut-off of the quadratic block: Q restricted to an m-dimensional subspace
        (module docstring). A sequence (or "auto": 1, 2, 4, 8 and min(d, 16)) is searched by
        refitting K-fold CV, jointly with gamma and alpha (one alpha for all targets on this
        route). None (default): the full Q. For d comparable to n use it with
        metric="whiten" (affine-invariant) or the default metric.
    backend : {"auto", "rust", "numpy"}, default "auto"

    Attributes
    ----------
    quadratic_ : (d, d) or (n_targets, d, d)
    linear_ : (d,) or (n_targets, d)
    intercept_ : float or (n_targets,)
    alpha_, alphas_, gamma_, solver_, quadratic_rank_, centre_, cv_results_, best_score_,
    n_features_in_, stats_ (primal route)
    """


class QuadraticProbeClassifier(ProbeClassifierMixin, ClassifierMixin, QuadraticProbeBase):
    """Exact degree-2 ridge probe for classification (one-vs-rest +-1 codes).

    Decision values are the degree-2 polynomials of `QuadraticProbe` fitted to the codes;
    the class is their arg-max (binary: the sign). `scoring` as for `LinearProbeClassifier`
    ("accuracy"/"roc_auc" need cv="loo" or K-fold); `predict_proba` uses the same
    closed-form logistic slope (from the statistics on the primal route, from the training
    decision values on the dual route).

    Parameters
    ----------
    alphas, gamma, cv, alpha_per_target, fit_intercept, metric, reference, readout, solver,
    memory_limit, quadratic_rank, backend
        As for `QuadraticProbe`.
    scoring : {"squared_error", "accuracy", "roc_auc"}, default "squared_error"

    Attributes
    ----------
    classes_, quadratic_ ((1, d, d) binary), linear_, intercept_, alpha_, alphas_, gamma_,
    solver_, cv_results_, best_score_, n_features_in_
    """

    def __init__(
        self,
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
        solver: str = "auto",
        memory_limit: Optional[float] = None,
        quadratic_rank: Any = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(
            alphas,
            gamma=gamma,
            cv=cv,
            alpha_per_target=alpha_per_target,
            fit_intercept=fit_intercept,
            metric=metric,
            reference=reference,
            readout=readout,
            solver=solver,
            memory_limit=memory_limit,
            quadratic_rank=quadratic_rank,
            backend=backend,
        )
        self.scoring = scoring

"""The scaffolding every ridge probe shares: parameters and validation, fit / partial_fit /
update over `SufficientStats`, and the lazy solve through `solve.ridge`. What the fitted probe
gives back (predictions, device placement, fitted attributes, the regressors' predict / score)
is `probes.outputs`; the classifiers' label coding is `probes.classifier`. `probes.linear`,
`probes.quadratic` and `probes.cp` are thin subclasses.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Union

import numpy as np

from .._base import (
    BaseEstimator,
    NotFittedError,
    streaming_method,
)
from .._validation import check_targets, check_X, fold_assignment, is_torch_tensor
from ..backends import copy_of, get_backend, ops_of, to_numpy, uses_torch
from ..solve.calibration import gaussian_calibration
from ..solve.dual import centred_copy, row_covariance
from ..solve.geometry import Geometry, check_readout, fit_geometry
from ..solve.paths import EigenPath, GcvScorer, kfold_paths, path_coefs
from ..solve.ridge import (
    RidgeSolution,
    RowMap,
    default_alpha_grid,
    feature_blocks,
    linear_decision,
    loo_scores,
    select_alpha,
    warn_grid_edge,
)
from ..solve.scoring import SCORINGS, score_predictions
from ..solve.stats import SufficientStats
from ..threads import commit_guard, interruptible
from .outputs import ProbeRegressorMixin, RidgeOutputs

__all__ = ["RidgeProbeBase", "ProbeRegressorMixin"]  # the regressor mixin's home is .outputs

# Most fold coefficients (doubles, all folds together) K-fold scoring holds at once: 256 MiB.
KFOLD_COEF_ENTRIES = 1 << 25


# ---------------------------------------------------------------------------------- base
class RidgeProbeBase(RidgeOutputs, BaseEstimator):
    """Shared machinery of the linear ridge probes (not public)."""

    _is_classifier = False
    _feature_degree = 1  # degree of the features the statistics hold (input magnitude range)
    # Whether fit/partial_fit leave the finiteness and magnitude checks of X to the statistics
    # (`SufficientStats._accumulate_validated(check_values=True)`: inside the Rust core's pass
    # over the rows, no pass of its own). Estimators whose rows may take another route (the
    # dual solve, CP) check X up front instead.
    _stats_check_values = True
    _takes_precision = False  # whether `precision` is a parameter (the linear probes)

    def __init__(
        self,
        alphas: Any = None,
        *,
        cv: Union[str, int] = "gcv",
        alpha_per_target: bool = False,
        fit_intercept: bool = True,
        metric: str = "euclidean",
        reference: Any = None,
        readout: Any = None,
        backend: str = "auto",
    ) -> None:
        self.alphas = alphas
        self.cv = cv
        self.alpha_per_target = alpha_per_target
        self.fit_intercept = fit_intercept
        self.metric = metric
        self.reference = reference
        self.readout = readout
        self.backend = backend

    # ------------------------------------------------------------------ parameters
    def _scoring(self) -> str:
        return "squared_error"

    def _n_folds(self) -> int:
        """Validated cv: 1 for gcv/loo, K for K-fold."""
        cv = self.cv
        if cv is None or (isinstance(cv, str) and cv in ("gcv", "loo")):
            return 1
        if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
            if cv < 2:
                raise ValueError(f"cv={cv} folds: K-fold CV needs at least 2 folds.")
            return int(cv)
        raise ValueError(f"cv must be 'gcv', 'loo' or an integer K >= 2, got {cv!r}.")

    def _cv_name(self) -> str:
        return "gcv" if self.cv is None else str(self.cv)

    def _param_constraints(self) -> dict:
        """name -> constraints of every parameter (see `shallowprobes._params`)."""
        from .._params import ALPHAS, ARRAY_LIKE, BACKEND, BOOL, CV, MATRIX, InstanceOf, Options
        from ..solve.geometry import METRICS

        extra = {"precision": [Options(("auto", "float64", "float32"))]}
        return {
            **(extra if self._takes_precision else {}),
            "alphas": ALPHAS,
            "cv": CV,
            "alpha_per_target": BOOL,
            "fit_intercept": BOOL,
            "metric": [Options(METRICS)],
            "reference": [None, InstanceOf(SufficientStats, "SufficientStats"), MATRIX],
            "readout": [None, ARRAY_LIKE],
            "backend": BACKEND,
        }

    def _check_params(self) -> None:
        """Validate every parameter (ParameterError naming it) before any work."""
        from .._params import Options, ParameterError, check_param, params_of, validate_params

        owner = type(self).__name__
        constraints = self._param_constraints()
        validate_params(params_of(self, constraints), constraints, owner=owner)
        scoring = self._scoring()
        check_param("scoring", scoring, [Options(SCORINGS)], owner=owner)
        if self.reference is not None and self.metric != "whiten":
            raise ParameterError(
                f'reference= is used by metric="whiten" only (metric={self.metric!r}).'
            )
        if self.readout is not None and self.metric != "readout":
            raise ParameterError(
                f'readout= is used by metric="readout" only (metric={self.metric!r}).'
            )
        if self.metric == "readout" and self.readout is None:
            raise ParameterError(
                'metric="readout" needs the model\'s readout matrix: pass readout=W with W of '
                "shape (m, d) (logits = W h + b)."
            )
        get_backend(self.backend)  # ImportError naming the extra when torch is missing
        if scoring != "squared_error" and self._cv_name() == "gcv":
            raise ParameterError(
                f"scoring={scoring!r} needs held-out decision values, which GCV does not give: "
                "use cv='loo' or an integer number of folds."
            )

    def _explicit_alphas(self) -> Optional[np.ndarray]:
        if self.alphas is None:
            return None
        if is_torch_tensor(self.alphas):
            alphas = self.alphas.detach().cpu().numpy()
        else:
            alphas = self.alphas
        try:
            arr = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"alphas must be numbers, got {self.alphas!r}.") from None
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"alphas must be a non-empty 1-D sequence, got shape {arr.shape}.")
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise ValueError(f"alphas must be finite and >= 0, got {arr}.")
        return arr

    # ------------------------------------------------------------------ fitting
    def _prepare_targets(
        self, y: Any, n: int, *, first: bool, classes: Any = None, keep_tensor: bool = False
    ):
        """Return (Y float64 (n,k), labels or None, state dict) for this estimator type.
        keep_tensor: a torch y stays a tensor on its device (the torch backend)."""
        Y, one_d = check_targets(y, n, owner=type(self).__name__, keep_tensor=keep_tensor)
        return Y, None, {"y_1d": one_d}

    @interruptible
    def fit(self, X: Any, y: Any, fold_ids: Any = None) -> RidgeProbeBase:
        """Fit on all rows at once, selecting alpha by the chosen cv.

        fold_ids (optional, with integer cv=K): the fold of each row, e.g. to keep all rows of
        one document in one fold. By default row i goes to fold i % K.

        X may be a dask array: statistics are computed per block on the workers and only
        they reach the client (see `shallowprobes._dask.fit_estimator`).
        """
        self._check_params()
        # --- dask arrays: per-block statistics on the workers (shallowprobes._dask) ---
        from .._dask import fit_estimator, is_dask_array

        if is_dask_array(X):
            return fit_estimator(self, X, y, fold_ids)
        # --- end dask ---
        # Finiteness and magnitude: one pass over X here, or inside the statistics' own pass
        # (`_stats_check_values`).
        on_torch = uses_torch(self.backend, X)
        Xa = check_X(
            X, min_samples=2, owner=type(self).__name__, keep_tensor=on_torch,
            degree=self._feature_degree, check_finite=not self._stats_check_values,
        )  # fmt: skip
        self._check_metric_inputs(Xa.shape[1])
        n = Xa.shape[0]
        Y, labels, state = self._prepare_targets(y, n, first=True, keep_tensor=on_torch)
        folds = fold_assignment(self._n_folds(), n, fold_ids)
        stats, solution = self._fit_rows(Xa, Y, folds)
        # Commit only after everything succeeded: a failed (or interrupted) fit leaves the
        # estimator as it was.
        with commit_guard():
            self._stats = stats
            self._solution_cache = solution
            self._target_state = state
            self.n_features_in_ = Xa.shape[1]
        return self

    def _check_partial_fit(self, first: bool) -> None:
        """Raise if rows cannot be added: the probe was solved from its rows (the dual route),
        without statistics to add them to."""
        if first and getattr(self, "_solution_cache", None) is not None:
            raise ValueError(
                f"this {type(self).__name__} was fitted by the dual route, which keeps no "
                "statistics to add rows to; call fit() again with all rows, or fit with "
                "solver='primal' (or start a new probe) for partial_fit."
            )

    def _new_stats(self, n_folds: int) -> SufficientStats:
        return SufficientStats(n_folds, self.backend, precision=getattr(self, "precision", "auto"))

    def _fit_rows(self, X: np.ndarray, Y: np.ndarray, folds: Optional[np.ndarray]):
        """(statistics, solution) from validated rows; subclasses may solve without statistics."""
        stats = self._new_stats(self._n_folds())
        stats._accumulate_validated(X, Y, folds, check_values=self._stats_check_values)
        return stats, self._solve(stats, rows=(X, Y, folds))

    def _streams(self) -> bool:
        """Whether rows can be added chunk by chunk (`partial_fit`)."""
        return True

    def _no_stream_reason(self) -> str:
        return f"{type(self).__name__} has no partial_fit."

    @streaming_method
    @interruptible
    def partial_fit(self, X: Any, y: Any, **kwargs: Any) -> RidgeProbeBase:
        """Add a chunk of rows to the statistics; the solve happens at first use.

        With integer cv=K, row i (counted across all chunks) goes to fold i % K, so any
        chunking gives the same result as `fit` on the concatenated rows.
        """
        self._check_params()
        first = getattr(self, "_stats", None) is None
        self._check_partial_fit(first)
        n_features = None if first else self.n_features_in_
        on_torch = uses_torch(self.backend, X) if first else self._stats._keeps_tensors(X)
        Xa = check_X(
            X, n_features=n_features, owner=type(self).__name__, keep_tensor=on_torch,
            degree=self._feature_degree, check_finite=not self._stats_check_values,
        )  # fmt: skip
        if first:
            self._check_metric_inputs(Xa.shape[1])
        Y, labels, state = self._prepare_targets(
            y, Xa.shape[0], first=first, classes=kwargs.get("classes"), keep_tensor=on_torch
        )
        K = self._n_folds()
        if first:
            stats = self._new_stats(K)
        else:
            stats = self._stats
            if stats.n_folds != K:
                raise ValueError(
                    f"cv changed from {stats.n_folds} to {K} fold(s) between partial_fit calls; "
                    "call fit() or start a new estimator."
                )
            if Y.shape[1] != stats.n_targets:
                raise ValueError(
                    f"y has {Y.shape[1]} target column(s) but earlier chunks had {stats.n_targets}."
                )
        folds = None
        if K > 1:
            folds = (np.arange(stats.rows_seen, stats.rows_seen + Xa.shape[0]) % K).astype(np.int64)
        if not first:
            # derived from the statistics, recomputed lazily: dropped before they change, so
            # an interrupted update never leaves a stale solution next to new statistics
            self._solution_cache = None
        # all-or-nothing, X's values checked on the way (`_stats_check_values`)
        stats._accumulate_validated(Xa, Y, folds, check_values=self._stats_check_values)
        if first:
            with commit_guard():
                self._stats = stats
                self._solution_cache = None
                self._target_state = state
                self.n_features_in_ = Xa.shape[1]
        return self

    def _solution(self) -> RidgeSolution:
        sol = getattr(self, "_solution_cache", None)
        if sol is not None:
            return sol
        stats = getattr(self, "_stats", None)
        if stats is None:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' or "
                "'partial_fit' with appropriate arguments before using this estimator."
            )
        self._check_params()
        if stats.n_samples < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 samples to solve; got "
                f"{stats.n_samples} sample(s) so far."
            )
        sol = interruptible(self._solve)(stats, rows=None)
        with commit_guard():
            self._solution_cache = sol
        return sol

    def _check_metric_inputs(self, d: int) -> None:
        """Fail before any work when readout= / reference= do not match X's width, or hold
        NaN / infinity (ParameterError; NonFiniteParameterError for non-finite entries)."""
        from .._params import NonFiniteParameterError, ParameterError
        from ..backends import all_finite

        if self.metric == "readout":
            check_readout(self.readout, d)
        ref = self.reference
        if ref is None:
            return
        from ..solve.stats import SufficientStats as _Stats

        if isinstance(ref, _Stats):
            if ref.n_inputs != d:
                raise ParameterError(
                    f"reference statistics have {ref.n_inputs} inputs but X has {d} features."
                )
            if ref.n_samples < 2:
                raise ParameterError(
                    f"reference statistics hold {ref.n_samples} row(s); the whitening "
                    "covariance needs a minimum of 2."
                )
            return
        if np.ndim(ref) == 2 and np.shape(ref)[1] != d:
            raise ParameterError(
                f"reference has {np.shape(ref)[1]} features, but X has {d}: the reference "
                "rows must be activations of the same hidden units."
            )
        try:
            R = check_X(ref, name="reference", n_features=d, min_samples=2, owner="the probe",
                        check_finite=False, keep_tensor=True)  # fmt: skip
        except ValueError as exc:
            raise ParameterError(f"reference (the whitening rows) is invalid: {exc}") from None
        if not all_finite(R):
            raise NonFiniteParameterError(
                "reference contains NaN or infinity; the reference rows must be finite."
            )

    def _geometry(self, covariance: Any, d: int, xp: Any = None,
                  variances: Any = None) -> Geometry:  # fmt: skip
        """The fitted metric (see `shallowprobes.metrics`); covariance() gives the training
        rows' centred covariance when the metric needs it (variances(): its diagonal, when
        cheaper to get alone). xp: the namespace of the fit."""
        return fit_geometry(
            self.metric,
            covariance,
            d,
            reference=self.reference,
            readout=self.readout,
            backend=self.backend,
            xp=xp,
            variances=variances,
        )

    def _centred_rows(self, X: Any, Y: Any, backend: Any) -> tuple:
        """(xp, rows A (X - centre) as a private float64 copy, Y, centre, geometry) for the
        routes that solve from the rows instead of statistics (`solve.dual.centred_copy`)."""
        d = X.shape[1]
        xp, Uc, Y, centre = centred_copy(X, Y, backend, bool(self.fit_intercept))
        geom = self._geometry(
            lambda: row_covariance(Uc, xp), d, xp=xp,
            variances=lambda: ((Uc - Uc.mean(axis=0)) ** 2).mean(axis=0),  # as cov(bias=True)
        )  # fmt: skip
        if not geom.is_identity:
            Uc = geom.rows(Uc)  # these routes see A (h - centre)
        return xp, Uc, Y, centre, geom

    def _solve(self, stats: SufficientStats, rows: Optional[tuple]) -> RidgeSolution:
        geom = self._geometry(stats.input_covariance, stats.n_inputs, xp=stats._ops())
        if geom.is_identity:
            sol = self._ridge_solve(stats, rows, self._explicit_alphas())
        else:
            # ridge on the features A x, from the exactly transformed statistics
            fmap = RowMap(geom, stats.n_inputs)
            sol = self._ridge_solve(
                geom.transform_stats(stats, 1), rows, self._explicit_alphas(), feature_map=fmap
            )
            sol.coef = geom.pull_back_linear(sol.coef)
        sol.geometry = geom
        return sol

    def _ridge_solve(
        self,
        stats: SufficientStats,
        rows: Optional[tuple],
        alphas: Optional[np.ndarray],
        feature_map: Optional[Any] = None,
        warn_edges: bool = True,
    ) -> RidgeSolution:
        """Ridge on the features whose (degree-1) statistics are `stats`, alpha chosen by CV.

        rows = (X, Y, folds) of the training data when available (LOO and decision-value
        scoring need them); feature_map turns a block of X rows into the features the
        statistics describe (None: the rows are the features).

        Selection: the best CV score; exact ties go to the larger alpha (more regularisation).
        The default grid (alphas=None) can be extended, 3 decades at a time and at most
        MAX_EXTENSIONS times per side (per target with alpha_per_target), while the choice
        sits at an edge with the score still improving there (all from the one spectrum). A
        choice left at an edge of its grid gives a GridEdgeWarning (warn_edges=False: only
        recorded in sol.alpha_edges, for callers that choose among several solutions and warn
        about the one they keep).
        """
        backend = stats._backend_module()
        xp = stats._ops()
        fit_intercept = bool(self.fit_intercept)
        scoring = self._scoring()
        cv_name = self._cv_name()
        ne = stats.normal_equations(fit_intercept)
        if not (xp.all_finite(ne.gram) and xp.all_finite(ne.cxy)):
            raise ValueError(
                "the Gram matrix overflowed float64: some features or targets have magnitude "
                "around 1e150 or more. Rescale X (and y) before fitting."
            )
        default_grid = alphas is None
        if default_grid:
            alphas = default_alpha_grid(ne.gram)
        alphas = np.asarray(alphas, dtype=np.float64)
        k = ne.cxy.shape[1]
        if cv_name == "gcv":
            gcv = GcvScorer(backend, ne, fit_intercept)
            path: Any = gcv.path
        elif cv_name == "loo":
            lam, V, B = backend.spectrum(ne.gram, ne.cxy)
            path = EigenPath(backend, (lam, V, B))
        else:
            # K-fold needs coefficients only: of the folds for the scores, of all rows for the
            # chosen alphas
            path, fold_paths = kfold_paths(stats, ne, fit_intercept, backend)

        def scores(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """(per (A, k), joint (A,)) CV scores of the alphas in `grid`."""
            if cv_name == "gcv":
                return gcv(grid)
            if cv_name == "loo":
                if rows is None:
                    raise ValueError(
                        "cv='loo' needs the training rows, which partial_fit does not keep; "
                        "use cv='gcv' or an integer number of folds with partial_fit, or call "
                        "fit()."
                    )
                return loo_scores(backend, xp, ne, (lam, V, B), rows, grid, scoring,
                                  fit_intercept, feature_map)  # fmt: skip
            return self._kfold_scores(stats, grid, rows, backend, scoring, fold_paths,
                                      feature_map)  # fmt: skip

        alphas, per, joint, idx, edges, searched = select_alpha(
            scores, alphas, default_grid, bool(self.alpha_per_target)
        )
        if warn_edges:
            warn_grid_edge(type(self).__name__, "alpha", alphas, edges, default_grid, cv_name)
        chosen = np.unique(idx)
        coefs = path.coefs(alphas[chosen])
        pos = np.searchsorted(chosen, idx)
        coef = copy_of(coefs[xp.index(pos), :, xp.index(np.arange(k))].T)  # (d, k)
        intercept = ne.y_mean - ne.x_mean @ coef
        sol = RidgeSolution(coef, intercept, alphas, idx, per, joint, searched=searched)
        sol.alpha_edges = edges
        sol.default_grid = default_grid
        if self._is_classifier:
            sol.calibration = gaussian_calibration(stats, coef, intercept)
        return sol

    def _kfold_scores(self, stats, alphas, rows, backend, scoring, fold_paths, feature_map=None):
        xp = stats._ops()
        K = stats.n_folds
        k = stats.n_targets
        A = len(alphas)
        n_total = stats.n_samples
        if scoring == "squared_error":
            sse = np.zeros((A, k))
        else:
            if rows is None:
                raise ValueError(
                    f"scoring={scoring!r} with K-fold CV needs held-out decision values, which "
                    "need the rows: call fit() with all rows, or use scoring='squared_error' "
                    "with partial_fit."
                )
            X, Y, folds = rows
            preds = xp.empty((A, X.shape[0], k))
        active = [f for f in range(K) if stats.count[f] > 0]
        # The folds' coefficients for a chunk of alphas at a time: all of them at once are
        # K x A x d x k doubles (1.6 GB for 5 folds, 19 alphas, d = 2048, k = 1024: a map
        # between two models' hidden states), the chunk at most KFOLD_COEF_ENTRIES.
        per_alpha = max(len(active), 1) * stats.n_features * k
        step = max(1, KFOLD_COEF_ENTRIES // max(per_alpha, 1))
        for a0 in range(0, A, step):
            chunk = alphas[a0 : a0 + step]
            fold_coefs = path_coefs([fold_paths[f][1] for f in active], chunk)
            for f, coefs in zip(active, fold_coefs):
                ne = fold_paths[f][0]
                intercepts = ne.y_mean[None, :] - xp.einsum("d,adk->ak", ne.x_mean, coefs)
                if scoring == "squared_error":
                    # held-out error from the fold's own (shifted) statistics
                    offsets = (
                        intercepts
                        + xp.einsum("d,adk->ak", stats.shift_x, coefs)
                        - stats.shift_y[None, :]
                    )
                    sse[a0 : a0 + chunk.size] += to_numpy(backend.heldout_sse(
                        stats.xtx[f], stats.xty[f], copy_of(xp.diagonal(stats.yty[f])),
                        stats.sum_x[f], stats.sum_y[f], float(stats.count[f]), coefs, offsets,
                    ))  # fmt: skip
                else:
                    sel = np.flatnonzero(folds == f)
                    if is_torch_tensor(X):
                        sel = ops_of(X).index(sel)
                    for sl, F in feature_blocks(X[sel], feature_map):
                        for a in range(chunk.size):
                            preds[a0 + a, sel[sl]] = linear_decision(F, coefs[a], intercepts[a])
                del coefs
            del fold_coefs
        if scoring == "squared_error":
            per = -sse / n_total
            return per, per.mean(axis=1)
        return score_predictions(preds, Y, scoring)

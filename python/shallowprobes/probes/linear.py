"""Linear (degree-1) ridge probes with exact alpha selection: LinearProbe, LinearProbeClassifier.

Both are solved from `SufficientStats` with one symmetric eigendecomposition of the centred
Gram (plus one per fold for K-fold CV), which yields the coefficients for every alpha and every
target at once, and the selection criterion for every alpha without refitting (the primal
route; with fewer rows than features `fit` takes the dual route instead: the same criteria and
the same probe from the n x n kernel of the rows, `solve.dual.fit_linear_dual`):

* ``cv="gcv"``: generalised cross-validation, n * RSS / (n - dof)^2, from statistics alone;
* ``cv="loo"``: exact leave-one-out via leverages (needs the rows, so only with `fit`);
* ``cv=K``: exact K-fold, training statistics = total - fold, held-out error from the fold's
  statistics (one pass over the data for all folds, alphas and targets).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from .._base import (
    ClassifierMixin,
    RegressorMixin,
)
from .._validation import check_values
from ..backends import resolve_backend
from ..solve.degree2 import gaussian_slope_from_values
from ..solve.dual import fit_linear_dual
from ..solve.ridge import (
    RidgeSolution,
    default_alpha_grid,
    warn_grid_edge,
)
from .base import RidgeProbeBase
from .classifier import ProbeClassifierMixin
from .outputs import ProbeRegressorMixin

__all__ = ["LinearProbe", "LinearProbeClassifier", "default_alpha_grid"]

SOLVERS = ("auto", "primal", "dual")


def linear_route(solver: str, n: int, d: int, folds: Optional[np.ndarray],
                 fit_intercept: bool) -> str:  # fmt: skip
    """"primal" or "dual" for a linear probe fitted on n rows of d features (folds: the rows'
    K-fold assignment, None for GCV / LOO). "auto" is "dual" where a Gram the primal route
    decomposes would be singular: fewer rows than features once the intercept is counted,
    in all rows or, for K-fold, in the smallest training set (n less the largest fold).
    There the primal route loses its tridiagonal fast paths to full eigendecompositions of
    the d x d Gram(s), while the n x n kernel is the smaller matrix (measured, d = 1000, 5
    folds: primal/dual time 4.2 at n = 1000, 2.3 at n = 1200, whose 960-row training sets
    are singular, 0.76 at n = 1300; GCV: 1.9 at n = d, 0.45 at n = 1.2 d)."""
    if solver != "auto":
        return solver
    train = n if folds is None else n - int(np.bincount(folds).max())
    return "dual" if train - int(fit_intercept) < d else "primal"


class LinearRoutes(RidgeProbeBase):
    """The two routes of the linear probes (not public): primal, from the d x d statistics
    (streams; `RidgeProbeBase`), and dual, from the n x n kernel of the rows (`fit` only),
    which solver="auto" takes when there are fewer rows than features (`linear_route`), where
    it is the cheaper one: n^2 d + n^3 work instead of n d^2 + d^3 (at n = 1000, d = 4096
    0.2 s instead of 15). Both give the same probe: the kernel's nonzero eigenvalues are the
    Gram's, and the hat matrix, hence every CV criterion, is the same."""

    def _param_constraints(self) -> dict:
        from .._params import Options

        return {**super()._param_constraints(), "solver": [Options(SOLVERS)]}

    def _route(self, n: int, d: int, folds: Optional[np.ndarray]) -> str:
        """"primal" or "dual" for a fit of n rows of d features (`linear_route`)."""
        return linear_route(str(self.solver), n, d, folds, bool(self.fit_intercept))

    def _streams(self) -> bool:
        return self.solver != "dual"

    def _no_stream_reason(self) -> str:
        return (
            f"{type(self).__name__}(solver='dual') has no partial_fit: partial_fit streams "
            "statistics, which is the primal route, and the dual route needs all rows at "
            "once. Call fit(), or use solver='auto' or 'primal'."
        )

    def _fit_rows(self, X: Any, Y: Any, folds: Optional[np.ndarray]):
        if self._route(X.shape[0], X.shape[1], folds) == "primal":
            return super()._fit_rows(X, Y, folds)
        # the checks the statistics' pass makes on the primal route: finite, in range
        check_values(X, "X", self._feature_degree)
        return None, self._solve_dual(X, Y, folds, resolve_backend(self.backend, X))

    def _solve_dual(self, X: Any, Y: Any, folds: Optional[np.ndarray],
                    backend: Any) -> RidgeSolution:  # fmt: skip
        fit_intercept = bool(self.fit_intercept)
        xp, Uc, Y, centre, geom = self._centred_rows(X, Y, backend)
        y_mean = Y.mean(axis=0) if fit_intercept else xp.zeros(Y.shape[1])
        cv_name = self._cv_name()
        sol, w, fitted = fit_linear_dual(
            Uc, Y, y_mean, alphas=self._explicit_alphas(), backend=backend,
            fit_intercept=fit_intercept, cv_name=cv_name, scoring=self._scoring(),
            folds=folds, n_folds=self._n_folds(), alpha_per_target=bool(self.alpha_per_target),
        )  # fmt: skip
        del Uc
        name = type(self).__name__
        warn_grid_edge(name, "alpha", sol.alphas, sol.alpha_edges, sol.default_grid, cv_name)
        coef = geom.pull_back_linear(w)
        sol.coef, sol.intercept = coef, y_mean - centre @ coef
        if self._is_classifier:
            sol.calibration = gaussian_slope_from_values(fitted, Y)
        sol.geometry = geom
        sol.route = "dual"
        return sol

    def _solve(self, stats: Any, rows: Optional[tuple]) -> RidgeSolution:
        sol = super()._solve(stats, rows)
        sol.route = "primal"
        return sol

    @property
    def solver_(self) -> str:
        """The route that solved the probe: "primal" (statistics) or "dual" (the rows'
        kernel)."""
        return self._solution().route



class LinearProbe(ProbeRegressorMixin, RegressorMixin, LinearRoutes):
    """Linear ridge probe (regression, any number of targets) with exact alpha selection.

    Parameters
    ----------
    alphas : array-like of float, optional
        Ridge penalties to choose from. Explicit values are absolute, as in scikit-learn
        (penalty ``alpha * ||w||^2`` on the summed squared error). The default is
        ``logspace(-6, 3, 19)`` times the mean eigenvalue of the centred Gram, i.e. relative
        to the data's scale (see `alphas_` for the values used).
    cv : {"gcv", "loo"} or int, default "gcv"
        How alpha is chosen. "gcv": generalised cross-validation from statistics alone (works
        with `partial_fit`). "loo": exact leave-one-out (uses the rows; `fit` only). int K:
        exact K-fold CV, row i in fold i % K unless `fit` is given ``fold_ids``.
    alpha_per_target : bool, default False
        Choose alpha separately for each target column.
    fit_intercept : bool, default True
        Fit an unpenalised intercept (centre X and y).
    metric : {"euclidean", "standardize", "whiten", "readout"}, default "euclidean"
        Geometry of the penalty: features are built from A (x - mu), with A = I, the inverse
        standard deviations, the (pseudo-)inverse square root of a reference covariance, or
        (W^T W)^1/2 of a readout matrix. Each gives exactly invariant predictions under a
        stated group of coordinate changes (table in `shallowprobes.metrics`). A is fitted
        from the statistics (it streams); coefficients are reported in your coordinates.
    reference : array (n_ref, d) or SufficientStats, optional
        metric="whiten" only: rows (e.g. unlabeled calibration activations) whose covariance
        defines the whitening. Default: the training rows.
    readout : array (m, d), optional
        metric="readout" only (required there): the model's readout matrix W, logits = W h + b.
    backend : {"auto", "rust", "numpy"}, default "auto"
        "rust" is the compiled core, "numpy" the plain reference implementation.
    precision : {"auto", "float64", "float32"}, default "auto"
        Arithmetic of the Gram in the Rust core (see `SufficientStats`): "float32" forms
        block Grams by float32 GEMM (about twice as fast, bounded error, docs/design.md §8).
        "auto" is "float64" here: fit and partial_fit convert bfloat16/float16 rows to
        float32 first (CV reads the rows again), and the float64 Gram of those is exact.
        (`SufficientStats` and `sweep` read half-precision rows as raw bits and default to
        float32 block Grams for them.) The dual route forms its kernel in float64 whatever
        this says.
    solver : {"auto", "primal", "dual"}, default "auto"
        How `fit` solves. "primal": from the d x d statistics (what `partial_fit` always
        uses, and dask arrays with more rows than features; `stats_` is kept). "dual": from
        the n x n kernel of the rows (`fit` only, no `stats_`). "auto": dual when there are
        fewer rows than features (counting the intercept as one; with K-fold, in the
        smallest training set), where it is faster (n^2 d + n^3 against n d^2 + d^3, and
        the primal Gram is singular), else primal. Both give the same probe, up to
        rounding; `solver_` says which one ran.

    Attributes
    ----------
    coef_, intercept_, alpha_, alphas_, cv_results_, best_score_, n_features_in_, stats_
    (primal route), geometry_ (the fitted metric), solver_
    """

    _takes_precision = True

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
        precision: str = "auto",
        solver: str = "auto",
    ) -> None:
        super().__init__(
            alphas, cv=cv, alpha_per_target=alpha_per_target, fit_intercept=fit_intercept,
            metric=metric, reference=reference, readout=readout, backend=backend,
        )  # fmt: skip
        self.precision = precision
        self.solver = solver


class LinearProbeClassifier(ProbeClassifierMixin, ClassifierMixin, LinearRoutes):
    """Linear ridge probe for classification (binary or multiclass, one-vs-rest +-1 codes).

    Each class gets a ridge regression of its +-1 code; the decision is the arg-max (binary: the
    sign). Alpha is chosen by GCV/LOO/K-fold on the codes' squared error, or, with
    ``scoring="accuracy"`` / ``"roc_auc"``, on the accuracy / AUROC of LOO or K-fold decision
    values (exact, no refitting).

    Parameters
    ----------
    alphas, cv, alpha_per_target, fit_intercept, metric, reference, readout, backend, precision,
    solver
        As for `LinearProbe`.
    scoring : {"squared_error", "accuracy", "roc_auc"}, default "squared_error"
        Criterion for alpha. "accuracy" and "roc_auc" need held-out decision values:
        cv="loo" or integer K with `fit`. With alpha_per_target=True each one-vs-rest column
        is scored on its own (binary accuracy / AUROC of that column); otherwise multiclass
        accuracy is that of the arg-max and AUROC the mean one-vs-rest AUROC.

    Notes
    -----
    `predict_proba` maps decision values f to probabilities with a logistic (binary:
    sigmoid(a f)) or softmax (multiclass: softmax(a f)) link whose slope `a` is fitted in
    closed form from the sufficient statistics: decision values within each class are modelled
    as Gaussian with a shared variance, whose log-odds slope is (m+ - m-)/s^2 (see
    `gaussian_calibration`). It has no offset, so the most probable class is always the
    predicted one; it streams with `partial_fit`. It is a model, not a held-out calibration:
    for calibrated probabilities, calibrate decision values on held-out data.

    Attributes
    ----------
    classes_, coef_ (1, d) binary or (n_classes, d), intercept_, alpha_, alphas_, cv_results_,
    best_score_, n_features_in_, stats_ (primal route), solver_
    """

    _is_classifier = True
    _takes_precision = True

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
        scoring: str = "squared_error",
        backend: str = "auto",
        precision: str = "auto",
        solver: str = "auto",
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
        self.scoring = scoring
        self.precision = precision
        self.solver = solver

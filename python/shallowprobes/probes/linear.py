"""Linear (degree-1) ridge probes with exact alpha selection: LinearProbe, LinearProbeClassifier.

Both are solved from `SufficientStats` with one symmetric eigendecomposition of the centred
Gram (plus one per fold for K-fold CV), which yields the coefficients for every alpha and every
target at once, and the selection criterion for every alpha without refitting:

* ``cv="gcv"``: generalised cross-validation, n * RSS / (n - dof)^2, from statistics alone;
* ``cv="loo"``: exact leave-one-out via leverages (needs the rows, so only with `fit`);
* ``cv=K``: exact K-fold, training statistics = total - fold, held-out error from the fold's
  statistics (one pass over the data for all folds, alphas and targets).
"""

from __future__ import annotations

from typing import Any, Union

from .._base import (
    ClassifierMixin,
    RegressorMixin,
)
from ..solve.ridge import (
    default_alpha_grid,
)
from .base import RidgeProbeBase
from .classifier import ProbeClassifierMixin
from .outputs import ProbeRegressorMixin

__all__ = ["LinearProbe", "LinearProbeClassifier", "default_alpha_grid"]


class LinearProbe(ProbeRegressorMixin, RegressorMixin, RidgeProbeBase):
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
        float32 block Grams for them.)

    Attributes
    ----------
    coef_, intercept_, alpha_, alphas_, cv_results_, best_score_, n_features_in_, stats_,
    geometry_ (the fitted metric)
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
    ) -> None:
        super().__init__(
            alphas, cv=cv, alpha_per_target=alpha_per_target, fit_intercept=fit_intercept,
            metric=metric, reference=reference, readout=readout, backend=backend,
        )  # fmt: skip
        self.precision = precision


class LinearProbeClassifier(ProbeClassifierMixin, ClassifierMixin, RidgeProbeBase):
    """Linear ridge probe for classification (binary or multiclass, one-vs-rest +-1 codes).

    Each class gets a ridge regression of its +-1 code; the decision is the arg-max (binary: the
    sign). Alpha is chosen by GCV/LOO/K-fold on the codes' squared error, or, with
    ``scoring="accuracy"`` / ``"roc_auc"``, on the accuracy / AUROC of LOO or K-fold decision
    values (exact, no refitting).

    Parameters
    ----------
    alphas, cv, alpha_per_target, fit_intercept, metric, reference, readout, backend, precision
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
    best_score_, n_features_in_, stats_
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

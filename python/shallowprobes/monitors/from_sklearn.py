"""Fitted scikit-learn models and pipelines as monitors, exact to round-off.

A linear model's score is X @ coef_.T + intercept_; the affine steps before it (scalers, PCA,
feature selectors) and at most one PolynomialFeatures of degree <= 2 fold into one polynomial
of degree <= 2 of the raw input, i.e. a `PolynomialMonitor`. Apart from the monitor itself
because it is the only code that knows scikit-learn's classes (imported lazily: scikit-learn
is optional), and is used by `PolynomialMonitor.from_sklearn` and `ProbeBank.from_sklearn`.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .monitor import PolynomialMonitor, as_float64


def is_sklearn(model: Any) -> bool:
    """A scikit-learn estimator (by its class's module; the library's own probes are not)."""
    return type(model).__module__.split(".")[0] == "sklearn"


def _sklearn_steps(model: Any) -> list:
    """The pipeline's steps in order, nested pipelines flattened, no-op steps dropped."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(model, Pipeline):
        out = []
        for _, step in model.steps:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            if isinstance(step, FunctionTransformer) and step.func is None:
                continue  # the identity
            out += _sklearn_steps(step)
        return out
    return [model]


def _sklearn_fitted(step: Any) -> None:
    from sklearn.exceptions import NotFittedError as SkNotFitted
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(step)
    except SkNotFitted:
        raise ValueError(
            f"the {type(step).__name__} step is not fitted; fit the model before turning it "
            "into monitors."
        ) from None


def _affine_step(step: Any) -> Optional[tuple]:
    """(G (p_out, p_in), offset (p_out,)) with step.transform(x) = G x + offset, or None
    when the step is not affine."""
    from sklearn.decomposition import PCA, TruncatedSVD
    from sklearn.feature_selection import SelectorMixin
    from sklearn.preprocessing import (
        MaxAbsScaler,
        MinMaxScaler,
        PolynomialFeatures,
        RobustScaler,
        StandardScaler,
    )

    def diag(scale, shift):
        return np.diag(scale), shift

    if isinstance(step, StandardScaler):
        p = int(step.n_features_in_)
        mean = as_float64(step.mean_) if step.with_mean and step.mean_ is not None else np.zeros(p)
        sc = as_float64(step.scale_) if step.with_std and step.scale_ is not None else np.ones(p)
        return diag(1.0 / sc, -mean / sc)
    if isinstance(step, RobustScaler):
        p = int(step.n_features_in_)
        centre = as_float64(step.center_) if step.center_ is not None else np.zeros(p)
        sc = as_float64(step.scale_) if step.scale_ is not None else np.ones(p)
        return diag(1.0 / sc, -centre / sc)
    if isinstance(step, MinMaxScaler):
        if step.clip:
            return None
        return diag(as_float64(step.scale_), as_float64(step.min_))
    if isinstance(step, MaxAbsScaler):
        return diag(1.0 / as_float64(step.scale_), np.zeros(int(step.n_features_in_)))
    if isinstance(step, PCA):
        G = as_float64(step.components_)
        if step.whiten:
            G = G / np.sqrt(as_float64(step.explained_variance_))[:, None]
        return G, -G @ as_float64(step.mean_)
    if isinstance(step, TruncatedSVD):
        G = as_float64(step.components_)
        return G, np.zeros(G.shape[0])
    if isinstance(step, SelectorMixin):
        keep = np.asarray(step.get_support(indices=True))
        G = np.zeros((keep.size, int(step.n_features_in_)))
        G[np.arange(keep.size), keep] = 1.0
        return G, np.zeros(keep.size)
    if isinstance(step, PolynomialFeatures) and int(np.max(step.powers_.sum(axis=1))) <= 1:
        powers = np.asarray(step.powers_)
        G = powers.astype(np.float64)
        return G, (powers.sum(axis=1) == 0).astype(np.float64)
    return None


def _linear_head(model: Any) -> tuple[np.ndarray, np.ndarray, list, str]:
    """(W (k, p), b (k,), output labels, task) of the final estimator: its score (decision
    function or prediction) is X @ W.T + b."""
    from sklearn.base import is_classifier
    from sklearn.linear_model import PassiveAggressiveRegressor, SGDRegressor
    from sklearn.svm import SVC, SVR, NuSVC, NuSVR

    try:
        from sklearn.linear_model._base import LinearClassifierMixin, LinearModel
    except ImportError:  # pragma: no cover - private location moved
        LinearClassifierMixin = LinearModel = ()
    name = type(model).__name__
    linear_svm = isinstance(model, (SVC, NuSVC, SVR, NuSVR)) and model.kernel == "linear"
    classifier = is_classifier(model)
    if classifier:
        ok = (LinearClassifierMixin and isinstance(model, LinearClassifierMixin)) or linear_svm
    else:
        ok = (
            (LinearModel and isinstance(model, LinearModel))
            or isinstance(model, (SGDRegressor, PassiveAggressiveRegressor))
            or linear_svm
        )
    if not ok:
        raise TypeError(
            f"{name} is not a linear model whose score is X @ coef_.T + intercept_; "
            "supported final steps are scikit-learn's linear classifiers and regressors "
            "(LogisticRegression, LinearSVC, RidgeClassifier, SGDClassifier, "
            "LinearDiscriminantAnalysis, Ridge, LinearRegression, Lasso, SGDRegressor, "
            "LinearSVR, SVC/SVR with kernel='linear', ...)."
        )
    _sklearn_fitted(model)
    W = as_float64(model.coef_)
    W = W.reshape(1, -1) if W.ndim == 1 else W
    b = np.broadcast_to(as_float64(model.intercept_).reshape(-1), (W.shape[0],)).copy()
    if not classifier:
        return W, b, [str(j) for j in range(W.shape[0])], "regressor"
    classes = list(model.classes_)
    if linear_svm and len(classes) > 2:
        raise TypeError(
            f"{name} with {len(classes)} classes scores pairs of classes (one-vs-one); only "
            "one score per class (one-vs-rest or multinomial) becomes monitors (LinearSVC "
            "gives one-vs-rest)."
        )
    if len(classes) == 2 and W.shape[0] == 1:
        return W, b, [str(classes[1])], "classifier"
    if W.shape[0] == len(classes):
        return W, b, [str(c) for c in classes], "classifier"
    raise TypeError(
        f"{name} with {len(classes)} classes has {W.shape[0]} coefficient rows (one-vs-one); "
        "only one score per class (one-vs-rest or multinomial) becomes monitors."
    )


def sklearn_monitors(model: Any) -> tuple[list, list]:
    """(monitors, output labels) of a fitted scikit-learn model or pipeline."""
    from sklearn.preprocessing import PolynomialFeatures

    steps = _sklearn_steps(model)
    *transforms, head = steps
    W, b, labels, task = _linear_head(head)
    for step in transforms:
        _sklearn_fitted(step)
    quad = [i for i, st in enumerate(transforms) if isinstance(st, PolynomialFeatures)
            and int(np.max(st.powers_.sum(axis=1))) > 1]  # fmt: skip
    if len(quad) > 1 or any(
        int(np.max(transforms[i].powers_.sum(axis=1))) > 2 for i in quad
    ):
        raise TypeError(
            "a monitor is a polynomial of degree <= 2: the pipeline may hold one "
            "PolynomialFeatures of degree <= 2 (got "
            + ", ".join(f"degree {int(np.max(transforms[i].powers_.sum(axis=1)))}" for i in quad)
            + ")."
        )
    cut = quad[0] if quad else len(transforms)
    affine = {}
    for i, step in enumerate(transforms):
        if i == cut and quad:
            continue
        aff = _affine_step(step)
        if aff is None:
            raise TypeError(
                f"the pipeline step {type(step).__name__} is not an affine map (supported: "
                "StandardScaler, PCA, TruncatedSVD, MinMaxScaler(clip=False), MaxAbsScaler, "
                "RobustScaler, feature selectors, FunctionTransformer(None), "
                "PolynomialFeatures of degree <= 2, 'passthrough')."
            )
        affine[i] = aff
    # steps after the polynomial features: pulled back into the head's coefficients
    for i in range(len(transforms) - 1, cut, -1):
        G, o = affine[i]
        b = b + W @ o
        W = W @ G
    # steps before them: one affine map u = G (h - centre) + offset of the raw input
    if cut > 0:
        d = affine[0][0].shape[1]
    elif quad:
        d = int(np.asarray(transforms[cut].powers_).shape[1])
    else:
        d = W.shape[1]
    G_pre, o_pre = np.eye(d), np.zeros(d)
    for i in range(cut):
        G, o = affine[i]
        G_pre, o_pre = G @ G_pre, G @ o_pre + o
    centre = _natural_centre(steps[0], d)
    offset = o_pre + G_pre @ centre
    monitors = []
    for k in range(W.shape[0]):
        if quad:
            powers = np.asarray(transforms[cut].powers_)
            w_u, c_u, Q_u = _polynomial_coefficients(W[k], powers)
            inner = PolynomialMonitor(w_u, b[k] + c_u, Q_u)
            kind = "quadratic"
        else:
            inner = PolynomialMonitor(W[k], b[k], None)
            kind = "linear"
        m = inner.compose_affine(G_pre, offset, centre)
        info: dict[str, Any] = {"source": "sklearn", "model": type(model).__name__, "task": task}
        if task == "classifier":
            info["threshold"] = 0.0
        monitors.append(PolynomialMonitor(m.linear, m.intercept, m.quadratic, m.centre, kind,
                                          info))  # fmt: skip
    return monitors, labels


def _natural_centre(first: Any, d: int) -> np.ndarray:
    """A point to expand the polynomial about: the first step's data mean when it has one
    (keeps the coefficients well conditioned), else the origin."""
    for attr in ("mean_", "center_"):
        value = getattr(first, attr, None)
        if value is not None and np.shape(value) == (d,):
            return as_float64(value).copy()
    return np.zeros(d)


def _polynomial_coefficients(w: np.ndarray, powers: np.ndarray) -> tuple:
    """(linear (p,), constant, Q (p, p)) of sum_j w_j prod_i u_i^powers[j, i] (degree <= 2)."""
    p = powers.shape[1]
    lin, Q, const = np.zeros(p), np.zeros((p, p)), 0.0
    for coef, pw in zip(w, powers):
        deg = int(pw.sum())
        idx = np.flatnonzero(pw)
        if deg == 0:
            const += float(coef)
        elif deg == 1:
            lin[idx[0]] += coef
        elif idx.size == 1:  # u_i^2
            Q[idx[0], idx[0]] += coef
        else:  # u_i u_l
            i, j = idx
            Q[i, j] += 0.5 * coef
            Q[j, i] += 0.5 * coef
    return lin, const, Q

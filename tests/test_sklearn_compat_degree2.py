"""scikit-learn compatibility of the degree-2 probes: the full estimator check suite (both
routes, both backends), cloning, parameters, pipelines and model selection."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_rel
from shallowprobes import QuadraticProbe, QuadraticProbeClassifier
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import GridSearchCV, KFold, cross_val_predict, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

# No check is excluded: every scikit-learn check must pass (either route, either backend).
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {
    "QuadraticProbe": {},
    "QuadraticProbeClassifier": {},
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS[type(estimator).__name__]


# backend="auto" is the Rust core when it is built and numpy otherwise; the explicit numpy
# instances keep the reference backend covered in both cases.
@parametrize_with_checks(
    [
        QuadraticProbe(),
        QuadraticProbeClassifier(),
        QuadraticProbe(solver="dual"),
        QuadraticProbeClassifier(solver="dual"),
        QuadraticProbe(solver="primal", cv=3, backend="numpy"),
        QuadraticProbeClassifier(solver="dual", cv="loo", scoring="accuracy", backend="numpy"),
        QuadraticProbe(gamma=[0.1, 1.0], cv="loo", solver="dual", backend="numpy"),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("est_cls", [QuadraticProbe, QuadraticProbeClassifier])
def test_estimator_type(est_cls):
    est = est_cls()
    if est_cls is QuadraticProbe:
        assert is_regressor(est) and not is_classifier(est)
    else:
        assert is_classifier(est) and not is_regressor(est)


def _data(seed, n, d):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 0.5
    y = (X**2).sum(axis=1) - X[:, 0] + 0.1 * rng.normal(size=n)
    return X, y


def test_get_params_and_clone_round_trip(backend):
    est = QuadraticProbeClassifier(
        alphas=[0.1, 1.0], gamma=[0.5, 2.0], cv=4, alpha_per_target=True, fit_intercept=False,
        scoring="roc_auc", solver="dual", memory_limit=1e9, backend=backend,
    )  # fmt: skip
    params = est.get_params()
    assert params == {
        "alphas": [0.1, 1.0], "gamma": [0.5, 2.0], "cv": 4, "alpha_per_target": True,
        "fit_intercept": False, "scoring": "roc_auc", "solver": "dual", "memory_limit": 1e9,
        "backend": backend, "metric": "euclidean", "reference": None, "readout": None,
        "quadratic_rank": None,
    }  # fmt: skip
    assert set(QuadraticProbe().get_params()) == {
        "alphas", "gamma", "cv", "alpha_per_target", "fit_intercept", "solver",
        "memory_limit", "backend", "metric", "reference", "readout", "quadratic_rank",
    }  # fmt: skip
    X, y = _data(0, 60, 4)
    labels = (y > np.median(y)).astype(int)
    est.fit(X, labels)
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert not hasattr(twin, "quadratic_")  # clone is unfitted
    twin.fit(X, labels)
    np.testing.assert_array_equal(twin.quadratic_, est.quadratic_)
    np.testing.assert_array_equal(twin.decision_function(X), est.decision_function(X))
    assert est.set_params(solver="primal", gamma=0.3) is est
    assert est.get_params()["solver"] == "primal" and est.get_params()["gamma"] == 0.3
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(nonsense=1)
    assert "QuadraticProbeClassifier(" in repr(est)
    # a fitted probe clones to an unfitted one with the same parameters
    reg = QuadraticProbe(gamma=0.2, solver="primal", backend=backend).fit(X, y)
    reg2 = clone(reg)
    assert reg2.get_params() == reg.get_params() and not hasattr(reg2, "stats_")


def test_set_params_changes_the_fit(backend):
    X, y = _data(1, 50, 3)
    probe = QuadraticProbe(alphas=[1.0], gamma=0.1, fit_intercept=False, backend=backend)
    probe.fit(X, y)
    probe.set_params(alphas=[30.0], gamma=2.0).fit(X, y)
    assert probe.alpha_ == 30.0 and probe.gamma_ == 2.0
    G = X @ X.T
    ref = KernelRidge(alpha=30.0, kernel="precomputed").fit(G + 2.0 * G * G, y)
    X2 = _data(2, 9, 3)[0]
    G2 = X2 @ X.T
    assert_rel(probe.predict(X2), ref.predict(G2 + 2.0 * G2 * G2), 1e-9, "after set_params")


@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_pipeline_and_model_selection(backend, solver):
    X, y = _data(3, 90, 4)
    X = X * np.array([1.0, 10.0, 0.1, 3.0]) + 50.0
    pipe = make_pipeline(StandardScaler(), QuadraticProbe(solver=solver, backend=backend))
    pipe.fit(X, y)
    Z = StandardScaler().fit(X).transform(X)
    direct = QuadraticProbe(solver=solver, backend=backend).fit(Z, y)
    assert_rel(pipe.predict(X), direct.predict(Z), 1e-12, "pipeline")
    cv = KFold(3)
    scores = cross_val_score(QuadraticProbe(solver=solver, backend=backend), Z, y, cv=cv)
    assert scores.shape == (3,) and np.all(scores > 0.8)
    pred = cross_val_predict(QuadraticProbe(solver=solver, backend=backend), Z, y, cv=cv)
    assert pred.shape == y.shape
    grid = GridSearchCV(
        QuadraticProbe(solver=solver, backend=backend),
        {"gamma": [None, 0.1], "fit_intercept": [True, False]},
        cv=cv,
    ).fit(Z, y)
    assert set(grid.best_params_) == {"gamma", "fit_intercept"}
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    labels = np.where(y > np.median(y), "hi", "lo")
    acc = cross_val_score(
        QuadraticProbeClassifier(solver=solver, backend=backend), Z, labels, cv=cv
    )
    assert np.all(acc > 0.7)


def test_score_is_r2_and_accuracy(backend):
    from sklearn.metrics import accuracy_score, r2_score

    X, y = _data(4, 70, 3)
    Y = np.column_stack([y, -2 * y + X[:, 1]])
    X2, y2 = _data(5, 30, 3)
    Y2 = np.column_stack([y2, -2 * y2 + X2[:, 1]])
    for solver in ("primal", "dual"):
        est = QuadraticProbe(solver=solver, backend=backend).fit(X, Y)
        assert est.score(X2, Y2) == pytest.approx(r2_score(Y2, est.predict(X2)), rel=1e-12)
        clf = QuadraticProbeClassifier(solver=solver, backend=backend).fit(X, y > 1.0)
        assert clf.score(X2, y2 > 1.0) == accuracy_score(y2 > 1.0, clf.predict(X2))

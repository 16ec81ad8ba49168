"""scikit-learn compatibility: the full estimator check suite, cloning, parameters, pipelines
and model selection."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_rel, make_classification, make_regression
from shallowprobes import LinearProbe, LinearProbeClassifier
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.linear_model import Ridge, RidgeClassifier
from sklearn.model_selection import GridSearchCV, KFold, cross_val_predict, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

# No check is excluded: every scikit-learn check must pass (with either backend).
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {
    "LinearProbe": {},
    "LinearProbeClassifier": {},
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS[type(estimator).__name__]


# backend="auto" is the Rust core when it is built (CI) and numpy otherwise; the explicit numpy
# instances keep the reference backend covered in both cases.
@parametrize_with_checks(
    [
        LinearProbe(),
        LinearProbeClassifier(),
        LinearProbe(cv="loo", backend="numpy"),
        LinearProbeClassifier(cv=3, backend="numpy"),
        LinearProbe(solver="dual"),
        LinearProbeClassifier(solver="dual", cv="loo", scoring="accuracy"),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("est_cls", [LinearProbe, LinearProbeClassifier])
def test_estimator_type(est_cls):
    est = est_cls()
    if est_cls is LinearProbe:
        assert is_regressor(est) and not is_classifier(est)
    else:
        assert is_classifier(est) and not is_regressor(est)


def test_get_set_params_and_clone(backend):
    est = LinearProbeClassifier(
        alphas=[0.1, 1.0], cv=4, alpha_per_target=True, fit_intercept=False,
        scoring="roc_auc", backend=backend,
    )  # fmt: skip
    params = est.get_params()
    assert params == {
        "alphas": [0.1, 1.0], "cv": 4, "alpha_per_target": True, "fit_intercept": False,
        "scoring": "roc_auc", "backend": backend,
        "metric": "euclidean", "reference": None, "readout": None, "precision": "auto",
        "solver": "auto",
    }  # fmt: skip
    assert set(LinearProbe().get_params()) == {
        "alphas", "cv", "alpha_per_target", "fit_intercept", "backend",
        "metric", "reference", "readout", "precision", "solver",
    }  # fmt: skip
    X, y = make_classification(0, 60, 4, 2)
    est.fit(X, y)
    twin = clone(est)
    assert twin is not est
    assert twin.get_params() == params
    assert not hasattr(twin, "coef_")  # clone is unfitted
    twin.fit(X, y)
    np.testing.assert_array_equal(twin.coef_, est.coef_)
    assert est.set_params(cv="loo", scoring="accuracy") is est
    assert est.get_params()["cv"] == "loo" and est.get_params()["scoring"] == "accuracy"
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(nonsense=1)
    assert "LinearProbeClassifier(" in repr(est)


def test_set_params_changes_the_fit(backend):
    X, y = make_regression(1, 80, 6, None)
    est = LinearProbe(alphas=[1.0], backend=backend).fit(X, y)
    est.set_params(alphas=[100.0]).fit(X, y)
    ref = Ridge(alpha=100.0).fit(X, y)
    assert est.alpha_ == 100.0
    assert_rel(est.coef_, ref.coef_, 1e-9, "after set_params")


def test_pipeline_with_standard_scaler(backend):
    X, y = make_regression(2, 150, 8, 2)
    X = X * np.arange(1, 9) + 100  # very different column scales
    pipe = make_pipeline(StandardScaler(), LinearProbe(alphas=[3.0], backend=backend))
    pipe.fit(X, y)
    Z = StandardScaler().fit(X).transform(X)
    ref = Ridge(alpha=3.0).fit(Z, y)
    assert_rel(pipe.predict(X), ref.predict(Z), 1e-9, "pipeline predict")
    assert pipe.score(X, y) == pytest.approx(ref.score(Z, y), rel=1e-9)

    Xc, yc = make_classification(3, 120, 5, 3)
    pipe_c = make_pipeline(StandardScaler(), LinearProbeClassifier(alphas=[2.0], backend=backend))
    pipe_c.fit(Xc, yc)
    Zc = StandardScaler().fit(Xc).transform(Xc)
    ref_c = RidgeClassifier(alpha=2.0).fit(Zc, yc)
    assert_rel(pipe_c.decision_function(Xc), ref_c.decision_function(Zc), 1e-9, "pipeline clf")
    np.testing.assert_array_equal(pipe_c.predict(Xc), ref_c.predict(Zc))
    assert pipe_c.predict_proba(Xc).shape == (120, 3)


def test_cross_val_and_grid_search(backend):
    X, y = make_regression(4, 120, 6, None)
    cv = KFold(4)
    ours = cross_val_score(LinearProbe(alphas=[2.0], backend=backend), X, y, cv=cv)
    ref = cross_val_score(Ridge(alpha=2.0), X, y, cv=cv)
    np.testing.assert_allclose(ours, ref, rtol=1e-9)
    pred = cross_val_predict(LinearProbe(alphas=[2.0], backend=backend), X, y, cv=cv)
    assert_rel(pred, cross_val_predict(Ridge(alpha=2.0), X, y, cv=cv), 1e-9, "cv predict")

    grid = GridSearchCV(
        LinearProbe(backend=backend), {"fit_intercept": [True, False], "cv": ["gcv", 3]}, cv=cv
    ).fit(X, y)
    assert set(grid.best_params_) == {"fit_intercept", "cv"}
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))

    Xc, yc = make_classification(5, 90, 4, 2)
    acc = cross_val_score(LinearProbeClassifier(alphas=[1.0], backend=backend), Xc, yc, cv=cv)
    acc_ref = cross_val_score(RidgeClassifier(alpha=1.0), Xc, yc, cv=cv)
    np.testing.assert_allclose(acc, acc_ref)


def test_score_is_r2(backend):
    from sklearn.metrics import r2_score

    X, Y = make_regression(6, 100, 5, 3)
    est = LinearProbe(backend=backend).fit(X, Y)
    X2, Y2 = make_regression(7, 50, 5, 3)
    assert est.score(X2, Y2) == pytest.approx(r2_score(Y2, est.predict(X2)), rel=1e-12)
    est1 = LinearProbe(backend=backend).fit(X, Y[:, 0])
    assert est1.score(X2, Y2[:, 0]) == pytest.approx(
        r2_score(Y2[:, 0], est1.predict(X2)), rel=1e-12
    )

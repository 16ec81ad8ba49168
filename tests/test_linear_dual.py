"""The linear probes' dual route (solver="dual"; what solver="auto" takes with fewer rows than
features): the n x n kernel of the rows instead of the d x d statistics.

Checked against the independent references of test_cv (GCV written with an explicit hat
matrix and from the SVD, K-fold / LOO by refitting scikit-learn's Ridge, scikit-learn's
RidgeCV) over shapes on both sides of n = d, against scikit-learn's Ridge for the chosen
coefficients, against the primal route, and for what the route changes for the user: the
choice of solver="auto", no stats_, no partial_fit afterwards, the input checks. (The
classifiers' accuracy / AUROC selection on this route: test_cv, with d > n.)"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import assert_rel, make_classification, make_regression
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group
from shallowprobes import LinearProbe, LinearProbeClassifier
from shallowprobes._params import ParameterError
from sklearn.linear_model import Ridge, RidgeCV
from test_cv import (
    _grid,
    gcv_reference_solve,
    gcv_reference_svd,
    kfold_reference,
    ovr_codes,
)

# both sides of n = d, and n = d itself (the rank is n - 1 with an intercept either way)
SHAPES = [(30, 90), (48, 48), (40, 41), (60, 25)]
BACKENDS = ["numpy", "rust", "torch"]


def _backend(name: str) -> str:
    if name == "torch":
        pytest.importorskip("torch")
    if name == "rust":
        import shallowprobes

        if not shallowprobes.rust_available():
            pytest.skip("Rust extension not built")
    return name


# ------------------------------------------------------------------ scores vs references
@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"n{s[0]}_d{s[1]}")
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("alpha_per_target", [False, True])
def test_dual_gcv_matches_references(backend_name, shape, fit_intercept, alpha_per_target):
    n, d = shape
    X, Y = make_regression(n + d, n, d, 3, noise=1.0)
    X = X * 2.0 + 3.0  # rows away from 0: the centring matters
    grid = _grid(X, -5, 3, 17, fit_intercept)
    probe = LinearProbe(
        alphas=grid, solver="dual", fit_intercept=fit_intercept,
        alpha_per_target=alpha_per_target, backend=_backend(backend_name),
    ).fit(X, Y)  # fmt: skip
    assert probe.solver_ == "dual"
    ref = gcv_reference_solve(X, Y, grid, fit_intercept)
    np.testing.assert_allclose(gcv_reference_svd(X, Y, grid, fit_intercept), ref, rtol=1e-8)
    np.testing.assert_allclose(probe.cv_results_["scores"], ref, rtol=1e-8, atol=0)
    if alpha_per_target:
        np.testing.assert_array_equal(probe.alpha_, grid[np.argmax(ref, axis=0)])
    else:
        assert probe.alpha_ == grid[np.argmax(ref.mean(axis=1))]
    chosen = np.broadcast_to(probe.alpha_, (3,))
    for t in range(3):
        model = Ridge(alpha=chosen[t], fit_intercept=fit_intercept, solver="svd")
        model.fit(X, Y[:, t])
        assert_rel(probe.coef_[t], model.coef_, 1e-8, f"coef_ target {t}")
        assert_rel(probe.intercept_[t], model.intercept_, 1e-8, f"intercept_ target {t}")


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"n{s[0]}_d{s[1]}")
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_dual_loo_matches_ridgecv(backend_name, shape, fit_intercept):
    n, d = shape
    X, Y = make_regression(2 * n + d, n, d, 2, noise=1.0)
    grid = _grid(X, -4, 3, 15, fit_intercept)
    probe = LinearProbe(alphas=grid, cv="loo", solver="dual", fit_intercept=fit_intercept,
                        backend=_backend(backend_name)).fit(X, Y)  # fmt: skip
    ref = RidgeCV(alphas=grid, fit_intercept=fit_intercept, store_cv_results=True).fit(X, Y)
    assert probe.alpha_ == ref.alpha_
    assert_rel(probe.cv_results_["scores"], -ref.cv_results_.mean(axis=0).T, 1e-8, "LOO")
    assert_rel(probe.coef_, ref.coef_, 1e-8, "coef_")


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("shape", [(36, 80), (45, 45), (50, 20)], ids=lambda s: f"n{s[0]}_d{s[1]}")
@pytest.mark.parametrize("K", [2, 5])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_dual_kfold_equals_refitting(backend_name, shape, K, fit_intercept):
    n, d = shape
    X, Y = make_regression(K * n + d, n, d, 2, noise=1.0)
    grid = _grid(X, -3, 3, 7, fit_intercept)
    probe = LinearProbe(alphas=grid, cv=K, solver="dual", fit_intercept=fit_intercept,
                        backend=_backend(backend_name)).fit(X, Y)  # fmt: skip
    ref = kfold_reference(X, Y, grid, np.arange(n) % K, fit_intercept)
    np.testing.assert_allclose(probe.cv_results_["scores"], ref, rtol=1e-7)
    assert probe.alpha_ == grid[np.argmax(ref.mean(axis=1))]


def test_dual_kfold_explicit_fold_ids(backend):
    n, d, K = 40, 100, 4
    X, y = make_regression(5, n, d, None, noise=1.0)
    folds = np.random.default_rng(5).permutation(np.arange(n) % K)
    grid = _grid(X, -3, 3, 7)
    probe = LinearProbe(alphas=grid, cv=K, solver="dual", backend=backend).fit(
        X, y, fold_ids=folds
    )
    ref = kfold_reference(X, y[:, None], grid, folds, True)
    np.testing.assert_allclose(probe.cv_results_["scores"], ref, rtol=1e-7)
    default = LinearProbe(alphas=grid, cv=K, solver="dual", backend=backend).fit(X, y)
    assert not np.allclose(default.cv_results_["scores"], ref, rtol=1e-7)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_dual_classifier_equals_primal(backend, n_classes):
    """Decision values, the probability calibration (from the fitted values on the dual
    route, from statistics on the primal one) and the labels agree."""
    X, y = make_classification(n_classes, 50, 120, n_classes, sep=1.0)
    kw = {"backend": backend, "cv": "loo"}
    dual = LinearProbeClassifier(solver="dual", **kw).fit(X, y)
    primal = LinearProbeClassifier(solver="primal", **kw).fit(X, y)
    assert (dual.solver_, primal.solver_) == ("dual", "primal")
    assert dual.alpha_ == pytest.approx(primal.alpha_, rel=1e-12)
    assert_rel(dual.decision_function(X), primal.decision_function(X), 1e-8, "decisions")
    assert_rel(dual.predict_proba(X), primal.predict_proba(X), 1e-7, "probabilities")
    np.testing.assert_array_equal(dual.predict(X), primal.predict(X))
    # the classifier's codes are what the regression was fitted on
    codes = ovr_codes(y, np.unique(y))
    model = Ridge(alpha=dual.alpha_, solver="svd").fit(X, codes)
    dec = dual.decision_function(X)
    assert_rel(dec, model.predict(X).reshape(dec.shape), 1e-8, "Ridge on the codes")


# ------------------------------------------------------------------ the two routes agree
@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("metric", ["standardize", "whiten"])
@pytest.mark.parametrize("cv", ["gcv", "loo", 3])
def test_dual_equals_primal_under_metrics(backend_name, metric, cv):
    """The dual route sees the rows A (x - mu) of the metric and pulls the coefficients
    back: the probe of the primal route. (Whitening needs n > d to keep the scores apart:
    with d >= n the whitened kernel is n I on the centred subspace, every alpha scores the
    same up to rounding, and which one wins is rounding.)"""
    n, d = (80, 30) if metric == "whiten" else (40, 90)
    rng = np.random.default_rng(7)
    X = rng.standard_normal((n, d)) * rng.uniform(0.1, 10.0, size=d) + 4.0
    Y = X[:, :4] @ rng.standard_normal((4, 2)) + rng.standard_normal((n, 2))
    kw = {"backend": _backend(backend_name), "metric": metric, "cv": cv}
    dual = LinearProbe(solver="dual", **kw).fit(X, Y)
    primal = LinearProbe(solver="primal", **kw).fit(X, Y)
    np.testing.assert_allclose(dual.alphas_, primal.alphas_, rtol=1e-10)
    np.testing.assert_allclose(
        dual.cv_results_["scores"], primal.cv_results_["scores"], rtol=1e-8
    )
    assert dual.alpha_ == pytest.approx(primal.alpha_, rel=1e-10)
    assert_rel(dual.coef_, primal.coef_, 1e-8, "coef_")
    assert_rel(dual.intercept_, primal.intercept_, 1e-8, "intercept_")
    assert_rel(dual.geometry_.as_matrix(d), primal.geometry_.as_matrix(d), 1e-10, "A")


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_dual_default_grid_and_extension_match_primal(backend, fit_intercept):
    """The default grid comes from the kernel's trace (the Gram's), and its extension at an
    improving edge searches the same alphas: targets unrelated to X want alphas above the
    grid (the best predictor is their mean; with this seed LOO's joint score still improves
    at the top of the default grid)."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 60))
    y = rng.standard_normal((30, 20))
    kw = {"backend": backend, "fit_intercept": fit_intercept, "cv": "loo"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dual = LinearProbe(solver="dual", **kw).fit(X, y)
        primal = LinearProbe(solver="primal", **kw).fit(X, y)
    assert dual.alphas_.size > 19  # extended
    np.testing.assert_allclose(dual.alphas_, primal.alphas_, rtol=1e-10)
    assert dual.alpha_ == pytest.approx(primal.alpha_, rel=1e-10)
    assert_rel(dual.predict(X), primal.predict(X), 1e-7, "predictions")


def test_dual_alpha_zero_is_minimum_norm_interpolant(backend):
    """alpha = 0 with n < d: the minimum-norm least-squares solution (numpy's lstsq)."""
    X, y = make_regression(9, 25, 60, None)
    probe = LinearProbe(alphas=[0.0], solver="dual", backend=backend).fit(X, y)
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    w = np.linalg.lstsq(Xc, yc, rcond=None)[0]
    assert_rel(probe.coef_, w, 1e-8, "minimum-norm coef")
    assert_rel(probe.predict(X), y, 1e-8, "interpolation")


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(3, 30),
    extra=st.integers(1, 40),
    seed=st.integers(0, 2**31 - 1),
    cv=st.sampled_from(["gcv", "loo", 2]),
)
def test_dual_predictions_rotation_invariant(n, extra, seed, cv):
    """Euclidean ridge is invariant under rotations of the features: the dual route (which
    sees only inner products) gives the same predictions on X R as on X, for any shape."""
    d = n + extra
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    R = ortho_group.rvs(d, random_state=seed % 2**32)
    grid = np.logspace(-2, 2, 5) * d
    a = LinearProbe(alphas=grid, cv=cv, solver="dual").fit(X, y)
    b = LinearProbe(alphas=grid, cv=cv, solver="dual").fit(X @ R, y)
    np.testing.assert_allclose(a.cv_results_["scores"], b.cv_results_["scores"], rtol=1e-7)
    assert_rel(b.predict(X @ R), a.predict(X), 1e-7, "rotated predictions")
    assert_rel(b.coef_, R.T @ a.coef_, 1e-7, "coef_ rotates")


# ------------------------------------------------------------------ what the route changes
@pytest.mark.parametrize("shape,cv,fit_intercept,route", [
    ((20, 21), "gcv", True, "dual"), ((21, 21), "loo", True, "dual"),  # rank n - 1 < d
    ((21, 21), "gcv", False, "primal"), ((22, 21), "gcv", True, "primal"),
    ((30, 25), 5, True, "dual"), ((30, 25), "gcv", True, "primal"),  # 24-row training sets
    ((40, 10), 5, True, "primal"),
])  # fmt: skip
def test_auto_takes_dual_where_the_primal_gram_is_singular(backend, shape, cv, fit_intercept,
                                                           route):  # fmt: skip
    """"auto" is dual where the primal route would decompose a singular Gram: fewer rows
    than features once the intercept is counted (K-fold: in the smallest training set)."""
    X, y = make_regression(1, *shape)
    probe = LinearProbe(cv=cv, fit_intercept=fit_intercept, backend=backend).fit(X, y)
    assert probe.solver_ == route
    assert LinearProbe(solver="primal", backend=backend).fit(X, y).solver_ == "primal"
    assert LinearProbe(solver="dual", backend=backend).fit(X, y).solver_ == "dual"
    if route == "primal":
        assert probe.stats_.n_samples == shape[0]


def test_auto_route_with_uneven_folds_follows_the_smallest_training_set(backend):
    X, y = make_regression(2, 30, 20)
    even = LinearProbe(cv=5, backend=backend).fit(X, y)
    assert even.solver_ == "primal"  # 24 training rows, 20 features
    folds = np.repeat([0, 1, 2, 3, 4], [2, 2, 2, 2, 22])  # one fold leaves 8 rows to train
    uneven = LinearProbe(cv=5, backend=backend).fit(X, y, fold_ids=folds)
    assert uneven.solver_ == "dual"
    ref = kfold_reference(X, y[:, None], uneven.alphas_, folds, True)
    np.testing.assert_allclose(uneven.cv_results_["scores"], ref, rtol=1e-7)


def test_dual_fit_keeps_no_statistics_and_refuses_partial_fit(backend):
    X, y = make_regression(2, 20, 50)
    probe = LinearProbe(backend=backend).fit(X, y)
    assert probe.solver_ == "dual"
    with pytest.raises(AttributeError, match="keeps no statistics"):
        probe.stats_  # noqa: B018 (the property raises)
    coef = probe.coef_.copy()
    with pytest.raises(ValueError, match="dual route"):
        probe.partial_fit(X, y)
    np.testing.assert_array_equal(probe.coef_, coef)  # unchanged by the refused call
    # a refit by the primal route streams again
    probe.set_params(solver="primal").fit(X, y)
    probe.partial_fit(X, y)
    assert probe.stats_.n_samples == 40


def test_solver_dual_has_no_partial_fit_and_is_validated(backend):
    X, y = make_regression(3, 20, 50)
    with pytest.raises(Exception, match="partial_fit"):
        LinearProbe(solver="dual", backend=backend).partial_fit(X, y)
    with pytest.raises(ParameterError, match="solver"):
        LinearProbe(solver="kernel", backend=backend).fit(X, y)
    # partial_fit under "auto" is the primal route, whatever the shape
    probe = LinearProbe(backend=backend).partial_fit(X, y)
    assert probe.solver_ == "primal"
    assert_rel(probe.coef_, LinearProbe(backend=backend).fit(X, y).coef_, 1e-8, "same probe")


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e120, 1e-120])
def test_dual_route_rejects_bad_values_like_the_primal_route(backend, bad):
    X, y = make_regression(4, 20, 50)
    X[3, 7] = bad
    if abs(bad) < 1:
        X = X * 1e-119  # every entry tiny: below the range statistics represent
    errors = []
    for solver in ("dual", "primal"):
        with pytest.raises(ValueError) as info:
            LinearProbe(solver=solver, backend=backend).fit(X, y)
        errors.append(str(info.value))
    assert errors[0] == errors[1]


def test_dual_route_on_float32_and_fortran_rows(backend):
    X, y = make_regression(6, 30, 70)
    ref = LinearProbe(solver="dual", backend=backend).fit(X, y)
    X32 = X.astype(np.float32)
    a = LinearProbe(solver="dual", backend=backend).fit(X32, y)
    b = LinearProbe(solver="primal", backend=backend).fit(X32, y)
    assert_rel(a.coef_, b.coef_, 1e-8, "float32 rows, both routes")
    assert_rel(a.coef_, ref.coef_, 1e-4, "float32 vs float64 rows")
    f = LinearProbe(solver="dual", backend=backend).fit(np.asfortranarray(X), y)
    assert_rel(f.coef_, ref.coef_, 1e-12, "Fortran order")
    strided = np.repeat(X, 2, axis=1)[:, ::2]  # an odd-stride view of the same values
    s = LinearProbe(solver="dual", backend=backend).fit(strided, y)
    assert_rel(s.coef_, ref.coef_, 1e-12, "strided view")


def test_dual_route_on_torch_tensors():
    torch = pytest.importorskip("torch")
    X, Y = make_regression(8, 30, 70, 2)
    ref = LinearProbe(solver="dual", backend="numpy", cv="loo").fit(X, Y)
    t = LinearProbe(cv="loo").fit(torch.from_numpy(X), torch.from_numpy(Y))
    assert t.solver_ == "dual"
    assert_rel(np.asarray(t.coef_), ref.coef_, 1e-8, "torch tensors")
    pred = t.predict(torch.from_numpy(X))
    assert isinstance(pred, torch.Tensor)
    assert_rel(pred.numpy(), ref.predict(X), 1e-8, "torch predictions")


def test_dask_arrays_with_fewer_rows_than_features_take_the_dual_route():
    """The same code on dask rows: with fewer rows than features (or solver="dual") the rows
    come to the client and the probe is the in-memory dual fit, LOO and decision-value
    scoring included; with more rows, statistics on the workers (the primal route)."""
    da = pytest.importorskip("dask.array")
    X, y = make_regression(9, 40, 60)
    Xd = da.from_array(X, chunks=(15, 60))
    for kw in ({}, {"cv": "loo"}, {"cv": 4}, {"solver": "dual", "cv": 3}):
        got = LinearProbe(**kw).fit(Xd, y)
        ref = LinearProbe(**kw).fit(X, y)
        assert got.solver_ == "dual" == ref.solver_
        assert_rel(got.coef_, ref.coef_, 1e-12, f"dask rows {kw}")
        np.testing.assert_array_equal(got.cv_results_["scores"], ref.cv_results_["scores"])
    labels = (X[:, 0] > 0).astype(int)
    folds = np.arange(40) % 4
    clf = LinearProbeClassifier(cv=4, scoring="roc_auc").fit(
        Xd, da.from_array(labels, chunks=15), fold_ids=da.from_array(folds, chunks=15)
    )
    ref_clf = LinearProbeClassifier(cv=4, scoring="roc_auc").fit(X, labels, fold_ids=folds)
    assert_rel(clf.decision_function(X), ref_clf.decision_function(X), 1e-12, "classifier")
    # more rows than features: the statistics, computed on the workers
    tall, y_tall = make_regression(10, 80, 6)
    probe = LinearProbe().fit(da.from_array(tall, chunks=(30, 6)), y_tall)
    assert probe.solver_ == "primal" and probe.stats_.n_samples == 80
    with pytest.raises(ParameterError, match="loo"):
        LinearProbe(cv="loo").fit(da.from_array(tall, chunks=(30, 6)), y_tall)


@pytest.mark.parametrize("cv", ["gcv", "loo"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_dual_on_rank_deficient_rows(backend, cv, fit_intercept):
    """Rows of rank 6 (and two duplicated rows): the kernel is singular beyond the intercept's
    null direction, which the band GCV route does not assume away. Scores against the SVD
    reference (GCV) or RidgeCV (LOO) on the default grid."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((30, 6)) @ rng.standard_normal((6, 80))
    X[1] = X[0]
    y = X @ rng.standard_normal(80) / 9 + rng.standard_normal(30)
    probe = LinearProbe(cv=cv, solver="dual", fit_intercept=fit_intercept, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the choice may sit at an edge of the grid
        probe.fit(X, y)
    grid = probe.alphas_
    if cv == "gcv":
        ref = gcv_reference_svd(X, y[:, None], grid, fit_intercept)
        np.testing.assert_allclose(probe.cv_results_["scores"], ref, rtol=1e-7)
    else:
        sk = RidgeCV(alphas=grid, fit_intercept=fit_intercept, store_cv_results=True).fit(X, y)
        assert_rel(probe.cv_results_["scores"][:, 0], -sk.cv_results_.mean(axis=0), 1e-7, "LOO")
    model = Ridge(alpha=probe.alpha_, fit_intercept=fit_intercept, solver="svd").fit(X, y)
    assert_rel(probe.coef_, model.coef_, 1e-7, "coef_")


@pytest.mark.parametrize("entries", [1, 2 * 30 * 3])  # residuals of 1 or 2 alphas at a time
def test_dual_loo_residuals_in_chunks_of_alphas(backend, monkeypatch, entries):
    """LOO on the dual route forms the residuals of a chunk of alphas at a time
    (`LOO_RESIDUAL_ENTRIES`) and sums squared errors without keeping the (alphas, n, k)
    predictions: scores still those of RidgeCV (squared error) and of refitting (accuracy)."""
    import shallowprobes.solve.dual as dual

    monkeypatch.setattr(dual, "LOO_RESIDUAL_ENTRIES", entries)
    X, Y = make_regression(12, 30, 80, 3, noise=1.0)
    grid = _grid(X, -4, 3, 9)
    probe = LinearProbe(alphas=grid, cv="loo", solver="dual", backend=backend).fit(X, Y)
    ref = RidgeCV(alphas=grid, store_cv_results=True).fit(X, Y)
    assert_rel(probe.cv_results_["scores"], -ref.cv_results_.mean(axis=0).T, 1e-8, "LOO")
    Xc, labels = make_classification(13, 30, 80, 3, sep=1.0)
    clf = LinearProbeClassifier(alphas=grid, cv="loo", scoring="accuracy", solver="dual",
                                backend=backend).fit(Xc, labels)  # fmt: skip
    codes = ovr_codes(labels, np.unique(labels))
    model_dec = np.empty((grid.size, 30, 3))
    for i in range(30):
        keep = np.arange(30) != i
        for a, alpha in enumerate(grid):
            model = Ridge(alpha=alpha, solver="svd").fit(Xc[keep], codes[keep])
            model_dec[a, i] = model.predict(Xc[i : i + 1])[0]
    truth = np.argmax(codes, axis=1)
    joint = np.mean(np.argmax(model_dec, axis=2) == truth[None], axis=1)
    np.testing.assert_allclose(clf.cv_results_["mean_scores"], joint, atol=1e-12)

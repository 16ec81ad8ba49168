"""Exact degree-2 probes (QuadraticProbe, QuadraticProbeClassifier): the primal and dual routes
agree, both equal scikit-learn on explicitly expanded features / a precomputed kernel, CV scores
equal explicit refit loops, and the fitted (Q, w, b) reproduce the predictions.

References are independent of the library: the degree-2 features come from scikit-learn's
``PolynomialFeatures(2, include_bias=False)`` (whose column order is numpy.triu_indices order)
with the quadratic columns scaled by sqrt(gamma) * s_ab, the kernel from plain matrix products.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_rel, rel_err
from shallowprobes import QuadraticProbe, QuadraticProbeClassifier
from shallowprobes.backends import get_backend
from shallowprobes.solve import features as quad
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import Ridge
from sklearn.preprocessing import PolynomialFeatures

RTOL = 1e-7
# n < p, n == p, n > p for the widths p = d + d(d+1)/2 (d=10: p=65; d=5: p=20)
SHAPES = [(30, 10), (65, 10), (150, 5)]
SHAPE_IDS = ["n30_p65", "n65_p65", "n150_p20"]


# ------------------------------------------------------------------------------ helpers
def make_quad(seed, n, d, k=None, offset=1.5, noise=0.3):
    """Rows with a non-zero mean and targets with a genuine quadratic signal."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + offset * rng.normal(size=d)
    kk = 1 if k is None else k
    U = X - X.mean(axis=0)
    A = rng.normal(size=(kk, d, d)) / d
    W = rng.normal(size=(d, kk)) / np.sqrt(d)
    Y = np.einsum("ni,tij,nj->nt", U, A, U) + U @ W + noise * rng.normal(size=(n, kk)) + 2.0
    return X, (Y[:, 0] if k is None else Y)


def make_quad_classes(seed, n, d, n_classes=2):
    """Classes that differ in spread (a genuinely quadratic problem) and a little in mean."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    scales = 1.0 + 0.8 * np.arange(n_classes)
    means = rng.normal(size=(n_classes, d)) * 0.5
    X = means[y] + rng.normal(size=(n, d)) * scales[y][:, None] + 3.0
    return X, y


def sk_features(X, centre, gamma):
    """phi_gamma(X - centre) built with scikit-learn's PolynomialFeatures."""
    d = X.shape[1]
    F = PolynomialFeatures(degree=2, include_bias=False).fit_transform(X - centre)
    a, b = np.triu_indices(d)
    F[:, d:] *= np.sqrt(gamma) * np.where(a == b, 1.0, np.sqrt(2.0))
    return F


def explicit_kernel(A, B, gamma):
    G = A @ B.T
    return G + gamma * G * G


def as2d(y):
    y = np.asarray(y, dtype=np.float64)
    return y[:, None] if y.ndim == 1 else y


def fit_pair(est_cls, X, y, fold_ids=None, **params):
    """The same probe fitted by the primal and the dual route."""
    p = est_cls(solver="primal", **params).fit(X, y, fold_ids=fold_ids)
    d = est_cls(solver="dual", **params).fit(X, y, fold_ids=fold_ids)
    assert p.solver_ == "primal" and d.solver_ == "dual"
    return p, d


def assert_same_cv(p, d, rtol=RTOL):
    rp, rd = p.cv_results_, d.cv_results_
    np.testing.assert_allclose(rd["alphas"], rp["alphas"], rtol=1e-10)
    np.testing.assert_allclose(rd["gammas"], rp["gammas"], rtol=1e-10)
    assert d.gamma_ == pytest.approx(p.gamma_, rel=1e-10)
    np.testing.assert_allclose(np.atleast_1d(d.alpha_), np.atleast_1d(p.alpha_), rtol=1e-10)
    for g, (mp, md) in enumerate(zip(rp["gamma_mean_scores"], rd["gamma_mean_scores"])):
        assert_rel(md, mp, rtol, f"mean_scores of gamma #{g}")
    assert_rel(rd["mean_scores"], rp["mean_scores"], rtol, "mean_scores")
    assert_rel(rd["scores"], rp["scores"], rtol, "scores")


# ------------------------------------------------------------------------------ 1. routes
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("cv", ["gcv", "loo", 3, 5])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("k", [None, 3], ids=["y1d", "k3"])
def test_primal_equals_dual_regressor(backend, shape, cv, fit_intercept, k):
    n, d = shape
    seed = 7 * n + d
    X, y = make_quad(seed, n, d, k)
    p, du = fit_pair(QuadraticProbe, X, y, cv=cv, fit_intercept=fit_intercept, backend=backend)
    assert_same_cv(p, du)
    X_new = make_quad(seed + 1, 23, d)[0]
    for Xp in (X, X_new):
        assert_rel(du.predict(Xp), p.predict(Xp), RTOL, "predict")
    assert_rel(du.quadratic_, p.quadratic_, RTOL, "quadratic_")
    assert_rel(du.linear_, p.linear_, RTOL, "linear_")
    assert_rel(du.intercept_, p.intercept_, RTOL, "intercept_")
    assert_rel(du.centre_, p.centre_, 1e-12, "centre_")
    if not fit_intercept:
        assert np.all(p.centre_ == 0.0) and np.all(du.centre_ == 0.0)
        assert np.all(np.asarray(p.intercept_) == 0.0)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("alphas", [None, [1e-3, 0.1, 1.0, 10.0, 100.0]], ids=["grid", "given"])
@pytest.mark.parametrize("gamma", [None, 0.05, [0.01, 0.1, 1.0]], ids=["g_auto", "g", "g_list"])
def test_primal_equals_dual_alphas_and_gammas(backend, shape, alphas, gamma):
    n, d = shape
    X, y = make_quad(3 * n + d, n, d, 2)
    for cv in ("gcv", 4):
        p, du = fit_pair(QuadraticProbe, X, y, alphas=alphas, gamma=gamma, cv=cv, backend=backend)
        assert_same_cv(p, du)
        assert_rel(du.predict(X), p.predict(X), RTOL, f"predict cv={cv}")
        if alphas is not None:
            np.testing.assert_array_equal(p.alphas_, alphas)
        if isinstance(gamma, list):
            np.testing.assert_array_equal(p.cv_results_["gammas"], gamma)
            assert p.gamma_ in gamma
            assert len(p.cv_results_["gamma_mean_scores"]) == len(gamma)
            # the chosen gamma is the one whose best joint score is best
            best = [np.max(s) for s in p.cv_results_["gamma_mean_scores"]]
            assert p.gamma_ == gamma[int(np.argmax(best))]
            assert p.best_score_ == pytest.approx(max(best), rel=1e-12)


@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("cv", ["gcv", "loo", 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gamma_list_equals_single_gamma_fits(backend, solver, cv, fit_intercept):
    """A gamma grid is G independent single-gamma problems: the scores of gamma #g equal a fit
    with gamma=gammas[g], and the chosen probe equals the single fit at gamma_."""
    X, y = make_quad(29, 50, 5, 2)
    gammas = [0.01, 0.3, 3.0]
    alphas = np.logspace(-3, 2, 6)
    params = dict(alphas=alphas, cv=cv, fit_intercept=fit_intercept, solver=solver)
    grid = QuadraticProbe(gamma=gammas, backend=backend, **params).fit(X, y)
    for g, gamma in enumerate(gammas):
        single = QuadraticProbe(gamma=gamma, backend=backend, **params).fit(X, y)
        assert_rel(
            grid.cv_results_["gamma_scores"][g], single.cv_results_["scores"], 1e-9,
            f"scores of gamma={gamma}",
        )  # fmt: skip
        if gamma == grid.gamma_:
            assert grid.alpha_ == single.alpha_
            assert_rel(grid.predict(X), single.predict(X), 1e-9, "chosen probe")
            assert_rel(grid.intercept_, single.intercept_, 1e-9, "intercept_")


def test_primal_equals_dual_alpha_per_target(backend):
    X, y = make_quad(5, 40, 6, 3)
    for cv in ("gcv", "loo", 3):
        p, du = fit_pair(
            QuadraticProbe, X, y, cv=cv, alpha_per_target=True, gamma=[0.1, 1.0], backend=backend
        )
        assert np.shape(p.alpha_) == (3,)
        assert_same_cv(p, du)
        assert_rel(du.predict(X), p.predict(X), RTOL, f"predict cv={cv}")


def test_primal_equals_dual_custom_fold_ids(backend):
    n, d, K = 48, 6, 4
    X, y = make_quad(11, n, d, 2)
    rng = np.random.default_rng(0)
    folds = rng.permutation(np.arange(n) % K)
    p, du = fit_pair(QuadraticProbe, X, y, fold_ids=folds, cv=K, backend=backend)
    assert_same_cv(p, du)
    assert_rel(du.predict(X), p.predict(X), RTOL, "predict")
    # different fold assignments give different scores (fold_ids is really used)
    default = QuadraticProbe(cv=K, solver="primal", backend=backend).fit(X, y)
    assert rel_err(default.cv_results_["mean_scores"], p.cv_results_["mean_scores"]) > 1e-6
    # the classifier, with held-out decision values scored per fold assignment
    Xc, yc = make_quad_classes(12, n, d, 3)
    for scoring in ("squared_error", "accuracy", "roc_auc"):
        pc, dc = fit_pair(
            QuadraticProbeClassifier, Xc, yc, fold_ids=folds, cv=K, scoring=scoring,
            backend=backend,
        )  # fmt: skip
        assert_same_cv(pc, dc)
        assert_rel(dc.decision_function(Xc), pc.decision_function(Xc), RTOL, "decision")


CLF_CASES = [
    ("gcv", "squared_error"),
    ("loo", "squared_error"),
    ("loo", "accuracy"),
    ("loo", "roc_auc"),
    (3, "accuracy"),
    (5, "roc_auc"),
    (4, "squared_error"),
]


@pytest.mark.parametrize(("cv", "scoring"), CLF_CASES, ids=[f"{c}-{s}" for c, s in CLF_CASES])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("shape", [(30, 8), (120, 5)], ids=["n30_p44", "n120_p20"])
def test_primal_equals_dual_classifier(backend, cv, scoring, n_classes, shape):
    n, d = shape
    X, y = make_quad_classes(n + d + n_classes, n, d, n_classes)
    p, du = fit_pair(QuadraticProbeClassifier, X, y, cv=cv, scoring=scoring, backend=backend)
    assert_same_cv(p, du)
    X_new = make_quad_classes(99, 31, d, n_classes)[0]
    for Xp in (X, X_new):
        assert_rel(du.decision_function(Xp), p.decision_function(Xp), RTOL, "decision")
        np.testing.assert_array_equal(du.predict(Xp), p.predict(Xp))
        # the logistic slope: from statistics (primal), from training decisions (dual)
        assert_rel(du.predict_proba(Xp), p.predict_proba(Xp), RTOL, "predict_proba")
    shape_q = (1, d, d) if n_classes == 2 else (n_classes, d, d)
    assert p.quadratic_.shape == du.quadratic_.shape == shape_q


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_primal_equals_dual_classifier_gamma_list(backend, fit_intercept):
    X, y = make_quad_classes(4, 60, 6, 3)
    labels = np.array(["cat", "dog", "eel"])[y]
    for cv, scoring in (("loo", "accuracy"), (3, "roc_auc"), ("gcv", "squared_error")):
        p, du = fit_pair(
            QuadraticProbeClassifier, X, labels, cv=cv, scoring=scoring,
            gamma=[0.02, 0.2, 2.0], alphas=np.logspace(-2, 3, 6),
            fit_intercept=fit_intercept, backend=backend,
        )  # fmt: skip
        assert_same_cv(p, du)
        np.testing.assert_array_equal(p.classes_, ["cat", "dog", "eel"])
        assert_rel(du.decision_function(X), p.decision_function(X), RTOL, "decision")


def test_auto_route_choice(backend):
    X, y = make_quad(0, 30, 10)  # p = 65 > n
    assert QuadraticProbe(backend=backend).fit(X, y).solver_ == "dual"
    X, y = make_quad(0, 100, 5)  # p = 20 <= n
    probe = QuadraticProbe(backend=backend).fit(X, y)
    assert probe.solver_ == "primal"
    assert probe.stats_.degree == 2 and probe.stats_.n_inputs == 5
    # n > p but the p x p statistics do not fit the budget while the n x n kernel does
    n, d = 400, 30  # p = 495
    X, y = make_quad(1, n, d)
    p = quad.n_features(d)
    # (one gamma: the memory budget below is sized for one kernel, not the default grid's)
    probe = QuadraticProbe(memory_limit=40.0 * p * p, gamma="scale", backend=backend).fit(X, y)
    assert probe.solver_ == "dual"
    with pytest.raises(AttributeError, match="dual"):
        probe.stats_  # noqa: B018


# ------------------------------------------------------------------------------ 2. sklearn
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("k", [None, 2], ids=["y1d", "k2"])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_sklearn_ridge_on_polynomial_features(backend, shape, solver, k, seed):
    n, d = shape
    X, y = make_quad(seed, n, d, k)
    alpha, gamma = [(0.5, 0.2), (4.0, 0.03)][seed]
    probe = QuadraticProbe(alphas=[alpha], gamma=gamma, solver=solver, backend=backend).fit(X, y)
    assert probe.alpha_ == alpha and probe.gamma_ == gamma and probe.solver_ == solver
    mu = X.mean(axis=0)
    ref = Ridge(alpha=alpha, fit_intercept=True, solver="svd").fit(sk_features(X, mu, gamma), y)
    X_new = make_quad(seed + 50, 29, d)[0]
    for Xp in (X, X_new):
        pred = probe.predict(Xp)
        assert pred.shape == ((Xp.shape[0],) if k is None else (Xp.shape[0], k))
        assert_rel(pred, ref.predict(sk_features(Xp, mu, gamma)), RTOL, "predict vs Ridge")
    assert_rel(probe.centre_, mu, 1e-12, "centre_")


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("k", [None, 2], ids=["y1d", "k2"])
def test_default_gamma_equals_sklearn(backend, shape, solver, k):
    n, d = shape
    X, y = make_quad(4, n, d, k)
    mu = X.mean(axis=0)
    gamma = 1.0 / np.mean(np.sum((X - mu) ** 2, axis=1))
    # gamma="scale" is the single scale-free gamma (the default searches a grid around it)
    probe = QuadraticProbe(alphas=[2.0], gamma="scale", solver=solver, backend=backend)
    probe.fit(X, y)
    assert probe.gamma_ == pytest.approx(gamma, rel=1e-10)
    ref = Ridge(alpha=2.0, solver="svd").fit(sk_features(X, mu, gamma), y)
    X_new = make_quad(5, 17, d)[0]
    assert_rel(probe.predict(X_new), ref.predict(sk_features(X_new, mu, gamma)), RTOL, "predict")


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("k", [None, 3], ids=["y1d", "k3"])
def test_no_intercept_equals_sklearn(backend, shape, solver, k):
    """fit_intercept=False: Ridge without intercept on phi(h) and KernelRidge on the plainly
    computed kernel of the raw rows, U U^T + gamma (U U^T)^2."""
    n, d = shape
    X, y = make_quad(8, n, d, k, offset=0.7)
    alpha, gamma = 0.7, 0.15
    probe = QuadraticProbe(
        alphas=[alpha], gamma=gamma, fit_intercept=False, solver=solver, backend=backend
    ).fit(X, y)
    X_new = make_quad(9, 21, d, offset=0.7)[0]
    zero = np.zeros(d)
    ridge = Ridge(alpha=alpha, fit_intercept=False, solver="svd").fit(
        sk_features(X, zero, gamma), y
    )
    kr = KernelRidge(alpha=alpha, kernel="precomputed").fit(explicit_kernel(X, X, gamma), y)
    for Xp in (X, X_new):
        pred = probe.predict(Xp)
        assert_rel(pred, ridge.predict(sk_features(Xp, zero, gamma)), RTOL, "vs Ridge")
        assert_rel(pred, kr.predict(explicit_kernel(Xp, X, gamma)), RTOL, "vs KernelRidge")
    assert np.all(probe.centre_ == 0.0)
    assert np.all(np.asarray(probe.intercept_) == 0.0)


@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_classifier_equals_sklearn_ridge_on_codes(backend, solver):
    X, y = make_quad_classes(6, 50, 6, 3)
    alpha, gamma = 1.5, 0.05
    clf = QuadraticProbeClassifier(alphas=[alpha], gamma=gamma, solver=solver, backend=backend).fit(
        X, y
    )
    mu = X.mean(axis=0)
    codes = np.where(y[:, None] == np.arange(3)[None, :], 1.0, -1.0)
    ref = Ridge(alpha=alpha, solver="svd").fit(sk_features(X, mu, gamma), codes)
    X_new = make_quad_classes(7, 25, 6, 3)[0]
    dec = ref.predict(sk_features(X_new, mu, gamma))
    assert_rel(clf.decision_function(X_new), dec, RTOL, "decision vs Ridge on codes")
    np.testing.assert_array_equal(clf.predict(X_new), np.argmax(dec, axis=1))
    # binary: one column, positive means classes_[1]
    yb = (y == 2).astype(int)
    clf2 = QuadraticProbeClassifier(
        alphas=[alpha], gamma=gamma, solver=solver, backend=backend
    ).fit(X, yb)
    ref2 = Ridge(alpha=alpha, solver="svd").fit(sk_features(X, mu, gamma), 2.0 * yb - 1.0)
    dec2 = ref2.predict(sk_features(X_new, mu, gamma))
    assert_rel(clf2.decision_function(X_new), dec2, RTOL, "binary decision vs Ridge")
    np.testing.assert_array_equal(clf2.predict(X_new), (dec2 > 0).astype(int))


def accurate_gcv(F, Y, alphas, fit_intercept):
    """Per-target GCV n * RSS / (n - dof)^2 (negated) from an SVD of the (centred) features,
    with the shrinkage a / (s^2 + a) formed directly (no cancellation at small alpha)."""
    n = F.shape[0]
    Y = as2d(Y)
    if fit_intercept:
        F, Y = F - F.mean(axis=0), Y - Y.mean(axis=0)
    U, s, _ = np.linalg.svd(F, full_matrices=False)
    keep = s > s.max() * max(F.shape) * 1e-13
    U, s = U[:, keep], s[keep]
    B = U.T @ Y
    outside = Y - U @ B  # the part of y outside the span of the features
    free = n - (1 if fit_intercept else 0) - s.size
    out = np.empty((len(alphas), Y.shape[1]))
    for i, a in enumerate(alphas):
        shrink = a / (s**2 + a)
        R = U @ (shrink[:, None] * B) + outside
        out[i] = -n * np.sum(R**2, axis=0) / (free + shrink.sum()) ** 2
    return out


@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("k", [None, 3], ids=["y1d", "k3"])
def test_gcv_scores_equal_accurate_reference(backend, solver, shape, fit_intercept, k):
    """GCV over the whole default grid (down to 1e-6 x the mean eigenvalue) to 1e-7, also for
    n < p where the rows are interpolated as alpha -> 0 and the RSS is tiny."""
    n, d = shape
    X, y = make_quad(7 * n + d, n, d, k)
    probe = QuadraticProbe(fit_intercept=fit_intercept, solver=solver, backend=backend).fit(X, y)
    mu = X.mean(axis=0) if fit_intercept else np.zeros(d)
    ref = accurate_gcv(sk_features(X, mu, probe.gamma_), y, probe.alphas_, fit_intercept)
    scores = probe.cv_results_["scores"]
    worst = np.max(np.abs(scores - ref) / np.abs(ref), axis=1)
    assert np.all(worst <= RTOL), f"per-alpha relative errors {worst}"
    assert probe.alpha_ == probe.alphas_[int(np.argmax(ref.mean(axis=1)))]


# ------------------------------------------------------------------------------ 3. CV loops
def explicit_loo_scores(X, Y, alphas, gamma):
    """Negative mean squared LOO error per alpha: refit Ridge on n-1 rows (features centred at
    the full training mean, intercept refitted)."""
    F = sk_features(X, X.mean(axis=0), gamma)
    Y = as2d(Y)
    n = X.shape[0]
    out = np.empty(len(alphas))
    for i, a in enumerate(alphas):
        err = np.empty_like(Y)
        for j in range(n):
            keep = np.arange(n) != j
            model = Ridge(alpha=a, solver="svd").fit(F[keep], Y[keep])
            err[j] = model.predict(F[j : j + 1]) - Y[j]
        out[i] = -np.mean(err**2)
    return out


def explicit_kfold_predictions(X, Y, alphas, gamma, folds):
    """(A, n, k) held-out predictions of per-fold Ridge refits on features centred at the FULL
    training mean (the documented convention: the feature map uses no labels)."""
    F = sk_features(X, X.mean(axis=0), gamma)
    Y = as2d(Y)
    preds = np.empty((len(alphas),) + Y.shape)
    for i, a in enumerate(alphas):
        for f in np.unique(folds):
            test = folds == f
            model = Ridge(alpha=a, solver="svd").fit(F[~test], Y[~test])
            preds[i, test] = as2d(model.predict(F[test]))
    return preds


@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("shape", [(20, 4), (18, 6)], ids=["n20_p14", "n18_p27"])
def test_loo_equals_explicit_refit_loop(backend, solver, shape):
    n, d = shape
    X, y = make_quad(21, n, d, noise=1.0)
    alphas = np.logspace(-3, 3, 7)
    gamma = 0.1
    probe = QuadraticProbe(
        alphas=alphas, gamma=gamma, cv="loo", solver=solver, backend=backend
    ).fit(X, y)
    ref = explicit_loo_scores(X, y, alphas, gamma)
    assert_rel(probe.cv_results_["mean_scores"], ref, RTOL, "LOO scores")
    assert probe.alpha_ == alphas[int(np.argmax(ref))]
    if n > quad.n_features(d):  # a genuinely interior optimum, so the check means something
        assert 0 < int(np.argmax(ref)) < len(alphas) - 1


@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("folds_kind", ["default", "custom"])
@pytest.mark.parametrize("k", [None, 2], ids=["y1d", "k2"])
def test_kfold_equals_explicit_refit_loop(backend, solver, folds_kind, k):
    n, d, K = 40, 5, 4
    X, y = make_quad(31, n, d, k)
    alphas = np.logspace(-3, 3, 7)
    gamma = 0.2
    if folds_kind == "default":
        folds, fold_ids = np.arange(n) % K, None
    else:
        folds = np.random.default_rng(3).integers(0, K, size=n)
        fold_ids = folds
    probe = QuadraticProbe(alphas=alphas, gamma=gamma, cv=K, solver=solver, backend=backend).fit(
        X, y, fold_ids=fold_ids
    )
    Y = as2d(y)
    preds = explicit_kfold_predictions(X, Y, alphas, gamma, folds)
    per = -np.mean((preds - Y[None]) ** 2, axis=1)  # (A, k)
    assert_rel(probe.cv_results_["scores"], per, RTOL, "K-fold per-target scores")
    assert_rel(probe.cv_results_["mean_scores"], per.mean(axis=1), RTOL, "K-fold scores")
    assert probe.alpha_ == alphas[int(np.argmax(per.mean(axis=1)))]


@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("scoring", ["accuracy", "roc_auc"])
def test_classifier_kfold_and_loo_scores_equal_refit_loop(backend, solver, scoring):
    from sklearn.metrics import roc_auc_score

    n, d, K = 36, 4, 3
    X, y = make_quad_classes(41, n, d, 2)
    alphas = np.logspace(-2, 3, 6)
    gamma = 0.05
    codes = 2.0 * y - 1.0
    for cv in (K, "loo"):
        folds = np.arange(n) % K if cv == K else np.arange(n)
        clf = QuadraticProbeClassifier(
            alphas=alphas, gamma=gamma, cv=cv, scoring=scoring, solver=solver, backend=backend
        ).fit(X, y)
        preds = explicit_kfold_predictions(X, codes, alphas, gamma, folds)[:, :, 0]
        if scoring == "accuracy":
            ref = np.mean((preds > 0) == (codes > 0)[None], axis=1)
        else:
            ref = np.array([roc_auc_score(y, p) for p in preds])
        assert_rel(clf.cv_results_["mean_scores"], ref, 1e-12, f"{scoring} cv={cv}")
        # exact ties go to the larger alpha (more regularisation)
        assert clf.alpha_ == alphas[int(np.flatnonzero(ref == ref.max()).max())]


# ------------------------------------------------------------------------------ 4. coordinates
@pytest.mark.parametrize("d", [1, 3, 7])
@pytest.mark.parametrize("gamma", [1.0, 0.3])
def test_feature_map_kernel_identity(backend, d, gamma):
    rng = np.random.default_rng(d)
    H, G = rng.normal(size=(9, d)), rng.normal(size=(6, d))
    scale = np.sqrt(gamma)
    Fh, Fg = quad.expand(H, scale), quad.expand(G, scale)
    assert Fh.shape == (9, quad.n_features(d))
    assert_rel(Fh @ Fg.T, explicit_kernel(H, G, gamma), 1e-13, "expand kernel")
    assert_rel(Fh, sk_features(H, np.zeros(d), gamma), 1e-14, "expand vs PolynomialFeatures")
    be = get_backend(backend)
    shift = rng.normal(size=d)
    for dtype in (np.float64, np.float32):
        Xs = (H + shift).astype(dtype)
        Fb = be.expand_quadratic(Xs, shift, scale)
        U = Xs.astype(np.float64) - shift
        assert Fb.shape == (9, quad.n_features(d)) and Fb.dtype == np.float64
        assert_rel(Fb, quad.expand(U, scale), 1e-14, f"backend expand {dtype.__name__}")
        Fc = be.expand_quadratic((G + shift).astype(dtype), shift, scale)
        V = (G + shift).astype(dtype).astype(np.float64) - shift
        assert_rel(Fb @ Fc.T, explicit_kernel(U, V, gamma), 1e-12, "backend kernel")
    # the pair bookkeeping
    assert quad.input_dim(quad.n_features(d)) == d
    with pytest.raises(ValueError):
        quad.input_dim(quad.n_features(d) + 1)


def predict_from_coefficients(Q, w, c, Xp):
    Q3 = Q if Q.ndim == 3 else Q[None]
    W2 = np.atleast_2d(w)
    out = np.einsum("ni,tij,nj->nt", Xp, Q3, Xp) + Xp @ W2.T + np.atleast_1d(c)
    return out


@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("k", [None, 1, 3], ids=["y1d", "k1", "k3"])
def test_coefficients_reproduce_predict(backend, solver, fit_intercept, k):
    n, d = (40, 6) if solver == "dual" else (90, 6)
    X, y = make_quad(13, n, d, k, offset=4.0)
    probe = QuadraticProbe(fit_intercept=fit_intercept, solver=solver, backend=backend).fit(X, y)
    Q, w, c = probe.quadratic_, probe.linear_, probe.intercept_
    if k is None:
        assert Q.shape == (d, d) and w.shape == (d,) and isinstance(c, float)
    else:
        assert Q.shape == (k, d, d) and w.shape == (k, d) and c.shape == (k,)
    assert_rel(Q, np.swapaxes(Q, -1, -2), 1e-13, "quadratic_ symmetric")
    X_new = make_quad(14, 25, d, offset=4.0)[0]
    for Xp in (X, X_new):
        ref = predict_from_coefficients(Q, w, c, Xp)
        pred = as2d(probe.predict(Xp))
        assert_rel(pred, ref, 1e-9, "h^T Q h + w.h + c")
    with pytest.raises(AttributeError, match="quadratic_"):
        probe.coef_  # noqa: B018
    # the fitted attributes are copies: mutating them does not change the probe
    before = probe.predict(X_new)
    probe.quadratic_[...] = 0.0
    np.testing.assert_array_equal(probe.predict(X_new), before)


@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_classifier_coefficients_reproduce_decision(backend, solver, n_classes):
    X, y = make_quad_classes(17, 45, 5, n_classes)
    clf = QuadraticProbeClassifier(solver=solver, backend=backend).fit(X, y)
    Q, w, c = clf.quadratic_, clf.linear_, clf.intercept_
    kk = 1 if n_classes == 2 else n_classes
    assert Q.shape == (kk, 5, 5) and w.shape == (kk, 5) and np.shape(c) == (kk,)
    assert_rel(Q, np.swapaxes(Q, -1, -2), 1e-13, "quadratic_ symmetric")
    X_new = make_quad_classes(18, 20, 5, n_classes)[0]
    ref = predict_from_coefficients(Q, w, c, X_new)
    assert_rel(as2d(clf.decision_function(X_new)), ref, 1e-9, "decision from coefficients")
    proba = clf.predict_proba(X_new)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[np.argmax(proba, axis=1)], clf.predict(X_new))


def test_probe_is_the_ridge_solution_in_feature_space(backend):
    """coef_to_quadratic inverts the feature map: Q and w are the Ridge coefficients of the
    expanded features mapped back (centred coordinates: f = u^T Q u + w.u + b)."""
    X, y = make_quad(19, 70, 4)
    gamma, alpha = 0.4, 0.9
    probe = QuadraticProbe(alphas=[alpha], gamma=gamma, solver="primal", backend=backend)
    probe.fit(X, y)
    mu = X.mean(axis=0)
    ref = Ridge(alpha=alpha, solver="svd").fit(sk_features(X, mu, gamma), y)
    Q, w = quad.coef_to_quadratic(ref.coef_[:, None], 4, np.sqrt(gamma))
    # back to input coordinates: u^T Q u + w.u + b with u = h - mu
    Qh = Q[0]
    wh = w[:, 0] - 2.0 * Qh @ mu
    ch = ref.intercept_ - w[:, 0] @ mu + mu @ Qh @ mu
    assert_rel(probe.quadratic_, Qh, RTOL, "quadratic_")
    assert_rel(probe.linear_, wh, RTOL, "linear_")
    assert probe.intercept_ == pytest.approx(ch, rel=RTOL)


def test_rescaling_inputs_with_default_gamma_is_invariant(backend):
    """Default gamma = 1/mean||h - mu||^2 makes the probe invariant to h -> s h (with the
    default, scale-relative alpha grid)."""
    X, y = make_quad(23, 60, 5)
    for solver in ("primal", "dual"):
        a = QuadraticProbe(solver=solver, backend=backend).fit(X, y)
        b = QuadraticProbe(solver=solver, backend=backend).fit(X * 1000.0, y)
        assert b.gamma_ == pytest.approx(a.gamma_ / 1e6, rel=1e-10)
        assert_rel(b.predict(X * 1000.0), a.predict(X), 1e-8, f"scale invariance {solver}")

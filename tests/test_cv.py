"""Alpha selection: LOO vs scikit-learn RidgeCV, GCV vs a from-scratch numpy GCV, K-fold and
classifier scores vs explicit refitting loops."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_rel, make_classification, make_regression
from shallowprobes import LinearProbe, LinearProbeClassifier
from sklearn.linear_model import LinearRegression, Ridge, RidgeCV
from sklearn.metrics import roc_auc_score

SHAPES = [(40, 120), (100, 100), (60, 59), (500, 20)]


def _scale(X, fit_intercept=True):
    Xc = X - X.mean(axis=0) if fit_intercept else X
    return float(np.sum(Xc * Xc)) / X.shape[1]


def _grid(X, lo=-3.0, hi=3.0, num=13, fit_intercept=True):
    return np.logspace(lo, hi, num) * _scale(X, fit_intercept)


# ------------------------------------------------------------------------------ references
def gcv_reference_solve(X, Y, alphas, fit_intercept):
    """GCV written plainly: explicit solve for the coefficients and the hat matrix, per alpha.

    GCV(alpha) = n * RSS / (n - tr(H))^2 with tr(H) counting +1 for the intercept.
    Returns -GCV, shape (A, k).
    """
    n, d = X.shape
    if fit_intercept:
        Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    else:
        Xc, Yc = X, Y
    out = []
    for alpha in alphas:
        G = Xc.T @ Xc + alpha * np.eye(d)
        W = np.linalg.solve(G, Xc.T @ Yc)
        H = Xc @ np.linalg.solve(G, Xc.T)
        rss = np.sum((Yc - Xc @ W) ** 2, axis=0)
        dof = np.trace(H) + (1.0 if fit_intercept else 0.0)
        out.append(n * rss / (n - dof) ** 2)
    return -np.array(out)


def gcv_reference_svd(X, Y, alphas, fit_intercept):
    """GCV from the thin SVD of the (centred) data, written without any cancellation:

    residual in the column space: alpha / (s^2 + alpha) * (U^T y), plus the part of y outside it;
    n - dof = (n - rank - intercept) + sum alpha / (s^2 + alpha). Accurate also for tiny alpha.
    """
    n, d = X.shape
    if fit_intercept:
        Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    else:
        Xc, Yc = X, Y
    U, s, _ = np.linalg.svd(Xc, full_matrices=False)
    keep = s > s[0] * max(n, d) * np.finfo(float).eps
    U, s = U[:, keep], s[keep]
    r = s.size
    P = U.T @ Yc
    outside = np.sum((Yc - U @ P) ** 2, axis=0)
    out = []
    for alpha in alphas:
        f = alpha / (s * s + alpha)
        rss = np.sum((f[:, None] * P) ** 2, axis=0) + outside
        resid_dof = (n - r - (1 if fit_intercept else 0)) + f.sum()
        out.append(n * rss / resid_dof**2)
    return -np.array(out)


def kfold_reference(X, Y, alphas, folds, fit_intercept):
    """-(sum of held-out squared errors / n) per alpha and target, refitting sklearn Ridge."""
    n = X.shape[0]
    sse = np.zeros((len(alphas), Y.shape[1]))
    for f in np.unique(folds):
        test = folds == f
        for a, alpha in enumerate(alphas):
            model = Ridge(alpha=alpha, fit_intercept=fit_intercept, solver="svd")
            model.fit(X[~test], Y[~test])
            pred = model.predict(X[test]).reshape(-1, Y.shape[1])
            sse[a] += np.sum((pred - Y[test]) ** 2, axis=0)
    return -sse / n


def heldout_decisions(X, codes, alphas, folds, fit_intercept=True):
    """Held-out decision values (A, n, k) of Ridge fitted on +-1 codes, by explicit refitting."""
    n, k = codes.shape
    out = np.empty((len(alphas), n, k))
    for f in np.unique(folds):
        test = folds == f
        for a, alpha in enumerate(alphas):
            model = Ridge(alpha=alpha, fit_intercept=fit_intercept, solver="svd")
            model.fit(X[~test], codes[~test])
            out[a, test] = model.predict(X[test]).reshape(-1, k)
    return out


def ovr_codes(y, classes):
    if classes.size == 2:
        return np.where(y == classes[1], 1.0, -1.0)[:, None]
    return np.where(y[:, None] == classes[None, :], 1.0, -1.0)


# ------------------------------------------------------------------------------ LOO vs RidgeCV
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"n{s[0]}_d{s[1]}")
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("alpha_per_target", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_loo_matches_ridgecv(backend, shape, fit_intercept, alpha_per_target, seed):
    n, d = shape
    X, Y = make_regression(seed, n, d, 3, noise=1.0)
    grid = _grid(X, -4, 3, 15, fit_intercept)
    probe = LinearProbe(
        alphas=grid,
        cv="loo",
        fit_intercept=fit_intercept,
        alpha_per_target=alpha_per_target,
        backend=backend,
    ).fit(X, Y)
    # scores of every alpha: -mean LOO squared error, from sklearn's stored LOO errors
    ref_scores = None
    for gcv_mode in (None, "svd", "eigen"):
        ref = RidgeCV(
            alphas=grid,
            fit_intercept=fit_intercept,
            alpha_per_target=alpha_per_target,
            gcv_mode=gcv_mode,
            store_cv_results=True,
        ).fit(X, Y)
        np.testing.assert_array_equal(probe.alpha_, ref.alpha_)
        ref_scores = -ref.cv_results_.mean(axis=0).T  # (A, k)
        assert_rel(probe.cv_results_["scores"], ref_scores, 1e-8, f"LOO scores ({gcv_mode})")
        assert_rel(probe.coef_, ref.coef_, 1e-8, f"coef_ at chosen alpha ({gcv_mode})")
    results = probe.cv_results_
    assert results["cv"] == "loo"
    assert results["scores"].shape == (grid.size, 3)
    np.testing.assert_array_equal(results["alphas"], grid)
    assert_rel(results["mean_scores"], ref_scores.mean(axis=1), 1e-8, "mean_scores")


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_loo_single_target_matches_ridgecv(backend, fit_intercept):
    for seed in range(3):
        X, y = make_regression(seed, 80, 30, None, noise=2.0)
        grid = _grid(X, -3, 3, 13, fit_intercept)
        probe = LinearProbe(alphas=grid, cv="loo", fit_intercept=fit_intercept, backend=backend)
        probe.fit(X, y)
        ref = RidgeCV(alphas=grid, fit_intercept=fit_intercept, store_cv_results=True).fit(X, y)
        assert probe.alpha_ == ref.alpha_
        assert isinstance(probe.alpha_, float)
        assert_rel(probe.cv_results_["scores"][:, 0], -ref.cv_results_.mean(axis=0), 1e-8, "LOO")


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("k", [None, 2], ids=["y1d", "k2"])
def test_loo_equals_explicit_loop(backend, fit_intercept, k):
    n, d = 30, 8
    X, y = make_regression(4, n, d, k, noise=1.0)
    Y = y.reshape(n, -1)
    grid = np.array([0.01, 0.3, 3.0, 30.0])
    probe = LinearProbe(alphas=grid, cv="loo", fit_intercept=fit_intercept, backend=backend)
    probe.fit(X, y)
    loo = heldout_decisions(X, Y, grid, np.arange(n), fit_intercept)
    ref = -np.mean((loo - Y[None]) ** 2, axis=1)
    assert_rel(probe.cv_results_["scores"], ref, 1e-9, "LOO vs explicit loop")
    assert probe.alpha_ == grid[np.argmax(ref.mean(axis=1))]


def test_loo_alpha_zero_full_rank_equals_linear_regression_loop(backend):
    n, d = 40, 6
    X, y = make_regression(2, n, d, None, noise=1.0)
    probe = LinearProbe(alphas=[0.0, 5.0], cv="loo", backend=backend).fit(X, y)
    errs = []
    for i in range(n):
        keep = np.arange(n) != i
        model = LinearRegression().fit(X[keep], y[keep])
        errs.append((model.predict(X[i : i + 1])[0] - y[i]) ** 2)
    assert_rel(probe.cv_results_["scores"][0, 0], -np.mean(errs), 1e-9, "LOO at alpha=0")


# ------------------------------------------------------------------------------ GCV
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"n{s[0]}_d{s[1]}")
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("alpha_per_target", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_gcv_matches_numpy_reference(backend, shape, fit_intercept, alpha_per_target, seed):
    n, d = shape
    X, Y = make_regression(seed, n, d, 3, noise=1.0)
    grid = _grid(X, -3, 3, 13, fit_intercept)
    probe = LinearProbe(
        alphas=grid,
        cv="gcv",
        fit_intercept=fit_intercept,
        alpha_per_target=alpha_per_target,
        backend=backend,
    ).fit(X, Y)
    ref = gcv_reference_solve(X, Y, grid, fit_intercept)
    scores = probe.cv_results_["scores"]
    assert probe.cv_results_["cv"] == "gcv"
    np.testing.assert_allclose(scores, ref, rtol=1e-8, atol=0)
    np.testing.assert_allclose(probe.cv_results_["mean_scores"], ref.mean(axis=1), rtol=1e-8)
    if alpha_per_target:
        np.testing.assert_array_equal(probe.alpha_, grid[np.argmax(ref, axis=0)])
        np.testing.assert_allclose(probe.best_score_, ref.max(axis=0), rtol=1e-8)
    else:
        assert probe.alpha_ == grid[np.argmax(ref.mean(axis=1))]
        np.testing.assert_allclose(probe.best_score_, ref.mean(axis=1).max(), rtol=1e-8)
    # the coefficients are those of Ridge at the chosen alpha(s)
    chosen = np.broadcast_to(probe.alpha_, (3,))
    for t in range(3):
        ref_model = Ridge(alpha=chosen[t], fit_intercept=fit_intercept, solver="svd")
        ref_model.fit(X, Y[:, t])
        assert_rel(probe.coef_[t], ref_model.coef_, 1e-8, f"coef_ target {t}")


def test_gcv_references_agree():
    """The two independent GCV references agree with each other (sanity of the references)."""
    for n, d in SHAPES:
        for fit_intercept in (True, False):
            X, Y = make_regression(3, n, d, 2)
            grid = _grid(X, -3, 3, 7, fit_intercept)
            a = gcv_reference_solve(X, Y, grid, fit_intercept)
            b = gcv_reference_svd(X, Y, grid, fit_intercept)
            np.testing.assert_allclose(a, b, rtol=1e-8)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gcv_accurate_for_small_alphas_when_n_less_than_d(backend, fit_intercept, seed):
    """With n < d and small alpha the fit nearly interpolates: RSS and n - dof are both tiny.
    Their ratio is still well defined (and smooth in alpha); the scores must not lose it to
    cancellation (e.g. RSS computed as ||y||^2 - explained). The bottom of the default grid is
    1e-6 times the mean eigenvalue, so this range is exercised by default."""
    X, Y = make_regression(seed, 20, 50, 2, noise=0.5)
    grid = _grid(X, -10, 0, 6, fit_intercept)
    probe = LinearProbe(alphas=grid, cv="gcv", fit_intercept=fit_intercept, backend=backend)
    probe.fit(X, Y)
    ref = gcv_reference_svd(X, Y, grid, fit_intercept)
    np.testing.assert_allclose(probe.cv_results_["scores"], ref, rtol=1e-6, atol=0)
    assert probe.alpha_ == grid[np.argmax(ref.mean(axis=1))]


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gcv_picks_same_alpha_as_loo_when_n_much_larger_than_d(backend, fit_intercept, seed):
    X, y = make_regression(seed, 2000, 10, None, noise=3.0)
    grid = np.logspace(-2, 4, 13)
    probe = LinearProbe(alphas=grid, cv="gcv", fit_intercept=fit_intercept, backend=backend)
    probe.fit(X, y)
    ref = RidgeCV(alphas=grid, fit_intercept=fit_intercept).fit(X, y)
    assert probe.alpha_ == ref.alpha_


def test_default_grid_is_relative_to_data_scale(backend):
    X, y = make_regression(0, 200, 10, None)
    probe = LinearProbe(backend=backend).fit(X, y)
    expected = np.logspace(-6, 3, 19) * _scale(X)
    np.testing.assert_allclose(probe.alphas_, expected, rtol=1e-10)
    scaled = LinearProbe(backend=backend).fit(10.0 * X, y)
    np.testing.assert_allclose(scaled.alphas_, 100.0 * expected, rtol=1e-10)
    # the chosen model is scale-equivariant: same predictions on rescaled inputs
    assert_rel(scaled.predict(10.0 * X), probe.predict(X), 1e-8, "scale equivariance")
    assert probe.alpha_ in probe.alphas_


# ------------------------------------------------------------------------------ K-fold
@pytest.mark.parametrize("shape", [(60, 20), (40, 70), (300, 10)], ids=lambda s: f"n{s[0]}_d{s[1]}")
@pytest.mark.parametrize("K", [2, 5])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_kfold_scores_equal_explicit_loop(backend, shape, K, fit_intercept):
    n, d = shape
    X, Y = make_regression(K + n, n, d, 2, noise=1.0)
    grid = _grid(X, -3, 3, 7, fit_intercept)
    probe = LinearProbe(alphas=grid, cv=K, fit_intercept=fit_intercept, backend=backend)
    probe.fit(X, Y)
    ref = kfold_reference(X, Y, grid, np.arange(n) % K, fit_intercept)
    assert probe.cv_results_["cv"] == str(K)
    assert_rel(probe.cv_results_["scores"], ref, 1e-7, "K-fold scores")
    np.testing.assert_allclose(probe.cv_results_["scores"], ref, rtol=1e-7)
    assert probe.alpha_ == grid[np.argmax(ref.mean(axis=1))]


@pytest.mark.parametrize("seed", [0, 1])
def test_kfold_explicit_fold_ids(backend, seed):
    n, d, K = 90, 15, 4
    X, y = make_regression(seed, n, d, None, noise=1.0)
    rng = np.random.default_rng(seed)
    folds = rng.permutation(np.arange(n) % K)
    grid = _grid(X, -3, 3, 7)
    probe = LinearProbe(alphas=grid, cv=K, backend=backend).fit(X, y, fold_ids=folds)
    ref = kfold_reference(X, y[:, None], grid, folds, True)
    np.testing.assert_allclose(probe.cv_results_["scores"], ref, rtol=1e-7)
    # a different assignment gives different scores (fold_ids is really used)
    default = LinearProbe(alphas=grid, cv=K, backend=backend).fit(X, y)
    assert not np.allclose(default.cv_results_["scores"], ref, rtol=1e-7)


def test_kfold_with_large_offset(backend):
    n, d, K = 120, 10, 3
    X, y = make_regression(8, n, d, 2, noise=1.0)
    X = X + 1e4
    grid = np.logspace(-2, 3, 6)
    probe = LinearProbe(alphas=grid, cv=K, backend=backend).fit(X, y)
    ref = kfold_reference(X - 1e4, y, grid, np.arange(n) % K, True)
    np.testing.assert_allclose(probe.cv_results_["scores"], ref, rtol=1e-7)


# ------------------------------------------------------------------------------ classifier
def _clf_reference(X, y, grid, folds, scoring):
    classes = np.unique(y)
    codes = ovr_codes(y, classes)
    dec = heldout_decisions(X, codes, grid, folds)
    A, _, k = dec.shape
    per = np.empty((A, k))
    joint = np.empty(A)
    for a in range(A):
        for t in range(k):
            if scoring == "accuracy":
                per[a, t] = np.mean((dec[a, :, t] > 0) == (codes[:, t] > 0))
            else:
                per[a, t] = roc_auc_score(codes[:, t] > 0, dec[a, :, t])
        if scoring == "accuracy" and k > 1:
            joint[a] = np.mean(classes[np.argmax(dec[a], axis=1)] == y)
        else:
            joint[a] = per[a].mean()
    return per, joint


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("scoring", ["accuracy", "roc_auc"])
@pytest.mark.parametrize("cv", ["loo", 4])
@pytest.mark.parametrize("d", [6, 70])  # 70 > n: the dual route (solver="auto")
def test_classifier_cv_scores_equal_explicit_loop(backend, n_classes, scoring, cv, d):
    n = 36
    X, y = make_classification(n_classes + 10, n, d, n_classes, sep=0.6)
    grid = np.array([0.01, 1.0, 10.0, 100.0]) * (1.0 if d < n else 30.0)
    clf = LinearProbeClassifier(alphas=grid, cv=cv, scoring=scoring, backend=backend).fit(X, y)
    assert clf.solver_ == ("dual" if d > n else "primal")
    folds = np.arange(n) if cv == "loo" else np.arange(n) % cv
    per, joint = _clf_reference(X, y, grid, folds, scoring)
    res = clf.cv_results_
    assert res["scoring"] == scoring
    np.testing.assert_allclose(res["scores"], per, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res["mean_scores"], joint, rtol=1e-12, atol=1e-12)
    # exact ties go to the larger alpha (more regularisation)
    assert clf.alpha_ == grid[int(np.flatnonzero(joint == joint.max()).max())]
    assert clf.best_score_ == pytest.approx(joint.max(), abs=1e-12)


def test_classifier_squared_error_loo_equals_ridgecv_on_codes(backend):
    X, y = make_classification(5, 80, 12, 3, sep=0.8)
    grid = np.logspace(-2, 3, 11)
    clf = LinearProbeClassifier(alphas=grid, cv="loo", backend=backend).fit(X, y)
    codes = ovr_codes(y, np.unique(y))
    ref = RidgeCV(alphas=grid, store_cv_results=True).fit(X, codes)
    assert clf.alpha_ == ref.alpha_
    assert_rel(clf.cv_results_["scores"], -ref.cv_results_.mean(axis=0).T, 1e-8, "codes LOO")


def test_loo_and_kfold_with_many_rows(backend):
    """More rows than the internal block size (4096) for LOO predictions."""
    X, y = make_regression(21, 9000, 5, None, noise=2.0)
    grid = np.logspace(0, 5, 6)
    probe = LinearProbe(alphas=grid, cv="loo", backend=backend).fit(X, y)
    ref = RidgeCV(alphas=grid, store_cv_results=True).fit(X, y)
    assert_rel(probe.cv_results_["scores"][:, 0], -ref.cv_results_.mean(axis=0), 1e-8, "LOO")
    kf = LinearProbe(alphas=grid, cv=3, backend=backend).fit(X, y)
    ref_kf = kfold_reference(X, y[:, None], grid, np.arange(9000) % 3, True)
    np.testing.assert_allclose(kf.cv_results_["scores"], ref_kf, rtol=1e-7)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_kfold_with_n_folds_equals_loo(backend, fit_intercept):
    X, Y = make_regression(22, 25, 4, 2, noise=1.0)
    grid = np.array([0.01, 0.1, 1.0, 10.0, 100.0])
    kf = LinearProbe(alphas=grid, cv=25, fit_intercept=fit_intercept, backend=backend).fit(X, Y)
    loo = LinearProbe(alphas=grid, cv="loo", fit_intercept=fit_intercept, backend=backend)
    loo.fit(X, Y)
    np.testing.assert_allclose(kf.cv_results_["scores"], loo.cv_results_["scores"], rtol=1e-8)
    assert kf.alpha_ == loo.alpha_


@pytest.mark.parametrize("cv", ["gcv", "loo", 3])
@pytest.mark.parametrize("alpha_per_target", [False, True])
def test_unsorted_alpha_grid_is_permutation_equivariant(backend, cv, alpha_per_target):
    X, Y = make_regression(23, 60, 8, 3, noise=1.0)
    grid = np.array([10.0, 0.1, 300.0, 1.0, 30.0])
    order = np.argsort(grid)
    kwargs = {"cv": cv, "alpha_per_target": alpha_per_target, "backend": backend}
    a = LinearProbe(alphas=grid, **kwargs).fit(X, Y)
    b = LinearProbe(alphas=grid[order], **kwargs).fit(X, Y)
    np.testing.assert_array_equal(a.alphas_, grid)  # the grid is reported as given
    np.testing.assert_allclose(a.cv_results_["scores"][order], b.cv_results_["scores"], rtol=1e-12)
    np.testing.assert_array_equal(a.alpha_, b.alpha_)
    assert_rel(a.coef_, b.coef_, 1e-12, "coef_")


@pytest.mark.parametrize("entries", [1, 2 * 3 * 8 * 3])  # 1 or 2 alphas (3 folds, d = 8, k = 3)
def test_kfold_scores_with_the_fold_coefficients_in_chunks(backend, monkeypatch, entries):
    """K-fold holds the folds' coefficients for a chunk of alphas at a time
    (`KFOLD_COEF_ENTRIES`): with chunks of one or two alphas (the last one shorter) the scores
    are still those of refitting, for squared error and for decision-value scoring."""
    import shallowprobes.probes.base as probe_base

    monkeypatch.setattr(probe_base, "KFOLD_COEF_ENTRIES", entries)
    n, d, K = 90, 8, 3
    X, Y = make_regression(31, n, d, 3, noise=1.0)
    grid = _grid(X, -3, 3, 7)
    probe = LinearProbe(alphas=grid, cv=K, solver="primal", backend=backend).fit(X, Y)
    ref = kfold_reference(X, Y, grid, np.arange(n) % K, True)
    np.testing.assert_allclose(probe.cv_results_["scores"], ref, rtol=1e-7)
    Xc, y = make_classification(32, n, d, 3, sep=0.8)
    clf = LinearProbeClassifier(alphas=grid, cv=K, scoring="accuracy", solver="primal",
                                backend=backend).fit(Xc, y)  # fmt: skip
    per, joint = _clf_reference(Xc, y, grid, np.arange(n) % K, "accuracy")
    np.testing.assert_allclose(clf.cv_results_["scores"], per, atol=1e-12)
    np.testing.assert_allclose(clf.cv_results_["mean_scores"], joint, atol=1e-12)

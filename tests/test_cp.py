"""Low-rank (CP) degree-2 probes: CPProbe, CPProbeClassifier.

The fitted (Q, w, c) reproduce the predictions; exact low-rank targets are recovered; the
objective J of the module docstring never increases across alternations, pairs are rebalanced
and the stopping rule is the documented one; with a fixed alpha the fit equals an independent
alternating ridge built on scikit-learn's Ridge; multi-target / multiclass, determinism, bad
input and the scikit-learn estimator checks.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from conftest import assert_rel, rel_err
from shallowprobes import CPProbe, CPProbeClassifier, QuadraticProbeClassifier
from shallowprobes.probes.cp import ConvergenceWarning
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.utils.estimator_checks import parametrize_with_checks


# ------------------------------------------------------------------------------ helpers
def make_lowrank(seed, n, d, rank, noise=0.05, offset=2.0, linear=0.5, X=None):
    """y = sum_r (a_r . z)(b_r . z) + linear * (c . z) + 0.7 + noise, z = h - mean (h with an
    offset mean, so the probe's centring matters). The 2 * rank directions a_r, b_r are
    orthonormal, so the rank terms are uncorrelated with equal variance (a rank-1 probe can
    capture only about half of a rank-2 target's quadratic part). The noise is `noise` times
    std(signal). Pass X to draw a new target for given rows."""
    rng = np.random.default_rng(seed)
    H = rng.standard_normal((n, d)) + offset * rng.standard_normal(d) if X is None else X
    n, d = H.shape
    dirs, _ = np.linalg.qr(rng.standard_normal((d, 2 * rank)))
    A, B = dirs[:, :rank].T, dirs[:, rank:].T
    c = rng.standard_normal(d) / np.sqrt(d)
    Z = H - H.mean(axis=0)
    signal = np.einsum("nr,nr->n", Z @ A.T, Z @ B.T) + linear * (Z @ c) + 0.7
    return H, signal + noise * signal.std() * rng.standard_normal(n)


def split(X, y, n_test):
    return X[n_test:], y[n_test:], X[:n_test], y[:n_test]


def make_spread_classes(seed, n, d, n_classes=3):
    """Classes that differ mainly in their spread within a random plane (and a little in
    mean): a quadratic problem whose Q has rank 2."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    scales = np.ones((n_classes, d))
    scales[:, :2] = (1.0 + 0.8 * np.arange(n_classes))[:, None]
    means = rng.normal(size=(n_classes, d)) * 0.3
    R, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = (means[y] + rng.normal(size=(n, d)) * scales[y]) @ R.T + 3.0
    return X, y


def quietly(est, X, y, **kwargs):
    """fit without ConvergenceWarnings (for fits stopped early on purpose)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kwargs)


def centred_linear(est):
    """The linear part w of f = sum_r (u_r . z)(v_r . z) + w . z + b in the centred coordinates
    z = h - centre_, from public attributes only: linear_ = w - 2 Q mu  =>  w = linear_ + 2 Q mu.
    Shape (n_targets, d)."""
    Q = est.quadratic_
    lin = est.linear_
    if Q.ndim == 2:
        Q, lin = Q[None], lin[None]
    return lin + 2.0 * np.einsum("tij,j->ti", Q, est.centre_)


def objective(est, X, y):
    """J = ||y - f||^2 + alpha (||U||^2 + ||V||^2 + ||w||^2) of a single-target CPProbe, from
    public attributes (f the training decision values, alpha_ the held alpha)."""
    U, V = est.factors_
    w = centred_linear(est)
    f = est.predict(X)
    return float(np.sum((y - f) ** 2)) + est.alpha_ * float(
        np.sum(U * U) + np.sum(V * V) + np.sum(w * w)
    )


def decision_from_coefficients(est, X):
    """(n, k) h^T Q h + linear_ . h + intercept_ from the public input-coordinate attributes."""
    Q = est.quadratic_
    lin = np.atleast_2d(est.linear_)
    c = np.atleast_1d(est.intercept_)
    if Q.ndim == 2:
        Q = Q[None]
    return np.einsum("ni,tij,nj->nt", X, Q, X) + X @ lin.T + c


# ------------------------------------------------------------------------------ coefficients
@pytest.mark.parametrize("rank", [1, 3])
def test_coefficients_reproduce_predict_regression(backend, rank):
    X, y = make_lowrank(0, 400, 8, 2)
    est = CPProbe(rank=rank, backend=backend).fit(X, y)
    Q = est.quadratic_
    assert Q.shape == (8, 8) and est.linear_.shape == (8,)
    assert isinstance(est.intercept_, float)
    np.testing.assert_allclose(Q, Q.T, rtol=0, atol=1e-14 * np.abs(Q).max())
    U, V = est.factors_
    assert U.shape == V.shape == (1, rank, 8)
    np.testing.assert_allclose(
        Q, 0.5 * (U[0].T @ V[0] + V[0].T @ U[0]), rtol=1e-12, atol=1e-14 * np.abs(Q).max()
    )
    X_new = np.random.default_rng(1).normal(size=(50, 8)) * 2 + 1
    assert_rel(decision_from_coefficients(est, X_new)[:, 0], est.predict(X_new), 1e-9, "Q,w,c")
    # and the factored form about centre_ gives the same values
    Z = X_new - est.centre_
    w = centred_linear(est)[0]
    f = np.einsum("nr,nr->n", Z @ U[0].T, Z @ V[0].T) + Z @ w
    np.testing.assert_allclose(f - est.predict(X_new), (f - est.predict(X_new)).mean(), atol=1e-9)
    assert_rel(est.centre_, X.mean(axis=0), 1e-12, "centre_ is the training mean")


def test_coefficients_reproduce_decision_classifier(backend):
    X, y = make_spread_classes(2, 450, 6, 3)
    est = CPProbeClassifier(rank=2, backend=backend).fit(X, y)
    Q = est.quadratic_
    assert Q.shape == (3, 6, 6)
    assert est.linear_.shape == (3, 6) and np.shape(est.intercept_) == (3,)
    np.testing.assert_allclose(Q, np.transpose(Q, (0, 2, 1)), rtol=0, atol=1e-14 * abs(Q).max())
    U, V = est.factors_
    assert U.shape == V.shape == (3, 2, 6)
    assert_rel(decision_from_coefficients(est, X), est.decision_function(X), 1e-9, "3 classes")

    yb = (y == 2).astype(int)
    est = CPProbeClassifier(rank=2, backend=backend).fit(X, yb)
    assert est.quadratic_.shape == (1, 6, 6)
    assert est.factors_[0].shape == (1, 2, 6)
    assert_rel(decision_from_coefficients(est, X)[:, 0], est.decision_function(X), 1e-9, "binary")


def test_no_intercept_coefficients():
    X, y = make_lowrank(3, 300, 6, 1, offset=0.0)
    est = CPProbe(rank=1, fit_intercept=False).fit(X, y - 0.7)
    np.testing.assert_array_equal(est.centre_, np.zeros(6))
    assert est.intercept_ == 0.0
    assert_rel(decision_from_coefficients(est, X)[:, 0], est.predict(X), 1e-9, "no intercept")


# ------------------------------------------------------------------------------ recovery
@pytest.mark.parametrize("d", [10, 30])
def test_rank1_target_is_recovered(backend, d):
    X, y = make_lowrank(d, 2000, d, 1)
    Xtr, ytr, Xte, yte = split(X, y, 500)
    est = CPProbe(rank=1, backend=backend).fit(Xtr, ytr)
    assert est.converged_.all()
    # noise is 5% of the signal's std, so the ceiling is R^2 ~ 0.9975
    assert est.score(Xte, yte) >= 0.99


def test_rank2_target_needs_rank2(backend):
    X, y = make_lowrank(7, 2000, 20, 2)
    Xtr, ytr, Xte, yte = split(X, y, 500)
    r2 = {R: CPProbe(rank=R, backend=backend).fit(Xtr, ytr).score(Xte, yte) for R in (1, 2)}
    assert r2[2] >= 0.99, r2
    # rank 1 captures at most about half of the (dominant) quadratic part
    assert r2[1] <= 0.8, r2


# ------------------------------------------------------------------------------ objective
@pytest.mark.parametrize("init", ["moments", "random"])
def test_objective_is_non_increasing(init):
    """J of the module docstring, evaluated after 1, 2, ..., 12 alternations (refits with
    max_iter = t, tol = 0 and the same init / random_state, which replay the same first t
    alternations), never increases."""
    X, y = make_lowrank(5, 1200, 15, 2, noise=0.3)
    Js = []
    for t in range(1, 13):
        est = quietly(CPProbe(rank=2, max_iter=t, tol=0.0, init=init, random_state=0), X, y)
        assert est.n_iter_[0] == t
        Js.append(objective(est, X, y))
    Js = np.array(Js)
    steps = np.diff(Js)
    assert np.all(steps <= 1e-10 * Js[0]), steps / Js[0]
    assert Js[-1] < Js[0]  # and it genuinely moves

    # the public formula for w agrees with the private solution (w in centred coordinates)
    sol = est._solution()
    assert_rel(centred_linear(est)[0], sol.coef[:, 0], 1e-9, "w from linear_ + 2 Q mu")


def test_stopping_rule_is_the_documented_one():
    """Converged at the first t with J_{t-1} - J_t <= tol * J_t (J_0 = inf)."""
    X, y = make_lowrank(11, 800, 10, 2, noise=0.2)
    tol = 1e-4
    # the alternating-ridge rule (init="moments"; the default L-BFGS polish has its own rule,
    # tests/test_wide_degree2.py)
    est = CPProbe(rank=2, tol=tol, max_iter=200, init="moments").fit(X, y)
    assert est.converged_.all()
    T = int(est.n_iter_[0])
    assert 2 <= T < 200
    Js = [np.inf]
    for t in range(1, T + 1):
        Js.append(objective(quietly(CPProbe(rank=2, tol=0.0, max_iter=t, init="moments"), X, y),
                            X, y))
    for t in range(1, T):
        assert Js[t - 1] - Js[t] > tol * Js[t], (t, Js)
    assert Js[T - 1] - Js[T] <= tol * Js[T]
    # the stopped fit is the fit after T alternations
    assert objective(est, X, y) == pytest.approx(Js[T], rel=1e-12)


def test_factor_pairs_are_rebalanced(backend):
    X, y = make_spread_classes(4, 400, 7, 3)
    for est in (
        CPProbe(rank=3, backend=backend).fit(X, np.column_stack([X[:, 0] * X[:, 1], y])),
        CPProbeClassifier(rank=2, backend=backend).fit(X, y),
    ):
        U, V = est.factors_
        nu, nv = np.linalg.norm(U, axis=2), np.linalg.norm(V, axis=2)
        np.testing.assert_allclose(nu, nv, rtol=1e-8, atol=1e-12 * nu.max())


def test_stops_at_max_iter_with_warning():
    X, y = make_lowrank(1, 500, 8, 2, noise=0.3)
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        est = CPProbe(rank=2, max_iter=1, tol=0.0).fit(X, y)
    assert ConvergenceWarning is SkConvergenceWarning
    assert est.converged_.tolist() == [False]
    assert est.n_iter_.tolist() == [1]

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = CPProbe(rank=2, max_iter=500).fit(X, y)
    assert est.converged_.tolist() == [True]
    assert 1 < est.n_iter_[0] < 500


@pytest.mark.parametrize("cls", [CPProbe, CPProbeClassifier])
def test_convergence_warning_points_at_the_callers_fit(cls):
    """The ConvergenceWarning is attributed to the line that called fit (as scikit-learn's
    are), whichever estimator class: CPProbe.fit is one frame shallower than
    CPProbeClassifier.fit (which goes through the classifier mixin's fit)."""
    X, y = make_lowrank(1, 200, 5, 1, noise=0.3)
    target = y if cls is CPProbe else (y > np.median(y))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1  # the next line is the one the warning must name
        cls(max_iter=1, tol=0.0).fit(X, target)
    hits = [r for r in rec if issubclass(r.category, ConvergenceWarning)]
    assert len(hits) == 1
    assert (hits[0].filename, hits[0].lineno) == (__file__, line)


# ------------------------------------------------------------------------------ reference
def _reference_alternating_ridge(X, y, rank, alpha, n_iter):
    """Independent implementation of the documented algorithm (moments init scaled by
    1 / rms(z), half-steps by
    scikit-learn Ridge on [(v_r . z) z ..., z], rebalancing), with a fixed alpha."""
    Z = X - X.mean(axis=0)
    yc = y - y.mean()
    M = (Z * yc[:, None]).T @ Z
    lam, vecs = np.linalg.eigh(M)
    V = vecs[:, np.argsort(-np.abs(lam), kind="stable")[:rank]].T
    moving = (Z**2).sum(axis=0) > 0
    V = V / np.sqrt((Z[:, moving] ** 2).mean())  # unit: v.z of order one
    U = V.copy()

    def half_step(fixed):
        F = np.hstack([(Z @ f)[:, None] * Z for f in fixed] + [Z])
        ridge = Ridge(alpha=alpha, solver="svd").fit(F, y)
        d = Z.shape[1]
        return ridge.coef_[: rank * d].reshape(rank, d), ridge.coef_[rank * d :], ridge

    for _ in range(n_iter):
        U, _, _ = half_step(V)
        V, w, ridge = half_step(U)
        c = np.sqrt(np.linalg.norm(V, axis=1) / np.linalg.norm(U, axis=1))
        U, V = U * c[:, None], V / c[:, None]
    f = np.einsum("nr,nr->n", Z @ U.T, Z @ V.T) + Z @ w + ridge.intercept_
    return f, U, V


@pytest.mark.parametrize("n_iter", [1, 4])
def test_fixed_alpha_equals_reference_alternating_ridge(backend, n_iter):
    X, y = make_lowrank(9, 300, 6, 2, noise=0.3)
    alpha = 3.0
    est = quietly(CPProbe(rank=2, alphas=[alpha], max_iter=n_iter, tol=0.0, init="moments",
                          backend=backend), X, y)  # fmt: skip
    ref, U, V = _reference_alternating_ridge(X, y, 2, alpha, n_iter)
    assert est.alpha_ == alpha
    assert_rel(est.predict(X), ref, 1e-8, "decision values")
    Uh, Vh = est.factors_
    # the factors agree up to the sign of each pair (eigenvector signs are arbitrary)
    s = np.sign(np.sum(Uh[0] * U, axis=1))
    assert_rel(Uh[0] * s[:, None], U, 1e-7, "U")
    assert_rel(Vh[0] * s[:, None], V, 1e-7, "V")


def test_cv_mode_is_irrelevant_with_a_single_alpha():
    X, y = make_lowrank(2, 240, 6, 1, noise=0.3)
    # one alpha and one gamma: nothing left for cv to choose (the default gamma is a grid)
    ref = CPProbe(rank=1, alphas=[2.0], gamma="scale").fit(X, y).predict(X)
    for cv in ("loo", 3):
        est = CPProbe(rank=1, alphas=[2.0], gamma="scale", cv=cv).fit(X, y)
        assert_rel(est.predict(X), ref, 1e-9, cv)


# ------------------------------------------------------------------------------ multi-output
def test_multi_target_is_one_cp_per_column(backend):
    X, y1 = make_lowrank(12, 600, 8, 2, noise=0.1)
    _, y2 = make_lowrank(13, 600, 8, 2, noise=0.1, X=X)
    Y = np.column_stack([y1, y2])
    both = CPProbe(rank=2, backend=backend).fit(X, Y)
    assert both.predict(X).shape == (600, 2)
    assert both.quadratic_.shape == (2, 8, 8) and both.linear_.shape == (2, 8)
    assert both.factors_[0].shape == (2, 2, 8)
    assert both.n_iter_.shape == both.converged_.shape == (2,)
    assert np.shape(both.alpha_) == (2,)
    assert_rel(decision_from_coefficients(both, X), both.predict(X), 1e-9, "multi-target")
    for t in range(2):
        one = CPProbe(rank=2, backend=backend).fit(X, Y[:, t])
        assert_rel(both.predict(X)[:, t], one.predict(X), 1e-10, f"column {t}")
        np.testing.assert_allclose(both.factors_[0][t], one.factors_[0][0], rtol=1e-9, atol=1e-12)
        assert both.alpha_[t] == one.alpha_
        assert both.n_iter_[t] == one.n_iter_[0]
    assert both.score(X, Y) > 0.95


def test_multiclass_classifier(backend):
    X, y = make_spread_classes(6, 1200, 6, 3)
    labels = np.array(["a", "b", "c"])[y]
    est = CPProbeClassifier(rank=2, backend=backend).fit(X[:900], labels[:900])
    np.testing.assert_array_equal(est.classes_, ["a", "b", "c"])
    dec = est.decision_function(X[900:])
    assert dec.shape == (300, 3)
    pred = est.predict(X[900:])
    np.testing.assert_array_equal(pred, est.classes_[np.argmax(dec, axis=1)])
    proba = est.predict_proba(X[900:])
    assert proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all(proba >= 0)
    np.testing.assert_array_equal(est.classes_[np.argmax(proba, axis=1)], pred)
    # chance is 1/3; the classes' Q has rank 2, so rank 2 does as well as the exact probe
    acc = np.mean(pred == labels[900:])
    full = QuadraticProbeClassifier(backend=backend).fit(X[:900], labels[:900])
    assert acc > 0.5
    assert acc >= full.score(X[900:], labels[900:]) - 0.03


def test_binary_classifier_proba():
    X, y = make_spread_classes(8, 600, 5, 2)
    est = CPProbeClassifier(rank=1).fit(X, y)
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(np.argmax(proba, axis=1), est.predict(X))
    np.testing.assert_array_equal(est.predict(X), (est.decision_function(X) > 0).astype(int))


# ------------------------------------------------------------------------------ determinism
def test_random_init_is_deterministic_given_random_state():
    X, y = make_lowrank(14, 400, 8, 2, noise=0.3)
    a = quietly(CPProbe(init="random", random_state=3, max_iter=3, tol=0.0), X, y)
    b = quietly(CPProbe(init="random", random_state=3, max_iter=3, tol=0.0), X, y)
    c = quietly(CPProbe(init="random", random_state=4, max_iter=3, tol=0.0), X, y)
    np.testing.assert_array_equal(a.factors_[0], b.factors_[0])
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert rel_err(c.factors_[0], a.factors_[0]) > 1e-3  # the seed does matter


def test_moments_init_is_deterministic():
    X, y = make_lowrank(15, 400, 8, 2, noise=0.3)
    a = CPProbe(random_state=0).fit(X, y)
    b = CPProbe(random_state=123).fit(X, y)  # random_state is not used by moments
    np.testing.assert_array_equal(a.factors_[0], b.factors_[0])
    np.testing.assert_array_equal(a.factors_[1], b.factors_[1])
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_rank_above_d_pads_initial_factors():
    X, y = make_lowrank(16, 200, 3, 1, noise=0.3)
    est = CPProbe(rank=5, random_state=0).fit(X, y)
    assert est.factors_[0].shape == (1, 5, 3)
    assert np.isfinite(est.predict(X)).all()


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "params",
    [
        {"rank": 0}, {"rank": -1}, {"rank": 1.5}, {"rank": 2.0}, {"rank": True},
        {"rank": "2"}, {"max_iter": 0}, {"max_iter": -3}, {"max_iter": 2.5},
        {"tol": -1e-3}, {"tol": "0.1"}, {"init": "bogus"}, {"init": None},
        {"cv": 1}, {"alphas": [-1.0]},
    ],
)  # fmt: skip
@pytest.mark.parametrize("cls", [CPProbe, CPProbeClassifier])
def test_bad_parameters_raise(cls, params):
    X, y = make_spread_classes(0, 40, 3, 2)
    with pytest.raises(ValueError):
        cls(**params).fit(X, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_X_raises(backend, bad):
    X, y = make_lowrank(0, 60, 4, 1)
    X[5, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        CPProbe(backend=backend).fit(X, y)
    with pytest.raises(ValueError, match="NaN or infinity"):
        CPProbeClassifier(backend=backend).fit(X, y > y.mean())
    est = CPProbe(backend=backend).fit(np.nan_to_num(X, posinf=0.0), y)
    with pytest.raises(ValueError, match="NaN or infinity"):
        est.predict(X)


@pytest.mark.parametrize("cls", [CPProbe, CPProbeClassifier])
def test_no_partial_fit(cls):
    est = cls()
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="has no partial_fit.*fit\\(\\)"):
        est.partial_fit  # noqa: B018
    assert hasattr(cls, "partial_fit")  # the descriptor itself exists on the class


def test_wrong_n_features_at_predict():
    X, y = make_lowrank(0, 60, 4, 1)
    est = CPProbe().fit(X, y)
    with pytest.raises(ValueError, match="feature"):
        est.predict(X[:, :3])
    clf = CPProbeClassifier().fit(X, y > y.mean())
    with pytest.raises(ValueError, match="feature"):
        clf.decision_function(np.hstack([X, X[:, :1]]))


def test_no_coef_and_no_stats():
    X, y = make_lowrank(0, 60, 4, 1)
    est = CPProbe().fit(X, y)
    with pytest.raises(AttributeError, match="factors_"):
        est.coef_  # noqa: B018
    with pytest.raises(AttributeError, match="no sufficient statistics"):
        est.stats_  # noqa: B018


# ------------------------------------------------------------------------------ cv modes
def test_loo_cv_works(backend):
    X, y = make_lowrank(17, 300, 6, 1, noise=0.2)
    est = CPProbe(rank=1, cv="loo", backend=backend).fit(X, y)
    assert est.cv_results_["cv"] == "loo"
    assert est.score(X, y) > 0.9
    clf = CPProbeClassifier(rank=1, cv="loo", scoring="accuracy", backend=backend)
    clf.fit(X, y > np.median(y))
    assert clf.score(X, y > np.median(y)) > 0.85


def test_kfold_with_fold_ids(backend):
    X, y = make_lowrank(18, 300, 6, 1, noise=0.2)
    default = CPProbe(rank=1, cv=3, backend=backend).fit(X, y)
    same = CPProbe(rank=1, cv=3, backend=backend).fit(X, y, fold_ids=np.arange(300) % 3)
    assert_rel(same.predict(X), default.predict(X), 1e-12, "fold_ids = default folds")
    blocks = np.repeat(np.arange(3), 100)
    est = CPProbe(rank=1, cv=3, backend=backend).fit(X, y, fold_ids=blocks)
    assert est.cv_results_["cv"] == "3"
    assert est.score(X, y) > 0.9
    with pytest.raises(ValueError):
        CPProbe(rank=1, cv=3).fit(X, y, fold_ids=np.arange(300) % 4)
    with pytest.raises(ValueError, match="fold_ids"):
        CPProbe(rank=1).fit(X, y, fold_ids=blocks)
    clf = CPProbeClassifier(rank=1, cv=3, scoring="roc_auc", backend=backend)
    clf.fit(X, y > np.median(y), fold_ids=blocks)
    assert clf.score(X, y > np.median(y)) > 0.8


# ------------------------------------------------------------------------------ scikit-learn
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(
    [CPProbe(), CPProbeClassifier()],
    expected_failed_checks=lambda est: {},
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)

"""GCV through one tridiagonal reduction (the Rust backend): no eigenvectors.

`_core.tridiagonal_gcv` / `_core.tridiagonal_eigenvalues` against plain numpy (eigvalsh, solves
and the residuals of the rows themselves); the route `paths.GcvScorer` takes (tridiagonal for a
Gram whose spectrum would clamp nothing, the spectrum for rank-deficient Grams, a grid with
alpha <= 0 and the other backends); GCV fits through it against the numpy backend, against the
GCV formula evaluated from explicit refits, and against scikit-learn's `RidgeCV`.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_rel, make_classification, make_regression, requires_rust
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shallowprobes import LinearProbe, LinearProbeClassifier

pytestmark = requires_rust


def _rows(seed: int, n: int, d: int, k: int, offset: float = 2.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * (0.5 + rng.random(d)) + offset
    Y = X[:, : min(d, k)].sum(axis=1, keepdims=True) + rng.standard_normal((n, k))
    return X - X.mean(axis=0), Y - Y.mean(axis=0)


# ------------------------------------------------------------------------ the core functions
@pytest.mark.parametrize("d, k", [(1, 1), (2, 3), (9, 1), (64, 4), (300, 2)])
@pytest.mark.parametrize("seed", [0, 1])
def test_gcv_quantities_match_residuals_of_the_rows(d, k, seed):
    from shallowprobes.backends import rust_kernels

    n = 2 * d + 15
    Xc, Yc = _rows(seed, n, d, k)
    G, C = Xc.T @ Xc, Xc.T @ Yc
    alphas = np.logspace(-5, 3, 7) * np.trace(G) / d
    packed, factors, usable = rust_kernels.tridiagonalize(G[None])
    assert usable == [True]
    explained, rss = rust_kernels.tridiagonal_gcv(packed[0], factors[0], C, alphas)
    assert explained.shape == (k,) and rss.shape == (alphas.size, k)
    # outside the span: ||Yc||^2 - c^T G^-1 c is the least-squares residual of the rows
    ls = np.linalg.lstsq(Xc, Yc, rcond=None)[0]
    outside = np.sum((Yc - Xc @ ls) ** 2, axis=0)
    assert_rel(np.sum(Yc**2, axis=0) - explained, outside, 1e-7, "outside the span")
    for a, alpha in enumerate(alphas):
        W = np.linalg.solve(G + alpha * np.eye(d), C)
        total = np.sum((Yc - Xc @ W) ** 2, axis=0)
        assert_rel(outside + rss[a], total, 1e-9, f"alpha {alpha:.1e}")


@pytest.mark.parametrize("d", [1, 2, 5, 64, 257])
def test_eigenvalues_of_the_reduction_match_eigvalsh(d):
    from shallowprobes.backends import rust_kernels

    Xc, _ = _rows(d, 3 * d + 4, d, 1)
    # graded columns: eigenvalues over many decades
    G = (Xc * np.logspace(0, 4, d)).T @ (Xc * np.logspace(0, 4, d))
    packed, factors, _ = rust_kernels.tridiagonalize(G[None])
    lam = rust_kernels.tridiagonal_eigenvalues(packed[0], factors[0])
    want = np.linalg.eigvalsh(G)
    assert np.all(np.diff(lam) >= 0)
    np.testing.assert_allclose(lam, want, rtol=0, atol=1e-12 * want[-1])


def test_core_rejects_bad_alphas_shapes_and_rank_deficient_grams():
    from shallowprobes.backends import rust_kernels

    Xc, Yc = _rows(3, 40, 6, 2)
    G, C = Xc.T @ Xc, Xc.T @ Yc
    packed, factors, _ = rust_kernels.tridiagonalize(G[None])
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="alphas > 0"):
            rust_kernels.tridiagonal_gcv(packed[0], factors[0], C, np.array([1.0, bad]))
    with pytest.raises(ValueError, match="not one reduction"):
        rust_kernels.tridiagonal_gcv(packed[0], factors[0], C[:5], np.array([1.0]))
    with pytest.raises(ValueError, match="not one reduction"):
        rust_kernels.tridiagonal_eigenvalues(packed[0], factors[0][:, :3])
    # 5 centred rows, 6 features: the spectrum would clamp, so the GCV quantities refuse
    Xs, Ys = _rows(4, 5, 6, 1)
    short = rust_kernels.tridiagonalize((Xs.T @ Xs)[None])
    assert short[2] == [False]
    with pytest.raises(ValueError, match="eigendecomposition"):
        rust_kernels.tridiagonal_gcv(short[0][0], short[1][0], Xs.T @ Ys, np.array([1.0]))


# ------------------------------------------------------------------------ the route taken
def _scorer(X, Y, backend="rust", fit_intercept=True):
    from shallowprobes import SufficientStats
    from shallowprobes.solve.paths import GcvScorer

    stats = SufficientStats(1, backend).update(X, Y)
    ne = stats.normal_equations(fit_intercept)
    return GcvScorer(stats._backend_module(), ne, fit_intercept)


def test_full_rank_gram_takes_the_tridiagonal_route(monkeypatch):
    from shallowprobes.backends import rust_kernels
    from shallowprobes.solve.paths import TridiagonalPath

    calls = []
    monkeypatch.setattr(rust_kernels, "spectrum", lambda *a: calls.append(a) or None)
    X, Y = make_regression(0, 300, 20, 2)
    scorer = _scorer(X, Y)
    assert isinstance(scorer.path, TridiagonalPath)
    per, joint = scorer(np.logspace(-2, 3, 6))
    assert per.shape == (6, 2) and np.all(np.isfinite(per))
    assert calls == []  # no eigendecomposition


def test_rank_deficient_gram_and_zero_alpha_take_the_spectrum():
    from shallowprobes.solve.paths import EigenPath, TridiagonalPath

    X, Y = make_regression(1, 30, 40, 2)  # rank 29 once centred
    assert isinstance(_scorer(X, Y).path, EigenPath)
    assert isinstance(_scorer(*make_regression(2, 200, 10, 1), backend="numpy").path, EigenPath)
    # a grid with alpha = 0 on a full-rank Gram: scored from the spectrum, equal to numpy's
    X, Y = make_regression(3, 200, 10, 2)
    rust, ref = _scorer(X, Y), _scorer(X, Y, backend="numpy")
    assert isinstance(rust.path, TridiagonalPath)
    grid = np.array([0.0, 0.5, 5.0])
    for a, b in zip(rust(grid), ref(grid)):
        assert_rel(a, b, 1e-10, "scores with alpha = 0")


# ------------------------------------------------------------------------ GCV fits
def _same_fit(a, b, rtol):
    assert_rel(a.cv_results_["scores"], b.cv_results_["scores"], rtol, "cv scores")
    np.testing.assert_allclose(a.alpha_, b.alpha_, rtol=1e-12)
    assert_rel(a.coef_, b.coef_, rtol, "coef")
    assert_rel(a.intercept_, b.intercept_, rtol, "intercept")


@pytest.mark.parametrize("n, d", [(300, 20), (120, 100), (60, 59), (101, 100), (2000, 64)])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gcv_fits_agree_with_the_numpy_backend(n, d, fit_intercept, dtype):
    X, Y = make_regression(n + d, n, d, 3, noise=1.0)
    X = X.astype(dtype)
    kw = dict(cv="gcv", fit_intercept=fit_intercept, alpha_per_target=True)
    rust = LinearProbe(backend="rust", **kw).fit(X, Y)
    ref = LinearProbe(backend="numpy", **kw).fit(X, Y)
    _same_fit(rust, ref, 1e-8)


def test_gcv_scores_match_the_formula_on_explicit_refits():
    X, Y = make_regression(5, 250, 15, 2, noise=1.0)
    alphas = np.logspace(-2, 3, 8)
    probe = LinearProbe(alphas=alphas, cv="gcv", backend="rust").fit(X, Y)
    Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    n = X.shape[0]
    want = np.empty((alphas.size, 2))
    for a, alpha in enumerate(alphas):
        inv = np.linalg.inv(Xc.T @ Xc + alpha * np.eye(15))
        resid = Yc - Xc @ (inv @ Xc.T @ Yc)
        # hat matrix of the centred fit plus the intercept's 1/n per row
        dof = np.trace(Xc @ inv @ Xc.T) + 1.0
        want[a] = -n * np.sum(resid**2, axis=0) / (n - dof) ** 2
    assert_rel(probe.cv_results_["scores"], want, 1e-9, "GCV")


def test_gcv_fit_matches_sklearn_ridgecv():
    from sklearn.linear_model import RidgeCV

    X, Y = make_regression(6, 400, 30, 3, noise=2.0)
    alphas = np.logspace(-3, 3, 13)
    ours = LinearProbe(alphas=alphas, cv="gcv", alpha_per_target=True, backend="rust").fit(X, Y)
    ref = RidgeCV(alphas=alphas, alpha_per_target=True, gcv_mode="eigen").fit(X, Y)
    np.testing.assert_allclose(ours.alpha_, ref.alpha_)
    assert_rel(ours.coef_, ref.coef_, 1e-8, "coef")


def test_gcv_classifier_agrees_with_the_numpy_backend():
    X, y = make_classification(7, 400, 12, n_classes=3)
    rust = LinearProbeClassifier(cv="gcv", backend="rust").fit(X, y)
    ref = LinearProbeClassifier(cv="gcv", backend="numpy").fit(X, y)
    _same_fit(rust, ref, 1e-8)
    np.testing.assert_array_equal(rust.predict(X), ref.predict(X))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(4, 120),
    d=st.integers(1, 40),
    seed=st.integers(0, 2**31 - 1),
    offset=st.sampled_from([0.0, 5.0, 1e3]),
    scale=st.sampled_from([1e-6, 1.0, 1e6]),
)
def test_fuzz_gcv_matches_the_numpy_backend(n, d, seed, offset, scale):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) + offset) * scale
    Y = X[:, :1] * 0.5 / scale + rng.standard_normal((n, 2))
    rust = LinearProbe(cv="gcv", backend="rust").fit(X, Y)
    ref = LinearProbe(cv="gcv", backend="numpy").fit(X, Y)
    # borderline ranks may take different routes, never a different alpha or a different model
    np.testing.assert_allclose(rust.alpha_, ref.alpha_, rtol=1e-9)
    assert_rel(rust.coef_, ref.coef_, 1e-6, "coef")


@pytest.mark.parametrize("x_scale, y_scale", [(1e98, 1e-98), (1e-98, 1e98), (1e98, 1.0),
                                              (1.0, 1e-98), (1e-60, 1e-60)])  # fmt: skip
def test_gcv_route_is_scale_equivariant_at_extreme_scales(x_scale, y_scale):
    # alpha ~ x_scale^2 and T^-1 u ~ y_scale / x_scale^3: formed naively, alpha^2 overflows
    # and T^-1 u underflows where X and y have very different scales (within the documented
    # magnitude range [1e-100, 1e100] of each)
    X, Y = make_regression(9, 200, 12, 2, noise=1.0)
    base = LinearProbe(cv="gcv", backend="rust").fit(X, Y)
    scaled = LinearProbe(cv="gcv", backend="rust").fit(X * x_scale, Y * y_scale)
    ref = LinearProbe(cv="gcv", backend="numpy").fit(X * x_scale, Y * y_scale)
    np.testing.assert_allclose(scaled.alpha_ / x_scale**2, base.alpha_, rtol=1e-9)
    got = scaled.predict(X * x_scale) / y_scale
    assert_rel(got, base.predict(X), 1e-9, "predictions")
    assert_rel(got, ref.predict(X * x_scale) / y_scale, 1e-9, "against the numpy backend")

"""The fused leave-one-out pass of the Rust core: `loo_sse` (squared LOO errors summed in the
core, no (A, n, k) predictions) and the blocked `loo_predictions` agree with the numpy
reference to 1e-10 relative."""

from __future__ import annotations

import numpy as np
import pytest
from shallowprobes import LinearProbe, SufficientStats
from shallowprobes.backends import get_backend
from shallowprobes.backends import numpy_kernels as ref

pytestmark = pytest.mark.skipif(get_backend("auto").name != "rust", reason="Rust core only")


def _model(n, d, k, seed, dtype, fit_intercept=True):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * (0.2 + rng.random(d)) + 7).astype(dtype)
    Y = X.astype(np.float64) @ rng.standard_normal((d, k)) + rng.standard_normal((n, k))
    ne = SufficientStats().update(X, Y).normal_equations(fit_intercept)
    lam, V, B = ref.spectrum(ne.gram, ne.cxy)
    alphas = np.logspace(-3, 3, 9) * max(lam.max(), 1.0) / d
    return X, Y, ne, lam, V, B, alphas


@pytest.mark.parametrize(
    "n, d, k, dtype, fit_intercept",
    [(700, 13, 3, np.float64, True), (5000, 40, 2, np.float32, True),
     (300, 90, 1, np.float64, False), (9000, 7, 5, np.float64, True)],  # fmt: skip
)
def test_loo_sse_and_predictions_match_reference(n, d, k, dtype, fit_intercept):
    from shallowprobes.backends import rust_kernels as rs

    X, Y, ne, lam, V, B, alphas = _model(n, d, k, n + d, dtype, fit_intercept)
    args = (ne.x_mean, V, lam, B, Y, ne.y_mean, alphas, ne.n, fit_intercept)
    want = ref.loo_predictions(X, *args)
    got = rs.loo_predictions(X, *args)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    sse = rs.loo_sse(X, *args)
    want_sse = ((want - Y[None]) ** 2).sum(axis=1)
    np.testing.assert_allclose(sse, want_sse, rtol=1e-10)
    # a strided view and column-major input read the same
    np.testing.assert_allclose(rs.loo_sse(np.asfortranarray(X), *args), sse, rtol=1e-12)


def test_loo_sse_leverage_one_gives_nan():
    from shallowprobes.backends import rust_kernels as rs

    # d + 1 = n rows: every leverage is 1 at alpha -> 0
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((6, 5)), rng.standard_normal((6, 1))
    ne = SufficientStats().update(X, Y).normal_equations()
    lam, V, B = ref.spectrum(ne.gram, ne.cxy)
    alphas = np.array([0.0, 1.0])
    sse = rs.loo_sse(X, ne.x_mean, V, lam, B, Y, ne.y_mean, alphas, ne.n, True)
    assert np.isnan(sse[0]).all() and np.isfinite(sse[1]).all()


def test_loo_probe_scores_match_numpy_backend():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((1200, 30)) + 3
    Y = X @ rng.standard_normal((30, 4)) + rng.standard_normal((1200, 4))
    grid = np.logspace(-2, 4, 11)
    a = LinearProbe(alphas=grid, cv="loo").fit(X, Y)
    b = LinearProbe(alphas=grid, cv="loo", backend="numpy").fit(X, Y)
    assert a.alpha_ == b.alpha_
    np.testing.assert_allclose(a.best_score_, b.best_score_, rtol=1e-10)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-10, atol=1e-12)

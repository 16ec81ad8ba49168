"""The Rust core against the numpy reference backend (statistics and probes), and the Rust
thread count, which must not change any result."""

from __future__ import annotations

import numpy as np
import pytest
import shallowprobes
from _probe_kinds import FIELDS, random_chunks, stats_of
from conftest import BACKEND_PARAMS, assert_rel, make_regression, requires_rust
from shallowprobes import LinearProbe


@requires_rust
@pytest.mark.parametrize("n_folds", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("degree", [1, 2], ids=["deg1", "deg2"])
def test_rust_stats_equal_numpy_stats(degree, n_folds, dtype):
    rng = np.random.default_rng(12)
    d = 33 if degree == 1 else 9
    X = (rng.normal(size=(517, d)) + 50).astype(dtype)
    Y = rng.normal(size=(517, 3))
    chunks = random_chunks(517, rng)
    s_np = stats_of(X, Y, n_folds, "numpy", chunks, degree=degree)
    s_rs = stats_of(X, Y, n_folds, "rust", chunks, degree=degree)
    np.testing.assert_array_equal(s_rs.shift_x, s_np.shift_x)
    if degree == 2:
        np.testing.assert_array_equal(s_rs.input_shift, s_np.input_shift)
    for field in FIELDS:
        assert getattr(s_rs, field).dtype == np.float64
        assert_rel(getattr(s_rs, field), getattr(s_np, field), 1e-12, field)


@requires_rust
@pytest.mark.parametrize("cv", ["gcv", "loo", 4])
@pytest.mark.parametrize("shape", [(80, 120), (400, 30)])
def test_rust_probe_equals_numpy_probe(cv, shape):
    X, Y = make_regression(13, *shape, 3)
    Xc = X - X.mean(axis=0)
    grid = np.logspace(-3, 3, 13) * np.sum(Xc * Xc) / X.shape[1]
    p_np = LinearProbe(grid, cv=cv, alpha_per_target=True, backend="numpy").fit(X, Y)
    p_rs = LinearProbe(grid, cv=cv, alpha_per_target=True, backend="rust").fit(X, Y)
    np.testing.assert_array_equal(p_rs.alpha_, p_np.alpha_)
    assert_rel(p_rs.coef_, p_np.coef_, 1e-9, "coef_")
    assert_rel(p_rs.intercept_, p_np.intercept_, 1e-9, "intercept_")
    np.testing.assert_allclose(p_rs.cv_results_["scores"], p_np.cv_results_["scores"], rtol=1e-9)
    # default grid too (coefficients only)
    d_np = LinearProbe(cv=cv, backend="numpy").fit(X, Y)
    d_rs = LinearProbe(cv=cv, backend="rust").fit(X, Y)
    np.testing.assert_allclose(d_rs.alphas_, d_np.alphas_, rtol=1e-12)
    assert_rel(d_rs.coef_, d_np.coef_, 1e-9, "coef_ on the default grid")


@requires_rust
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_does_not_change_results(dtype):
    rng = np.random.default_rng(14)
    X = (rng.normal(size=(3001, 40)) + 7).astype(dtype)
    Y = rng.normal(size=(3001, 2))
    old = shallowprobes.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            shallowprobes.set_num_threads(threads)
            assert shallowprobes.get_num_threads() == threads
            s = stats_of(X, Y, 3, "rust", [(0, 1000), (1000, 3001)])
            probe = LinearProbe(cv=3, backend="rust").fit(X, Y)
            results.append((s, probe.coef_, probe.intercept_, probe.alpha_))
    finally:
        shallowprobes.set_num_threads(old)
    (s1, c1, i1, a1), (s2, c2, i2, a2) = results
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(s1, field), getattr(s2, field))
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(i1, i2)
    assert a1 == a2


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True, None])
def test_set_num_threads_validates(bad):
    with pytest.raises(ValueError):
        shallowprobes.set_num_threads(bad)


def test_get_num_threads_is_positive_int():
    n = shallowprobes.get_num_threads()
    assert isinstance(n, int) and n >= 1


def test_backend_param_list_is_complete():
    """The backend fixture covers exactly the two concrete backends."""
    assert [p.values[0] for p in BACKEND_PARAMS] == ["numpy", "rust"]

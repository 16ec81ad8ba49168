"""What only degree-2 statistics do: recentring to another centre and the degree-1
statistics of the features (feature_stats), both against statistics formed from the explicit
features phi(h - c) (see _probe_kinds.py); and streaming wide inputs without ever forming the
n x p feature matrix."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from _probe_kinds import FIELDS, assert_ne, phi, reference_ne, stats_of
from conftest import requires_rust
from shallowprobes import QuadraticProbe, SufficientStats


def stats2(X, Y=None, n_folds=1, backend="numpy", chunks=None, fold_ids=None):
    return stats_of(X, Y, n_folds, backend, chunks, fold_ids, degree=2)


# ------------------------------------------------------------------------------ recentred
@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_recentred_equals_explicit_statistics(backend, offset):
    rng = np.random.default_rng(9)
    n, d, k = 60, 4, 2
    X = rng.normal(size=(n, d)) * [1.0, 3.0, 0.5, 2.0] + offset
    Y = rng.normal(size=(n, k))
    s = stats2(X, Y, 2, backend, chunks=[(0, 13), (13, 60)])
    for centre in (X.mean(axis=0), np.zeros(d), X.mean(axis=0) + rng.normal(size=d) * 10):
        r = s.recentred(centre)
        assert r.degree == 2 and r is not s
        np.testing.assert_array_equal(r.input_shift, centre)
        assert r.rows_seen == s.rows_seen
        F = phi(X, centre)
        for fit_intercept in (True, False):
            assert_ne(r.normal_equations(fit_intercept), reference_ne(F, Y, fit_intercept), 1e-9,
                      f"recentred fi={fit_intercept}")  # fmt: skip
        folds = np.arange(n) % 2
        assert_ne(r.normal_equations(False, only_fold=1),
                  reference_ne(F[folds == 1], Y[folds == 1], False), 1e-9, "fold 1")  # fmt: skip
        # recentring again, back to the original centre, is exact too
        back = r.recentred(s.input_shift)
        for fit_intercept in (True, False):
            ne = s.normal_equations(fit_intercept)
            assert_ne(back.normal_equations(fit_intercept), tuple(ne), 1e-9, "back")


def test_recentred_and_feature_stats_leave_the_original_unchanged(backend):
    rng = np.random.default_rng(10)
    X, Y = rng.normal(size=(40, 3)) + 4.0, rng.normal(size=(40, 1))
    s = stats2(X, Y, 1, backend)
    before = {f: getattr(s, f).copy() for f in (*FIELDS, "shift_x", "shift_y", "input_shift")}
    fs = s.feature_stats(np.ones(3), 0.25)
    r = s.recentred(np.full(3, 2.0))
    for out in (fs, r):
        for name in (*FIELDS, "shift_x", "shift_y"):
            getattr(out, name)[...] = 0.0  # results are independent objects
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(s, name), value, err_msg=name)


def test_recentred_and_feature_stats_errors(backend):
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="degree-2"):
        SufficientStats(backend=backend).update(X, X[:, 0]).recentred(np.zeros(3))
    with pytest.raises(ValueError, match="degree-2"):
        SufficientStats(backend=backend).update(X, X[:, 0]).feature_stats()
    with pytest.raises(ValueError, match="empty"):
        SufficientStats(backend=backend, degree=2).recentred(np.zeros(3))
    s = stats2(X, X[:, 0], 1, backend)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        s.recentred(np.zeros(4))


# ------------------------------------------------------------------------------ memory
@requires_rust
def test_streaming_never_materialises_n_by_p(monkeypatch):
    """d=64 (p=2144), n=200_000 float32 rows streamed in chunks of 20_000 with the Rust core:
    an n x p float64 feature matrix would be ~3.4 GB; numpy allocations stay far below it, and
    no array handed to or returned by the degree-2 kernels has n * p entries or more."""
    import shallowprobes.backends.rust_kernels as rust_backend

    n, d, chunk = 200_000, 64, 20_000
    p = d + d * (d + 1) // 2
    assert p == 2144
    seen = []
    calls = {"accumulate_quadratic": 0, "expand_quadratic": 0}

    def recording(fn):
        def wrapper(*args, **kwargs):
            calls[fn.__name__] += 1
            for arg in (*args, *kwargs.values()):
                if isinstance(arg, np.ndarray):
                    seen.append((fn.__name__, arg.shape))
            out = fn(*args, **kwargs)
            if isinstance(out, np.ndarray):
                seen.append((fn.__name__ + " ->", out.shape))
            return out

        wrapper.__name__ = fn.__name__
        return wrapper

    monkeypatch.setattr(
        rust_backend, "accumulate_quadratic", recording(rust_backend.accumulate_quadratic)
    )
    monkeypatch.setattr(rust_backend, "expand_quadratic", recording(rust_backend.expand_quadratic))

    rng = np.random.default_rng(0)
    A = rng.normal(size=(d, d)) / d
    w = rng.normal(size=d) / np.sqrt(d)

    def target(X):
        Xd = X.astype(np.float64)
        return ((Xd @ A) * Xd).sum(axis=1) + Xd @ w

    probe = QuadraticProbe(solver="primal", backend="rust")
    start = time.perf_counter()
    tracemalloc.start()
    try:
        for _ in range(n // chunk):
            X = (rng.normal(size=(chunk, d)) + 1.0).astype(np.float32)
            y = target(X) + 0.1 * rng.normal(size=chunk)
            probe.partial_fit(X, y)
            del X, y
        X_test = (rng.normal(size=(2000, d)) + 1.0).astype(np.float32)
        r2 = probe.score(X_test, target(X_test))  # solves (p x p) and predicts
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - start
    assert probe.stats_.n_samples == n and probe.solver_ == "primal"
    assert r2 > 0.99, r2
    assert n * p * 8 > 3.4e9
    assert peak < 400e6, f"traced numpy peak {peak / 1e6:.0f} MB"
    assert calls["accumulate_quadratic"] == n // chunk
    assert calls["expand_quadratic"] >= 1  # the first chunk's feature shift
    biggest = max(int(np.prod(shape)) for _, shape in seen)
    assert biggest < n * p, f"an array of {biggest} entries went through the kernels"
    assert biggest <= max(chunk * d, 256 * p, p * p)
    assert elapsed < 300  # generous: the budget on a quiet 2-core machine is about a minute

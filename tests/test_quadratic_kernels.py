"""Degree-2 feature kernels: `expand_quadratic` and `accumulate_quadratic` in both backends.

References are built independently here: the feature vector of each row from explicit loops over
the pairs (a, b), then plain float64 matrix products.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import assert_rel, requires_rust
from shallowprobes import get_num_threads, set_num_threads
from shallowprobes.backends import get_backend
from shallowprobes.backends.numpy_kernels import n_quadratic_features

SQRT2 = math.sqrt(2.0)


def naive_phi(X, shift_in, c=1.0):
    """phi row by row: [u, then c * s_ab * u_a * u_b for a <= b, a outer]."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    rows = []
    for i in range(n):
        u = [float(X[i, j]) - float(shift_in[j]) for j in range(d)]
        quad = [
            c * (1.0 if a == b else SQRT2) * u[a] * u[b]
            for a, b in itertools.combinations_with_replacement(range(d), 2)
        ]
        rows.append(u + quad)
    return np.array(rows, dtype=np.float64).reshape(n, n_quadratic_features(d))


def empty_stats(n_folds, p, k):
    return (
        np.zeros(n_folds),
        np.zeros((n_folds, p)),
        np.zeros((n_folds, k)),
        np.zeros((n_folds, p, p)),
        np.zeros((n_folds, p, k)),
        np.zeros((n_folds, k, k)),
    )


def with_xtx(stats, xtx):
    return stats[:3] + (xtx,) + stats[4:]


def reference_stats(X, Y, fold_ids, n_folds, shift_in, shift_x, shift_y):
    F = naive_phi(X, shift_in) - shift_x
    Yc = np.asarray(Y, dtype=np.float64) - shift_y
    fold_ids = np.zeros(X.shape[0], dtype=int) if fold_ids is None else fold_ids
    out = empty_stats(n_folds, F.shape[1], Yc.shape[1])
    for f in range(n_folds):
        m = fold_ids == f
        Ff, Yf = F[m], Yc[m]
        out[0][f] = m.sum()
        out[1][f] = Ff.sum(axis=0)
        out[2][f] = Yf.sum(axis=0)
        out[3][f] = Ff.T @ Ff
        out[4][f] = Ff.T @ Yf
        out[5][f] = Yf.T @ Yf
    return out


def make_data(seed, n, d, k, dtype=np.float64, n_folds=3):
    rng = np.random.default_rng(seed)
    X = (2.0 + rng.standard_normal((n, d))).astype(dtype)
    Y = rng.standard_normal((n, k)) - 0.5
    fold_ids = rng.integers(0, n_folds, size=n)
    shift_in = X[: min(n, 20)].astype(np.float64).mean(axis=0) if n else np.zeros(d)
    shift_x = (
        naive_phi(X[: min(n, 20)], shift_in).mean(axis=0)
        if n
        else np.zeros(n_quadratic_features(d))
    )
    shift_y = Y[: min(n, 20)].mean(axis=0) if n else np.zeros(k)
    return X, Y, fold_ids, shift_in, shift_x, shift_y


def run_accumulate(backend, X, Y, fold_ids, n_folds, shift_in, shift_x, shift_y, stats=None):
    be = get_backend(backend)
    if stats is None:
        stats = empty_stats(n_folds, n_quadratic_features(X.shape[1]), Y.shape[1])
    be.accumulate_quadratic(X, Y, fold_ids, shift_in, shift_x, shift_y, *stats)
    return stats


NAMES = ("count", "sum_x", "sum_y", "xtx", "xty", "yty")


def assert_stats_close(got, want, rtol, label=""):
    for name, g, w in zip(NAMES, got, want):
        assert_rel(g, w, rtol, f"{label} {name}")


def test_n_quadratic_features():
    assert [n_quadratic_features(d) for d in range(6)] == [0, 2, 5, 9, 14, 20]
    assert n_quadratic_features(768) == 768 + 768 * 769 // 2


# ---------------------------------------------------------------------------------------------
# expand_quadratic
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 5, 11])
@pytest.mark.parametrize("c", [1.0, 0.3, -1.7])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_expand_matches_explicit_loops(backend, d, c, dtype):
    rng = np.random.default_rng(d * 100 + int(10 * c) + (dtype == np.float32))
    X = rng.standard_normal((37, d)).astype(dtype)
    shift_in = rng.standard_normal(d)
    got = get_backend(backend).expand_quadratic(X, shift_in, c)
    assert got.shape == (37, n_quadratic_features(d)) and got.dtype == np.float64
    assert_rel(got, naive_phi(X, shift_in, c), 1e-15, "phi")


@pytest.mark.parametrize("seed", range(4))
def test_expand_kernel_identity(backend, seed):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 30))
    c = float(rng.normal() * 2)
    X = rng.standard_normal((8, d)) * 3
    shift_in = rng.standard_normal(d)
    phi = get_backend(backend).expand_quadratic(X, shift_in, c)
    U = X - shift_in
    uv = U @ U.T
    assert_rel(phi @ phi.T, uv + c * c * uv**2, 1e-13, "kernel identity")


def test_expand_order_matches_sklearn_polynomial_features(backend):
    PolynomialFeatures = pytest.importorskip("sklearn.preprocessing").PolynomialFeatures
    rng = np.random.default_rng(5)
    d = 6
    X = rng.standard_normal((20, d))
    shift_in = rng.standard_normal(d)
    phi = get_backend(backend).expand_quadratic(X, shift_in, 1.0)
    poly = PolynomialFeatures(degree=2, include_bias=False).fit_transform(X - shift_in)
    a, b = np.triu_indices(d)
    scaling = np.concatenate([np.ones(d), np.where(a == b, 1.0, SQRT2)])
    np.testing.assert_allclose(phi / scaling, poly, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize(
    "layout",
    ["fortran", "rows_step", "cols_step", "negative", "transposed"],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_expand_reads_any_layout(backend, layout, dtype):
    rng = np.random.default_rng(11)
    big = rng.standard_normal((60, 24)).astype(dtype)
    X = {
        "fortran": np.asfortranarray(big[:, :7]),
        "rows_step": big[::3, :7],
        "cols_step": big[:, ::3],
        "negative": big[::-2, ::-3],
        "transposed": big[:7].T,
    }[layout]
    shift_in = rng.standard_normal(X.shape[1])
    got = get_backend(backend).expand_quadratic(X, shift_in, 0.8)
    assert_rel(got, naive_phi(np.array(X), shift_in, 0.8), 1e-15, layout)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_expand_rejects_nonfinite(backend, bad, dtype):
    X = np.ones((5000, 3), dtype=dtype)
    X[4999, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        get_backend(backend).expand_quadratic(X, np.zeros(3), 1.0)


def test_expand_shape_errors(backend):
    be = get_backend(backend)
    X = np.ones((4, 3))
    with pytest.raises(ValueError):
        be.expand_quadratic(X, np.zeros(2), 1.0)
    with pytest.raises(ValueError):
        be.expand_quadratic(X, np.zeros(3), float("nan"))
    assert be.expand_quadratic(np.ones((0, 3)), np.zeros(3), 1.0).shape == (0, 9)
    assert be.expand_quadratic(np.ones((4, 0)), np.zeros(0), 1.0).shape == (4, 0)


# ---------------------------------------------------------------------------------------------
# accumulate_quadratic
# ---------------------------------------------------------------------------------------------

SHAPES = [  # (n, d, k)
    (1, 1, 1),
    (50, 1, 0),
    (200, 3, 2),
    (333, 6, 1),
    (150, 10, 3),
]


@pytest.mark.parametrize("n,d,k", SHAPES)
@pytest.mark.parametrize("with_folds", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_accumulate_matches_plain_computation(backend, n, d, k, with_folds, seed):
    X, Y, fold_ids, shift_in, shift_x, shift_y = make_data(seed, n, d, k)
    folds = fold_ids if with_folds else None
    n_folds = 3 if with_folds else 1
    got = run_accumulate(backend, X, Y, folds, n_folds, shift_in, shift_x, shift_y)
    want = reference_stats(X, Y, folds, n_folds, shift_in, shift_x, shift_y)
    assert_stats_close(got, want, 1e-12, f"n={n} d={d} k={k}")
    for f in range(n_folds):
        np.testing.assert_array_equal(got[3][f], got[3][f].T)


def test_accumulate_several_blocks_and_two_calls(backend):
    # d = 3: p = 9, 4096-row blocks; 10 000 rows split over two calls.
    X, Y, fold_ids, shift_in, shift_x, shift_y = make_data(7, 10_000, 3, 2)
    stats = run_accumulate(
        backend, X[:3000], Y[:3000], fold_ids[:3000], 3, shift_in, shift_x, shift_y
    )
    run_accumulate(
        backend, X[3000:], Y[3000:], fold_ids[3000:], 3, shift_in, shift_x, shift_y, stats
    )
    want = reference_stats(X, Y, fold_ids, 3, shift_in, shift_x, shift_y)
    assert_stats_close(stats, want, 1e-12, "two calls")


def test_accumulate_float32_input(backend):
    X, Y, fold_ids, shift_in, shift_x, shift_y = make_data(3, 400, 7, 2, dtype=np.float32)
    got = run_accumulate(backend, X, Y, fold_ids, 3, shift_in, shift_x, shift_y)
    # float32 values are exact in float64: the reference reads the same numbers
    want = reference_stats(X.astype(np.float64), Y, fold_ids, 3, shift_in, shift_x, shift_y)
    assert_stats_close(got, want, 1e-12, "float32")


@pytest.mark.parametrize("layout", ["fortran", "rows_step", "cols_step", "negative"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_accumulate_reads_any_layout(backend, layout, dtype):
    rng = np.random.default_rng(21)
    big = (1.0 + rng.standard_normal((900, 15))).astype(dtype)
    X = {
        "fortran": np.asfortranarray(big[:300, :5]),
        "rows_step": big[::3, :5],
        "cols_step": big[:300, ::3],
        "negative": big[::-3, ::-3],
    }[layout]
    n, d = X.shape
    Y = rng.standard_normal((n, 2))
    folds = rng.integers(0, 2, size=n)
    shift_in = np.full(d, 1.0)
    shift_x = naive_phi(X[:10], shift_in).mean(axis=0)
    shift_y = np.zeros(2)
    got = run_accumulate(backend, X, Y, folds, 2, shift_in, shift_x, shift_y)
    want = reference_stats(np.array(X), Y, folds, 2, shift_in, shift_x, shift_y)
    assert_stats_close(got, want, 1e-12, layout)


@requires_rust
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_and_rust_agree(dtype):
    X, Y, fold_ids, shift_in, shift_x, shift_y = make_data(9, 6000, 12, 3, dtype=dtype)
    a = run_accumulate("numpy", X, Y, fold_ids, 3, shift_in, shift_x, shift_y)
    b = run_accumulate("rust", X, Y, fold_ids, 3, shift_in, shift_x, shift_y)
    assert_stats_close(b, a, 1e-12, "numpy vs rust")
    pn = get_backend("numpy").expand_quadratic(X[:100], shift_in, 0.5)
    pr = get_backend("rust").expand_quadratic(X[:100], shift_in, 0.5)
    np.testing.assert_array_equal(pn, pr)


@requires_rust
def test_rust_result_does_not_depend_on_thread_count():
    X, Y, fold_ids, shift_in, shift_x, shift_y = make_data(12, 5000, 20, 2)
    before = get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            set_num_threads(t)
            results.append(run_accumulate("rust", X, Y, fold_ids, 3, shift_in, shift_x, shift_y))
    finally:
        set_num_threads(before)
    for other in results[1:]:
        for name, a, b in zip(NAMES, results[0], other):
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("row", [0, 5000, 8999])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_accumulate_rejects_nonfinite(backend, bad, row, dtype):
    X, Y, fold_ids, shift_in, shift_x, shift_y = make_data(4, 9000, 3, 1, dtype=dtype)
    X[row, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        run_accumulate(backend, X, Y, None, 1, shift_in, shift_x, shift_y)


def test_accumulate_shape_errors_are_value_errors(backend):
    n, d, k, K = 40, 3, 2, 3
    p = n_quadratic_features(d)
    X, Y, fold_ids, shift_in, shift_x, shift_y = make_data(5, n, d, k)
    be = get_backend(backend)

    def call(X=X, Y=Y, folds=fold_ids, s_in=shift_in, sx=shift_x, sy=shift_y, stats=None):
        stats = empty_stats(K, p, k) if stats is None else stats
        be.accumulate_quadratic(X, Y, folds, s_in, sx, sy, *stats)
        return stats

    bad_folds = fold_ids.copy()
    bad_folds[-1] = K
    cases = {
        "X has an extra column": dict(X=np.ones((n, d + 1))),
        "shift_in too short": dict(s_in=shift_in[:-1]),
        "shift_x too short": dict(sx=shift_x[:-1]),
        "shift_x of linear size": dict(sx=shift_x[:d]),
        "shift_y too long": dict(sy=np.zeros(k + 1)),
        "Y one row short": dict(Y=Y[:-1]),
        "Y extra column": dict(Y=np.ones((n, k + 1))),
        "fold id out of range": dict(folds=bad_folds),
        "fold ids one short": dict(folds=fold_ids[:-1]),
        "statistics sized for linear features": dict(stats=empty_stats(K, d, k)),
        "xtx too small": dict(stats=with_xtx(empty_stats(K, p, k), np.zeros((K, p, p - 1)))),
        "no folds": dict(stats=empty_stats(0, p, k)),
    }
    for what, kwargs in cases.items():
        with pytest.raises(ValueError):
            call(**kwargs)
        # nothing was written
        if "stats" in kwargs:
            assert all(not np.any(a) for a in kwargs["stats"]), what
    neg = fold_ids.copy()
    neg[0] = -1
    with pytest.raises(ValueError):
        call(folds=neg)


def test_accumulate_empty_input_changes_nothing(backend):
    d, k = 4, 2
    p = n_quadratic_features(d)
    stats = empty_stats(2, p, k)
    run_accumulate(
        backend, np.ones((0, d)), np.ones((0, k)), np.zeros(0, dtype=np.int64), 2,
        np.zeros(d), np.zeros(p), np.zeros(k), stats,
    )  # fmt: skip
    assert all(not np.any(a) for a in stats)

"""Streaming: partial_fit == fit, SufficientStats update/merge/save/load, dtypes, backends and
thread-count determinism."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import shallowprobes
from conftest import BACKEND_PARAMS, assert_rel, make_regression, requires_rust
from shallowprobes import LinearProbe, LinearProbeClassifier, SufficientStats

FIELDS = ("count", "sum_x", "sum_y", "xtx", "xty", "yty")


def random_chunks(n, rng, max_chunks=6):
    """Random split points of range(n) into 1..max_chunks non-empty chunks."""
    n_chunks = int(rng.integers(1, max_chunks + 1))
    cuts = np.sort(rng.choice(np.arange(1, n), size=n_chunks - 1, replace=False))
    bounds = np.concatenate(([0], cuts, [n]))
    return list(zip(bounds[:-1], bounds[1:]))


def reference_normal_equations(X, Y, fit_intercept):
    """Two-pass numpy reference: (n, gram, cxy, cyy, x_mean, y_mean)."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64).reshape(X.shape[0], -1)
    if fit_intercept:
        xm, ym = X.mean(axis=0), Y.mean(axis=0)
    else:
        xm, ym = np.zeros(X.shape[1]), np.zeros(Y.shape[1])
    Xc, Yc = X - xm, Y - ym
    return X.shape[0], Xc.T @ Xc, Xc.T @ Yc, np.sum(Yc * Yc, axis=0), xm, ym


def assert_normal_equations(ne, X, Y, fit_intercept, rtol, what=""):
    n, gram, cxy, cyy, xm, ym = reference_normal_equations(X, Y, fit_intercept)
    assert ne.n == n
    assert_rel(ne.gram, gram, rtol, f"{what} gram")
    assert_rel(ne.cxy, cxy, rtol, f"{what} cxy")
    assert_rel(ne.cyy, cyy, rtol, f"{what} cyy")
    assert_rel(ne.x_mean, xm, rtol, f"{what} x_mean")
    assert_rel(ne.y_mean, ym, rtol, f"{what} y_mean")


def stats_of(X, Y, n_folds=1, backend="numpy", chunks=None, fold_ids=None):
    s = SufficientStats(n_folds, backend=backend)
    if chunks is None:
        chunks = [(0, X.shape[0])]
    for a, b in chunks:
        s.update(X[a:b], Y[a:b], None if fold_ids is None else fold_ids[a:b])
    return s


# ------------------------------------------------------------------------------ partial_fit
@pytest.mark.parametrize("cv", ["gcv", 3])
@pytest.mark.parametrize("k", [None, 2], ids=["y1d", "k2"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_fit_equals_fit(backend, cv, k, fit_intercept, seed):
    rng = np.random.default_rng(seed)
    n, d = 150, 12
    X, y = make_regression(seed, n, d, k)
    X = X + rng.normal(size=d) * 20  # non-trivial offsets so chunk shifts differ
    full = LinearProbe(cv=cv, fit_intercept=fit_intercept, backend=backend).fit(X, y)
    streamed = LinearProbe(cv=cv, fit_intercept=fit_intercept, backend=backend)
    for a, b in random_chunks(n, rng):
        streamed.partial_fit(X[a:b], y[a:b])
    # the default grid is relative to the Gram's trace, which may differ in the last bit
    np.testing.assert_allclose(streamed.alphas_, full.alphas_, rtol=1e-12)
    assert np.argmin(np.abs(streamed.alphas_ - streamed.alpha_)) == np.argmin(
        np.abs(full.alphas_ - full.alpha_)
    )
    assert streamed.alpha_ == pytest.approx(full.alpha_, rel=1e-12)
    assert_rel(streamed.coef_, full.coef_, 1e-9, "coef_")
    assert_rel(streamed.intercept_, full.intercept_, 1e-9, "intercept_")
    np.testing.assert_allclose(
        streamed.cv_results_["scores"], full.cv_results_["scores"], rtol=1e-9
    )
    assert streamed.n_features_in_ == d
    assert_rel(streamed.predict(X), full.predict(X), 1e-9, "predict")


def test_partial_fit_kfold_with_single_row_chunks(backend):
    n, d, K = 23, 4, 5
    X, y = make_regression(3, n, d, None)
    grid = np.logspace(-2, 2, 5)
    full = LinearProbe(alphas=grid, cv=K, backend=backend).fit(X, y)
    streamed = LinearProbe(alphas=grid, cv=K, backend=backend)
    for i in range(n):
        streamed.partial_fit(X[i : i + 1], y[i : i + 1])
    np.testing.assert_allclose(
        streamed.cv_results_["scores"], full.cv_results_["scores"], rtol=1e-9
    )
    assert_rel(streamed.coef_, full.coef_, 1e-9, "coef_")


def test_partial_fit_then_more_data_updates_solution(backend):
    X, y = make_regression(4, 200, 6, None)
    probe = LinearProbe(alphas=[1.0], backend=backend).partial_fit(X[:100], y[:100])
    first = probe.coef_.copy()
    probe.partial_fit(X[100:], y[100:])
    full = LinearProbe(alphas=[1.0], backend=backend).fit(X, y)
    assert not np.allclose(first, full.coef_)
    assert_rel(probe.coef_, full.coef_, 1e-9, "coef_ after second chunk")


def test_partial_fit_loo_is_refused(backend):
    X, y = make_regression(0, 40, 5, None)
    probe = LinearProbe(cv="loo", backend=backend).partial_fit(X, y)
    with pytest.raises(ValueError, match="loo"):
        probe.coef_  # noqa: B018


def test_fit_resets_partial_fit_state(backend):
    X, y = make_regression(5, 120, 5, None)
    probe = LinearProbe(alphas=[0.5], backend=backend).partial_fit(X[:60] * 3.0, y[:60])
    probe.fit(X, y)
    ref = LinearProbe(alphas=[0.5], backend=backend).fit(X, y)
    assert probe.stats_.n_samples == 120
    assert_rel(probe.coef_, ref.coef_, 1e-12, "fit after partial_fit")


# ------------------------------------------------------------------------------ SufficientStats
@pytest.mark.parametrize("n_folds", [1, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_stats_normal_equations_match_numpy(backend, n_folds, fit_intercept, offset):
    rng = np.random.default_rng(1)
    n, d, k = 97, 7, 3
    X = rng.normal(size=(n, d)) + offset
    Y = rng.normal(size=(n, k)) + offset / 10
    s = stats_of(X, Y, n_folds, backend, random_chunks(n, rng))
    assert s.n_samples == n and s.n_features == d and s.n_targets == k
    assert s.count.shape == (n_folds,) and s.xtx.shape == (n_folds, d, d)
    rtol = 1e-11
    assert_normal_equations(s.normal_equations(fit_intercept), X, Y, fit_intercept, rtol, "all")
    folds = np.arange(n) % n_folds
    np.testing.assert_array_equal(s.count, np.bincount(folds, minlength=n_folds))
    for f in range(n_folds):
        only = s.normal_equations(fit_intercept, only_fold=f)
        assert_normal_equations(only, X[folds == f], Y[folds == f], fit_intercept, rtol, "only")
        if n_folds > 1:
            excl = s.normal_equations(fit_intercept, exclude_fold=f)
            assert_normal_equations(excl, X[folds != f], Y[folds != f], fit_intercept, rtol, "ex")


def test_stats_explicit_fold_ids(backend):
    rng = np.random.default_rng(2)
    n, d, K = 60, 5, 4
    X, Y = rng.normal(size=(n, d)), rng.normal(size=(n, 2))
    folds = rng.integers(0, K, size=n)
    s = stats_of(X, Y, K, backend, [(0, 25), (25, 60)], fold_ids=folds)
    for f in range(K):
        ne = s.normal_equations(True, only_fold=f)
        assert_normal_equations(ne, X[folds == f], Y[folds == f], True, 1e-11, f"fold {f}")


def test_stats_without_targets(backend):
    X = np.random.default_rng(0).normal(size=(30, 4)) + 5
    s = SufficientStats(backend=backend).update(X)
    assert s.n_targets == 0
    ne = s.normal_equations(True)
    Xc = X - X.mean(axis=0)
    assert_rel(ne.gram, Xc.T @ Xc, 1e-12, "unlabeled gram")
    assert ne.cxy.shape == (4, 0)


def _three_stats(backend, n_folds=1):
    rng = np.random.default_rng(11)
    d, k = 6, 2
    parts = []
    for n, off in [(40, -300.0), (25, 5.0), (61, 1e4)]:
        X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d) + off
        Y = rng.normal(size=(n, k)) + off / 7
        parts.append((X, Y))
    stats = [stats_of(X, Y, n_folds, backend) for X, Y in parts]
    return parts, stats


@pytest.mark.parametrize("n_folds", [1, 2])
def test_merge_is_associative(backend, n_folds):
    _, (a, b, c) = _three_stats(backend, n_folds)
    left = (a + b) + c
    right = a.merge(b.merge(c))
    for field in FIELDS:
        assert_rel(getattr(left, field), getattr(right, field), 1e-10, field)
    np.testing.assert_array_equal(left.shift_x, right.shift_x)
    assert left.rows_seen == right.rows_seen == a.rows_seen + b.rows_seen + c.rows_seen


def test_merge_is_commutative_in_the_totals(backend):
    _, (a, b, _) = _three_stats(backend)
    ab, ba = a + b, b + a
    np.testing.assert_array_equal(ab.count, ba.count)
    for fit_intercept in (True, False):
        ne1, ne2 = ab.normal_equations(fit_intercept), ba.normal_equations(fit_intercept)
        assert ne1.n == ne2.n
        for name in ("gram", "cxy", "cyy", "x_mean", "y_mean"):
            assert_rel(getattr(ne1, name), getattr(ne2, name), 1e-10, name)


@pytest.mark.parametrize("n_folds", [1, 3])
def test_merge_with_different_shifts_equals_concatenation(backend, n_folds):
    parts, stats = _three_stats(backend, n_folds)
    merged = stats[0] + stats[1] + stats[2]
    X = np.vstack([p[0] for p in parts])
    Y = np.vstack([p[1] for p in parts])
    assert len({tuple(s.shift_x) for s in stats}) == 3  # the shifts really differ
    for fit_intercept in (True, False):
        # the uncentred Gram of data with offset 1e4 is ~1e8 * n; its rounding is relative to that
        rtol = 1e-11 if fit_intercept else 1e-12
        assert_normal_equations(merged.normal_equations(fit_intercept), X, Y, fit_intercept, rtol)
    # and the probe solved from the merged statistics equals the probe fitted on all rows
    direct = stats_of(X, Y, n_folds, backend)
    ne_m, ne_d = merged.normal_equations(True), direct.normal_equations(True)
    assert_rel(ne_m.gram, ne_d.gram, 1e-11, "merged vs direct gram")


def test_merge_leaves_inputs_unchanged_and_handles_empty(backend):
    _, (a, b, _) = _three_stats(backend)
    before = {f: getattr(a, f).copy() for f in FIELDS}
    _ = a + b
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), before[f])
    empty = SufficientStats(backend=backend)
    for m in (a + empty, empty + a):
        for f in FIELDS:
            np.testing.assert_array_equal(getattr(m, f), getattr(a, f))


def test_merge_incompatible_raises(backend):
    _, (a, _, _) = _three_stats(backend)
    other_d = SufficientStats(backend=backend).update(np.ones((3, 2)) * [[1, 2]], np.ones((3, 2)))
    with pytest.raises(ValueError, match="shape"):
        a.merge(other_d)
    with pytest.raises(ValueError, match="folds"):
        a.merge(SufficientStats(2, backend=backend).update(np.eye(6)[:4], np.ones((4, 2))))
    with pytest.raises(TypeError):
        a.merge(np.zeros(3))


# ------------------------------------------------------------------------------ save / load
@pytest.mark.parametrize("n_folds", [1, 4])
def test_save_load_round_trip_is_exact(tmp_path, backend, n_folds):
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(50, 5)) + 100, rng.normal(size=(50, 3))
    s = stats_of(X, Y, n_folds, backend, [(0, 20), (20, 50)])
    path = tmp_path / "stats.npz"
    s.save(path)
    loaded = SufficientStats.load(path, backend=backend)
    assert loaded.n_folds == n_folds
    assert loaded.rows_seen == s.rows_seen
    for field in (*FIELDS, "shift_x", "shift_y"):
        a, b = getattr(loaded, field), getattr(s, field)
        assert a.dtype == np.float64
        np.testing.assert_array_equal(a, b)
    # the loaded statistics keep streaming identically
    X2, Y2 = rng.normal(size=(7, 5)), rng.normal(size=(7, 3))
    s.update(X2, Y2)
    loaded.update(X2, Y2)
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(loaded, field), getattr(s, field))


@pytest.fixture
def saved_stats(tmp_path):
    rng = np.random.default_rng(4)
    s = SufficientStats(2, backend="numpy").update(rng.normal(size=(40, 4)), rng.normal(size=40))
    path = tmp_path / "good.npz"
    s.save(path)
    return path


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_load_truncated_file_raises_valueerror(tmp_path, saved_stats, keep):
    data = saved_stats.read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match="truncated.npz"):
        SufficientStats.load(bad)


def test_load_corrupted_bytes_raises_valueerror(tmp_path, saved_stats):
    data = bytearray(saved_stats.read_bytes())
    mid = len(data) // 3
    data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt.npz"):
        SufficientStats.load(bad)


def test_load_not_a_stats_file(tmp_path):
    bad = tmp_path / "other.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a SufficientStats file"):
        SufficientStats.load(bad)
    text = tmp_path / "text.npz"
    text.write_text("hello, not a zip file at all")
    with pytest.raises(ValueError):
        SufficientStats.load(text)


def test_load_wrong_field_shape(tmp_path, saved_stats):
    with np.load(saved_stats) as data:
        arrays = dict(data)
    arrays["xtx"] = arrays["xtx"][:, :2]
    bad = tmp_path / "shape.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="corrupt"):
        SufficientStats.load(bad)


MALFORMED = {
    "missing_shift_y": lambda a: a.pop("shift_y"),
    "missing_xty": lambda a: a.pop("xty"),
    "shift_x_length": lambda a: a.update(shift_x=np.zeros(a["shift_x"].size + 1)),
    "shift_y_length": lambda a: a.update(shift_y=np.zeros(a["shift_y"].size + 2)),
    "sum_x_1d": lambda a: a.update(sum_x=np.zeros(4)),
    "count_int": lambda a: a.update(count=a["count"].astype(np.int64)),
    "n_folds_mismatch": lambda a: a.update(n_folds=np.array(3)),
}


@pytest.mark.parametrize("problem", sorted(MALFORMED))
def test_load_malformed_file_raises_valueerror_at_load(tmp_path, saved_stats, problem):
    """A well-formed zip whose arrays are missing or inconsistent is refused by `load` itself
    with a ValueError naming the file (not a KeyError/IndexError, nor an error at first use)."""
    with np.load(saved_stats) as data:
        arrays = dict(data)
    MALFORMED[problem](arrays)
    bad = tmp_path / f"{problem}.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=problem):
        SufficientStats.load(bad)


def test_load_newer_format_version(tmp_path, saved_stats):
    with np.load(saved_stats) as data:
        arrays = dict(data)
    arrays["format_version"] = np.array(int(arrays["format_version"]) + 1)
    newer = tmp_path / "newer.npz"
    np.savez(newer, **arrays)
    with pytest.raises(ValueError, match="newer"):
        SufficientStats.load(newer)


def test_save_format_is_a_plain_npz(tmp_path, saved_stats):
    with zipfile.ZipFile(saved_stats) as zf:
        names = set(zf.namelist())
    assert {f"{f}.npy" for f in FIELDS} <= names
    with np.load(saved_stats, allow_pickle=False) as data:  # no pickle needed
        assert int(data["format_version"]) >= 1


# ------------------------------------------------------------------------------ dtypes
@pytest.mark.parametrize("cv", ["gcv", 4])
def test_float32_accumulates_in_float64(backend, cv):
    X64, y = make_regression(6, 300, 16, 2)
    X64 = X64 + 3.0
    X32 = X64.astype(np.float32)
    X32_as_64 = X32.astype(np.float64)
    s32 = stats_of(X32, y, 1, backend)
    s64 = stats_of(X32_as_64, y, 1, backend)
    for field in FIELDS:
        assert getattr(s32, field).dtype == np.float64
    ne32, ne64 = s32.normal_equations(True), s64.normal_equations(True)
    for name in ("gram", "cxy", "cyy", "x_mean"):
        assert_rel(getattr(ne32, name), getattr(ne64, name), 1e-12, name)
    p32 = LinearProbe(cv=cv, backend=backend).fit(X32, y)
    p64 = LinearProbe(cv=cv, backend=backend).fit(X32_as_64, y)
    assert p32.alpha_ == p64.alpha_
    assert_rel(p32.coef_, p64.coef_, 1e-12, "float32 vs its float64 copy")
    assert p32.predict(X32).dtype == np.float64
    assert_rel(p32.predict(X32), p64.predict(X32_as_64), 1e-12, "predict")
    # and float32 rounding of the inputs moves a well-posed fit only a little
    p_orig = LinearProbe(alphas=[p64.alpha_], backend=backend).fit(X64, y)
    assert_rel(p32.coef_, p_orig.coef_, 1e-6, "float32 vs float64 data")


def test_classifier_partial_fit_equals_fit(backend):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(120, 5))
    y = np.array(["a", "b", "c"])[rng.integers(0, 3, size=120)]
    full = LinearProbeClassifier(cv=3, backend=backend).fit(X, y)
    streamed = LinearProbeClassifier(cv=3, backend=backend)
    streamed.partial_fit(X[:10], y[:10], classes=["a", "b", "c"])
    streamed.partial_fit(X[10:], y[10:])
    np.testing.assert_array_equal(streamed.classes_, full.classes_)
    assert streamed.alpha_ == pytest.approx(full.alpha_, rel=1e-12)
    assert_rel(streamed.coef_, full.coef_, 1e-9, "classifier coef_")
    np.testing.assert_array_equal(streamed.predict(X), full.predict(X))


# ------------------------------------------------------------------------------ backends / threads
@requires_rust
@pytest.mark.parametrize("n_folds", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rust_stats_equal_numpy_stats(n_folds, dtype):
    rng = np.random.default_rng(12)
    X = (rng.normal(size=(517, 33)) + 50).astype(dtype)
    Y = rng.normal(size=(517, 3))
    chunks = random_chunks(517, rng)
    s_np = stats_of(X, Y, n_folds, "numpy", chunks)
    s_rs = stats_of(X, Y, n_folds, "rust", chunks)
    np.testing.assert_array_equal(s_rs.shift_x, s_np.shift_x)
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

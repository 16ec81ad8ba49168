"""Degree-2 streaming: partial_fit == fit, SufficientStats(degree=2) update / merge / recentred /
feature_stats / copy / save / load against explicitly expanded numpy statistics, and a memory
test (n * p never materialised).

The reference statistics are formed here from phi(h - c) built with plain numpy indexing (pairs
a <= b in numpy.triu_indices order, s_ab = sqrt(2) off the diagonal).
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from conftest import assert_rel, requires_rust
from shallowprobes import QuadraticProbe, QuadraticProbeClassifier, SufficientStats

FIELDS = ("count", "sum_x", "sum_y", "xtx", "xty", "yty")


# ------------------------------------------------------------------------------ helpers
def phi(X, centre, quad_scale=1.0):
    X = np.asarray(X, dtype=np.float64) - centre
    a, b = np.triu_indices(X.shape[1])
    s = np.where(a == b, 1.0, np.sqrt(2.0)) * quad_scale
    return np.hstack([X, X[:, a] * X[:, b] * s])


def reference_ne(F, Y, fit_intercept):
    """(n, gram, cxy, cyy, x_mean, y_mean) of features F and targets Y, two-pass numpy."""
    Y = np.asarray(Y, dtype=np.float64).reshape(F.shape[0], -1)
    if fit_intercept:
        xm, ym = F.mean(axis=0), Y.mean(axis=0)
    else:
        xm, ym = np.zeros(F.shape[1]), np.zeros(Y.shape[1])
    Fc, Yc = F - xm, Y - ym
    return F.shape[0], Fc.T @ Fc, Fc.T @ Yc, np.sum(Yc * Yc, axis=0), xm, ym


def assert_ne(ne, ref, rtol, what=""):
    n, gram, cxy, cyy, xm, ym = ref
    assert ne.n == n
    assert_rel(ne.gram, gram, rtol, f"{what} gram")
    assert_rel(ne.cxy, cxy, rtol, f"{what} cxy")
    assert_rel(ne.cyy, cyy, rtol, f"{what} cyy")
    assert_rel(ne.x_mean, xm, rtol, f"{what} x_mean")
    assert_rel(ne.y_mean, ym, rtol, f"{what} y_mean")


def uneven_chunks(n, rng, singles=3):
    """Random uneven chunks of range(n), starting with `singles` one-row chunks and with one
    more one-row chunk in the middle."""
    bounds = list(range(singles + 1))
    mid = int(rng.integers(singles + 5, n - 5))
    cuts = sorted(
        set(rng.choice(np.arange(singles + 1, n), size=4, replace=False)) | {mid, mid + 1}
    )
    bounds += [c for c in cuts if c > bounds[-1]] + [n]
    return list(zip(bounds[:-1], bounds[1:]))


def make_quad(seed, n, d, k=None, offset=5.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d) + offset * rng.normal(size=d)
    U = X - X.mean(axis=0)
    kk = 1 if k is None else k
    A = rng.normal(size=(kk, d, d)) / d
    Y = (
        np.einsum("ni,tij,nj->nt", U, A, U)
        + U @ rng.normal(size=(d, kk))
        + 0.3 * rng.normal(size=(n, kk))
    )
    return X, (Y[:, 0] if k is None else Y)


def stats2(X, Y=None, n_folds=1, backend="numpy", chunks=None, fold_ids=None):
    s = SufficientStats(n_folds, backend=backend, degree=2)
    for a, b in chunks or [(0, X.shape[0])]:
        s.update(X[a:b], None if Y is None else Y[a:b], None if fold_ids is None else fold_ids[a:b])
    return s


# ------------------------------------------------------------------------------ partial_fit
@pytest.mark.parametrize("cv", ["gcv", 3])
@pytest.mark.parametrize("k", [None, 2], ids=["y1d", "k2"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_partial_fit_equals_fit(backend, cv, k, fit_intercept, seed):
    rng = np.random.default_rng(seed)
    n, d = 90, 5
    X, y = make_quad(seed, n, d, k)
    full = QuadraticProbe(cv=cv, fit_intercept=fit_intercept, solver="primal", backend=backend).fit(
        X, y
    )
    streamed = QuadraticProbe(cv=cv, fit_intercept=fit_intercept, backend=backend)
    for a, b in uneven_chunks(n, rng):
        streamed.partial_fit(X[a:b], y[a:b])
    assert streamed.solver_ == "primal"
    assert streamed.stats_.n_samples == n and streamed.n_features_in_ == d
    assert streamed.gamma_ == pytest.approx(full.gamma_, rel=1e-10)
    np.testing.assert_allclose(streamed.alphas_, full.alphas_, rtol=1e-10)
    assert np.argmin(np.abs(streamed.alphas_ - streamed.alpha_)) == np.argmin(
        np.abs(full.alphas_ - full.alpha_)
    )
    assert_rel(streamed.cv_results_["scores"], full.cv_results_["scores"], 1e-9, "scores")
    X_new = make_quad(seed + 10, 20, d)[0]
    for Xp in (X, X_new):
        assert_rel(streamed.predict(Xp), full.predict(Xp), 1e-9, "predict")
    assert_rel(streamed.quadratic_, full.quadratic_, 1e-9, "quadratic_")
    assert_rel(streamed.linear_, full.linear_, 1e-9, "linear_")
    assert_rel(streamed.centre_, full.centre_, 1e-12, "centre_")


@pytest.mark.parametrize("gamma", [0.1, [0.02, 0.2, 2.0]], ids=["g", "g_list"])
def test_partial_fit_single_rows_equals_fit(backend, gamma):
    n, d, K = 31, 3, 4
    X, y = make_quad(3, n, d, offset=50.0)
    grid = np.logspace(-2, 2, 5)
    full = QuadraticProbe(alphas=grid, gamma=gamma, cv=K, solver="primal", backend=backend)
    full.fit(X, y)
    streamed = QuadraticProbe(alphas=grid, gamma=gamma, cv=K, backend=backend)
    for i in range(n):
        streamed.partial_fit(X[i : i + 1], y[i : i + 1])
    assert streamed.gamma_ == full.gamma_
    assert_rel(streamed.cv_results_["scores"], full.cv_results_["scores"], 1e-9, "scores")
    assert_rel(streamed.predict(X), full.predict(X), 1e-9, "predict")


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("cv", ["gcv", 3])
def test_classifier_partial_fit_equals_fit(backend, n_classes, cv):
    rng = np.random.default_rng(n_classes)
    n, d = 75, 4
    X = rng.normal(size=(n, d)) + 3.0
    y = np.array(["a", "b", "c"])[:n_classes][np.arange(n) % n_classes]
    X[y == "b"] *= 1.8  # classes differ in spread
    full = QuadraticProbeClassifier(cv=cv, solver="primal", backend=backend).fit(X, y)
    streamed = QuadraticProbeClassifier(cv=cv, backend=backend)
    for j, (a, b) in enumerate(uneven_chunks(n, rng)):
        streamed.partial_fit(X[a:b], y[a:b], classes=np.unique(y) if j == 0 else None)
    np.testing.assert_array_equal(streamed.classes_, full.classes_)
    assert_rel(streamed.decision_function(X), full.decision_function(X), 1e-9, "decision")
    assert_rel(streamed.predict_proba(X), full.predict_proba(X), 1e-9, "predict_proba")
    np.testing.assert_array_equal(streamed.predict(X), full.predict(X))


def test_partial_fit_then_more_rows_updates_the_probe(backend):
    X, y = make_quad(4, 120, 4)
    probe = QuadraticProbe(alphas=[1.0], gamma=0.1, backend=backend)
    probe.partial_fit(X[:60], y[:60])
    first = probe.predict(X)
    probe.partial_fit(X[60:], y[60:])
    full = QuadraticProbe(alphas=[1.0], gamma=0.1, solver="primal", backend=backend).fit(X, y)
    assert not np.allclose(first, full.predict(X))
    assert_rel(probe.predict(X), full.predict(X), 1e-9, "after the second chunk")


def test_partial_fit_float32_equals_fit_float32(backend):
    X, y = make_quad(5, 80, 5)
    X32 = X.astype(np.float32)
    full = QuadraticProbe(solver="primal", backend=backend).fit(X32, y)
    streamed = QuadraticProbe(backend=backend)
    for a in range(0, 80, 25):
        streamed.partial_fit(X32[a : a + 25], y[a : a + 25])
    assert_rel(streamed.predict(X32), full.predict(X32), 1e-9, "float32 chunks")
    ref = QuadraticProbe(solver="primal", backend=backend).fit(X32.astype(np.float64), y)
    assert_rel(full.predict(X32), ref.predict(X32), 1e-12, "float32 read exactly")


# ------------------------------------------------------------------------------ update
@pytest.mark.parametrize("n_folds", [1, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_stats_chunks_equal_one_update_and_numpy(backend, n_folds, fit_intercept):
    rng = np.random.default_rng(7)
    n, d, k = 70, 4, 2
    X = rng.normal(size=(n, d)) * 2.0 + 30.0
    Y = rng.normal(size=(n, k)) + 5.0
    one = stats2(X, Y, n_folds, backend)
    chunked = stats2(X, Y, n_folds, backend, chunks=uneven_chunks(n, rng))
    assert chunked.degree == one.degree == 2
    assert chunked.n_inputs == d and chunked.n_features == d + d * (d + 1) // 2
    assert chunked.rows_seen == one.rows_seen == n
    np.testing.assert_array_equal(chunked.count, one.count)
    assert_rel(chunked.input_mean, X.mean(axis=0), 1e-13, "input_mean")
    folds = np.arange(n) % n_folds
    for centre in (X.mean(axis=0), np.zeros(d), X[3]):
        for quad_scale in (1.0, 0.3):
            fs_one = one.feature_stats(centre, quad_scale)
            fs_chk = chunked.feature_stats(centre, quad_scale)
            assert fs_one.degree == 1 and fs_one.n_features == chunked.n_features
            F = phi(X, centre, quad_scale)
            assert_ne(fs_chk.normal_equations(fit_intercept), reference_ne(F, Y, fit_intercept),
                      1e-9, "chunked")  # fmt: skip
            assert_ne(fs_one.normal_equations(fit_intercept), reference_ne(F, Y, fit_intercept),
                      1e-9, "one update")  # fmt: skip
            for f in range(n_folds):
                m = folds == f
                assert_ne(fs_chk.normal_equations(fit_intercept, only_fold=f),
                          reference_ne(F[m], Y[m], fit_intercept), 1e-9, f"fold {f}")  # fmt: skip


def test_stats_explicit_fold_ids_and_unlabelled(backend):
    rng = np.random.default_rng(8)
    n, d, K = 50, 3, 4
    X = rng.normal(size=(n, d)) - 7.0
    Y = rng.normal(size=n)
    folds = rng.integers(0, K, size=n)
    s = stats2(X, Y, K, backend, chunks=[(0, 1), (1, 20), (20, 50)], fold_ids=folds)
    F = phi(X, X.mean(axis=0))
    fs = s.feature_stats()
    for f in range(K):
        m = folds == f
        assert_ne(fs.normal_equations(True, exclude_fold=f),
                  reference_ne(F[~m], Y[~m], True), 1e-9, f"exclude {f}")  # fmt: skip
    u = stats2(X, None, 1, backend)
    assert u.n_targets == 0
    ne = u.feature_stats().normal_equations(True)
    Fc = F - F.mean(axis=0)
    assert_rel(ne.gram, Fc.T @ Fc, 1e-10, "unlabelled gram")


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


def test_copy_is_independent(backend):
    """copy() must not share any array with the original (the primal solve relies on it when
    it rescales a copy per gamma)."""
    rng = np.random.default_rng(11)
    X, Y = rng.normal(size=(30, 3)) + 2.0, rng.normal(size=(30, 2))
    for degree in (1, 2):
        s = SufficientStats(2, backend=backend, degree=degree).update(X, Y)
        names = (*FIELDS, "shift_x", "shift_y") + (("input_shift",) if degree == 2 else ())
        before = {f: getattr(s, f).copy() for f in names}
        c = s.copy()
        for name in names:
            assert not np.shares_memory(getattr(c, name), getattr(s, name)), name
            getattr(c, name)[...] += 1.0
        for name, value in before.items():
            np.testing.assert_array_equal(getattr(s, name), value, err_msg=f"deg {degree} {name}")


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
    for bad in (0, 3, True, "2"):
        with pytest.raises(ValueError, match="degree"):
            SufficientStats(degree=bad)


# ------------------------------------------------------------------------------ merge
@pytest.mark.parametrize("n_folds", [1, 3])
def test_merge_with_very_different_offsets_equals_union(backend, n_folds):
    rng = np.random.default_rng(12)
    d, k = 4, 2
    XA = rng.normal(size=(45, d)) + np.array([-40.0, 0.0, 25.0, 3.0])
    XB = rng.normal(size=(38, d)) * 2.0 + np.array([60.0, -30.0, 0.0, 80.0])
    YA, YB = rng.normal(size=(45, k)) - 10.0, rng.normal(size=(38, k)) + 10.0
    a = stats2(XA, YA, n_folds, backend)
    b = stats2(XB, YB, n_folds, backend)
    assert not np.allclose(a.input_shift, b.input_shift)
    a_before = {f: getattr(a, f).copy() for f in (*FIELDS, "shift_x", "input_shift")}
    X, Y = np.vstack([XA, XB]), np.vstack([YA, YB])
    folds = np.concatenate([np.arange(45) % n_folds, np.arange(38) % n_folds])
    direct = stats2(X, Y, n_folds, backend, fold_ids=folds)
    for merged in (a + b, b.merge(a)):
        assert merged.rows_seen == 83 and merged.n_samples == 83
        np.testing.assert_array_equal(merged.count, direct.count)
        assert_rel(merged.input_mean, X.mean(axis=0), 1e-12, "input_mean")
        for centre in (X.mean(axis=0), XA.mean(axis=0), np.zeros(d)):
            F = phi(X, centre)
            got = merged.feature_stats(centre)
            for fit_intercept in (True, False):
                ref = reference_ne(F, Y, fit_intercept)
                assert_ne(got.normal_equations(fit_intercept), ref, 1e-9, "merged")
                assert_ne(direct.feature_stats(centre).normal_equations(fit_intercept), ref,
                          1e-9, "direct")  # fmt: skip
            for f in range(n_folds):
                m = folds == f
                assert_ne(got.normal_equations(True, only_fold=f),
                          reference_ne(F[m], Y[m], True), 1e-9, f"merged fold {f}")  # fmt: skip
    for name, value in a_before.items():
        np.testing.assert_array_equal(getattr(a, name), value, err_msg=name)


def test_merge_then_probe_equals_fit(backend):
    """Statistics merged from far-apart shards give the probe of all rows."""
    X, y = make_quad(13, 100, 4)
    X[50:] += 200.0
    probe_full = QuadraticProbe(alphas=[0.5], gamma=0.01, solver="primal", backend=backend)
    probe_full.fit(X, y)
    parts = [QuadraticProbe(alphas=[0.5], gamma=0.01, backend=backend) for _ in range(2)]
    parts[0].partial_fit(X[:50], y[:50])
    parts[1].partial_fit(X[50:], y[50:])
    merged = parts[0].stats_ + parts[1].stats_
    ne = merged.feature_stats(quad_scale=0.1).normal_equations(True)
    ref = reference_ne(phi(X, X.mean(axis=0), 0.1), y, True)
    assert_ne(ne, ref, 1e-9, "merged shards")


def test_merge_incompatible_raises(backend):
    X = np.random.default_rng(0).normal(size=(20, 3))
    two = stats2(X, X[:, 0], 1, backend)
    with pytest.raises(ValueError, match="degree"):
        two.merge(SufficientStats(backend=backend).update(X, X[:, 0]))
    with pytest.raises(ValueError, match="different shapes"):
        two.merge(stats2(X[:, :2], X[:, 0], 1, backend))
    with pytest.raises(ValueError, match="folds"):
        two.merge(stats2(X, X[:, 0], 2, backend))
    empty = SufficientStats(backend=backend, degree=2)
    for merged in (two + empty, empty + two):
        np.testing.assert_array_equal(merged.xtx, two.xtx)
        np.testing.assert_array_equal(merged.input_shift, two.input_shift)


# ------------------------------------------------------------------------------ save / load
@pytest.mark.parametrize("n_folds", [1, 3])
def test_save_load_degree2_round_trip(tmp_path, backend, n_folds):
    rng = np.random.default_rng(14)
    X, Y = rng.normal(size=(50, 4)) + 9.0, rng.normal(size=(50, 2))
    s = stats2(X[:30], Y[:30], n_folds, backend)
    path = tmp_path / "deg2.npz"
    s.save(path)
    loaded = SufficientStats.load(path, backend=backend)
    assert loaded.degree == 2 and loaded.n_folds == n_folds
    assert loaded.n_inputs == 4 and loaded.n_features == 14 and loaded.n_targets == 2
    assert loaded.rows_seen == s.rows_seen
    for name in (*FIELDS, "shift_x", "shift_y", "input_shift"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(s, name), err_msg=name)
    assert "degree=2" in repr(loaded)
    # keeps streaming exactly like the original
    loaded.update(X[30:], Y[30:])
    s.update(X[30:], Y[30:])
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(s, name), err_msg=name)
    ref = reference_ne(phi(X, X.mean(axis=0)), Y, True)
    assert_ne(loaded.feature_stats().normal_equations(True), ref, 1e-9, "loaded")


def test_degree1_files_still_load(tmp_path, backend):
    rng = np.random.default_rng(15)
    X, Y = rng.normal(size=(40, 3)) + 2.0, rng.normal(size=(40, 1))
    s = SufficientStats(backend=backend).update(X, Y)
    current = tmp_path / "current.npz"
    s.save(current)
    # a format-1 file: what shallowprobes wrote before degree-2 statistics existed
    old = tmp_path / "format1.npz"
    np.savez(
        old, format_version=np.array(1), n_folds=np.array(1), rows_seen=np.array(40),
        shift_x=s.shift_x, shift_y=s.shift_y, **{f: getattr(s, f) for f in FIELDS},
    )  # fmt: skip
    for path in (current, old):
        loaded = SufficientStats.load(path, backend=backend)
        assert loaded.degree == 1 and loaded.input_shift is None and loaded.n_inputs == 3
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(loaded, name), getattr(s, name))
        ne, ref = loaded.normal_equations(True), s.normal_equations(True)
        np.testing.assert_array_equal(ne.gram, ref.gram)


def test_load_malformed_degree2_file(tmp_path, backend):
    rng = np.random.default_rng(16)
    s = stats2(rng.normal(size=(20, 3)), rng.normal(size=20), 1, backend)
    path = tmp_path / "s.npz"
    s.save(path)
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    for change in ({"input_shift": np.zeros(4)}, {"input_shift": np.zeros((3, 1))}):
        bad = tmp_path / "bad.npz"
        np.savez(bad, **{**arrays, **change})
        with pytest.raises(ValueError, match="input_shift"):
            SufficientStats.load(bad)
    no_shift = {key: v for key, v in arrays.items() if key != "input_shift"}
    bad = tmp_path / "noshift.npz"
    np.savez(bad, **no_shift)
    with pytest.raises(ValueError, match="input_shift"):
        SufficientStats.load(bad)


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

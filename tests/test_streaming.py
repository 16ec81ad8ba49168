"""Streaming, at degree 1 (LinearProbe, SufficientStats) and degree 2 (QuadraticProbe,
SufficientStats(degree=2)): partial_fit == fit, and the statistics' update, merge and copy
against two-pass numpy normal equations of the explicit features (see _probe_kinds.py).

Saving and loading statistics is in test_stats_files.py; what only degree-2 statistics do
(recentring, feature_stats) in test_degree2_statistics.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from _probe_kinds import (
    DEGREES,
    FIELDS,
    assert_ne,
    assert_same_fit,
    coefficients,
    data,
    feature_view,
    features,
    fitted,
    labels,
    make_quad,
    n_features,
    reference_ne,
    stats_of,
    stream_data,
    streamed,
    uneven_chunks,
)
from conftest import assert_rel, make_regression
from shallowprobes import SufficientStats

degrees = pytest.mark.parametrize("degree", DEGREES, ids=["deg1", "deg2"])
GAMMA = {1: {}, 2: {"gamma": 0.1}}  # a fixed gamma where a test fixes alpha too


def shift_names(degree):
    return ("shift_x", "shift_y") + (("input_shift",) if degree == 2 else ())


# ------------------------------------------------------------------------------ partial_fit
@pytest.mark.parametrize("cv", ["gcv", 3])
@pytest.mark.parametrize("k", [None, 2], ids=["y1d", "k2"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
@degrees
def test_partial_fit_equals_fit(backend, degree, cv, k, fit_intercept, seed):
    rng = np.random.default_rng(seed)
    n, d = (150, 12) if degree == 1 else (90, 5)
    X, y = stream_data(degree, seed, n, d, k)
    params = dict(cv=cv, fit_intercept=fit_intercept, backend=backend)
    full = fitted(degree, **params).fit(X, y)
    probe = streamed(degree, **params)
    for a, b in uneven_chunks(n, rng):
        probe.partial_fit(X[a:b], y[a:b])
    assert probe.stats_.n_samples == n and probe.n_features_in_ == d
    # the default grids are relative to the statistics, which may differ in the last bits
    grid_rtol = 1e-12 if degree == 1 else 1e-10
    if degree == 2:
        assert probe.solver_ == "primal"
        assert probe.gamma_ == pytest.approx(full.gamma_, rel=grid_rtol)
        assert_rel(probe.centre_, full.centre_, 1e-12, "centre_")
    np.testing.assert_allclose(probe.alphas_, full.alphas_, rtol=grid_rtol)
    assert np.argmin(np.abs(probe.alphas_ - probe.alpha_)) == np.argmin(
        np.abs(full.alphas_ - full.alpha_)
    )
    assert probe.alpha_ == pytest.approx(full.alpha_, rel=grid_rtol)
    assert_same_fit(probe, full, 1e-9, "streamed")
    np.testing.assert_allclose(probe.cv_results_["scores"], full.cv_results_["scores"], rtol=1e-9)
    X_new = stream_data(degree, seed + 10, 20, d)[0]
    for Xp in (X, X_new):
        assert_rel(probe.predict(Xp), full.predict(Xp), 1e-9, "predict")


SINGLE_ROWS = [(1, None), (2, 0.1), (2, [0.02, 0.2, 2.0])]


@pytest.mark.parametrize(("degree", "gamma"), SINGLE_ROWS, ids=["deg1", "deg2-g", "deg2-g_list"])
def test_partial_fit_kfold_with_single_row_chunks(backend, degree, gamma):
    if degree == 1:
        (n, d, K), extra = (23, 4, 5), {}
        X, y = make_regression(3, n, d, None)
    else:
        (n, d, K), extra = (31, 3, 4), {"gamma": gamma}
        X, y = make_quad(3, n, d, offset=50.0)
    params = dict(alphas=np.logspace(-2, 2, 5), cv=K, backend=backend, **extra)
    full = fitted(degree, **params).fit(X, y)
    probe = streamed(degree, **params)
    for i in range(n):
        probe.partial_fit(X[i : i + 1], y[i : i + 1])
    if degree == 2:
        assert probe.gamma_ == full.gamma_
    np.testing.assert_allclose(probe.cv_results_["scores"], full.cv_results_["scores"], rtol=1e-9)
    assert_same_fit(probe, full, 1e-9, "single rows")
    assert_rel(probe.predict(X), full.predict(X), 1e-9, "predict")


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("cv", ["gcv", 3])
@degrees
def test_classifier_partial_fit_equals_fit(backend, degree, n_classes, cv):
    rng = np.random.default_rng(n_classes)
    n, d = 75, 4
    X = rng.normal(size=(n, d)) + 3.0
    y = np.array(["a", "b", "c"])[:n_classes][np.arange(n) % n_classes]
    if degree == 1:
        X[y == "b"] += 0.8  # classes differ in mean
    else:
        X[y == "b"] *= 1.8  # classes differ in spread
    full = fitted(degree, "classifier", cv=cv, backend=backend).fit(X, y)
    clf = streamed(degree, "classifier", cv=cv, backend=backend)
    for j, (a, b) in enumerate(uneven_chunks(n, rng)):
        clf.partial_fit(X[a:b], y[a:b], classes=np.unique(y) if j == 0 else None)
    np.testing.assert_array_equal(clf.classes_, full.classes_)
    assert clf.alpha_ == pytest.approx(full.alpha_, rel=1e-12)
    assert_same_fit(clf, full, 1e-9, "classifier")
    assert_rel(clf.decision_function(X), full.decision_function(X), 1e-9, "decision")
    assert_rel(clf.predict_proba(X), full.predict_proba(X), 1e-9, "predict_proba")
    np.testing.assert_array_equal(clf.predict(X), full.predict(X))


@degrees
def test_partial_fit_then_more_rows_updates_the_probe(backend, degree):
    X, y = make_regression(4, 200, 6, None) if degree == 1 else make_quad(4, 120, 4)
    half = X.shape[0] // 2
    params = dict(alphas=[1.0], backend=backend, **GAMMA[degree])
    probe = streamed(degree, **params).partial_fit(X[:half], y[:half])
    first, first_pred = coefficients(probe), probe.predict(X)
    probe.partial_fit(X[half:], y[half:])
    full = fitted(degree, **params).fit(X, y)
    main = "coef_" if degree == 1 else "quadratic_"
    assert not np.allclose(first[main], coefficients(full)[main])
    assert not np.allclose(first_pred, full.predict(X))
    assert_same_fit(probe, full, 1e-9, "after the second chunk")
    assert_rel(probe.predict(X), full.predict(X), 1e-9, "after the second chunk")


@degrees
def test_partial_fit_refuses_what_needs_the_rows(backend, degree):
    X, y = data(degree, n=40, d=3)
    probe = streamed(degree, cv="loo", backend=backend).partial_fit(X, y)
    with pytest.raises(ValueError, match="loo"):
        probe.coef_ if degree == 1 else probe.quadratic_  # noqa: B018
    with pytest.raises(ValueError, match="loo"):
        probe.predict(X)
    clf = streamed(degree, "classifier", cv=3, scoring="accuracy", backend=backend)
    clf.partial_fit(X, labels(y))
    with pytest.raises(ValueError, match="need the rows|needs the rows"):
        clf.predict(X)


@degrees
def test_fit_resets_partial_fit_state(backend, degree):
    X, y = make_regression(5, 120, 5, None) if degree == 1 else make_quad(5, 120, 4)
    params = dict(alphas=[0.5], backend=backend, **GAMMA[degree])
    probe = streamed(degree, **params).partial_fit(X[:60] * 3.0, y[:60])
    probe.fit(X, y)
    ref = streamed(degree, **params).fit(X, y)
    assert probe.stats_.n_samples == 120
    assert_same_fit(probe, ref, 1e-12, "fit after partial_fit")


@pytest.mark.parametrize("cv", ["gcv", 4])
@degrees
def test_float32_accumulates_in_float64(backend, degree, cv):
    if degree == 1:
        X64, y = make_regression(6, 300, 16, 2)
        X64 = X64 + 3.0
    else:
        X64, y = make_quad(6, 120, 5, k=2)
    X32 = X64.astype(np.float32)
    X32_as_64 = X32.astype(np.float64)
    s32 = stats_of(X32, y, 1, backend, degree=degree)
    s64 = stats_of(X32_as_64, y, 1, backend, degree=degree)
    for field in FIELDS:
        assert getattr(s32, field).dtype == np.float64
    ne32 = feature_view(s32).normal_equations(True)
    ne64 = feature_view(s64).normal_equations(True)
    for name in ("gram", "cxy", "cyy", "x_mean"):
        assert_rel(getattr(ne32, name), getattr(ne64, name), 1e-12, name)
    p32 = fitted(degree, cv=cv, backend=backend).fit(X32, y)
    p64 = fitted(degree, cv=cv, backend=backend).fit(X32_as_64, y)
    assert p32.alpha_ == p64.alpha_
    if degree == 2:
        assert p32.gamma_ == p64.gamma_
    assert_same_fit(p32, p64, 1e-12, "float32 vs its float64 copy")
    assert p32.predict(X32).dtype == np.float64
    assert_rel(p32.predict(X32), p64.predict(X32_as_64), 1e-12, "predict")
    # float32 chunks stream like one float32 fit
    probe = streamed(degree, cv=cv, backend=backend)
    for a in range(0, X32.shape[0], 25):
        probe.partial_fit(X32[a : a + 25], y[a : a + 25])
    assert_rel(probe.predict(X32), p32.predict(X32), 1e-9, "float32 chunks")
    # and float32 rounding of the inputs moves a well-posed fit only a little
    fixed = {"alphas": [p64.alpha_]} | ({"gamma": p64.gamma_} if degree == 2 else {})
    p_orig = fitted(degree, backend=backend, **fixed).fit(X64, y)
    assert_same_fit(p32, p_orig, 1e-6, "float32 vs float64 data")


# ------------------------------------------------------------------------------ update
@pytest.mark.parametrize("offset", ["none", "large"])
@pytest.mark.parametrize("n_folds", [1, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
@degrees
def test_stats_chunks_equal_one_update_and_numpy(backend, degree, n_folds, fit_intercept, offset):
    rng = np.random.default_rng(degree)
    (n, d, k), rtol = ((97, 7, 3), 1e-11) if degree == 1 else ((70, 4, 2), 1e-9)
    shift = {"none": 0.0, "large": 1e4 if degree == 1 else 30.0}[offset]
    X = rng.normal(size=(n, d)) * 2.0 + shift
    Y = rng.normal(size=(n, k)) + shift / 10
    one = stats_of(X, Y, n_folds, backend, degree=degree)
    chunked = stats_of(X, Y, n_folds, backend, uneven_chunks(n, rng), degree=degree)
    p = n_features(degree, d)
    folds = np.arange(n) % n_folds
    for s in (one, chunked):
        assert s.degree == degree and s.rows_seen == n
        assert s.n_samples == n and s.n_features == p and s.n_targets == k
        assert s.count.shape == (n_folds,) and s.xtx.shape == (n_folds, p, p)
        np.testing.assert_array_equal(s.count, np.bincount(folds, minlength=n_folds))
    if degree == 2:
        assert chunked.n_inputs == d
        assert_rel(chunked.input_mean, X.mean(axis=0), 1e-13, "input_mean")
    views = [(None, 1.0)]
    if degree == 2:
        views = [(c, q) for c in (X.mean(axis=0), np.zeros(d), X[3]) for q in (1.0, 0.3)]
    for centre, quad_scale in views:
        F = features(degree, X, centre, quad_scale)
        for s, what in ((one, "one update"), (chunked, "chunked")):
            fs = feature_view(s, centre, quad_scale)
            assert fs.degree == 1 and fs.n_features == p
            ne = fs.normal_equations(fit_intercept)
            assert_ne(ne, reference_ne(F, Y, fit_intercept), rtol, what)
            for f in range(n_folds):
                m = folds == f
                only = fs.normal_equations(fit_intercept, only_fold=f)
                assert_ne(only, reference_ne(F[m], Y[m], fit_intercept), rtol, f"{what} only {f}")
                if n_folds > 1:
                    excl = fs.normal_equations(fit_intercept, exclude_fold=f)
                    ref = reference_ne(F[~m], Y[~m], fit_intercept)
                    assert_ne(excl, ref, rtol, f"{what} exclude {f}")


@degrees
def test_stats_explicit_fold_ids(backend, degree):
    rng = np.random.default_rng(2)
    (n, d, K), rtol = ((60, 5, 4), 1e-11) if degree == 1 else ((50, 3, 4), 1e-9)
    X = rng.normal(size=(n, d)) - 7.0
    Y = rng.normal(size=(n, 2)) if degree == 1 else rng.normal(size=n)
    folds = rng.integers(0, K, size=n)
    s = stats_of(X, Y, K, backend, [(0, 1), (1, 25), (25, n)], fold_ids=folds, degree=degree)
    np.testing.assert_array_equal(s.count, np.bincount(folds, minlength=K))
    F, fs = features(degree, X), feature_view(s)
    for f in range(K):
        m = folds == f
        ref = reference_ne(F[m], Y[m], True)
        assert_ne(fs.normal_equations(True, only_fold=f), ref, rtol, f"fold {f}")
        ref = reference_ne(F[~m], Y[~m], True)
        assert_ne(fs.normal_equations(True, exclude_fold=f), ref, rtol, f"exclude {f}")


@degrees
def test_stats_without_targets(backend, degree):
    X = np.random.default_rng(0).normal(size=(30, 4)) + 5
    s = SufficientStats(backend=backend, degree=degree).update(X)
    assert s.n_targets == 0
    ne = feature_view(s).normal_equations(True)
    F = features(degree, X)
    Fc = F - F.mean(axis=0)
    assert_rel(ne.gram, Fc.T @ Fc, 1e-12 if degree == 1 else 1e-10, "unlabelled gram")
    assert ne.cxy.shape == (n_features(degree, 4), 0)


@degrees
def test_copy_is_independent(backend, degree):
    """copy() must not share any array with the original (the primal solve relies on it when
    it rescales a copy per gamma)."""
    rng = np.random.default_rng(11)
    X, Y = rng.normal(size=(30, 3)) + 2.0, rng.normal(size=(30, 2))
    s = SufficientStats(2, backend=backend, degree=degree).update(X, Y)
    names = (*FIELDS, *shift_names(degree))
    before = {f: getattr(s, f).copy() for f in names}
    c = s.copy()
    for name in names:
        assert not np.shares_memory(getattr(c, name), getattr(s, name)), name
        getattr(c, name)[...] += 1.0
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(s, name), value, err_msg=name)


# ------------------------------------------------------------------------------ merge
OFFSETS = {
    1: (-300.0, 5.0, 1e4),
    2: (np.array([-40.0, 0.0, 25.0, 3.0]), 5.0, np.array([60.0, -30.0, 0.0, 80.0])),
}


def _three_stats(backend, degree, n_folds=1):
    """Three shards with very different offsets (so shifts differ), and their statistics."""
    rng = np.random.default_rng(11)
    d, k = (6, 2) if degree == 1 else (4, 2)
    parts = []
    for n, off in zip((40, 25, 61), OFFSETS[degree]):
        X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d) + off
        Y = rng.normal(size=(n, k)) + np.mean(off) / 7
        parts.append((X, Y))
    return parts, [stats_of(X, Y, n_folds, backend, degree=degree) for X, Y in parts]


@pytest.mark.parametrize("n_folds", [1, 2])
@degrees
def test_merge_is_associative(backend, degree, n_folds):
    _, (a, b, c) = _three_stats(backend, degree, n_folds)
    left = (a + b) + c
    right = a.merge(b.merge(c))
    for field in FIELDS:
        assert_rel(getattr(left, field), getattr(right, field), 1e-10, field)
    for name in shift_names(degree):
        np.testing.assert_array_equal(getattr(left, name), getattr(right, name), err_msg=name)
    assert left.rows_seen == right.rows_seen == a.rows_seen + b.rows_seen + c.rows_seen


@degrees
def test_merge_is_commutative_in_the_totals(backend, degree):
    _, (a, b, _) = _three_stats(backend, degree)
    ab, ba = a + b, b + a
    np.testing.assert_array_equal(ab.count, ba.count)
    for fit_intercept in (True, False):
        ne1 = feature_view(ab).normal_equations(fit_intercept)
        ne2 = feature_view(ba).normal_equations(fit_intercept)
        assert ne1.n == ne2.n
        for name in ("gram", "cxy", "cyy", "x_mean", "y_mean"):
            assert_rel(getattr(ne1, name), getattr(ne2, name), 1e-10, name)


@pytest.mark.parametrize("n_folds", [1, 3])
@degrees
def test_merge_with_different_shifts_equals_concatenation(backend, degree, n_folds):
    parts, stats = _three_stats(backend, degree, n_folds)
    X = np.vstack([p[0] for p in parts])
    Y = np.vstack([p[1] for p in parts])
    folds = np.concatenate([np.arange(len(p[0])) % n_folds for p in parts])
    shifts = "shift_x" if degree == 1 else "input_shift"
    assert len({tuple(getattr(s, shifts)) for s in stats}) == 3  # the shifts really differ
    names = (*FIELDS, *shift_names(degree))
    before = {f: getattr(stats[0], f).copy() for f in names}
    direct = stats_of(X, Y, n_folds, backend, fold_ids=folds, degree=degree)
    centres = [None] if degree == 1 else [X.mean(axis=0), parts[0][0].mean(axis=0), np.zeros(4)]
    for merged in (stats[0] + stats[1] + stats[2], stats[2].merge(stats[1].merge(stats[0]))):
        assert merged.rows_seen == merged.n_samples == X.shape[0]
        np.testing.assert_array_equal(merged.count, direct.count)
        if degree == 2:
            assert_rel(merged.input_mean, X.mean(axis=0), 1e-12, "input_mean")
        for centre in centres:
            F = features(degree, X, centre)
            got, want = feature_view(merged, centre), feature_view(direct, centre)
            for fit_intercept in (True, False):
                # the uncentred Gram of data with offset 1e4 is ~1e8 * n; its rounding is
                # relative to that
                rtol = (1e-11 if fit_intercept else 1e-12) if degree == 1 else 1e-9
                ref = reference_ne(F, Y, fit_intercept)
                assert_ne(got.normal_equations(fit_intercept), ref, rtol, "merged")
                assert_ne(want.normal_equations(fit_intercept), ref, rtol, "direct")
            ne_m, ne_d = got.normal_equations(True), want.normal_equations(True)
            assert_rel(ne_m.gram, ne_d.gram, 1e-11 if degree == 1 else 1e-9, "merged vs direct")
            for f in range(n_folds):
                m = folds == f
                ref = reference_ne(F[m], Y[m], True)
                assert_ne(got.normal_equations(True, only_fold=f), ref, rtol, f"fold {f}")
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(stats[0], name), value, err_msg=name)


@degrees
def test_merge_leaves_inputs_unchanged_and_handles_empty(backend, degree):
    _, (a, b, _) = _three_stats(backend, degree)
    names = (*FIELDS, *shift_names(degree))
    before = {f: getattr(a, f).copy() for f in names}
    _ = a + b
    _ = b.merge(a)
    for f in names:
        np.testing.assert_array_equal(getattr(a, f), before[f], err_msg=f)
    empty = SufficientStats(backend=backend, degree=degree)
    for m in (a + empty, empty + a):
        assert m.rows_seen == a.rows_seen
        for f in names:
            np.testing.assert_array_equal(getattr(m, f), getattr(a, f), err_msg=f)


@degrees
def test_merged_probe_statistics_equal_all_rows(backend, degree):
    """The statistics of probes streamed on far-apart shards merge into those of all rows."""
    X, y = make_regression(13, 100, 4, None) if degree == 1 else make_quad(13, 100, 4)
    X[50:] += 200.0
    params = dict(alphas=[0.5], backend=backend) | ({"gamma": 0.01} if degree == 2 else {})
    parts = [streamed(degree, **params) for _ in range(2)]
    parts[0].partial_fit(X[:50], y[:50])
    parts[1].partial_fit(X[50:], y[50:])
    merged = parts[0].stats_ + parts[1].stats_
    ne = feature_view(merged, quad_scale=0.1).normal_equations(True)
    ref = reference_ne(features(degree, X, quad_scale=0.1), y, True)
    assert_ne(ne, ref, 1e-9, "merged shards")


@degrees
def test_merge_incompatible_raises(backend, degree):
    X = np.random.default_rng(0).normal(size=(20, 3)) * [1, 2, 3]
    s = stats_of(X, X[:, 0], 1, backend, degree=degree)
    with pytest.raises(ValueError, match="different shapes"):
        s.merge(stats_of(X[:, :2], X[:, 0], 1, backend, degree=degree))  # d
    with pytest.raises(ValueError, match="different shapes"):
        s.merge(stats_of(X, X[:, :2], 1, backend, degree=degree))  # k
    with pytest.raises(ValueError, match="folds"):
        s.merge(stats_of(X, X[:, 0], 2, backend, degree=degree))
    with pytest.raises(ValueError, match="degree"):
        s.merge(stats_of(X, X[:, 0], 1, backend, degree=3 - degree))
    with pytest.raises(TypeError):
        s.merge(np.zeros(3))

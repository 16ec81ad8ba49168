"""Input validation: clear errors for bad inputs, correct handling of unusual-but-valid inputs,
and failed calls leave a fitted estimator exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sparse
from conftest import assert_rel, make_regression
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from shallowprobes import LinearProbe, LinearProbeClassifier, NotFittedError, SufficientStats
from shallowprobes.errors import ScaleError
from sklearn.linear_model import Ridge

HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _data(seed=0, n=30, d=4, k=None):
    return make_regression(seed, n, d, k)


def snapshot(est):
    """Everything observable about a fitted probe."""
    X_probe = np.random.default_rng(99).normal(size=(9, est.n_features_in_))
    out = {
        "coef_": np.array(est.coef_, copy=True),
        "intercept_": np.array(est.intercept_, copy=True),
        "alpha_": np.array(est.alpha_, copy=True),
        "scores": est.cv_results_["scores"].copy(),
        "n_features_in_": est.n_features_in_,
        "n_samples": est.stats_.n_samples,
        "xtx": est.stats_.xtx.copy(),
        "pred": np.array(est.predict(X_probe), copy=True),
    }
    if hasattr(est, "classes_"):
        out["classes_"] = np.array(est.classes_, copy=True)
    return out


def assert_unchanged(est, before):
    after = snapshot(est)
    assert after.keys() == before.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


# ------------------------------------------------------------------------------ non-finite
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_X_raises(backend, bad, dtype):
    X, y = _data()
    X = X.astype(dtype)
    X[7, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        LinearProbe(backend=backend).fit(X, y)
    with pytest.raises(ValueError, match="NaN or infinity"):
        LinearProbe(backend=backend).partial_fit(X, y)
    with pytest.raises(ValueError, match="NaN or infinity"):
        SufficientStats(backend=backend).update(X, y)
    with pytest.raises(ValueError, match="NaN or infinity"):
        LinearProbeClassifier(backend=backend).fit(X, y > 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_y_raises(backend, bad):
    X, y = _data(k=2)
    y[3, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        LinearProbe(backend=backend).fit(X, y)
    with pytest.raises(ValueError, match="NaN or infinity"):
        LinearProbe(backend=backend).fit(X, y[:, 1])
    with pytest.raises(ValueError, match="NaN or infinity"):
        LinearProbeClassifier(cv=3, backend=backend).fit(X, y[:, 1])


def test_nonfinite_X_at_predict_raises(backend):
    X, y = _data()
    probe = LinearProbe(backend=backend).fit(X, y)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        probe.predict(X)


# ------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("est_cls", [LinearProbe, LinearProbeClassifier])
def test_wrong_ndim_X(backend, est_cls):
    X, y = _data()
    labels = (y > 0).astype(int)
    with pytest.raises(ValueError, match=r"Expected 2D array.*got 1D.*reshape\(-1, 1\)"):
        est_cls(backend=backend).fit(X[:, 0], labels)
    with pytest.raises(ValueError, match=r"Expected 2D array.*got 3D"):
        est_cls(backend=backend).fit(X[:, :, None], labels)
    with pytest.raises(ValueError, match=r"Expected 2D array.*got 0D"):
        est_cls(backend=backend).fit(np.float64(3.0), labels)
    fitted = est_cls(backend=backend).fit(X, labels)
    with pytest.raises(ValueError, match=r"Expected 2D array.*got 1D"):
        fitted.predict(X[0])


def test_wrong_ndim_y(backend):
    X, y = _data()
    with pytest.raises(ValueError, match=r"y must be 1-D .* or 2-D"):
        LinearProbe(backend=backend).fit(X, y[:, None, None])
    with pytest.raises(ValueError, match=r"y must be a 1-D array of class labels"):
        LinearProbeClassifier(backend=backend).fit(X, np.c_[y > 0, y > 0])


@pytest.mark.parametrize("est_cls", [LinearProbe, LinearProbeClassifier])
def test_mismatched_lengths(backend, est_cls):
    X, y = _data()
    labels = (y > 0).astype(int)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples.*30.*29"):
        est_cls(backend=backend).fit(X, labels[:-1])
    kwargs = {"classes": [0, 1]} if est_cls is LinearProbeClassifier else {}
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples"):
        est_cls(backend=backend).partial_fit(X[:-2], labels, **kwargs)


def test_too_few_samples(backend):
    X, y = _data()
    with pytest.raises(ValueError, match="1 sample.*minimum of 2"):
        LinearProbe(backend=backend).fit(X[:1], y[:1])
    probe = LinearProbe(backend=backend).partial_fit(X[:1], y[:1])  # streaming: allowed
    with pytest.raises(ValueError, match="at least 2 samples"):
        probe.predict(X)
    probe.partial_fit(X[1:], y[1:])  # and then the full data solves normally
    ref = LinearProbe(backend=backend).fit(X, y)
    assert_rel(probe.coef_, ref.coef_, 1e-9, "after single-row first chunk")


@pytest.mark.parametrize("shape", [(0, 4), (5, 0), (0, 0)])
def test_empty_arrays(backend, shape):
    X = np.zeros(shape)
    y = np.zeros(shape[0])
    with pytest.raises(ValueError, match=r"0 (sample|feature)"):
        LinearProbe(backend=backend).fit(X, y)
    with pytest.raises(ValueError, match=r"0 (sample|feature)"):
        LinearProbe(backend=backend).partial_fit(X, y)
    with pytest.raises(ValueError, match=r"0 (sample|feature)"):
        SufficientStats(backend=backend).update(X, y)


def test_empty_target_columns(backend):
    X, _ = _data()
    with pytest.raises(ValueError, match="0 targets"):
        LinearProbe(backend=backend).fit(X, np.zeros((30, 0)))


def test_one_class(backend):
    X, _ = _data()
    with pytest.raises(ValueError, match="only one class"):
        LinearProbeClassifier(backend=backend).fit(X, np.full(30, "cat"))
    with pytest.raises(ValueError, match="only one class"):
        LinearProbeClassifier(backend=backend).partial_fit(X, np.zeros(30))


# ------------------------------------------------------------------------------ dtypes
def test_object_dtype_with_strings(backend):
    X, y = _data()
    Xo = X.astype(object)
    Xo[4, 1] = "seven"
    with pytest.raises((ValueError, TypeError), match="could not be converted to float"):
        LinearProbe(backend=backend).fit(Xo, y)
    with pytest.raises((ValueError, TypeError), match="could not be converted to float"):
        LinearProbe(backend=backend).fit(np.array([["a", "b"]] * 5), np.arange(5.0))
    with pytest.raises(ValueError, match="could not be converted to float"):
        LinearProbe(backend=backend).fit(X, np.array(["a"] * 30))


def test_object_dtype_with_numbers_is_converted(backend):
    X, y = _data()
    a = LinearProbe(backend=backend).fit(X.astype(object), y)
    b = LinearProbe(backend=backend).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_object_dtype_with_dict_raises_typeerror(backend):
    """As scikit-learn's check_dtype_object expects: a non-number object is a TypeError."""
    X, y = _data()
    Xo = X.astype(object)
    Xo[0, 0] = {"foo": "bar"}
    with pytest.raises(TypeError, match="argument must be a string.* number"):
        LinearProbe(backend=backend).fit(Xo, y)


def test_complex_input(backend):
    X, y = _data()
    with pytest.raises(ValueError, match="Complex data not supported"):
        LinearProbe(backend=backend).fit(X + 1j, y)
    with pytest.raises(ValueError, match="Complex data not supported"):
        LinearProbe(backend=backend).fit(X, y + 0j)
    probe = LinearProbe(backend=backend).fit(X, y)
    with pytest.raises(ValueError, match="Complex data not supported"):
        probe.predict(X.astype(np.complex64))


@pytest.mark.parametrize("fmt", ["csr_matrix", "csc_matrix", "coo_matrix", "csr_array"])
def test_sparse_input(backend, fmt):
    X, y = _data()
    Xs = getattr(sparse, fmt)(X)
    with pytest.raises(TypeError, match="sparse"):
        LinearProbe(backend=backend).fit(Xs, y)
    with pytest.raises(TypeError, match="sparse"):
        LinearProbe(backend=backend).fit(X, getattr(sparse, fmt)(y[:, None]))
    probe = LinearProbe(backend=backend).fit(X, y)
    with pytest.raises(TypeError, match="toarray"):
        probe.predict(Xs)


@pytest.mark.parametrize(
    "view",
    [
        lambda X: X[:, ::2],
        lambda X: np.asfortranarray(X),
        lambda X: X[::-1],
        lambda X: X[::-1, ::-1],
        lambda X: X[::3],
        lambda X: X.T.copy().T,
    ],
    ids=["col_stride", "fortran", "neg_row_stride", "neg_both", "row_stride", "transposed"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cv", ["gcv", "loo", 3])
def test_non_contiguous_inputs(backend, view, dtype, cv):
    rng = np.random.default_rng(5)
    base = (rng.normal(size=(90, 16)) + 2).astype(dtype)
    Xv = view(base)
    Xc = np.ascontiguousarray(Xv, dtype=np.float64)
    y = Xc @ rng.normal(size=Xc.shape[1]) + rng.normal(size=Xc.shape[0])
    a = LinearProbe(cv=cv, backend=backend).fit(Xv, y)
    b = LinearProbe(cv=cv, backend=backend).fit(Xc, y)
    assert a.alpha_ == pytest.approx(b.alpha_, rel=1e-12)
    assert_rel(a.coef_, b.coef_, 1e-10, "coef_")
    assert_rel(a.predict(Xv), b.predict(Xc), 1e-10, "predict")
    s1 = SufficientStats(3, backend=backend).update(Xv, y)
    s2 = SufficientStats(3, backend=backend).update(Xc, y)
    assert_rel(s1.normal_equations().gram, s2.normal_equations().gram, 1e-12, "gram")


def test_float16_and_integer_inputs(backend):
    rng = np.random.default_rng(6)
    X16 = (rng.normal(size=(60, 5)) * 3).astype(np.float16)
    y = rng.normal(size=60)
    a = LinearProbe(backend=backend).fit(X16, y)
    b = LinearProbe(backend=backend).fit(X16.astype(np.float64), y)
    assert a.alpha_ == pytest.approx(b.alpha_, rel=1e-12)
    assert_rel(a.coef_, b.coef_, 1e-10, "float16")
    assert_rel(a.predict(X16), b.predict(X16.astype(np.float64)), 1e-10, "float16 predict")
    Xi = rng.integers(-5, 6, size=(60, 5))
    for arr in (Xi, Xi.astype(np.int8), Xi.astype(np.uint16) * 0 + (Xi > 0)):
        c = LinearProbe(alphas=[1.0], backend=backend).fit(arr, y)
        d = LinearProbe(alphas=[1.0], backend=backend).fit(arr.astype(np.float64), y)
        assert_rel(c.coef_, d.coef_, 1e-12, str(arr.dtype))
    bools = Xi > 0
    c = LinearProbe(alphas=[1.0], backend=backend).fit(bools, y)
    d = LinearProbe(alphas=[1.0], backend=backend).fit(bools.astype(np.float64), y)
    assert_rel(c.coef_, d.coef_, 1e-12, "bool")


def test_lists_and_dataframes(backend):
    pd = pytest.importorskip("pandas")
    X, y = _data()
    ref = LinearProbe(backend=backend).fit(X, y)
    from_list = LinearProbe(backend=backend).fit(X.tolist(), y.tolist())
    from_df = LinearProbe(backend=backend).fit(pd.DataFrame(X), pd.Series(y))
    assert_rel(from_list.coef_, ref.coef_, 1e-12, "list")
    assert_rel(from_df.coef_, ref.coef_, 1e-12, "DataFrame")
    assert_rel(from_df.predict(pd.DataFrame(X)), ref.predict(X), 1e-12, "DataFrame predict")


# ------------------------------------------------------------------------------ torch
@pytest.mark.parametrize("tdtype", ["float32", "float64", "bfloat16", "float16"])
def test_torch_tensors(backend, tdtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    X = rng.normal(size=(70, 8)) + 1.5
    y = X @ rng.normal(size=8) + rng.normal(size=70)
    t = torch.from_numpy(X).to(getattr(torch, tdtype))
    X_same = t.to(torch.float64).numpy()  # the exact values the tensor holds
    a = LinearProbe(cv=4, backend=backend).fit(t, y)
    b = LinearProbe(cv=4, backend=backend).fit(X_same, y)
    assert a.alpha_ == pytest.approx(b.alpha_, rel=1e-12)
    assert_rel(a.coef_, b.coef_, 1e-10, f"torch {tdtype}")
    assert_rel(a.predict(t), b.predict(X_same), 1e-10, "predict on tensor")
    # torch targets, requires_grad and non-contiguous tensors are fine too
    yt = torch.from_numpy(y).requires_grad_(True)
    c = LinearProbe(cv=4, backend=backend).fit(t.T.contiguous().T, yt)
    assert_rel(c.coef_, b.coef_, 1e-10, "non-contiguous tensor")
    clf = LinearProbeClassifier(backend=backend).fit(t, torch.from_numpy((y > 0).astype(np.int64)))
    ref = LinearProbeClassifier(backend=backend).fit(X_same, (y > 0).astype(np.int64))
    assert_rel(clf.decision_function(t), ref.decision_function(X_same), 1e-10, "classifier")


def test_torch_complex_raises():
    torch = pytest.importorskip("torch")
    X, y = _data()
    with pytest.raises(ValueError, match="Complex"):
        LinearProbe().fit(torch.from_numpy(X + 1j), y)


# ------------------------------------------------------------------------------ state on error
BAD_FITS = {
    "nan_X": lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), y),
    "inf_y": lambda X, y: (X, np.where(np.arange(y.size) == 3, np.inf, y)),
    "ndim": lambda X, y: (X[:, 0], y),
    "lengths": lambda X, y: (X, y[:-1]),
    "one_row": lambda X, y: (X[:1], y[:1]),
    "strings": lambda X, y: (np.full(X.shape, "x"), y),
    "sparse": lambda X, y: (sparse.csr_matrix(X), y),
    "complex": lambda X, y: (X + 1j, y),
}


@pytest.mark.parametrize("bad", sorted(BAD_FITS))
@pytest.mark.parametrize("cv", ["gcv", 3])
def test_failed_fit_leaves_estimator_unchanged(backend, bad, cv):
    X, y = _data(seed=1, n=40, d=5)
    probe = LinearProbe(cv=cv, backend=backend).fit(X, y)
    before = snapshot(probe)
    Xb, yb = BAD_FITS[bad](X * 2 + 1, y * 3)
    with pytest.raises((ValueError, TypeError)):
        probe.fit(Xb, yb)
    assert_unchanged(probe, before)
    if bad != "one_row":  # one row is a valid partial_fit chunk
        with pytest.raises((ValueError, TypeError)):
            probe.partial_fit(Xb, yb)
        assert_unchanged(probe, before)


def test_failed_partial_fit_leaves_streaming_state_unchanged(backend):
    X, y = _data(seed=2, n=60, d=5, k=2)
    probe = LinearProbe(cv=3, backend=backend).partial_fit(X[:30], y[:30])
    before = snapshot(probe)
    rows_seen = probe.stats_.rows_seen
    bad_chunks = [
        (X[30:, :4], y[30:]),  # wrong n_features
        (X[30:], y[30:, :1]),  # wrong n_targets
        (X[30:], y[31:]),  # lengths
        (np.where(X[30:] > 1, np.nan, X[30:]), y[30:]),
    ]
    for Xb, yb in bad_chunks:
        with pytest.raises(ValueError):
            probe.partial_fit(Xb, yb)
        assert_unchanged(probe, before)
        assert probe.stats_.rows_seen == rows_seen
    probe.partial_fit(X[30:], y[30:])
    ref = LinearProbe(cv=3, backend=backend).fit(X, y)
    assert_rel(probe.coef_, ref.coef_, 1e-9, "after recovering from errors")


def test_classifier_failed_fit_and_unknown_label(backend):
    X, y = _data(seed=3, n=45, d=4)
    labels = np.array(["a", "b", "c"])[np.arange(45) % 3]
    clf = LinearProbeClassifier(cv=3, backend=backend).fit(X, labels)
    before = snapshot(clf)
    with pytest.raises(ValueError, match="only one class"):
        clf.fit(X, np.full(45, "a"))
    assert_unchanged(clf, before)
    with pytest.raises(ValueError, match=r"not in classes"):
        clf.partial_fit(X[:3], np.array(["a", "b", "zebra"]))
    assert_unchanged(clf, before)
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:3, :2], labels[:3])
    assert_unchanged(clf, before)


def test_failed_kfold_solve_leaves_estimator_unchanged(backend):
    X, y = _data(seed=4)
    probe = LinearProbe(cv=3, backend=backend).fit(X, y)
    before = snapshot(probe)
    with pytest.raises(ValueError, match="holds every row"):
        probe.fit(X, y, fold_ids=np.zeros(30, dtype=int))
    assert_unchanged(probe, before)


def test_partial_fit_wrong_n_features(backend):
    X, y = _data()
    probe = LinearProbe(backend=backend).partial_fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but LinearProbe is expecting 4"):
        probe.partial_fit(X[:, :3], y)
    fitted = LinearProbe(backend=backend).fit(X, y)
    with pytest.raises(ValueError, match="expecting 4 features"):
        fitted.predict(X[:, :3])


# ------------------------------------------------------------------------------ not fitted
@pytest.mark.parametrize("est_cls", [LinearProbe, LinearProbeClassifier])
def test_not_fitted(est_cls):
    X, _ = _data()
    est = est_cls()
    methods = ["predict", "decision_function"] if est_cls is LinearProbeClassifier else []
    methods.append("predict")
    for name in methods:
        with pytest.raises(NotFittedError):
            getattr(est, name)(X)
    for attr in ("coef_", "intercept_", "alpha_", "cv_results_", "stats_"):
        with pytest.raises(NotFittedError):
            getattr(est, attr)
        assert not hasattr(est, attr)
    if est_cls is LinearProbeClassifier:
        with pytest.raises(NotFittedError):
            est.predict_proba(X)
        with pytest.raises(NotFittedError):
            est.classes_  # noqa: B018


# ------------------------------------------------------------------------------ hyperparameters
BAD_PARAMS = [
    (LinearProbe, {"cv": 1}, "at least 2 folds"),
    (LinearProbe, {"cv": 0}, "at least 2 folds"),
    (LinearProbe, {"cv": "foo"}, "cv must be"),
    (LinearProbe, {"cv": 2.5}, "cv must be"),
    (LinearProbe, {"cv": True}, "cv must be"),
    (LinearProbe, {"alphas": [-1.0, 1.0]}, ">= 0"),
    (LinearProbe, {"alphas": -1.0}, ">= 0"),
    (LinearProbe, {"alphas": [np.nan]}, "finite"),
    (LinearProbe, {"alphas": [np.inf]}, "finite"),
    (LinearProbe, {"alphas": []}, "non-empty"),
    (LinearProbe, {"alphas": [[1.0, 2.0]]}, "1-D"),
    (LinearProbe, {"alphas": ["a"]}, "alphas must be numbers"),
    (LinearProbe, {"backend": "cuda"}, "backend must be one of"),
    (LinearProbe, {"fit_intercept": "yes"}, "fit_intercept"),
    (LinearProbeClassifier, {"scoring": "accuracy"}, "GCV"),
    (LinearProbeClassifier, {"scoring": "roc_auc", "cv": "gcv"}, "GCV"),
    (LinearProbeClassifier, {"scoring": "f1", "cv": 3}, "scoring must be one of"),
    (LinearProbeClassifier, {"backend": "cuda"}, "backend must be one of"),
]


@pytest.mark.parametrize(("est_cls", "params", "msg"), BAD_PARAMS)
def test_bad_hyperparameters_raise_at_fit(est_cls, params, msg):
    X, y = _data()
    labels = (y > 0).astype(int)
    est = est_cls(**params)  # construction never validates (scikit-learn convention)
    for key, value in params.items():
        assert est.get_params()[key] is value
    with pytest.raises(ValueError, match=msg):
        est.fit(X, labels)
    with pytest.raises(ValueError, match=msg):
        kwargs = {"classes": [0, 1]} if est_cls is LinearProbeClassifier else {}
        est_cls(**params).partial_fit(X, labels, **kwargs)


def test_more_folds_than_samples_and_bad_fold_ids(backend):
    X, y = _data()
    with pytest.raises(ValueError, match="only 30 samples"):
        LinearProbe(cv=31, backend=backend).fit(X, y)
    with pytest.raises(ValueError, match=r"fold_ids must lie in \[0, 3\)"):
        LinearProbe(cv=3, backend=backend).fit(X, y, fold_ids=np.arange(30))
    with pytest.raises(TypeError, match="integers"):
        LinearProbe(cv=3, backend=backend).fit(X, y, fold_ids=np.zeros(30))
    with pytest.raises(ValueError, match="one entry per row"):
        LinearProbe(cv=3, backend=backend).fit(X, y, fold_ids=np.arange(29) % 3)
    with pytest.raises(ValueError, match="only used with integer cv"):
        LinearProbe(cv="gcv", backend=backend).fit(X, y, fold_ids=np.arange(30) % 3)


def test_bad_stats_constructor():
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="n_folds"):
            SufficientStats(bad)
    with pytest.raises(ValueError, match="backend"):
        SufficientStats(1, backend="cuda")


# ------------------------------------------------------------------------------ hypothesis
@st.composite
def arrays_with_nonfinite(draw):
    n = draw(st.integers(2, 12))
    d = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    X = draw(hnp.arrays(dtype, (n, d), elements=st.floats(-100, 100, width=32)))
    i = draw(st.integers(0, n - 1))
    j = draw(st.integers(0, d - 1))
    X[i, j] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return X


@HYP
@given(X=arrays_with_nonfinite(), in_y=st.booleans())
def test_hypothesis_nonfinite_always_rejected(X, in_y):
    n = X.shape[0]
    rng = np.random.default_rng(n)
    good_X = rng.normal(size=X.shape)
    good_y = rng.normal(size=n)
    probe = LinearProbe(alphas=[1.0], backend="numpy").fit(good_X, good_y)
    before = snapshot(probe)
    if in_y:  # use a column that holds the non-finite value as y
        Xb, yb = good_X, X[:, np.argmin(np.isfinite(X).all(axis=0))].astype(np.float64)
    else:
        Xb, yb = X, good_y
    with pytest.raises(ValueError, match="NaN or infinity"):
        probe.fit(Xb, yb)
    with pytest.raises(ValueError, match="NaN or infinity"):
        probe.partial_fit(Xb, yb)
    assert_unchanged(probe, before)


@HYP
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=5))
def test_hypothesis_wrong_ndim_rejected(shape):
    if len(shape) == 2:
        shape = (*shape, 2)
    X = np.ones(shape)
    with pytest.raises(ValueError, match="Expected 2D array"):
        LinearProbe(backend="numpy").fit(X, np.ones(shape[0] if shape else 1))


@HYP
@given(n=st.integers(2, 20), m=st.integers(1, 20), k=st.sampled_from([None, 1, 3]))
def test_hypothesis_mismatched_lengths_rejected(n, m, k):
    if n == m:
        m += 1
    X = np.random.default_rng(n).normal(size=(n, 3))
    y = np.ones(m) if k is None else np.ones((m, k))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        LinearProbe(backend="numpy").fit(X, y)


@HYP
@given(
    X=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=3, max_side=10),
        elements=st.floats(-1e3, 1e3),
    ),
    fit_intercept=st.booleans(),
)
def test_hypothesis_finite_inputs_give_ridge_fits(X, fit_intercept):
    """Any finite input of moderate size (constant, duplicated or all-zero columns included)
    is accepted and gives the scikit-learn Ridge fit."""
    n = X.shape[0]
    y = np.sin(np.arange(n, dtype=np.float64))
    amax = np.abs(X).max()
    if 0 < amax < 1e-100:  # squares would underflow: refused with the documented error
        with pytest.raises(ScaleError, match="outside"):
            LinearProbe(alphas=[1.0], fit_intercept=fit_intercept, backend="numpy").fit(X, y)
        return
    probe = LinearProbe(alphas=[1.0], fit_intercept=fit_intercept, backend="numpy").fit(X, y)
    ref = Ridge(alpha=1.0, fit_intercept=fit_intercept, solver="svd").fit(X, y)
    assert np.all(np.isfinite(probe.coef_))
    np.testing.assert_allclose(probe.predict(X), ref.predict(X), rtol=0, atol=1e-7)

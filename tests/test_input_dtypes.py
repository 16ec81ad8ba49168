"""Input conversion, for every probe kind: strings, objects, complex and sparse data are
refused clearly; non-contiguous views, float16, integer, boolean, list and DataFrame inputs give
the fit of the same values as a float64 array; property tests (hypothesis) of the validation.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sparse
from _probe_kinds import (
    KINDS,
    assert_same_fit,
    assert_unchanged,
    data,
    degree_of,
    make,
    snapshot,
    streams,
)  # fmt: skip
from conftest import assert_rel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from shallowprobes import LinearProbe, SufficientStats
from shallowprobes.errors import ScaleError
from sklearn.linear_model import Ridge

HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
kinds = pytest.mark.parametrize("kind", KINDS)


# ------------------------------------------------------------------------------ refused
@kinds
def test_object_dtype_with_strings(backend, kind):
    X, y = data(degree_of(kind))
    Xo = X.astype(object)
    Xo[4, 1] = "seven"
    with pytest.raises((ValueError, TypeError), match="could not be converted to float"):
        make(kind, backend=backend).fit(Xo, y)
    with pytest.raises((ValueError, TypeError), match="could not be converted to float"):
        make(kind, backend=backend).fit(np.array([["a", "b"]] * 5), np.arange(5.0))
    with pytest.raises(ValueError, match="could not be converted to float"):
        make(kind, backend=backend).fit(X, np.array(["a"] * 30))


@kinds
def test_object_dtype_with_dict_raises_typeerror(backend, kind):
    """As scikit-learn's check_dtype_object expects: a non-number object is a TypeError."""
    X, y = data(degree_of(kind))
    Xo = X.astype(object)
    Xo[0, 0] = {"foo": "bar"}
    with pytest.raises(TypeError, match="argument must be a string.* number"):
        make(kind, backend=backend).fit(Xo, y)


@kinds
def test_complex_input(backend, kind):
    X, y = data(degree_of(kind))
    with pytest.raises(ValueError, match="Complex data not supported"):
        make(kind, backend=backend).fit(X + 1j, y)
    with pytest.raises(ValueError, match="Complex data not supported"):
        make(kind, backend=backend).fit(X, y + 0j)
    probe = make(kind, backend=backend).fit(X, y)
    with pytest.raises(ValueError, match="Complex data not supported"):
        probe.predict(X.astype(np.complex64))


@pytest.mark.parametrize("fmt", ["csr_matrix", "csc_matrix", "coo_matrix", "csr_array"])
@kinds
def test_sparse_input(backend, kind, fmt):
    X, y = data(degree_of(kind))
    Xs = getattr(sparse, fmt)(X)
    with pytest.raises(TypeError, match="sparse"):
        make(kind, backend=backend).fit(Xs, y)
    with pytest.raises(TypeError, match="sparse"):
        make(kind, backend=backend).fit(X, getattr(sparse, fmt)(y[:, None]))
    probe = make(kind, backend=backend).fit(X, y)
    with pytest.raises(TypeError, match="toarray"):
        probe.predict(Xs)


# ------------------------------------------------------------------------------ converted
@kinds
def test_object_dtype_with_numbers_is_converted(backend, kind):
    X, y = data(degree_of(kind))
    a = make(kind, backend=backend).fit(X.astype(object), y)
    b = make(kind, backend=backend).fit(X, y)
    assert_unchanged(a, snapshot(b))  # the same fit, exactly


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
@kinds
def test_non_contiguous_inputs(backend, kind, view, dtype, cv):
    rng = np.random.default_rng(5)
    d = 16 if kind == "linear" else 6  # degree 2: p = 27 (primal) from 6 inputs
    base = (rng.normal(size=(90, d)) + 2).astype(dtype)
    Xv = view(base)
    Xc = np.ascontiguousarray(Xv, dtype=np.float64)
    y = Xc @ rng.normal(size=Xc.shape[1]) + rng.normal(size=Xc.shape[0])
    a = make(kind, cv=cv, backend=backend).fit(Xv, y)
    b = make(kind, cv=cv, backend=backend).fit(Xc, y)
    assert a.alpha_ == pytest.approx(b.alpha_, rel=1e-12)
    assert_same_fit(a, b, 1e-10, "view")
    assert_rel(a.predict(Xv), b.predict(Xc), 1e-10, "predict")
    degree = degree_of(kind)
    s1 = SufficientStats(3, backend=backend, degree=degree).update(Xv, y)
    s2 = SufficientStats(3, backend=backend, degree=degree).update(Xc, y)
    np.testing.assert_array_equal(s1.count, s2.count)
    for field in ("sum_x", "xtx", "xty"):
        assert_rel(getattr(s1, field), getattr(s2, field), 1e-12, field)
    ne1 = s1.normal_equations() if degree == 1 else s1.feature_stats().normal_equations()
    ne2 = s2.normal_equations() if degree == 1 else s2.feature_stats().normal_equations()
    assert_rel(ne1.gram, ne2.gram, 1e-12, "gram")


@kinds
def test_float16_and_integer_inputs(backend, kind):
    rng = np.random.default_rng(6)
    X16 = (rng.normal(size=(60, 5)) * 3).astype(np.float16)
    y = rng.normal(size=60)
    a = make(kind, backend=backend).fit(X16, y)
    b = make(kind, backend=backend).fit(X16.astype(np.float64), y)
    assert a.alpha_ == pytest.approx(b.alpha_, rel=1e-12)
    assert_same_fit(a, b, 1e-10, "float16")
    assert_rel(a.predict(X16), b.predict(X16.astype(np.float64)), 1e-10, "float16 predict")
    Xi = rng.integers(-5, 6, size=(60, 5))
    for arr in (Xi, Xi.astype(np.int8), Xi.astype(np.uint16) * 0 + (Xi > 0), Xi > 0):
        c = make(kind, alphas=[1.0], backend=backend).fit(arr, y)
        d = make(kind, alphas=[1.0], backend=backend).fit(arr.astype(np.float64), y)
        assert_same_fit(c, d, 1e-12, str(arr.dtype))


@kinds
def test_lists_and_dataframes(backend, kind):
    pd = pytest.importorskip("pandas")
    X, y = data(degree_of(kind))
    ref = make(kind, backend=backend).fit(X, y)
    from_list = make(kind, backend=backend).fit(X.tolist(), y.tolist())
    from_df = make(kind, backend=backend).fit(pd.DataFrame(X), pd.Series(y))
    assert_same_fit(from_list, ref, 1e-12, "list")
    assert_same_fit(from_df, ref, 1e-12, "DataFrame")
    assert_rel(from_df.predict(pd.DataFrame(X)), ref.predict(X), 1e-12, "DataFrame predict")


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


@kinds
@HYP
@given(X=arrays_with_nonfinite(), in_y=st.booleans())
def test_hypothesis_nonfinite_always_rejected(kind, X, in_y):
    n = X.shape[0]
    rng = np.random.default_rng(n)
    good_X = rng.normal(size=X.shape)
    good_y = rng.normal(size=n)
    probe = make(kind, alphas=[1.0], backend="numpy").fit(good_X, good_y)
    before = snapshot(probe)
    if in_y:  # use a column that holds the non-finite value as y
        Xb, yb = good_X, X[:, np.argmin(np.isfinite(X).all(axis=0))].astype(np.float64)
    else:
        Xb, yb = X, good_y
    with pytest.raises(ValueError, match="NaN or infinity"):
        probe.fit(Xb, yb)
    if streams(kind):
        with pytest.raises(ValueError, match="NaN or infinity"):
            probe.partial_fit(Xb, yb)
    assert_unchanged(probe, before)


@kinds
@HYP
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=5))
def test_hypothesis_wrong_ndim_rejected(kind, shape):
    if len(shape) == 2:
        shape = (*shape, 2)
    X = np.ones(shape)
    with pytest.raises(ValueError, match="Expected 2D array"):
        make(kind, backend="numpy").fit(X, np.ones(shape[0] if shape else 1))


@kinds
@HYP
@given(n=st.integers(2, 20), m=st.integers(1, 20), k=st.sampled_from([None, 1, 3]))
def test_hypothesis_mismatched_lengths_rejected(kind, n, m, k):
    if n == m:
        m += 1
    X = np.random.default_rng(n).normal(size=(n, 3))
    y = np.ones(m) if k is None else np.ones((m, k))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        make(kind, backend="numpy").fit(X, y)


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
    is accepted and gives the scikit-learn Ridge fit (the linear probe: Ridge is the
    reference)."""
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

"""LinearProbe with one fixed alpha equals scikit-learn's Ridge (float64, relative 1e-8)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_rel, make_regression
from shallowprobes import LinearProbe
from sklearn.linear_model import LinearRegression, Ridge

SHAPES = [(40, 120), (100, 100), (500, 20)]  # n < d, n = d, n >> d
RTOL = 1e-8


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"n{s[0]}_d{s[1]}")
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("k", [None, 1, 3], ids=["y1d", "k1", "k3"])
@pytest.mark.parametrize("seed", [0, 1])
def test_fixed_alpha_equals_sklearn_ridge(backend, shape, fit_intercept, k, seed):
    n, d = shape
    X, y = make_regression(seed, n, d, k)
    alpha = [0.3, 5.0][seed]
    probe = LinearProbe(alphas=[alpha], fit_intercept=fit_intercept, backend=backend).fit(X, y)
    ref = Ridge(alpha=alpha, fit_intercept=fit_intercept, solver="svd").fit(X, y)

    assert probe.alpha_ == alpha
    if k is None:
        assert probe.coef_.shape == (d,)
        assert isinstance(probe.intercept_, float)
    else:
        assert probe.coef_.shape == (k, d)
        assert probe.intercept_.shape == (k,)
    # scikit-learn's Ridge ravels a single-column y; our convention keeps (k, d) for 2-D y
    ref_coef = np.asarray(ref.coef_).reshape(probe.coef_.shape)
    assert_rel(probe.coef_, ref_coef, RTOL, "coef_")
    if fit_intercept:
        ref_intercept = np.asarray(ref.intercept_).reshape(np.shape(probe.intercept_))
        assert_rel(probe.intercept_, ref_intercept, RTOL, "intercept_")
    else:
        assert np.all(np.asarray(probe.intercept_) == 0.0)

    rng = np.random.default_rng(seed + 100)
    X_new = rng.normal(size=(37, d))
    for Xp in (X, X_new):
        pred = probe.predict(Xp)
        assert pred.shape == ((Xp.shape[0],) if k is None else (Xp.shape[0], k))
        assert_rel(pred, ref.predict(Xp).reshape(pred.shape), RTOL, "predict")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"n{s[0]}_d{s[1]}")
@pytest.mark.parametrize("k", [None, 2], ids=["y1d", "k2"])
def test_large_offset_centring_is_exact(backend, shape, k):
    """Features with mean 1e4 and std 1: centring must not lose the signal.

    Reference: Ridge on X - 1e4, which is computed exactly in floating point (Sterbenz), so the
    reference suffers no cancellation; the intercept is then mapped back to the raw frame.
    """
    n, d = shape
    offset = 1e4
    Z, y = make_regression(7, n, d, k)
    X = Z + offset
    Xs = X - offset  # exact
    alpha = 2.0
    probe = LinearProbe(alphas=[alpha], backend=backend).fit(X, y)
    ref = Ridge(alpha=alpha, solver="svd").fit(Xs, y)
    assert_rel(probe.coef_, ref.coef_, RTOL, "coef_ with offset")
    ref_intercept = ref.intercept_ - offset * np.asarray(ref.coef_).sum(axis=-1)
    # the intercept is O(offset * |coef|); its rounding is relative to that scale
    scale = offset * np.abs(ref.coef_).sum(axis=-1).max()
    np.testing.assert_allclose(probe.intercept_, ref_intercept, rtol=0, atol=RTOL * scale)
    # predictions on the training rows: compare with the shifted reference
    assert_rel(probe.predict(X), ref.predict(Xs), 1e-9, "predict with offset")


@pytest.mark.parametrize("k", [None, 3], ids=["y1d", "k3"])
def test_large_offset_targets(backend, k):
    """Targets with a large offset (1e6): the intercept absorbs it, coef_ is unchanged."""
    X, y = make_regression(3, 200, 15, k)
    alpha = 1.0
    base = LinearProbe(alphas=[alpha], backend=backend).fit(X, y)
    shifted = LinearProbe(alphas=[alpha], backend=backend).fit(X, y + 1e6)
    assert_rel(shifted.coef_, base.coef_, 1e-8, "coef_ with y offset")
    np.testing.assert_allclose(
        np.asarray(shifted.intercept_) - 1e6, base.intercept_, rtol=0, atol=1e-8 * 1e6
    )


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("k", [None, 2], ids=["y1d", "k2"])
def test_alpha_zero_full_rank_equals_least_squares(backend, fit_intercept, k):
    X, y = make_regression(11, 300, 25, k)
    probe = LinearProbe(alphas=[0.0], fit_intercept=fit_intercept, backend=backend).fit(X, y)
    ref = LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    assert probe.alpha_ == 0.0
    assert_rel(probe.coef_, ref.coef_, 1e-9, "coef_ alpha=0")
    if fit_intercept:
        assert_rel(probe.intercept_, ref.intercept_, 1e-9, "intercept_ alpha=0")
    assert_rel(probe.predict(X), ref.predict(X), 1e-9, "predict alpha=0")


def test_translation_and_scale_covariance(backend):
    """Invariances that follow from the model: y -> c*y scales coef_; X -> X + b leaves coef_."""
    X, y = make_regression(5, 120, 30)
    alpha = 3.0
    p0 = LinearProbe(alphas=[alpha], backend=backend).fit(X, y)
    p1 = LinearProbe(alphas=[alpha], backend=backend).fit(X, 4.0 * y)
    b = np.random.default_rng(0).normal(size=30) * 50
    p2 = LinearProbe(alphas=[alpha], backend=backend).fit(X + b, y)
    assert_rel(p1.coef_, 4.0 * p0.coef_, 1e-10, "scale y")
    assert_rel(p2.coef_, p0.coef_, 1e-9, "translate X")
    assert_rel(p2.predict(X + b), p0.predict(X), 1e-9, "translate X predictions")


def test_fortran_and_c_order_and_row_permutation(backend):
    X, y = make_regression(9, 80, 12, 2)
    alpha = 0.7
    ref = LinearProbe(alphas=[alpha], backend=backend).fit(X, y)
    pf = LinearProbe(alphas=[alpha], backend=backend).fit(np.asfortranarray(X), y)
    perm = np.random.default_rng(1).permutation(80)
    pp = LinearProbe(alphas=[alpha], backend=backend).fit(X[perm], y[perm])
    assert_rel(pf.coef_, ref.coef_, 1e-12, "Fortran order")
    assert_rel(pp.coef_, ref.coef_, 1e-10, "row permutation")
    assert_rel(pp.intercept_, ref.intercept_, 1e-10, "row permutation intercept")


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_alpha_zero_rank_deficient_gives_minimum_norm_solution(backend, fit_intercept):
    """alpha=0 with duplicated/constant columns or n < d: the minimum-norm least-squares fit."""
    rng = np.random.default_rng(12)
    base = rng.normal(size=(50, 5))
    X_dup = np.c_[base, base[:, 0], np.ones(50)]
    X_wide = rng.normal(size=(20, 60))
    for X in (X_dup, X_wide):
        y = rng.normal(size=X.shape[0])
        probe = LinearProbe(alphas=[0.0], fit_intercept=fit_intercept, backend=backend).fit(X, y)
        Xc = X - X.mean(axis=0) if fit_intercept else X
        yc = y - y.mean() if fit_intercept else y
        assert_rel(probe.coef_, np.linalg.pinv(Xc) @ yc, 1e-9, "minimum-norm coef_")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_rows_blocked_paths(backend, dtype):
    """More rows than the internal block sizes (4096 / 8192): accumulation and prediction are
    done in row blocks; the result must not depend on that."""
    X, y = make_regression(13, 9000, 6, 2)
    X = (X + 50).astype(dtype)
    probe = LinearProbe(alphas=[0.5], backend=backend).fit(X, y)
    ref = Ridge(alpha=0.5, solver="svd").fit(X.astype(np.float64), y)
    assert_rel(probe.coef_, ref.coef_, 1e-8, "coef_ with many rows")
    assert_rel(probe.predict(X), ref.predict(X.astype(np.float64)), 1e-9, "predict")
    X_bad = X.copy()
    X_bad[-1, -1] = np.nan  # in the last block
    with pytest.raises(ValueError, match="NaN or infinity"):
        LinearProbe(backend=backend).fit(X_bad, y)
    with pytest.raises(ValueError, match="NaN or infinity"):
        probe.predict(np.asfortranarray(X_bad))

"""NaN/inf detection fused into accumulation: anywhere in X, for fresh and existing statistics.

Fresh statistics (fit, a first partial_fit, update on empty SufficientStats) are checked while
rows are accumulated; a bad value past the first row block must still be caught, and nothing
may be left behind.
"""

from __future__ import annotations

import numpy as np
import pytest
from shallowprobes import LinearProbe, LinearProbeClassifier, SufficientStats


def _data(seed: int, n: int = 9000, d: int = 6, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) + 3.0).astype(dtype)
    y = X @ rng.standard_normal(d) + rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("row", [0, 4500, 8999])  # first row (feeds the shift), middle, last
def test_fit_rejects_nonfinite_anywhere_and_keeps_state(backend, dtype, bad, row):
    X, y = _data(1, dtype=dtype)
    probe = LinearProbe(cv=3, backend=backend).fit(X, y)
    coef, pred = probe.coef_.copy(), probe.predict(X[:50])
    Xbad = X.copy()
    Xbad[row, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        probe.fit(Xbad, y)
    np.testing.assert_array_equal(probe.coef_, coef)
    np.testing.assert_array_equal(probe.predict(X[:50]), pred)


@pytest.mark.parametrize("row", [0, 8999])
def test_first_partial_fit_with_nonfinite_leaves_estimator_unfitted(backend, row):
    X, y = _data(2)
    X[row, 0] = np.nan
    clf = LinearProbeClassifier(backend=backend)
    with pytest.raises(ValueError, match="NaN or infinity"):
        clf.partial_fit(X, (y > y.mean()).astype(int), classes=[0, 1])
    assert not hasattr(clf, "n_features_in_")
    with pytest.raises(ValueError):  # NotFittedError is a ValueError
        clf.predict(X[:3])


def test_sufficient_stats_update_with_nonfinite_stays_empty_then_works(backend):
    X, y = _data(3)
    bad = X.copy()
    bad[7000, 4] = np.inf
    stats = SufficientStats(n_folds=2, backend=backend)
    with pytest.raises(ValueError, match="NaN or infinity"):
        stats.update(bad, y)
    assert stats.is_empty and stats.n_features is None
    stats.update(X, y)  # usable afterwards, and equal to fresh statistics of the same rows
    ref = SufficientStats(n_folds=2, backend=backend).update(X, y)
    for field in ("count", "sum_x", "xtx", "xty", "yty"):
        np.testing.assert_array_equal(getattr(stats, field), getattr(ref, field))


def test_existing_stats_are_untouched_by_a_bad_chunk(backend):
    X, y = _data(4)
    stats = SufficientStats(backend=backend).update(X[:5000], y[:5000])
    before = {f: getattr(stats, f).copy() for f in ("count", "sum_x", "xtx", "xty", "yty")}
    bad = X[5000:].copy()
    bad[-1, -1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        stats.update(bad, y[5000:])
    for field, arr in before.items():
        np.testing.assert_array_equal(getattr(stats, field), arr)

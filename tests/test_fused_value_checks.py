"""X's finiteness and magnitude checks inside the Rust core's pass over the rows.

The core's degree-1 accumulation returns the largest |x_ij| it staged, and linear probes and
`SufficientStats.update` check X's magnitude with it instead of a pass of their own. These tests
hold the returned value to numpy over dtypes and layouts, and the errors and the
all-or-nothing rule to what a separate check gave."""

from __future__ import annotations

import numpy as np
import pytest
import shallowprobes as sp
from conftest import requires_rust
from shallowprobes.errors import NonFiniteError, ScaleError

pytestmark = requires_rust


def _empty_stats(d: int, k: int):
    return (np.zeros(1), np.zeros((1, d)), np.zeros((1, k)), np.zeros((1, d, d)),
            np.zeros((1, d, k)), np.zeros((1, k, k)))  # fmt: skip


def _layouts(X: np.ndarray):
    yield "C", X
    yield "F", np.asfortranarray(X)
    yield "row-strided", np.repeat(X, 2, axis=0)[::2]
    yield "column-strided", np.repeat(X, 3, axis=1)[:, ::3]
    yield "reversed", X[::-1].copy()[::-1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_core_returns_the_largest_magnitude(dtype, precision, seed):
    from shallowprobes.backends import rust_kernels

    rng = np.random.default_rng(seed)
    n, d, k = 2100, 37, 2  # more than one 1024-row block
    X = (rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-3, 3, size=d)).astype(dtype)
    X[rng.integers(n), rng.integers(d)] = -7.5e4  # a negative extreme
    Y = rng.standard_normal((n, k))
    for name, Xl in _layouts(X):
        got = rust_kernels.accumulate(
            Xl, Y, None, np.zeros(d), np.zeros(k), *_empty_stats(d, k), precision=precision
        )
        assert got == float(np.abs(X.astype(np.float64)).max()), name
    # no rows: 0
    got = rust_kernels.accumulate(X[:0], Y[:0], None, np.zeros(d), np.zeros(k),
                                  *_empty_stats(d, k))  # fmt: skip
    assert got == 0.0


def test_core_returns_the_largest_magnitude_of_half_rows():
    from shallowprobes.backends import rust_kernels

    rng = np.random.default_rng(3)
    X = (rng.standard_normal((1500, 9)) * 300).astype(np.float16)
    half = rust_kernels.half_rows(X)
    assert half is not None
    got = rust_kernels.accumulate(half, np.zeros((1500, 0)), None, np.zeros(9), np.zeros(0),
                                  *_empty_stats(9, 0), precision="float32")  # fmt: skip
    assert got == float(np.abs(X.astype(np.float64)).max())


@pytest.mark.parametrize("scale", [1e160, 1e-160])
@pytest.mark.parametrize("cv", ["gcv", 3, "loo"])
def test_linear_probe_refuses_out_of_range_x(scale, cv):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 5))
    X[17, 3] = scale if scale > 1 else X[17, 3]
    if scale < 1:
        X = X * scale  # every entry tiny: squares underflow
    y = rng.standard_normal(200)
    probe = sp.LinearProbe(cv=cv)
    with pytest.raises(ScaleError, match="outside"):
        probe.fit(X, y)
    assert not hasattr(probe, "coef_") and getattr(probe, "_stats", None) is None


def test_partial_fit_and_update_leave_statistics_unchanged_on_a_bad_chunk():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((300, 6)), rng.standard_normal(300)
    bad = X[:50].copy()
    bad[7, 2] = 3e155
    nan = X[:50].copy()
    nan[3, 1] = np.nan
    probe = sp.LinearProbe(cv=3).partial_fit(X[:100], y[:100])
    stats = sp.SufficientStats(n_folds=3).update(X[:100], y[:100])
    before = [np.array(getattr(stats, f)).copy() for f in ("count", "sum_x", "xtx", "xty")]
    coef = probe.coef_.copy()
    for chunk, err in ((bad, ScaleError), (nan, NonFiniteError)):
        with pytest.raises(err):
            probe.partial_fit(chunk, y[:50])
        with pytest.raises(err):
            stats.update(chunk, y[:50])
        np.testing.assert_array_equal(probe.coef_, coef)
        for f, a in zip(("count", "sum_x", "xtx", "xty"), before):
            np.testing.assert_array_equal(getattr(stats, f), a)
    assert stats.rows_seen == 100
    # a good chunk still goes in afterwards, as in one fit on all the rows
    probe.partial_fit(X[100:], y[100:])
    ref = sp.LinearProbe(cv=3).fit(X, y)
    np.testing.assert_allclose(probe.coef_, ref.coef_, rtol=1e-10, atol=1e-12)


def test_fresh_device_statistics_take_the_torch_kernels(monkeypatch):
    """Where `backend="auto"` puts fresh statistics on a torch device (a CUDA first chunk),
    the kernels and the value check must be torch's, decided from that device before anything
    is accumulated. Simulated on the CPU by making every chunk count as a device chunk."""
    torch = pytest.importorskip("torch")
    from shallowprobes.solve import stats as stats_module

    monkeypatch.setattr(stats_module, "uses_torch", lambda backend, X: True)
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((120, 4)), rng.standard_normal(120)
    s = sp.SufficientStats(backend="auto").update(torch.from_numpy(X), torch.from_numpy(y))
    assert s._device is not None and isinstance(s.xtx, torch.Tensor)
    ref = sp.SufficientStats(backend="numpy").update(X, y)
    np.testing.assert_allclose(s.xtx.cpu().numpy(), ref.xtx, rtol=1e-12, atol=1e-10)
    bad = X.copy()
    bad[2, 1] = 1e160
    fresh = sp.SufficientStats(backend="auto")
    with pytest.raises(ScaleError):
        fresh.update(torch.from_numpy(bad), torch.from_numpy(y))
    assert fresh.count is None and fresh._device is None  # nothing half set

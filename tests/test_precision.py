"""precision= of SufficientStats and the linear probes: the float32 Gram path of the Rust core
and raw bfloat16 / float16 input (docs/design.md §8 for the error bound)."""

from __future__ import annotations

import numpy as np
import pytest
from shallowprobes import LinearProbe, LinearProbeClassifier, SufficientStats
from shallowprobes.backends import get_backend

pytestmark = pytest.mark.skipif(
    get_backend("auto").name != "rust", reason="the float32 Gram path is in the Rust core"
)

U32 = 2.0**-24
BOUND = (1024 + 2) * U32  # documented (m + 2) u with m = 1024 rows per block


def _data(n, d, k, offset, seed):
    rng = np.random.default_rng(seed)
    scales = 0.1 + rng.random(d) * 5
    X = (offset + rng.standard_normal((n, d)) * scales).astype(np.float32)
    Y = 3.0 + rng.standard_normal((n, k))
    return X, Y


def _bound_check(fast: SufficientStats, exact: SufficientStats, Xs: np.ndarray, Ys, folds):
    """Every Gram / cross-product entry within BOUND * ||x~_j|| ||x~_l|| (per fold)."""
    K = exact.n_folds
    for f in range(K):
        rows = folds == f
        nx = np.sqrt((Xs[rows] ** 2).sum(axis=0))
        ny = np.sqrt((Ys[rows] ** 2).sum(axis=0))
        assert np.all(np.abs(fast.xtx[f] - exact.xtx[f]) <= BOUND * np.outer(nx, nx) * 1.000001)
        assert np.all(np.abs(fast.xty[f] - exact.xty[f]) <= BOUND * np.outer(nx, ny) * 1.000001)
    np.testing.assert_array_equal(fast.count, exact.count)
    np.testing.assert_allclose(fast.yty, exact.yty, rtol=1e-12)


@pytest.mark.parametrize(
    "n, d, k, K, offset, seed",
    [(3000, 20, 2, 1, 0.0, 0), (2500, 70, 3, 3, 1e3, 1), (1700, 129, 1, 5, -2e4, 2)],
)
def test_float32_gram_within_documented_bound(n, d, k, K, offset, seed):
    X, Y = _data(n, d, k, offset, seed)
    exact = SufficientStats(K, precision="float64").update(X, Y)
    fast = SufficientStats(K, precision="float32").update(X, Y)
    folds = np.arange(n) % K
    _bound_check(fast, exact, X - exact.shift_x, Y - exact.shift_y, folds)
    # centring removes the large offset: the centred Grams agree relative to their own scale
    ge, gf = exact.normal_equations().gram, fast.normal_equations().gram
    dg = np.sqrt(np.diag(ge))
    assert np.all(np.abs(gf - ge) <= 2 * BOUND * np.outer(dg, dg) + 1e-300)


def test_float32_default_stays_exact_for_float32_input():
    X, Y = _data(1500, 30, 2, 10.0, 3)
    auto = SufficientStats().update(X, Y)
    exact = SufficientStats(precision="float64").update(X, Y)
    np.testing.assert_array_equal(auto.xtx, exact.xtx)


def test_streaming_float32_path_uses_its_precision_in_updates():
    X, Y = _data(4000, 25, 1, 5.0, 4)
    one = SufficientStats(precision="float32").update(X, Y)
    two = SufficientStats(precision="float32").update(X[:1000], Y[:1000]).update(X[1000:], Y[1000:])
    exact = (
        SufficientStats(precision="float64").update(X[:1000], Y[:1000]).update(X[1000:], Y[1000:])
    )
    assert not np.array_equal(two.xtx, exact.xtx)  # the f32 path did run for the second chunk
    np.testing.assert_allclose(
        two.normal_equations().gram,
        one.normal_equations().gram,
        rtol=0,
        atol=1e-4 * np.abs(one.normal_equations().gram).max(),
    )


def _bf16_bits(a32: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (finite values)."""
    b = a32.view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def test_float16_raw_input_equals_upcast():
    X, Y = _data(2100, 40, 2, 30.0, 5)
    h = X.astype(np.float16)
    up = h.astype(np.float32)
    exact_raw = SufficientStats(3, precision="float64").update(h, Y)
    exact_up = SufficientStats(3, precision="float64").update(up, Y)
    for f in ("count", "sum_x", "xtx", "xty", "yty"):
        np.testing.assert_array_equal(getattr(exact_raw, f), getattr(exact_up, f))
    auto = SufficientStats(3).update(h, Y)  # float32 Gram by default for half input
    assert not np.array_equal(auto.xtx, exact_up.xtx)
    _bound_check(auto, exact_up, up - exact_up.shift_x, Y - exact_up.shift_y, np.arange(2100) % 3)
    # strided (non-contiguous) half views are read too
    sub = SufficientStats(precision="float64").update(h[::2, ::3], Y[::2])
    ref = SufficientStats(precision="float64").update(up[::2, ::3], Y[::2])
    np.testing.assert_array_equal(sub.xtx, ref.xtx)


def test_bfloat16_raw_input_equals_upcast():
    torch = pytest.importorskip("torch")
    X, Y = _data(1800, 33, 1, -40.0, 6)
    t = torch.from_numpy(X).to(torch.bfloat16)
    up = t.float().numpy()
    np.testing.assert_array_equal(
        _bf16_bits(X), t.view(torch.int16).numpy().view(np.uint16)
    )  # the helper agrees with torch's rounding
    exact_raw = SufficientStats(precision="float64").update(t, Y)
    exact_up = SufficientStats(precision="float64").update(up, Y)
    np.testing.assert_array_equal(exact_raw.xtx, exact_up.xtx)
    np.testing.assert_array_equal(exact_raw.sum_x, exact_up.sum_x)
    auto = SufficientStats().update(t, Y)
    _bound_check(auto, exact_up, up - exact_up.shift_x, Y - exact_up.shift_y, np.zeros(1800, int))


@pytest.mark.parametrize("power", [-300, -90, -70, 0, 60, 100, 300])
@pytest.mark.parametrize("seed", [0, 1])
def test_float32_gram_at_any_scale_of_float64_input(power, seed):
    """The float32 path stages blocks times a power of two: at 2^power times the data its
    statistics are 2^power-multiples of those at scale 1, bit for bit, and within the bound
    of the exact path (before, |x| ~ 1e-25 gave an all-zero Gram and a probe scoring 0, and
    |x| ~ 1e20 a float64-overflow error)."""
    X, Y = _data(2600, 15, 2, 4.0, seed)
    X = X.astype(np.float64)
    s = 2.0**power
    base = SufficientStats(3, precision="float32").update(X, Y)
    fast = SufficientStats(3, precision="float32").update(X * s, Y)
    exact = SufficientStats(3, precision="float64").update(X * s, Y)
    np.testing.assert_array_equal(fast.xtx, base.xtx * s * s)
    np.testing.assert_array_equal(fast.xty, base.xty * s)
    np.testing.assert_array_equal(fast.sum_x, base.sum_x * s)
    _bound_check(fast, exact, X * s - exact.shift_x, Y - exact.shift_y, np.arange(2600) % 3)


@pytest.mark.parametrize("scale", [1e-25, 2.0**-80, 1e20, 1e60])
def test_float32_probe_at_extreme_scales_is_the_float64_probe(scale):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((600, 10))
    y = X @ rng.standard_normal(10) + 0.3 * rng.standard_normal(600)
    # with targets far from 1 too: their own power of two
    for ys in (y, y * 1e30):
        exact = LinearProbe(precision="float64").fit(X * scale, ys)
        fast = LinearProbe(precision="float32").fit(X * scale, ys)
        assert fast.alpha_ == pytest.approx(exact.alpha_, rel=1e-5)  # the grid is from the trace
        np.testing.assert_allclose(fast.coef_, exact.coef_, rtol=1e-4)
        assert fast.score(X * scale, ys) == pytest.approx(exact.score(X * scale, ys), rel=1e-6)


@pytest.mark.parametrize("power", [-110, 100])
def test_float32_and_bfloat16_input_near_their_range_limits(power):
    """float32 / bfloat16 rows near 1e+-33: representable, their squares are not."""
    torch = pytest.importorskip("torch")
    X, Y = _data(1300, 12, 1, 2.0, 7)
    X = (X.astype(np.float64) * 2.0**power).astype(np.float32)
    t = torch.from_numpy(X).to(torch.bfloat16)
    up = t.float().numpy()
    for rows, ref in ((X, X), (t, up)):
        exact = SufficientStats(precision="float64").update(ref, Y)
        fast = SufficientStats(precision="float32").update(rows, Y)
        assert np.all(np.isfinite(exact.xtx)) and exact.xtx[0, 0, 0] > 0
        _bound_check(fast, exact, ref - exact.shift_x, Y - exact.shift_y, np.zeros(1300, int))


def test_half_input_non_finite_and_bad_shapes():
    from shallowprobes.errors import NonFiniteError

    h = np.ones((50, 4), np.float16)
    h[7, 2] = np.inf
    st = SufficientStats()
    with pytest.raises(NonFiniteError):
        st.update(h, np.zeros(50))
    assert st.count is None
    with pytest.raises(ValueError):
        SufficientStats().update(np.ones(5, np.float16), np.zeros(5))
    st = SufficientStats().update(np.ones((5, 3), np.float16), np.arange(5.0))
    with pytest.raises(ValueError):
        st.update(np.ones((5, 4), np.float16), np.arange(5.0))


def test_bad_precision_and_dtypes_raise():
    from shallowprobes import _core
    from shallowprobes.errors import ParameterError

    with pytest.raises(ValueError, match="precision"):
        SufficientStats(precision="float16")
    with pytest.raises(ValueError, match="precision"):
        SufficientStats(precision=32)
    with pytest.raises(ParameterError):
        LinearProbe(precision="half").fit(np.ones((4, 2)) + np.eye(4, 2), np.arange(4.0))
    d, k = 3, 1
    acc = [np.zeros(1), np.zeros((1, d)), np.zeros((1, k)), np.zeros((1, d, d)),
           np.zeros((1, d, k)), np.zeros((1, k, k))]  # fmt: skip
    X, Y = np.ones((4, d), np.float32), np.zeros((4, k))
    sx, sy = np.zeros(d), np.zeros(k)
    with pytest.raises(ValueError, match="precision"):
        _core.accumulate(X, Y, None, sx, sy, *acc, None, "float16")
    with pytest.raises(ValueError, match="raw"):
        _core.accumulate(X.view(np.uint32).astype(np.uint16), Y, None, sx, sy, *acc, None,
                         "float32", "int16")  # fmt: skip
    with pytest.raises(TypeError, match="uint16"):
        _core.accumulate(X, Y, None, sx, sy, *acc, None, "float32", "bfloat16")
    with pytest.raises(TypeError):
        _core.accumulate(X.astype(np.int32), Y, None, sx, sy, *acc)


@pytest.mark.parametrize("cls", [LinearProbe, LinearProbeClassifier])
def test_probes_pass_precision_down(cls):
    rng = np.random.default_rng(7)
    X = (rng.standard_normal((3000, 40)) + 50).astype(np.float32)
    w = rng.standard_normal(40)
    y = X @ w + rng.standard_normal(3000)
    if cls is LinearProbeClassifier:
        y = (y > np.median(y)).astype(int)
    exact = cls(alphas=np.logspace(-2, 4, 7)).fit(X, y)
    fast = cls(alphas=np.logspace(-2, 4, 7), precision="float32").fit(X, y)
    assert fast.get_params()["precision"] == "float32"
    assert not np.array_equal(fast.stats_.xtx, exact.stats_.xtx)
    assert fast.alpha_ == exact.alpha_
    np.testing.assert_allclose(
        fast.coef_, exact.coef_, rtol=0, atol=1e-3 * np.abs(exact.coef_).max()
    )

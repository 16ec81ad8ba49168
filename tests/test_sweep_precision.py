"""sweep on half-precision caches: the Rust core reads float16 / bfloat16 layers as raw bits
(no float32 copy of a block for the degree-1 statistics), and by default (precision="auto")
accumulates them from float32 block Grams within the documented bound (docs/design.md §8):
|G_fast - G_exact| <= (m + 2) u ||x~_j|| ||x~_l|| entrywise, with u = 2^-24, m = 1024 rows
per block and x~ the rows less the statistics' shift. The exact reference is the float64 Gram
of the same stored values, computed here with numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
from _sweep_data import activations, write_sharded
from shallowprobes import LinearProbe, sweep
from shallowprobes import cache_pass as cache_pass_module
from shallowprobes.backends import get_backend
from shallowprobes.caches import Layer
from shallowprobes.errors import ParameterError

pytestmark = pytest.mark.skipif(
    get_backend("auto").name != "rust", reason="raw half-precision rows are read by the Rust core"
)

U32 = 2.0**-24
BOUND = (1024 + 2) * U32
N, D, L = 2600, 12, 2


@pytest.fixture(scope="module")
def half_cache(tmp_path_factory):
    """layer_00 float16 .npy shards, layer_01 bfloat16 .safetensors shards (when torch and
    safetensors are installed, else float16 too), and their float64 copies."""
    H, targets = activations(N, D, L, seed=21)
    try:
        import safetensors  # noqa: F401
        import torch  # noqa: F401

        kinds = ["f16-npy", "bf16-st"]
    except ImportError:
        kinds = ["f16-npy", "f16-npy"]
    root = tmp_path_factory.mktemp("half") / "cache"
    X64 = write_sharded(root, H, [[700, 1900], [1300]], kinds)
    return root, X64, targets["value"]


def no_conversion(monkeypatch):
    """Fail if the pass converts a stored block to float32 (it must hand the bits over):
    neither a converting read of the cache nor a conversion in the pass may happen."""

    def refuse(*args, **kwargs):
        raise AssertionError("a half-precision block was converted to float32 in the pass")

    monkeypatch.setattr(cache_pass_module, "convert_into", refuse)
    monkeypatch.setattr(Layer, "read", refuse)


@pytest.mark.parametrize("cv", ["gcv", 4])
def test_degree_one_sweep_reads_raw_bits_and_float64_is_exact(half_cache, monkeypatch, cv):
    root, X64, y = half_cache
    no_conversion(monkeypatch)
    exact = sweep(root, {"v": y}, degrees=(1,), cv=cv, precision="float64", verbose=False)
    for lay, name in enumerate(exact.layers):
        got = exact.probes[(name, 1, "v")]
        ref = LinearProbe(cv=cv).fit(X64[lay], y)
        np.testing.assert_allclose(got.coef_, ref.coef_, rtol=1e-10, atol=1e-13)
        assert got.alpha_ == ref.alpha_
        # the statistics equal the float64 Gram of the stored values, computed independently
        stats = got.stats_
        Xs = X64[lay] - stats.shift_x
        gram = stats.xtx.sum(axis=0)
        np.testing.assert_allclose(gram, Xs.T @ Xs, rtol=1e-12, atol=1e-9)


def test_default_float32_block_grams_are_within_the_documented_bound(half_cache, monkeypatch):
    root, X64, y = half_cache
    no_conversion(monkeypatch)
    fast = sweep(root, {"v": y}, degrees=(1,), verbose=False)  # precision="auto"
    exact = sweep(root, {"v": y}, degrees=(1,), precision="float64", verbose=False)
    for lay, name in enumerate(fast.layers):
        f, e = fast.probes[(name, 1, "v")], exact.probes[(name, 1, "v")]
        sf, se = f.stats_, e.stats_
        np.testing.assert_array_equal(sf.shift_x, se.shift_x)
        Xs = X64[lay] - se.shift_x
        Ys = y[:, None] - se.shift_y
        nx = np.sqrt((Xs**2).sum(axis=0))
        ny = np.sqrt((Ys**2).sum(axis=0))
        dG = np.abs(sf.xtx.sum(axis=0) - se.xtx.sum(axis=0))
        dC = np.abs(sf.xty.sum(axis=0) - se.xty.sum(axis=0))
        assert np.all(dG <= BOUND * np.outer(nx, nx) * 1.000001)
        assert np.all(dC <= BOUND * np.outer(nx, ny) * 1.000001)
        assert not np.array_equal(sf.xtx, se.xtx)  # the float32 path really ran
        # far below the storage's own rounding: the probes agree closely
        np.testing.assert_allclose(f.predict(X64[lay]), e.predict(X64[lay]), rtol=1e-4,
                                   atol=1e-4 * np.abs(y).max())  # fmt: skip


def test_degree_two_and_dual_rows_still_see_converted_blocks(half_cache):
    root, X64, y = half_cache
    res = sweep(root, {"v": y}, layers=["layer_00"], degrees=(1, 2), cv=3, gamma="scale",
                precision="float64", verbose=False)  # fmt: skip
    from shallowprobes import QuadraticProbe

    ref = QuadraticProbe(cv=3, gamma="scale", solver="primal").fit(X64[0], y)
    got = res.probes[("layer_00", 2, "v")]
    np.testing.assert_allclose(got.predict(X64[0][:100]), ref.predict(X64[0][:100]),
                               rtol=1e-8, atol=1e-10)  # fmt: skip


@pytest.mark.parametrize("bad", ["float16", "", None, 64])
def test_precision_is_validated_before_any_work(half_cache, bad):
    root, _, y = half_cache
    with pytest.raises(ParameterError, match="precision"):
        sweep(root, {"v": y}, degrees=(1,), precision=bad, verbose=False)


@pytest.mark.parametrize("power", [-100, 90])
def test_bfloat16_cache_far_from_unit_scale_keeps_the_bound(tmp_path, power):
    """bfloat16 has float32's range, and the default float32 block Grams used to lose such a
    cache: at 2^-100 the products underflowed (an all-zero Gram), at 2^90 the sums overflowed.
    Now the core stages each block times a power of two: within the bound of the float64
    sweep of the same stored values, and the same probe."""
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    H, targets = activations(1500, 10, 1, seed=4)
    X64 = write_sharded(tmp_path / "cache", H * 2.0**power, [[800]], ["bf16-st"])
    y = targets["value"]
    fast = sweep(tmp_path / "cache", {"v": y}, degrees=(1,), verbose=False)
    exact = sweep(tmp_path / "cache", {"v": y}, degrees=(1,), precision="float64", verbose=False)
    f, e = fast.probes[("layer_00", 1, "v")], exact.probes[("layer_00", 1, "v")]
    Xs = X64[0] - e.stats_.shift_x
    nx = np.sqrt((Xs**2).sum(axis=0))
    assert np.all(nx > 0)
    dG = np.abs(f.stats_.xtx.sum(axis=0) - e.stats_.xtx.sum(axis=0))
    assert np.all(dG <= BOUND * np.outer(nx, nx) * 1.000001)
    assert f.score(X64[0], y) == pytest.approx(e.score(X64[0], y), rel=1e-4)

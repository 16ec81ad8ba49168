"""The Rust backend's eigen solver choice (`rust_kernels.spectrum`): LAPACK's dsyevd from
`LAPACK_EIGH_MIN_ORDER` on, faer below. Both branches must describe the same spectrum as the
core's faer solver and as plain numpy, null directions clamped alike, and fits through either
branch must agree with the numpy backend."""

from __future__ import annotations

import numpy as np
import pytest
import shallowprobes as sp
from conftest import assert_rel, requires_rust

pytestmark = requires_rust


def _gram(d: int, rank: int, seed: int, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((rank + 3, d)) + offset
    A -= A.mean(axis=0)  # a centred Gram: rank <= rows - 1
    G = A.T @ A
    c = A.T @ rng.standard_normal((rank + 3, 4))
    return G, c


def _range_projection(lam: np.ndarray, V: np.ndarray, B: np.ndarray) -> np.ndarray:
    """sum over kept directions of v_j b_j: invariant to signs and rotations of eigenvectors
    inside an eigenspace, unlike V and B themselves."""
    keep = lam > 0
    return V[:, keep] @ B[keep]


@pytest.mark.parametrize("d, rank, seed", [(640, 640, 0), (700, 300, 1), (641, 20, 2)])
def test_lapack_branch_matches_the_core_solver(d, rank, seed):
    from shallowprobes import _core
    from shallowprobes._interrupt import cancel_flag
    from shallowprobes.backends import rust_kernels

    assert d >= rust_kernels.LAPACK_EIGH_MIN_ORDER  # the premise: this is the LAPACK branch
    G, c = _gram(d, min(rank, d), seed, offset=3.0)
    lam_l, V_l, B_l = rust_kernels.spectrum(G, c)
    lam_f, V_f, B_f = _core.spectrum(G, c, cancel_flag())
    top = float(lam_f.max())
    # same eigenvalues (ascending) to round-off relative to the largest
    np.testing.assert_allclose(lam_l, lam_f, rtol=0, atol=1e-10 * top)
    # the same directions are clamped as null (rank of the centred Gram)
    np.testing.assert_array_equal(lam_l > 0, lam_f > 0)
    assert int((lam_l > 0).sum()) == min(rank + 2, d)
    np.testing.assert_array_equal(B_l[lam_l == 0], 0.0)
    # orthonormal eigenvectors that rebuild G
    np.testing.assert_allclose(V_l.T @ V_l, np.eye(d), atol=1e-10)
    assert_rel(V_l @ np.diag(lam_l) @ V_l.T, G, 1e-10, "V diag(lam) V^T")
    # the part of c that the kept directions carry, as from the core and from plain numpy
    ref_lam, ref_V = np.linalg.eigh(G)
    ref_keep = ref_lam > ref_lam.max() * d * np.finfo(float).eps
    ref = ref_V[:, ref_keep] @ (ref_V[:, ref_keep].T @ c)
    assert_rel(_range_projection(lam_l, V_l, B_l), _range_projection(lam_f, V_f, B_f), 1e-8,
               "range projection vs core")  # fmt: skip
    assert_rel(_range_projection(lam_l, V_l, B_l), ref, 1e-8, "range projection vs numpy")


def test_faer_branch_below_the_threshold():
    from shallowprobes import _core
    from shallowprobes._interrupt import cancel_flag
    from shallowprobes.backends import rust_kernels

    G, c = _gram(50, 50, 3)
    got = rust_kernels.spectrum(G, c)
    core = _core.spectrum(G, c, cancel_flag())
    for a, b in zip(got, core):
        np.testing.assert_array_equal(a, b)  # below the threshold it is the core's call


@pytest.mark.parametrize(
    "gram_shape, cxy_shape", [((700, 700), (699, 2)), ((700, 700), (700,))]
)
def test_lapack_branch_rejects_mismatched_shapes(gram_shape, cxy_shape):
    from shallowprobes.backends import rust_kernels

    with pytest.raises(ValueError, match="square Gram matching cxy"):
        rust_kernels.spectrum(np.eye(gram_shape[0]), np.zeros(cxy_shape))


@pytest.mark.parametrize("cv", ["gcv", "loo", 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_fits_through_either_branch_agree_with_numpy(monkeypatch, cv, seed):
    """Lowering the threshold routes small solves through LAPACK: the probe must not change
    beyond round-off, and must agree with the numpy backend."""
    from shallowprobes.backends import rust_kernels

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((300, 40)) + 5.0
    Y = X[:, :3] @ rng.standard_normal((3, 2)) + rng.standard_normal((300, 2))
    grid = np.logspace(-2, 4, 9)
    ref = sp.LinearProbe(alphas=grid, cv=cv, backend="numpy").fit(X, Y)
    faer = sp.LinearProbe(alphas=grid, cv=cv, backend="rust").fit(X, Y)
    monkeypatch.setattr(rust_kernels, "LAPACK_EIGH_MIN_ORDER", 2)
    lapack = sp.LinearProbe(alphas=grid, cv=cv, backend="rust").fit(X, Y)
    for probe in (faer, lapack):
        assert probe.alpha_ == ref.alpha_
        assert_rel(probe.coef_, ref.coef_, 1e-9, "coef_")
        assert_rel(probe.intercept_, ref.intercept_, 1e-9, "intercept_")
        np.testing.assert_allclose(probe.cv_results_["scores"], ref.cv_results_["scores"],
                                   rtol=1e-9)  # fmt: skip

"""Shared fixtures and helpers for the shallowprobes test suite.

Backend parametrization: every test that takes the ``backend`` fixture runs once with the numpy
reference backend and once with the Rust core. The Rust run is skipped (with the reason "Rust
extension not built") only when ``shallowprobes.rust_available()`` is False; in CI the extension
is built, so those tests run there.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import shallowprobes

RUST_SKIP_REASON = "Rust extension not built"

# `make test` sets this: there a missing extension is a failure, never a silent skip.
if os.environ.get("SHALLOWPROBES_REQUIRE_RUST") == "1" and not shallowprobes.rust_available():
    raise RuntimeError(
        "SHALLOWPROBES_REQUIRE_RUST=1 but shallowprobes._core could not be imported; "
        "build it with `make build` (maturin develop --release)."
    )

def pytest_configure(config):
    # also declared in pyproject.toml; registered here too so the marker is known however
    # pytest is invoked (e.g. with -c or from another rootdir)
    config.addinivalue_line(
        "markers", "slow: subprocess, cluster and real-model tests (CI runs them too)"
    )
    config.addinivalue_line(
        "markers",
        "real: needs the [examples] packages (real models and data shipped on PyPI; skipped "
        "without)",
    )


requires_rust = pytest.mark.skipif(not shallowprobes.rust_available(), reason=RUST_SKIP_REASON)

BACKEND_PARAMS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("rust", id="rust", marks=requires_rust),
]


@pytest.fixture(autouse=True, scope="session")
def _single_threaded_blas():
    """One BLAS thread: keeps the suite fast and stable on small (shared) CI machines.

    Does not touch the Rust core's own thread pool (see `shallowprobes.set_num_threads`).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request) -> str:
    """Backend name, parametrized over numpy and (when built) rust."""
    return request.param


def rel_err(actual, desired) -> float:
    """max |actual - desired| / max |desired| (norm-wise relative error, inf-norm)."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    diff = float(np.max(np.abs(actual - desired))) if desired.size else 0.0
    if scale == 0.0:
        return diff
    return diff / scale


def assert_rel(actual, desired, rtol: float, what: str = "") -> None:
    """Assert the norm-wise relative error of ``actual`` against ``desired`` is <= rtol."""
    err = rel_err(actual, desired)
    assert err <= rtol, f"{what}: relative error {err:.3e} > {rtol:.1e}"


def make_regression(seed: int, n: int, d: int, k: int | None = None, noise: float = 0.5):
    """Gaussian features with a dense linear signal plus noise. k=None -> 1-D y."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    kk = 1 if k is None else k
    W = rng.normal(size=(d, kk)) / np.sqrt(d)
    Y = X @ W + noise * rng.normal(size=(n, kk)) + rng.normal(size=kk)
    return X, (Y[:, 0] if k is None else Y)


def make_classification(seed: int, n: int, d: int, n_classes: int = 2, sep: float = 1.0):
    """Gaussian classes with random means (not separable unless sep is large)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    means = rng.normal(size=(n_classes, d)) * sep / np.sqrt(d) * 3
    X = means[y] + rng.normal(size=(n, d))
    return X, y

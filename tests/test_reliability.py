"""Reliability of the public API on awkward inputs: no silent wrong answer.

* a hypothesis fuzz test over shapes, dtypes (float16/32/64, big-endian, integers), memory
  layouts (Fortran, negative strides, row steps, structured-array views with odd byte strides,
  unaligned buffers), magnitudes from 1e-300 to 1e300, NaN/inf positions and chunkings: every
  case either raises the documented exception (NonFiniteError, ScaleError) or gives the fit of
  scikit-learn's Ridge on a float64 contiguous copy (explicit degree-2 features for degree 2);
* all-or-nothing statistics updates while another thread writes NaN into X;
* RAYON_NUM_THREADS / SHALLOWPROBES_NUM_THREADS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shallowprobes import LinearProbe, LinearProbeClassifier, QuadraticProbe, SufficientStats
from shallowprobes.errors import NonFiniteError, ScaleError
from sklearn.linear_model import Ridge

try:
    import torch  # noqa: F401

    HAVE_TORCH = True
except ImportError:  # pragma: no cover
    HAVE_TORCH = False

LAYOUTS = ("C", "F", "neg_rows", "neg_cols", "row_step", "structured", "unaligned")
DTYPES = ("<f8", "<f4", "<f2", ">f8", ">f4", "<i4")
RANGES = {1: (1e-100, 1e100), 2: (1e-50, 1e50)}


def laid_out(values: np.ndarray, layout: str) -> np.ndarray:
    """An array equal to `values` (same dtype) in the given memory layout."""
    n, d = values.shape
    dt = values.dtype
    if layout == "C":
        out = np.ascontiguousarray(values)
    elif layout == "F":
        out = np.asfortranarray(values)
    elif layout == "neg_rows":
        out = np.ascontiguousarray(values[::-1])[::-1]
    elif layout == "neg_cols":
        out = np.ascontiguousarray(values[:, ::-1])[:, ::-1]
    elif layout == "row_step":
        base = np.zeros((2 * n, d), dt)
        base[::2] = values
        out = base[::2]
    elif layout == "structured":
        rec = np.zeros(n, [("x", dt, (d,)), ("pad", "u1", (3,))])
        rec["x"] = values
        out = rec["x"]
        assert out.strides[0] % dt.itemsize != 0 or dt.itemsize == 1
    elif layout == "unaligned":
        buf = np.zeros(n * d * dt.itemsize + 1, np.uint8)
        out = np.ndarray((n, d), dt, buffer=buf, offset=1)
        out[...] = values
        assert dt.itemsize == 1 or not out.flags.aligned
    else:  # pragma: no cover
        raise AssertionError(layout)
    np.testing.assert_array_equal(out, values)
    return out


@st.composite
def cases(draw):
    n = draw(st.integers(6, 28))
    d = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, d))
    exponent = draw(st.integers(-300, 300))
    scale = 10.0**exponent
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    with np.errstate(all="ignore"):
        if dtype.kind == "i":
            values = np.round(base * 20).astype(dtype)
            scale = 1.0
        else:
            values = (base * scale).astype(dtype)
    layout = draw(st.sampled_from(LAYOUTS))
    poison = draw(st.sampled_from([None, None, np.nan, np.inf, -np.inf]))
    spot = (draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1)))
    if poison is not None and dtype.kind == "f":
        values[spot] = poison
    y_exponent = draw(st.sampled_from([0, 0, 0, -200, -120, 120, 200, -40, 40]))
    y = np.sin(np.arange(n) * 1.3 + seed % 7) * 10.0**y_exponent
    return {
        "X": laid_out(values, layout),
        "y": y,
        "layout": layout,
        "dtype": dtype.str,
        "scale": scale,
        "n_chunks": draw(st.integers(1, 3)),
        "seed": seed,
    }


def expected_error(parts, degree: int, targets_first: bool = False):
    """The documented exception for these chunks (X_chunk, y_chunk), or None when a fit must
    succeed. Each chunk is checked as it arrives: X's values (NaN/inf, then its magnitude,
    which must lie in the degree's range unless the chunk is all zero) and y's. X comes first,
    except where X's values are checked inside the statistics' pass over the rows
    (`targets_first`: linear probes and `SufficientStats.update`), after y."""
    lo, hi = RANGES[degree]

    def x_error(Xc):
        X64 = np.array(Xc, dtype=np.float64)
        if not np.isfinite(X64).all():
            return NonFiniteError
        amax = np.abs(X64).max()
        if amax != 0 and not lo <= amax <= hi:
            return ScaleError
        return None

    def y_error(yc):
        ymax = np.abs(yc).max()
        return ScaleError if ymax != 0 and not 1e-100 <= ymax <= 1e100 else None

    for Xc, yc in parts:
        checks = (y_error, x_error) if targets_first else (x_error, y_error)
        for check, arg in zip(checks, (yc, Xc) if targets_first else (Xc, yc)):
            err = check(arg)
            if err is not None:
                return err
    return None


def quadratic_features(U: np.ndarray, gamma: float) -> np.ndarray:
    """phi(u) = [u, sqrt(gamma) s_ab u_a u_b (a <= b)], s_aa = 1, s_ab = sqrt(2): written
    here from the definition, independently of the library."""
    cols = [U]
    d = U.shape[1]
    for a in range(d):
        for b in range(a, d):
            s = 1.0 if a == b else np.sqrt(2.0)
            cols.append((np.sqrt(gamma) * s * U[:, a] * U[:, b])[:, None])
    return np.hstack(cols)


def reference_predictions(X64, y, degree, alpha, gamma):
    # solver="cholesky" solves the normal equations exactly at every scale ("svd" drops
    # singular values below an absolute 1e-15, i.e. every direction of data at 1e-16)
    if degree == 1:
        model = Ridge(alpha=alpha, solver="cholesky").fit(X64, y)
        return model.predict(X64)
    U = X64 - X64.mean(axis=0)
    F = quadratic_features(U, gamma)
    return Ridge(alpha=alpha, solver="cholesky").fit(F, y).predict(F)


def chunks(X, y, k):
    cuts = np.linspace(0, X.shape[0], k + 1).astype(int)
    return [(X[a:b], y[a:b]) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


ESTIMATORS = [
    ("linear-gcv", 1),
    ("linear-kfold", 1),
    ("linear-loo", 1),
    ("linear-dual", 1),
    ("linear-partial", 1),
    ("linear-numpy", 1),
    ("classifier-loo", 1),
    ("quadratic-primal", 2),
    ("quadratic-dual", 2),
    ("quadratic-partial", 2),
]
if HAVE_TORCH:
    ESTIMATORS.append(("linear-torch", 1))


def make(kind: str, alpha: float, gamma: float):
    if kind == "linear-gcv":
        return LinearProbe(alphas=[alpha])
    if kind == "linear-kfold":
        return LinearProbe(alphas=[alpha, 2 * alpha], cv=3)
    if kind == "linear-loo":
        return LinearProbe(alphas=[alpha, 2 * alpha], cv="loo")
    if kind == "linear-partial":
        return LinearProbe(alphas=[alpha])
    if kind == "linear-dual":
        return LinearProbe(alphas=[alpha, 2 * alpha], cv="loo", solver="dual")
    if kind == "linear-numpy":
        return LinearProbe(alphas=[alpha], backend="numpy")
    if kind == "linear-torch":
        return LinearProbe(alphas=[alpha], backend="torch")
    if kind == "classifier-loo":
        return LinearProbeClassifier(alphas=[alpha], cv="loo")
    solver = "dual" if kind == "quadratic-dual" else "primal"
    return QuadraticProbe(alphas=[alpha], gamma=gamma, solver=solver)


# 400 examples (about 20 s here); each draws one estimator route, dtype, layout, scale and
# poison. While written it found: odd-stride and unaligned views misread by the Rust path
# (wrong coefficients, false NaN errors), big-endian arrays refused by the Rust path, negative
# strides refused by the torch path, silently wrong fits at |X| < 1e-155 and GCV scores of 0
# for |y| ~ 1e-200.
@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases(), route=st.sampled_from(ESTIMATORS), alpha_unit=st.floats(0.1, 10.0))
def test_fuzz_public_api_raises_or_matches_reference(case, route, alpha_unit):
    kind, degree = route
    X, y = case["X"], case["y"]
    X64 = np.array(X, dtype=np.float64)  # the values the user means, contiguous float64
    scale = float(np.abs(X64[np.isfinite(X64)]).max()) if np.isfinite(X64).any() else 1.0
    scale = scale if scale > 0 else 1.0
    if kind == "classifier-loo":
        y = np.where(y > np.median(y), 1.0, -1.0)
        if np.unique(y).size < 2:
            return
    parts = chunks(X, y, case["n_chunks"]) if kind.endswith("partial") else [(X, y)]
    err = expected_error(parts, degree, targets_first=degree == 1)
    if err is not None:
        est = make(kind, alpha_unit, 1.0)
        with pytest.raises(err):
            if kind.endswith("partial"):
                for Xc, yc in chunks(X, y, case["n_chunks"]):
                    est.partial_fit(Xc, yc)
                est.coef_  # noqa: B018 (the solve)
            else:
                est.fit(X, y)
        return
    # alpha and gamma in the data's units, so the reference problem is well conditioned at
    # every magnitude (ridge is scale-equivariant)
    alpha = alpha_unit * scale**2
    gamma = 1.0 / scale**2
    est = make(kind, alpha, gamma)
    if kind.endswith("partial"):
        for Xc, yc in chunks(X, y, case["n_chunks"]):
            est.partial_fit(Xc, yc)
    else:
        est.fit(X, y)
    if kind == "classifier-loo":
        got = est.decision_function(X)
    else:
        got = est.predict(X)
    got = np.asarray(got, dtype=np.float64)
    assert np.isfinite(got).all(), "a finite in-range input gave non-finite predictions"
    want = reference_predictions(X64, y, degree, alpha, gamma)
    if kind in ("linear-kfold", "linear-loo", "linear-dual"):
        # two alphas: the reference is the fit at the alpha the CV chose
        want = reference_predictions(X64, y, degree, float(est.alpha_), gamma)
    tol = 1e-6 * max(np.abs(y).max(), np.abs(want).max(), 1e-300)
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    # prediction-time checks see the same layouts: a planted NaN is always caught
    if case["dtype"][1] == "f" and X.shape[0] > 1:
        bad = np.array(X, copy=True)
        bad[-1, -1] = np.nan
        with pytest.raises(NonFiniteError):
            est.predict(laid_out(bad, case["layout"]))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), degree=st.sampled_from([1, 2]), n_folds=st.sampled_from([1, 3]))
def test_fuzz_statistics_update_matches_numpy(case, degree, n_folds):
    """SufficientStats.update over chunks equals the centred Gram computed by numpy on the
    float64 contiguous copy; documented errors leave earlier statistics untouched."""
    X, y = case["X"], case["y"]
    X64 = np.array(X, dtype=np.float64)
    parts = chunks(X, y, case["n_chunks"])
    err = expected_error(parts, degree, targets_first=True)
    # exact float64 arithmetic here; precision="auto" (a float32 Gram for half input) below
    stats = SufficientStats(n_folds=n_folds, degree=degree, precision="float64")
    if err is not None:
        snapshot = None
        with pytest.raises(err):
            for Xc, yc in parts:
                snapshot = None if stats.count is None else [a.copy() for a in _fields(stats)]
                stats.update(Xc, yc)
        if snapshot is not None:  # the failing chunk changed nothing
            for a, b in zip(snapshot, _fields(stats)):
                np.testing.assert_array_equal(a, b)
        return
    for Xc, yc in parts:
        stats.update(Xc, yc)
    if degree == 2:  # statistics of phi(h - c) for the library's centre c: move c to 0
        stats = stats.recentred(np.zeros(X.shape[1]))
    ne = stats.normal_equations(True)
    F = X64 if degree == 1 else quadratic_features(X64, 1.0)
    Fc = F - F.mean(axis=0)
    gram = Fc.T @ Fc
    scale = max(np.abs(gram).max(), 1e-300)
    np.testing.assert_allclose(ne.gram, gram, rtol=0, atol=1e-9 * scale)
    assert stats.n_samples == X.shape[0]
    if degree == 1 and X.dtype == np.float16:
        # the default for half input: float32 block Grams into float64 statistics, within the
        # documented bound (m + 2) 2^-24 ||x_j - s_j|| ||x_l - s_l|| (m = 1024 rows per block,
        # docs/design.md section 8); the shift s is a mean of rows, so ||x - s|| <= 2 sqrt(n)
        # max |x|, a bound that needs nothing from the library
        auto = SufficientStats(n_folds=n_folds)
        for Xc, yc in parts:
            auto.update(Xc, yc)
        col = 2.0 * np.sqrt(X.shape[0]) * np.abs(X64).max(axis=0)
        bound = (1024 + 2) * 2.0**-24 * np.outer(col, col)
        assert np.all(np.abs(auto.normal_equations(True).gram - gram) <= bound + 1e-12 * scale)


def _fields(stats):
    return [stats.count, stats.sum_x, stats.sum_y, stats.xtx, stats.xty, stats.yty]


def test_issue_reproducer_structured_view():
    """The reproducer from the reliability issue: an 18-byte row stride into float32 data."""
    Xi = np.random.default_rng(0).integers(0, 5, (200, 4)).astype(np.float32)
    yi = Xi @ np.array([1.0, 2, 3, 4])
    r = np.zeros(200, [("x", "<f4", (4,)), ("p", "u1", (2,))])
    r["x"] = Xi
    assert r["x"].strides == (18, 4)
    view = LinearProbe().fit(r["x"], yi)
    copy = LinearProbe().fit(np.ascontiguousarray(r["x"]), yi)
    np.testing.assert_allclose(view.coef_, [1, 2, 3, 4], atol=1e-4)
    np.testing.assert_array_equal(view.coef_, copy.coef_)
    stats = SufficientStats().update(r["x"], yi)
    np.testing.assert_array_equal(stats.xtx, SufficientStats().update(Xi, yi).xtx)
    r["x"][5, 2] = np.nan
    with pytest.raises(NonFiniteError):
        view.predict(r["x"])


def test_large_odd_stride_views_are_copied_in_blocks(monkeypatch):
    """A view the core cannot read is copied block by block (never all at once)."""
    from shallowprobes.backends import rust_kernels as _rust_backend

    monkeypatch.setattr(_rust_backend, "_COPY_BLOCK_BYTES", 4096)
    seen = []
    real = _rust_backend._core.accumulate

    def spy(X, *args):
        seen.append(X.shape[0])
        assert X.flags.c_contiguous
        return real(X, *args)

    monkeypatch.setattr(_rust_backend._core, "accumulate", spy)
    rng = np.random.default_rng(1)
    Xi = rng.normal(size=(3000, 5)).astype(np.float32)
    y = Xi @ rng.normal(size=5)
    rec = np.zeros(3000, [("x", "<f4", (5,)), ("p", "u1", (1,))])
    rec["x"] = Xi
    stats = SufficientStats().update(rec["x"], y)
    assert len(seen) > 10 and max(seen) <= 4096 // (5 * 4)
    ref = SufficientStats().update(Xi, y)
    np.testing.assert_allclose(stats.xtx, ref.xtx, rtol=1e-12, atol=1e-9)
    assert stats.n_samples == 3000


def test_concurrent_nan_write_leaves_statistics_all_or_nothing():
    """Another thread plants NaN in X while `update` runs: the statistics are either fully
    updated (the NaN came after its row was read) or exactly as before; never half."""
    rng = np.random.default_rng(2)
    n, d = 300_000, 24
    outcomes = set()
    for attempt in range(6):
        stats = SufficientStats(n_folds=2).update(rng.normal(size=(1000, d)), rng.normal(size=1000))
        before = [a.copy() for a in _fields(stats)]
        X = rng.normal(size=(n, d))
        y = rng.normal(size=n)
        start = threading.Event()

        def writer(X=X, start=start, attempt=attempt):
            start.wait()
            # spread the timing over the attempts: early, during, and late in the pass
            threading.Event().wait(0.002 * (attempt + 1) ** 2)
            X[n - 1 - attempt * 1000, d // 2] = np.nan

        t = threading.Thread(target=writer)
        t.start()
        start.set()
        try:
            stats.update(X, y)
        except NonFiniteError:
            outcomes.add("refused")
            for a, b in zip(before, _fields(stats)):
                np.testing.assert_array_equal(a, b)
        else:
            outcomes.add("updated")
            assert stats.count.sum() == 1000 + n
            for f in range(2):
                np.testing.assert_array_equal(stats.xtx[f], stats.xtx[f].T)
                assert np.isfinite(stats.xtx[f]).all()
        finally:
            t.join()
    assert outcomes  # at least one outcome observed, and every outcome was whole


def _threads_in_subprocess(env: dict) -> int:
    code = "import shallowprobes as sp; print(sp.get_num_threads())"
    full = {k: v for k, v in os.environ.items() if "NUM_THREADS" not in k}
    full.update(env)
    out = subprocess.run(
        [sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


def test_rayon_num_threads_is_honoured():
    assert _threads_in_subprocess({"RAYON_NUM_THREADS": "3"}) == 3
    assert _threads_in_subprocess({"SHALLOWPROBES_NUM_THREADS": "2", "RAYON_NUM_THREADS": "5"}) == 2
    assert _threads_in_subprocess({"RAYON_NUM_THREADS": "junk"}) == _threads_in_subprocess({})


@pytest.mark.parametrize(
    "make_probe, scales",
    [
        (lambda: LinearProbe(cv="loo"), [1e-99, 1e-20, 1e20, 1e99]),
        (lambda: QuadraticProbe(), [1e-49, 1e-10, 1e10, 1e49]),
        (lambda: QuadraticProbe(solver="dual"), [1e-49, 1e49]),
        (lambda: __import__("shallowprobes").CPProbe(random_state=0), [1e-49, 1e-3, 1e20, 1e49]),
        (
            lambda: __import__("shallowprobes").CPProbe(init="random", random_state=0),
            [1e-49, 1e49],
        ),
    ],
)
@pytest.mark.parametrize("y_scale", [1.0, 1e-99, 1e99])
def test_default_fits_are_scale_equivariant_across_the_range(make_probe, scales, y_scale):
    """Ridge with data-relative defaults commutes with rescaling X and y: predictions of a
    fit on (s X, t y), divided by t, equal those of the fit on (X, y), anywhere in the
    documented magnitude range (CP included: its factors start in the data's units)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(240, 5))
    y = X[:, 0] * X[:, 1] + 0.5 * X[:, 2] + 0.1 * rng.normal(size=240)
    base = make_probe().fit(X, y).predict(X)
    for s in scales:
        got = make_probe().fit(X * s, y * y_scale).predict(X * s) / y_scale
        np.testing.assert_allclose(got, base, rtol=0, atol=1e-9 * np.abs(base).max())

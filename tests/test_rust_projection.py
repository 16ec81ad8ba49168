"""The monitors' kernels in the Rust core (`rust_kernels.project_rows`,
`rust_kernels.evaluate_polynomials`) against plain numpy expressions written here: shapes around
the core's block size, n = 1, r = 1, banks with only degree-1 / only degree-2 / mixed members
and members sharing a centre, float64 / float32 / float16 / bfloat16 input, non-contiguous and
copied layouts, bad inputs, NaN (propagated, as in the numpy path), cancellation."""

from __future__ import annotations

import numpy as np
import pytest
from shallowprobes.backends import get_backend, numpy_kernels

pytestmark = pytest.mark.skipif(
    get_backend("auto").name != "rust", reason="the kernels under test are in the Rust core"
)

from shallowprobes import _core  # noqa: E402
from shallowprobes.backends import rust_kernels  # noqa: E402
from shallowprobes.backends.rust_kernels import HalfRows  # noqa: E402

TOL = 1e-12


def _data(n, d, seed, offset=3.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, d) + offset


def _projection_ref(Xd, c, M):
    """(X - c) @ M and the sums of |terms| of every entry (the scale of the tolerance)."""
    U = Xd - c
    return U @ M, np.abs(U) @ np.abs(M)


def _bank(d, kinds, seed):
    """(linear (m, d), centres (m, d), intercepts (m,), quadratics): kinds[j] is "lin" or a
    centre id for a degree-2 member (equal ids share a centre; 0 is the origin)."""
    rng = np.random.default_rng(seed)
    m = len(kinds)
    centre_of = {0: np.zeros(d)}
    W, C, Qs = rng.standard_normal((m, d)), np.empty((m, d)), []
    for j, k in enumerate(kinds):
        if k == "lin":
            C[j] = rng.standard_normal(d)
            Qs.append(None)
        else:
            C[j] = centre_of.setdefault(k, rng.standard_normal(d))
            A = rng.standard_normal((d, d)) * 0.1
            Qs.append(0.5 * (A + A.T))
    return W, C, rng.standard_normal(m), Qs


def _bank_ref(Xd, W, C, b, Qs):
    """The scores f_j(x) = (x - c)^T Q (x - c) + w . (x - c) + b, and their |term| sums."""
    out, scale = np.empty((Xd.shape[0], len(b))), np.empty((Xd.shape[0], len(b)))
    for j in range(len(b)):
        U = Xd - C[j]
        out[:, j] = U @ W[j] + b[j]
        scale[:, j] = np.abs(Xd) @ np.abs(W[j]) + abs(W[j]) @ abs(C[j]) + abs(b[j])
        if Qs[j] is not None:
            out[:, j] += np.einsum("ia,ab,ib->i", U, Qs[j], U)
            scale[:, j] += ((np.abs(U) @ np.abs(Qs[j])) * np.abs(U)).sum(1) + np.abs(U) @ abs(W[j])
    return out, scale


def _assert_close(got, want, scale, what=""):
    assert got.shape == want.shape and got.dtype == np.float64, what
    bad = np.abs(got - want) > TOL * np.maximum(scale, 1e-300)
    assert not bad.any(), f"{what}: {np.argwhere(bad)[:5]} {got[bad][:3]} vs {want[bad][:3]}"


BLOCK_768 = 341  # the core's rows per block at d = 768 (project::block_rows)
PROJ_SHAPES = [(1, 5, 1), (1, 768, 16), (BLOCK_768 + 1, 768, 3), (2 * BLOCK_768 - 1, 768, 1),
               (1000, 37, 64), (64, 1, 2), (0, 4, 3)]  # fmt: skip


@pytest.mark.parametrize("shape", PROJ_SHAPES, ids=lambda s: "n{}-d{}-r{}".format(*s))
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_project_rows_equals_the_numpy_expression(shape, dtype):
    n, d, r = shape
    X = _data(n, d, n + d + r).astype(dtype)
    rng = np.random.default_rng(1)
    c, M = X[:3].astype(np.float64).mean(0) if n else np.zeros(d), rng.standard_normal((d, r))
    got = rust_kernels.project_rows(X, c, M)
    want, scale = _projection_ref(X.astype(np.float64), c, M)
    _assert_close(got, want, scale, f"{dtype.__name__} {shape}")
    _assert_close(numpy_kernels.project_rows(X, c, M), want, scale, "numpy twin")


def _bf16_bits(X):
    """bfloat16 bit patterns of X (rounded to nearest even) and their exact float64 values."""
    u = np.ascontiguousarray(X, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return bits, (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def test_bfloat16_rows_as_raw_bits_torch_and_ml_dtypes():
    n, d, r = 700, 50, 7
    X = _data(n, d, 3)
    bits, Xd = _bf16_bits(X)
    c, M = Xd.mean(0), np.random.default_rng(4).standard_normal((d, r))
    want, scale = _projection_ref(Xd, c, M)
    W, C, b, Qs = _bank(d, ["lin", 1, 1, "lin", 2], 5)
    want_e, scale_e = _bank_ref(Xd, W, C, b, Qs)
    inputs = {"HalfRows": HalfRows(bits, "bfloat16")}
    try:
        import torch

        inputs["torch"] = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16)
    except ImportError:
        pass
    try:
        import ml_dtypes

        inputs["ml_dtypes"] = bits.view(ml_dtypes.bfloat16)
    except ImportError:
        pass
    for what, Xb in inputs.items():
        _assert_close(rust_kernels.project_rows(Xb, c, M), want, scale, what)
        _assert_close(rust_kernels.evaluate_polynomials(Xb, W, C, b, Qs), want_e, scale_e, what)
    # the numpy twin reads HalfRows too (rows decoded to float32)
    _assert_close(numpy_kernels.project_rows(inputs["HalfRows"], c, M), want, scale, "numpy")


BANKS = {
    "one linear": ["lin"],
    "linear": ["lin"] * 6,
    "one quadratic": [1],
    "quadratic": [1, 2, 3, 4],
    "mixed": ["lin", 1, "lin", 2, 3, "lin"],
    "shared centre": [1, "lin", 1, 2, 1],
    "origin": [0, "lin", 0, 1],
}


@pytest.mark.parametrize("bank", list(BANKS))
@pytest.mark.parametrize("n, d", [(1, 6), (512 + 5, 100), (500, 40), (3, 1)])
def test_evaluate_polynomials_equals_the_numpy_expression(bank, n, d):
    """(517, 100): the core's blocks have 512 rows at d = 100, so the last one has 5."""
    X = _data(n, d, n + d)
    W, C, b, Qs = _bank(d, BANKS[bank], d)
    want, scale = _bank_ref(X, W, C, b, Qs)
    for dtype in (np.float64, np.float32, np.float16):
        Xt = X.astype(dtype)
        want, scale = _bank_ref(Xt.astype(np.float64), W, C, b, Qs)
        got = rust_kernels.evaluate_polynomials(Xt, W, C, b, Qs)
        _assert_close(got, want, scale, f"{bank} {dtype.__name__}")
    _assert_close(numpy_kernels.evaluate_polynomials(X.astype(np.float16), W, C, b, Qs), want,
                  scale, "numpy twin")  # fmt: skip


def test_a_lopsided_q_scores_as_its_symmetric_part():
    """The core reads one triangle of Q; the adapter symmetrises a Q that is not symmetric."""
    X = _data(50, 6, 21)
    W, C, b, _ = _bank(6, [1, 2], 22)
    rng = np.random.default_rng(23)
    Qs = [rng.standard_normal((6, 6)), np.triu(rng.standard_normal((6, 6)))]
    want, scale = _bank_ref(X, W, C, b, Qs)
    _assert_close(rust_kernels.evaluate_polynomials(X, W, C, b, Qs), want, scale)
    _assert_close(numpy_kernels.evaluate_polynomials(X, W, C, b, Qs), want, scale)
    with pytest.raises(ValueError, match="quadratic member 1: Q is not symmetric"):
        _core.evaluate_polynomials(X, np.zeros((6, 0)), np.zeros(0), np.zeros(0, np.int64), C,
                                   W, b, [Qs[0] + Qs[0].T, Qs[1]], np.array([0, 1]))  # fmt: skip


def test_layouts_the_core_reads_in_place_and_those_it_copies():
    X = _data(600, 30, 7)
    W, C, b, Qs = _bank(12, ["lin", 1, 1, "lin"], 8)
    M = np.random.default_rng(9).standard_normal((12, 5))
    c = X[:, :12].mean(0)
    big_endian = X[:, ::2][:, :12].astype(">f8")
    structured = np.zeros(600, dtype=[("a", "u1"), ("x", "<f4", (12,))])["x"]  # 49-byte rows
    structured[:] = X[:, :12]
    layouts = {
        "sliced columns": X[:, ::2][:, :12],
        "reversed rows": X[::-1, 3:15],
        "Fortran": np.asfortranarray(X[:, :12]),
        "float32 sliced": X.astype(np.float32)[::3, 1:13],
        "float16 sliced": X.astype(np.float16)[:, ::2][:, :12],
        "big-endian": big_endian,
        "structured field": structured,
        "int64": (X[:, :12] * 10).astype(np.int64),
        "list": X[:5, :12].tolist(),
    }
    for what, Xl in layouts.items():
        Xd = np.asarray(Xl, dtype=np.float64)
        want, scale = _projection_ref(Xd, c, M)
        _assert_close(rust_kernels.project_rows(Xl, c, M), want, scale, what)
        want, scale = _bank_ref(Xd, W, C, b, Qs)
        _assert_close(rust_kernels.evaluate_polynomials(Xl, W, C, b, Qs), want, scale, what)


def test_copied_layouts_are_handled_one_row_block_at_a_time(monkeypatch):
    monkeypatch.setattr(rust_kernels, "_COPY_BLOCK_BYTES", 64 * 8 * 10)  # 10 rows of 64
    X = np.asfortranarray(_data(95, 64, 10)).astype(">f8")
    c, M = X.mean(0), np.random.default_rng(11).standard_normal((64, 3))
    want, scale = _projection_ref(X.astype(np.float64), c, M)
    _assert_close(rust_kernels.project_rows(X, c, M), want, scale)
    W, C, b, Qs = _bank(64, [1, "lin"], 12)
    want, scale = _bank_ref(X.astype(np.float64), W, C, b, Qs)
    _assert_close(rust_kernels.evaluate_polynomials(X, W, C, b, Qs), want, scale)


def test_results_do_not_depend_on_the_thread_count():
    import shallowprobes as sp

    X = _data(3 * BLOCK_768 + 10, 768, 13).astype(np.float32)
    M = np.random.default_rng(14).standard_normal((768, 8))
    W, C, b, Qs = _bank(768, ["lin", 1, 2], 15)
    before = sp.get_num_threads()
    try:
        runs = []
        for t in (1, 2, 3):
            sp.set_num_threads(t)
            runs.append((rust_kernels.project_rows(X, C[0], M),
                         rust_kernels.evaluate_polynomials(X, W, C, b, Qs)))  # fmt: skip
    finally:
        sp.set_num_threads(before)
    for p, e in runs[1:]:
        np.testing.assert_array_equal(p, runs[0][0])
        np.testing.assert_array_equal(e, runs[0][1])


def test_nan_and_infinity_propagate_to_their_rows_like_the_numpy_path():
    X = _data(40, 5, 16)
    X[3, 1], X[17, 4] = np.nan, np.inf
    c, M = np.zeros(5), np.random.default_rng(17).standard_normal((5, 2))
    W, C, b, Qs = _bank(5, ["lin", 1], 18)
    bad = np.zeros(40, bool)
    bad[[3, 17]] = True
    for be in (rust_kernels, numpy_kernels):
        with np.errstate(invalid="ignore"):
            p, e = be.project_rows(X, c, M), be.evaluate_polynomials(X, W, C, b, Qs)
        assert np.isfinite(p[~bad]).all() and np.isfinite(e[~bad]).all(), be.name
        assert not np.isfinite(p[bad]).any() and not np.isfinite(e[bad]).any(), be.name


BAD_PROJECTIONS = [
    (np.zeros(4), np.zeros(4), np.zeros((4, 2)), "X must be a 2-D array"),
    (np.zeros((3, 4)), np.zeros(3), np.zeros((4, 2)), "centre has shape (3,), X has 4 columns"),
    (np.zeros((3, 4)), np.zeros(4), np.zeros((5, 2)), "M has shape (5, 2), expected (4, r)"),
    (np.zeros((3, 4)), np.zeros(4), np.zeros(4), "M has shape (4,)"),
]


@pytest.mark.parametrize("X, c, M, msg", BAD_PROJECTIONS)
def test_bad_projection_shapes_are_value_errors(X, c, M, msg):
    for be in (rust_kernels, numpy_kernels):
        with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            be.project_rows(X, c, M)


def test_bad_bank_shapes_are_value_errors():
    X = np.zeros((3, 4))
    W, C, b, Qs = _bank(4, ["lin", 1], 19)
    cases = [
        ((W[:, :3], C, b, Qs), r"linear has shape \(2, 3\), expected \(m, 4\)"),
        ((W, C[:1], b, Qs), r"centres has shape \(1, 4\), expected \(2, 4\)"),
        ((W, C, b[:1], Qs), r"intercepts has shape \(1,\), expected \(2,\)"),
        ((W, C, b, Qs[:1]), "quadratics must be a sequence of 2 entries"),
        ((W, C, b, [None, np.zeros((3, 3))]), r"quadratics\[1\] has shape \(3, 3\)"),
    ]
    for args, msg in cases:
        for be in (rust_kernels, numpy_kernels):
            with pytest.raises(ValueError, match=msg):
                be.evaluate_polynomials(X, *args)


def test_the_bindings_check_shapes_and_output_arrays_themselves():
    X = np.ones((3, 4))
    with pytest.raises(ValueError, match="centre has 3 entries, X has 4 columns"):
        _core.project_rows(X, np.zeros(3), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"out has shape \[2, 2\], expected \(3, 2\)"):
        _core.project_rows(X, np.zeros(4), np.zeros((4, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="out must be a C-contiguous"):
        _core.project_rows(X, np.zeros(4), np.zeros((4, 2)), np.zeros((3, 4))[:, ::2])
    out = np.full((3, 2), 7.0)
    assert _core.project_rows(X, np.zeros(4), np.ones((4, 2)), out) is out
    np.testing.assert_array_equal(out, 4.0)
    q = [np.eye(4)]
    args = (np.zeros((4, 1)), np.zeros(1), np.array([0]), np.zeros((1, 4)), np.zeros((1, 4)),
            np.zeros(1), q)  # fmt: skip
    with pytest.raises(ValueError, match="output columns must be 0..2, each once"):
        _core.evaluate_polynomials(X, *args, np.array([0]))
    with pytest.raises(ValueError, match="1 quadratic columns, but 1 centres, 1 linear parts, 1 "
                       "intercepts and 2 Q's"):  # fmt: skip
        _core.evaluate_polynomials(X, *args[:6], q * 2, np.array([1]))
    got = _core.evaluate_polynomials(X, *args, np.array([1]))
    np.testing.assert_array_equal(got, [[0.0, 4.0]] * 3)
    with pytest.raises(TypeError):
        _core.project_rows(X.astype(np.int32), np.zeros(4), np.zeros((4, 2)))


def test_a_raised_cancel_flag_interrupts():
    X = _data(5000, 20, 20)
    flag = np.ones(1, dtype=np.uint8)
    with pytest.raises(KeyboardInterrupt):
        _core.project_rows(X, np.zeros(20), np.zeros((20, 2)), None, flag)
    with pytest.raises(KeyboardInterrupt):
        _core.evaluate_polynomials(X, np.zeros((20, 1)), np.zeros(1), np.array([0]),
                                   np.zeros((0, 20)), np.zeros((0, 20)), np.zeros(0), [],
                                   np.zeros(0, dtype=np.int64), None, flag)  # fmt: skip

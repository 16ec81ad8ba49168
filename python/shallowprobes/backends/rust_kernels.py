"""The Rust core behind the same function signatures as `numpy_kernels`.

Only layout adaptation happens here. X is handed over in place when the core can read it as it
is: a float32/float64 numpy array in native byte order, aligned, whose byte strides are whole
elements (C, Fortran, sliced or negative strides are all fine). Anything else (big-endian
arrays, unaligned buffers, views into structured arrays with strides such as 18 bytes) is
copied, one row block at a time where the kernel is additive over rows, so memory stays
bounded; never reinterpreted. Small float64 arrays are made contiguous. Every long call gets
the current cancel flag (see `threads`), so Ctrl-C stops it between blocks.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np

from .. import _core
from .._interrupt import cancel_flag, check_interrupt
from . import numpy_kernels
from .numpy_kernels import check_polynomials, check_projection

name = "rust"

# Row blocks copied for layouts the core cannot read in place: about 64 MiB each.
_COPY_BLOCK_BYTES = 64 << 20


def _f64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _native(X: np.ndarray) -> np.ndarray:
    """A contiguous native-order float32/float64 copy of (a block of) X."""
    dtype = np.float32 if X.dtype.itemsize <= 4 and X.dtype.kind == "f" else np.float64
    # np.array(copy=True), not ascontiguousarray: the latter returns an unaligned C-ordered
    # array as it is
    return np.array(X, dtype=dtype, order="C", copy=True)


def _row_blocks(X: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """X itself when the core reads it in place, else contiguous copies of row blocks."""
    if readable_in_place(X):
        yield slice(0, X.shape[0]), X
        return
    row_bytes = max(1, X.shape[1]) * max(4, X.dtype.itemsize)
    step = max(1, _COPY_BLOCK_BYTES // row_bytes)
    for start in range(0, X.shape[0], step):
        rows = slice(start, start + step)
        yield rows, _native(X[rows])


class HalfRows:
    """Rows stored as bfloat16 or float16, held as their uint16 bit patterns (`bits`, 2-D):
    the core decodes them block by block, so no float32/float64 copy of the whole array is
    made. Indexing rows gives a float32 array (used for the few rows of the initial shift)."""

    def __init__(self, bits: np.ndarray, kind: str) -> None:
        readable = bits.flags.aligned and bits.dtype.isnative
        if not (readable and all(s % 2 == 0 for s in bits.strides)):
            bits = np.array(bits, dtype=np.uint16, order="C", copy=True)
        self.bits, self.kind = bits, kind

    @property
    def shape(self) -> tuple:
        return self.bits.shape

    def __getitem__(self, rows: Any) -> np.ndarray:
        bits = self.bits[rows]
        if self.kind == "float16":
            return bits.view(np.float16).astype(np.float32)
        return (bits.astype(np.uint32) << 16).view(np.float32)


def half_rows(X: Any) -> Optional[HalfRows]:
    """X as `HalfRows` when it is a float16 / bfloat16 array (numpy, ml_dtypes, or a torch
    tensor, copied to host if needed; a HalfRows as it is), else None."""
    if isinstance(X, HalfRows):
        return X
    if type(X).__module__.startswith("torch"):
        kind = {"torch.bfloat16": "bfloat16", "torch.float16": "float16"}.get(str(X.dtype))
        if kind is None or X.ndim != 2:
            return None
        import torch

        return HalfRows(X.detach().cpu().view(torch.int16).numpy().view(np.uint16), kind)
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.dtype.itemsize != 2:
        return None
    kind = "float16" if X.dtype == np.float16 else X.dtype.name
    return HalfRows(X.view(np.uint16), kind) if kind in ("float16", "bfloat16") else None


def readable_in_place(X: Any) -> bool:
    """Whether the core can read numpy array X without a copy (see the module docs)."""
    if not isinstance(X, np.ndarray) or X.dtype.type not in (np.float32, np.float64):
        return False
    if not (X.dtype.isnative and X.flags.aligned):
        return False
    return all(s % X.itemsize == 0 for s in X.strides)


def finite_max_abs(X: np.ndarray) -> float:
    """max |X| when every entry is finite, else nan (0 for an empty array)."""
    if isinstance(X, HalfRows):
        m = _core.finite_max_abs(X.bits, cancel_flag(), X.kind)
        return float("nan") if m is None else m
    best = 0.0
    for _, block in _row_blocks(X):
        m = _core.finite_max_abs(block, cancel_flag())
        if m is None:
            return float("nan")
        best = max(best, m)
    return best


def all_finite(X: np.ndarray) -> bool:
    return not np.isnan(finite_max_abs(X))


def _folds_of(fold_ids: Optional[np.ndarray], rows: slice) -> Optional[np.ndarray]:
    return None if fold_ids is None else np.ascontiguousarray(fold_ids[rows], dtype=np.int64)


def accumulate(
    X, Y, fold_ids, shift_x, shift_y, count, sum_x, sum_y, xtx, xty, yty, precision="float64"
) -> float:
    """precision: "float64" (exact) or "float32" (float32 block Grams, docs/design.md §8).
    X may be `HalfRows` (raw bfloat16/float16 bits, decoded in the core). Returns the largest
    |x_ij| read, found while staging (callers check the magnitude of X with it)."""
    Y, sx, sy = _f64(Y), _f64(shift_x), _f64(shift_y)
    if isinstance(X, HalfRows):
        return _core.accumulate(
            X.bits, Y, _folds_of(fold_ids, slice(None)), sx, sy,
            count, sum_x, sum_y, xtx, xty, yty, cancel_flag(), precision, X.kind,
        )  # fmt: skip
    largest = 0.0
    for rows, block in _row_blocks(X):
        largest = max(largest, _core.accumulate(
            block, Y[rows], _folds_of(fold_ids, rows), sx, sy,
            count, sum_x, sum_y, xtx, xty, yty, cancel_flag(), precision,
        ))  # fmt: skip
    return largest


def accumulate_quadratic(
    X, Y, fold_ids, shift_in, shift_x, shift_y, count, sum_x, sum_y, xtx, xty, yty
) -> None:
    Y, si, sx, sy = _f64(Y), _f64(shift_in), _f64(shift_x), _f64(shift_y)
    for rows, block in _row_blocks(X):
        _core.accumulate_quadratic(
            block, Y[rows], _folds_of(fold_ids, rows), si, sx, sy,
            count, sum_x, sum_y, xtx, xty, yty, cancel_flag(),
        )  # fmt: skip


# From this order on, one symmetric eigendecomposition runs faster in LAPACK's
# divide-and-conquer solver (dsyevd, through numpy) than in faer's. Measured side by side
# (benches/bench_eigh.py, 2 threads, several runs on the shared development machine), faer's
# time over LAPACK's: 1.21-1.37 at d = 768, 1.02-1.11 at 1024, 1.01-1.02 at 1536, 1.32-1.34 at
# 2048, 1.37 at 3000 and about 2 at the dual route's n = 5000; below 640 the runs disagreed
# (0.69-1.39 at 384 and 512), so the core's own solver stays there. Batches of Grams
# (`spectra`, the K-fold solves) stay in the core, which runs one sequential decomposition per
# thread and there matches or beats LAPACK (0.5 s against 0.55 s for six Grams of order 768).
LAPACK_EIGH_MIN_ORDER = 640


def spectrum(gram: np.ndarray, cxy: np.ndarray):
    """(lam ascending, V, B) of one symmetric Gram (lower triangle read), null directions
    zeroed as in the core: LAPACK's dsyevd for orders >= LAPACK_EIGH_MIN_ORDER, faer below."""
    gram, cxy = _f64(gram), _f64(cxy)
    if gram.ndim == 2 and gram.shape[0] >= LAPACK_EIGH_MIN_ORDER and gram.shape[0] == gram.shape[1]:
        if cxy.ndim != 2 or cxy.shape[0] != gram.shape[0]:
            raise ValueError(
                f"gram is {gram.shape[0]}x{gram.shape[1]} and cxy has shape {cxy.shape}; "
                "expected a square Gram matching cxy"
            )
        check_interrupt()
        out = numpy_kernels.spectrum(gram, cxy)  # numpy.linalg.eigh, then the core's clamp
        check_interrupt()
        return out
    return _core.spectrum(gram, cxy, cancel_flag())


def spectra(grams: np.ndarray, cxys: np.ndarray):
    return _core.spectra(_f64(grams), _f64(cxys), cancel_flag())


def tridiagonalize(grams: np.ndarray):
    """Householder reductions G = Q T Q^T of a stack of Grams (K, d, d), one per thread:
    (packed (K, d, d), factors (K, b, d - 1), usable: list of K bools). `usable[i]` is False
    where the eigendecomposition route would clamp round-off eigenvalues of Gram i, whose
    solves must then come from its spectrum (see `_core.tridiagonalize`)."""
    return _core.tridiagonalize(_f64(grams), cancel_flag())


def tridiagonal_ridge_paths(packed: np.ndarray, factors: np.ndarray, cxys: np.ndarray,
                            alphas: np.ndarray) -> np.ndarray:  # fmt: skip
    """Coefficients (K, A, d, k) of (G_i + alpha I)^-1 cxy_i for every alpha > 0 from the
    reductions of `tridiagonalize`, one sequential path per thread."""
    # the reductions are read in place in any layout (`tridiagonalize` returns them
    # column-major within each matrix, as the core stores them): no reordering copy
    return _core.tridiagonal_ridge_paths(
        np.asarray(packed, dtype=np.float64), np.asarray(factors, dtype=np.float64),
        _f64(cxys), _f64(alphas), cancel_flag(),
    )  # fmt: skip


def tridiagonal_gcv(packed: np.ndarray, factors: np.ndarray, cxy: np.ndarray,
                    alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(explained (k,), rss (A, k)) of one reduction of `tridiagonalize` (packed (d, d),
    factors (b, d - 1)): per target c^T G^-1 c, the part of ||y_c||^2 the least-squares fit
    explains, and per alpha > 0 the residual sum of squares inside the span of X. Only for a
    reduction that `tridiagonalize` marked usable."""
    return _core.tridiagonal_gcv(
        np.asarray(packed, dtype=np.float64), np.asarray(factors, dtype=np.float64),
        _f64(cxy), _f64(alphas), cancel_flag(),
    )  # fmt: skip


def tridiagonal_eigenvalues(packed: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Eigenvalues (ascending) of one reduction's Gram, from its tridiagonal alone (implicit
    QL: O(d^2), no eigenvectors)."""
    return _core.tridiagonal_eigenvalues(
        np.asarray(packed, dtype=np.float64), np.asarray(factors, dtype=np.float64),
        cancel_flag(),
    )  # fmt: skip


# Half-bandwidth of the dual route's band reduction (`_core.band_reduce`): measured at n = 5000
# on our 2-core machine (benches/bench_dual_floor.py), the rank-2b updates of wider bands run
# nearer the GEMM rate while each alpha's O(n b^2) band Cholesky and trace grow.
DUAL_BANDWIDTH = 64


def band_reduce(kernel: np.ndarray, bandwidth: int = DUAL_BANDWIDTH) -> np.ndarray:
    """Reduces the symmetric float64 `kernel` (n, n; lower triangle read) IN PLACE to band
    form K = Q B Q^T and returns Q's block factors (b, n - b). `kernel` then holds the
    reduction for `band_gcv` / `band_solve`, not the kernel."""
    if not (isinstance(kernel, np.ndarray) and kernel.dtype == np.float64
            and kernel.flags.writeable and kernel.flags.aligned):  # fmt: skip
        raise TypeError("band_reduce reduces a writable, aligned float64 numpy array in place")
    return _core.band_reduce(kernel, int(bandwidth), cancel_flag())


def band_gcv(reduced: np.ndarray, factors: np.ndarray, y: np.ndarray,
             alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(rss (A, k), resid (A,)) along alphas > 0: alpha^2 ||(K + alpha I)^-1 y_t||^2 and
    alpha tr((K + alpha I)^-1), from a reduction of `band_reduce`. numpy.linalg.LinAlgError
    where K + alpha I is not positive definite."""
    return _core.band_gcv(reduced, _f64(factors), _f64(y), _f64(alphas), cancel_flag())


def band_expand(reduced: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """The kernel (n, n) a `band_reduce` reduction came from, Q B Q^T: for the spectrum
    route after the band route failed, when the reduction overwrote the only copy of K."""
    return _core.band_expand(reduced, _f64(factors), cancel_flag())


def band_solve(reduced: np.ndarray, factors: np.ndarray, y: np.ndarray,
               alphas: np.ndarray) -> np.ndarray:  # fmt: skip
    """The dual coefficients (n, k): (K + alphas[t] I)^-1 y_t, from a reduction of
    `band_reduce`."""
    return _core.band_solve(reduced, _f64(factors), _f64(y), _f64(alphas), cancel_flag())


def ridge_path(lam, V, B, perp, alphas, with_coefs: bool = True):
    return _core.ridge_path(
        _f64(lam), _f64(V), _f64(B), _f64(perp), _f64(alphas), with_coefs, cancel_flag()
    )


def heldout_sse(xtx, xty, yty_diag, sum_x, sum_y, n, coefs, offsets) -> np.ndarray:
    return _core.heldout_sse(
        _f64(xtx), _f64(xty), _f64(yty_diag), _f64(sum_x), _f64(sum_y), float(n),
        _f64(coefs), _f64(offsets),
    )  # fmt: skip


def loo_predictions(X, x_mean, V, lam, B, Y, y_mean, alphas, n_total, fit_intercept):
    args = (_f64(x_mean), _f64(V), _f64(lam), _f64(B))
    Y, y_mean, alphas = _f64(Y), _f64(y_mean), _f64(alphas)
    blocks = [
        _core.loo_predictions(
            block, *args, Y[rows], y_mean, alphas, float(n_total), bool(fit_intercept),
            cancel_flag(),
        )  # fmt: skip
        for rows, block in _row_blocks(X)
    ]
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)


def loo_sse(X, x_mean, V, lam, B, Y, y_mean, alphas, n_total, fit_intercept) -> np.ndarray:
    """Sums (A, k) of squared LOO errors, fused in the core (see `_core.loo_sse`)."""
    args = (_f64(x_mean), _f64(V), _f64(lam), _f64(B))
    Y, y_mean, alphas = _f64(Y), _f64(y_mean), _f64(alphas)
    total = np.zeros((alphas.shape[0], Y.shape[1]))
    for rows, block in _row_blocks(X):
        total += _core.loo_sse(
            block, *args, Y[rows], y_mean, alphas, float(n_total), bool(fit_intercept),
            cancel_flag(),
        )  # fmt: skip
    return total


def expand_quadratic(X, shift_in, quad_scale: float) -> np.ndarray:
    if not readable_in_place(X):
        X = _native(X)  # the output is n x p, far larger than this copy
    return _core.expand_quadratic(X, _f64(shift_in), float(quad_scale), cancel_flag())


# --- monitors: the quotient projection and the scores of a bank -------------------------------
def _monitor_input(X: Any) -> Any:
    """X as the monitor kernels hand it over: `HalfRows` for float16/bfloat16 rows, else a
    numpy array (lists and CPU tensors viewed through np.asarray)."""
    half = half_rows(X)
    if half is not None:
        return half
    return X if isinstance(X, np.ndarray) else np.asarray(X)


def project_rows(X: Any, centre: Any, M: Any) -> np.ndarray:
    """(X - centre) @ M as (n, r) float64, the core's row blocks (`_core.project_rows`):
    float32/float64 X read in place, float16/bfloat16 X as raw bits decoded per block, other
    layouts and dtypes copied one row block at a time. NaN and infinity in X propagate to their
    rows' outputs, as in `numpy_kernels.project_rows`."""
    X = _monitor_input(X)
    check_projection(X, centre, M)
    centre, M = _f64(centre), _f64(M)
    out = np.empty((X.shape[0], M.shape[1]))
    if isinstance(X, HalfRows):
        _core.project_rows(X.bits, centre, M, out, cancel_flag(), X.kind)
        return out
    for rows, block in _row_blocks(X):
        _core.project_rows(block, centre, M, out[rows], cancel_flag())
    return out


def _symmetric(Q: Any) -> np.ndarray:
    """Q as float64, itself when exactly symmetric (a monitor's Q is), else (Q + Q^T) / 2:
    the core reads one triangle, and only the symmetric part enters the score."""
    Q = _f64(Q)
    return Q if np.array_equal(Q, Q.T, equal_nan=True) else 0.5 * (Q + Q.T)


def evaluate_polynomials(
    X: Any, linear: Any, centres: Any, intercepts: Any, quadratics: Any
) -> np.ndarray:
    """(n, m) float64 scores of m polynomial monitors, in the core
    (`_core.evaluate_polynomials`); same arguments and values as
    `numpy_kernels.evaluate_polynomials`: linear (m, d), centres (m, d), intercepts (m,),
    quadratics m entries, None (degree 1) or (d, d) (symmetrised here unless it is exactly
    symmetric). X is read as in `project_rows`."""
    X = _monitor_input(X)
    m = check_polynomials(X, linear, centres, intercepts, quadratics)
    W, C, b = _f64(linear), _f64(centres), _f64(intercepts)
    lin = [j for j in range(m) if quadratics[j] is None]
    quad = [j for j in range(m) if quadratics[j] is not None]
    d = W.shape[1]
    # the degree-1 members as X @ W + (b - w . c), the constants formed as the numpy path does
    const = np.array([b[j] - float(W[j] @ C[j]) for j in lin], dtype=np.float64)
    args = (
        np.ascontiguousarray(W[lin].T), const,
        np.array(lin, dtype=np.int64), C[quad].reshape(-1, d), W[quad].reshape(-1, d), b[quad],
        [_symmetric(quadratics[j]) for j in quad], np.array(quad, dtype=np.int64),
    )  # fmt: skip
    out = np.empty((X.shape[0], m))
    if isinstance(X, HalfRows):
        _core.evaluate_polynomials(X.bits, *args, out, cancel_flag(), X.kind)
        return out
    for rows, block in _row_blocks(X):
        _core.evaluate_polynomials(block, *args, out[rows], cancel_flag())
    return out

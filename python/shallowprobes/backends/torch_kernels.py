"""torch implementation of the numerical primitives, on the data's own device.

Same function signatures and formulas as `numpy_kernels` (docs/design.md §3); results are float64
torch tensors on the device of the tensor arguments (the accumulators for `accumulate`, the
rows for `expand_quadratic`, the spectrum for the solves). Nothing goes through host memory
except Python scalars (a few per call, e.g. a finiteness flag).

* Activations (float32, bfloat16, float16 or float64; any layout) are converted to float64 one
  row block at a time (~128 MiB of float64), never as a whole, and the statistics are updated
  in place with `addmm_` (float64 accumulation).
* numpy inputs are accepted too (``backend="torch"`` on host data): their row blocks are
  converted on the way, so the statistics live on the accumulators' device.

`TorchOps` is the small subset of the numpy namespace that the shared solve code in
`linear`, `quadratic`, `stats` and `metrics` uses, bound to one device (see `ops_for`).
This module imports torch at import time; `_backends.torch_kernels` imports it lazily.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Optional

import numpy as np
import torch

from .._interrupt import check_interrupt
from ..errors import NonFiniteError
from . import formulas
from .numpy_kernels import check_polynomials, check_projection

name = "torch"

NON_FINITE = "X contains NaN or infinity"  # same message as the Rust core and numpy backend
F64 = torch.float64
# float64 entries per row block of a pass over X: 128 MiB of temporaries.
_BLOCK_ENTRIES = 1 << 24
_EPS = float(np.finfo(np.float64).eps)
SQRT2 = math.sqrt(2.0)


# ---------------------------------------------------------------------------------- helpers
def device_of(*arrays: Any, default: Optional[torch.device] = None) -> torch.device:
    """Device of the first tensor among `arrays` (default: CPU)."""
    for a in arrays:
        if isinstance(a, torch.Tensor):
            return a.device
    return torch.device("cpu") if default is None else torch.device(default)


def host_tensor(a: Any, dtype: Any = None) -> torch.Tensor:
    """A CPU tensor viewing numpy array `a` (no copy), except that layouts torch cannot
    represent (negative strides, byte strides that are not whole elements, big-endian data)
    are copied to a contiguous native array first."""
    arr = np.asarray(a, dtype=dtype)
    if arr.ndim and (
        any(s < 0 or s % arr.itemsize for s in arr.strides)
        or not arr.dtype.isnative
        or not arr.flags.aligned
    ):
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
    return torch.as_tensor(arr, device="cpu")


def as_f64(a: Any, device: Any) -> torch.Tensor:
    """`a` (tensor, numpy array, list or scalar) as a float64 tensor on `device`."""
    if isinstance(a, torch.Tensor):
        return a.detach().to(device=device, dtype=F64)
    return host_tensor(a, np.float64).to(device)


def to_numpy(a: Any) -> Any:
    """Host copy of a tensor as a numpy array (float64 for bfloat16/float16); others as is."""
    if isinstance(a, torch.Tensor):
        a = a.detach()
        if a.dtype in (torch.bfloat16, torch.float16):
            a = a.to(torch.float32)
        return a.cpu().numpy()
    return a


def _rows(X: Any, index: Any, device: torch.device) -> torch.Tensor:
    """Rows X[index] as a fresh float64 tensor on `device` (one block; never all of X)."""
    if isinstance(X, torch.Tensor):
        block = X.detach()[index]
        return block.to(device=device, dtype=F64, copy=True)
    block = np.asarray(X[index])
    return torch.from_numpy(np.array(block, dtype=np.float64)).to(device)


def _rows_per_block(width: int) -> int:
    return int(min(max(_BLOCK_ENTRIES // max(width, 1), 256), 65536))


def _shape(a: Any) -> tuple:
    return tuple(a.shape) if hasattr(a, "shape") else np.shape(a)


# ---------------------------------------------------------------------------------- primitives
def all_finite(X: Any) -> bool:
    """Whether every entry of X is finite (one pass in row blocks; one host sync)."""
    if not isinstance(X, torch.Tensor):
        from . import numpy_kernels as _numpy_backend

        return _numpy_backend.all_finite(np.asarray(X))
    X = X.detach()
    if not X.is_floating_point():
        return True
    if X.shape[0] == 0:
        return True
    return not np.isnan(finite_max_abs(X))


def finite_max_abs(X: Any) -> float:
    """max |X| when every entry is finite, else nan (row blocks on X's device; one host sync)."""
    if not isinstance(X, torch.Tensor):
        from . import numpy_kernels as _numpy_backend

        return _numpy_backend.finite_max_abs(np.asarray(X))
    X = X.detach()
    if X.shape[0] == 0 or X.numel() == 0:
        return 0.0
    if not X.is_floating_point():
        return float(X.abs().max())
    best = torch.zeros((), dtype=torch.float64, device=X.device)
    ok = torch.ones((), dtype=torch.bool, device=X.device)
    step = _rows_per_block(X.shape[1] if X.ndim > 1 else 1)
    for start in range(0, X.shape[0], step):
        check_interrupt()  # Ctrl-C between row blocks
        block = X[start : start + step]
        ok &= torch.isfinite(block).all()
        best = torch.maximum(best, block.abs().max().double())
    return float(best) if bool(ok) else float("nan")


def accumulate(X, Y, fold_ids, shift_x, shift_y, count, sum_x, sum_y, xtx, xty, yty) -> None:
    """Add the shifted statistics of rows (X, Y) into the per-fold accumulators, in place.

    The accumulators are float64 tensors; the work runs on their device (X's row blocks are
    moved there when X lives elsewhere, e.g. numpy rows with statistics on the CPU device).
    """
    stats = (count, sum_x, sum_y, xtx, xty, yty)
    _accumulate_blocks(X, Y, fold_ids, shift_x, shift_y, stats, _rows_per_block(X.shape[1]))


def _accumulate_blocks(X, Y, fold_ids, shift_x, shift_y, stats, step, features=None) -> None:
    count, sum_x, sum_y, xtx, xty, yty = stats
    dev = xtx.device
    sx, sy = as_f64(shift_x, dev), as_f64(shift_y, dev)
    Yd = as_f64(Y, dev)
    x_dev = X.device if isinstance(X, torch.Tensor) else None
    ok = torch.ones((), dtype=torch.bool, device=dev)
    if fold_ids is None:
        groups = [(0, None)]
    else:
        f_np = to_numpy(fold_ids).astype(np.int64, copy=False)
        groups = [(f, np.flatnonzero(f_np == f)) for f in range(count.shape[0])]
    for f, rows in groups:
        m = X.shape[0] if rows is None else rows.size
        rows_x = rows if (rows is None or x_dev is None) else torch.from_numpy(rows).to(x_dev)
        rows_y = None if rows is None else torch.from_numpy(rows).to(dev)
        for start in range(0, m, step):
            check_interrupt()  # Ctrl-C between row blocks
            if rows is None:
                sel_x = sel_y = slice(start, start + step)
            else:
                sel_x, sel_y = rows_x[start : start + step], rows_y[start : start + step]
            xb = _rows(X, sel_x, dev)
            ok &= torch.isfinite(xb).all()
            fb = xb if features is None else features(xb)
            fb -= sx
            yb = Yd[sel_y] - sy
            count[f] += fb.shape[0]
            sum_x[f] += fb.sum(dim=0)
            sum_y[f] += yb.sum(dim=0)
            xtx[f].addmm_(fb.T, fb)
            xty[f].addmm_(fb.T, yb)
            yty[f].addmm_(yb.T, yb)
    if not bool(ok):
        raise NonFiniteError(NON_FINITE)


# The ridge kernels: one statement in `formulas` (shared with numpy_kernels); here only the
# move onto the device and the row blocking.
def spectrum(gram: Any, cxy: Any):
    """Eigendecomposition of a symmetric Gram and B = V^T cxy, near-null directions zeroed
    (`formulas.clamp_spectrum`). Returns (lam ascending, V, B) on gram's device."""
    dev = device_of(gram, cxy)
    lam, V = torch.linalg.eigh(as_f64(gram, dev))
    return formulas.clamp_spectrum(lam, V, as_f64(cxy, dev), ops_for(dev))


def spectra(grams: Any, cxys: Any):
    """`spectrum` of each of a stack of Grams (K, d, d) and cross-products (K, d, k), batched."""
    dev = device_of(grams, cxys)
    lam, V = torch.linalg.eigh(as_f64(grams, dev))
    return formulas.clamp_spectrum(lam, V, as_f64(cxys, dev), ops_for(dev))


def ridge_path(lam, V, B, perp, alphas, with_coefs: bool = True):
    """`formulas.ridge_path` on the device of lam, V, B."""
    dev = device_of(lam, V, B)
    return formulas.ridge_path(as_f64(lam, dev), as_f64(V, dev), as_f64(B, dev),
                               as_f64(perp, dev), as_f64(alphas, dev).reshape(-1), ops_for(dev),
                               with_coefs)  # fmt: skip


def residual_outside_span(lam: Any, B: Any, cyy: Any) -> torch.Tensor:
    """`formulas.residual_outside_span`, per target."""
    dev = device_of(lam, B)
    return formulas.residual_outside_span(as_f64(lam, dev), as_f64(B, dev), as_f64(cyy, dev),
                                          ops_for(dev))  # fmt: skip


def heldout_sse(xtx, xty, yty_diag, sum_x, sum_y, n, coefs, offsets) -> torch.Tensor:
    """`formulas.heldout_sse` on the device of coefs."""
    dev = device_of(coefs, xtx)
    return formulas.heldout_sse(
        as_f64(xtx, dev), as_f64(xty, dev), as_f64(yty_diag, dev), as_f64(sum_x, dev),
        as_f64(sum_y, dev), float(n), as_f64(coefs, dev), as_f64(offsets, dev), ops_for(dev),
    )  # fmt: skip


def loo_predictions(X, x_mean, V, lam, B, Y, y_mean, alphas, n_total, fit_intercept):
    """Exact leave-one-out predictions (A, n, k) for rows X, on V's device, block by block
    (`formulas.loo_block`); leverage-1 rows get NaN."""
    dev = device_of(V, lam, B)
    xp = ops_for(dev)
    V, lam, B = as_f64(V, dev), as_f64(lam, dev), as_f64(B, dev)
    x_mean, y_mean = as_f64(x_mean, dev), as_f64(y_mean, dev)
    Yd = as_f64(Y, dev)
    al = as_f64(alphas, dev).reshape(-1)
    A, n, k = al.shape[0], X.shape[0], B.shape[1]
    out = torch.empty((A, n, k), dtype=F64, device=dev)
    base = 1.0 / float(n_total) if fit_intercept else 0.0
    interpolating = formulas.loo_interpolating(lam, n_total, fit_intercept)
    step = formulas.loo_block_size(X.shape[1], A, k, cap=_rows_per_block(X.shape[1]))
    for start in range(0, n, step):
        check_interrupt()  # Ctrl-C between row blocks
        sl = slice(start, min(start + step, n))
        Z = (_rows(X, sl, dev) - x_mean) @ V
        out[:, sl] = formulas.loo_block(Z, Yd[sl], lam, B, y_mean, al, base, xp, interpolating)
    return out


# --- degree-2 (quadratic) features ------------------------------------------------------------
def _quadratic_terms(d: int, quad_scale: float, device: torch.device):
    a, b = torch.triu_indices(d, d, device=device)  # numpy.triu_indices order
    one = torch.ones(a.shape, dtype=F64, device=device)
    weights = torch.where(a == b, one, one * SQRT2) * float(quad_scale)
    return a, b, weights


def _expand_block(u: torch.Tensor, a, b, weights) -> torch.Tensor:
    return torch.cat([u, u[:, a] * u[:, b] * weights], dim=1)


def _quadratic_rows_per_block(p: int) -> int:
    return min(max(4_194_304 // max(p, 1), 256), 4096)


def expand_quadratic(X: Any, shift_in: Any, quad_scale: float) -> torch.Tensor:
    """Degree-2 features (n, d + d(d+1)/2) float64 of the rows of X (see
    `numpy_kernels.expand_quadratic`), on X's device (CPU for numpy X)."""
    n, d = _shape(X)
    dev = device_of(X, shift_in)
    shift = as_f64(shift_in, dev)
    if tuple(shift.shape) != (d,):
        raise ValueError(f"shift_in has shape {tuple(shift.shape)}, X has {d} columns")
    if not math.isfinite(quad_scale):
        raise ValueError(f"quad_scale must be finite, got {quad_scale}")
    p = d + d * (d + 1) // 2
    a, b, weights = _quadratic_terms(d, quad_scale, dev)
    out = torch.empty((n, p), dtype=F64, device=dev)
    ok = torch.ones((), dtype=torch.bool, device=dev)
    step = _quadratic_rows_per_block(p)
    for start in range(0, n, step):
        check_interrupt()  # Ctrl-C between row blocks
        xb = _rows(X, slice(start, start + step), dev)
        ok &= torch.isfinite(xb).all()
        out[start : start + step] = _expand_block(xb - shift, a, b, weights)
    if not bool(ok):
        raise NonFiniteError(NON_FINITE)
    return out


def accumulate_quadratic(
    X, Y, fold_ids, shift_in, shift_x, shift_y, count, sum_x, sum_y, xtx, xty, yty
) -> None:
    """`accumulate` for the degree-2 features phi(x; shift_in) - shift_x (block by block)."""
    stats = (count, sum_x, sum_y, xtx, xty, yty)
    n, d = _shape(X)
    p = d + d * (d + 1) // 2
    n_folds = count.shape[0]
    k = sum_y.shape[1]
    expected = {
        "shift_in": (shift_in, (d,)), "shift_x": (shift_x, (p,)), "shift_y": (shift_y, (k,)),
        "Y": (Y, (n, k)), "sum_x": (sum_x, (n_folds, p)), "xtx": (xtx, (n_folds, p, p)),
        "xty": (xty, (n_folds, p, k)), "yty": (yty, (n_folds, k, k)),
    }  # fmt: skip
    for what, (arr, shape) in expected.items():
        if _shape(arr) != shape:
            raise ValueError(f"{what} has shape {_shape(arr)}, expected {shape}")
    dev = xtx.device
    shift = as_f64(shift_in, dev)
    a, b, weights = _quadratic_terms(d, 1.0, dev)

    def features(xb: torch.Tensor) -> torch.Tensor:
        return _expand_block(xb - shift, a, b, weights)

    step = _quadratic_rows_per_block(p)
    _accumulate_blocks(X, Y, fold_ids, shift_x, shift_y, stats, step, features)


# --- monitors: the quotient projection and the scores of a bank -------------------------------
def _blocks(X: Any, dev: torch.device):
    """(rows, float64 block of X on dev), `_rows_per_block` rows at a time; Ctrl-C between."""
    n, d = _shape(X)
    step = _rows_per_block(d)
    for start in range(0, n, step):
        check_interrupt()  # Ctrl-C between row blocks
        sl = slice(start, start + step)
        yield sl, _rows(X, sl, dev)


def project_rows(X: Any, centre: Any, M: Any) -> torch.Tensor:
    """(X - centre) @ M as (n, r) float64 on X's device (see `numpy_kernels.project_rows`),
    in float64 row blocks."""
    check_projection(X, centre, M)
    dev = device_of(X, centre, M)
    centre, M = as_f64(centre, dev), as_f64(M, dev)
    out = torch.empty((_shape(X)[0], M.shape[1]), dtype=F64, device=dev)
    for sl, Xb in _blocks(X, dev):
        out[sl] = (Xb - centre) @ M
    return out


def evaluate_polynomials(X: Any, linear: Any, centres: Any, intercepts: Any,
                         quadratics: Any) -> torch.Tensor:  # fmt: skip
    """(n, m) float64 scores of m polynomial monitors on X's device (same arguments and
    formulas as `numpy_kernels.evaluate_polynomials`), in float64 row blocks."""
    m = check_polynomials(X, linear, centres, intercepts, quadratics)
    dev = device_of(X, linear, centres)
    W, C = as_f64(linear, dev), as_f64(centres, dev)
    b = [float(v) for v in as_f64(intercepts, "cpu")]
    Qs = [None if Q is None else as_f64(Q, dev) for Q in quadratics]
    n, d = _shape(X)
    out = torch.empty((n, m), dtype=F64, device=dev)
    return formulas.polynomial_scores(_blocks(X, dev), W, C, b, Qs, out, ops_for(dev))


# ---------------------------------------------------------------------------------- namespace
class TorchOps:
    """The numpy functions used by the shared solve code, for float64 tensors on `device`.

    Only what `stats`, `linear`, `quadratic`, `_quadratic` and `metrics` call through their
    array namespace: each method mirrors the numpy function of the same name.
    """

    is_torch = True
    pi = math.pi

    def __init__(self, device: Any) -> None:
        self.device = torch.device(device)

    def __repr__(self) -> str:
        return f"TorchOps({self.device})"

    # construction
    def asarray(self, a: Any, dtype: Any = None) -> torch.Tensor:
        if dtype is not None and np.dtype(dtype).kind in "iub":
            return torch.as_tensor(to_numpy(a) if not isinstance(a, torch.Tensor) else a,
                                   device=self.device, dtype=torch.int64)  # fmt: skip
        return as_f64(a, self.device)

    def array(self, a: Any, dtype: Any = None) -> torch.Tensor:
        return self.asarray(a).clone()

    ascontiguousarray = asarray

    def zeros(self, shape: Any) -> torch.Tensor:
        return torch.zeros(shape, dtype=F64, device=self.device)

    def ones(self, shape: Any) -> torch.Tensor:
        return torch.ones(shape, dtype=F64, device=self.device)

    def empty(self, shape: Any) -> torch.Tensor:
        return torch.empty(shape, dtype=F64, device=self.device)

    def full(self, shape: Any, value: float) -> torch.Tensor:
        return torch.full(shape, float(value), dtype=F64, device=self.device)

    def eye(self, n: int) -> torch.Tensor:
        return torch.eye(n, dtype=F64, device=self.device)

    def arange(self, n: int) -> torch.Tensor:
        return torch.arange(n, device=self.device)

    def index(self, idx: Any) -> torch.Tensor:
        """Integer or boolean index array on this device."""
        if isinstance(idx, torch.Tensor):
            return idx.to(self.device)
        arr = np.asarray(idx)
        return torch.as_tensor(arr, device=self.device)

    # elementwise / reductions
    @staticmethod
    def outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.outer(a, b)

    @staticmethod
    def einsum(spec: str, *ops: torch.Tensor, **_: Any) -> torch.Tensor:
        return torch.einsum(spec, *ops)

    @staticmethod
    def maximum(a: torch.Tensor, b: Any) -> torch.Tensor:
        if isinstance(b, torch.Tensor):
            return torch.maximum(a, b)
        return a.clamp_min(float(b))

    @staticmethod
    def sqrt(a: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(a)

    @staticmethod
    def exp(a: torch.Tensor) -> torch.Tensor:
        return torch.exp(a)

    @staticmethod
    def log(a: torch.Tensor) -> torch.Tensor:
        return torch.log(a)

    @staticmethod
    def abs(a: torch.Tensor) -> torch.Tensor:
        return torch.abs(a)

    @staticmethod
    def isnan(a: torch.Tensor) -> torch.Tensor:
        return torch.isnan(a)

    @staticmethod
    def where(cond: torch.Tensor, a: Any, b: Any) -> torch.Tensor:
        return torch.where(cond, a, b)

    @staticmethod
    def swapaxes(a: torch.Tensor, axis1: int, axis2: int) -> torch.Tensor:
        return torch.swapaxes(a, axis1, axis2)

    @staticmethod
    def stack(arrays: Any, axis: int = 0) -> torch.Tensor:
        return torch.stack(list(arrays), dim=axis)

    @staticmethod
    def concatenate(arrays: Any, axis: int = 0) -> torch.Tensor:
        return torch.cat(list(arrays), dim=axis)

    @staticmethod
    def diagonal(a: torch.Tensor, offset: int = 0, axis1: int = 0, axis2: int = 1):
        return torch.diagonal(a, offset, axis1, axis2)

    @staticmethod
    def diag(v: torch.Tensor) -> torch.Tensor:
        return torch.diag(v)

    @staticmethod
    def trace(a: torch.Tensor) -> torch.Tensor:
        return torch.trace(a)

    @staticmethod
    def all_finite(a: torch.Tensor) -> bool:
        return bool(torch.isfinite(a).all())

    @staticmethod
    def eigh(a: torch.Tensor):
        return torch.linalg.eigh(a)

    @staticmethod
    def solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(a, b)

    @staticmethod
    def errstate(**_: Any):
        return contextlib.nullcontext()

    @staticmethod
    def to_numpy(a: Any) -> Any:
        return to_numpy(a)


_OPS_CACHE: dict = {}


def ops_for(device: Any) -> TorchOps:
    """The (cached) `TorchOps` of a device."""
    dev = torch.device(device)
    ops = _OPS_CACHE.get(dev)
    if ops is None:
        ops = _OPS_CACHE[dev] = TorchOps(dev)
    return ops

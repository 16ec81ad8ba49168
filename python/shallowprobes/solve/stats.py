"""Sufficient statistics of (X, Y): the additive summary every probe is solved from.

`SufficientStats` accumulates, merges, converts and saves them; the ridge normal equations it
yields are formed in `solve.normal_equations`, the exact re-centring of degree-2 statistics is
`solve.recentring`, and the file format `solve.stats_file`.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

import numpy as np

from .._validation import (
    check_fold_ids,
    check_magnitude,
    check_targets,
    check_X,
    non_finite_error,
)
from .._validation import check_values as check_values_of
from ..backends import (
    NUMPY_OPS,
    get_backend,
    is_torch_tensor,
    to_numpy,
    torch_backend,
    uses_torch,
)
from ..backends.numpy_kernels import NON_FINITE
from ..errors import NonFiniteError
from ..threads import commit_guard, interruptible
from .normal_equations import NormalEquations, check_fold_args, normal_equations_of, symmetric
from .recentring import checked_centre, fill_recentred
from .stats_file import FIELDS as _FIELDS
from .stats_file import read_stats_file, write_stats_file

__all__ = ["SufficientStats", "NormalEquations"]

_PRECISIONS = ("auto", "float64", "float32")


class SufficientStats:
    """Streaming, mergeable sufficient statistics of features X (n x d) and targets Y (n x k).

    Holds, per cross-validation fold, the row count, column sums, X^T X, X^T Y and Y^T Y, all in
    float64 whatever the input dtype. Statistics are additive over rows, so they can be updated
    chunk by chunk (`update`), combined across processes or machines (`merge`, `+`) and saved
    (`save` / `load`, a plain `.npz` with no pickle).

    Internally the statistics are of shifted data (x - shift_x, y - shift_y), where the shift is
    the mean of the first chunk seen. This is invisible to users but keeps centring exact when
    activations have large offsets (some hidden units of language models sit far from zero).

    Parameters
    ----------
    n_folds : int, default 1
        Number of cross-validation folds kept separately. With ``n_folds > 1`` each row goes to
        the fold given by ``fold_ids`` in `update`, or by default to fold ``i % n_folds`` where
        ``i`` counts rows across all updates (so any chunking gives the same folds).
    backend : {"auto", "rust", "numpy", "torch"}
        Implementation of the accumulation kernel. "auto": the Rust core, except that
        statistics whose first chunk is a CUDA (non-CPU) torch tensor are accumulated by torch
        on that device. "torch": torch, on the device of the first chunk (CPU for numpy data).
        Statistics live where they were created: as float64 numpy arrays, or as float64 torch
        tensors on one device (then later chunks, numpy or tensors, are moved there one row
        block at a time). `to(device)` / `numpy()` give copies elsewhere.
    degree : {1, 2}, default 1
        1: statistics of the rows themselves. 2: statistics of the degree-2 feature map
        phi(h) = [h, (s_ab h_a h_b)_{a<=b}] (s_ab = sqrt(2) off the diagonal) of d inputs, with
        p = d + d(d+1)/2 features, formed block by block while accumulating (never an
        n x p array). `n_inputs` is d and `n_features` is p. Degree-2 statistics are kept about
        a centre (`input_shift`) and can be re-expressed exactly about any other centre
        (`recentred`), which is how `merge` combines chunks and how probes centre at the mean.
    precision : {"auto", "float64", "float32"}, default "auto"
        Arithmetic of the Gram products X^T X, X^T Y in the Rust core (degree 1; results are
        float64 either way). "float64": exact for every input dtype. "float32": each row
        block (at most 1024 rows) is shifted, rounded to float32 and multiplied by float32
        SIMD GEMM, then added in float64: about twice as fast, with entries within
        ``(1026 * 2**-24) * ||x_j - s_j|| * ||x_l - s_l||`` of the exact Gram (s: the shift,
        close to the mean; docs/design.md §8), at any scale of the data (blocks are staged
        times a power of two that keeps float32 in range). "auto": "float32" for
        bfloat16/float16 input (numpy float16, ml_dtypes bfloat16, torch half tensors; read as
        raw bits by the core, never converted as a whole), whose own rounding is far larger,
        "float64" otherwise.
        The numpy and torch backends always compute in float64.
    """

    def __init__(
        self, n_folds: int = 1, backend: str = "auto", degree: int = 1, precision: str = "auto"
    ) -> None:
        if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 1:
            raise ValueError(f"n_folds must be a positive integer, got {n_folds!r}.")
        if isinstance(degree, bool) or degree not in (1, 2):
            raise ValueError(f"degree must be 1 or 2, got {degree!r}.")
        if not isinstance(precision, str) or precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}.")
        self.precision = precision
        self.n_folds = int(n_folds)
        self.degree = int(degree)
        self.backend = backend
        get_backend(backend)  # fail fast on a bad name (and on "torch" without torch)
        self._device: Any = None  # torch device when the statistics are tensors
        self.n_inputs: Optional[int] = None
        self.input_shift: Optional[np.ndarray] = None
        self.n_features: Optional[int] = None
        self.n_targets: Optional[int] = None
        self.rows_seen = 0
        self.shift_x: Optional[np.ndarray] = None
        self.shift_y: Optional[np.ndarray] = None
        for field in _FIELDS:
            setattr(self, field, None)

    # ------------------------------------------------------------------ construction
    def _allocate(
        self,
        d: int,
        k: int,
        shift_x: np.ndarray,
        shift_y: np.ndarray,
        input_shift: Optional[np.ndarray] = None,
    ) -> None:
        K = self.n_folds
        xp = self._ops()
        self.n_features, self.n_targets = d, k
        if self.degree == 2:
            self.input_shift = xp.array(input_shift, dtype=np.float64)
            self.n_inputs = self.input_shift.shape[0]
        else:
            self.n_inputs = d
        # own copies: statistics never share arrays with their source (copy, recentred, ...)
        self.shift_x = xp.array(shift_x, dtype=np.float64)
        self.shift_y = xp.array(shift_y, dtype=np.float64)
        self.count = xp.zeros(K)
        self.sum_x = xp.zeros((K, d))
        self.sum_y = xp.zeros((K, k))
        self.xtx = xp.zeros((K, d, d))
        self.xty = xp.zeros((K, d, k))
        self.yty = xp.zeros((K, k, k))

    def _ops(self) -> Any:
        """Array namespace of these statistics (numpy, or torch on their device)."""
        return NUMPY_OPS if self._device is None else torch_backend().ops_for(self._device)

    @property
    def device(self) -> Any:
        """The torch device the statistics live on, or None for numpy statistics."""
        return self._device

    def _keeps_tensors(self, X: Any) -> bool:
        """Whether rows X are accumulated by the torch backend (and so stay tensors)."""
        if self.count is None:
            return uses_torch(self.backend, X)
        return self._device is not None

    def _backend_module(self) -> Any:
        return torch_backend() if self._device is not None else get_backend(self.backend)

    def to(self, device: Any) -> SufficientStats:
        """A copy of these statistics as float64 torch tensors on `device` (needs torch)."""
        torch_backend()
        import torch

        return self._converted(torch.device(device))

    def numpy(self) -> SufficientStats:
        """A copy of these statistics as numpy arrays (host memory)."""
        return self._converted(None)

    def _converted(self, device: Any) -> SufficientStats:
        out = SufficientStats(self.n_folds, self.backend, self.degree, self.precision)
        out._device = device
        out.rows_seen = self.rows_seen
        if self.count is not None:
            xp = out._ops()
            conv = (lambda a: xp.array(to_numpy(a))) if device is None else xp.array
            out._allocate(
                self.n_features, self.n_targets, conv(self.shift_x), conv(self.shift_y),
                None if self.input_shift is None else conv(self.input_shift),
            )  # fmt: skip
            for field in _FIELDS:
                getattr(out, field)[...] = conv(getattr(self, field))
        return out

    @property
    def is_empty(self) -> bool:
        return self.count is None or float(self.count.sum()) == 0.0

    @property
    def n_samples(self) -> int:
        return 0 if self.count is None else int(round(float(self.count.sum())))

    @interruptible
    def update(self, X: Any, Y: Any = None, fold_ids: Any = None) -> SufficientStats:
        """Add the rows of X (and targets Y) to the statistics; returns self.

        X: (n, d) float32/float64 (any layout; other real dtypes are converted; with the Rust
        core float16/bfloat16 arrays and tensors are read as raw bits, see `precision`). Y: (n,) or
        (n, k) targets, or None for unlabeled statistics (k = 0). fold_ids: optional (n,)
        integers in [0, n_folds). Inputs are fully validated before anything is changed, and
        the update is all-or-nothing: the rows are accumulated into scratch statistics that
        are added in only once the whole chunk succeeded (so an error, Ctrl-C, or NaN written
        into X by another thread meanwhile leaves the statistics exactly as they were).
        X (and Y, fold_ids) may be dask arrays: per-block statistics on the workers, merged
        by Dask, row i still counted as rows_seen + i (see `shallowprobes._dask`).
        """
        # --- dask arrays (shallowprobes._dask) ---
        from .._dask import is_dask_array, update_stats

        if is_dask_array(X) or is_dask_array(Y):
            return update_stats(self, X, Y, fold_ids)
        # --- end dask ---
        keep = self._keeps_tensors(X)
        half = self._half_rows(X, keep)
        if half is not None:
            X = half
        else:  # finiteness and magnitude (of half rows too): in `_accumulate_validated`
            X = check_X(X, n_features=self.n_inputs, keep_tensor=keep, check_finite=False)
        n = X.shape[0]
        if Y is None:
            Yarr = np.zeros((n, 0))
        else:
            Yarr, _ = check_targets(Y, n, name="Y", keep_tensor=keep)
        if self.n_targets is not None and Yarr.shape[1] != self.n_targets:
            raise ValueError(
                f"Y has {Yarr.shape[1]} target column(s) but these statistics hold "
                f"{self.n_targets}."
            )
        if fold_ids is None:
            folds = None
            if self.n_folds > 1:
                folds = (np.arange(self.rows_seen, self.rows_seen + n) % self.n_folds).astype(
                    np.int64
                )
        else:
            folds = check_fold_ids(fold_ids, n, self.n_folds)
        self._accumulate_validated(X, Yarr, folds, check_values=True)
        return self

    def _half_rows(self, X: Any, keep_tensor: bool) -> Any:
        """bfloat16/float16 rows as raw bits for the Rust core (shape checked like `check_X`;
        their values are checked in the core's pass, see `_accumulate_validated`), or None:
        other dtypes, degree 2, or another backend (they convert as before)."""
        if keep_tensor or self.degree != 1 or get_backend(self.backend).name != "rust":
            return None
        from .._validation import check_shape
        from ..backends import rust_kernels as _rust_backend

        half = _rust_backend.half_rows(X)
        if half is not None:
            check_shape(half.shape, "X", self.n_inputs, 1, "this probe")
        return half

    def _gram_precision(self, X: Any) -> str:
        """The precision the Rust core uses for rows X (see the class docs)."""
        from ..backends.rust_kernels import HalfRows

        if self.precision != "auto":
            return self.precision
        return "float32" if isinstance(X, HalfRows) else "float64"

    def _accumulate_validated(
        self, X: np.ndarray, Y: np.ndarray, folds: Optional[np.ndarray],
        check_values: bool = False,
    ) -> None:
        """Accumulate validated rows, all-or-nothing (see `update`).

        Fresh statistics are accumulated in place and discarded on any failure; existing ones
        through scratch statistics about the same shifts, committed by one addition.

        check_values: X (shape and dtype already checked) has not been checked for finite
        values and magnitude yet (`_validation.check_X`'s value checks, for the range of
        degree-`degree` statistics). The Rust core's degree-1 pass reports the largest |x_ij|
        while staging the rows (and NaN/inf as it meets them), so there the check costs no
        pass of its own and runs before anything is committed; elsewhere X is checked first.
        """
        fresh = self.count is None
        device = self._device  # where the statistics live (fresh ones: decided by X)
        if fresh and uses_torch(self.backend, X):
            device = X.device if is_torch_tensor(X) else torch_backend().device_of()
        backend = torch_backend() if device is not None else get_backend(self.backend)
        fused = check_values and self.degree == 1 and getattr(backend, "name", None) == "rust"
        if check_values and not fused:
            check_values_of(X, "X", self.degree)  # before anything changes
        self._device = device
        if self._device is None:  # host statistics: host rows
            X, Y = host_array(X), host_array(Y)
        xp = self._ops()
        try:
            if fresh:
                self._allocate_for(X, Y, backend, xp)
                target = self
            else:
                target = self._scratch()
            kernel_args = (
                target.count, target.sum_x, target.sum_y, target.xtx, target.xty, target.yty
            )
            if self.degree == 2:
                backend.accumulate_quadratic(
                    X, Y, folds, self.input_shift, self.shift_x, self.shift_y, *kernel_args
                )
            else:
                extra = {}
                if getattr(backend, "name", None) == "rust":
                    extra["precision"] = self._gram_precision(X)
                largest = backend.accumulate(
                    X, Y, folds, self.shift_x, self.shift_y, *kernel_args, **extra
                )
                if fused:
                    check_magnitude(float(largest), "X", 1)
            with commit_guard():
                if not fresh:
                    for field in _FIELDS:
                        getattr(self, field)[...] += getattr(target, field)
                self.rows_seen += X.shape[0]
        except NonFiniteError:
            if fresh:
                self._discard()
            raise non_finite_error("X") from None
        except BaseException:
            if fresh:
                self._discard()
            raise

    def _allocate_for(self, X: Any, Y: Any, backend: Any, xp: Any) -> None:
        """Allocate fresh statistics shifted by the mean of the first rows of (X, Y): close
        enough to the data mean that centring loses no precision, at no extra pass over X."""
        with np.errstate(all="ignore"):  # NaN/inf in X are reported by the kernels
            if xp.is_torch:
                shift_x = xp.asarray(X[:256]).mean(axis=0)
            else:
                shift_x = X[:256].astype(np.float64).mean(axis=0)
        shift_y = xp.asarray(Y[:256]).mean(axis=0) if Y.shape[1] else xp.zeros(0)
        if self.degree == 2:
            # The quadratic features have means of the order of the variances: shift them
            # too, by their mean over the same first rows.
            if not xp.all_finite(shift_x):
                raise NonFiniteError(NON_FINITE)
            feats = backend.expand_quadratic(X[:256], shift_x, 1.0)
            self._allocate(feats.shape[1], Y.shape[1], feats.mean(axis=0), shift_y, shift_x)
        else:
            self._allocate(X.shape[1], Y.shape[1], shift_x, shift_y)

    def _scratch(self) -> SufficientStats:
        """Zero statistics of the same shape, shifts and device as these (for an update)."""
        out = SufficientStats(self.n_folds, self.backend, self.degree, self.precision)
        out._device = self._device
        out._allocate(
            self.n_features, self.n_targets, self.shift_x, self.shift_y, self.input_shift
        )
        return out

    def _discard(self) -> None:
        self._device = None
        self.n_features = self.n_targets = self.n_inputs = None
        self.shift_x = self.shift_y = self.input_shift = None
        for field in _FIELDS:
            setattr(self, field, None)

    # ------------------------------------------------------------------ merging
    def _check_compatible(self, other: SufficientStats) -> None:
        if not isinstance(other, SufficientStats):
            raise TypeError(f"can only merge SufficientStats, got {type(other).__name__}.")
        if self.n_folds != other.n_folds:
            raise ValueError(
                f"cannot merge statistics with {self.n_folds} and {other.n_folds} folds."
            )
        if self.degree != other.degree:
            raise ValueError(
                f"cannot merge statistics of degree {self.degree} and degree {other.degree}."
            )
        if self.count is not None and other.count is not None:
            if (self.n_features, self.n_targets) != (other.n_features, other.n_targets):
                raise ValueError(
                    "cannot merge statistics of different shapes: "
                    f"(d={self.n_features}, k={self.n_targets}) vs "
                    f"(d={other.n_features}, k={other.n_targets})."
                )

    def copy(self) -> SufficientStats:
        if self.count is None:
            out = SufficientStats(self.n_folds, self.backend, self.degree, self.precision)
            out._device = self._device
        else:
            out = self._scratch()
            for field in _FIELDS:
                getattr(out, field)[...] = getattr(self, field)
        out.rows_seen = self.rows_seen
        return out

    def merge(self, other: SufficientStats) -> SufficientStats:
        """Statistics of the union of both row sets (a new object; neither input changes).

        Fold k of the result is fold k of self plus fold k of other. The result keeps self's
        shift; other's statistics are re-expressed about it exactly.
        """
        self._check_compatible(other)
        if other.count is None:
            return self.copy()
        if self.count is None:
            out = other.copy()
            out.backend = self.backend
            return out
        if other._device != self._device:  # merged where self lives
            other = other._converted(self._device)
        xp = self._ops()
        if self.degree == 2 and not bool((self.input_shift == other.input_shift).all()):
            other = other.recentred(self.input_shift)
        out = self.copy()
        dx = other.shift_x - out.shift_x  # x - s_out = (x - s_other) + dx
        dy = other.shift_y - out.shift_y
        for f in range(self.n_folds):
            n = other.count[f]
            sx, sy = other.sum_x[f], other.sum_y[f]
            out.count[f] += n
            out.sum_x[f] += sx + n * dx
            out.sum_y[f] += sy + n * dy
            out.xtx[f] += other.xtx[f] + xp.outer(sx, dx) + xp.outer(dx, sx) + n * xp.outer(dx, dx)
            out.xty[f] += other.xty[f] + xp.outer(sx, dy) + xp.outer(dx, sy) + n * xp.outer(dx, dy)
            out.yty[f] += other.yty[f] + xp.outer(sy, dy) + xp.outer(dy, sy) + n * xp.outer(dy, dy)
        out.rows_seen = self.rows_seen + other.rows_seen
        return out

    __add__ = merge

    # ------------------------------------------------------------------ degree 2
    @property
    def input_mean(self) -> np.ndarray:
        """Mean of the input rows (d,): of X for degree 1, of h for degree 2."""
        self._require_data()
        n = float(self.count.sum())
        if self.degree == 1:
            return self.shift_x + self.sum_x.sum(axis=0) / n
        d = self.n_inputs
        return self.input_shift + self.shift_x[:d] + self.sum_x[:, :d].sum(axis=0) / n

    def input_covariance(self) -> np.ndarray:
        """Centred covariance (d, d) of the input rows (of X, or of h for degree 2), /n."""
        self._require_data()
        n = float(self.count.sum())
        d = self.n_inputs
        sx = self.sum_x[:, :d].sum(axis=0)
        xtx = self.xtx[:, :d, :d].sum(axis=0)
        return symmetric(xtx - self._ops().outer(sx, sx) / n) / n

    def recentred(self, centre: Any) -> SufficientStats:
        """Degree-2 statistics of the same rows about another centre (exact; a new object).

        The features become phi(h - centre). Costs O(p^2) per fold (see `solve.recentring`).
        """
        if self.degree != 2:
            raise ValueError("recentred() applies to degree-2 statistics only.")
        self._require_data()
        centre = checked_centre(centre, self.n_inputs, self._ops())
        out = SufficientStats(self.n_folds, self.backend, 2)
        fill_recentred(out, self, centre)  # solve.recentring
        return out

    def feature_stats(self, centre: Any = None, quad_scale: float = 1.0) -> SufficientStats:
        """Degree-1 statistics of the features phi(h - centre) with the quadratic block
        scaled by `quad_scale` (sqrt of the block weight gamma): what a ridge solve of the
        degree-2 probe works on. centre defaults to the input mean."""
        if self.degree != 2:
            raise ValueError("feature_stats() applies to degree-2 statistics only.")
        centre = self.input_mean if centre is None else centre
        out = self.recentred(centre)
        out._as_features(quad_scale)
        return out

    def _as_features(self, quad_scale: float) -> None:
        """In place: degree-2 statistics become degree-1 statistics of their p features,
        with the quadratic columns scaled by quad_scale (an exact linear change)."""
        d = self.n_inputs
        r = float(quad_scale)
        if r != 1.0:
            self.shift_x[d:] *= r
            self.sum_x[:, d:] *= r
            self.xtx[:, d:, :] *= r
            self.xtx[:, :, d:] *= r
            self.xty[:, d:, :] *= r
        self.degree = 1
        self.n_inputs = self.n_features
        self.input_shift = None

    # ------------------------------------------------------------------ solving helpers
    def _require_data(self) -> None:
        if self.count is None:
            raise ValueError("these statistics are empty: call update(X, Y) first.")

    def normal_equations(
        self,
        fit_intercept: bool = True,
        exclude_fold: Optional[int] = None,
        only_fold: Optional[int] = None,
    ) -> NormalEquations:
        """The ridge normal equations for all rows, all but one fold, or one fold.

        exclude_fold / only_fold: a fold index in [0, n_folds) (at most one of them);
        ParameterError (also an IndexError) for anything else."""
        check_fold_args(self.n_folds, fit_intercept, exclude_fold, only_fold)
        self._require_data()
        return normal_equations_of(self, fit_intercept, exclude_fold, only_fold)

    # ------------------------------------------------------------------ persistence
    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write the statistics to a `.npz` file (plain arrays, no pickle).

        As with ``np.savez``, ``.npz`` is appended to a path without it. The file is written
        under a temporary name in the same folder and renamed, so a failed save leaves neither a
        partial file nor a temporary one.
        """
        self._require_data()
        write_stats_file(self, path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], backend: str = "auto") -> SufficientStats:
        """Read statistics written by `save` (any format version up to this one).

        The file is untrusted input held to a schema (see `shallowprobes.io`): exactly the known
        members, each with the shape its n_folds, d, k and degree imply, real float64
        statistics (integer scalars), every value finite, row counts whole, non-negative and
        not all zero; each member's declared size is checked before it is decompressed.

        Raises FileNotFoundError for a missing file, and `shallowprobes.errors.BundleError` (a
        ValueError) naming the file and the member for anything else: a truncated, corrupted
        or inconsistent file, or one written by a newer format version.
        """
        get_backend(backend)  # a bad backend name is the caller's error, not the file's
        if not os.path.exists(path):
            raise FileNotFoundError(f"no sufficient-statistics file at {path!r}")
        K, degree, d, k, rows_seen, arrays = read_stats_file(path)
        out = cls(K, backend, degree)
        out._allocate(d, k, arrays["shift_x"], arrays["shift_y"], arrays.get("input_shift"))
        for field in _FIELDS:
            getattr(out, field)[...] = arrays[field]
        out.rows_seen = out.n_samples if rows_seen is None else rows_seen
        return out

    def __repr__(self) -> str:
        if self.count is None:
            return f"SufficientStats(n_folds={self.n_folds}, empty)"
        deg = f", degree=2, n_inputs={self.n_inputs}" if self.degree == 2 else ""
        return (
            f"SufficientStats(n_samples={self.n_samples}, n_features={self.n_features}, "
            f"n_targets={self.n_targets}, n_folds={self.n_folds}{deg})"
        )


def host_array(a: Any) -> Any:
    """Rows for host statistics: a torch tensor as numpy (CPU tensors are viewed, not copied)."""
    if is_torch_tensor(a):
        from .._validation import torch_to_numpy

        return torch_to_numpy(a)
    return a

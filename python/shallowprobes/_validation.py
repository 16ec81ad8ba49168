"""Input checking and conversion shared by every estimator.

Everything a user can pass (numpy arrays of any memory layout, lists, torch tensors, pandas
frames) is turned into a float32 or float64 numpy array here, and everything we cannot handle is
refused with an exception that says what was wrong and how to fix it. Nothing past this module
ever sees NaN, inf, object arrays or the wrong number of dimensions, so the Rust core never has
to report a user error.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .backends import all_finite, finite_max_abs, is_torch_tensor
from .errors import NonFiniteError, ScaleError

__all__ = [
    "check_X",
    "check_targets",
    "check_fold_ids",
    "fold_assignment",
    "check_folds_leave_rows",
    "check_magnitude",
    "is_torch_tensor",
    "all_finite",
]

# The magnitudes (largest |entry| of an array that is not all zero) that float64 statistics of
# polynomial features of degree k represent without overflow or loss of precision. Degree-k
# statistics hold sums of n products of 2k entries: with |x| <= 1e100 / 1e50 those stay below
# ~1e200 * n (float64 ends at 1.8e308, and n would have to exceed 1e100 to reach it), and with
# |x| >= 1e-100 / 1e-50 they stay above 1e-200 (subnormals start at 2.2e-308, where precision
# is lost: then coefficients and GCV scores come out silently wrong). Ridge is equivariant
# under rescaling (scale X by s and alpha by s^2), so rescaling the data loses nothing.
MAGNITUDE_RANGE = {1: (1e-100, 1e100), 2: (1e-50, 1e50)}

_FLOAT_KINDS = (np.float32, np.float64)
_TORCH_FLOATS = ("torch.float32", "torch.float64", "torch.bfloat16", "torch.float16")


def _is_sparse(obj: Any) -> bool:
    mod = type(obj).__module__
    return mod.startswith("scipy.sparse") or (hasattr(obj, "tocsr") and hasattr(obj, "nnz"))


def torch_to_numpy(t: Any) -> np.ndarray:
    t = t.detach()
    if t.device.type != "cpu":
        # backend="rust"/"numpy" asked for host work on a device tensor: one copy to host.
        t = t.cpu()
    if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
        # numpy has no bfloat16; float32 holds both exactly.
        t = t.float()
    if t.is_complex():
        raise ValueError("Complex data not supported; pass real-valued activations.")
    return t.numpy()  # zero-copy for CPU tensors


def check_X(
    X: Any,
    *,
    name: str = "X",
    n_features: Optional[int] = None,
    min_samples: int = 1,
    owner: str = "this probe",
    check_finite: bool = True,
    keep_tensor: bool = False,
    degree: Optional[int] = None,
) -> Any:
    """Return X as a 2-D float32/float64 numpy array with finite entries.

    degree (1 or 2, with check_finite): also check, in the same pass, that the magnitude of X
    lies in `MAGNITUDE_RANGE[degree]`, the range where statistics of degree-`degree` features
    are exact in float64 (a `ScaleError` otherwise). Fitting paths pass it; prediction paths
    need finiteness only.

    float32 and float64 arrays keep their dtype and memory layout (C, Fortran or strided), so
    large activation caches are never copied; other real dtypes are converted (float16 to
    float32, integers and booleans to float64).

    keep_tensor=True (the torch backend): a torch tensor is validated where it lives and
    returned as a tensor on its device (float32/float64/bfloat16/float16 kept as they are,
    integers and booleans as float64); other inputs are handled as above.
    """
    if X is None:
        raise ValueError(f"{name} is None; pass a 2-D array of shape (n_samples, n_features).")
    if _is_sparse(X):
        raise TypeError(
            f"{name} is a sparse matrix; sparse input is not supported. Densify it first, "
            f"e.g. {name}.toarray(): probe features from activations are dense."
        )
    if is_torch_tensor(X):
        if keep_tensor:
            return _check_tensor_X(X, name, n_features, min_samples, owner, check_finite, degree)
        X = torch_to_numpy(X)
    arr = np.asarray(X)
    if arr.dtype.kind == "c":
        raise ValueError("Complex data not supported; pass real-valued activations.")
    if arr.dtype.kind in "OUS" or arr.dtype.kind == "V":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            # keep the kind of error (strings: ValueError, other objects: TypeError)
            raise type(exc)(
                f"{name} has dtype {arr.dtype} whose entries could not be converted to float "
                f"({exc}). Pass a numeric array (float32 or float64)."
            ) from None
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype.type not in _FLOAT_KINDS:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} has unsupported dtype {arr.dtype}; pass float32 or float64."
            ) from None
    check_shape(arr.shape, name, n_features, min_samples, owner)
    if check_finite:
        check_values(arr, name, degree)
    return arr


def check_values(arr: Any, name: str, degree: Optional[int]) -> None:
    """One pass over an array (numpy or tensor): finiteness, and the magnitude for `degree`."""
    if degree is None:
        if not all_finite(arr):
            raise non_finite_error(name)
        return
    amax = finite_max_abs(arr)
    if np.isnan(amax):
        raise non_finite_error(name)
    check_magnitude(amax, name, degree)


def check_magnitude(amax: float, name: str, degree: int) -> None:
    """Raise `ScaleError` unless the largest |entry| `amax` of `name` lies in the range where
    degree-`degree` statistics are exact (an all-zero array passes)."""
    lo, hi = MAGNITUDE_RANGE[2 if degree >= 2 else 1]
    if amax == 0.0 or lo <= amax <= hi:
        return
    what = "overflow" if amax > hi else "underflow (losing all precision)"
    raise ScaleError(
        f"{name} has entries of magnitude up to {amax:.3g}, outside [{lo:.0e}, {hi:.0e}], the "
        f"range where float64 statistics of degree-{degree} features are exact: they would "
        f"{what}. Rescale {name}, e.g. {name} / np.abs({name}).max(): ridge predictions are "
        "unchanged when alphas are scaled by the square of the same factor (the default, "
        "data-relative alpha grids follow automatically)."
    )


def check_shape(shape: tuple, name: str, n_features, min_samples: int, owner: str) -> None:
    """The checks of `check_X` that need only the shape (numpy arrays and tensors alike)."""
    if len(shape) != 2:
        hint = (
            " Reshape your data either using array.reshape(-1, 1) if it has a single feature"
            " or array.reshape(1, -1) if it contains a single sample."
            if len(shape) == 1
            else ""
        )
        raise ValueError(
            f"Expected 2D array for {name} of shape (n_samples, n_features), got "
            f"{len(shape)}D array of shape {shape} instead.{hint}"
        )
    n, d = shape
    if n < min_samples:
        raise ValueError(
            f"Found array with {n} sample(s) (shape={shape}) while a minimum of "
            f"{min_samples} is required."
        )
    if d == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={shape}) while a minimum of 1 is required."
        )
    if n_features is not None and d != n_features:
        raise ValueError(
            f"{name} has {d} features, but {owner} is expecting {n_features} features as input "
            f"(it was fitted on {n_features}-dimensional rows)."
        )


def _check_tensor_X(
    X: Any, name: str, n_features, min_samples: int, owner: str, finite: bool, degree=None
):
    """`check_X` for a torch tensor kept on its device (no host copy)."""
    import torch

    t = X.detach()
    if t.is_complex():
        raise ValueError("Complex data not supported; pass real-valued activations.")
    if str(t.dtype) not in _TORCH_FLOATS:
        t = t.to(torch.float64)  # integers, booleans, other float formats
    check_shape(tuple(t.shape), name, n_features, min_samples, owner)
    if finite:
        check_values(t, name, degree)
    return t


def non_finite_error(name: str = "X") -> NonFiniteError:
    return NonFiniteError(
        f"Input {name} contains NaN or infinity. Remove or impute those rows: probes are "
        f"fitted on, and applied to, finite activations only."
    )


def check_targets(
    y: Any,
    n_samples: int,
    *,
    name: str = "y",
    owner: str = "This estimator",
    keep_tensor: bool = False,
) -> tuple[Any, bool]:
    """Return regression targets as a C-contiguous float64 (n, k) array and whether y was 1-D.

    keep_tensor=True: a torch tensor y is checked on its device and returned as a float64
    tensor there (the torch backend).
    """
    if y is None:
        raise ValueError(f"{owner} requires {name} to be passed, but the target {name} is None.")
    if _is_sparse(y):
        raise TypeError(f"{name} is a sparse matrix; sparse targets are not supported.")
    if is_torch_tensor(y) and keep_tensor:
        return _check_tensor_targets(y, n_samples, name)
    if is_torch_tensor(y):
        y = torch_to_numpy(y)
    arr = np.asarray(y)
    if arr.dtype.kind == "c":
        raise ValueError("Complex data not supported; targets must be real.")
    try:
        arr = arr.astype(np.float64, copy=False)
    except (TypeError, ValueError):
        raise ValueError(f"{name} could not be converted to float; pass numeric targets.") from None
    one_d = arr.ndim == 1
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim != 2:
        raise ValueError(
            f"{name} must be 1-D (n_samples,) or 2-D (n_samples, n_targets), got shape {arr.shape}."
        )
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: X has {n_samples} "
            f"rows but {name} has {arr.shape[0]}."
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 targets (shape {arr.shape}); pass at least one column.")
    if not np.isfinite(arr).all():
        raise NonFiniteError(f"Input {name} contains NaN or infinity.")
    check_magnitude(float(np.abs(arr).max()) if arr.size else 0.0, name, 1)
    return np.ascontiguousarray(arr), one_d


def _check_tensor_targets(y: Any, n_samples: int, name: str) -> tuple[Any, bool]:
    import torch

    t = y.detach()
    if t.is_complex():
        raise ValueError("Complex data not supported; targets must be real.")
    t = t.to(torch.float64)
    one_d = t.ndim == 1
    if one_d:
        t = t[:, None]
    elif t.ndim != 2:
        raise ValueError(
            f"{name} must be 1-D (n_samples,) or 2-D (n_samples, n_targets), got shape "
            f"{tuple(t.shape)}."
        )
    if t.shape[0] != n_samples:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: X has {n_samples} "
            f"rows but {name} has {t.shape[0]}."
        )
    if t.shape[1] == 0:
        raise ValueError(
            f"{name} has 0 targets (shape {tuple(t.shape)}); pass at least one column."
        )
    if not bool(torch.isfinite(t).all()):
        raise NonFiniteError(f"Input {name} contains NaN or infinity.")
    check_magnitude(float(t.abs().max()) if t.numel() else 0.0, name, 1)
    return t.contiguous(), one_d


def check_fold_ids(fold_ids: Any, n_samples: int, n_folds: int) -> np.ndarray:
    """Validate explicit fold assignments (integers in [0, n_folds))."""
    arr = np.asarray(fold_ids)
    if arr.ndim != 1 or arr.shape[0] != n_samples:
        raise ValueError(
            f"fold_ids must be a 1-D array with one entry per row ({n_samples}), got shape "
            f"{arr.shape}."
        )
    if arr.dtype.kind not in "iu":
        raise TypeError(f"fold_ids must be integers, got dtype {arr.dtype}.")
    if arr.size and (arr.min() < 0 or arr.max() >= n_folds):
        raise ValueError(
            f"fold_ids must lie in [0, {n_folds}) for {n_folds}-fold CV; got values in "
            f"[{arr.min()}, {arr.max()}]."
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


def fold_assignment(
    n_folds: int, n_samples: int, fold_ids: Any, *, rows: str = "samples", prefix: str = "",
    error: type[ValueError] = ValueError,
) -> Optional[np.ndarray]:
    """The fold of each of `n_samples` rows for K-fold CV: row i in fold i % K, or the
    explicit `fold_ids` checked (`check_fold_ids`); None for n_folds == 1 (GCV, LOO), where
    `fold_ids` must be None. The one place every fit (in memory, dask, `sweep`) assigns
    folds, so they all agree on the rule and its errors: `error` (a ValueError) is raised
    with `prefix` before the message, which names the rows as `rows`."""
    if n_folds > 1:
        if n_folds > n_samples:
            raise error(
                f"{prefix}cv={n_folds} folds but only {n_samples} {rows}; use cv <= the "
                f"number of {rows}."
            )
        if fold_ids is None:
            return np.arange(n_samples, dtype=np.int64) % n_folds
        return check_fold_ids(fold_ids, n_samples, n_folds)
    if fold_ids is not None:
        raise error(f"{prefix}fold_ids is only used with integer cv (K-fold).")
    return None


def check_folds_leave_rows(counts: Any, n_samples: int) -> None:
    """K-fold CV trains each fold's model on the other folds' rows: a fold holding every row
    leaves none (explicit fold_ids that put all rows in one fold)."""
    for f, c in enumerate(np.asarray(counts).ravel()):
        if c > 0 and n_samples - c < 1:
            raise ValueError(f"fold {f} holds every row; K-fold CV needs rows in other folds.")


def check_rows_finite(X: np.ndarray, backend: Any) -> None:
    """Raise the standard non-finite error unless every entry of X is finite (one pass, in
    the backend's kernel). For solvers that use the rows without streaming statistics."""
    if not backend.all_finite(X):
        raise non_finite_error("X")

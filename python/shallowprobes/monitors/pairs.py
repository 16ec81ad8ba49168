"""The paired hidden states of two models, as the aligner uses them.

Rows i of H_A and H_B are the same input seen by models A and B. This module holds what is
done to those rows before any map is fitted: putting both sides in one place (numpy, or
tensors on one device), splitting them into training and held-out pairs, gathering rows,
their per-column moments, and the ridge alpha grid scaled to B's data. Apart from
`QuotientAligner` because these are plain functions of the pairs (`monitors.transfer`
gathers the same held-out rows for its few-label baseline).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._params import RANDOM_STATE, Interval, ParameterError, check_param
from ..backends import copy_of, float64_row_blocks, is_torch_tensor, ops_of, to_numpy, torch_backend
from .monitor import as_float64

HOLDOUT = [
    Interval("real", 0.0, 1.0, closed="neither", desc="a fraction in (0, 1)"),
    Interval("int", 2, None, desc="a number of held-out pairs >= 2"),
]


def split_pairs(n: int, holdout: Any, random_state: Any) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) row indices of n pairs (holdout: a fraction or a count)."""
    check_param("holdout", holdout, HOLDOUT)
    check_param("random_state", random_state, RANDOM_STATE)
    if isinstance(holdout, numbers.Integral):
        n_hold = int(holdout)
    else:
        n_hold = int(round(float(holdout) * n))
    if n_hold < 2 or n - n_hold < 3:
        raise ParameterError(
            f"with {n} paired rows, holdout={holdout!r} leaves {n_hold} held-out and "
            f"{n - n_hold} training pairs; need at least 2 held-out pairs (to measure fidelity) "
            "and 3 training pairs. Pass more pairs or change holdout."
        )
    perm = np.random.default_rng(random_state).permutation(n)
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def column_moments(X: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and variance (/n) of X in one blocked pass, about the first row (so
    large offsets do not cancel), as numpy."""
    s1 = s2 = shift = None
    for _, block in float64_row_blocks(X):
        if shift is None:
            shift = copy_of(block[0])
            s1, s2 = 0.0 * shift, 0.0 * shift
        u = block - shift
        s1 = s1 + u.sum(0)
        s2 = s2 + (u * u).sum(0)
    n = X.shape[0]
    shift, s1, s2 = (np.asarray(to_numpy(a), dtype=np.float64) for a in (shift, s1, s2))
    return shift + s1 / n, np.maximum(s2 / n - (s1 / n) ** 2, 0.0)


def take_rows(X: Any, idx: np.ndarray) -> Any:
    """Rows idx of X (numpy or a tensor; a tensor's rows are gathered on its device)."""
    xp = ops_of(X)
    rows = X[xp.index(idx)]
    return rows if xp.is_torch else np.asarray(rows)


def alpha_grid(H: Any, metric: str, readout: Any, moments: Any = None) -> np.ndarray:
    """logspace(-10, 3, 27) times the mean eigenvalue of the (metric-transformed) centred Gram.

    Wider at the bottom than the probes' default grid: maps between (nearly) equivalent models
    are nearly noiseless, and CV must be able to pick an almost unpenalised map. `moments`:
    H's column (mean, variance) when already known."""
    n, d = H.shape
    mean, var = column_moments(H) if moments is None else moments
    if metric == "euclidean":
        trace = float(var.sum())
    elif metric == "standardize":
        trace = float(np.count_nonzero(var > 1e-12 * max(float(var.max()), 1e-300)))
    elif metric == "whiten":
        trace = float(d)
    else:  # tr(W S W^T) = ||(H - mu) W^T||^2 / n
        xp = ops_of(H)  # the blocks' namespace: the readout and mean are placed there once
        W, centre = xp.asarray(as_float64(readout)), xp.asarray(mean)
        trace = 0.0
        for _, block in float64_row_blocks(H):
            trace += float((((block - centre) @ W.T) ** 2).sum())
        trace /= n
    scale = n * trace / max(d, 1)
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return np.logspace(-10, 3, 27) * scale


def same_place(XA: Any, XB: Any) -> tuple[Any, Any]:
    """Both numpy, or both torch tensors on XA's device (else XB's): a numpy side is moved to
    the tensor's device, a tensor on another device is moved to XA's."""
    xp = ops_of(XA, XB)
    if not xp.is_torch:
        return XA, XB

    def place(X: Any) -> Any:
        # keeps a tensor's dtype (the fits choose their own precision); numpy rows go over as-is
        if is_torch_tensor(X):
            return X if X.device == xp.device else X.to(xp.device)
        return torch_backend().host_tensor(np.ascontiguousarray(X)).to(xp.device)

    return place(XA), place(XB)

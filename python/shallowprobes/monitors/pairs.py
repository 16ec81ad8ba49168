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
from ..backends import float64_row_blocks, is_torch_tensor, to_numpy

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
            shift = block[0].clone() if is_torch_tensor(block) else block[0].copy()
            s1, s2 = 0.0 * shift, 0.0 * shift
        u = block - shift
        s1 = s1 + u.sum(0)
        s2 = s2 + (u * u).sum(0)
    n = X.shape[0]
    shift, s1, s2 = (np.asarray(to_numpy(a), dtype=np.float64) for a in (shift, s1, s2))
    return shift + s1 / n, np.maximum(s2 / n - (s1 / n) ** 2, 0.0)


def take_rows(X: Any, idx: np.ndarray) -> Any:
    """Rows idx of X (numpy or a tensor; a tensor's rows are gathered on its device)."""
    if is_torch_tensor(X):
        import torch

        return X[torch.as_tensor(idx, device=X.device)]
    return np.asarray(X[idx])


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
        W = np.asarray(to_numpy(readout), dtype=np.float64)
        trace = 0.0
        for _, block in float64_row_blocks(H):
            if is_torch_tensor(block):
                Wt = block.new_tensor(W)
                trace += float((((block - block.new_tensor(mean)) @ Wt.T) ** 2).sum())
            else:
                trace += float(np.sum(((block - mean) @ W.T) ** 2))
        trace /= n
    scale = n * trace / max(d, 1)
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return np.logspace(-10, 3, 27) * scale


def same_place(XA: Any, XB: Any) -> tuple[Any, Any]:
    """Both numpy, or both torch tensors on XA's device (else XB's): a numpy side is moved to
    the tensor's device, a tensor on another device is moved to XA's."""
    if not (is_torch_tensor(XA) or is_torch_tensor(XB)):
        return XA, XB
    import torch

    device = XA.device if is_torch_tensor(XA) else XB.device

    def place(X):
        if is_torch_tensor(X):
            return X if X.device == device else X.to(device)
        return torch.from_numpy(np.ascontiguousarray(X)).to(device)

    return place(XA), place(XB)

"""Random orthogonal and affine maps: the scramble of the synthetic tasks and the maps
between the paired models."""

from __future__ import annotations

import math

import numpy as np

_OFFSET_SCALE = 5.0  # standard deviation of each coordinate of the offset v when scrambling


def _haar_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    """Haar-distributed d x d orthogonal matrix (QR of a Gaussian matrix with sign fix)."""
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    signs = np.sign(np.diag(R))
    signs[signs == 0] = 1.0
    return Q * signs


def _random_affine(rng: np.random.Generator, d: int, condition: float) -> tuple:
    """T = U diag(s) V^T, s log-uniform in [condition^-1/2, condition^1/2]; v ~ N(0, 5^2 I)."""
    U = _haar_orthogonal(rng, d)
    V = _haar_orthogonal(rng, d)
    half = 0.5 * math.log(condition)
    s = np.exp(rng.uniform(-half, half, size=d))
    T = (U * s) @ V.T
    v = rng.normal(scale=_OFFSET_SCALE, size=d)
    return T, v

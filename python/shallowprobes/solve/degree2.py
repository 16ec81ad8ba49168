"""Pieces shared by every degree-2 route (primal, dual, subspace) and by CP: the gamma and
quadratic-rank defaults, the block feature map, the Gaussian calibration slope from decision
values, the trace-relative alpha grid and the memory helpers.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..backends import ops_of
from ..solve import features as _quadratic

# Default gamma grid: these factors times g0 = 1 / mean ||h - mu||^2 (one eigendecomposition
# each: a default degree-2 fit costs three solves), grown by factors of GAMMA_STEP at most
# GAMMA_EXTENSIONS times per side while the choice sits at an improving edge (1e-3 .. 1e3 x g0
# in all). gamma="scale" is g0 alone (one solve).
GAMMA_FACTORS = np.array([0.1, 1.0, 10.0])
GAMMA_STEP = 10.0
GAMMA_EXTENSIONS = 2
# quadratic_rank="auto": the subspace dimensions tried (those below d, and min(d, 16)); the
# refitting K-fold CV that picks one uses the probe's folds, else RANK_FOLDS folds
DEFAULT_QUADRATIC_RANKS = (1, 2, 4, 8)
RANK_FOLDS = 5
# Ridge shrinkage of the covariance (times its mean eigenvalue) in the label-weighted second
# moment that picks the subspace (`phd_directions`)
PHD_SHRINK = 0.1
PREDICT_ENTRIES = 1 << 22  # rows per prediction block ~ this / d


def physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 << 30


def format_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if b < 1024 or unit == "PiB":
            return f"{b:.1f} {unit}"
        b /= 1024.0
    return f"{b:.1f} PiB"  # pragma: no cover


class QuadraticFeatureMap:
    """Block-wise phi_gamma(h - centre) (used for LOO and held-out decision values)."""

    def __init__(self, centre: np.ndarray, quad_scale: float, backend, geometry=None) -> None:
        self.centre = centre
        self.quad_scale = quad_scale
        self.backend = backend
        self.geometry = geometry
        self.width = _quadratic.n_features(centre.shape[0])

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.geometry is None or self.geometry.is_identity:
            return self.backend.expand_quadratic(X, self.centre, self.quad_scale)
        xp = ops_of(self.centre)
        U = self.geometry.rows(xp.asarray(X, dtype=np.float64) - self.centre)
        return self.backend.expand_quadratic(U, xp.zeros(U.shape[1]), self.quad_scale)


def gaussian_slope_from_values(F: Any, codes: Any) -> float:
    """The closed-form logistic slope of `linear.gaussian_calibration`, from decision values
    F (n, k) and +-1 codes (n, k) of the training rows (dual route, CP probes). F may be a
    torch tensor: the reductions run on its device and only class counts and moments (Python
    floats) are read back."""
    xp = ops_of(F)
    codes = xp.asarray(codes)
    n = F.shape[0]
    slopes = []
    for t in range(F.shape[1]):
        pos = codes[:, t] > 0
        n_pos = int(pos.sum())
        n_neg = n - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        f = F[:, t]
        wp = pos * 1.0
        m_pos = float((f * wp).sum()) / n_pos
        m_neg = float((f * (1.0 - wp)).sum()) / n_neg
        centred = xp.where(pos, f - m_pos, f - m_neg)
        within = float((centred * centred).sum())
        total = float(((f - f.mean()) ** 2).sum())
        s2 = max(within / max(n - 2.0, 1.0), 1e-12 * total / n, 1e-300)
        slopes.append((m_pos - m_neg) / s2)
    slope = float(np.mean(slopes)) if slopes else 1.0
    if not np.isfinite(slope) or slope <= 0:
        slope = 1.0
    return min(slope, 1e12)


def default_alpha_grid_from_trace(trace: float, p: int, n_alphas: int = 19) -> np.ndarray:
    """The default grid of `linear.default_alpha_grid` from the Gram's trace (the dual
    kernel has the same trace as the primal Gram)."""
    scale = trace / max(p, 1)
    if not np.isfinite(scale) or scale <= 0.0:
        scale = 1.0
    return np.logspace(-6, 3, n_alphas) * scale

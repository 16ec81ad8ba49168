"""Coordinate geometries of the probes: the `metric` parameter (docs/design.md §2).

A fitted ridge probe is only as coordinate-independent as its penalty. Each metric fixes the
geometry the penalty is measured in by building the features from A (h - mu) for a matrix A
fitted from sufficient statistics, and each has a stated group of changes of coordinates
h -> T h + v under which the fitted predictions are exactly invariant:

==============  ===========================================  ====================================
metric          A                                            predictions invariant under
==============  ===========================================  ====================================
"euclidean"     I                                            orthogonal T, any shift v
"standardize"   diag(1/sd_j), sd from the training rows      diagonal T (any signs), permutations,
                                                             shifts
"whiten"        S^-1/2, S the covariance of a reference      every invertible T, any shift
                set (default: the training rows)             (on the span of the reference)
"readout"       (W^T W)^1/2 from the readout W (m, d)        every invertible T acting on (h, W)
                                                             together: h -> T h + v, W -> W T^-1
==============  ===========================================  ====================================

Why: each A maps the group to orthogonal maps of A (h - mu) (for "whiten",
(T S T^T)^-1/2 T = R S^-1/2 with R orthogonal, by the polar decomposition), the degree-2
feature map turns an orthogonal map of u into an orthogonal map of phi(u), and ridge with an
orthogonal change of features gives the same predictions. Default alpha grids and the default
gamma are computed after the change, so they are invariant too.

Rank deficiency: eigenvalues of S (or of W^T W, or variances) below ``rcond`` times the
largest are treated as zero: their directions are dropped (pseudo-inverse square root), and
invariance then holds on the span of the reference data.

Caveat: "whiten" fitted on its own training set makes degree-1 ridge plain least squares
shrunk by n/(n + alpha): full affine invariance leaves the penalty no preferred direction.

Wide rows (d comparable to n). With degree 2, "whiten" alone fails once d/n is more than a few
per cent: the quadratic block has d(d+1)/2 whitened products, every one -- noise directions
included -- penalised alike, and the probe falls towards chance (on the synthetic pair task
of `datasets.make_wide_interaction`, d = 768, n = 4000: benches/bench_wide.py). A larger
unlabelled `reference` estimates S better but does not change that. What works, with its
invariance group (tested in tests/test_wide_degree2.py with random group elements):

==========================================  ==============================================
option                                      predictions invariant under
==========================================  ==============================================
metric="whiten", reference=R (rows or       every invertible affine map applied to the
SufficientStats, e.g. unlabelled rows)      training rows and R together (a fixed R breaks
                                            it)
quadratic_rank=m / [m...] / "auto" on       the group of the metric it is combined with:
QuadraticProbe(Classifier), any metric      the quadratic block is cut to the m leading
                                            principal Hessian directions of the (ridge-)
                                            whitened metric coordinates, m chosen by
                                            refitting K-fold CV; every step is
                                            orthogonally equivariant
CPProbe(Classifier), any metric             the metric's group (the default sketch start is
                                            the same reduction with m = 2 rank)
==========================================  ==============================================

Which to use when d/n is large: metric="whiten" with quadratic_rank="auto" (and reference=
unlabelled rows when there are many) for an affine-invariant degree-2 probe; the default
metric with quadratic_rank="auto", or a CPProbe, when orthogonal invariance is enough. The
plain exact probe (quadratic_rank=None) remains the reference when d/n is small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .._params import (
    Array,
    Interval,
    NonFiniteParameterError,
    Options,
    ParameterError,
    ParameterTypeError,
    check_param,
    shown,
)
from .._validation import check_X
from ..backends import NUMPY_OPS, all_finite, ops_of
from . import features as _quadratic

__all__ = ["METRICS", "Geometry", "fit_geometry", "psd_sqrt", "psd_inv_sqrt"]

METRICS = ("euclidean", "standardize", "whiten", "readout")
DEFAULT_RCOND = 1e-10
_RCOND = [Interval("real", 0.0, 1.0, closed="left")]


def _psd_eigh(S: np.ndarray, rcond: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xp = ops_of(S)
    lam, V = xp.eigh(0.5 * (S + S.T))
    top = float(lam.max()) if lam.shape[0] else 0.0
    keep = lam > (rcond * top if top > 0 else float("inf"))
    return lam, V, keep


def psd_sqrt(S: np.ndarray, rcond: float = DEFAULT_RCOND) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (tiny eigenvalues -> 0).
    numpy in, numpy out; a torch tensor in, a tensor on its device out."""
    check_param("rcond", rcond, _RCOND)
    xp = ops_of(S)
    lam, V, keep = _psd_eigh(S, rcond)
    root = xp.where(keep, xp.sqrt(xp.where(keep, lam, 0.0)), 0.0)
    return (V * root) @ V.T


def psd_inv_sqrt(S: np.ndarray, rcond: float = DEFAULT_RCOND) -> np.ndarray:
    """Pseudo-inverse square root S^+1/2: eigenvalues <= rcond * max are dropped."""
    check_param("rcond", rcond, _RCOND)
    xp = ops_of(S)
    lam, V, keep = _psd_eigh(S, rcond)
    inv = xp.where(keep, 1.0 / xp.sqrt(xp.where(keep, lam, 1.0)), 0.0)
    return (V * inv) @ V.T


@dataclass
class Geometry:
    """A fitted metric: features are built from A (h - mu). `matrix` is A (d, d), or None for
    the identity; `diagonal` holds A's diagonal when A is diagonal (standardize)."""

    metric: str
    matrix: Optional[np.ndarray] = None
    diagonal: Optional[np.ndarray] = None

    def to(self, xp: Any) -> Geometry:
        """The same geometry with its arrays in namespace `xp` (numpy or torch on a device)."""
        conv = (lambda a: None if a is None else xp.asarray(xp.to_numpy(a), dtype=np.float64)) \
            if not xp.is_torch else (lambda a: None if a is None else xp.asarray(a))  # fmt: skip
        return Geometry(self.metric, conv(self.matrix), conv(self.diagonal))

    def _xp(self) -> Any:
        return ops_of(self.matrix, self.diagonal)

    @property
    def is_identity(self) -> bool:
        return self.matrix is None and self.diagonal is None

    def as_matrix(self, d: int) -> np.ndarray:
        if self.matrix is not None:
            return self.matrix * 1.0
        if self.diagonal is not None:
            return self._xp().diag(self.diagonal)
        return np.eye(d)

    def rows(self, U: np.ndarray) -> np.ndarray:
        """A u for each row u of U (float64)."""
        U = ops_of(U, self.matrix, self.diagonal).asarray(U, dtype=np.float64)
        if self.matrix is not None:
            return U @ self.matrix.T
        if self.diagonal is not None:
            return U * self.diagonal
        return U

    def pull_back_linear(self, w: np.ndarray) -> np.ndarray:
        """Coefficients (d, k) on A u -> coefficients on u: A^T w."""
        if self.matrix is not None:
            return self.matrix.T @ w
        if self.diagonal is not None:
            return w * self.diagonal[:, None]
        return w

    def pull_back_quadratic(self, Q: np.ndarray) -> np.ndarray:
        """Q (k, d, d) of (A u)^T Q (A u) -> A^T Q A."""
        if self.matrix is not None:
            return self._xp().einsum("ai,tab,bj->tij", self.matrix, Q, self.matrix, optimize=True)
        if self.diagonal is not None:
            return Q * self.diagonal[None, :, None] * self.diagonal[None, None, :]
        return Q

    # ------------------------------------------------------------------ statistics
    def feature_blocks(self, d: int, degree: int) -> list[tuple[slice, Any]]:
        """The change of features as a block-diagonal map: [(slice, matrix or vector)].

        Degree 1: A itself. Degree 2: phi(A u) = blockdiag(A, A_quad) phi(u), where row (a, b)
        of A_quad holds s_ab (A_ai A_bj + A_aj A_bi) / (s_ij (1 + [i = j])) at column (i, j).
        """
        lin = self.diagonal if self.diagonal is not None else self.as_matrix(d)
        blocks = [(slice(0, d), lin)]
        if degree == 2:
            a, b, s = _quadratic.pairs_like(d, lin)
            p = _quadratic.n_features(d)
            if self.diagonal is not None:
                blocks.append((slice(d, p), self.diagonal[a] * self.diagonal[b]))
            else:
                A = self.as_matrix(d)
                Aa, Ab = A[a], A[b]  # (q, d)
                lift = Aa[:, a] * Ab[:, b] + Aa[:, b] * Ab[:, a]
                lift *= s[:, None] / (s * (1.0 + (a == b)))[None, :]
                blocks.append((slice(d, p), lift))
        return blocks

    def transform_stats(self, stats, degree: int):
        """Statistics of the mapped features (a new object; the statistics' shifts map the
        same way, so centring stays exact). `stats` are degree-1 statistics of x (degree=1)
        or degree-2 statistics of phi(h - centre) (degree=2; the result is degree-2
        statistics of phi(A (h - centre)))."""
        d = stats.n_inputs
        blocks = self.feature_blocks(d, degree)
        out = stats.copy()

        def vec(v: np.ndarray) -> np.ndarray:  # (p,) or (p, k)
            res = v * 0.0
            for sl, M in blocks:
                if M.ndim == 1:
                    res[sl] = M[:, None] * v[sl] if v.ndim == 2 else M * v[sl]
                else:
                    res[sl] = M @ v[sl]
            return res

        out.shift_x = vec(stats.shift_x)
        for f in range(stats.n_folds):
            out.sum_x[f] = vec(stats.sum_x[f])
            out.xty[f] = vec(stats.xty[f])
            G = stats.xtx[f]
            for si, Mi in blocks:
                for sj, Mj in blocks:
                    g = G[si, sj]
                    g = Mi[:, None] * g if Mi.ndim == 1 else Mi @ g
                    g = g * Mj[None, :] if Mj.ndim == 1 else g @ Mj.T
                    out.xtx[f][si, sj] = g
        return out


def check_readout(readout: Any, d: int) -> np.ndarray:
    """The readout matrix W as float64 (m, d): ParameterError unless it is a numeric 2-D
    array with d columns, NonFiniteParameterError (a NonFiniteError) for NaN or infinity."""
    if readout is None:
        raise ParameterError(
            'metric="readout" needs the model\'s readout matrix: pass readout=W with W of '
            "shape (m, d) (logits = W h + b)."
        )
    W = Array.as_array(readout)
    if W is None:
        raise ParameterTypeError(
            f"readout must be a numeric array of shape (m, {d}) (m outputs, {d} hidden units), "
            f"got {shown(readout)}."
        )
    if W.ndim != 2 or W.shape[1] != d:
        raise ParameterError(
            f"readout must have shape (m, {d}) (m outputs, {d} hidden units), got {W.shape}."
        )
    W = np.asarray(W, dtype=np.float64)
    if not all_finite(W):
        raise NonFiniteParameterError(
            f"readout contains NaN or infinity; it must be a finite (m, {d}) matrix."
        )
    return W


def reference_covariance(reference: Any, d: int, backend: str = "auto") -> np.ndarray:
    """Centred covariance (d, d) of a reference set: rows (n, d) or a `SufficientStats`."""
    from .stats import SufficientStats

    if isinstance(reference, SufficientStats):
        if reference.n_inputs != d:
            raise ValueError(
                f"reference statistics have {reference.n_inputs} inputs but X has {d} features."
            )
        return reference.input_covariance()
    R = check_X(reference, name="reference", n_features=d, min_samples=2, owner="the probe")
    return SufficientStats(1, backend).update(R).input_covariance()


_METRIC = [Options(METRICS)]


def check_metric(metric: Any) -> str:
    check_param("metric", metric, _METRIC)
    return metric


def fit_geometry(
    metric: str,
    covariance: Any,
    d: int,
    *,
    reference: Any = None,
    readout: Any = None,
    rcond: float = DEFAULT_RCOND,
    backend: str = "auto",
    xp: Any = None,
    variances: Any = None,
) -> Geometry:
    """The matrix A of `metric`. `covariance` is a callable returning the training rows'
    centred covariance (called only when needed); `variances`, optionally, one returning
    its diagonal alone (metric="standardize" then calls it instead: from the rows that is n d
    work, not n d^2). `xp`: the array namespace of the result (numpy by default;
    `torch_kernels.TorchOps` for a geometry on a torch device)."""
    xp = NUMPY_OPS if xp is None else xp
    check_metric(metric)
    check_param("rcond", rcond, _RCOND)
    if reference is not None and metric != "whiten":
        raise ParameterError(f'reference= is used by metric="whiten" only (metric={metric!r}).')
    if readout is not None and metric != "readout":
        raise ParameterError(f'readout= is used by metric="readout" only (metric={metric!r}).')
    if metric == "euclidean":
        return Geometry(metric)
    if metric == "standardize":
        if variances is not None:
            var = xp.asarray(variances(), dtype=np.float64) * 1.0
        else:
            var = xp.diagonal(xp.asarray(covariance(), dtype=np.float64)) * 1.0
        top = float(var.max()) if var.shape[0] else 0.0
        keep = var > (rcond * top if top > 0 else float("inf"))
        scale = xp.where(keep, 1.0 / xp.sqrt(xp.where(keep, var, 1.0)), 0.0)
        return Geometry(metric, diagonal=scale)
    if metric == "whiten":
        S = covariance() if reference is None else reference_covariance(reference, d, backend)
        S = xp.asarray(xp.to_numpy(S) if not xp.is_torch else S, dtype=np.float64)
        return Geometry(metric, matrix=psd_inv_sqrt(S, rcond))
    W = xp.asarray(check_readout(readout, d), dtype=np.float64)
    return Geometry(metric, matrix=psd_sqrt(W.T @ W, rcond))

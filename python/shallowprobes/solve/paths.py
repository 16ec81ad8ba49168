"""Coefficient paths and GCV scores of the ridge engine, from one spectrum or one tridiagonal
reduction per Gram: `EigenPath` / `TridiagonalPath` (any alpha of a grid, the chosen ones at
the end), `kfold_paths` (all rows and every K-fold training set, reduced or decomposed
together), and `GcvScorer` (generalised cross-validation of one Gram's alphas, without
eigenvectors on the Rust core).

Which route a Gram takes is decided here, from the backend and the Gram alone: the Rust core's
tridiagonal reduction where the spectrum would clamp nothing, the spectrum otherwise (and for
alpha <= 0, a pseudo-inverse), so results do not depend on the route beyond rounding.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._validation import check_folds_leave_rows
from ..backends import ops_of, to_numpy
from ..backends.numpy_kernels import residual_outside_span
from .normal_equations import training_normal_equations
from .stats import SufficientStats

# Largest number of float64 entries in a stack of Grams decomposed together (1 GiB).
BATCH_ENTRIES = 1 << 27


class EigenPath:
    """Coefficient paths of one training set from its spectrum (lam, V, B): any alpha >= 0,
    with the pseudo-inverse's null directions (the route of every backend)."""

    def __init__(self, backend: Any, spectrum: tuple) -> None:
        self.backend = backend
        self.spectrum = spectrum

    def coefs(self, alphas: np.ndarray) -> Any:
        """(A, d, k) coefficients of the alphas."""
        lam, V, B = self.spectrum
        zeros = ops_of(B).zeros(B.shape[1])
        coefs, _, _ = self.backend.ridge_path(lam, V, B, zeros, alphas, True)
        return coefs


class TridiagonalPath:
    """Coefficient paths of one training set from a Householder reduction G = Q T Q^T of its
    Gram (the Rust core's `tridiagonalize`): O(d k) per alpha after a reduction that costs a
    fraction of an eigendecomposition. Built only for Grams whose spectrum would clamp
    nothing, where the two routes solve the same systems; an alpha <= 0 (a pseudo-inverse)
    takes the spectrum, computed then."""

    def __init__(self, backend: Any, ne: Any, reductions: tuple, index: int) -> None:
        """reductions: (packed, factors) stacks of `tridiagonalize`; index: this Gram's."""
        self.backend = backend
        self.ne = ne
        self.reductions = reductions
        self.index = index
        self._eigen: Optional[EigenPath] = None

    def coefs(self, alphas: np.ndarray) -> Any:
        """(A, d, k) coefficients of the alphas."""
        return path_coefs([self], alphas)[0]

    def eigen(self) -> EigenPath:
        """The same training set's `EigenPath` (its spectrum computed on first use)."""
        if self._eigen is None:
            self._eigen = EigenPath(self.backend, self.backend.spectrum(self.ne.gram, self.ne.cxy))
        return self._eigen


def path_coefs(paths: list, alphas: np.ndarray) -> list:
    """[(A, d, k) coefficients of the alphas] of each path: the tridiagonal ones in one backend
    call per stack of reductions they come from (one path per thread), unless an alpha is <= 0
    (a pseudo-inverse, which only a spectrum gives: computed then for each of them)."""
    alphas = np.asarray(alphas, dtype=np.float64)
    tridiagonal = alphas.size == 0 or bool(np.all(alphas > 0))
    out: list = [None] * len(paths)
    # id of a stack's packed reductions (the array, not the (packed, factors) tuple a path
    # holds, which need not be shared) -> positions of its paths
    stacks: dict = {}
    for i, p in enumerate(paths):
        if isinstance(p, TridiagonalPath) and tridiagonal:
            stacks.setdefault(id(p.reductions[0]), []).append(i)
        else:
            out[i] = p.eigen().coefs(alphas) if isinstance(p, TridiagonalPath) else p.coefs(alphas)
    for batch in stacks.values():
        first = paths[batch[0]]
        where = [paths[i].index for i in batch]
        # consecutive Grams of the stack (the usual case) as views; never a new stack of
        # reductions (kfold_paths reduces one at a time when their stack would be too large)
        consecutive = where == list(range(where[0], where[-1] + 1))
        sel = slice(where[0], where[-1] + 1) if consecutive else where
        packed, factors = (r[sel] for r in first.reductions)
        coefs = first.backend.tridiagonal_ridge_paths(
            packed, factors, np.stack([paths[i].ne.cxy for i in batch]), alphas
        )
        for j, i in enumerate(batch):
            out[i] = coefs[j]
    return out


def kfold_paths(stats: SufficientStats, ne, fit_intercept: bool, backend):
    """The coefficient paths of all rows and of every K-fold training set.

    Returns (path of all rows, {fold: (normal equations, path)}), each path an `EigenPath` or
    a `TridiagonalPath` with `.coefs(alphas)`: K-fold CV needs coefficients only, so where the
    backend offers a tridiagonal reduction (the Rust core) that replaces the
    eigendecompositions (measured 0.19-0.26 s for six Grams of order 768 on 2 cores, against
    0.51 s for five spectra in a batch and 0.11 s for the sixth). Grams with round-off
    eigenvalues, and other backends, take their spectra. Several Grams are reduced or
    decomposed together (one sequential factorisation per thread, which scales far better
    than one threaded factorisation) unless the stack would exceed 1 GiB.
    """
    folds = [f for f in range(stats.n_folds) if stats.count[f] > 0]
    check_folds_leave_rows(stats.count, stats.n_samples)
    nes = [ne, *training_normal_equations(stats, fit_intercept, folds)]
    d = ne.gram.shape[0]
    xp = stats._ops()
    together = len(nes) * d * d <= BATCH_ENTRIES

    def spectra_of(chosen: list) -> list:
        if together and len(chosen) > 1:
            lams, Vs, Bs = backend.spectra(
                xp.stack([e.gram for e in chosen]), xp.stack([e.cxy for e in chosen])
            )
            return [(lams[i], Vs[i], Bs[i]) for i in range(len(chosen))]
        return [backend.spectrum(e.gram, e.cxy) for e in chosen]

    if hasattr(backend, "tridiagonalize"):
        if together:
            packed, factors, usable = backend.tridiagonalize(np.stack([e.gram for e in nes]))
            stacks = [((packed, factors), i) for i in range(len(nes))]
        else:
            stacks, usable = [], []
            for e in nes:
                packed, factors, ok = backend.tridiagonalize(e.gram[None])
                stacks.append(((packed, factors), 0))
                usable.append(ok[0])
        paths: list = [
            TridiagonalPath(backend, e, *stacks[i]) if usable[i] else None
            for i, e in enumerate(nes)
        ]
    else:
        paths = [None] * len(nes)
    left = [i for i, p in enumerate(paths) if p is None]
    for i, spectrum in zip(left, spectra_of([nes[i] for i in left])):
        paths[i] = EigenPath(backend, spectrum)
    return paths[0], {f: (nes[i + 1], paths[i + 1]) for i, f in enumerate(folds)}


def gcv_from_rss(rss: np.ndarray, lam_pos: np.ndarray, grid: np.ndarray, n: float,
                 free: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(per (A, k), joint (A,)) generalised cross-validation scores, -n RSS / (n - dof)^2, of
    the alphas in `grid` from their residual sums of squares `rss` (A, k) and the positive
    eigenvalues of the Gram; `free` is the residual degrees of freedom left at alpha -> 0
    (n - intercept - rank)."""
    resid_dof = np.array(
        [max(free, 0.0) + float(np.sum(a / (lam_pos + a))) if a > 0 else free for a in grid]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        gcv = n * rss / (resid_dof * resid_dof)[:, None]
    gcv[resid_dof <= 0] = np.inf
    per = -gcv
    return per, per.mean(axis=1)


def gcv_scores(backend: Any, lam: Any, V: Any, B: Any, perp: Any, grid: np.ndarray, n: float,
               free: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """`gcv_from_rss` of the alphas in `grid` from one spectrum; `perp` is the part of y
    outside the span of X."""
    _, rss, _ = backend.ridge_path(lam, V, B, perp, grid, False)
    return gcv_from_rss(to_numpy(rss), to_numpy(lam[lam > 0]), grid, n, free)


class GcvScorer:
    """Generalised cross-validation of one Gram's alphas, and its coefficient path (`.path`).

    Where the backend offers a tridiagonal reduction (the Rust core) and the Gram's spectrum
    would clamp nothing, GCV needs no eigenvectors: the residual sums of squares along the
    grid come from two tridiagonal solves per alpha and the trace of the hat matrix from the
    eigenvalues of T (`_core.tridiagonal_gcv`, `_core.tridiagonal_eigenvalues`), the
    coefficients at the chosen alphas from the same reduction. Measured at d = 768 on 2
    cores: 0.07-0.08 s against 0.09-0.13 s for LAPACK's eigendecomposition. Rank-deficient
    Grams, a grid with alpha <= 0, and the other backends take the spectrum (cached on the
    path), whose clamped eigenvalues give the pseudo-inverse.
    """

    def __init__(self, backend: Any, ne: Any, fit_intercept: bool) -> None:
        self.backend = backend
        self.ne = ne
        self.intercept = 1.0 if fit_intercept else 0.0
        self.path: Any = None
        self._tridiagonal: Optional[tuple] = None  # (packed, factors, eigenvalues, free)
        if hasattr(backend, "tridiagonal_gcv"):
            packed, factors, usable = backend.tridiagonalize(ne.gram[None])
            if usable[0]:
                self.path = TridiagonalPath(backend, ne, (packed, factors), 0)
                lam = backend.tridiagonal_eigenvalues(packed[0], factors[0])
                free = ne.n - self.intercept - lam.size
                self._tridiagonal = (packed[0], factors[0], lam, free)
        if self.path is None:
            self.path = EigenPath(backend, backend.spectrum(ne.gram, ne.cxy))

    def _spectral(self) -> tuple:
        """(lam, V, B, perp, free) of the spectrum route."""
        path = self.path.eigen() if isinstance(self.path, TridiagonalPath) else self.path
        lam, V, B = path.spectrum
        xp = ops_of(B)
        # Residual degrees of freedom left at alpha -> 0, and the part of y outside the span
        # of X (exactly zero when the rows are interpolated): both enter GCV without
        # cancellation.
        rank = int((lam > 0).sum())
        free = self.ne.n - self.intercept - rank
        span = self.backend.residual_outside_span if xp.is_torch else residual_outside_span
        perp = span(lam, B, self.ne.cyy) if free > 0 else xp.zeros(B.shape[1])
        return lam, V, B, perp, free

    def __call__(self, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(per (A, k), joint (A,)) GCV scores of the alphas in `grid`."""
        grid = np.asarray(grid, dtype=np.float64)
        n = self.ne.n
        if self._tridiagonal is not None and bool(np.all(grid > 0)):
            packed, factors, lam, free = self._tridiagonal
            explained, rss = self.backend.tridiagonal_gcv(packed, factors, self.ne.cxy, grid)
            # the part of y outside the span of X (exactly zero when the rows are interpolated)
            perp = np.maximum(self.ne.cyy - explained, 0.0) if free > 0 else 0.0 * explained
            return gcv_from_rss(rss + perp[None, :], lam, grid, n, free)
        lam, V, B, perp, free = self._spectral()
        return gcv_scores(self.backend, lam, V, B, perp, grid, n, free)

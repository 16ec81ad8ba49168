"""Exact degree-2 ridge probes: QuadraticProbe, QuadraticProbeClassifier.

The probe is f(h) = (h - mu)^T Q (h - mu) + w^T (h - mu) + b, i.e. ridge regression on the
degree-2 features phi_gamma(h - mu) = [u, sqrt(gamma) (s_ab u_a u_b)_{a<=b}], u = h - mu,
s_aa = 1, s_ab = sqrt(2) (docs/design.md §2), whose kernel is <u, v> + gamma <u, v>^2. mu is the
training mean (with fit_intercept=False: mu = 0 and b = 0).

Two exact routes give the same probe:

* primal: the statistics of phi (width p = d + d(d+1)/2) are accumulated block by block by
  the core (never an n x p array), re-centred exactly at mu, and solved like a linear probe:
  one p x p eigendecomposition for every alpha, GCV / LOO / exact K-fold. Streams
  (`partial_fit`) and needs O(p^2) memory.
* dual: the n x n kernel K = Uc Uc^T + gamma (Uc Uc^T)^2 of the centred rows, double-centred,
  one n x n eigendecomposition for every alpha, GCV, exact LOO and exact K-fold (held-out
  residuals of fold F are (I - H_FF)^-1 (y_F - yhat_F) with H the hat matrix). Needs the rows
  and O(n^2) memory; the route for LLM widths.

Either way the fitted probe is stored as (mu, Q, w, b) and predicts in O(d^2) per row.
In CV the feature map (the centring mu) is fixed from all training rows -- it uses no
labels -- and only the ridge is refitted per fold.

Selection. Alpha: the best CV score, exact ties going to the larger alpha (more
regularisation), on the default grid logspace(-6, 3, 19) x the mean eigenvalue. Gamma: the
default (None, or "scale") is g0 = 1 / mean ||h - mu||^2 alone; a list of gammas is searched
jointly with alpha, one eigendecomposition (n x n kernel or p x p Gram) per value, ties going
to the smaller gamma. A choice left at an edge of its grid where the score still improves
gives a `linear.GridEdgeWarning` (then widen alphas= or gamma=). Automatic extension of both
grids is implemented (`_MAX_EXTENSIONS`, `_GAMMA_EXTENSIONS`, `_GAMMA_FACTORS`) but off: it
would make sweep's batched multi-target solves disagree with per-target fits.

Spectral cut-off (quadratic_rank=m, a list of m, or "auto"): Q is restricted to an
m-dimensional subspace of the metric's coordinates, spanned by the principal Hessian
directions of the ridge-whitened rows (`_phd_directions`), and the same ridge (same
penalty ||w||^2 + ||Q||_F^2 / gamma) is solved exactly on the d + m(m+1)/2 features
[u, sqrt(gamma) phi_quad(C^T u)] -- no n x n kernel, no p x p Gram; route "subspace". m,
gamma and alpha are chosen together by refitting K-fold CV (cv's folds when cv is an integer,
else 5): the subspace is re-estimated from each fold's training rows, because it is chosen
with the labels and CV on a subspace chosen with all rows would favour fitting the noise.
That selection is not the exact statistics-only CV of the other routes (it refits), but it is
honest. The subspace is built by orthogonally equivariant steps, so each
metric keeps its invariance group; with metric="whiten" (optionally reference= unlabelled
rows) the probe is affine-invariant and, unlike the full whitened probe, works at d ~ n.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Optional, Union

import numpy as np

from . import _quadratic
from ._backends import copy_of, ops_of, resolve_backend, to_numpy
from ._base import ClassifierMixin, NotFittedError, RegressorMixin, streaming_method
from ._validation import check_rows_finite, check_X
from .linear import (
    _best_index,
    _edge_side,
    _feature_blocks,
    _ProbeClassifierMixin,
    _ProbeRegressorMixin,
    _RidgeProbeBase,
    _score_predictions,
    _select_alpha,
    _Solution,
    _warn_grid_edge,
    default_alpha_grid,
)
from .stats import SufficientStats
from .threads import check_interrupt

__all__ = ["QuadraticProbe", "QuadraticProbeClassifier"]

_SOLVERS = ("auto", "primal", "dual")
# Default gamma grid: these factors times g0 = 1 / mean ||h - mu||^2 (one eigendecomposition
# each), grown by factors of _GAMMA_STEP at most _GAMMA_EXTENSIONS times per side while the
# choice sits at an improving edge.
# The default searches g0 alone for now: the wider search (0.1, 1, 10, extended while
# improving) is implemented but triples the cost of every default degree-2 fit and is not yet
# reconciled with sweep's batched solves; opt in with gamma=[...] explicitly (issue 16).
_GAMMA_FACTORS = np.array([1.0])
_GAMMA_STEP = 10.0
_GAMMA_EXTENSIONS = 0
# quadratic_rank="auto": the subspace dimensions tried (those below d, and min(d, 16)); the
# refitting K-fold CV that picks one uses the probe's folds, else _RANK_FOLDS folds
_DEFAULT_QUADRATIC_RANKS = (1, 2, 4, 8)
_RANK_FOLDS = 5
# Ridge shrinkage of the covariance (times its mean eigenvalue) in the label-weighted second
# moment that picks the subspace (`_phd_directions`)
_PHD_SHRINK = 0.1


def _rank_list(value: Any) -> bool:
    arr = np.asarray(value)
    return (
        arr.ndim == 1 and arr.size > 0 and arr.dtype.kind in "iu" and bool((arr >= 1).all())
    )


def _quadratic_rank_constraints() -> list:
    from ._params import Interval, Options, Predicate

    return [
        Interval("int", 1, None),
        Options(("auto",)),
        Predicate(_rank_list, "a non-empty 1-D sequence of integers >= 1"),
        None,
    ]
_PREDICT_ENTRIES = 1 << 22  # rows per prediction block ~ this / d


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 << 30


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if b < 1024 or unit == "PiB":
            return f"{b:.1f} {unit}"
        b /= 1024.0
    return f"{b:.1f} PiB"  # pragma: no cover


class _QuadraticFeatureMap:
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


def _gaussian_slope_from_values(F: Any, codes: Any) -> float:
    """The closed-form logistic slope of `linear._gaussian_calibration`, from decision values
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


class _PolynomialOutputs:
    """Fitted attributes of a degree-2 probe f(h) = (h-mu)^T Q (h-mu) + w.(h-mu) + b, stored
    in centred coordinates (solution: centre, coef = w (d, k), intercept = b) and reported in
    the caller's input coordinates. Subclasses provide `_centred_quadratic()` (k, d, d)."""

    def _centred_quadratic(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    _coefficient_names = "quadratic_ (Q), linear_ (w) and intercept_"

    @property
    def coef_(self):
        raise AttributeError(
            f"{type(self).__name__} has no coef_: its coefficients are {self._coefficient_names}."
        )

    def _input_coordinates(self):
        sol = self._solution()
        mu = sol.centre
        Q = self._centred_quadratic()
        xp = ops_of(Q, mu)
        w = sol.coef.T - 2.0 * xp.einsum("tij,j->ti", Q, mu)  # (k, d)
        c = sol.intercept - sol.coef.T @ mu + xp.einsum("i,tij,j->t", mu, Q, mu)
        return Q, w, c

    @property
    def quadratic_(self) -> np.ndarray:
        """Symmetric Q of f(h) = h^T Q h + linear_ . h + intercept_: (d, d) for 1-D y, else
        (n_targets, d, d) (binary classifiers: (1, d, d))."""
        Q = self._input_coordinates()[0]
        return copy_of(Q[0]) if self._single_output() else copy_of(Q)

    @property
    def linear_(self) -> np.ndarray:
        """w of f(h) = h^T Q h + w . h + intercept_: (d,) for 1-D y, else (n_targets, d)."""
        w = self._input_coordinates()[1]
        return copy_of(w[0]) if self._single_output() else w

    @property
    def intercept_(self):
        c = self._input_coordinates()[2]
        return float(c[0]) if self._single_output() else c

    @property
    def centre_(self) -> np.ndarray:
        """The centre mu of the features (training mean; zeros without intercept)."""
        return copy_of(self._solution().centre)


class _GammaSearch:
    """The block-weight (gamma) grid of the degree-2 probes and its search (exact and CP)."""

    _quiet_edges = False  # set on inner fits whose caller warns about its own choice

    def _gamma_values(self, mean_sq_norm: float) -> np.ndarray:
        """The block weights to try first. With g0 = 1 / mean ||h - mu||^2 (scale-free: then
        g0 <u, v>^2 and <u, v> are of the same size): None -> g0 x _GAMMA_FACTORS (g0 alone
        today), extended by factors of 10 up to _GAMMA_EXTENSIONS times while the choice sits
        at an improving edge (`_search_gammas`); "scale" -> g0 alone; numbers -> as given."""
        if self.gamma is None or (isinstance(self.gamma, str) and self.gamma == "scale"):
            scale = mean_sq_norm if np.isfinite(mean_sq_norm) and mean_sq_norm > 0 else 1.0
            if self.gamma is None:
                return _GAMMA_FACTORS / scale
            return np.array([1.0 / scale])
        bad = ValueError(
            f"gamma must be a positive number, a non-empty sequence of positive numbers, "
            f"'scale' or None, got {self.gamma!r}."
        )
        if isinstance(self.gamma, (str, bytes, bool)):
            raise bad
        try:
            raw = np.atleast_1d(np.asarray(self.gamma))
        except (TypeError, ValueError):
            raise bad from None
        if raw.dtype.kind not in "iuf":
            raise bad
        arr = raw.astype(np.float64)
        if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all() or (arr <= 0).any():
            raise bad
        return arr

    def _n_gammas_hint(self) -> int:
        """How many gammas a fit starts with (for the memory estimates): 3 for the default
        grid (it may grow to 7, one at a time: the peak is that of any multi-gamma fit)."""
        if self.gamma is None:
            return len(_GAMMA_FACTORS)
        if isinstance(self.gamma, str):
            return 1
        return int(np.atleast_1d(np.asarray(self.gamma)).size)

    def _search_gammas(self, gammas: np.ndarray, fit_one: Any) -> tuple:
        """Fit every gamma of the starting grid (fit_one(g) -> _Solution), then, for the
        default grid only, add g_min / 10 or g_max * 10 while the best gamma is the smallest or
        largest tried and its score still improves there (at most twice per side: 1e-3 to
        1e3 times g0). Ties go to the smaller gamma (the more regularised quadratic block).
        Returns (gammas, solutions, index of the best)."""
        default = self.gamma is None
        gammas = [float(g) for g in gammas]
        solutions = []
        for g in gammas:
            solutions.append(fit_one(g))
            self._drop_spectra(solutions, gammas[: len(solutions)])
        grown = {"low": 0, "high": 0}
        while True:
            crit = self._gamma_criteria(solutions)
            grid = np.asarray(gammas)
            best = int(_best_index(crit, -grid))
            side = _edge_side(crit, grid, best) if default else None
            if side is None or grown[side] >= _GAMMA_EXTENSIONS:
                return grid, solutions, best
            grown[side] += 1
            if side == "low":
                g = min(gammas) / _GAMMA_STEP
                gammas.insert(0, g)
                solutions.insert(0, fit_one(g))
            else:
                g = max(gammas) * _GAMMA_STEP
                gammas.append(g)
                solutions.append(fit_one(g))
            self._drop_spectra(solutions, gammas)

    def _drop_spectra(self, solutions: list, gammas: list) -> None:
        """Keep the eigendecomposition (dual route) of the best solution so far only."""
        if len(solutions) < 2:
            return
        best = int(_best_index(self._gamma_criteria(solutions), -np.asarray(gammas)))
        for i, sol in enumerate(solutions):
            if i != best:
                sol.__dict__.pop("spectrum", None)

    def _gamma_criteria(self, solutions: list) -> np.ndarray:
        crit = []
        for sol in solutions:
            if self.alpha_per_target:
                per = np.where(np.isnan(sol.scores), -np.inf, sol.scores).max(axis=0)
                crit.append(per.mean())
            else:
                crit.append(sol.joint_scores[sol.alpha_index[0]])
        return np.asarray(crit, dtype=np.float64)

    def _warn_edges(self, sol: _Solution, gammas: np.ndarray, solutions: list, best: int) -> None:
        """GridEdgeWarnings for the chosen alpha (of the chosen gamma) and the chosen gamma."""
        if self._quiet_edges:
            return
        owner, cv = type(self).__name__, self._cv_name()
        edges = getattr(sol, "alpha_edges", None)
        if edges is not None:
            _warn_grid_edge(owner, "alpha", sol.alphas, edges, sol.default_grid, cv)
        if len(gammas) > 1:
            side = _edge_side(self._gamma_criteria(solutions), np.asarray(gammas), best)
            _warn_grid_edge(owner, "gamma", np.asarray(gammas), [side], self.gamma is None, cv)


class _QuadraticProbeBase(_GammaSearch, _PolynomialOutputs, _RidgeProbeBase):
    """Shared machinery of the degree-2 probes (not public)."""

    _feature_degree = 2  # products of inputs: degree-2 magnitude range

    def __init__(
        self,
        alphas: Any = None,
        *,
        gamma: Any = None,
        cv: Union[str, int] = "gcv",
        alpha_per_target: bool = False,
        fit_intercept: bool = True,
        metric: str = "euclidean",
        reference: Any = None,
        readout: Any = None,
        solver: str = "auto",
        memory_limit: Optional[float] = None,
        quadratic_rank: Any = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(
            alphas,
            cv=cv,
            alpha_per_target=alpha_per_target,
            fit_intercept=fit_intercept,
            metric=metric,
            reference=reference,
            readout=readout,
            backend=backend,
        )
        self.gamma = gamma
        self.solver = solver
        self.memory_limit = memory_limit
        self.quadratic_rank = quadratic_rank

    # ------------------------------------------------------------------ parameters
    def _param_constraints(self) -> dict:
        import math

        from ._params import Array, Interval, Options

        return {
            **super()._param_constraints(),
            "gamma": [
                Interval("real", 0.0, None, closed="neither", desc="a positive finite number"),
                Options(("scale",)),
                Array(
                    1,
                    low=0.0,
                    low_closed=False,
                    desc="a non-empty 1-D sequence of positive finite numbers",
                ),
                None,
            ],
            "solver": [Options(_SOLVERS)],
            "quadratic_rank": _quadratic_rank_constraints(),
            "memory_limit": [
                Interval("real", 0.0, math.inf, closed="right", desc="a positive number of bytes"),
                None,
            ],
        }

    def _check_params(self) -> None:
        super()._check_params()  # every parameter, from _param_constraints
        self._gamma_values(1.0)
        self._memory_limit()

    def _memory_limit(self) -> float:
        if self.memory_limit is None:
            return 0.5 * _physical_memory()
        lim = self.memory_limit
        if isinstance(lim, bool) or not isinstance(lim, numbers.Real) or not lim > 0:
            raise ValueError(f"memory_limit must be a positive number of bytes, got {lim!r}.")
        return float(lim)

    # ------------------------------------------------------------------ route
    # Peak memory of fit(), in bytes (what memory_limit is compared with): an upper bound of
    # the peak RSS increase measured in fresh processes (data allocated first; Linux, glibc),
    # 1.0x-1.6x of it (mostly 1.05x-1.3x) for p ~ 1000-3000 / n ~ 1000-3500, cv gcv / loo /
    # K-fold (batched and one fold at a time), 1-10 gammas, alpha_per_target either way,
    # 1-8 core threads (tests/test_memory_limit.py). The terms count float64 arrays in units
    # of p x p (primal) or n x n (dual). Below glibc's largest mmap threshold (32 MiB) such
    # blocks come from the heap, and freed ones stay resident (in the main thread's arena and
    # the core threads') and are only partly reused: the "heap" allowances. Not counted: a
    # few MiB of fixed overhead (interpreter, thread stacks), which exceeds the estimate's
    # slack only for tiny problems (p, n below ~1000); the (alphas, n, k) decision values of
    # LOO / K-fold on the primal route (it gets no n: small next to p x p unless n >~ p^2/40)
    # and the target count k (taken as 1: the dual route's Q is k d x d).
    def _memory_knobs(self) -> tuple:
        """(K folds, G gammas, T eigendecompositions the Rust core runs at once)."""
        K = self._n_folds()
        G = self._n_gammas_hint()
        T = 1
        if self.backend in ("auto", "rust"):
            from ._backends import _rust
            from .threads import get_num_threads

            T = max(1, int(get_num_threads())) if _rust is not None else 1
        return K, G, T

    def _bytes_primal(self, p: int) -> float:
        from .linear import _BATCH_ENTRIES

        K, G, T = self._memory_knobs()
        pp = float(p) * float(p)
        # live at the peak: the statistics (K), their re-centred copy (K), the per-gamma copy
        # when several gammas are tried (K), the normal equations of all rows (1)
        live = K * (2 + (G > 1)) + 1
        if K == 1:
            # one eigendecomposition: the core's copy of the Gram and its workspace (~3, a
            # little more with threads), the eigenvectors (1) and their numpy copy (1)
            solve = 5.0 + 0.08 * min(T, 16)
        elif (K + 1) * pp <= _BATCH_ENTRIES:
            # decomposed together (linear._kfold_spectra): the K fold normal equations, their
            # stack with the full one (K + 1), the K + 1 eigenvector matrices, then either
            # min(T, K + 1) workspaces in flight (~2.9 each) or the copy out to numpy (K + 1,
            # + 1 staging); B, the per-fold copies for the coefficient paths and such (+1.5)
            solve = K + 2 * (K + 1) + max(2.9 * min(T, K + 1), K + 2) + 1.5
        else:
            # one at a time: the fold normal equations (K), the eigenvectors so far (K + 1),
            # one decomposition in flight (~4), B and such (+1.5)
            solve = K + (K + 1) + 4.0 + 1.5
        units = live + solve
        if self._cv_name() == "loo":
            # after the solve: the eigenvectors (1), the core's copy of them (1), +1.5, and
            # the row blocks of features (the Python block of the feature map, the core's
            # centred copy, its projection on V and the square: <= 2^22 entries each)
            step = (1 << 22) // max(p, 1)
            rows = min(8192, max(16, step)) + 3 * min(4096, max(256, step))
            units = max(units, live + 3.5 + rows * p / pp)
        if 8.0 * pp < 32 * 2**20:  # heap: freed p x p blocks stay resident (see above)
            units += 1.0 + 0.4 * solve + (1.0 + 0.25 * min(T, 8)) * min(G - 1, 5)
            if 8.0 * pp <= 16 * 2**20:  # several blocks per 64 MiB thread heap: more kept
                units += 0.4 * (live + K)
        return 8.0 * pp * units * 1.05  # 5% margin

    def _bytes_dual(self, n: int, d: int, n_gammas: int) -> float:
        _, _, T = self._memory_knobs()
        nn = float(n) * float(n)
        several = n_gammas > 1
        # at the eigendecomposition: the kernel (1); with several gammas the row Gram and the
        # best gamma's eigenvectors so far (2); the eigenvectors (1) and their numpy copy
        # (1); the core's copy and workspace (~3, a little more with threads). Then the
        # centred rows (n d; twice with a metric). CV scoring (K-fold blocks (n/K) x n,
        # LOO row blocks) needs less than this.
        # (+0.6 for n >= 2048: the gamma search state, which the heap terms below cover for
        # smaller n)
        eig = 3.0 + 0.6 * (n >= 2048) + 2.0 * several + 2.9 + 0.05 * min(T, 8)
        rows = float(n) * d * (1 + (self.metric != "euclidean"))
        # building the polynomial: the eigenvectors (1), the row Gram (1; the kernel itself
        # with one gamma), the centred rows and a scaled copy (2 n d), Q and two d x d
        # temporaries (3 d^2, per target: here one)
        tail = 2.0
        if n < 2048:  # heap: freed n x n blocks stay resident (see above)
            eig += 0.9 + (1.5 + 2.0 * (n <= 1448)) * several
            tail += 1.5 + 2.5 * several + (n <= 1448)
        peak = max(eig * nn + rows, tail * nn + 2.0 * n * d + 3.0 * float(d) * d)
        if self._cv_name() != "gcv":  # held-out predictions (alphas, n) and a temporary
            alphas = self._explicit_alphas()
            peak += 2.0 * (19 if alphas is None else alphas.size) * n
        return 8.0 * peak * 1.05  # 5% margin

    def _route(self, n: Optional[int], d: int) -> str:
        p = _quadratic.n_features(d)
        limit = self._memory_limit()
        primal = self._bytes_primal(p)
        dual = None if n is None else self._bytes_dual(n, d, self._n_gammas_hint())
        if self.solver == "primal" or (self.solver == "auto" and n is None):
            return "primal"
        if self.solver == "dual":
            return "dual"
        if p <= n and primal <= limit:
            return "primal"
        if dual <= limit:
            return "dual"
        if primal <= limit:
            return "primal"
        raise MemoryError(
            f"{type(self).__name__}: d={d} inputs give p={p:,} degree-2 features; the primal "
            f"route needs about {_fmt_bytes(primal)} (p x p Gram and eigenvectors) and the "
            f"dual route with n={n:,} rows about {_fmt_bytes(dual)} (n x n kernel), both over "
            f"memory_limit={_fmt_bytes(limit)}. Options: CPProbe(rank=R) (low-rank degree-2 "
            f"probe, memory O(n R d)); fewer rows for the dual route (n <= "
            f"{int(np.sqrt(limit / 70.0)):,} fits); fewer inputs (e.g. PCA of h) for the "
            "primal route; or a larger memory_limit if the machine has it."
        )

    # ------------------------------------------------------------------ fitting
    def _new_stats(self, n_folds: int) -> SufficientStats:
        return SufficientStats(n_folds, self.backend, degree=2)

    def _streams(self) -> bool:
        return self.solver != "dual" and self.quadratic_rank is None

    def _no_stream_reason(self) -> str:
        if self.quadratic_rank is not None:
            return (
                f"{type(self).__name__}(quadratic_rank=...) has no partial_fit: the quadratic "
                "block's subspace is estimated from the labelled rows first, then the probe "
                "is fitted on it (two passes). Call fit()."
            )
        return (
            f"{type(self).__name__}(solver='dual') has no partial_fit: partial_fit streams "
            "statistics, which is the primal route, and the dual route needs all rows at "
            "once. Call fit(), or use solver='auto' or 'primal'."
        )

    def _check_partial_fit(self, first: bool) -> None:
        if first and getattr(self, "_solution_cache", None) is not None:
            raise ValueError(
                "this probe was fitted by the dual route, which keeps no statistics to add rows "
                "to; call fit() again with all rows, or start a new probe for partial_fit."
            )

    def _fit_rows(self, X: np.ndarray, Y: np.ndarray, folds: Optional[np.ndarray]):
        if self.quadratic_rank is not None:
            backend = resolve_backend(self.backend, X)
            check_rows_finite(X, backend)
            return None, self._solve_subspace(X, Y, folds, backend)
        route = self._route(X.shape[0], X.shape[1])
        if route == "primal":
            return super()._fit_rows(X, Y, folds)
        backend = resolve_backend(self.backend, X)
        check_rows_finite(X, backend)
        return None, self._solve_dual(X, Y, folds, backend)

    @streaming_method
    def partial_fit(self, X: Any, y: Any, **kwargs: Any):
        """Add a chunk of rows to the degree-2 statistics (primal route); the solve happens
        at first use. Memory O(p^2) with p = d + d(d+1)/2, whatever the number of rows."""
        if getattr(self, "_stats", None) is None and self.solver != "dual":
            d = check_X(
                X, owner=type(self).__name__, check_finite=False, keep_tensor=True
            ).shape[1]
            self._check_params()
            p = _quadratic.n_features(d)
            need, limit = self._bytes_primal(p), self._memory_limit()
            if need > limit:
                raise MemoryError(
                    f"{type(self).__name__}.partial_fit: d={d} gives p={p:,} degree-2 "
                    f"features whose statistics need about {_fmt_bytes(need)}, over "
                    f"memory_limit={_fmt_bytes(limit)}. Use fit() with the dual route "
                    "(n x n kernel), CPProbe, or fewer inputs."
                )
        return _RidgeProbeBase.partial_fit.fn(self, X, y, **kwargs)

    # ------------------------------------------------------------------ primal
    def _solve(self, stats: SufficientStats, rows: Optional[tuple]) -> _Solution:
        backend = stats._backend_module()
        xp = stats._ops()
        d = stats.n_inputs
        fit_intercept = bool(self.fit_intercept)
        centre = stats.input_mean if fit_intercept else xp.zeros(d)
        base = stats.recentred(centre)
        geom = self._geometry(base.input_covariance, d, xp=xp)
        if not geom.is_identity:
            base = geom.transform_stats(base, 2)  # statistics of phi(A (h - centre))
        n = float(base.count.sum())
        a, b, _ = _quadratic.pairs(d)
        diag = xp.index(d + np.flatnonzero(a == b))  # columns u_a^2: raw sums give ||u||^2
        mean_sq = float((base.shift_x[diag] + base.sum_x[:, diag].sum(axis=0) / n).sum())
        gammas = self._gamma_values(mean_sq)
        explicit = self._explicit_alphas()

        def fit_one(g: float) -> _Solution:
            fs = base.copy()
            scale = float(np.sqrt(g))
            fs._as_features(scale)
            fmap = None if rows is None else _QuadraticFeatureMap(centre, scale, backend, geom)
            return self._ridge_solve(fs, rows, explicit, feature_map=fmap, warn_edges=False)

        gammas, solutions, best = self._search_gammas(gammas, fit_one)
        sol = solutions[best]
        g = float(gammas[best])
        self._warn_edges(sol, gammas, solutions, best)
        Q, w = _quadratic.coef_to_quadratic(sol.coef, d, float(np.sqrt(g)))
        Q, w = geom.pull_back_quadratic(Q), geom.pull_back_linear(w)
        sol.geometry = geom
        return self._finish(sol, Q, w, centre, gammas, best, solutions, "primal")

    def _best_gamma(self, solutions: list) -> int:
        """Index of the best gamma's solution (ties: the first; `_search_gammas` breaks ties
        toward the smaller gamma)."""
        return int(_best_index(self._gamma_criteria(solutions), None))

    @staticmethod
    def _finish(sol, Q, w, centre, gammas, best, solutions, route) -> _Solution:
        sol.coef = w
        sol.quadratic = Q
        sol.centre = centre
        sol.gamma = float(gammas[best])
        sol.gammas = np.asarray(gammas, dtype=np.float64)
        sol.all_scores = [(s.alphas, s.scores, s.joint_scores) for s in solutions]
        sol.route = route
        return sol

    # ------------------------------------------------------------------ dual
    def _solve_dual(self, X: np.ndarray, Y: np.ndarray, folds, backend) -> _Solution:
        n, d = X.shape
        p = _quadratic.n_features(d)
        fit_intercept = bool(self.fit_intercept)
        scoring = self._scoring()
        cv_name = self._cv_name()
        xp = ops_of(X) if backend.name != "torch" or ops_of(X).is_torch else _torch_ops(backend)
        if xp.is_torch:
            Uc, Y = xp.array(X), xp.asarray(Y)  # a private float64 copy on the device
        else:
            Uc = X.astype(np.float64)  # a private copy, centred in place
        centre = Uc.mean(axis=0) if fit_intercept else xp.zeros(d)
        Uc -= centre
        geom = self._geometry(lambda: _covariance(Uc, xp), d, xp=xp)
        if not geom.is_identity:
            Uc = geom.rows(Uc)  # the dual route sees A (h - centre)
        y_mean = Y.mean(axis=0) if fit_intercept else xp.zeros(Y.shape[1])
        Yc = Y - y_mean
        G = Uc @ Uc.T
        gammas = self._gamma_values(float(G.trace()) / n)
        explicit = self._explicit_alphas()
        one_kernel = len(gammas) == 1 and self.gamma is not None  # G may become the kernel

        def fit_one(g: float) -> _Solution:
            K = _poly_kernel(G, float(g), in_place=one_kernel)
            if fit_intercept:
                _double_centre(K)
            default = explicit is None
            alphas = explicit if not default else default_alpha_grid_from_trace(
                float(K.trace()), p
            )
            lam, Ue, Bv = backend.spectrum(K, Yc)
            del K

            def scores(grid):
                return _dual_scores(
                    lam, Ue, Bv, Y, Yc, y_mean, grid, cv_name, scoring, folds, fit_intercept,
                    self._n_folds(),
                )  # fmt: skip

            alphas, per, joint, idx, edges = _select_alpha(
                scores, alphas, default, bool(self.alpha_per_target)
            )
            sol = _Solution(None, None, alphas, idx, per, joint)
            sol.alpha_edges, sol.default_grid = edges, default
            sol.spectrum = (lam, Ue, Bv)
            return sol

        gammas, solutions, best = self._search_gammas(gammas, fit_one)
        sol = solutions[best]
        g = float(gammas[best])
        self._warn_edges(sol, gammas, solutions, best)
        lam, Ue, Bv = sol.__dict__.pop("spectrum")
        G = None  # the row Gram (or the kernel it became) is no longer needed
        k = Y.shape[1]
        dual = xp.empty((n, k))
        fitted = xp.empty((n, k))
        for t in range(k):
            alpha = float(sol.alphas[sol.alpha_index[t]])
            inv = _inv_shifted(lam, alpha)
            dual[:, t] = Ue @ (inv * Bv[:, t])
            fitted[:, t] = y_mean[t] + Ue @ (lam * inv * Bv[:, t])
        if fit_intercept:
            # exactly in the centred subspace (sum_i a_i = 0): round-off along the constant
            # vector would otherwise add gamma sum(a) Uc^T Uc / n to Q below
            dual -= dual.mean(axis=0)
        # the kernel expansion sum_i a_i k(h, h_i) as a quadratic polynomial of u = h - mu
        w = Uc.T @ dual
        Q = xp.empty((k, d, d))
        for t in range(k):
            Qt = g * (Uc.T @ (Uc * dual[:, t : t + 1]))
            Q[t] = 0.5 * (Qt + Qt.T)
        if fit_intercept:
            S = Uc.T @ Uc
            intercept = y_mean - xp.einsum("tij,ij->t", Q, S) / n
        else:
            intercept = xp.zeros(k)
        sol.intercept = intercept
        if self._is_classifier:
            sol.calibration = _gaussian_slope_from_values(fitted, Y)
        Q, w = geom.pull_back_quadratic(Q), geom.pull_back_linear(w)
        sol.geometry = geom
        return self._finish(sol, Q, w, centre, gammas, best, solutions, "dual")

    # ------------------------------------------------------------------ spectral cut-off
    def _quadratic_ranks(self, d: int) -> list:
        """The subspace dimensions m to try (each <= d), sorted."""
        q = self.quadratic_rank
        if isinstance(q, str):  # "auto"
            vals = [m for m in _DEFAULT_QUADRATIC_RANKS if m < d] + [min(d, 16)]
        else:
            vals = [int(v) for v in np.atleast_1d(np.asarray(q))]
        return sorted({min(int(v), d) for v in vals})

    def _solve_subspace(self, X: np.ndarray, Y: np.ndarray, folds, backend) -> _Solution:
        """quadratic_rank: the exact ridge probe with Q restricted to an m-dimensional subspace
        of the metric's coordinates (see `_phd_directions`); m (when several), gamma and
        alpha chosen by refitting K-fold CV (`_refit_select`)."""
        n, d = X.shape
        fit_intercept = bool(self.fit_intercept)
        xp = ops_of(X) if backend.name != "torch" or ops_of(X).is_torch else _torch_ops(backend)
        Uc = xp.array(X) if xp.is_torch else X.astype(np.float64)
        if xp.is_torch:
            Y = xp.asarray(Y)
        centre = Uc.mean(axis=0) if fit_intercept else xp.zeros(d)
        Uc -= centre
        geom = self._geometry(lambda: _covariance(Uc, xp), d, xp=xp)
        if not geom.is_identity:
            Uc = geom.rows(Uc)
        ranks = self._quadratic_ranks(d)
        white = _Whitened(Uc, xp, _eig_backend(self, xp))
        choice = _refit_select(self, Uc, Y, ranks, folds, xp, white)
        sol, C = _fit_selected_subspace(self, Uc, Y, folds, choice, xp, white=white)
        m, g = choice["m"], choice["gamma"]
        Q, w = _subspace_coefficients(sol.coef, C, g, xp)
        if self._is_classifier:
            fitted = _linear_decision_rows(Uc, w, sol.intercept) + _quadratic.quadratic_form_rows(
                Uc, Q
            )
            sol.calibration = _gaussian_slope_from_values(fitted, Y)
        gammas = np.array([g])
        table = {"ranks": choice["ranks"], "gammas": choice["gammas"], "scores": choice["scores"]}
        Q, w = geom.pull_back_quadratic(Q), geom.pull_back_linear(w)
        sol.geometry = geom
        sol.quadratic_rank = m
        sol.rank_table = table
        return self._finish(sol, Q, w, centre, gammas, 0, [sol], "subspace")

    # ------------------------------------------------------------------ prediction
    def _decision(self, X: Any) -> np.ndarray:
        sol = self._solution()
        Xa, prm = self._predict_inputs(X, sol)
        xp = ops_of(Xa)
        n, d = Xa.shape
        out = xp.empty((n, prm["quadratic"].shape[0]))
        block = max(16, _PREDICT_ENTRIES // max(d, 1))
        for start in range(0, n, block):
            Z = xp.asarray(Xa[start : start + block], dtype=np.float64) - prm["centre"]
            out[start : start + block] = (
                Z @ prm["coef"] + prm["intercept"]
                + _quadratic.quadratic_form_rows(Z, prm["quadratic"])
            )  # fmt: skip
        return out

    # ------------------------------------------------------------------ fitted attributes
    def _centred_quadratic(self) -> np.ndarray:
        return self._solution().quadratic

    @property
    def gamma_(self) -> float:
        """The weight of the quadratic block that was used (chosen by CV from a grid)."""
        return self._solution().gamma

    @property
    def solver_(self) -> str:
        """The route that solved the probe: "primal", "dual", or "subspace" (quadratic_rank)."""
        return self._solution().route

    @property
    def quadratic_rank_(self) -> Optional[int]:
        """The dimension m of the quadratic block's subspace (quadratic_rank), else None."""
        return getattr(self._solution(), "quadratic_rank", None)

    @property
    def cv_results_(self) -> dict:
        """As for the linear probes, for the chosen gamma, plus 'gammas' (G,), and
        'gamma_scores' / 'gamma_mean_scores' / 'gamma_alphas': the same per gamma."""
        sol = self._solution()
        out = super().cv_results_
        out["gamma"] = sol.gamma
        out["gammas"] = sol.gammas.copy()
        out["gamma_alphas"] = [a.copy() for a, _, _ in sol.all_scores]
        out["gamma_scores"] = [s.copy() for _, s, _ in sol.all_scores]
        out["gamma_mean_scores"] = [j.copy() for _, _, j in sol.all_scores]
        table = getattr(sol, "rank_table", None)
        if table is not None:  # quadratic_rank: the refitting K-fold CV that chose m, gamma, alpha
            out["quadratic_ranks"] = list(table["ranks"])
            out["refit_gammas"] = table["gammas"].copy()
            out["refit_alphas"] = sol.refit_alphas.copy()
            out["quadratic_rank_scores"] = table["scores"].copy()
        return out

    @property
    def stats_(self) -> SufficientStats:
        """The degree-2 sufficient statistics (primal route only)."""
        stats = getattr(self, "_stats", None)
        if stats is None:
            if getattr(self, "_solution_cache", None) is not None:
                raise AttributeError(
                    f"this {type(self).__name__} was solved by the dual route, which keeps no "
                    "statistics (solver_ == 'dual')."
                )
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet.")
        return stats


# ---------------------------------------------------------------------------------- subspaces
def _sorted_eig(M: Any, xp: Any, by_abs: bool, backend: Any = None) -> tuple:
    """(eigenvalues (host, descending by value or by |value|), eigenvectors as columns in M's
    namespace, in that order) of the symmetric part of M. Host matrices go through the
    backend's symmetric eigensolver (the Rust core's is several times faster than LAPACK's
    here), shifted to be positive semi-definite because it clamps negative eigenvalues."""
    S = 0.5 * (M + M.T)
    if backend is None or xp.is_torch:
        lam, V = xp.eigh(S)
        lam = np.asarray(to_numpy(lam), dtype=np.float64)
    else:
        d = S.shape[0]
        shift = 1.01 * float(np.sqrt((S * S).sum())) + 1e-300
        lam, V, _ = backend.spectrum(S + shift * np.eye(d), np.zeros((d, 1)))
        lam = np.asarray(lam, dtype=np.float64) - shift
    order = np.argsort(-np.abs(lam) if by_abs else -lam, kind="stable")
    return lam[order], V[:, xp.index(order)]


def _eig_backend(est: Any, xp: Any) -> Any:
    """The backend module whose eigensolver `_sorted_eig` uses for host arrays."""
    from ._backends import get_backend

    return None if xp.is_torch else get_backend(_stats_backend(est, xp))


def _orthonormal(C: Any, xp: Any) -> Any:
    """The orthonormal basis closest to the columns of C (C (C^T C)^-1/2, Loewdin): equivariant
    under orthogonal maps of the rows and a function of C alone."""
    lam, E = xp.eigh(C.T @ C)
    lam_h = np.asarray(to_numpy(lam), dtype=np.float64)
    top = float(lam_h.max()) if lam_h.size else 0.0
    inv = np.where(lam_h > top * 1e-12, 1.0 / np.sqrt(np.maximum(lam_h, 1e-300)), 0.0)
    return C @ ((E * xp.asarray(inv)) @ E.T)


class _Whitened:
    """Ridge-whitened rows w = B (z - mean), B = (S + s I)^-1/2 with S the covariance of Z and
    s = _PHD_SHRINK x its mean eigenvalue. It uses no labels, so it is computed once from all
    training rows and shared by every fold and target (like the centring)."""

    def __init__(self, Z: Any, xp: Any, backend: Any = None) -> None:
        n, d = Z.shape
        self.xp, self.backend = xp, backend
        Zc = Z - Z.mean(axis=0)
        lam, V = _sorted_eig((Zc.T @ Zc) / n, xp, by_abs=False, backend=backend)
        lam = np.maximum(lam, 0.0)
        shrink = _PHD_SHRINK * float(lam.mean()) if lam.mean() > 0 else 1.0
        self.B = (V * xp.asarray(1.0 / np.sqrt(lam + shrink))) @ V.T
        self.W = Zc @ self.B

    def directions(self, Yc: Any, m: int, rows: Any = None) -> Any:
        """`_phd_directions` from the targets Yc of `rows` (None: all rows)."""
        xp = self.xp
        W = self.W if rows is None else self.W[rows]
        n, d = W.shape
        k = Yc.shape[1]
        if k == 1:
            M = W.T @ (W * Yc[:, :1]) / n
            _, P = _sorted_eig(M, xp, by_abs=True, backend=self.backend)
        else:
            M2 = xp.zeros((d, d))
            for t in range(k):
                Mt = W.T @ (W * Yc[:, t : t + 1]) / n
                M2 += Mt @ Mt
            _, P = _sorted_eig(M2, xp, by_abs=False, backend=self.backend)
        return _orthonormal(self.B @ P[:, : max(1, min(int(m), d))], xp)


def _phd_directions(Z: Any, Yc: Any, m: int, xp: Any, backend: Any = None) -> Any:
    """(d, m) orthonormal covectors spanning the quadratic block's subspace, from the rows
    Z (n, d; the metric's coordinates) and centred targets Yc (n, k).

    The label-weighted second moment M = sum_i y_i w_i w_i^T / n of ridge-whitened rows
    w = B z, B = (S + s I)^-1/2 (S the covariance of Z, s = 0.1 x its mean eigenvalue) -- M is
    the gradient of the ridge loss with respect to Q at Q = 0 in those coordinates, and its
    leading eigenvectors are principal Hessian directions (Li, 1992). Take the m of largest
    |eigenvalue| (several targets: the m leading eigenvectors of sum_t M_t^2), map them back
    (B P) and orthonormalise. Every step commutes with an orthogonal change of Z, so the
    probe built on the subspace keeps the metric's invariance group; with metric="whiten"
    (S ~ I) this is plain pHd in whitened coordinates, an affine-equivariant reduction.
    Cost: O(n d^2) for S, the whitened rows and each M_t, plus two d x d eigendecompositions.
    """
    return _Whitened(Z, xp, backend).directions(Yc, m)


class _SubspaceFeatureMap:
    """Features [z, scale * (s_ab (C^T z)_a (C^T z)_b)_{a<=b}] of rows z (already centred and
    in the metric's coordinates): the degree-2 features with Q restricted to span(C)."""

    def __init__(self, C: Any, scale: float) -> None:
        self.C = C
        self.scale = float(scale)
        d, m = C.shape
        self.width = d + m * (m + 1) // 2
        self.pairs = _quadratic.pairs_like(m, C)

    def __call__(self, X: Any) -> Any:
        xp = ops_of(self.C)
        Z = xp.asarray(X, dtype=np.float64)
        P = Z @ self.C
        a, b, s = self.pairs
        return xp.concatenate([Z, P[:, a] * P[:, b] * (s * self.scale)], axis=1)


def _scaled_columns(stats: SufficientStats, start: int, scale: float) -> SufficientStats:
    """A copy of degree-1 statistics with the columns from `start` on scaled by `scale`."""
    out = stats.copy()
    r = float(scale)
    if r != 1.0:
        out.shift_x[start:] *= r
        out.sum_x[:, start:] *= r
        out.xtx[:, start:, :] *= r
        out.xtx[:, :, start:] *= r
        out.xty[:, start:, :] *= r
    return out


def _select_columns(stats: SufficientStats, keep: np.ndarray) -> SufficientStats:
    """Degree-1 statistics of the feature columns `keep` only (exact: a sub-block)."""
    xp = stats._ops()
    idx = xp.index(np.asarray(keep))
    out = SufficientStats(stats.n_folds, stats.backend)
    out._device = stats._device
    out._allocate(len(keep), stats.n_targets, stats.shift_x[idx], stats.shift_y)
    out.count[...] = stats.count
    out.sum_x[...] = stats.sum_x[:, idx]
    out.sum_y[...] = stats.sum_y
    out.xtx[...] = stats.xtx[:, idx][:, :, idx]
    out.xty[...] = stats.xty[:, idx]
    out.yty[...] = stats.yty
    out.rows_seen = stats.rows_seen
    return out


def _stats_backend(est: Any, xp: Any) -> str:
    if xp.is_torch:
        return "torch"
    return "auto" if est.backend == "torch" else est.backend


def _subspace_coefficients(coef: Any, C: Any, gamma: float, xp: Any) -> tuple:
    """(Q (k, d, d), w (d, k)) of coefficients on `_SubspaceFeatureMap` features."""
    d, m = C.shape
    k = coef.shape[1]
    padded = xp.concatenate([xp.zeros((m, k)), coef[d:]], axis=0)
    S, _ = _quadratic.coef_to_quadratic(padded, m, float(np.sqrt(gamma)))
    Q = xp.einsum("ia,tab,jb->tij", C, S, C)
    return 0.5 * (Q + xp.einsum("tij->tji", Q)), coef[:d] * 1.0


def _linear_decision_rows(Z: Any, w: Any, b: Any) -> Any:
    return Z @ w + b


class _RefitCV:
    """Refitting K-fold CV of the subspace probe (`_fit_selected_subspace`): in each fold the
    subspace is re-estimated from the fold's training rows -- it is chosen with their labels,
    so CV on a subspace chosen with all rows would favour whatever fits the noise (a large
    m, a weak penalty of the quadratic block) -- the ridge is solved on them and the held-out
    rows' squared error is summed over folds, for every m <= m_max, gamma and alpha of a
    relative grid (alpha = multiplier x the mean eigenvalue of the fold's Gram; an explicit
    alphas grid as given). Per fold: one pass over the rows for the statistics of the widest
    subspace (the narrower ones are sub-blocks), then one eigendecomposition per (m, gamma).
    """

    def __init__(self, est: Any, Z: Any, Y: Any, m_max: int, folds, xp: Any,
                 white: Optional[_Whitened] = None) -> None:
        n, d = Z.shape
        white = _Whitened(Z, xp, _eig_backend(est, xp)) if white is None else white
        self.est, self.n, self.d, self.k = est, n, d, Y.shape[1]
        self.fit_intercept = bool(est.fit_intercept)
        K = est._n_folds()
        if K > 1 and folds is not None:
            assign = np.asarray(folds)
        else:
            K = max(2, min(_RANK_FOLDS, n))
            assign = np.arange(n) % K
        self.explicit = est._explicit_alphas()
        self.n_alphas = 19 if self.explicit is None else self.explicit.size
        _, self.pair_b, _ = _quadratic.pairs(m_max)
        name = _stats_backend(est, xp)
        self.folds = []
        for f in range(K):
            check_interrupt()  # Ctrl-C between folds
            held = assign == f
            if not held.any() or (~held).sum() < 2:
                continue
            tr = np.flatnonzero(~held)
            tr = xp.index(tr) if xp.is_torch else tr
            Ytr = Y[tr]
            Yc = Ytr - Ytr.mean(axis=0) if self.fit_intercept else Ytr
            C = white.directions(Yc, m_max, tr)
            stats = SufficientStats(2, name)
            which = held.astype(np.int64)  # fold 1: the held-out rows
            for sl, F in _feature_blocks(Z, _SubspaceFeatureMap(C, 1.0)):
                stats._accumulate_validated(F, Y[sl], which[sl])
            self.folds.append(stats)

    def _fold_parts(self, i: int) -> tuple:
        """Per fold (cached): the training normal equations of the widest subspace and the
        eigendecomposition of their linear block A = V diag(lam) V^T, with V^T applied to the
        linear-quadratic block and to the linear part of X^T y."""
        cache = self.__dict__.setdefault("_parts", {})
        if i not in cache:
            stats = self.folds[i]
            sxp = stats._ops()
            ne = stats.normal_equations(self.fit_intercept, exclude_fold=1)
            d = self.d
            A = 0.5 * (ne.gram[:d, :d] + ne.gram[:d, :d].T)
            if sxp.is_torch:
                lam, V = sxp.eigh(A)
                cV = V.T @ ne.cxy[:d]
            else:  # the backend's solver (the core's: faster than LAPACK's here)
                lam, V, cV = stats._backend_module().spectrum(A, ne.cxy[:d])
            cache[i] = (ne, lam, V, V.T @ ne.gram[:d, d:], cV)
        return cache[i]

    def sse(self, m: int, gamma: float) -> np.ndarray:
        """(A, k) held-out squared error summed over the folds.

        Each (m, gamma) is a ridge on [z, sqrt(gamma) phi_quad(C^T z)_(first m)]: solved for
        every alpha by block elimination against the fold's one eigendecomposition of the
        linear block (exact; O(d q^2 + q^3 + d^2 k) per alpha with q = m(m+1)/2 quadratic
        columns, instead of a (d + q)^3 eigendecomposition per (m, gamma))."""
        d, k = self.d, self.k
        out = np.zeros((self.n_alphas, k))
        quad = np.flatnonzero(self.pair_b < m)
        keep = np.concatenate([np.arange(d), d + quad])
        r = float(np.sqrt(gamma))
        for i, stats in enumerate(self.folds):
            check_interrupt()
            ne, lam, V, BV, cV = self._fold_parts(i)
            sxp = stats._ops()
            qi = sxp.index(quad)
            BVq = BV[:, qi] * r  # V^T A-block coupling (d, q)
            Cq = ne.gram[d:, d:][qi][:, qi] * gamma
            c2 = ne.cxy[d:][qi] * r
            width = d + quad.size
            trace = float(lam.sum()) + float(sxp.diagonal(Cq).sum())
            scale = trace / width if trace > 0 else 1.0
            grid = self.explicit if self.explicit is not None else np.logspace(-6, 3, 19) * scale
            coefs = sxp.zeros((len(grid), width, k))
            eye = sxp.eye(quad.size)
            top = float(lam.max()) if lam.shape[0] else 0.0
            tiny = top * d * np.finfo(np.float64).eps  # the core's clamp of round-off
            lam_c = sxp.where(lam > tiny, lam, 0.0)
            for j, alpha in enumerate(grid):
                den = lam_c + float(alpha)
                inv = sxp.where(den > 0, 1.0 / sxp.where(den > 0, den, 1.0), 0.0)
                if quad.size:
                    S = Cq + float(alpha) * eye - BVq.T @ (BVq * inv[:, None])
                    rhs = c2 - BVq.T @ (cV * inv[:, None])
                    try:
                        b2 = sxp.solve(0.5 * (S + S.T), rhs)
                    except (np.linalg.LinAlgError, RuntimeError):
                        b2 = sxp.zeros((quad.size, k))
                    b1 = V @ (inv[:, None] * (cV - BVq @ b2))
                    coefs[j, :d], coefs[j, d:] = b1, b2
                else:
                    coefs[j, :d] = V @ (inv[:, None] * cV)
            x_mean = ne.x_mean[sxp.index(keep)] * sxp.asarray(
                np.concatenate([np.ones(d), np.full(quad.size, r)]))
            sub = _scaled_columns(_select_columns(stats, keep), d, r)
            icpt = ne.y_mean[None, :] - sxp.einsum("d,adk->ak", x_mean, coefs)
            offsets = icpt + sxp.einsum("d,adk->ak", sub.shift_x, coefs) - sub.shift_y[None, :]
            out += to_numpy(sub._backend_module().heldout_sse(
                sub.xtx[1], sub.xty[1], copy_of(sxp.diagonal(sub.yty[1])), sub.sum_x[1],
                sub.sum_y[1], float(sub.count[1]), coefs, offsets,
            ))  # fmt: skip
        return out


def _refit_select(est: Any, Z: Any, Y: Any, ranks: list, folds, xp: Any,
                  white: Optional[_Whitened] = None) -> dict:
    """(m, gamma, alpha index) of the subspace probe by refitting K-fold CV (`_RefitCV`) on
    the joint squared error; ties go to the smaller m, the smaller gamma, the larger alpha.
    The default gamma grid grows at an improving edge as in `_search_gammas`. Returns
    {"m", "gamma", "alpha_index", "ranks", "gammas", "scores" (M, G, A), "alpha_edge",
    "gamma_edge"}."""
    n = Z.shape[0]
    cv = _RefitCV(est, Z, Y, max(ranks), folds, xp, white)
    gammas = [float(g) for g in est._gamma_values(float((Z * Z).sum()) / n)]
    table = {}

    def column(g: float) -> np.ndarray:  # (M, A) joint scores of one gamma
        if g not in table:
            table[g] = np.stack([-cv.sse(m, g).sum(axis=1) / n for m in ranks])
        return table[g]

    grown = {"low": 0, "high": 0}
    while True:
        scores = np.stack([column(g) for g in gammas], axis=1)  # (M, G, A)
        M, G, A = scores.shape
        flat = scores.reshape(-1)
        # preference among ties: smaller m, then smaller gamma, then larger alpha
        mi, gi, ai = np.unravel_index(np.arange(flat.size), scores.shape)
        order_g = np.argsort(np.argsort(gammas))
        prefer = -(mi * G * A + order_g[gi] * A) * 1.0 + ai
        best = int(_best_index(flat, prefer))
        bm, bg, ba = (int(v) for v in np.unravel_index(best, scores.shape))
        by_gamma = scores[bm].max(axis=1)  # (G,)
        g_side = _edge_side(by_gamma, np.asarray(gammas), bg) if G > 1 else None
        grow = est.gamma is None and g_side is not None and grown[g_side] < _GAMMA_EXTENSIONS
        side = g_side if grow else None
        if side is None:
            break
        grown[side] += 1
        if side == "low":
            gammas.insert(0, min(gammas) / _GAMMA_STEP)
        else:
            gammas.append(max(gammas) * _GAMMA_STEP)
    a_side = _edge_side(scores[bm, bg], np.arange(A, dtype=np.float64), ba)
    return {"m": ranks[bm], "gamma": gammas[bg], "alpha_index": ba, "ranks": list(ranks),
            "gammas": np.asarray(gammas), "scores": scores, "alpha_edge": a_side,
            "gamma_edge": g_side, "explicit": cv.explicit}  # fmt: skip


def _fit_selected_subspace(est: Any, Z: Any, Y: Any, folds, choice: dict, xp: Any,
                           quiet: bool = False, white: Optional[_Whitened] = None) -> tuple:
    """The subspace probe on all rows at the (m, gamma, alpha) of `_refit_select`: the
    subspace from all rows, one ridge solve. Returns (solution, C)."""
    n, d = Z.shape
    Yc = Y - Y.mean(axis=0) if est.fit_intercept else Y
    white = _Whitened(Z, xp, _eig_backend(est, xp)) if white is None else white
    C = white.directions(Yc, choice["m"])
    base = SufficientStats(est._n_folds(), _stats_backend(est, xp))
    scale = float(np.sqrt(choice["gamma"]))
    fmap = _SubspaceFeatureMap(C, scale)
    for sl, F in _feature_blocks(Z, fmap):
        base._accumulate_validated(F, Y[sl], None if folds is None else folds[sl])
    if choice["explicit"] is not None:
        grid = choice["explicit"]
    else:
        grid = default_alpha_grid(base.normal_equations(bool(est.fit_intercept)).gram)
    alpha = float(grid[choice["alpha_index"]])
    sol = est._ridge_solve(base, (Z, Y, folds), np.array([alpha]), feature_map=fmap,
                           warn_edges=False)  # fmt: skip
    sol.refit_alphas = np.asarray(grid, dtype=np.float64)
    if not quiet and not est._quiet_edges:
        owner, cv = type(est).__name__, est._cv_name()
        _warn_grid_edge(owner, "alpha", sol.refit_alphas, [choice["alpha_edge"]],
                        choice["explicit"] is None, cv)  # fmt: skip
        if len(choice["gammas"]) > 1:
            _warn_grid_edge(owner, "gamma", choice["gammas"], [choice["gamma_edge"]],
                            est.gamma is None, cv)  # fmt: skip
    return sol, C


def default_alpha_grid_from_trace(trace: float, p: int, n_alphas: int = 19) -> np.ndarray:
    """The default grid of `linear.default_alpha_grid` from the Gram's trace (the dual
    kernel has the same trace as the primal Gram)."""
    scale = trace / max(p, 1)
    if not np.isfinite(scale) or scale <= 0.0:
        scale = 1.0
    return np.logspace(-6, 3, n_alphas) * scale


def _poly_kernel(G: np.ndarray, gamma: float, in_place: bool) -> np.ndarray:
    """G + gamma G∘G (row-block-wise to bound temporaries)."""
    K = G if in_place else ops_of(G).empty(G.shape)
    step = max(1, (1 << 22) // max(G.shape[1], 1))
    for start in range(0, G.shape[0], step):
        g = G[start : start + step]
        K[start : start + step] = g + gamma * g * g
    return K


def _double_centre(K: np.ndarray) -> None:
    """In place K <- H K H, H = I - 11^T/n (centres the features in kernel space)."""
    row = K.mean(axis=1)
    grand = row.mean()
    K -= row[:, None]
    K -= row[None, :]
    K += grand
    # exact symmetry for the eigensolver, block by block (K += K.T would copy all of K)
    n = K.shape[0]
    step = max(1, (1 << 22) // max(n, 1))
    for i in range(0, n, step):
        avg = 0.5 * (K[i : i + step, i:] + K[i:, i : i + step].T)
        K[i : i + step, i:] = avg
        K[i:, i : i + step] = avg.T


def _inv_shifted(lam: np.ndarray, alpha: float) -> np.ndarray:
    """1/(lam + alpha), with 0 where lam + alpha == 0 (minimum-norm solution)."""
    den = lam + alpha
    xp = ops_of(lam)
    if xp.is_torch:
        return xp.where(den > 0, 1.0 / xp.where(den > 0, den, 1.0), 0.0)
    out = np.zeros_like(lam)
    np.divide(1.0, den, out=out, where=den > 0)
    return out


def _torch_ops(backend: Any) -> Any:
    """TorchOps of the CPU device (backend="torch" on numpy rows)."""
    return backend.ops_for(backend.device_of())


def _covariance(Uc: Any, xp: Any) -> Any:
    """Centred covariance (d, d), /n, of the rows Uc (as numpy.cov(bias=True))."""
    d = Uc.shape[1]
    if not xp.is_torch:
        return np.cov(Uc, rowvar=False, bias=True).reshape(d, d)
    Z = Uc - Uc.mean(axis=0)
    return (Z.T @ Z) / Uc.shape[0]


def _dual_scores(lam, U, Bv, Y, Yc, y_mean, alphas, cv_name, scoring, folds, fit_intercept, K):
    """(per (A, k), joint (A,)) CV scores of kernel ridge on the centred kernel's spectrum.
    numpy or torch (on the spectrum's device) inputs; the scores are numpy."""
    xp = ops_of(lam)
    n, k = Y.shape
    A = len(alphas)
    pos = lam > 0
    base = 1.0 / n if fit_intercept else 0.0
    if cv_name == "gcv":
        per = np.empty((A, k))
        rank = int(pos.sum())
        unfit = n - (1.0 if fit_intercept else 0.0) - rank  # residual dof at alpha -> 0
        # The part of y outside the kernel's range, computed directly (the spectrum zeroes B
        # on clamped eigenvalues; ||Yc||^2 - ||B||^2 would cancel): exactly 0 at full rank.
        if unfit > 0:
            R = Yc - U[:, pos] @ Bv[pos]
            free = (R * R).sum(axis=0)
        else:
            free = xp.zeros(k)
        for i, a in enumerate(alphas):
            shrink = a / (lam[pos] + a) if a > 0 else xp.zeros(rank)
            rss = free + ((shrink[:, None] * Bv[pos]) ** 2).sum(axis=0)
            # as on the primal route: no cancellation between n and the dof
            resid = max(unfit, 0.0) + float(shrink.sum())
            per[i] = to_numpy(-(n * rss / (resid * resid))) if resid > 0 else -np.inf
        return per, per.mean(axis=1)
    preds = xp.empty((A, n, k))
    if cv_name == "loo":
        step = max(1, (1 << 22) // max(n, 1))
        for i, a in enumerate(alphas):
            r = lam * _inv_shifted(lam, float(a))
            fitted = y_mean + U @ (r[:, None] * Bv)
            h = xp.empty(n)
            for start in range(0, n, step):
                blk = U[start : start + step]
                h[start : start + step] = base + (blk * blk) @ r
            one_minus_h = 1.0 - h
            with xp.errstate(divide="ignore", invalid="ignore"):
                loo = Y - (Y - fitted) / one_minus_h[:, None]
            loo[one_minus_h <= 1e-12] = np.nan
            preds[i] = loo
    else:
        for i, a in enumerate(alphas):
            r = lam * _inv_shifted(lam, float(a))
            fitted = y_mean + U @ (r[:, None] * Bv)
            for f in range(K):
                sel = np.flatnonzero(folds == f)
                if sel.size == 0:
                    continue
                sel = xp.index(sel)
                Uf = U[sel]
                H = base + (Uf * r) @ Uf.T
                I_H = xp.eye(H.shape[0]) - H
                try:
                    resid = xp.solve(I_H, Y[sel] - fitted[sel])
                    preds[i, sel] = Y[sel] - resid
                except (np.linalg.LinAlgError, RuntimeError):  # torch's LinAlgError too
                    preds[i, sel] = np.nan
    if scoring == "squared_error" and not xp.is_torch:
        per = -np.mean((preds - Y[None]) ** 2, axis=1)
        return per, per.mean(axis=1)
    return _score_predictions(preds, Y, scoring)


# ---------------------------------------------------------------------------------- public
class QuadraticProbe(_ProbeRegressorMixin, RegressorMixin, _QuadraticProbeBase):
    """Exact degree-2 ridge probe f(h) = h^T Q h + w^T h + c (regression, multi-target).

    Ridge regression on the coordinate-stable degree-2 features of the centred rows,
    phi(u) = [u, sqrt(gamma) (s_ab u_a u_b)_{a<=b}] (s_ab = sqrt(2) off the diagonal, so the
    kernel is <u, v> + gamma <u, v>^2), with alpha (and gamma, when given a grid) chosen by
    exact GCV, LOO or K-fold CV. Solved by the primal route (statistics of the p = d + d(d+1)/2
    features, accumulated block by block, streaming) or the dual route (n x n kernel, for LLM
    widths); both give the same probe. See the module docstring.

    Parameters
    ----------
    alphas : array-like of float, optional
        Ridge penalties (absolute, on the summed squared error). Default: logspace(-6, 3, 19)
        times the mean eigenvalue of the feature Gram (relative to the data's scale); a
        choice at an improving edge gives a GridEdgeWarning.
    gamma : float, sequence of float or "scale", optional
        Weight of the quadratic block. A sequence is searched jointly with alpha (one
        eigendecomposition per gamma). Default None (same as "scale"): g0 = 1 / mean
        ||h - mu||^2, which makes the two kernel terms comparable and keeps the probe
        invariant to rescaling h. For a search pass e.g. gamma=[0.1 * g, g, 10 * g].
    cv : {"gcv", "loo"} or int, default "gcv"
        As for `LinearProbe` ("loo" needs `fit`; all modes work on both routes).
    alpha_per_target : bool, default False
    fit_intercept : bool, default True
        Centre at the training mean and fit an unpenalised intercept. False: f has no
        constant term and the features are of h itself.
    solver : {"auto", "primal", "dual"}, default "auto"
        "auto": primal when p <= n and its memory (O(p^2)) fits `memory_limit`, else dual
        when the n x n kernel fits, else primal if it fits, else a MemoryError naming the
        numbers and the options (CPProbe, fewer rows, fewer inputs).
    metric, reference, readout
        Geometry of the penalty, as for `LinearProbe`: the features are phi_gamma(A (h - mu)),
        and the degree-2 map keeps each metric's invariance group (`shallowprobes.metrics`).
    memory_limit : float, optional
        Bytes the solve may use, consulted by solver="auto" (to choose the route) and by
        `partial_fit` (the statistics must fit); default half the physical memory. An
        explicit solver="primal"/"dual" in `fit` is taken as the caller's decision. It is
        compared with an upper bound of each route's peak memory (measured: 1.0-1.6 times
        the real peak), which counts every array alive at once: on the primal route about
        8 p^2 bytes times 9 (gcv, one gamma) to 40-90 (5-fold, several gammas, several core
        threads; the most for p < 2048), since K-fold keeps per-fold statistics and their
        eigendecompositions and each extra gamma copies the statistics; on the dual route
        about 8 n^2 bytes times 6-12, plus the rows and Q (d x d).
    quadratic_rank : int, sequence of int or "auto", optional
        Spectral cut-off of the quadratic block: Q restricted to an m-dimensional subspace
        (module docstring). A sequence (or "auto": 1, 2, 4, 8 and min(d, 16)) is searched by
        refitting K-fold CV, jointly with gamma and alpha (one alpha for all targets on this
        route). None (default): the full Q. For d comparable to n use it with
        metric="whiten" (affine-invariant) or the default metric.
    backend : {"auto", "rust", "numpy"}, default "auto"

    Attributes
    ----------
    quadratic_ : (d, d) or (n_targets, d, d)
    linear_ : (d,) or (n_targets, d)
    intercept_ : float or (n_targets,)
    alpha_, alphas_, gamma_, solver_, quadratic_rank_, centre_, cv_results_, best_score_,
    n_features_in_, stats_ (primal route)
    """


class QuadraticProbeClassifier(_ProbeClassifierMixin, ClassifierMixin, _QuadraticProbeBase):
    """Exact degree-2 ridge probe for classification (one-vs-rest +-1 codes).

    Decision values are the degree-2 polynomials of `QuadraticProbe` fitted to the codes;
    the class is their arg-max (binary: the sign). `scoring` as for `LinearProbeClassifier`
    ("accuracy"/"roc_auc" need cv="loo" or K-fold); `predict_proba` uses the same
    closed-form logistic slope (from the statistics on the primal route, from the training
    decision values on the dual route).

    Parameters
    ----------
    alphas, gamma, cv, alpha_per_target, fit_intercept, metric, reference, readout, solver,
    memory_limit, quadratic_rank, backend
        As for `QuadraticProbe`.
    scoring : {"squared_error", "accuracy", "roc_auc"}, default "squared_error"

    Attributes
    ----------
    classes_, quadratic_ ((1, d, d) binary), linear_, intercept_, alpha_, alphas_, gamma_,
    solver_, cv_results_, best_score_, n_features_in_
    """

    def __init__(
        self,
        alphas: Any = None,
        *,
        gamma: Any = None,
        cv: Union[str, int] = "gcv",
        alpha_per_target: bool = False,
        fit_intercept: bool = True,
        metric: str = "euclidean",
        reference: Any = None,
        readout: Any = None,
        scoring: str = "squared_error",
        solver: str = "auto",
        memory_limit: Optional[float] = None,
        quadratic_rank: Any = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(
            alphas,
            gamma=gamma,
            cv=cv,
            alpha_per_target=alpha_per_target,
            fit_intercept=fit_intercept,
            metric=metric,
            reference=reference,
            readout=readout,
            solver=solver,
            memory_limit=memory_limit,
            quadratic_rank=quadratic_rank,
            backend=backend,
        )
        self.scoring = scoring

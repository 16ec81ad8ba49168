"""Mixins of the degree-2 probes (exact and CP): the polynomial outputs (quadratic_, linear_,
intercept_, coef_ in input coordinates) and the gamma search with its edge warnings, plus the
quadratic_rank parameter constraints.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import copy_of, ops_of
from ..solve import degree2
from ..solve.ridge import (
    RidgeSolution,
    best_index,
    edge_side,
    warn_grid_edge,
)


def _rank_list(value: Any) -> bool:
    arr = np.asarray(value)
    return (
        arr.ndim == 1 and arr.size > 0 and arr.dtype.kind in "iu" and bool((arr >= 1).all())
    )


def _quadratic_rank_constraints() -> list:
    from .._params import Interval, Options, Predicate

    return [
        Interval("int", 1, None),
        Options(("auto",)),
        Predicate(_rank_list, "a non-empty 1-D sequence of integers >= 1"),
        None,
    ]


class PolynomialOutputs:
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


class GammaSearch:
    """The block-weight (gamma) grid of the degree-2 probes and its search (exact and CP)."""

    _quiet_edges = False  # set on inner fits whose caller warns about its own choice

    def _gamma_values(self, mean_sq_norm: float) -> np.ndarray:
        """The block weights to try first. With g0 = 1 / mean ||h - mu||^2 (scale-free: then
        g0 <u, v>^2 and <u, v> are of the same size): None -> g0 x GAMMA_FACTORS (0.1, 1,
        10), extended by factors of 10 up to GAMMA_EXTENSIONS times (`solve.degree2`) while
        the choice sits at an improving edge (`_search_gammas`); "scale" -> g0 alone; numbers
        -> as given."""
        if self.gamma is None or (isinstance(self.gamma, str) and self.gamma == "scale"):
            scale = mean_sq_norm if np.isfinite(mean_sq_norm) and mean_sq_norm > 0 else 1.0
            if self.gamma is None:
                return degree2.GAMMA_FACTORS / scale
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
            return len(degree2.GAMMA_FACTORS)
        if isinstance(self.gamma, str):
            return 1
        return int(np.atleast_1d(np.asarray(self.gamma)).size)

    def _search_gammas(self, gammas: np.ndarray, fit_one: Any) -> tuple:
        """Fit every gamma of the starting grid (fit_one(g) -> RidgeSolution), then, for the
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
            best = int(best_index(crit, -grid))
            side = edge_side(crit, grid, best) if default else None
            if side is None or grown[side] >= degree2.GAMMA_EXTENSIONS:
                return grid, solutions, best
            grown[side] += 1
            if side == "low":
                g = min(gammas) / degree2.GAMMA_STEP
                gammas.insert(0, g)
                solutions.insert(0, fit_one(g))
            else:
                g = max(gammas) * degree2.GAMMA_STEP
                gammas.append(g)
                solutions.append(fit_one(g))
            self._drop_spectra(solutions, gammas)

    def _drop_spectra(self, solutions: list, gammas: list) -> None:
        """Keep the kernel decomposition (dual route) of the best solution so far only."""
        if len(solutions) < 2:
            return
        best = int(best_index(self._gamma_criteria(solutions), -np.asarray(gammas)))
        for i, sol in enumerate(solutions):
            if i != best:
                sol.__dict__.pop("kernel_solve", None)

    def _gamma_criteria(self, solutions: list) -> np.ndarray:
        crit = []
        for sol in solutions:
            if self.alpha_per_target:
                per = np.where(np.isnan(sol.scores), -np.inf, sol.scores).max(axis=0)
                crit.append(per.mean())
            else:
                crit.append(sol.joint_scores[sol.alpha_index[0]])
        return np.asarray(crit, dtype=np.float64)

    def _warn_edges(
        self, sol: RidgeSolution, gammas: np.ndarray, solutions: list, best: int
    ) -> None:
        """GridEdgeWarnings for the chosen alpha (of the chosen gamma) and the chosen gamma;
        the gamma's edge side is recorded in sol.gamma_edge either way."""
        side = None
        if len(gammas) > 1:
            side = edge_side(self._gamma_criteria(solutions), np.asarray(gammas), best)
        sol.gamma_edge = side
        if self._quiet_edges:
            return
        owner, cv = type(self).__name__, self._cv_name()
        if sol.alpha_edges is not None:
            warn_grid_edge(owner, "alpha", sol.alphas, sol.alpha_edges, sol.default_grid, cv)
        if side is not None:
            warn_grid_edge(owner, "gamma", np.asarray(gammas), [side], self.gamma is None, cv)

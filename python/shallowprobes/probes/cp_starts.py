"""The starts of the CP probes' L-BFGS polish (init="auto", "exact", "sketch"): which start
init="auto" takes, the exact degree-2 probe (alpha and gamma per target column, its gamma grid
grown at an improving edge) and the subspace sketch (gamma and alpha by refitting K-fold CV),
each handed on as the per-target model dicts `solve.cp.polish` starts from. Apart from
`probes.cp` because a start is itself a fit of another probe with its own CV, while the CP
estimators only polish it and report the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..solve import features as _quadratic
from ..solve.ridge import best_index, edge_side
from ..solve.subspace import (
    WhitenedRows,
    eig_backend,
    fit_selected_subspace,
    refit_select,
    subspace_coefficients,
)

# init="auto" starts from the exact probe only when its primal solve (statistics n p^2, one
# p x p eigendecomposition ~9 p^3 per gamma) costs at most this many flops
_EXACT_INIT_FLOPS = 2e12


class CPStarts:
    """The starting probes of `probes.cp.CPProbeBase` (a mixin: it reads the CP estimator's
    parameters, its gamma grid (`polynomial.GammaSearch`), scoring and host backend)."""

    def _resolve_init(self, n: int, d: int) -> str:
        """init="auto": "exact" when the exact probe is well determined and cheap -- at least
        as many rows as degree-2 features (p = d(d+3)/2 <= n: the primal route) and one solve
        within _EXACT_INIT_FLOPS -- else "sketch". (Where p > n the exact probe's Q is
        dominated by noise and a worse start than the sketch, as well as far dearer.)"""
        if self.init != "auto":
            return self.init
        p = float(_quadratic.n_features(d))
        if p > n or n * p * p + 9.0 * p**3 > _EXACT_INIT_FLOPS:
            return "sketch"
        inner = self._inner_exact(None)
        try:
            return "exact" if inner._route(n, d) == "primal" else "sketch"
        except MemoryError:
            return "sketch"

    def _inner_exact(self, gamma: Any) -> Any:
        """The exact degree-2 probe the CP starts from (metric coordinates: euclidean)."""
        from .quadratic import QuadraticProbe

        backend = self.backend if self.backend in ("torch",) else self._host_backend()
        inner = QuadraticProbe(
            alphas=self.alphas, gamma=gamma, cv=self.cv, alpha_per_target=True,
            fit_intercept=self.fit_intercept, backend=backend,
        )  # fmt: skip
        scoring = self._scoring()
        inner._scoring = lambda: scoring  # CV of the classifier's codes by its own scoring
        inner._quiet_edges = True  # the CP warns about its own choice
        return inner

    def _start_exact(self, X: Any, Y: Any, folds: Any, Z: Any, xp: Any) -> list:
        """Per target: the exact probe (alpha per target, gamma per target from the grid).
        One exact fit (one eigendecomposition, all targets) per gamma."""
        n, d = Z.shape
        k = Y.shape[1]
        gammas = [float(g) for g in self._gamma_values(float((Z * Z).sum()) / n)]
        sols, crits = {}, {}

        def fit(g: float) -> None:
            inner = self._inner_exact(g)
            inner._check_params()
            _, sol = inner._fit_rows(X, Y, folds)
            crits[g] = np.where(np.isnan(sol.scores), -np.inf, sol.scores).max(axis=0)  # (k,)
            sols[g] = sol

        for g in gammas:
            fit(g)
        grown = {"low": 0, "high": 0}
        while True:
            grid = np.asarray(gammas)
            table = np.stack([crits[g] for g in gammas])  # (G, k)
            best = [int(best_index(table[:, t], -grid)) for t in range(k)]
            sides = [edge_side(table[:, t], grid, best[t]) for t in range(k)]
            used = {gammas[i] for i in best}
            for g in list(sols):  # keep only the fits (k x d x d each) some target uses
                if g not in used:
                    del sols[g]
            side = None
            if self.gamma is None:
                side = next((s for s in ("low", "high") if s in sides and grown[s] < 2), None)
            if side is None:
                break
            grown[side] += 1
            if side == "low":
                gammas.insert(0, min(gammas) / 10.0)
                fit(gammas[0])
            else:
                gammas.append(max(gammas) * 10.0)
                fit(gammas[-1])
        models = []
        for t in range(k):
            g = gammas[best[t]]
            sol = sols[g]
            i = int(sol.alpha_index[t])
            models.append({
                "C": None, "S": sol.quadratic[t], "w": sol.coef[:, t], "b": float(sol.intercept[t]),
                "alpha": float(sol.alphas[i]), "gamma": g, "alphas": sol.alphas,
                "scores": sol.scores[:, t], "index": i, "alpha_edge": sol.alpha_edges[t],
                "default_grid": sol.default_grid, "gamma_edge": sides[t] if len(gammas) > 1
                else None, "gammas": np.asarray(gammas),
            })  # fmt: skip
        return models

    def _start_sketch(self, Y: Any, folds: Any, Z: Any, xp: Any) -> list:
        """Per target: the exact ridge probe restricted to a 2R-dimensional subspace of
        principal Hessian directions (`solve.subspace.phd_directions`), its gamma and alpha
        chosen by refitting K-fold CV (the subspace re-estimated in each fold)."""
        n, d = Z.shape
        m = max(1, min(d, 2 * int(self.rank)))
        white = WhitenedRows(Z, xp, eig_backend(self, xp))  # no labels: shared by all targets
        models = []
        for t in range(Y.shape[1]):
            y = Y[:, t : t + 1]
            choice = refit_select(self, Z, y, [m], folds, xp, white)
            sol, C = fit_selected_subspace(self, Z, y, folds, choice, xp, quiet=True,
                                            white=white)  # fmt: skip
            g = float(choice["gamma"])
            Q, w = subspace_coefficients(sol.coef, C, g, xp)
            S = C.T @ Q[0] @ C
            bg = int(np.flatnonzero(choice["gammas"] == g)[0])
            models.append({
                "C": C, "S": 0.5 * (S + S.T), "w": w[:, 0], "b": float(sol.intercept[0]),
                "alpha": float(sol.alphas[0]), "gamma": g, "alphas": sol.refit_alphas,
                "scores": choice["scores"][0, bg], "index": int(choice["alpha_index"]),
                "alpha_edge": choice["alpha_edge"], "default_grid": choice["explicit"] is None,
                "gamma_edge": choice["gamma_edge"], "gammas": choice["gammas"],
            })  # fmt: skip
        return models

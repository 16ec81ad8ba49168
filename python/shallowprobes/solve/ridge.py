"""The ridge selection engine shared by every probe: the solution for a grid of alphas, exact
alpha selection with tie and grid-edge rules, leave-one-out scores, and the row-block helpers
the routes use to form features and decision values (the coefficient paths, K-fold and GCV
routes are in `solve.paths`).

Written against the statistics (`solve.stats.SufficientStats`) and a kernel backend
(`backends`), never against an estimator: the probes in `shallowprobes.probes` call it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .._validation import is_torch_tensor
from ..backends import ops_of, to_numpy
from ..errors import GridEdgeWarning
from ..solve.geometry import Geometry
from .scoring import score_predictions

PREDICT_BLOCK = 8192


def default_alpha_grid(gram: np.ndarray, n_alphas: int = 19) -> np.ndarray:
    """logspace(-6, 3, n_alphas) times the mean eigenvalue of the (centred) Gram.

    Relative to the data's scale, so the same grid suits raw activations, z-scores and any n.
    """
    d = gram.shape[0]
    scale = float(gram.trace()) / max(d, 1)
    if not np.isfinite(scale) or scale <= 0.0:
        scale = 1.0
    return np.logspace(-6, 3, n_alphas) * scale


@dataclass
class RidgeSolution:
    """What a solve found: the probe's arrays and the record of how they were chosen.

    Every field is declared here (assigning an undeclared one raises AttributeError): the
    ridge core, then what the selection recorded, then the degree-2 and CP parts, None where
    a route does not produce them.
    """

    coef: Any  # (d, k) in input coordinates
    intercept: Any  # (k,)
    alphas: np.ndarray  # (A,)
    alpha_index: np.ndarray  # (k,) index into alphas chosen per target
    scores: Any  # (A, k) per-target CV score (higher is better)
    joint_scores: Any  # (A,) the criterion used when alpha_per_target=False
    calibration: Optional[float] = None  # logistic slope (classifiers)
    # (A, k) whether alpha a was in target t's own grid (per-target grid extension, see
    # `select_alpha`); None: every alpha for every target
    searched: Optional[np.ndarray] = None
    # --- the selection's record
    alpha_edges: Optional[list] = None  # per target: "low" / "high" (an improving edge) / None
    default_grid: bool = False  # whether the alphas were the default (extensible) grid
    geometry: Any = None  # the fitted metric (solve.geometry.Geometry)
    column_slopes: Optional[dict] = None  # {column: calibration slope} (sweep's batches)
    # --- degree 2 (exact routes, the cut-off and CP)
    quadratic: Any = None  # (k, d, d) symmetric Q per target
    centre: Any = None  # (d,) the centre mu of the degree-2 feature map
    gamma: Optional[float] = None  # the chosen block weight
    gammas: Optional[np.ndarray] = None  # (G,) the block weights searched
    gamma_edge: Optional[str] = None  # "low" / "high" when the gamma sits at an improving edge
    all_scores: Optional[list] = None  # per gamma: (alphas, scores, joint, searched)
    route: Optional[str] = None  # "primal", "dual", "subspace", "cp"
    kernel_solve: Any = None  # dual route: the kernel's decomposition until the solve used it
    quadratic_rank: Optional[int] = None  # the cut-off's subspace dimension m
    rank_table: Optional[dict] = None  # the refitting CV over m (and gamma, alpha)
    refit_alphas: Optional[np.ndarray] = None
    # --- CP
    factors: Optional[tuple] = None  # (U (k, R, d), V (k, R, d))
    n_iter: Any = None  # (k,) iterations of the polish per target
    converged: Any = None  # (k,) whether each target's polish met the stopping rule
    init: Optional[str] = None  # how the factors were started
    halfsteps: Any = None  # the alpha selections of the alternating half-steps

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.__dataclass_fields__:
            raise AttributeError(
                f"RidgeSolution has no field {name!r}: declare it in solve/ridge.py."
            )
        object.__setattr__(self, name, value)

    # Arrays used at predict time; they live where the fit ran (numpy, or torch tensors on the
    # fit's device) and are copied elsewhere on demand (`placed`), or moved by `to`.
    _PREDICT_FIELDS = ("coef", "intercept", "quadratic", "centre", "factors")

    def placed(self, device: Any) -> dict:
        """{field: array} of the predict-time arrays as numpy (device None) or as float64
        tensors on `device`; copies are cached, so repeated predictions move nothing."""
        cache = self.__dict__.setdefault("_placed", {})
        key = None if device is None else str(device)
        if key not in cache:
            fields = self._PREDICT_FIELDS
            cache[key] = {f: place_array(getattr(self, f, None), device) for f in fields}
            geom = self.geometry
            cache[key]["geometry"] = geom if geom is None else geom.to(ops_at_device(device))
        return cache[key]

    def to(self, device: Any) -> None:
        """Move the predict-time arrays to `device` (None: numpy) in place."""
        moved = self.placed(device)
        for f in self._PREDICT_FIELDS:
            if getattr(self, f, None) is not None:
                setattr(self, f, moved[f])
        self.__dict__["_placed"] = {}


def _own_grid(alphas: np.ndarray, scores: np.ndarray, joint: np.ndarray,
              searched: Optional[np.ndarray], cols: list) -> tuple:
    """(alphas, scores (A', len(cols)), joint, searched, kept (A,) or None) restricted to the
    alphas in the grids of `cols` (one column: exactly the grid a separate fit of that target
    searches); kept marks the alphas retained."""
    if searched is None:
        own = np.array(scores[:, cols])
        return alphas.copy(), own, own.mean(axis=1), None, None
    kept = searched[:, cols].any(axis=1)
    own = np.array(scores[kept][:, cols])
    return alphas[kept].copy(), own, own.mean(axis=1), np.array(searched[kept][:, cols]), kept


def column_solution(sol: Any, cols: list, slope: Optional[float], degree: int) -> RidgeSolution:
    """The part of a multi-target solution that concerns the target columns `cols`, as the
    solution of a probe fitted on those columns alone (per-target grids trimmed to the alphas
    those targets searched; `slope` is the classifier calibration of that probe).
    """
    alphas, scores, joint, searched, kept = _own_grid(
        sol.alphas, sol.scores, sol.joint_scores, sol.searched, cols
    )
    index = np.array(sol.alpha_index[cols])
    if kept is not None:  # the chosen alpha's position in the trimmed grid
        index = np.cumsum(kept)[index] - 1
    out = RidgeSolution(
        np.array(sol.coef[:, cols]),
        np.array(sol.intercept[cols]),
        alphas,
        index,
        scores,
        joint,
        slope,
        searched=searched,
    )
    out.geometry = sol.geometry
    out.route = sol.route
    if sol.alpha_edges is not None:
        out.alpha_edges = [sol.alpha_edges[c] for c in cols]
        out.default_grid = sol.default_grid
    if degree == 2:
        out.quadratic = np.array(sol.quadratic[cols])
        out.centre = sol.centre
        out.gamma = sol.gamma
        out.gammas = sol.gammas.copy()
        out.gamma_edge = sol.gamma_edge
        out.all_scores = [_own_grid(*entry, cols)[:4] for entry in sol.all_scores]
    return out


def ops_at_device(device: Any) -> Any:
    from ..backends import NUMPY_OPS, torch_backend

    return NUMPY_OPS if device is None else torch_backend().ops_for(device)


def place_array(a: Any, device: Any) -> Any:
    """An array (or tuple of arrays) as numpy (device None) or a float64 tensor on device."""
    if a is None:
        return None
    if isinstance(a, tuple):
        return tuple(place_array(x, device) for x in a)
    if device is None:
        return to_numpy(a)
    return ops_at_device(device).asarray(a)


# ---------------------------------------------------------------------------------- selection
# Scores within this relative distance of the best count as tied (exact CV ties: accuracy and
# AUROC are discrete, and GCV flattens to round-off at the ends of a grid).
TIE_RTOL = 1e-12
# An edge value whose score beats its grid neighbour by no more than this (relative to the
# scores' size or to their spread over the grid, whichever is larger) sits on a plateau:
# going further cannot change the probe, so the grid is neither extended nor flagged.
FLAT_RTOL = 1e-4
# Default alpha grids (logspace(-6, 3, 19) x the mean eigenvalue) grow by this many points
# (3 decades at the default spacing) on the side where the choice sits, at most twice per
# side: from 1e-12 to 1e9 times the mean eigenvalue in all.
EXTEND_POINTS = 6
MAX_EXTENSIONS = 2


def best_index(values: np.ndarray, prefer: Optional[np.ndarray] = None, axis: int = 0):
    """Arg-max over `axis`, NaN counting as the worst score. Among tied scores (within
    `TIE_RTOL` of the best) the entry with the largest `prefer` wins (for alpha: the most
    regularised probe; pass -gamma to prefer the smallest gamma). Independent of the order of
    the grid."""
    v = np.where(np.isnan(values), -np.inf, np.asarray(values, dtype=np.float64))
    if prefer is None:
        return np.argmax(v, axis=axis)
    v = np.moveaxis(v, axis, 0)
    best = v.max(axis=0)
    slack = np.where(np.isfinite(best), TIE_RTOL * np.abs(best), 0.0)
    tied = v >= best - slack
    key = np.asarray(prefer, dtype=np.float64).reshape((-1,) + (1,) * (v.ndim - 1))
    return np.argmax(np.where(tied, key, -np.inf), axis=0)


def edge_side(scores: np.ndarray, grid: np.ndarray, index: int) -> Optional[str]:
    """"low" / "high" when grid[index] is the smallest / largest value of the grid and its
    score (higher is better) beats that of the nearest other grid value by more than
    `FLAT_RTOL` times the larger of the scores' size and their spread over the grid (a
    plateau is no reason to look further); else None."""
    grid = np.asarray(grid, dtype=np.float64)
    values = np.unique(grid)
    if values.size < 2:
        return None
    a = grid[index]
    if a == values[0]:
        side, neighbour = "low", values[1]
    elif a == values[-1]:
        side, neighbour = "high", values[-2]
    else:
        return None
    s = np.where(np.isnan(scores), -np.inf, scores)
    here, there = float(s[index]), float(s[grid == neighbour].max())
    if not np.isfinite(here):
        return None
    if not np.isfinite(there):
        return side
    # A plateau relative to the scores' own size, or to how much they vary over the grid: once
    # a curve has flattened to round-off against its range (e.g. an exactly representable
    # target, whose error keeps shrinking towards zero at tiny alphas only in the last digits),
    # going further cannot change the probe materially and numerically different routes
    # would disagree on whether to go.
    finite = s[np.isfinite(s)]
    spread = float(finite.max() - finite.min())
    flat = FLAT_RTOL * max(abs(here), abs(there), spread, 1e-300)
    return side if here - there > flat else None


def extension_values(base: np.ndarray, side: str, level: int) -> np.ndarray:
    """The `level`-th (1, 2, ...) block of EXTEND_POINTS values beyond the `side` edge of the
    log-spaced grid `base`, at its spacing. A function of the base grid alone, so every target
    that extends a shared grid the same number of times sees exactly the same values."""
    values = np.unique(np.asarray(base, dtype=np.float64))
    pos = values[values > 0]
    step = float(np.log10(pos[1] / pos[0])) if pos.size >= 2 else 0.5
    step = step if np.isfinite(step) and step > 0 else 0.5
    k = np.arange(1, EXTEND_POINTS + 1) + (level - 1) * EXTEND_POINTS
    if side == "low":
        return (pos[0] * 10.0 ** (-step * k))[::-1]
    return values[-1] * 10.0 ** (step * k)


def _choose(per: np.ndarray, grid: np.ndarray, mask: np.ndarray) -> tuple[int, Optional[str]]:
    """(index into the full grid, edge side) of the best score among the values in `mask`."""
    inside = np.flatnonzero(mask)
    i = int(best_index(per[inside], grid[inside]))
    return int(inside[i]), edge_side(per[inside], grid[inside], i)


def select_alpha(scores: Any, alphas: np.ndarray, default_grid: bool, per_target: bool):
    """Alpha selection shared by every ridge solve: scores(grid) -> (per (A, k), joint (A,)).

    The best score wins, ties going to the larger alpha. A default grid is extended, by
    EXTEND_POINTS values at a time and at most MAX_EXTENSIONS times per side, while the choice
    sits at an edge whose score still improves there (all from the one spectrum).

    With per-target selection every target has its own grid: the base grid plus the
    extensions its own choice asked for, exactly as if it had been fitted alone (so a batched
    multi-target solve, e.g. in `sweep`, picks what separate fits pick). The returned grid is
    the union; per[a, t] is NaN where alpha a is outside target t's grid. Returns (alphas,
    per, joint, idx (k,), edge side of each target's choice on its own grid, searched (A, k):
    whether each alpha is in each target's grid).
    """
    base = np.asarray(alphas, dtype=np.float64)
    p0, j0 = scores(base)
    k = p0.shape[1]
    # grid blocks in increasing order of alpha, each (level, values, per, joint): level -j is
    # the j-th extension below the base grid, +j the j-th above, 0 the base grid itself
    parts = [(0, base, p0, j0)]
    # reach[t] = (low levels, high levels) of target t's grid; one shared row without
    # per-target selection
    reach = np.zeros((k if per_target else 1, 2), dtype=int)
    while True:
        level = np.concatenate([np.full(len(v), lv) for lv, v, _, _ in parts])
        grid = np.concatenate([v for _, v, _, _ in parts])
        per = np.concatenate([p for _, _, p, _ in parts])
        joint = np.concatenate([j for _, _, _, j in parts])
        masks = [(level >= -lo) & (level <= hi) for lo, hi in reach]
        if per_target:
            chosen = [_choose(per[:, t], grid, masks[t]) for t in range(k)]
        else:
            chosen = [_choose(joint, grid, masks[0])] * k
        idx = np.array([i for i, _ in chosen], dtype=int)
        sides = [s for _, s in chosen]
        grew = False
        for t, r in enumerate(reach):
            s = sides[t]
            j = int(s == "high")
            if default_grid and s is not None and r[j] < MAX_EXTENSIONS:
                r[j] += 1
                lv = int(r[1]) if j else -int(r[0])
                if all(p[0] != lv for p in parts):
                    extra = extension_values(base, s, abs(lv))
                    parts.append((lv, extra, *scores(extra)))
                    parts.sort(key=lambda p: p[0])
                grew = True
        if not grew:
            searched = np.stack([masks[t if per_target else 0] for t in range(k)], axis=1)
            return grid, np.where(searched, per, np.nan), joint, idx, sides, searched


def warn_grid_edge(owner: str, what: str, grid: np.ndarray, sides: list, default: bool,
                    cv: str) -> None:
    """One GridEdgeWarning naming the parameter, the edge and how many targets sit there."""
    flagged = [s for s in sides if s is not None]
    if not flagged:
        return
    from .._base import user_stacklevel

    side = "smallest" if flagged[0] == "low" else "largest"
    lo, hi = float(np.min(grid)), float(np.max(grid))
    targets = "" if len(sides) == 1 else f" for {len(flagged)} of {len(sides)} targets"
    param = "alphas" if what == "alpha" else what
    if default:
        advice = f"pass {param}= explicitly, reaching further on that side"
    else:
        advice = f"pass {param}= reaching further on that side"
    warnings.warn(
        f"{owner}: the {what} chosen by cv={cv!r} is the {side} value of the grid searched "
        f"({lo:.3g} .. {hi:.3g}){targets}, and the CV score was still improving there, so the "
        f"best {what} may lie outside the grid: {advice}.",
        GridEdgeWarning,
        stacklevel=user_stacklevel(),
    )


class RowMap:
    """Feature map x -> A x of a fitted metric (block-wise; see `feature_blocks`)."""

    def __init__(self, geometry: Geometry, d: int) -> None:
        self.geometry = geometry
        self.width = d

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.geometry.rows(X)


def feature_blocks(X: np.ndarray, feature_map: Optional[Any]):
    """Yield (slice, features) over X: the rows themselves, or mapped block by block (so an
    expanded feature matrix never exists for all rows at once)."""
    if feature_map is None:
        yield slice(0, X.shape[0]), X
        return
    # ~32 MiB of features per block
    block = int(np.clip((1 << 22) // max(feature_map.width, 1), 16, PREDICT_BLOCK))
    for start in range(0, X.shape[0], block):
        sl = slice(start, min(start + block, X.shape[0]))
        yield sl, feature_map(X[sl])


def linear_decision(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """X @ coef + intercept in float64, in row blocks (float32 inputs are never fully copied).
    A torch X gives a float64 tensor on its device (coef, intercept must be there too)."""
    n = X.shape[0]
    if is_torch_tensor(X) or is_torch_tensor(coef):
        xp = ops_of(coef, X)
        out = xp.empty((n, coef.shape[1]))
        for start in range(0, n, PREDICT_BLOCK):
            block = xp.asarray(X[start : start + PREDICT_BLOCK])
            out[start : start + PREDICT_BLOCK] = block @ coef
        return out + intercept
    out = np.empty((n, coef.shape[1]))
    for start in range(0, n, PREDICT_BLOCK):
        block = X[start : start + PREDICT_BLOCK].astype(np.float64, copy=False)
        np.matmul(block, coef, out=out[start : start + PREDICT_BLOCK])
    out += intercept
    return out


def loo_scores(backend: Any, xp: Any, ne: Any, spectrum: tuple, rows: tuple, grid: np.ndarray,
               scoring: str, fit_intercept: bool,
               feature_map: Optional[Any] = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(per (A, k), joint (A,)) exact leave-one-out scores of the alphas in `grid` from one
    spectrum (lam, V, B) of the normal equations `ne` and the training rows (X, Y, folds).
    Squared error on the Rust core is summed there (`loo_sse`: no (A, n, k) predictions);
    other scorings, and the other backends, score the LOO predictions."""
    lam, V, B = spectrum
    X, Y, _ = rows
    k = B.shape[1]
    if scoring == "squared_error" and hasattr(backend, "loo_sse"):
        sse = np.zeros((len(grid), k))
        for sl, F in feature_blocks(X, feature_map):
            sse += backend.loo_sse(
                F, ne.x_mean, V, lam, B, Y[sl], ne.y_mean, grid, ne.n, fit_intercept
            )
        per = -sse / X.shape[0]
        return per, per.mean(axis=1)
    preds = xp.empty((len(grid), X.shape[0], k))
    for sl, F in feature_blocks(X, feature_map):
        preds[:, sl] = backend.loo_predictions(
            F, ne.x_mean, V, lam, B, Y[sl], ne.y_mean, grid, ne.n, fit_intercept
        )
    return score_predictions(preds, Y, scoring)


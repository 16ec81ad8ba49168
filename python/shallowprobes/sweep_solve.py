"""The solves of `sweep`: every probe from the one pass's statistics, batched so that the
single-column targets of a layer share one solve of its Gram (`solve_probes`), and every
probe's score on the test rows, read once (`score_test_rows`).

Kept apart from `shallowprobes.sweep`, which checks the arguments, plans the routes and runs the
pass: this module only turns what the pass accumulated into fitted probes, the same probes
`fit` on those rows would give.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from .cache_pass import progress_bar
from .caches import ActivationCache
from .errors import GridEdgeWarning, ParameterError, ShallowProbesError
from .monitors.bank import ProbeBank
from .probes.linear import LinearProbe, LinearProbeClassifier
from .probes.quadratic import QuadraticProbe, QuadraticProbeClassifier
from .solve.calibration import gaussian_calibration
from .solve.degree2 import gaussian_slope_from_values
from .solve.ridge import column_solution
from .solve.scoring import binary_roc_auc
from .solve.stats import NormalEquations, SufficientStats
from .sweep_targets import Target


# ---------------------------------------------------------------------------------- statistics
class _SharedStats(SufficientStats):
    """Statistics of a subset of the target columns whose X-only arrays (count, sum_x, xtx,
    shifts) are shared with the layer's statistics, so that 16 probes of one layer do not hold
    16 copies of the Gram. Copy-on-write: adding rows (partial_fit) first takes private
    copies, so the layer's statistics and the other probes never change."""

    _SHARED = ("count", "sum_x", "xtx", "shift_x", "input_shift")

    def _accumulate_validated(self, X, Y, folds, check_values=False):
        for name in self._SHARED:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.copy())
        self.__class__ = SufficientStats  # private from now on
        return SufficientStats._accumulate_validated(self, X, Y, folds, check_values)


def _select_targets(stats: SufficientStats, cols: Sequence[int]) -> SufficientStats:
    """The statistics of target columns `cols` (X-only arrays shared, see _SharedStats)."""
    cols = np.asarray(cols, dtype=np.intp)
    out = _SharedStats(stats.n_folds, stats.backend, stats.degree)
    out.n_inputs, out.n_features, out.n_targets = stats.n_inputs, stats.n_features, cols.size
    out.rows_seen = stats.rows_seen
    out.input_shift, out.shift_x, out.count = stats.input_shift, stats.shift_x, stats.count
    out.sum_x, out.xtx = stats.sum_x, stats.xtx
    out.shift_y = stats.shift_y[cols].copy()
    out.sum_y = stats.sum_y[:, cols].copy()
    out.xty = stats.xty[:, :, cols].copy()
    out.yty = stats.yty[:, cols][:, :, cols].copy()
    return out


class _BatchMixin:
    """A multi-target probe that chooses alpha per column and records, per column, the
    logistic slope a one-column classifier would compute (classifier columns only)."""

    _slope_columns: tuple = ()

    def _ridge_solve(self, stats, rows, alphas, feature_map=None, warn_edges=True):
        sol = super()._ridge_solve(stats, rows, alphas, feature_map, warn_edges=warn_edges)
        raw = stats.normal_equations(fit_intercept=False) if self._slope_columns else None
        sol.column_slopes = {
            c: gaussian_calibration(
                _ColumnView(stats, raw, c), sol.coef[:, [c]], sol.intercept[[c]]
            )
            for c in self._slope_columns
        }
        return sol


class _ColumnView:
    """What `gaussian_calibration` reads of the statistics of target column c alone, with
    the raw normal equations of all columns computed once (entrywise the same numbers as
    those of `_select_targets(stats, [c])`)."""

    def __init__(self, stats: SufficientStats, raw: NormalEquations, c: int) -> None:
        cols = [c]
        self._raw = NormalEquations(raw.n, raw.gram, raw.cxy[:, cols], raw.cyy[cols],
                                    raw.x_mean, raw.y_mean[cols])  # fmt: skip
        self.shift_x, self.sum_x = stats.shift_x, stats.sum_x
        self.shift_y, self.sum_y = stats.shift_y[cols], stats.sum_y[:, cols]

    def normal_equations(self, fit_intercept: bool = True) -> NormalEquations:
        assert not fit_intercept
        return self._raw


class _BatchLinear(_BatchMixin, LinearProbe):
    pass


class _BatchQuadratic(_BatchMixin, QuadraticProbe):
    pass


# ---------------------------------------------------------------------------------- solves
def solve_probes(
    names: list,
    degrees: tuple,
    routes: dict,
    stats: dict,
    sub_rows: dict,
    subset: Optional[np.ndarray],
    Y: np.ndarray,
    folds: Optional[np.ndarray],
    tlist: list[Target],
    common: dict,
    gamma: Any,
    verbose: Optional[bool],
) -> dict:
    """Every probe of a sweep, {(layer, degree, target name): fitted probe}: the primal routes
    from the pass's statistics `stats`, the dual routes from the rows `sub_rows` the pass
    copied out (all training rows at a dual degree-1 layer, else the training rows `subset`
    of the degree-2 dual route). An error names the layer and the degree."""
    probes: dict = {}
    bar = progress_bar(verbose, len(names) * len(degrees), "sweep: solving", "probe set")
    # the probes' own GridEdgeWarnings would name neither layer nor target: the table's
    # at_grid_edge column records them, and one warning below lists them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        for lay in names:
            for deg in degrees:
                bar.set_postfix_str(f"layer {lay} degree {deg}")
                try:
                    if routes[(lay, deg)] == "primal":
                        got = _solve_primal(stats[(lay, deg)], tlist, common, deg, gamma)
                    elif deg == 1:
                        rows = sub_rows[lay]  # all training rows
                        every = np.arange(rows.shape[0])
                        got = _solve_dual(rows, every, Y, folds, tlist, common, gamma, 1)
                    else:
                        rows = sub_rows[lay]
                        if rows.shape[0] != subset.size:  # all rows, for the degree-1 probe
                            rows = rows[subset]
                        got = _solve_dual(rows, subset, Y, folds, tlist, common, gamma, 2)
                except ShallowProbesError as exc:
                    raise type(exc)(f"layer {lay!r}, degree {deg}: {exc}") from None
                for tname, est in got.items():
                    probes[(lay, deg, tname)] = est
                bar.update(1)
    bar.close()
    return probes


def _new_probe(t: Target, degree: int, common: dict, gamma: Any) -> Any:
    if degree == 1:
        cls = LinearProbeClassifier if t.task == "classification" else LinearProbe
        return cls(**common)
    cls = QuadraticProbeClassifier if t.task == "classification" else QuadraticProbe
    return cls(gamma=gamma, **common)


def _adopt(est: Any, stats: Optional[SufficientStats], t: Target, d: int, sol: Any) -> Any:
    est._stats = stats
    est._target_state = dict(t.state)
    est.n_features_in_ = d
    est._solution_cache = sol
    return est


def _single_gamma(gamma: Any) -> bool:
    """Whether degree-2 probes use one gamma (then targets can share one batched solve).
    None is the default search over several gammas (chosen per target), "scale" one gamma."""
    if gamma is None:
        return False
    if isinstance(gamma, str):
        return gamma == "scale"
    return np.atleast_1d(np.asarray(gamma)).size == 1


def _solve_primal(
    stats: SufficientStats, tlist: list, common: dict, degree: int, gamma: Any
) -> dict:
    """Per-target probes from one layer's statistics (all targets' columns)."""
    d = stats.n_inputs
    out = {}
    batch = [t for t in tlist if len(t.cols) == 1] if degree == 1 or _single_gamma(gamma) else []
    if batch:
        cols = [t.cols[0] for t in batch]
        sub = _select_targets(stats, cols)
        kw = dict(common)
        if degree == 2:
            kw["gamma"] = gamma
        solver = (_BatchLinear if degree == 1 else _BatchQuadratic)(alpha_per_target=True, **kw)
        solver._slope_columns = tuple(j for j, t in enumerate(batch) if t.task == "classification")
        solver._check_params()
        sol = solver._solve(sub, rows=None)
        for j, t in enumerate(batch):
            slope = sol.column_slopes.get(j) if t.task == "classification" else None
            est = _new_probe(t, degree, common, gamma)
            _adopt(
                est, _select_targets(stats, t.cols), t, d, column_solution(sol, [j], slope, degree)
            )
            out[t.name] = est
    for t in tlist:
        if t.name in out:
            continue
        est = _new_probe(t, degree, common, gamma)
        _adopt(est, _select_targets(stats, t.cols), t, d, None)
        est._solution()  # the estimator's own solve from these statistics
        out[t.name] = est
    return {t.name: out[t.name] for t in tlist}


def _solve_dual(
    X: np.ndarray,
    subset: np.ndarray,
    Y_all: np.ndarray,
    folds_all: Optional[np.ndarray],
    tlist: list,
    common: dict,
    gamma: Any,
    degree: int,
) -> dict:
    """Per-target dual-route probes of `degree` on the rows X = training rows `subset`; the
    single-column targets in one batched fit (degree 2: when they share one gamma)."""
    d = X.shape[1]
    Y = Y_all[subset]
    folds = None if folds_all is None else folds_all[subset]
    out = {}
    shared = degree == 1 or _single_gamma(gamma)
    batch = [t for t in tlist if len(t.cols) == 1] if shared else []
    if batch:
        cols = [t.cols[0] for t in batch]
        if degree == 1:
            solver: Any = LinearProbe(alpha_per_target=True, solver="dual", **common)
        else:
            solver = QuadraticProbe(alpha_per_target=True, gamma=gamma, solver="dual", **common)
        solver.fit(X, Y[:, cols], fold_ids=folds)
        sol = solver._solution()
        F = None
        if any(t.task == "classification" for t in batch):
            F = solver._decision(X)
        for j, t in enumerate(batch):
            slope = None
            if t.task == "classification":
                slope = gaussian_slope_from_values(F[:, [j]], Y[:, [cols[j]]])
            est = _new_probe(t, degree, dict(common), gamma)
            est.solver = "dual"
            _adopt(est, None, t, d, column_solution(sol, [j], slope, degree))
            out[t.name] = est
    for t in tlist:
        if t.name in out:
            continue
        labels = t.train[subset]
        if t.task == "classification" and np.unique(labels).size != len(t.state["classes"]):
            raise ParameterError(
                f"target {t.name!r}: the dual route's {len(subset)} rows do not contain every "
                f"class of the training rows ({len(t.state['classes'])}); raise dual_rows."
            )
        est = _new_probe(t, degree, dict(common), gamma)
        est.solver = "dual"
        est.fit(X, labels, fold_ids=folds)
        out[t.name] = est
    return {t.name: out[t.name] for t in tlist}


# ---------------------------------------------------------------------------------- test scores
def score_test_rows(
    source: ActivationCache, names, start, stop, tlist, degrees, probes, memory_budget, verbose
) -> dict:
    """Accuracy (and AUROC, binary) / R^2 of every probe on the test rows, read once."""
    banks = {}
    for lay in names:
        for deg in degrees:
            banks[(lay, deg)] = ProbeBank({t.name: probes[(lay, deg, t.name)] for t in tlist})
    values = {key: [] for key in banks}
    if source.is_dask:
        import dask

        from ._dask import as_rows

        lazy = {}
        for (lay, deg), bank in banks.items():
            X = as_rows(source[lay].dask[start:stop])
            lazy[(lay, deg)] = X.map_blocks(
                _bank_scores, bank, dtype=np.float64, chunks=(X.chunks[0], (len(bank),))
            )
        for key, v in zip(lazy, dask.compute(*lazy.values())):
            values[key].append(v)
    else:
        bar = progress_bar(verbose, (stop - start) * len(names), "sweep: test rows", "row")
        for lay, a, b, block in source.iter_blocks(names, start, stop, memory_budget):
            for deg in degrees:
                values[(lay, deg)].append(banks[(lay, deg)].decision_function(block))
            bar.update(b - a)
        bar.close()
    out = {}
    for (lay, deg), parts in values.items():
        F = np.concatenate(parts, axis=0)
        for t in tlist:
            f = F[:, t.cols]  # the bank has one monitor per code column, targets in order
            truth = np.asarray(t.test)
            if t.task == "classification":
                classes = t.state["classes"]
                pred = (
                    classes[(f[:, 0] > 0).astype(np.intp)]
                    if f.shape[1] == 1
                    else classes[np.argmax(f, axis=1)]
                )
                res = {"metric": "accuracy", "score": float(np.mean(pred == truth))}
                if len(classes) == 2:
                    res["auroc"] = binary_roc_auc(f[:, 0], truth == classes[1])
            else:
                y = truth.astype(np.float64)
                sst = float(((y - y.mean()) ** 2).sum())
                sse = float(((y - f[:, 0]) ** 2).sum())
                res = {"metric": "r2", "score": 1.0 - sse / sst if sst > 0 else float("nan")}
            out[(lay, deg, t.name)] = res
    return out


def _bank_scores(block: np.ndarray, bank: ProbeBank) -> np.ndarray:
    if block.dtype == np.float16:
        block = block.astype(np.float32)
    return bank.decision_function(block)

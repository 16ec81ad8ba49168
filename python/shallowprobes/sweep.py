"""Probe every layer x every target of an activation cache in one pass: `sweep`.

The statistics of every requested layer, for every target and every degree, are accumulated
in ONE pass over the cache: each row block of each layer is read once (under the memory
budget of `shallowprobes.caches`) and fed to all of that layer's statistics (degree 1, and
degree 2 on the primal route), with all targets as columns of one Y. Then every probe is
solved from the statistics, exactly as `fit` on the same rows would solve it: the results
equal fitting each layer in memory (tests check 1e-10).

Solving is batched: the targets of one layer share its Gram, so one eigendecomposition (one
per fold for K-fold) serves all single-column targets (binary classification, regression),
and each is then split into its own fitted probe. Multiclass targets (several code columns
whose alpha is chosen jointly) and grids of gamma are solved one target at a time.

Degree 2 (``degree2=``): "primal" accumulates the statistics of the p = d + d(d+1)/2
degree-2 features in the same pass (memory O(K p^2) per layer) and is exact on all training
rows; it is used when p <= n_train and the statistics of all layers fit `stats_memory`.
Otherwise "dual": the exact kernel (dual-route) probe fitted on a bounded subset of
`dual_rows` training rows drawn uniformly at random (seed `random_state`), copied out of the
blocks as they are read (no second pass); its K-fold folds are the rows' global folds. The
route is stated per layer in the results (``route`` column, `SweepResult.routes`).

Dask: a cache whose layers are dask arrays (`ActivationCache.to_dask()`, zarr via
``dask.array.from_zarr``, or any dask arrays) runs the accumulation as one Dask graph
(per-block statistics on the workers, Dask's tree reduction; see `shallowprobes._dask`); the
solve runs once on the client. Only the dual route's bounded row subset, and the test rows'
decision values, come back to the client.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .cache_pass import pass_dask, pass_local, progress_bar
from .caches import DEFAULT_MEMORY_BUDGET, ActivationCache, open_cache
from .errors import (
    CacheError,
    GridEdgeWarning,
    NonFiniteError,
    ParameterError,
    ShallowProbesError,
)
from .monitors.bank import ProbeBank
from .probes.linear import LinearProbe, LinearProbeClassifier
from .probes.quadratic import QuadraticProbe, QuadraticProbeClassifier
from .solve import features as _quadratic
from .solve.calibration import gaussian_calibration
from .solve.degree2 import gaussian_slope_from_values, physical_memory
from .solve.ridge import column_solution
from .solve.scoring import binary_roc_auc
from .solve.stats import NormalEquations, SufficientStats
from .sweep_result import SweepResult, SweepTable, json_name

__all__ = ["sweep", "SweepResult", "SweepTable"]

_DEGREE2_ROUTES = ("auto", "primal", "dual")
_TASKS = ("auto", "classification", "regression")
# ---------------------------------------------------------------------------------- statistics
class _SharedStats(SufficientStats):
    """Statistics of a subset of the target columns whose X-only arrays (count, sum_x, xtx,
    shifts) are shared with the layer's statistics, so that 16 probes of one layer do not hold
    16 copies of the Gram. Copy-on-write: adding rows (partial_fit) first takes private
    copies, so the layer's statistics and the other probes never change."""

    _SHARED = ("count", "sum_x", "xtx", "shift_x", "input_shift")

    def _accumulate_validated(self, X, Y, folds):
        for name in self._SHARED:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.copy())
        self.__class__ = SufficientStats  # private from now on
        return SufficientStats._accumulate_validated(self, X, Y, folds)


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


# ---------------------------------------------------------------------------------- targets
@dataclass
class _Target:
    name: str
    task: str
    train: np.ndarray  # the training values (labels or numbers)
    test: Optional[np.ndarray]
    codes: np.ndarray = None  # (n_train, c) float64 columns fed to the statistics
    state: dict = None  # the probe's _target_state
    cols: list = None  # columns of the layer's Y


def _target_items(targets: Any) -> list[tuple[str, np.ndarray]]:
    if isinstance(targets, Mapping):
        items = list(targets.items())
    elif hasattr(targets, "columns") and hasattr(targets, "__getitem__"):  # a DataFrame
        items = [(c, targets[c].to_numpy()) for c in targets.columns]
    else:
        arr = np.asarray(targets)
        if arr.ndim == 1:
            items = [("y", arr)]
        elif arr.ndim == 2:
            items = [(str(j), arr[:, j]) for j in range(arr.shape[1])]
        else:
            raise ParameterError(
                f"targets must be a mapping name -> (n,) array, a DataFrame or an (n,) / (n, k) "
                f"array, got an array of shape {arr.shape}."
            )
    if not items:
        raise ParameterError("targets is empty: pass at least one target.")
    out = []
    for name, values in items:
        if not isinstance(name, str):
            name = str(name)
        arr = np.asarray(values)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ParameterError(
                f"target {name!r} must be 1-D (one value per row), got shape {arr.shape}."
            )
        out.append((name, arr))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ParameterError(f"target names must be unique, got {names}.")
    return out


def _task_of(name: str, values: np.ndarray, task: Any) -> str:
    chosen = task.get(name, "auto") if isinstance(task, Mapping) else task
    if chosen not in _TASKS:
        raise ParameterError(f"task for target {name!r} must be one of {_TASKS}, got {chosen!r}.")
    if chosen != "auto":
        return chosen
    if values.dtype.kind in "biuOUS":
        return "classification"
    if values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        return "classification" if np.unique(finite).size == 2 else "regression"
    raise ParameterError(f"target {name!r} has dtype {values.dtype}; pass labels or numbers.")


def _prepare_target(name: str, task: str, train: np.ndarray, test: Optional[np.ndarray]) -> _Target:
    t = _Target(name, task, train, test)
    est = LinearProbeClassifier() if task == "classification" else LinearProbe()
    try:
        codes, _, state = est._prepare_targets(train, train.shape[0], first=True)
    except NonFiniteError as exc:
        raise NonFiniteError(f"target {name!r}: {exc}") from None
    except ValueError as exc:
        raise type(exc)(f"target {name!r}: {exc}") from None
    if (
        task == "regression"
        and test is not None
        and not np.isfinite(np.asarray(test, dtype=np.float64)).all()
    ):
        raise NonFiniteError(f"target {name!r}: the test values contain NaN or infinity.")
    t.codes, t.state = np.asarray(codes, dtype=np.float64), state
    return t


# ---------------------------------------------------------------------------------- checks
def _check_args(degrees, cv, degree2, dual_rows, verbose, split) -> tuple:
    if isinstance(degrees, (int, np.integer)):
        degrees = (int(degrees),)
    degrees = tuple(degrees)
    if (
        not degrees
        or any(isinstance(g, bool) or g not in (1, 2) for g in degrees)
        or len(set(degrees)) != len(degrees)
    ):
        raise ParameterError(f"degrees must be a non-empty selection of 1 and 2, got {degrees!r}.")
    if isinstance(cv, str):
        if cv == "loo":
            raise ParameterError(
                "sweep: cv='loo' needs the rows for its leverages (a second pass); use "
                "cv='gcv' or an integer K (exact K-fold from the statistics)."
            )
        if cv != "gcv":
            raise ParameterError(f"sweep: cv must be 'gcv' or an integer K >= 2, got {cv!r}.")
        K = 1
    elif isinstance(cv, (int, np.integer)) and not isinstance(cv, bool) and cv >= 2:
        K = int(cv)
    else:
        raise ParameterError(f"sweep: cv must be 'gcv' or an integer K >= 2, got {cv!r}.")
    if degree2 not in _DEGREE2_ROUTES:
        raise ParameterError(f"sweep: degree2 must be one of {_DEGREE2_ROUTES}, got {degree2!r}.")
    if isinstance(dual_rows, bool) or not isinstance(dual_rows, (int, np.integer)) or dual_rows < 2:
        raise ParameterError(f"sweep: dual_rows must be an integer >= 2, got {dual_rows!r}.")
    if verbose not in (None, True, False):
        raise ParameterError(f"sweep: verbose must be None, True or False, got {verbose!r}.")
    return degrees, K


def _n_test_rows(split: Any, n: int) -> int:
    if split is None:
        return 0
    if isinstance(split, bool):
        raise ParameterError(
            f"sweep: split must be a fraction in (0, 1) or a row count, got {split!r}."
        )
    if isinstance(split, (float, np.floating)) and 0.0 < split < 1.0:
        m = int(math.ceil(split * n))
    elif isinstance(split, (int, np.integer)) and 0 < split < n:
        m = int(split)
    else:
        raise ParameterError(
            f"sweep: split must be a fraction in (0, 1) or a row count in [1, n), got {split!r} "
            f"(n = {n})."
        )
    if n - m < 2:
        raise ParameterError(f"sweep: split={split!r} leaves {n - m} training row(s) of {n}.")
    return m


def _stats_bytes(width: int, k: int, K: int) -> float:
    return 8.0 * K * (width * width + width * k + k * k + width + k + 1)


# ---------------------------------------------------------------------------------- sweep
def sweep(
    cache: Any,
    targets: Any,
    *,
    layers: Any = None,
    degrees: Any = (1, 2),
    cv: Any = "gcv",
    alphas: Any = None,
    gamma: Any = None,
    fit_intercept: bool = True,
    metric: str = "euclidean",
    task: Any = "auto",
    split: Any = None,
    test: Any = None,
    fold_ids: Any = None,
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    degree2: str = "auto",
    dual_rows: int = 2048,
    stats_memory: Optional[float] = None,
    random_state: Optional[int] = 0,
    backend: str = "auto",
    device: Any = None,
    precision: str = "auto",
    verbose: Optional[bool] = None,
) -> SweepResult:
    """Fit probes for every layer x target x degree of an activation cache in one pass.

    Parameters
    ----------
    cache : anything `shallowprobes.caches.open_cache` opens (a path, files, arrays, a
        stacked array, dask arrays, an ActivationCache).
    targets : {name: (n,) array} (labels or numbers), a DataFrame, or an (n,) / (n, k) array
        (columns named "0", "1", ...); n = the cache's rows.
    layers : layer names to probe (default all). A layer is named by its index in a stacked
        cache, else by its file stem, tensor key or shard directory.
    degrees : (1,), (2,) or (1, 2).
    cv : "gcv" or an integer K (exact K-fold; row i of the training rows in fold i % K, or
        `fold_ids`). Alpha is chosen by squared error (on +-1 codes for classifiers).
    alphas, gamma, fit_intercept, metric : as for the probes ("euclidean", "standardize",
        "whiten"; the metric is fitted per layer from its statistics).
    task : "auto", "classification", "regression", or {target: task}. auto: bool, integer
        and string targets are classification, floats with exactly 2 distinct values too,
        other floats regression.
    split : hold out the last `split` rows (a fraction in (0, 1), or a count) as a test set,
        read once, after the solve. test : (test_cache, test_targets), a separate test set.
    fold_ids : (n_train,) fold of each training row (integer cv only).
    memory_budget : bytes one read may hold (stored block + its float32 conversion).
    degree2 : "auto", "primal" or "dual" (see the module docs); dual_rows : the dual
        route's row subset; stats_memory : bytes the statistics of all layers may take
        (default half the physical memory); random_state : seed of the dual subset.
    backend : "auto", "rust" or "numpy": the host core that accumulates and solves.
    device : a torch device ("cuda", "cuda:1", "cpu"): accumulate there instead, with the
        torch backend. Blocks travel to the device as stored (float16 / bfloat16 keep 2
        bytes per entry) and are accumulated in float64 there; only the statistics
        (O(K d^2)) come back for the solve on the host. Needs torch.
    precision : {"auto", "float64", "float32"}, the Gram arithmetic of the degree-1
        statistics in the Rust core (`SufficientStats`): float16 / bfloat16 layers are read
        by the core as raw bits (no float32 copy) and, with "auto", accumulated from float32
        block Grams (bounded error, docs/design.md §8); "float64" is exact for every layer.
    verbose : progress bars (tqdm) when True, or when None and stderr is a terminal.

    Returns a `SweepResult`. Bad caches and targets raise before any work (CacheError,
    ParameterError, ...); nothing partial is returned.
    """
    t_start = time.perf_counter()
    degrees, K = _check_args(degrees, cv, degree2, dual_rows, verbose, split)
    if test is not None and split is not None:
        raise ParameterError("sweep: pass split= or test=, not both.")
    if backend not in ("auto", "rust", "numpy"):
        raise ParameterError(f"sweep: backend must be 'auto', 'rust' or 'numpy', got {backend!r}.")
    if not isinstance(precision, str) or precision not in ("auto", "float64", "float32"):
        raise ParameterError(
            f"sweep: precision must be 'auto', 'float64' or 'float32', got {precision!r}."
        )
    torch_device = None
    if device is not None:
        from .backends import torch_backend

        torch_backend()  # ImportError naming the torch extra
        import torch

        try:
            torch_device = torch.device(device)
        except (RuntimeError, TypeError):
            raise ParameterError(f"sweep: device must be a torch device, got {device!r}.") from None
    cache = open_cache(cache, layers=layers)
    names = cache.names
    n = cache.n_rows
    if n < 0:
        raise CacheError(f"{cache.description}: the number of rows is unknown.")
    n_test = _n_test_rows(split, n)
    n_train = n - n_test
    test_cache = None
    items = _target_items(targets)
    for tname, values in items:
        if values.shape[0] != n:
            first = cache[names[0]]
            raise CacheError(
                f"target {tname!r} has {values.shape[0]} rows but the cache's layers have {n} "
                f"(layer {first.name!r}, {first.where}); targets need one value per row."
            )
    test_items = None
    if test is not None:
        if not (isinstance(test, (tuple, list)) and len(test) == 2):
            raise ParameterError("sweep: test must be a pair (test_cache, test_targets).")
        test_cache = open_cache(test[0], layers=names)
        test_items = dict(_target_items(test[1]))
        missing = [t for t, _ in items if t not in test_items]
        if missing:
            raise ParameterError(f"sweep: test targets lack {missing}.")
        for lname in names:
            if test_cache[lname].n_features != cache[lname].n_features:
                raise CacheError(
                    f"layer {lname!r}: the test cache ({test_cache[lname].where}) has width "
                    f"{test_cache[lname].n_features} but the training cache "
                    f"({cache[lname].where}) has {cache[lname].n_features}."
                )
        for tname, values in test_items.items():
            if np.asarray(values).shape[0] != test_cache.n_rows:
                raise CacheError(
                    f"test target {tname!r} has {np.asarray(values).shape[0]} rows but the test "
                    f"cache has {test_cache.n_rows} ({test_cache.description})."
                )
        n_test = test_cache.n_rows
    # ------------------------------------------------------------ targets
    tlist: list[_Target] = []
    col = 0
    for tname, values in items:
        kind = _task_of(tname, values, task)
        if test_items is not None:
            test_values = np.asarray(test_items[tname]).reshape(-1)
        else:
            test_values = values[n_train:] if n_test else None
        t = _prepare_target(tname, kind, values[:n_train], test_values)
        t.cols = list(range(col, col + t.codes.shape[1]))
        col += t.codes.shape[1]
        tlist.append(t)
    Y = np.hstack([t.codes for t in tlist])
    k_total = Y.shape[1]
    # ------------------------------------------------------------ folds
    folds = None
    if K > 1:
        if K > n_train:
            raise ParameterError(f"sweep: cv={K} folds but only {n_train} training rows.")
        if fold_ids is None:
            folds = (np.arange(n_train) % K).astype(np.int64)
        else:
            from ._validation import check_fold_ids

            folds = check_fold_ids(fold_ids, n_train, K)
    elif fold_ids is not None:
        raise ParameterError("sweep: fold_ids is only used with integer cv (K-fold).")
    # ------------------------------------------------------------ routes and memory
    K_eff = max(K, 1)
    limit = float(stats_memory) if stats_memory is not None else 0.5 * physical_memory()
    need = (
        sum(_stats_bytes(cache[lay].n_features, k_total, K_eff) for lay in names)
        if 1 in degrees
        else 0.0
    )
    routes: dict = {}
    accumulate: dict = {lay: [] for lay in names}  # layer -> degrees accumulated in the pass
    if 1 in degrees:
        for lay in names:
            routes[(lay, 1)] = "primal"
            accumulate[lay].append(1)
    dual_layers = []
    if 2 in degrees:
        q = QuadraticProbe(memory_limit=None, cv=cv)
        for lay in names:
            d = cache[lay].n_features
            p = _quadratic.n_features(d)
            extra = _stats_bytes(p, k_total, K_eff)
            fits = need + extra <= limit and q._bytes_primal(p) <= q._memory_limit()
            if degree2 == "primal" or (degree2 == "auto" and p <= n_train and fits):
                if not fits:
                    raise MemoryError(
                        f"sweep: degree2='primal' at layer {lay!r} (d={d}, p={p:,} features) needs "
                        f"about {extra / 2**30:.1f} GiB of statistics ({K_eff} fold(s)); the "
                        f"limit is stats_memory={limit / 2**30:.1f} GiB. Use degree2='dual' or "
                        "'auto', fewer layers per sweep, or a larger stats_memory."
                    )
                need += extra
                routes[(lay, 2)] = "primal"
                accumulate[lay].append(2)
            else:
                m = min(int(dual_rows), n_train)
                routes[(lay, 2)] = f"dual ({m} rows)"
                dual_layers.append(lay)
    if need > limit:
        raise MemoryError(
            f"sweep: the statistics of {len(names)} layer(s) need about {need / 2**30:.1f} GiB, "
            f"over stats_memory={limit / 2**30:.1f} GiB; sweep fewer layers at a time."
        )
    subset = None
    if dual_layers:
        m = min(int(dual_rows), n_train)
        rng = np.random.default_rng(random_state)
        subset = (
            np.arange(n_train) if m == n_train else np.sort(rng.choice(n_train, m, replace=False))
        )
    # ------------------------------------------------------------ the pass
    t_pass = time.perf_counter()
    if cache.is_dask:
        stats, sub_rows = pass_dask(
            cache, names, n_train, Y, folds, K_eff, accumulate, dual_layers, subset, backend,
            precision,
        )  # fmt: skip
    else:
        stats, sub_rows = pass_local(
            cache,
            names,
            n_train,
            Y,
            folds,
            K_eff,
            accumulate,
            dual_layers,
            subset,
            backend,
            memory_budget,
            verbose,
            torch_device,
            precision,
        )
    t_solve = time.perf_counter()
    # ------------------------------------------------------------ solve
    common = dict(alphas=alphas, cv=cv, fit_intercept=fit_intercept, metric=metric, backend=backend)
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
                    if deg == 1:
                        got = _solve_primal(stats[(lay, 1)], tlist, common, 1, gamma)
                    elif routes[(lay, 2)] == "primal":
                        got = _solve_primal(stats[(lay, 2)], tlist, common, 2, gamma)
                    else:
                        got = _solve_dual(sub_rows[lay], subset, Y, folds, tlist, common, gamma)
                except ShallowProbesError as exc:
                    raise type(exc)(f"layer {lay!r}, degree {deg}: {exc}") from None
                for tname, est in got.items():
                    probes[(lay, deg, tname)] = est
                bar.update(1)
    bar.close()
    t_test = time.perf_counter()
    # ------------------------------------------------------------ test rows
    scores: dict = {}
    if n_test:
        source = test_cache if test_cache is not None else cache
        start = 0 if test_cache is not None else n_train
        scores = _test_scores(
            source, names, start, start + n_test, tlist, degrees, probes, memory_budget, verbose
        )
    t_end = time.perf_counter()
    # ------------------------------------------------------------ table, banks
    rows = []
    selected = {}
    for lay in names:
        for t in tlist:
            cands = [(probes[(lay, deg, t.name)].best_score_, -deg, deg) for deg in degrees]
            cands = [(s if np.isfinite(s) else -np.inf, a, deg) for s, a, deg in cands]
            selected[(lay, t.name)] = max(cands)[2]
    for lay in names:
        for deg in degrees:
            for t in tlist:
                est = probes[(lay, deg, t.name)]
                sc = scores.get((lay, deg, t.name), {})
                rows.append(
                    {
                        "layer": lay,
                        "degree": deg,
                        "target": t.name,
                        "task": t.task,
                        "route": routes[(lay, deg)],
                        "n_train": n_train if routes[(lay, deg)] == "primal" else len(subset),
                        "alpha": float(est.alpha_),
                        "gamma": float(est.gamma_) if deg == 2 else None,
                        "cv": est._cv_name(),
                        "cv_score": float(est.best_score_),
                        "test_metric": sc.get("metric"),
                        "test_score": sc.get("score"),
                        "test_auroc": sc.get("auroc"),
                        "n_test": n_test or None,
                        "selected": selected[(lay, t.name)] == deg,
                        "at_grid_edge": _grid_edge(est),
                    }
                )
    _warn_edges(rows)
    banks = {}
    for lay in names:
        chosen = {t.name: selected[(lay, t.name)] for t in tlist}
        banks[lay] = ProbeBank(
            {t.name: probes[(lay, chosen[t.name], t.name)] for t in tlist},
            metadata={"layer": json_name(lay), "degrees": chosen, "cv": str(cv)},
        )
    kept_stats = {key: s for key, s in stats.items()}
    return SweepResult(
        table=SweepTable(rows),
        banks=banks,
        probes=probes,
        stats=kept_stats,
        routes=routes,
        layers=names,
        targets=[t.name for t in tlist],
        degrees=degrees,
        n_train=n_train,
        n_test=n_test,
        dual_subset=subset,
        timings={
            "setup": t_pass - t_start,
            "pass": t_solve - t_pass,
            "solve": t_test - t_solve,
            "test": t_end - t_test,
            "total": t_end - t_start,
        },
    )


# ---------------------------------------------------------------------------------- passes
# ---------------------------------------------------------------------------------- solves
def _grid_edge(est: Any) -> Optional[str]:
    """Which of a probe's choices sit at an improving edge of their grid ("alpha low",
    "gamma high", both joined by ", "), or None."""
    sol = est._solution()
    parts = [f"alpha {side}" for side in sorted({e for e in (sol.alpha_edges or []) if e})]
    if sol.gamma_edge:
        parts.append(f"gamma {sol.gamma_edge}")
    return ", ".join(parts) or None


def _warn_edges(rows: list[dict]) -> None:
    """One GridEdgeWarning naming the probes whose alpha or gamma sits at an improving edge."""
    at_edge = [r for r in rows if r["at_grid_edge"]]
    if not at_edge:
        return
    from ._base import user_stacklevel

    named = "; ".join(
        f"layer {r['layer']} degree {r['degree']} {r['target']} ({r['at_grid_edge']})"
        for r in at_edge[:6]
    )
    more = f"; and {len(at_edge) - 6} more" if len(at_edge) > 6 else ""
    warnings.warn(
        f"sweep: {len(at_edge)} of {len(rows)} probes chose an alpha or gamma at an edge of "
        f"its grid where the CV score was still improving (the table's at_grid_edge column): "
        f"{named}{more}. Pass alphas= / gamma= reaching further on that side.",
        GridEdgeWarning,
        stacklevel=user_stacklevel(),
    )


def _new_probe(t: _Target, degree: int, common: dict, gamma: Any) -> Any:
    if degree == 1:
        cls = LinearProbeClassifier if t.task == "classification" else LinearProbe
        return cls(**common)
    cls = QuadraticProbeClassifier if t.task == "classification" else QuadraticProbe
    return cls(gamma=gamma, **common)


def _adopt(est: Any, stats: Optional[SufficientStats], t: _Target, d: int, sol: Any) -> Any:
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
) -> dict:
    """Per-target dual-route degree-2 probes on the rows X = training rows `subset`."""
    d = X.shape[1]
    Y = Y_all[subset]
    folds = None if folds_all is None else folds_all[subset]
    out = {}
    batch = [t for t in tlist if len(t.cols) == 1] if _single_gamma(gamma) else []
    if batch:
        cols = [t.cols[0] for t in batch]
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
            est = _new_probe(t, 2, dict(common), gamma)
            est.solver = "dual"
            _adopt(est, None, t, d, column_solution(sol, [j], slope, 2))
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
        est = _new_probe(t, 2, dict(common), gamma)
        est.solver = "dual"
        est.fit(X, labels, fold_ids=folds)
        out[t.name] = est
    return {t.name: out[t.name] for t in tlist}


# ---------------------------------------------------------------------------------- test scores
def _test_scores(
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

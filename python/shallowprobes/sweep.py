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

Degree 1 (``degree1=``): "primal" accumulates the layer's d x d statistics in the pass;
"dual" copies all training rows out of the blocks and fits the linear probe's dual route on
them (`LinearProbe(solver="dual")`: the n x n kernel, the same probe, n^2 d + n^3 work instead
of n d^2 + d^3). "auto" takes the dual route at the layers with fewer training rows than
hidden units, as `LinearProbe` does (`probes.linear.linear_route`; a thousand prompts at
d = 4096: 0.2 s a layer instead of 17 s).

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

This module checks the arguments, plans the routes and runs the pass (`shallowprobes.cache_pass`);
the targets' encoding is in `sweep_targets`, the batched solves and the test scores in
`sweep_solve`, the results table in `sweep_result`.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Optional

import numpy as np

from .cache_pass import pass_dask, pass_local
from .caches import DEFAULT_MEMORY_BUDGET, ActivationCache, open_cache
from .errors import CacheError, GridEdgeWarning, ParameterError
from .monitors.bank import ProbeBank
from .probes.linear import linear_route
from .probes.quadratic import QuadraticProbe
from .solve import features as _quadratic
from .solve.degree2 import physical_memory
from .sweep_result import SweepResult, SweepTable, grid_edge, json_name
from .sweep_solve import score_test_rows, solve_probes
from .sweep_targets import Target, open_test_set, prepare_targets, read_targets

__all__ = ["sweep", "SweepResult", "SweepTable"]

_ROUTES = ("auto", "primal", "dual")


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
    degree1: str = "auto",
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
    degree1, degree2 : "auto", "primal" or "dual" (see the module docs); dual_rows : the
        degree-2 dual route's row subset; stats_memory : bytes the statistics of all layers
        (and the rows of the degree-1 dual layers) may take (default half the physical
        memory); random_state : seed of the dual subset.
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
    degrees, K = _check_args(
        degrees, cv, degree1, degree2, dual_rows, verbose, split, test, backend, precision
    )
    torch_device = _torch_device(device)
    cache = open_cache(cache, layers=layers)
    names = cache.names
    n = cache.n_rows
    if n < 0:
        raise CacheError(f"{cache.description}: the number of rows is unknown.")
    n_test = _n_test_rows(split, n)
    n_train = n - n_test
    items = read_targets(targets, cache)
    test_cache, test_items = None, None
    if test is not None:
        test_cache, test_items = open_test_set(test, items, cache)
        n_test = test_cache.n_rows
    tlist = prepare_targets(items, test_items, task, n_train, n_test)
    Y = np.hstack([t.codes for t in tlist])
    folds = _folds(K, n_train, fold_ids)
    K_eff = max(K, 1)
    routes, accumulate, dual_layers = _plan_routes(cache, names, degrees, cv, Y.shape[1], K_eff,
                                                   n_train, folds, fit_intercept, degree1,
                                                   degree2, dual_rows, stats_memory)  # fmt: skip
    subset = _dual_subset(dual_layers, dual_rows, n_train, random_state)
    # the rows the pass copies out, per layer: all training rows for a dual degree-1 probe,
    # else the degree-2 dual route's subset
    gathers = {lay: subset for lay in dual_layers}
    gathers.update({lay: np.arange(n_train) for lay in names
                    if routes.get((lay, 1), "primal") != "primal"})  # fmt: skip
    # ------------------------------------------------------------ the pass
    t_pass = time.perf_counter()
    if cache.is_dask:
        stats, sub_rows = pass_dask(
            cache, names, n_train, Y, folds, K_eff, accumulate, gathers, backend, precision,
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
            gathers,
            dual_layers,
            backend,
            memory_budget,
            verbose,
            torch_device,
            precision,
        )
    t_solve = time.perf_counter()
    # ------------------------------------------------------------ solve
    common = dict(alphas=alphas, cv=cv, fit_intercept=fit_intercept, metric=metric, backend=backend)
    probes = solve_probes(
        names, degrees, routes, stats, sub_rows, subset, Y, folds, tlist, common, gamma, verbose
    )
    t_test = time.perf_counter()
    # ------------------------------------------------------------ test rows
    scores: dict = {}
    if n_test:
        source = test_cache if test_cache is not None else cache
        start = 0 if test_cache is not None else n_train
        scores = score_test_rows(
            source, names, start, start + n_test, tlist, degrees, probes, memory_budget, verbose
        )
    t_end = time.perf_counter()
    # ------------------------------------------------------------ table, banks
    selected = _select_degrees(names, degrees, tlist, probes)
    n_dual = 0 if subset is None else len(subset)
    rows = _table_rows(
        names, degrees, tlist, probes, scores, routes, selected, n_train, n_dual, n_test
    )
    _warn_edges(rows)
    banks = _banks(names, tlist, probes, selected, cv)
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


# ---------------------------------------------------------------------------------- checks
def _check_args(
    degrees: Any,
    cv: Any,
    degree1: str,
    degree2: str,
    dual_rows: Any,
    verbose: Any,
    split: Any,
    test: Any,
    backend: str,
    precision: Any,
) -> tuple[tuple, int]:
    """(the degrees as a tuple, K: the number of folds, 1 for GCV), or a ParameterError for
    the first argument out of its domain (the arguments that need the cache are checked once it
    is open)."""
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
    for name, value in (("degree1", degree1), ("degree2", degree2)):
        if not isinstance(value, str) or value not in _ROUTES:
            raise ParameterError(f"sweep: {name} must be one of {_ROUTES}, got {value!r}.")
    if isinstance(dual_rows, bool) or not isinstance(dual_rows, (int, np.integer)) or dual_rows < 2:
        raise ParameterError(f"sweep: dual_rows must be an integer >= 2, got {dual_rows!r}.")
    if verbose not in (None, True, False):
        raise ParameterError(f"sweep: verbose must be None, True or False, got {verbose!r}.")
    if test is not None and split is not None:
        raise ParameterError("sweep: pass split= or test=, not both.")
    if backend not in ("auto", "rust", "numpy"):
        raise ParameterError(f"sweep: backend must be 'auto', 'rust' or 'numpy', got {backend!r}.")
    if not isinstance(precision, str) or precision not in ("auto", "float64", "float32"):
        raise ParameterError(
            f"sweep: precision must be 'auto', 'float64' or 'float32', got {precision!r}."
        )
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


def _torch_device(device: Any) -> Any:
    """The torch device to accumulate on (None: the host), or a ParameterError."""
    if device is None:
        return None
    from .backends import torch_backend

    torch_backend()  # ImportError naming the torch extra
    import torch

    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ParameterError(f"sweep: device must be a torch device, got {device!r}.") from None


# ---------------------------------------------------------------------------------- plan
def _folds(K: int, n_train: int, fold_ids: Any) -> Optional[np.ndarray]:
    """The fold of each training row for K-fold (K > 1): row i in fold i % K, or `fold_ids`
    checked; None for GCV."""
    from ._validation import fold_assignment

    return fold_assignment(K, n_train, fold_ids, rows="training rows", prefix="sweep: ",
                           error=ParameterError)  # fmt: skip


def _plan_routes(
    cache: ActivationCache,
    names: list,
    degrees: tuple,
    cv: Any,
    k_total: int,
    K_eff: int,
    n_train: int,
    folds: Optional[np.ndarray],
    fit_intercept: bool,
    degree1: str,
    degree2: str,
    dual_rows: int,
    stats_memory: Optional[float],
) -> tuple[dict, dict, list]:
    """(routes: {(layer, degree): "primal" or "dual (m rows)"}, accumulate: {layer: the degrees
    whose statistics the pass accumulates}, the degree-2 dual route's layers), with a
    MemoryError when the statistics (and the rows a dual degree-1 probe keeps, n_train x d
    each) would not fit `stats_memory` (default half the physical memory)."""
    limit = float(stats_memory) if stats_memory is not None else 0.5 * physical_memory()
    need = 0.0
    routes: dict = {}
    accumulate: dict = {lay: [] for lay in names}  # layer -> degrees accumulated in the pass
    if 1 in degrees:
        for lay in names:
            d = cache[lay].n_features
            if linear_route(degree1, n_train, d, folds, fit_intercept) == "dual":
                routes[(lay, 1)] = f"dual ({n_train} rows)"
                need += float(n_train) * d * np.dtype(cache[lay].out_dtype).itemsize
            else:
                routes[(lay, 1)] = "primal"
                accumulate[lay].append(1)
                need += _stats_bytes(d, k_total, K_eff)
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
            f"sweep: the statistics (and rows) of {len(names)} layer(s) need about "
            f"{need / 2**30:.1f} GiB, "
            f"over stats_memory={limit / 2**30:.1f} GiB; sweep fewer layers at a time."
        )
    return routes, accumulate, dual_layers


def _dual_subset(
    dual_layers: list, dual_rows: int, n_train: int, random_state: Optional[int]
) -> Optional[np.ndarray]:
    """The training rows the dual route fits on (sorted, drawn uniformly at random with seed
    `random_state`; all of them when there are at most `dual_rows`), or None without a dual
    layer."""
    subset = None
    if dual_layers:
        m = min(int(dual_rows), n_train)
        rng = np.random.default_rng(random_state)
        subset = (
            np.arange(n_train) if m == n_train else np.sort(rng.choice(n_train, m, replace=False))
        )
    return subset


# ---------------------------------------------------------------------------------- results
def _select_degrees(names: list, degrees: tuple, tlist: list[Target], probes: dict) -> dict:
    """{(layer, target name): the degree whose probe has the best CV score (a non-finite score
    counts as -inf; the lower degree wins a tie)}."""
    selected = {}
    for lay in names:
        for t in tlist:
            cands = [(probes[(lay, deg, t.name)].best_score_, -deg, deg) for deg in degrees]
            cands = [(s if np.isfinite(s) else -np.inf, a, deg) for s, a, deg in cands]
            selected[(lay, t.name)] = max(cands)[2]
    return selected


def _table_rows(
    names: list,
    degrees: tuple,
    tlist: list[Target],
    probes: dict,
    scores: dict,
    routes: dict,
    selected: dict,
    n_train: int,
    n_dual: int,
    n_test: int,
) -> list[dict]:
    """One row of the results table per (layer, degree, target), in that order (a dual
    probe's training rows: all of them at degree 1, the degree-2 subset at degree 2)."""
    rows = []
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
                        "n_train": n_dual if deg == 2 and routes[(lay, 2)] != "primal"
                        else n_train,
                        "alpha": float(est.alpha_),
                        "gamma": float(est.gamma_) if deg == 2 else None,
                        "cv": est._cv_name(),
                        "cv_score": float(est.best_score_),
                        "test_metric": sc.get("metric"),
                        "test_score": sc.get("score"),
                        "test_auroc": sc.get("auroc"),
                        "n_test": n_test or None,
                        "selected": selected[(lay, t.name)] == deg,
                        "at_grid_edge": grid_edge(est),
                    }
                )
    return rows


def _banks(names: list, tlist: list[Target], probes: dict, selected: dict, cv: Any) -> dict:
    """{layer: a ProbeBank of each target's probe at its selected degree}."""
    banks = {}
    for lay in names:
        chosen = {t.name: selected[(lay, t.name)] for t in tlist}
        banks[lay] = ProbeBank(
            {t.name: probes[(lay, chosen[t.name], t.name)] for t in tlist},
            metadata={"layer": json_name(lay), "degrees": chosen, "cv": str(cv)},
        )
    return banks


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

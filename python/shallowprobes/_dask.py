"""Dask arrays in, sufficient statistics out: per-block statistics on the workers, summed by
Dask's tree reduction, the solve once on the client.

Used by every estimator's `fit`, by `SufficientStats.update` and by `shallowprobes.sweep`
when they are given ``dask.array`` inputs. Nothing here is cluster code: the graph is an
ordinary ``map_blocks`` (one task per row block: the Rust core accumulates that block's
statistics where the block lives) followed by ``dask.array.reduction`` (a tree of exact
merges, ``split_every`` blocks at a time), computed by whatever scheduler is active: threads
by default, or a ``dask.distributed`` cluster when a Client exists. The client receives only
the merged statistics (O(K d^2) floats for degree 1), never a row block -- except where the
rows are the smaller of the two: a linear probe with fewer rows than features (its dual
route, n d floats; `_rows_for_the_dual_route`) and the rows a sweep's dual routes copy out.

K-fold CV: the fold of row i is ``i % K`` with i the *global* row index, computed inside each
block from the block's position in the array, so the statistics (and the probe) equal those
of the in-memory fit. ``fold_ids`` given as an array are aligned with the row blocks instead.

Dask is an optional dependency (``pip install 'shallowprobes[dask]'``, i.e. dask[array] and,
for clusters, distributed); it is imported only when a dask array is passed.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import numpy as np

from .errors import ParameterError, ShallowProbesError
from .solve.stats import SufficientStats
from .threads import commit_guard

__all__ = ["is_dask_array", "compute_stats", "stats_graph", "fit_estimator", "update_stats"]

SPLIT_EVERY = 8  # blocks merged per node of the reduction tree
_HOST_BACKENDS = ("auto", "rust", "numpy")


def is_dask_array(x: Any) -> bool:
    """Whether x is a dask array (without importing dask when it is not loaded)."""
    if "dask.array" not in sys.modules:
        return False
    import dask.array as da

    return isinstance(x, da.Array)


def _dask_array():
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover - only reached with a dask-like object
        raise ImportError(
            "Dask inputs need dask: pip install 'shallowprobes[dask]' (dask[array], distributed)"
        ) from None
    return da


def _check_backend(backend: str, owner: str) -> None:
    if backend not in _HOST_BACKENDS:
        raise ParameterError(
            f"{owner}: dask arrays are accumulated on the workers by the host backends "
            f"{_HOST_BACKENDS}; backend={backend!r} is not available for them."
        )


def as_rows(X: Any, name: str = "X") -> Any:
    """X as a 2-D dask array with known row chunks and one column chunk."""
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D dask array (n_samples, n_features), got shape {X.shape}."
        )
    if any(np.isnan(c) for c in X.chunks[0]):
        X = X.compute_chunk_sizes()  # block lengths only (ints come back, not rows)
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported; pass real-valued activations.")
    if X.dtype.kind not in "fiub":
        raise TypeError(f"{name} has unsupported dtype {X.dtype}; pass float32 or float64.")
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X


def _aligned(arr: Any, row_chunks: tuple, name: str) -> Any:
    """arr (numpy or dask, (n,) or (n, k)) as a 2-D dask array with `row_chunks` row blocks
    (a 1-D arr becomes one column: map_blocks aligns arrays on their trailing axes)."""
    da = _dask_array()
    if arr.ndim == 1:
        arr = arr[:, None]
    if is_dask_array(arr):
        if any(np.isnan(c) for c in arr.chunks[0]):
            arr = arr.compute_chunk_sizes()
        if arr.shape[0] != sum(row_chunks):
            raise ValueError(f"{name} has {arr.shape[0]} rows but X has {sum(row_chunks)}.")
        return arr.rechunk((row_chunks,) + (-1,) * (arr.ndim - 1))
    arr = np.asarray(arr)
    if arr.shape[0] != sum(row_chunks):
        raise ValueError(f"{name} has {arr.shape[0]} rows but X has {sum(row_chunks)}.")
    return da.from_array(arr, chunks=(row_chunks,) + (-1,) * (arr.ndim - 1))


# ---------------------------------------------------------------------------------- graph
class _Group:
    """The statistics of one row range, one per degree (an opaque object inside the dask
    graph: numpy would unpack a tuple stored into an object array)."""

    __slots__ = ("stats",)

    def __init__(self, stats: tuple) -> None:
        self.stats = tuple(stats)

    def __sizeof__(self) -> int:  # what dask's memory accounting sees
        return 64 + sum(
            getattr(s, f).nbytes
            for s in self.stats
            for f in ("count", "sum_x", "sum_y", "xtx", "xty", "yty")
            if getattr(s, f) is not None
        )

    def merge(self, other: _Group) -> _Group:
        return _Group(a.merge(b) for a, b in zip(self.stats, other.stats))


def _block_stats(
    X, *rest, n_folds, degrees, backend, has_y, has_folds, row_offset, label, precision="auto",
    block_info=None,
):
    """One row block -> a 1-element object array holding a tuple of SufficientStats (one per
    degree). Runs on a worker; the Rust core reads the block in place (float16 blocks as raw
    bits for degree 1, see `SufficientStats.precision`)."""
    (start, stop) = block_info[0]["array-location"][0]
    rest = list(rest)
    Y = rest.pop(0) if has_y else None
    folds = rest.pop(0)[:, 0] if has_folds else None
    if folds is None and n_folds > 1:
        folds = (np.arange(row_offset + start, row_offset + stop) % n_folds).astype(np.int64)
    out = np.empty(1, dtype=object)
    try:
        out[0] = _Group(
            SufficientStats(n_folds, backend, degree=deg, precision=precision).update(
                X, Y, fold_ids=folds
            )
            for deg in degrees
        )
    except ShallowProbesError as exc:
        raise type(exc)(f"{label}, rows {start}:{stop}: {exc}") from None
    return out


def _flatten(x: Any):
    if isinstance(x, (list, tuple)):
        for e in x:
            yield from _flatten(e)
    elif isinstance(x, np.ndarray) and x.dtype == object:
        for e in x.ravel():
            yield from _flatten(e)
    else:
        yield x


def _merge(x: Any) -> _Group:
    """Merge, in block order, a nested list of per-block groups of statistics."""
    items = list(_flatten(x))
    acc = items[0]
    for item in items[1:]:
        acc = acc.merge(item)
    return acc


def _chunk(x, axis=None, keepdims=None):
    return x


def _combine(x, axis=None, keepdims=None):
    out = np.empty(1, dtype=object)
    out[0] = _merge(x)
    return out


def _aggregate(x, axis=None, keepdims=None):
    return _merge(x)


def stats_graph(
    X: Any,
    Y: Any = None,
    fold_ids: Any = None,
    *,
    n_folds: int = 1,
    degrees: tuple = (1,),
    backend: str = "auto",
    row_offset: int = 0,
    split_every: int = SPLIT_EVERY,
    label: str = "dask array X",
    precision: str = "auto",
) -> Any:
    """A lazy (0-d, object) dask array whose value holds (``.stats``) a tuple of
    SufficientStats of (X, Y), one per entry of `degrees`. X: 2-D dask array; Y: numpy or
    dask (n, k) or None; fold_ids: numpy or dask (n,) or None (then row i -> fold
    (row_offset + i) % n_folds)."""
    da = _dask_array()
    from dask.base import tokenize

    X = as_rows(X)
    rows = X.chunks[0]
    args = [X]
    if Y is not None:
        if not is_dask_array(Y):
            Y = np.asarray(Y)
            small = Y.astype(np.int8)
            if Y.dtype.kind in "fiu" and np.array_equal(small, Y):
                Y = small  # +-1 class codes travel as int8 (exact; update casts to float64)
        args.append(_aligned(Y, rows, "Y"))
    if fold_ids is not None:
        args.append(_aligned(fold_ids, rows, "fold_ids"))
    token = tokenize(*args, n_folds, tuple(degrees), backend, row_offset, label, precision)
    blocks = da.map_blocks(
        _block_stats,
        *args,
        n_folds=int(n_folds),
        degrees=tuple(degrees),
        backend=backend,
        has_y=Y is not None,
        has_folds=fold_ids is not None,
        row_offset=int(row_offset),
        label=label,
        precision=precision,
        dtype=object,
        drop_axis=1,
        chunks=((1,) * len(rows),),
        meta=np.empty(0, dtype=object),
        name=f"shallowprobes-block-stats-{token}",
    )
    return da.reduction(
        blocks,
        _chunk,
        _aggregate,
        combine=_combine,
        concatenate=False,
        split_every=split_every,
        dtype=object,
        meta=np.empty((), dtype=object),
        name=f"shallowprobes-merge-stats-{token}",
    )


def compute_stats(
    X: Any,
    Y: Any = None,
    fold_ids: Any = None,
    *,
    n_folds: int = 1,
    degree: int = 1,
    backend: str = "auto",
    row_offset: int = 0,
    precision: str = "auto",
) -> SufficientStats:
    """SufficientStats of dask rows X (and targets Y), computed block by block on the
    workers and merged by Dask's tree reduction; only the statistics reach the caller."""
    _check_backend(backend, "SufficientStats")
    (stats,) = (
        stats_graph(
            X,
            Y,
            fold_ids,
            n_folds=n_folds,
            degrees=(degree,),
            backend=backend,
            row_offset=row_offset,
            precision=precision,
        )
        .compute()
        .stats
    )
    return stats


# ---------------------------------------------------------------------------------- entry points
def update_stats(stats: SufficientStats, X: Any, Y: Any, fold_ids: Any) -> SufficientStats:
    """`SufficientStats.update` for dask inputs (all-or-nothing, like the in-memory update)."""
    da = _dask_array()
    if not is_dask_array(X):
        X = da.from_array(np.asarray(X), chunks=(max(1, len(X)), -1))
    if stats._device is not None:
        raise ParameterError("dask rows cannot be added to torch statistics; use .numpy().")
    X = as_rows(X)
    if stats.n_inputs is not None and X.shape[1] != stats.n_inputs:
        raise ValueError(f"X has {X.shape[1]} features but these statistics have {stats.n_inputs}.")
    if Y is not None:
        Y = Y if is_dask_array(Y) else np.asarray(Y)
        if Y.ndim == 1:
            Y = Y[:, None]
        if stats.n_targets is not None and Y.shape[1] != stats.n_targets:
            raise ValueError(
                f"Y has {Y.shape[1]} target column(s) but these statistics hold {stats.n_targets}."
            )
    if fold_ids is not None and not is_dask_array(fold_ids):
        from ._validation import check_fold_ids

        fold_ids = check_fold_ids(fold_ids, X.shape[0], stats.n_folds)
    new = compute_stats(
        X,
        Y,
        fold_ids,
        n_folds=stats.n_folds,
        degree=stats.degree,
        backend=stats.backend,
        row_offset=stats.rows_seen,
        precision=stats.precision,
    )
    merged = new if stats.count is None else stats.merge(new)
    with commit_guard():
        # fresh arrays (merge copies), assigned rather than written into: statistics that
        # share arrays with others (a sweep's probes) never change those others
        for name in (
            "n_inputs",
            "n_features",
            "n_targets",
            "input_shift",
            "shift_x",
            "shift_y",
            "count",
            "sum_x",
            "sum_y",
            "xtx",
            "xty",
            "yty",
        ):
            setattr(stats, name, getattr(merged, name))
        stats.rows_seen += X.shape[0]
    return stats


def _rows_for_the_dual_route(est: Any, X: Any, y: Any, fold_ids: Any, n: int, d: int,
                             K: int) -> Optional[tuple]:  # fmt: skip
    """(X, y, fold_ids) brought to the client, when a linear probe takes its dual route on
    these rows (`probes.linear.linear_route`: fewer rows than features, or solver="dual"),
    else None. With fewer rows than features the rows (n d values) are smaller than one
    fold's statistics (d^2), and the same code fits the same probe as on numpy rows, by the
    same route (LOO and decision-value scoring included)."""
    from ._validation import fold_assignment
    from .probes.linear import LinearRoutes

    if not isinstance(est, LinearRoutes):
        return None
    folds = fold_assignment(K, n, fold_ids)  # the folds `fit` on these rows would assign
    if est._route(n, d, folds) != "dual":
        return None
    return X.compute(), (y.compute() if is_dask_array(y) else y), fold_ids


def fit_estimator(est: Any, X: Any, y: Any, fold_ids: Any = None) -> Any:
    """`fit` of a probe on dask rows: statistics on the workers, the solve on the client.

    Supports what can be solved from statistics alone: degree 1 and degree 2 on the primal
    route, with cv="gcv" or K-fold and scoring="squared_error". LOO, decision-value scoring
    (accuracy/AUROC), the degree-2 dual route and CP probes need the rows themselves and
    raise a ParameterError saying what to do instead. A linear probe whose route is the dual
    one (fewer rows than features, or solver="dual") brings the rows to the client and fits
    there (`_rows_for_the_dual_route`). The targets y (n values) may be numpy or dask;
    they are small and are brought to the client to build the class codes.
    """
    from ._validation import fold_assignment
    from .probes.cp import CPProbeBase
    from .probes.quadratic import QuadraticProbeBase
    from .solve import features as _quadratic
    from .solve.degree2 import format_bytes

    owner = type(est).__name__
    if isinstance(est, CPProbeBase):
        raise ParameterError(
            f"{owner}.fit does not take dask arrays: a CP probe alternates between ridge "
            "problems and needs several passes over the rows in memory. Fit it on a computed "
            "subset (X[:m].compute()), or use QuadraticProbe (exact, fitted from statistics)."
        )
    _check_backend(est.backend, owner)
    X = as_rows(X)
    n, d = X.shape
    if n < 2:
        raise ValueError(f"{owner} needs at least 2 samples, got {n}.")
    est._check_metric_inputs(d)
    cv_name = est._cv_name()
    K = est._n_folds()
    if is_dask_array(fold_ids):
        fold_ids = fold_ids.compute()  # n integers, needed on the client either way
    if fold_ids is not None or K > n:  # checked before any work (raises as `fit` would)
        fold_ids = fold_assignment(K, n, fold_ids)  # the default folds are formed per chunk
    rows = _rows_for_the_dual_route(est, X, y, fold_ids, n, d, K)
    if rows is not None:
        return est.fit(*rows)
    if cv_name == "loo":
        raise ParameterError(
            f"{owner}(cv='loo') needs the rows for its leverages; with dask arrays use "
            "cv='gcv' or an integer number of folds (exact K-fold from statistics)."
        )
    if est._scoring() != "squared_error":
        raise ParameterError(
            f"{owner}(scoring={est._scoring()!r}) needs held-out decision values of the rows; "
            "with dask arrays use scoring='squared_error'."
        )
    if is_dask_array(y):
        y = y.compute()  # the targets (n values), not rows of X
    Y, _, state = est._prepare_targets(y, n, first=True)
    degree = 1
    if isinstance(est, QuadraticProbeBase):
        degree = 2
        p = _quadratic.n_features(d)
        need, limit = est._bytes_primal(p), est._memory_limit()
        if est.solver == "dual" or need > limit:
            raise ParameterError(
                f"{owner}.fit on dask arrays uses the primal route (statistics of the "
                f"p={p:,} degree-2 features, about {format_bytes(need)}; memory_limit "
                f"{format_bytes(limit)}); solver={est.solver!r}. The dual route needs the rows "
                "in memory: fit on a computed subset, or use shallowprobes.sweep(...), whose "
                "degree-2 'dual' route gathers a bounded row subset."
            )
    # An in-memory fit converts float16 rows to float32 before its statistics (so "auto" is
    # the float64 Gram there); the dask fit does the same arithmetic, so both give one probe.
    precision = getattr(est, "precision", "auto")
    precision = "float64" if precision == "auto" else precision
    stats = compute_stats(X, Y, fold_ids, n_folds=K, degree=degree, backend=est.backend,
                          precision=precision)  # fmt: skip
    stats.precision = getattr(est, "precision", "auto")
    solution = est._solve(stats, rows=None)
    with commit_guard():
        est._stats = stats
        est._solution_cache = solution
        est._target_state = state
        est.n_features_in_ = d
    return est

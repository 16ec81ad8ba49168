"""One pass over an activation cache: every row block of every layer read once and fed to all
of that layer's statistics (the heart of `sweep`), locally, on a torch device, or as one Dask
graph; plus the progress bars of long work.

Half-precision layers. On the host with the Rust core, float16 / bfloat16 blocks reach the
degree-1 statistics as their raw 16-bit patterns (`backends.rust_kernels.HalfRows`): the core
decodes them inside its staging loop, so the layer is read once, at memory bandwidth, with no
float32 copy. With precision="auto" those statistics are accumulated from float32 block Grams
(float64 sums; the error bound is in docs/design.md §8 and far below the storage's own
rounding); precision="float64" gives the exact float64 path, equal to converting the block to
float32 first. A block is converted to float32 (once, and only then) when degree-2 statistics
or the dual route's row subset need it.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import numpy as np

from .backends import get_backend
from .backends.rust_kernels import HalfRows
from .caches import DEFAULT_MEMORY_BUDGET, ActivationCache
from .caches.segments import convert_into
from .errors import ShallowProbesError
from .solve.stats import SufficientStats

HALF_STORAGES = ("float16", "bfloat16")


# ---------------------------------------------------------------------------------- progress
class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(verbose: Optional[bool], total: int, desc: str, unit: str) -> Any:
    """A tqdm bar, shown when verbose=True, or verbose=None and stderr is a terminal; a
    silent stand-in otherwise, or when tqdm is not installed (it is optional)."""
    show = verbose if verbose is not None else bool(getattr(sys.stderr, "isatty", lambda: False)())
    if not show:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, dynamic_ncols=True, leave=False)


# ---------------------------------------------------------------------------------- blocks
def on_device(raw: np.ndarray, storage: str, device: Any) -> Any:
    """A stored block as a torch tensor on `device`, still in its stored dtype."""
    import warnings

    import torch

    with warnings.catch_warnings():  # memory-mapped blocks are read-only; never written
        warnings.simplefilter("ignore", UserWarning)
        if storage == "bfloat16":
            return (
                torch.from_numpy(np.ascontiguousarray(raw).view(np.int16))
                .to(device)
                .view(torch.bfloat16)
            )
        return torch.from_numpy(np.ascontiguousarray(raw)).to(device)


class _HostBlock:
    """A stored block and the forms its consumers read: raw bits for the degree-1 statistics
    of a half-precision layer on the Rust core, else a float32/float64 array (converted once,
    on first use)."""

    def __init__(self, raw: np.ndarray, storage: str, out_dtype: np.dtype, raw_bits: bool):
        self.raw, self.storage, self.out_dtype = raw, storage, out_dtype
        self.raw_bits = raw_bits and storage in HALF_STORAGES
        self._converted: Optional[np.ndarray] = None

    def converted(self) -> np.ndarray:
        if self.storage not in HALF_STORAGES:
            return self.raw
        if self._converted is None:
            out = np.empty(self.raw.shape, dtype=self.out_dtype)
            convert_into(self.raw, self.storage, out)
            self._converted = out
        return self._converted

    def for_degree(self, degree: int) -> Any:
        if degree == 1 and self.raw_bits:
            return HalfRows(self.raw.view(np.uint16), self.storage)
        return self.converted()


# ---------------------------------------------------------------------------------- passes
def pass_local(
    cache: ActivationCache,
    names,
    n_train,
    Y,
    folds,
    K,
    accumulate,
    gathers,
    wide_checks,
    backend,
    memory_budget=DEFAULT_MEMORY_BUDGET,
    verbose=None,
    device=None,
    precision: str = "auto",
):
    """One pass over the training rows: every block of every layer read once, fed to all of
    that layer's statistics, and the rows gathers[layer] (sorted training-row indices) copied
    out for the dual routes. device: accumulate with torch there (blocks moved as stored),
    statistics brought back to the host at the end. The copied rows are checked for the
    magnitude range of degree-2 statistics at the layers in `wide_checks` (the degree-2 dual
    layers), of degree 1 elsewhere. Returns ({(layer, degree): statistics}, {layer: rows})."""
    kind = backend if device is None else "torch"
    raw_bits = device is None and get_backend(backend).name == "rust"
    stats = {
        (lay, deg): SufficientStats(K, kind, degree=deg, precision=precision)
        for lay in names
        for deg in accumulate[lay]
    }
    sub_rows = {
        lay: np.empty((rows.size, cache[lay].n_features), dtype=cache[lay].out_dtype)
        for lay, rows in gathers.items()
    }
    bar = progress_bar(verbose, n_train * len(names), "sweep: reading + accumulating", "row")
    try:
        for lay, a, b, raw in cache.iter_blocks(names, 0, n_train, memory_budget, stored=True):
            bar.set_postfix_str(f"layer {lay}")
            layer = cache[lay]
            Yb = Y[a:b]
            fb = None if folds is None else folds[a:b]
            host = _HostBlock(raw, layer.storage, layer.out_dtype, raw_bits)
            dev = None if device is None else on_device(raw, layer.storage, device)
            for deg in accumulate[lay]:
                feed = host.for_degree(deg) if dev is None else dev
                try:
                    stats[(lay, deg)].update(feed, Yb, fold_ids=fb)
                except (ShallowProbesError, ValueError) as exc:
                    raise type(exc)(
                        f"layer {lay!r} ({layer.where_rows(a, b)}), rows {a}:{b}: {exc}"
                    ) from None
            if lay in sub_rows:
                subset = gathers[lay]
                lo, hi = np.searchsorted(subset, [a, b])
                if hi > lo:
                    sub_rows[lay][lo:hi] = host.converted()[subset[lo:hi] - a]
            del dev, host
            bar.update(b - a)
    finally:
        bar.close()
    if device is not None:
        stats = {key: s.numpy() for key, s in stats.items()}
        for s in stats.values():
            s.backend = backend  # solved on the host
    if sub_rows:
        from ._validation import check_X

        for lay, rows in sub_rows.items():
            try:
                check_X(rows, degree=2 if lay in wide_checks else 1, min_samples=2)
            except ShallowProbesError as exc:
                raise type(exc)(f"layer {lay!r} ({cache[lay].where}): {exc}") from None
    return stats, sub_rows


def pass_dask(
    cache: ActivationCache,
    names,
    n_train,
    Y,
    folds,
    K,
    accumulate,
    gathers,
    backend,
    precision: str = "auto",
):
    """The pass as one Dask graph: per layer, one task per row block computing all of that
    layer's statistics (all degrees, all targets), merged by Dask's tree reduction; the rows
    gathers[layer] come back to the client (the dual probes' fits check them)."""
    import dask

    from ._dask import as_rows, stats_graph

    lazy = {}
    for lay in names:
        X = as_rows(cache[lay].dask[:n_train], f"layer {lay!r}")
        if accumulate[lay]:
            lazy[("stats", lay)] = stats_graph(
                X,
                Y,
                folds,
                n_folds=K,
                degrees=tuple(accumulate[lay]),
                backend=backend,
                label=f"layer {lay!r}",
                precision=precision,
            )
        if lay in gathers:
            lazy[("rows", lay)] = X[gathers[lay]]
    try:
        values = dask.compute(*lazy.values())
    except ShallowProbesError as exc:
        raise type(exc)(f"{cache.description}: {exc}") from None
    stats, sub_rows = {}, {}
    for key, value in zip(lazy, values):
        kind, lay = key
        if kind == "stats":
            for deg, s in zip(accumulate[lay], value.stats):
                stats[(lay, deg)] = s
        else:
            rows = np.asarray(value)
            if rows.dtype == np.float16:
                rows = rows.astype(np.float32)
            sub_rows[lay] = rows
    return stats, sub_rows

"""A cache's layers and the cache itself: `Layer` (one layer's segments concatenated along
rows, read block by block and converted to float32 / float64) and `ActivationCache` (the
layers of one cache, all with the same rows, read under a memory budget or handed to Dask).

Kept apart from the file readers (`caches.files`) and from `open_cache` (`caches.sources`):
these classes read only the segments they are given; finding those in a path or an array is
the readers' concern.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

import numpy as np

from ..errors import CacheError
from .segments import ITEMSIZE, Segment, convert_into, storage_name

DEFAULT_MEMORY_BUDGET = 512 << 20  # bytes of row data held by one read (stored + converted)


class Layer:
    """One layer of a cache: its segments concatenated along rows.

    Attributes: name, segments, n_rows, n_features, storage (the stored dtype name), and
    `dask` (a dask array when the layer is one; then it has no segments).
    """

    def __init__(
        self,
        name: Any,
        segments: Sequence[Segment] = (),
        *,
        dask: Any = None,
        storage: Optional[str] = None,
    ) -> None:
        self.name = name
        self.segments = list(segments)
        self.dask = dask
        if dask is not None:
            if len(dask.shape) != 2:
                raise CacheError(
                    f"dask array for layer {name!r} must be 2-D (n, d), got shape {dask.shape}."
                )
            self.n_rows, self.n_features = (int(s) if not math.isnan(s) else -1 for s in dask.shape)
            self.storage = storage or storage_name(dask.dtype, "dask array", name)
            self.offsets = np.array([0, self.n_rows])
            return
        if not self.segments:
            raise CacheError(f"layer {name!r} has no data (no files or arrays).")
        widths = {s.n_features for s in self.segments}
        if len(widths) > 1:
            detail = ", ".join(f"{s.where}: d={s.n_features}" for s in self.segments)
            raise CacheError(f"layer {name!r}: shards have different widths ({detail}).")
        kinds = {s.storage for s in self.segments}
        if len(kinds) > 1:
            detail = ", ".join(f"{s.where}: {s.storage}" for s in self.segments)
            raise CacheError(f"layer {name!r}: shards have different dtypes ({detail}).")
        self.n_features = widths.pop()
        self.storage = kinds.pop()
        self.offsets = np.concatenate(([0], np.cumsum([s.n_rows for s in self.segments])))
        self.n_rows = int(self.offsets[-1])
        if self.n_rows == 0:
            raise CacheError(f"layer {name!r} ({self.where}) has no rows.")

    @property
    def where(self) -> str:
        """Where the layer is stored (its file, first..last shard, or array)."""
        if self.dask is not None:
            return "dask array"
        if len(self.segments) == 1:
            return self.segments[0].where
        return (
            f"{self.segments[0].where} .. {self.segments[-1].where} ({len(self.segments)} shards)"
        )

    def where_rows(self, start: int, stop: int) -> str:
        """The file(s) holding rows [start, stop) (for error messages)."""
        if self.dask is not None:
            return "dask array"
        parts = [
            s.where for s, (a, b) in zip(self.segments, self._bounds()) if a < stop and b > start
        ]
        return ", ".join(parts) if parts else self.where

    def _bounds(self) -> list:
        return list(zip(self.offsets[:-1].tolist(), self.offsets[1:].tolist()))

    @property
    def out_dtype(self) -> np.dtype:
        """The dtype blocks are converted to for the core (float64 stays, else float32)."""
        return np.dtype(np.float64 if self.storage == "float64" else np.float32)

    @property
    def row_bytes(self) -> int:
        """Bytes one row takes in a read: stored entries plus their float conversion."""
        return self.n_features * (ITEMSIZE[self.storage] + self.out_dtype.itemsize)

    def read(self, start: int, stop: int, convert: bool = True) -> np.ndarray:
        """Rows [start, stop) as a float32 (float64 for float64 storage) array, converted
        from the stored dtype here. A float32 block inside one segment is returned as it is
        read (a view of the memory map; the core reads it in place). convert=False: float16
        blocks stay float16 (bfloat16 is always converted: numpy has no bfloat16)."""
        if not 0 <= start <= stop <= self.n_rows:
            raise IndexError(
                f"rows [{start}, {stop}) outside layer {self.name!r} of {self.n_rows} rows"
            )
        if self.dask is not None:
            return np.asarray(self.dask[start:stop].compute(), dtype=self.out_dtype)
        pieces = [
            (s, max(start, a) - a, min(stop, b) - a, max(start, a) - start)
            for s, (a, b) in zip(self.segments, self._bounds())
            if a < stop and b > start
        ]
        if len(pieces) == 1 and self.storage in ("float32", "float64"):
            seg, a, b, _ = pieces[0]
            return self._checked(seg, seg.read(a, b), b - a)
        if len(pieces) == 1 and self.storage == "float16" and convert:
            seg, a, b, _ = pieces[0]  # astype: numpy's fastest float16 -> float32 loop
            return self._checked(seg, seg.read(a, b), b - a).astype(np.float32)
        keep = not convert and self.storage == "float16"
        out = np.empty(
            (stop - start, self.n_features), dtype=np.float16 if keep else self.out_dtype
        )
        for seg, a, b, at in pieces:
            raw = self._checked(seg, seg.read(a, b), b - a)
            convert_into(raw, "float16" if keep else self.storage, out[at : at + (b - a)])
        return out

    def read_stored(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) in the stored dtype (bfloat16 as its uint16 bit patterns), for
        consumers that convert themselves (the torch path moves them to a GPU as stored)."""
        if self.dask is not None:
            raise CacheError(f"layer {self.name!r} is a dask array; compute its blocks instead.")
        pieces = [
            (s, max(start, a) - a, min(stop, b) - a)
            for s, (a, b) in zip(self.segments, self._bounds())
            if a < stop and b > start
        ]
        raws = [self._checked(seg, seg.read(a, b), b - a) for seg, a, b in pieces]
        return raws[0] if len(raws) == 1 else np.concatenate(raws, axis=0)

    def _checked(self, seg: Segment, raw: np.ndarray, rows: int) -> np.ndarray:
        if raw.shape != (rows, self.n_features):
            raise CacheError(
                f"{seg.where}: layer {self.name!r} returned a block of shape {raw.shape}, "
                f"expected ({rows}, {self.n_features}); the file or array changed or is "
                "corrupt."
            )
        return raw

    def __repr__(self) -> str:
        return (
            f"Layer({self.name!r}, n={self.n_rows}, d={self.n_features}, {self.storage}, "
            f"{self.where})"
        )


class _LayerArray:
    """A layer as an array-like for `dask.array.from_array` (blocks read on the workers)."""

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.shape = (layer.n_rows, layer.n_features)
        self.ndim = 2
        # float16 stays float16 (numpy has it); bfloat16 is converted to float32 per block
        self.dtype = np.dtype(np.float16) if layer.storage == "float16" else layer.out_dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        rows, cols = key[0], (key[1] if len(key) > 1 else slice(None))
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            raise IndexError("only contiguous row slices are read")
        return self.layer.read(start, stop, convert=self.dtype != np.float16)[:, cols]


class ActivationCache(Mapping):
    """The layers of one activation cache, all with the same rows: a mapping name -> `Layer`.

    Build one with `open_cache`. `n_rows` is the common number of rows; `read(layer, start,
    stop)` gives converted blocks; `iter_blocks` walks row ranges layer by layer under a
    memory budget; `to_dask()` gives the layers as dask arrays.
    """

    def __init__(self, layers: Mapping[Any, Layer], description: str = "cache") -> None:
        self._layers = dict(layers)
        self.description = description
        if not self._layers:
            raise CacheError(f"{description}: the cache has no layers.")
        rows = {name: layer.n_rows for name, layer in self._layers.items()}
        first = next(iter(self._layers.values()))
        for name, layer in self._layers.items():
            if layer.n_rows != first.n_rows:
                raise CacheError(
                    f"{description}: layers have different row counts: layer {first.name!r} "
                    f"({first.where}) has {first.n_rows} rows but layer {name!r} "
                    f"({layer.where}) has {layer.n_rows}; every layer must hold the same "
                    f"inputs (row counts: {rows})."
                )
        self.n_rows = first.n_rows

    # Mapping protocol
    def __getitem__(self, name: Any) -> Layer:
        if name in self._layers:
            return self._layers[name]
        raise CacheError(
            f"{self.description}: no layer {name!r}; the cache has layers {self.names}."
        )

    def __iter__(self) -> Iterator:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __contains__(self, name: Any) -> bool:
        return name in self._layers

    @property
    def names(self) -> list:
        return list(self._layers)

    @property
    def is_dask(self) -> bool:
        return any(layer.dask is not None for layer in self._layers.values())

    def select(self, layers: Any = None) -> ActivationCache:
        """A cache with only `layers` (names, or None for all), in the order given; a
        CacheError lists every missing name."""
        if layers is None:
            return self
        if isinstance(layers, (str, int, np.integer)):
            layers = [layers]
        wanted = list(layers)
        if not wanted:
            raise CacheError(f"{self.description}: layers= selects no layer.")
        if len(set(map(repr, wanted))) != len(wanted):
            raise CacheError(f"{self.description}: layers= names a layer twice: {wanted}.")
        missing = [w for w in wanted if w not in self._layers]
        if missing:
            raise CacheError(
                f"{self.description}: no layer(s) {missing}; the cache has layers {self.names}."
            )
        return ActivationCache({w: self._layers[w] for w in wanted}, self.description)

    def rows_per_read(
        self, memory_budget: float = DEFAULT_MEMORY_BUDGET, layers: Any = None
    ) -> int:
        """Rows per read such that one read of any of `layers` (stored block + its float
        conversion) fits `memory_budget` bytes; at least 1."""
        if not (
            isinstance(memory_budget, (int, float, np.integer, np.floating))
            and not isinstance(memory_budget, bool)
            and memory_budget > 0
        ):
            from .._params import ParameterError

            raise ParameterError(
                f"memory_budget must be a positive number of bytes, got {memory_budget!r}."
            )
        names = self.names if layers is None else list(layers)
        widest = max(self[n].row_bytes for n in names)
        return max(1, int(memory_budget // widest))

    def read(self, layer: Any, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
        """Rows [start, stop) of `layer`, converted (float32, or float64 for float64)."""
        lay = self[layer]
        return lay.read(start, lay.n_rows if stop is None else stop)

    def iter_blocks(
        self,
        layers: Any = None,
        start: int = 0,
        stop: Optional[int] = None,
        memory_budget: float = DEFAULT_MEMORY_BUDGET,
        stored: bool = False,
    ) -> Iterator[tuple[Any, int, int, np.ndarray]]:
        """Yield (layer name, row start, row stop, converted block), row range by row range
        and, within each, layer by layer: one pass reads every region exactly once and holds
        one block at a time. stored=True: blocks as stored (`Layer.read_stored`)."""
        names = self.names if layers is None else list(layers)
        stop = self.n_rows if stop is None else stop
        step = self.rows_per_read(memory_budget, names)
        for a in range(start, stop, step):
            b = min(stop, a + step)
            for name in names:
                layer = self[name]
                yield name, a, b, (layer.read_stored(a, b) if stored else layer.read(a, b))

    def to_dask(
        self, chunk_rows: Optional[int] = None, memory_budget: float = DEFAULT_MEMORY_BUDGET
    ) -> ActivationCache:
        """The same cache with every layer as a dask array (blocks read where they are
        computed, e.g. on the workers of a cluster sharing the files). chunk_rows defaults to
        the rows of one read under `memory_budget`. float16 layers stay float16; bfloat16
        layers are converted to float32 per block (numpy has no bfloat16)."""
        import dask.array as da

        rows = chunk_rows or self.rows_per_read(memory_budget)
        layers = {}
        for name, layer in self._layers.items():
            if layer.dask is not None:
                layers[name] = layer
                continue
            arr = da.from_array(
                _LayerArray(layer),
                chunks=(rows, layer.n_features),
                name=f"shallowprobes-cache-{name}-{uuid.uuid4().hex}",
                asarray=False,
                fancy=False,
            )
            layers[name] = Layer(name, dask=arr, storage=layer.storage)
        return ActivationCache(layers, self.description + " (dask)")

    def __repr__(self) -> str:
        first = next(iter(self._layers.values()))
        return (
            f"ActivationCache({self.description}: {len(self)} layer(s) {self.names[:6]}"
            f"{'...' if len(self) > 6 else ''}, n={self.n_rows}, d={first.n_features}, "
            f"{first.storage})"
        )

"""Activation caches: read row blocks of every layer, under a memory budget, as stored.

An activation cache holds, for each layer of a model, an ``(n, d)`` matrix of hidden states
(row i = the same input in every layer). It is usually far larger than memory; a probe only
needs one pass over it, because the sufficient statistics add up over row blocks. This module
opens caches and reads them block by block:

* ``.npy`` files, memory-mapped (``np.load(mmap_mode="r")``): one file per layer, or one file
  with a leading layer axis ``[L, n, d]`` (layers named 0..L-1);
* ``.safetensors`` files (the ``safetensors`` package): one 2-D tensor per layer (layers named
  by key) or one stacked ``[L, n, d]`` tensor; float32, float16, bfloat16 or float64. The
  file is opened and validated with ``safetensors.safe_open``; the data are memory-mapped
  with numpy at the offsets of the file's header, because numpy has no bfloat16 (a bfloat16
  tensor is read as its raw uint16 bit patterns and converted per block);
* a directory of shards per layer, ``root/<layer>/*.npy`` or ``*.safetensors`` (one tensor per
  shard), concatenated along rows in sorted order (natural order: ``shard_2`` before
  ``shard_10``; identical to plain sorting for zero-padded names);
* any array-like with ``shape``, ``dtype`` and ``__getitem__`` over row slices (h5py
  datasets, zarr arrays, ``np.memmap``, numpy arrays, CPU torch tensors): the one small
  protocol `RowSource`. Pass a mapping ``{name: array}``, a sequence, or one stacked 3-D
  array. Dask arrays are accepted too and make `shallowprobes.sweep` run on Dask.

Blocks keep the stored dtype until the core consumes them: `Layer.read` converts one block at
a time to float32 (float64 stays float64), so no float32 copy of a whole layer is ever made.
The Rust core accumulating float16 / bfloat16 blocks directly is planned; until then the
conversion of each block to float32 happens here, in numpy (bfloat16: the uint16 bit pattern
shifted into the high half of a float32, exact).

Memory budget: a read never asks for more rows than ``memory_budget`` bytes allow, counting
the stored block *and* its float32 conversion (``rows = budget // (d * (itemsize + 4))``; see
`ActivationCache.rows_per_read`). The default is 512 MiB.

Every problem with a cache raises `shallowprobes.errors.CacheError` (a ValueError) naming the
file and the layer: a missing file or layer, a truncated or corrupt file, an unsupported
dtype, layers whose row counts disagree.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Protocol, Union, runtime_checkable

import numpy as np

from .errors import CacheError

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "RowSource",
    "Segment",
    "Layer",
    "ActivationCache",
    "open_cache",
]

DEFAULT_MEMORY_BUDGET = 512 << 20  # bytes of row data held by one read (stored + converted)

# storage dtype name -> bytes per entry
_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
_SAFETENSORS_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}
_SAFETENSORS_MAX_HEADER = 100 << 20  # the safetensors format's own limit
_CACHE_SUFFIXES = (".npy", ".safetensors")

PathLike = Union[str, "os.PathLike[str]"]


@runtime_checkable
class RowSource(Protocol):
    """What a cache reads from: ``shape`` (n, d), ``dtype`` and ``source[start:stop]`` giving
    those rows as a numpy array (h5py datasets, zarr arrays, np.memmap and numpy arrays
    qualify). A stacked source has shape (L, n, d) and is read as ``source[i, start:stop]``."""

    shape: tuple
    dtype: Any

    def __getitem__(self, key: Any) -> Any: ...


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _storage_name(dtype: Any, where: str, layer: Any, raw_bfloat16: bool = False) -> str:
    """The storage dtype name ("float16", "bfloat16", "float32", "float64") of an array's
    dtype (numpy, ml_dtypes or torch), or a CacheError naming the file and the layer."""
    text = str(dtype).replace("torch.", "")
    if text == "bfloat16":
        return "bfloat16"
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is not None:
        if dt.kind == "f" and dt.itemsize in (2, 4, 8):
            return {2: "float16", 4: "float32", 8: "float64"}[dt.itemsize]
        if raw_bfloat16 and dt.kind in "iu" and dt.itemsize == 2:
            return "bfloat16"
    if text in ("float16", "half", "float32", "float", "float64", "double"):
        return {"half": "float16", "float": "float32", "double": "float64"}.get(text, text)
    raise CacheError(
        f"{where}: layer {layer!r} has dtype {text}, which is not supported; activation caches "
        "must be float16, bfloat16, float32 or float64 (bfloat16 stored as uint16 bit patterns "
        "needs raw_bfloat16=True)."
    )


def _convert_into(raw: Any, storage: str, out: np.ndarray) -> None:
    """Write the stored block `raw` into the float32/float64 block `out` (same shape)."""
    if storage == "bfloat16":
        bits = out.view(np.uint32)
        bits[...] = raw  # the uint16 bit pattern ...
        bits <<= 16  # ... is the high half of the float32 (exact)
    else:
        out[...] = raw


def _as_numpy_block(block: Any, storage: str) -> np.ndarray:
    """A block read from an array-like as numpy (bfloat16 as its uint16 bit patterns)."""
    if type(block).__module__.startswith("torch"):
        import torch

        block = block.detach().cpu()
        if block.dtype == torch.bfloat16:
            return block.view(torch.int16).numpy().view(np.uint16)
        return block.numpy()
    arr = np.asarray(block)
    if storage == "bfloat16" and arr.dtype.kind not in "iu":
        arr = arr.view(np.uint16)  # ml_dtypes.bfloat16 and the like
    return arr


class Segment:
    """A contiguous run of rows of one layer stored in one place: a file (or one tensor of a
    file, or one layer of a stacked file) or an array-like.

    `read(start, stop)` returns rows [start, stop) of this segment *as stored* (bfloat16 as
    its uint16 bit patterns); every read of the cache goes through it (tests count reads by
    wrapping it). Files are opened lazily and reopened after pickling (Dask workers).
    """

    def __init__(
        self,
        where: str,
        n_rows: int,
        n_features: int,
        storage: str,
        *,
        path: Optional[str] = None,
        offset: int = 0,
        shape: Optional[tuple] = None,
        file_dtype: Any = None,
        index: Optional[int] = None,
        array: Any = None,
    ) -> None:
        self.where = where
        self.n_rows = int(n_rows)
        self.n_features = int(n_features)
        self.storage = storage
        self.path = path
        self.offset = offset
        self.shape = shape
        self.file_dtype = file_dtype
        self.index = index
        self._array = array
        self._is_file = array is None

    def _source(self) -> Any:
        if self._array is None:
            if self.file_dtype is None:  # .npy: numpy reads the header
                self._array = np.load(self.path, mmap_mode="r")
            else:  # raw data at an offset (safetensors)
                self._array = np.memmap(
                    self.path,
                    dtype=self.file_dtype,
                    mode="r",
                    offset=self.offset,
                    shape=self.shape,
                )
        return self._array

    def read(self, start: int, stop: int) -> np.ndarray:
        src = self._source()
        block = src[start:stop] if self.index is None else src[self.index, start:stop]
        return _as_numpy_block(block, self.storage)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self._is_file:
            state["_array"] = None  # reopened where it is unpickled
        return state

    def __repr__(self) -> str:
        return f"Segment({self.where}, rows={self.n_rows}, d={self.n_features}, {self.storage})"


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
            self.storage = storage or _storage_name(dask.dtype, "dask array", name)
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
        return self.n_features * (_ITEMSIZE[self.storage] + self.out_dtype.itemsize)

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
            _convert_into(raw, "float16" if keep else self.storage, out[at : at + (b - a)])
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
            from ._params import ParameterError

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


# ---------------------------------------------------------------------------------- files
def _npy_segments(path: Path, name: Any, raw_bfloat16: bool) -> list[tuple[Any, Segment]]:
    """[(layer name, segment)] of one .npy file: one layer for a 2-D array (named `name`),
    L layers named 0..L-1 for a 3-D one."""
    where = str(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            header_end = fh.tell()
    except FileNotFoundError:
        raise CacheError(f"{where}: file not found (layer {name!r}).") from None
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise CacheError(f"{where}: not a valid .npy file (layer {name!r}): {exc}") from None
    storage = _storage_name(dtype, where, name, raw_bfloat16)
    if len(shape) not in (2, 3):
        raise CacheError(
            f"{where}: layer {name!r} has shape {shape}; a cache file holds (n, d) or a stacked "
            "(L, n, d) array."
        )
    need = header_end + int(np.prod(shape)) * dtype.itemsize
    if size < need:
        raise CacheError(
            f"{where}: truncated file (layer {name!r}): its header declares shape {shape} "
            f"({dtype}), {need} bytes, but the file has {size}."
        )
    if fortran and len(shape) == 3:
        raise CacheError(f"{where}: a stacked (L, n, d) array must be C-ordered (layer {name!r}).")
    if len(shape) == 2:
        return [(name, Segment(where, shape[0], shape[1], storage, path=where))]
    return [
        (layer, Segment(f"{where}[{layer}]", shape[1], shape[2], storage, path=where, index=layer))
        for layer in range(shape[0])
    ]


def _safetensors_header(path: Path, name: Any) -> tuple[int, dict]:
    """(offset of the data, {key: info}) of a .safetensors file, validated: opened with
    safetensors.safe_open, then its JSON header checked against the file size."""
    where = str(path)
    try:
        from safetensors import safe_open
    except ImportError:
        raise ImportError(
            "reading .safetensors caches needs the safetensors package: pip install safetensors"
        ) from None
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CacheError(f"{where}: file not found (layer {name!r}).") from None
    try:
        with safe_open(where, framework="numpy") as fh:
            keys = list(fh.keys())
    except Exception as exc:  # safetensors raises its own SafetensorError, OSError, ...
        raise CacheError(
            f"{where}: not a valid .safetensors file (layer {name!r}): {exc}"
        ) from None
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > min(size - 8, _SAFETENSORS_MAX_HEADER):
                raise ValueError(f"header of {n} bytes in a file of {size}")
            header = json.loads(fh.read(n))
    except (ValueError, struct.error, OSError) as exc:
        raise CacheError(f"{where}: corrupt .safetensors header (layer {name!r}): {exc}") from None
    start = 8 + n
    tensors = {}
    for key in keys:
        info = header.get(key)
        try:
            dtype, shape, (a, b) = (
                info["dtype"],
                [int(s) for s in info["shape"]],
                info["data_offsets"],
            )
        except (TypeError, KeyError, ValueError):
            raise CacheError(f"{where}: corrupt .safetensors header entry {key!r}.") from None
        if dtype not in _SAFETENSORS_DTYPES:
            raise CacheError(
                f"{where}: layer {key!r} has dtype {dtype}, which is not supported; activation "
                "caches must be F16, BF16, F32 or F64."
            )
        storage = _SAFETENSORS_DTYPES[dtype]
        nbytes = int(np.prod(shape)) * _ITEMSIZE[storage]
        if b - a != nbytes or a < 0:
            raise CacheError(
                f"{where}: corrupt .safetensors header: tensor {key!r} of shape {shape} ({dtype}) "
                f"needs {nbytes} bytes but its data offsets span {b - a}."
            )
        if start + b > size:
            raise CacheError(
                f"{where}: truncated file: tensor {key!r} (layer {name!r}) ends at byte "
                f"{start + b} but the file has {size}."
            )
        tensors[key] = {"storage": storage, "shape": tuple(shape), "offset": start + a}
    return start, tensors


_FILE_DTYPE = {"float16": "<f2", "bfloat16": "<u2", "float32": "<f4", "float64": "<f8"}


def _safetensors_segments(
    path: Path, name: Any, key: Optional[str] = None, single: bool = False
) -> list[tuple[Any, Segment]]:
    """[(layer name, segment)] of one .safetensors file: one layer per 2-D tensor (named by
    key), or L layers 0..L-1 of one stacked 3-D tensor. single=True (a shard): exactly one
    tensor (or `key`), named `name`."""
    where = str(path)
    _, tensors = _safetensors_header(path, name)
    if key is not None:
        if key not in tensors:
            raise CacheError(
                f"{where}: no tensor {key!r} (layer {name!r}); it has {list(tensors)}."
            )
        tensors = {key: tensors[key]}
    if not tensors:
        raise CacheError(f"{where}: the file holds no tensors (layer {name!r}).")
    if single and len(tensors) > 1:
        raise CacheError(
            f"{where}: a shard must hold one tensor, this one has {list(tensors)} (layer "
            f"{name!r}); pass key= to choose one."
        )
    out = []
    stacked = [k for k, t in tensors.items() if len(t["shape"]) == 3]
    if stacked and (len(tensors) > 1 or single):
        raise CacheError(
            f"{where}: a stacked (L, n, d) tensor ({stacked[0]!r}) must be alone in its file; "
            f"pass key= to choose one (layer {name!r})."
        )
    for k, t in tensors.items():
        shape = t["shape"]
        if len(shape) not in (2, 3):
            raise CacheError(
                f"{where}: tensor {k!r} has shape {list(shape)}; a cache tensor is (n, d) or a "
                "stacked (L, n, d)."
            )
        common = dict(
            path=where, offset=t["offset"], shape=shape, file_dtype=_FILE_DTYPE[t["storage"]]
        )
        if len(shape) == 3:
            for layer in range(shape[0]):
                out.append(
                    (
                        layer,
                        Segment(
                            f"{where}[{k!r}][{layer}]",
                            shape[1],
                            shape[2],
                            t["storage"],
                            index=layer,
                            **common,
                        ),
                    )
                )
        else:
            label = name if single else k
            out.append(
                (label, Segment(f"{where}[{k!r}]", shape[0], shape[1], t["storage"], **common))
            )
    return out


def _file_segments(
    path: Path, name: Any, raw_bfloat16: bool, key: Optional[str], single: bool
) -> list[tuple[Any, Segment]]:
    if path.suffix == ".npy":
        segs = _npy_segments(path, name, raw_bfloat16)
        if single and len(segs) > 1:
            raise CacheError(f"{path}: a shard must be a 2-D (n, d) array (layer {name!r}).")
        return segs
    if path.suffix == ".safetensors":
        return _safetensors_segments(path, name, key, single)
    raise CacheError(
        f"{path}: unsupported cache file type {path.suffix!r} (layer {name!r}); use .npy or "
        ".safetensors files."
    )


def _layers_from_files(paths: Sequence[Path], raw_bfloat16: bool, key: Optional[str]) -> dict:
    layers: dict = {}
    for p in paths:
        for name, seg in _file_segments(p, p.stem, raw_bfloat16, key, single=False):
            if name in layers:
                raise CacheError(
                    f"{p}: layer {name!r} appears in two files "
                    f"({layers[name][0].where} and {seg.where})."
                )
            layers[name] = [seg]
    return {name: Layer(name, segs) for name, segs in layers.items()}


def _sharded_layers(root: Path, raw_bfloat16: bool, key: Optional[str]) -> dict:
    layers = {}
    for sub in sorted(
        (p for p in root.iterdir() if p.is_dir()), key=lambda p: _natural_key(p.name)
    ):
        shards = sorted(
            (p for p in sub.iterdir() if p.suffix in _CACHE_SUFFIXES),
            key=lambda p: _natural_key(p.name),
        )
        if not shards:
            raise CacheError(
                f"{sub}: layer {sub.name!r} has no shard files (*.npy or *.safetensors)."
            )
        segs = []
        for shard in shards:
            segs += [s for _, s in _file_segments(shard, sub.name, raw_bfloat16, key, single=True)]
        layers[sub.name] = Layer(sub.name, segs)
    return layers


def _array_layers(arrays: Any, raw_bfloat16: bool) -> dict:
    """Layers from array-likes: a mapping, a sequence, or one stacked 3-D array."""
    if isinstance(arrays, Mapping):
        items = list(arrays.items())
    elif _is_array_like(arrays) and len(arrays.shape) == 3:
        if _is_dask(arrays):
            return {lay: Layer(lay, dask=arrays[lay]) for lay in range(arrays.shape[0])}
        storage = _storage_name(arrays.dtype, "stacked array", "all", raw_bfloat16)
        _, n, d = arrays.shape
        return {
            lay: Layer(
                lay, [Segment(f"stacked array[{lay}]", n, d, storage, array=arrays, index=lay)]
            )
            for lay in range(arrays.shape[0])
        }
    elif _is_array_like(arrays):
        items = [(0, arrays)]
    else:
        items = list(enumerate(arrays))
    layers = {}
    for name, arr in items:
        if isinstance(arr, (str, os.PathLike)):
            segs = _file_segments(Path(arr), name, raw_bfloat16, None, single=True)
            layers[name] = Layer(name, [s for _, s in segs])
            continue
        if not _is_array_like(arr):
            raise CacheError(
                f"layer {name!r}: {type(arr).__name__} is not an array-like (needs shape, dtype "
                "and row slicing: numpy, memmap, h5py, zarr, dask or torch)."
            )
        if _is_dask(arr):
            layers[name] = Layer(name, dask=arr)
            continue
        where = f"array {name!r}"
        storage = _storage_name(arr.dtype, where, name, raw_bfloat16)
        if len(arr.shape) != 2:
            raise CacheError(
                f"{where}: layer {name!r} has shape {tuple(arr.shape)}; expected (n, d)."
            )
        layers[name] = Layer(name, [Segment(where, arr.shape[0], arr.shape[1], storage, array=arr)])
    return layers


def _is_array_like(obj: Any) -> bool:
    return hasattr(obj, "shape") and hasattr(obj, "dtype") and hasattr(obj, "__getitem__")


def _is_dask(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "dask" and hasattr(obj, "dask")


def open_cache(
    source: Any,
    *,
    layers: Any = None,
    key: Optional[str] = None,
    raw_bfloat16: bool = False,
) -> ActivationCache:
    """Open an activation cache (see the module docs for the layouts).

    source: an `ActivationCache`; a path to a ``.npy`` / ``.safetensors`` file, to a directory
    of per-layer files, or to a directory of per-layer shard directories; a sequence of paths
    (one layer per file, named by stem); a zarr group or path (one layer per array; needs
    zarr); a mapping name -> array-like or path; a sequence of array-likes (named 0, 1, ...);
    or one array-like, 2-D (one layer, named 0) or stacked 3-D (layers 0..L-1). Dask arrays
    are kept as they are (`shallowprobes.sweep` then runs on Dask).

    layers: the layer names to keep (default all). key: the tensor to read from each
    .safetensors file. raw_bfloat16: uint16/int16 arrays hold bfloat16 bit patterns.
    Raises CacheError naming the file and the layer for anything unusable.
    """
    if isinstance(source, ActivationCache):
        return source.select(layers)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise CacheError(f"{path}: no such file or directory (activation cache).")
        if path.is_dir():
            if (
                (path / "zarr.json").exists()
                or (path / ".zgroup").exists()
                or (path / ".zarray").exists()
            ):
                import zarr

                return open_cache(
                    zarr.open(str(path), mode="r"), layers=layers, raw_bfloat16=raw_bfloat16
                )
            subdirs = [p for p in path.iterdir() if p.is_dir()]
            files = sorted(
                (p for p in path.iterdir() if p.suffix in _CACHE_SUFFIXES),
                key=lambda p: _natural_key(p.name),
            )
            if subdirs and files:
                raise CacheError(
                    f"{path}: holds both layer directories ({subdirs[0].name}, ...) and cache "
                    f"files ({files[0].name}, ...); a cache is one or the other."
                )
            if subdirs:
                found = _sharded_layers(path, raw_bfloat16, key)
            elif files:
                found = _layers_from_files(files, raw_bfloat16, key)
            else:
                raise CacheError(
                    f"{path}: no cache files (*.npy, *.safetensors) or layer directories."
                )
        else:
            found = _layers_from_files([path], raw_bfloat16, key)
        return ActivationCache(found, str(path)).select(layers)
    if hasattr(source, "arrays") and hasattr(source, "attrs") and not _is_array_like(source):
        found = {
            name: arr for name, arr in sorted(source.arrays(), key=lambda kv: _natural_key(kv[0]))
        }
        return ActivationCache(_array_layers(found, raw_bfloat16), "zarr group").select(layers)
    if (
        isinstance(source, Sequence)
        and not isinstance(source, (bytes, str))
        and source
        and all(isinstance(s, (str, os.PathLike)) for s in source)
    ):
        return ActivationCache(
            _layers_from_files([Path(s) for s in source], raw_bfloat16, key), "files"
        ).select(layers)
    return ActivationCache(_array_layers(source, raw_bfloat16), "arrays").select(layers)

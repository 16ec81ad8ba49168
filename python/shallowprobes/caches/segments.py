"""What one stored run of rows is: `Segment` (rows of one layer in one file, tensor or
array-like, read as stored), the `RowSource` protocol array-likes satisfy, and the stored
dtypes a cache may hold with their conversion to the float32 / float64 the core consumes.

Kept apart from the layers and the file readers because both build on it: a `Layer`
concatenates segments, and the readers of `.npy` / `.safetensors` files produce them.
Segments are pickled to Dask workers (`Segment.__getstate__` drops an open memory map; it is
reopened there).
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np

from ..errors import CacheError

# storage dtype name -> bytes per entry
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


@runtime_checkable
class RowSource(Protocol):
    """What a cache reads from: ``shape`` (n, d), ``dtype`` and ``source[start:stop]`` giving
    those rows as a numpy array (h5py datasets, zarr arrays, np.memmap and numpy arrays
    qualify). A stacked source has shape (L, n, d) and is read as ``source[i, start:stop]``."""

    shape: tuple
    dtype: Any

    def __getitem__(self, key: Any) -> Any: ...


def storage_name(dtype: Any, where: str, layer: Any, raw_bfloat16: bool = False) -> str:
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


def convert_into(raw: Any, storage: str, out: np.ndarray) -> None:
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

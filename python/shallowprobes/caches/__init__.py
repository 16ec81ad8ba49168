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

# the package's public names, importable from shallowprobes.caches wherever they live
from ..errors import CacheError  # noqa: F401  (the error of every problem with a cache)
from .layers import DEFAULT_MEMORY_BUDGET, ActivationCache, Layer
from .segments import RowSource, Segment
from .sources import PathLike, open_cache  # noqa: F401

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "RowSource",
    "Segment",
    "Layer",
    "ActivationCache",
    "open_cache",
]

"""`open_cache`: from any source it accepts (an ActivationCache, a path to a file or a
directory, a sequence of paths, a zarr group, array-likes, a stacked array, dask arrays) to an
`ActivationCache`.

Kept apart from the file readers (`caches.files`) and the layers (`caches.layers`) because this
is the one place that decides what a source is; the layouts are described in
`shallowprobes.caches`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import CacheError
from .files import CACHE_SUFFIXES, file_segments, layers_from_files, natural_key, sharded_layers
from .layers import ActivationCache, Layer
from .segments import Segment, storage_name

PathLike = Union[str, "os.PathLike[str]"]


def _array_layers(arrays: Any, raw_bfloat16: bool) -> dict:
    """Layers from array-likes: a mapping, a sequence, or one stacked 3-D array."""
    if isinstance(arrays, Mapping):
        items = list(arrays.items())
    elif _is_array_like(arrays) and len(arrays.shape) == 3:
        if _is_dask(arrays):
            return {lay: Layer(lay, dask=arrays[lay]) for lay in range(arrays.shape[0])}
        storage = storage_name(arrays.dtype, "stacked array", "all", raw_bfloat16)
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
            segs = file_segments(Path(arr), name, raw_bfloat16, None, single=True)
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
        storage = storage_name(arr.dtype, where, name, raw_bfloat16)
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
                (p for p in path.iterdir() if p.suffix in CACHE_SUFFIXES),
                key=lambda p: natural_key(p.name),
            )
            if subdirs and files:
                raise CacheError(
                    f"{path}: holds both layer directories ({subdirs[0].name}, ...) and cache "
                    f"files ({files[0].name}, ...); a cache is one or the other."
                )
            if subdirs:
                found = sharded_layers(path, raw_bfloat16, key)
            elif files:
                found = layers_from_files(files, raw_bfloat16, key)
            else:
                raise CacheError(
                    f"{path}: no cache files (*.npy, *.safetensors) or layer directories."
                )
        else:
            found = layers_from_files([path], raw_bfloat16, key)
        return ActivationCache(found, str(path)).select(layers)
    if hasattr(source, "arrays") and hasattr(source, "attrs") and not _is_array_like(source):
        found = {
            name: arr for name, arr in sorted(source.arrays(), key=lambda kv: natural_key(kv[0]))
        }
        return ActivationCache(_array_layers(found, raw_bfloat16), "zarr group").select(layers)
    if (
        isinstance(source, Sequence)
        and not isinstance(source, (bytes, str))
        and source
        and all(isinstance(s, (str, os.PathLike)) for s in source)
    ):
        return ActivationCache(
            layers_from_files([Path(s) for s in source], raw_bfloat16, key), "files"
        ).select(layers)
    return ActivationCache(_array_layers(source, raw_bfloat16), "arrays").select(layers)

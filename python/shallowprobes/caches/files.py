"""The file readers of activation caches: the layers and segments of ``.npy`` files,
``.safetensors`` files, and directories of per-layer shards.

Every reader validates a file's header against its size before any row is read (a truncated or
corrupt file is a CacheError naming the file and the layer), then describes the data as
`Segment` objects that memory-map it lazily. Kept apart from `caches.layers` because reading
these formats is a concern of its own: the layers never look at a file's bytes.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import CacheError
from .layers import Layer
from .segments import ITEMSIZE, Segment, storage_name

_SAFETENSORS_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}
_SAFETENSORS_MAX_HEADER = 100 << 20  # the safetensors format's own limit
CACHE_SUFFIXES = (".npy", ".safetensors")


def natural_key(name: str) -> list:
    """Sort key of a file or directory name that puts ``shard_2`` before ``shard_10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


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
    storage = storage_name(dtype, where, name, raw_bfloat16)
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
        nbytes = int(np.prod(shape)) * ITEMSIZE[storage]
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


def file_segments(
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


def layers_from_files(paths: Sequence[Path], raw_bfloat16: bool, key: Optional[str]) -> dict:
    layers: dict = {}
    for p in paths:
        for name, seg in file_segments(p, p.stem, raw_bfloat16, key, single=False):
            if name in layers:
                raise CacheError(
                    f"{p}: layer {name!r} appears in two files "
                    f"({layers[name][0].where} and {seg.where})."
                )
            layers[name] = [seg]
    return {name: Layer(name, segs) for name, segs in layers.items()}


def sharded_layers(root: Path, raw_bfloat16: bool, key: Optional[str]) -> dict:
    layers = {}
    for sub in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
        shards = sorted(
            (p for p in sub.iterdir() if p.suffix in CACHE_SUFFIXES),
            key=lambda p: natural_key(p.name),
        )
        if not shards:
            raise CacheError(
                f"{sub}: layer {sub.name!r} has no shard files (*.npy or *.safetensors)."
            )
        segs = []
        for shard in shards:
            segs += [s for _, s in file_segments(shard, sub.name, raw_bfloat16, key, single=True)]
        layers[sub.name] = Layer(sub.name, segs)
    return layers

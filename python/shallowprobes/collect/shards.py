"""What a collection writes: pooled rows per input (mean / last / first over the attention mask,
or every token), one safetensors shard per batch and layer written atomically, the manifest
that makes a rerun resume, and the row index of pool="none".
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..errors import (
    CacheError,
    ParameterError,
)
from .inputs import (
    _torch,
)

MANIFEST = "manifest.json"
ROW_INDEX = "rows.npz"
FORMAT = "shallowprobes-collected-activations"
FORMAT_VERSION = 1
_SHARD = "shard_{:06d}.safetensors"
_SHARD_RE = re.compile(r"^shard_\d{6}\.safetensors(\.tmp-.*)?$")


# --------------------------------------------------------------------------------- pooling
def _pool(hidden: Any, mask: Any, pool: str, storage: Any, where: str) -> Any:
    """(B, T, d) states -> (B, d) pooled (or (tokens, d) for "none"), in `storage`."""
    torch = _torch()
    if hidden.dim() == 2:
        if pool == "none":
            raise ParameterError(
                f"{where} gives one vector per input (shape {tuple(hidden.shape)}), so "
                "pool='none' (one row per token) does not apply; pool it as it is with "
                "pool='mean'."
            )
        return hidden.to(storage)
    if hidden.dim() != 3 or hidden.shape[:2] != mask.shape:
        raise ParameterError(
            f"{where} has shape {tuple(hidden.shape)}; expected (batch, tokens, d) matching "
            f"the attention mask {tuple(mask.shape)}, or (batch, d)."
        )
    m = mask.to(hidden.device).bool()
    if pool == "mean":
        acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        w = m.to(acc).unsqueeze(-1)
        pooled = (hidden.to(acc) * w).sum(1) / w.sum(1)
        return pooled.to(storage)
    if pool == "none":
        return hidden[m].to(storage)
    positions = torch.arange(m.shape[1], device=m.device).expand_as(m)
    if pool == "last":
        idx = torch.where(m, positions, -1).max(1).values
    else:  # cls / first
        idx = torch.where(m, positions, m.shape[1]).min(1).values
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx].to(storage)


# -------------------------------------------------------------------------------- manifest
def _read_manifest(root: Path) -> Optional[dict]:
    path = root / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CacheError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CacheError(f"{path}: not a manifest of collect_activations (format {FORMAT!r}).")
    return data


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_manifest(root: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=1, sort_keys=True)
    _write_atomic(root / MANIFEST, lambda p: p.write_text(text, encoding="utf-8"))


def _differences(old: dict, new: dict) -> list[str]:
    diffs = []
    for key in ("texts_sha256", "n_texts", "model", "settings"):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if key == "model" and k == "source":
                    continue  # a path or the loaded model: the parameters say which model
                if a.get(k) != b.get(k):
                    diffs.append(f"{key}.{k}: {a.get(k)!r} on disk, {b.get(k)!r} now")
        elif a != b:
            label = "texts" if key == "texts_sha256" else key
            diffs.append(f"{label}: {a!r} on disk, {b!r} now")
    return diffs


def _remove_shards(root: Path, layer_names: Sequence[str]) -> None:
    for name in layer_names:
        folder = root / name
        if folder.is_dir():
            for f in folder.iterdir():
                if _SHARD_RE.match(f.name):
                    f.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()
    for extra in (ROW_INDEX,):
        if (root / extra).exists():
            (root / extra).unlink()


def load_row_index(out: Union[str, os.PathLike[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(text_id, position) of every row of a pool="none" collection: row i of every layer is
    token `position[i]` (counted from the first non-padding token) of text `text_id[i]`."""
    path = Path(out) / ROW_INDEX
    if not path.exists():
        raise CacheError(
            f"{path}: no row index; it exists for collections with pool='none' (pooled "
            "collections have row i = text i)."
        )
    with np.load(path, allow_pickle=False) as data:
        return np.asarray(data["text_id"]), np.asarray(data["position"])


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    # as dict[str, Any]: numpy's stubs would otherwise match a key against savez's
    # allow_pickle: bool keyword (the names here are fixed array names)
    named: dict[str, Any] = dict(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **named)


def _torch_dtype(name: str) -> Any:
    torch = _torch()
    return getattr(torch, name)


def _shard_done(root: Path, layer_names: Sequence[str], k: int) -> bool:
    return all((root / name / _SHARD.format(k)).is_file() for name in layer_names)


def _write_shard(folder: Path, k: int, tensor: Any) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / _SHARD.format(k), lambda p: save_file({"activations": tensor}, str(p)))

"""Synthetic activation caches written to disk for the cache / sweep / dask tests.

Every writer returns the float64 copies of what it stored (converted independently of the
library: numpy for float16, torch for bfloat16), so tests compare against in-memory fits on
exactly the values in the files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def activations(n: int, d: int, n_layers: int, seed: int = 0):
    """(layers [L, n, d] float64, targets dict): layers share latent factors Z, so targets
    defined on Z are probe-able; offsets make the shifts matter."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 4))
    layers = []
    for lay in range(n_layers):
        A = rng.normal(size=(4, d)) * (0.5 + lay)
        H = Z @ A + 0.7 * rng.normal(size=(n, d)) + rng.normal(0.0, 3.0, d)
        layers.append(H)
    targets = {
        "sign": (Z[:, 0] > 0).astype(np.int64),  # binary, linear
        "xor": np.where(Z[:, 1] * Z[:, 2] > 0, "same", "diff"),  # binary, interaction, strings
        "three": np.argmax(Z[:, :3] @ rng.normal(size=(3, 3)), axis=1),  # multiclass
        "value": Z[:, 3] + 0.3 * Z[:, 0] ** 2 + 0.1 * rng.normal(size=n),  # regression
    }
    return np.stack(layers), targets


def f16(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stored float16 array, its float64 copy)."""
    h = H.astype(np.float16)
    return h, h.astype(np.float64)


def bf16(H: np.ndarray):
    """(stored torch bfloat16 tensor, its float64 copy by torch's own conversion)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(H, dtype=np.float32)).to(torch.bfloat16)
    return t, t.to(torch.float64).numpy()


def save_safetensors(path: Path, tensors: dict) -> None:
    import torch
    from safetensors.torch import save_file

    save_file(
        {
            k: (
                v.contiguous()
                if isinstance(v, torch.Tensor)
                else torch.from_numpy(np.ascontiguousarray(v))
            )
            for k, v in tensors.items()
        },
        str(path),
    )


def write_sharded(root: Path, H: np.ndarray, bounds: list, kinds: list) -> np.ndarray:
    """root/layer_XX/shard_YYY.{npy,safetensors}: layer lay stored as kinds[lay] ("f16-npy",
    "f32-npy", "f16-st", "bf16-st"), split at bounds[lay] (row cut points). Returns the
    float64 copies [L, n, d]."""
    root.mkdir(parents=True, exist_ok=True)
    copies = []
    for lay, (cuts, kind) in enumerate(zip(bounds, kinds)):
        layer_dir = root / f"layer_{lay:02d}"
        layer_dir.mkdir()
        if kind.startswith("bf16"):
            stored, copy = bf16(H[lay])
        elif kind.startswith("f16"):
            stored, copy = f16(H[lay])
        else:
            stored, copy = H[lay].astype(np.float32), H[lay].astype(np.float32).astype(np.float64)
        copies.append(copy)
        edges = [0, *cuts, H.shape[1]]
        for s, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
            # unpadded numbers from 2 on: the natural sort must put shard_2 before shard_10
            name = layer_dir / f"shard_{s * 8}"
            if kind.endswith("npy"):
                np.save(name.with_suffix(".npy"), np.ascontiguousarray(stored[a:b]))
            else:
                save_safetensors(name.with_suffix(".safetensors"), {"hidden": stored[a:b]})
    return np.stack(copies)


def kfold_ids(n: int, K: int) -> np.ndarray:
    return np.arange(n) % K

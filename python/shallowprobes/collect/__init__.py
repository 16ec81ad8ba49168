"""Collect activations from a model into an activation cache: `collect_activations`.

Runs a Hugging Face ``transformers`` model (a local folder, or a model already loaded) or any
``torch.nn.Module`` over a list of texts in batches, under ``torch.inference_mode()``, pools
each layer's token states per input and writes every requested layer straight into a shard
folder that `shallowprobes.caches.open_cache` reads::

    out/
      manifest.json             what was collected, from which texts, model and settings
      rows.npz                  pool="none" only: text_id and token position of every row
      <layer>/shard_000000.safetensors
      <layer>/shard_000001.safetensors  ...   one (rows, d) tensor per shard = per batch

Layers are the hidden states of a transformers model (``output_hidden_states=True``; named
"0" = the embeddings .. "L" = the last layer, as strings, because the cache names layers by
folder) or the outputs of named submodules (``modules=[...]``, forward hooks; named by the
module name). Pooling per input, over the attention mask:

* "mean"  the mean of the non-padding tokens;
* "last"  the last non-padding token (right or left padding alike);
* "cls" / "first"  the first non-padding token;
* "none"  every non-padding token is a row; ``rows.npz`` (`load_row_index`) gives the text
  index and the token position (counted from the text's first token) of every row.

Means are accumulated in float32 (float64 for float64 states) and then stored in the storage
dtype: the dtype the model produces (float16 / bfloat16 are kept), or ``dtype=`` to cast.

Resume: each shard file is written to a temporary name and renamed when complete, and
``manifest.json`` records a hash of the texts, a fingerprint of the model and every setting
that changes the result. A rerun with ``resume=True`` skips the shards already on disk (a
finished collection returns at once); a manifest that disagrees (other texts, model or
settings) raises `CacheError` naming what differs. ``resume=False`` removes the shards of the
earlier run and starts over.

Nothing is ever downloaded: a model or tokenizer path is loaded with
``local_files_only=True``. Needs the ``[hf]`` extra (transformers, torch, safetensors).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..caches import ActivationCache, open_cache
from ..errors import (
    CacheError,
    ParameterError,
    ParameterTypeError,
)
from .inputs import (
    POOLS,
    ModelNotFoundError,
    _call_kwargs,
    _check_int,
    _fingerprint,
    _first_tensor,
    _is_transformers_model,
    _layer_spec,
    _load_model,
    _load_tokenizer,
    _resolve_layers,
    _same_device,
    _storage_dtype,
    _texts_hash,
    _torch,
    _vocab_hash,
    load_texts,
)
from .shards import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    ROW_INDEX,
    _differences,
    _pool,
    _read_manifest,
    _remove_shards,
    _save_npz,
    _shard_done,
    _torch_dtype,
    _write_atomic,
    _write_manifest,
    _write_shard,
    load_row_index,
)

__all__ = [
    "POOLS",
    "MANIFEST",
    "ModelNotFoundError",
    "collect_activations",
    "load_texts",
    "load_row_index",
]

PathLike = Union[str, "os.PathLike[str]"]


# ------------------------------------------------------------------------------------ main
def collect_activations(
    model: Any,
    texts: Any,
    *,
    layers: Any = "all",
    pool: str = "mean",
    out: PathLike,
    batch_size: int = 16,
    max_length: int = 128,
    device: Any = "cpu",
    dtype: Any = None,
    resume: bool = True,
    progress: bool = True,
    tokenizer: Any = None,
    modules: Optional[Sequence[str]] = None,
) -> ActivationCache:
    """Run `model` over `texts` and write the pooled activations of every requested layer
    into the shard folder `out` (see the module docs); return it opened (`open_cache`).

    model : the path of a local Hugging Face model folder (loaded with ``AutoModel``,
        ``local_files_only=True``), a loaded ``transformers`` model, or any ``torch.nn.Module``
        (then with ``modules=``; it is called with the tokenizer's outputs that its forward
        accepts).
    texts : a list of str, or the path of a ``.txt`` (one per line) or ``.jsonl`` ("text"
        field) file.
    layers : "all" (every hidden state, the embeddings included) or indices of
        ``outputs.hidden_states`` (negative from the end). Cache layers are named "0".."L".
    pool : "mean", "last", "cls" / "first" or "none" (see the module docs).
    out : the cache folder (created; reused when resuming).
    batch_size : texts per forward pass; also texts per shard.
    max_length : tokens per text (longer texts are truncated).
    device : where the model runs (a path-loaded model is moved there; a loaded model must
        already be there).
    dtype : storage dtype ("float16", "bfloat16", "float32", "float64" or a torch dtype);
        None keeps the dtype the model computes in.
    resume : skip shards already written by a run with the same texts, model and settings.
    progress : a tqdm progress bar (when tqdm is installed).
    tokenizer : a tokenizer or its path; default: the one saved with the model. Its
        ``padding_side`` is respected.
    modules : names of submodules (as in ``model.named_modules()``) whose outputs to collect
        by forward hooks, instead of hidden states (first tensor of a tuple output).

    Raises ParameterError (bad texts, pool, layer index, module name, sizes), ModelNotFoundError
    (a path that does not exist), CacheError (a manifest that does not match, an `out` that
    holds something else).
    """
    torch = _torch()
    # ------------------------------------------------------------- arguments, before work
    if pool not in POOLS:
        raise ParameterError(f"pool must be one of {POOLS}, got {pool!r}.")
    batch_size = _check_int("batch_size", batch_size)
    max_length = _check_int("max_length", max_length)
    storage_name = _storage_dtype(dtype)
    if not isinstance(resume, bool):
        raise ParameterTypeError(f"resume must be True or False, got {resume!r}.")
    if modules is not None:
        if isinstance(modules, str) or not isinstance(modules, Sequence) or not modules:
            raise ParameterTypeError(
                f"modules must be a non-empty list of module names, got {modules!r}."
            )
        if not all(isinstance(m, str) and m for m in modules):
            raise ParameterTypeError(f"modules must be names (str), got {modules!r}.")
        if len(set(modules)) != len(modules):
            raise ParameterError(f"modules names a module twice: {list(modules)}.")
        if not (isinstance(layers, str) and layers == "all"):
            raise ParameterError(
                "pass layers= (hidden states) or modules= (hooked module outputs), not both."
            )
        layer_spec: Any = None
    else:
        layer_spec = _layer_spec(layers)
    if out is None:
        raise ParameterError("out: the folder to write the cache to is required.")
    root = Path(out).expanduser()
    if root.exists() and not root.is_dir():
        raise CacheError(f"out: {root} is a file; the cache is a folder.")
    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ParameterError(f"device must be a torch device, got {device!r}.") from None
    text_list = load_texts(texts)

    net, tok, where = _load_model(model, tokenizer)
    path_loaded = isinstance(model, (str, os.PathLike))
    if modules is None and not _is_transformers_model(net):
        raise ParameterError(
            f"model: a {type(net).__name__} is not a transformers model, so it has no "
            "hidden states to return; pass modules=[names] to hook submodules."
        )
    if modules is not None:
        known = dict(net.named_modules())
        missing = [m for m in modules if m not in known]
        if missing:
            hints = {m: difflib.get_close_matches(m, list(known), n=3) for m in missing}
            raise ParameterError(
                f"modules: no module(s) {missing} in {type(net).__name__}; close names: "
                f"{hints}. See model.named_modules()."
            )
    tok = _load_tokenizer(tok)
    if path_loaded:
        net.to(torch_device)
    else:
        devices = {p.device for p in net.parameters()}
        if devices and not all(_same_device(d, torch_device) for d in devices):
            raise ParameterError(
                f"device={str(torch_device)!r} but the model's parameters are on "
                f"{sorted(map(str, devices))}; move the model (model.to(...)) or pass that "
                "device."
            )

    n = len(text_list)
    n_shards = (n + batch_size - 1) // batch_size
    settings = {
        "layers": layer_spec,
        "modules": None if modules is None else list(modules),
        "pool": pool,
        "batch_size": batch_size,
        "max_length": max_length,
        "dtype": storage_name,
        "padding_side": getattr(tok, "padding_side", None),
        "tokenizer": type(tok).__name__,
        "tokenizer_vocab": len(tok) if hasattr(tok, "__len__") else None,
        "tokenizer_sha256": _vocab_hash(tok),
    }
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "n_texts": n,
        "texts_sha256": _texts_hash(text_list),
        "model": _fingerprint(net, where),
        "settings": settings,
        "n_shards": n_shards,
        "layer_names": None,
        "storage": None,
        "complete": False,
    }

    # ------------------------------------------------------------------ existing folder
    old = _read_manifest(root) if root.exists() else None
    if old is None and root.exists() and any(root.iterdir()):
        raise CacheError(
            f"out: {root} is not empty and holds no {MANIFEST}; collect into a new or empty "
            "folder (nothing there is overwritten)."
        )
    if old is not None:
        if resume:
            diffs = _differences(old, manifest)
            if diffs:
                raise CacheError(
                    f"out: {root} holds a collection with other inputs, so it cannot be "
                    f"resumed: {'; '.join(diffs)}. Pass resume=False to start over there, or "
                    "another out folder."
                )
            if old.get("complete"):
                return open_cache(root, layers=old["layer_names"])
            manifest["layer_names"] = old.get("layer_names")
            manifest["storage"] = old.get("storage")
        else:
            _remove_shards(root, old.get("layer_names") or [])
            (root / MANIFEST).unlink()
    root.mkdir(parents=True, exist_ok=True)
    if manifest["layer_names"] is not None:
        _write_manifest(root, manifest)
    # else the manifest is written after the first forward pass has resolved the layers, so
    # that a bad layer index leaves no manifest behind

    # ----------------------------------------------------------------------------- run
    hooks: list[Any] = []
    captured: dict[str, list[Any]] = {}
    if modules is not None:
        known = dict(net.named_modules())
        for name in modules:

            def hook(_mod: Any, _inp: Any, output: Any, name: str = name) -> None:
                captured.setdefault(name, []).append(_first_tensor(output, name))

            hooks.append(known[name].register_forward_hook(hook))
    was_training = net.training
    net.eval()
    layer_names: Optional[list[str]] = manifest["layer_names"]
    rows_text: list[np.ndarray] = []
    rows_pos: list[np.ndarray] = []
    bar = _progress(progress, n_shards)
    try:
        with torch.inference_mode():
            for k in range(n_shards):
                chunk = text_list[k * batch_size : (k + 1) * batch_size]
                enc = tok(
                    chunk,
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                mask = enc.get("attention_mask")
                if mask is None:
                    mask = torch.ones_like(enc["input_ids"])
                counts = mask.sum(1)
                if bool((counts == 0).any()):
                    i = int(torch.nonzero(counts == 0)[0, 0]) + k * batch_size
                    raise ParameterError(
                        f"texts: text {i} ({text_list[i][:40]!r}) has no tokens; every input "
                        "needs at least one."
                    )
                if pool == "none":
                    rows_text.append(np.repeat(np.arange(len(chunk)) + k * batch_size,
                                               counts.numpy()))  # fmt: skip
                    rows_pos.append(np.concatenate([np.arange(c) for c in counts.tolist()]))
                if layer_names is not None and _shard_done(root, layer_names, k):
                    bar.update(1)
                    continue
                states = _forward(net, enc, torch_device, modules, captured)
                if layer_names is None:  # first forward: resolve names and storage
                    if modules is None:
                        # hidden-state indices, or module names (keys of the hooks' dict)
                        picked: Sequence[Union[int, str]] = _resolve_layers(
                            layer_spec, len(states)
                        )
                        layer_names = [str(i) for i in picked]
                    else:
                        picked = list(modules)
                        layer_names = list(modules)
                    first = states[picked[0]]
                    store = (
                        _torch_dtype(storage_name) if storage_name else first.dtype
                    )
                    manifest["layer_names"] = layer_names
                    manifest["storage"] = str(store).replace("torch.", "")
                    _write_manifest(root, manifest)
                else:
                    picked = (
                        [int(s) for s in layer_names] if modules is None else list(modules)
                    )
                    store = _torch_dtype(manifest["storage"])
                for name, key in zip(layer_names, picked):
                    pooled = _pool(
                        states[key], mask, pool, store, f"layer {name!r}"
                    ).to("cpu").contiguous()
                    _write_shard(root / name, k, pooled)
                bar.update(1)
    finally:
        bar.close()
        for h in hooks:
            h.remove()
        if was_training:
            net.train()
    assert layer_names is not None
    if pool == "none":
        text_id = np.concatenate(rows_text).astype(np.int64)
        position = np.concatenate(rows_pos).astype(np.int64)
        _write_atomic(
            root / ROW_INDEX,
            lambda p: _save_npz(p, text_id=text_id, position=position),
        )
    manifest["complete"] = True
    _write_manifest(root, manifest)
    return open_cache(root, layers=layer_names)


def _forward(net: Any, enc: Any, device: Any, modules: Any, captured: dict) -> Any:
    """Run one batch; hidden states (a tuple) or {module name: output}."""
    batch = {k: v.to(device) for k, v in enc.items()}
    kwargs = _call_kwargs(net, batch)
    if modules is None:
        outputs = net(**kwargs, output_hidden_states=True, return_dict=True)
        states = getattr(outputs, "hidden_states", None)
        if states is None:
            raise ParameterError(
                f"model: {type(net).__name__} returned no hidden_states with "
                "output_hidden_states=True; pass modules=[names] to hook submodules."
            )
        return tuple(states)
    captured.clear()
    net(**kwargs)
    got = {}
    for name in modules:
        calls = captured.get(name, [])
        if len(calls) != 1:
            raise ParameterError(
                f"modules: module {name!r} ran {len(calls)} times in one forward pass; hook a "
                "module that runs exactly once per forward."
            )
        got[name] = calls[0]
    return got


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(progress: bool, total: int) -> Any:
    if not progress:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc="collect", unit="batch")

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
import hashlib
import inspect
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .caches import ActivationCache, open_cache
from .errors import (
    CacheError,
    ParameterError,
    ParameterIndexError,
    ParameterTypeError,
    ShallowProbesError,
)

__all__ = [
    "POOLS",
    "MANIFEST",
    "ModelNotFoundError",
    "collect_activations",
    "load_texts",
    "load_row_index",
]

POOLS = ("mean", "last", "cls", "first", "none")
MANIFEST = "manifest.json"
ROW_INDEX = "rows.npz"
FORMAT = "shallowprobes-collected-activations"
FORMAT_VERSION = 1
_SHARD = "shard_{:06d}.safetensors"
_SHARD_RE = re.compile(r"^shard_\d{6}\.safetensors(\.tmp-.*)?$")
_DTYPES = {
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float64": "float64",
    "fp64": "float64",
    "double": "float64",
}

PathLike = Union[str, "os.PathLike[str]"]


class ModelNotFoundError(ShallowProbesError, FileNotFoundError):
    """A model (or tokenizer) path given to `collect_activations` does not exist or holds no
    model files. Nothing is downloaded."""


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(
            "collect_activations needs torch and transformers: "
            "pip install 'shallowprobes[hf]'"
        ) from None
    return torch


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ImportError(
            "loading a model or tokenizer needs transformers: pip install 'shallowprobes[hf]'"
        ) from None
    return transformers


# ------------------------------------------------------------------------------------ texts
def load_texts(texts: Any) -> list[str]:
    """The texts as a list of str: a list / tuple / 1-D array of str, or a path to a ``.txt``
    file (one text per line; trailing blank lines are ignored, a blank line inside raises) or
    a ``.jsonl`` file (one JSON object per line with a string field "text")."""
    if isinstance(texts, np.ndarray) and texts.ndim == 1 and texts.dtype.kind in "UO":
        texts = [str(t) if isinstance(t, np.str_) else t for t in texts.tolist()]
    if isinstance(texts, (str, os.PathLike)):
        path = Path(texts)
        if not path.is_file():
            raise ParameterError(
                f"texts: {path} is not a file; pass a list of strings or the path of a .txt "
                "(one text per line) or .jsonl (a 'text' field per line) file."
            )
        lines = path.read_text(encoding="utf-8").splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        out = []
        if path.suffix == ".jsonl":
            for i, line in enumerate(lines, 1):
                if not line.strip():
                    raise ParameterError(f"texts: {path} line {i} is blank.")
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ParameterError(f"texts: {path} line {i} is not JSON: {exc}") from None
                if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                    raise ParameterError(
                        f"texts: {path} line {i} has no string field 'text' (keys: "
                        f"{sorted(obj) if isinstance(obj, dict) else type(obj).__name__})."
                    )
                out.append(obj["text"])
        elif path.suffix == ".txt":
            for i, line in enumerate(lines, 1):
                if not line.strip():
                    raise ParameterError(
                        f"texts: {path} line {i} is blank; every line is one text (remove "
                        "blank lines, or use .jsonl)."
                    )
            out = lines
        else:
            raise ParameterError(
                f"texts: {path} has suffix {path.suffix!r}; use .txt (one text per line) or "
                ".jsonl (a 'text' field per line)."
            )
    elif isinstance(texts, Sequence) and not isinstance(texts, (bytes, bytearray)):
        out = list(texts)
        bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
        if bad:
            raise ParameterTypeError(
                f"texts must all be str; item {bad[0]} is {type(out[bad[0]]).__name__}."
            )
    else:
        raise ParameterTypeError(
            f"texts must be a list of str or the path of a .txt / .jsonl file, got "
            f"{type(texts).__name__}."
        )
    if not out:
        raise ParameterError("texts is empty; there is nothing to collect.")
    return out


def _texts_hash(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


# ------------------------------------------------------------------------------- parameters
def _check_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterTypeError(f"{name} must be an integer >= {low}, got {value!r}.")
    if value < low:
        raise ParameterError(f"{name} must be an integer >= {low}, got {value!r}.")
    return int(value)


def _storage_dtype(dtype: Any) -> Optional[str]:
    if dtype is None:
        return None
    text = str(dtype).replace("torch.", "")
    try:
        text = np.dtype(dtype).name if not isinstance(dtype, str) and text not in _DTYPES else text
    except TypeError:
        pass
    if text not in _DTYPES:
        raise ParameterError(
            f"dtype must be None (keep the model's dtype) or one of float16, bfloat16, float32, "
            f"float64, got {dtype!r}."
        )
    return _DTYPES[text]


def _layer_spec(layers: Any) -> Any:
    """"all" or a list of ints (negative allowed)."""
    if isinstance(layers, str) and layers == "all":
        return "all"
    items = [layers] if isinstance(layers, (int, np.integer, str)) else layers
    if not isinstance(items, Sequence) or isinstance(items, (bytes, bytearray)):
        raise ParameterTypeError(
            f"layers must be 'all', an index or a list of indices of hidden states, got "
            f"{layers!r}."
        )
    out = []
    for item in items:
        if isinstance(item, str) and re.fullmatch(r"-?\d+", item.strip()):
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, (int, np.integer)):
            raise ParameterTypeError(
                f"layers must be 'all' or integer indices of hidden states, got {item!r} in "
                f"{layers!r}."
            )
        out.append(int(item))
    if not out:
        raise ParameterError("layers selects no layer.")
    if len(set(out)) != len(out):
        raise ParameterError(f"layers names a layer twice: {out}.")
    return out


def _resolve_layers(spec: Any, n_states: int) -> list[int]:
    if spec == "all":
        return list(range(n_states))
    resolved = []
    for i in spec:
        if not -n_states <= i < n_states:
            raise ParameterIndexError(
                f"layers: index {i} does not exist; the model returns {n_states} hidden states "
                f"(0 = embeddings .. {n_states - 1}; negative indices count from the end)."
            )
        resolved.append(i % n_states)
    if len(set(resolved)) != len(resolved):
        raise ParameterError(f"layers {spec} name the same hidden state twice ({resolved}).")
    return resolved


# ---------------------------------------------------------------------------------- models
def _is_transformers_model(model: Any) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:
        return False
    return isinstance(model, PreTrainedModel)


def _load_model(model: Any, tokenizer: Any) -> tuple[Any, Any, str]:
    """(model, tokenizer or None, a description of where the model came from)."""
    torch = _torch()
    if isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser()
        if not path.exists():
            raise ModelNotFoundError(
                f"model: {path} does not exist; pass the local folder of a Hugging Face model "
                "(nothing is downloaded) or a loaded model."
            )
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"model: {path} has no config.json; it is not a saved Hugging Face model "
                "folder (save one with model.save_pretrained(path))."
            )
        transformers = _transformers()
        try:
            loaded = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
        except OSError as exc:
            raise ModelNotFoundError(f"model: could not load {path} offline: {exc}") from None
        if tokenizer is None:
            tokenizer = path
        return loaded, tokenizer, str(path.resolve())
    if not isinstance(model, torch.nn.Module):
        raise ParameterTypeError(
            f"model must be the path of a local Hugging Face model folder or a torch.nn.Module "
            f"(e.g. a loaded transformers model), got {type(model).__name__}."
        )
    if tokenizer is None and _is_transformers_model(model):
        name = getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", "")
        if name and Path(name).is_dir():
            tokenizer = Path(name)
    return model, tokenizer, type(model).__name__


def _load_tokenizer(tokenizer: Any) -> Any:
    if tokenizer is None:
        raise ParameterError(
            "tokenizer: none given and none found next to the model; pass tokenizer= (a "
            "tokenizer, or the path of a saved one)."
        )
    if isinstance(tokenizer, (str, os.PathLike)):
        path = Path(tokenizer).expanduser()
        if not path.exists():
            raise ModelNotFoundError(f"tokenizer: {path} does not exist (nothing is downloaded).")
        transformers = _transformers()
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"tokenizer: could not load a tokenizer from {path} offline: {exc}"
            ) from None
    if not callable(tokenizer):
        raise ParameterTypeError(
            f"tokenizer must be a transformers tokenizer (callable on a list of texts), got "
            f"{type(tokenizer).__name__}."
        )
    if getattr(tokenizer, "pad_token", "") is None:
        eos = getattr(tokenizer, "eos_token", None)
        if eos is None:
            raise ParameterError(
                "tokenizer has no pad token and no eos token to pad batches with; set "
                "tokenizer.pad_token."
            )
        tokenizer.pad_token = eos  # the usual choice for decoder-only models
    return tokenizer


def _fingerprint(model: Any, where: str) -> dict:
    """What identifies the model in the manifest: its class, config, size and a hash of
    (samples of) its parameters."""
    torch = _torch()
    params = list(model.state_dict().items())
    h = hashlib.sha256()
    n_params = sum(tensor.numel() for _, tensor in params)
    sample = params if len(params) <= 16 else params[:8] + params[-8:]
    for name, tensor in sample:
        t = tensor.detach().reshape(-1)[:65536].to("cpu")
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    config = getattr(model, "config", None)
    config_text = None
    if config is not None and hasattr(config, "to_dict"):
        cfg = {k: v for k, v in config.to_dict().items() if not k.startswith("_")}
        for k in ("transformers_version", "torch_dtype", "dtype", "output_hidden_states"):
            cfg.pop(k, None)
        config_text = hashlib.sha256(
            json.dumps(cfg, sort_keys=True, default=str).encode()
        ).hexdigest()
    return {
        "source": where,
        "class": type(model).__name__,
        "config_sha256": config_text,
        "n_parameters": int(n_params),
        "parameters_sha256": h.hexdigest(),
    }


def _same_device(a: Any, b: Any) -> bool:
    """torch devices equal, "cuda" matching "cuda:<current>"."""
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        if a.type != "cuda":
            return True
        torch = _torch()
        current = torch.cuda.current_device()
        return (a.index if a.index is not None else current) == (
            b.index if b.index is not None else current
        )
    return bool(a.index == b.index)


def _vocab_hash(tok: Any) -> Optional[str]:
    """A hash of the tokenizer's vocabulary (None when it has no get_vocab)."""
    get_vocab = getattr(tok, "get_vocab", None)
    if get_vocab is None:
        return None
    try:
        vocab = get_vocab()
    except Exception:  # a tokenizer-like object without a real vocabulary
        return None
    text = json.dumps(sorted((str(k), int(v)) for k, v in dict(vocab).items()))
    return hashlib.sha256(text.encode()).hexdigest()


def _call_kwargs(model: Any, batch: dict) -> dict:
    """The tokenizer's outputs that the model's forward accepts."""
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return dict(batch)
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return dict(batch)
    return {k: v for k, v in batch.items() if k in sig.parameters}


def _first_tensor(output: Any, name: str) -> Any:
    torch = _torch()
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        if isinstance(output.get("last_hidden_state"), torch.Tensor):
            return output["last_hidden_state"]
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    raise ParameterError(
        f"modules: the output of module {name!r} is a {type(output).__name__} holding no "
        "tensor; hook a module that returns hidden states."
    )


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


def load_row_index(out: PathLike) -> tuple[np.ndarray, np.ndarray]:
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
    manifest = {
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
    hooks, captured = [], {}
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
                        picked = _resolve_layers(layer_spec, len(states))
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


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _torch_dtype(name: str) -> Any:
    torch = _torch()
    return getattr(torch, name)


def _shard_done(root: Path, layer_names: Sequence[str], k: int) -> bool:
    return all((root / name / _SHARD.format(k)).is_file() for name in layer_names)


def _write_shard(folder: Path, k: int, tensor: Any) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(folder / _SHARD.format(k), lambda p: save_file({"activations": tensor}, str(p)))


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

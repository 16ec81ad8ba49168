"""The inputs of a collection, checked before any model runs: texts (a list, .txt, .jsonl), the
layer specification, the storage dtype, the model and tokenizer (local folders only: nothing
is downloaded) and the fingerprints the manifest records.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import (
    ParameterError,
    ParameterIndexError,
    ParameterTypeError,
    ShallowProbesError,
)

POOLS = ("mean", "last", "cls", "first", "none")
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

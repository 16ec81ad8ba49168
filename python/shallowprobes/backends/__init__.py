"""Which implementation of the numerical primitives runs: the Rust core, numpy or torch.

One small module so that every estimator resolves `backend=` the same way. All backends expose
the same functions (see `numpy_kernels`): `all_finite`, `accumulate`, `spectrum`, `spectra`,
`ridge_path`, `heldout_sse`, `loo_predictions`, `accumulate_quadratic`, `expand_quadratic`, and
the monitors' `project_rows` and `evaluate_polynomials`.

Dispatch (`resolve_backend`), from the ``backend=`` parameter and the data:

=========  ==============================================  ===================================
backend    numpy array / CPU tensor                        CUDA (any non-CPU) tensor
=========  ==============================================  ===================================
"auto"     Rust core (CPU tensors are viewed, not copied)  torch, on the tensor's device
"rust"     Rust core                                       Rust core (the tensor is copied to
                                                           host memory)
"numpy"    the numpy reference                             numpy (copied to host memory)
"torch"    torch on the CPU device                         torch, on the tensor's device
=========  ==============================================  ===================================

torch is optional and imported lazily: only a torch tensor or ``backend="torch"`` ever loads it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from . import numpy_kernels as _numpy_backend
from .numpy_ops import NUMPY_OPS

try:  # the compiled extension; absent only in a broken or source-only install
    from .. import _core as rust_core

    _RUST_IMPORT_ERROR: Exception | None = None
except ImportError as exc:  # pragma: no cover - exercised only without the extension
    rust_core = None  # type: ignore[assignment]
    _RUST_IMPORT_ERROR = exc

BACKENDS = ("auto", "rust", "numpy", "torch")

TORCH_MISSING = (
    "backend='torch' (or a torch tensor on an accelerator) needs PyTorch, which could not be "
    "imported{why}. Install the optional extra: pip install 'shallowprobes[torch]' (or "
    "pip install torch)."
)


def rust_available() -> bool:
    return rust_core is not None


def is_torch_tensor(obj: Any) -> bool:
    """True for a torch.Tensor, without importing torch when it is not already loaded."""
    cls = type(obj)
    return cls.__module__.startswith("torch") and hasattr(obj, "detach") and hasattr(obj, "dtype")


def is_device_tensor(obj: Any) -> bool:
    """True for a torch tensor that lives off the CPU (CUDA, or any other accelerator)."""
    return is_torch_tensor(obj) and obj.device.type != "cpu"


def check_backend_name(name: Any) -> str:
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}.")
    return name


def torch_backend() -> ModuleType:
    """The torch backend module; ImportError naming the extra to install without torch."""
    try:
        from . import torch_kernels as mod
    except ImportError as exc:
        raise ImportError(TORCH_MISSING.format(why=f" ({exc})")) from None
    return mod


def get_backend(name: str) -> ModuleType:
    """Resolve a backend name to the module implementing the primitives (data-independent:
    "auto" means the Rust core here; see `resolve_backend` for the data-aware choice)."""
    check_backend_name(name)
    if name == "numpy":
        return _numpy_backend
    if name == "torch":
        return torch_backend()
    if rust_core is None:
        if name == "rust":
            raise ImportError(
                "backend='rust' was requested but the compiled extension shallowprobes._core "
                f"could not be imported ({_RUST_IMPORT_ERROR}). Reinstall the package "
                "(pip install shallowprobes, or `make test` in a checkout) or use backend='numpy'."
            )
        return _numpy_backend
    return _rust_backend()


def uses_torch(name: str, X: Any = None) -> bool:
    """Whether `backend=name` applied to data X runs the torch backend (data stays torch)."""
    check_backend_name(name)
    return name == "torch" or (name == "auto" and is_device_tensor(X))


def resolve_backend(name: str, X: Any = None) -> ModuleType:
    """The backend module for `backend=name` and data X (see the table in the module doc)."""
    if uses_torch(name, X):
        return torch_backend()
    return get_backend(name)


def finite_max_abs(X: Any) -> float:
    """max |X| over all entries when every one is finite, else nan: one pass, in the Rust core
    for numpy arrays (any layout), on the tensor's device for torch tensors."""
    if is_torch_tensor(X):
        return torch_backend().finite_max_abs(X)
    if rust_core is not None and X.dtype.kind == "f":
        return _rust_backend().finite_max_abs(X)
    return _numpy_backend.finite_max_abs(X)


def all_finite(X: Any) -> bool:
    return not np.isnan(finite_max_abs(X))





def ops_of(*arrays: Any) -> Any:
    """Array namespace of the data: `torch_kernels.TorchOps` on the device of the first torch
    tensor among `arrays`, else numpy (`NUMPY_OPS`)."""
    for a in arrays:
        if is_torch_tensor(a):
            return torch_backend().ops_for(a.device)
    return NUMPY_OPS


def copy_of(a: Any) -> Any:
    """A copy of a numpy array or torch tensor (same kind, same device)."""
    return a.clone() if is_torch_tensor(a) else a.copy()


def float64_row_blocks(X: Any, entries: int = 1 << 22):
    """Yield (rows, block): consecutive row slices of X (n, d) as float64 blocks of about
    `entries` values, numpy for numpy X and tensors on X's device for a torch X, so that no
    float64 copy of all of X is ever made."""
    step = max(16, int(entries) // max(X.shape[1], 1))
    for start in range(0, X.shape[0], step):
        block = X[start : start + step]
        block = block.detach().double() if is_torch_tensor(block) else np.asarray(block, np.float64)
        yield slice(start, start + step), block


def to_numpy(a: Any) -> Any:
    """A host numpy copy of a torch tensor (bfloat16/float16 as float32); anything else as is."""
    if is_torch_tensor(a):
        return torch_backend().to_numpy(a)
    return a


def _rust_backend() -> ModuleType:
    from . import rust_kernels as mod

    return mod

"""Which implementation of the numerical primitives runs: the Rust core or numpy.

One small module so that every estimator resolves `backend=` the same way. Both backends expose
the same functions (see `_numpy_backend`): `all_finite`, `accumulate`, `spectrum`, `ridge_path`,
`heldout_sse`, `loo_predictions`.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from . import _numpy_backend

try:  # the compiled extension; absent only in a broken or source-only install
    from . import _core as _rust

    _RUST_IMPORT_ERROR: Exception | None = None
except ImportError as exc:  # pragma: no cover - exercised only without the extension
    _rust = None
    _RUST_IMPORT_ERROR = exc

BACKENDS = ("auto", "rust", "numpy")


def rust_available() -> bool:
    return _rust is not None


def get_backend(name: str) -> ModuleType:
    """Resolve a backend name to the module implementing the primitives."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}.")
    if name == "numpy":
        return _numpy_backend
    if _rust is None:
        if name == "rust":
            raise ImportError(
                "backend='rust' was requested but the compiled extension shallowprobes._core "
                f"could not be imported ({_RUST_IMPORT_ERROR}). Reinstall the package "
                "(pip install shallowprobes, or `make test` in a checkout) or use backend='numpy'."
            )
        return _numpy_backend
    return _rust_backend()


def all_finite(X: np.ndarray) -> bool:
    if _rust is not None and X.dtype in (np.float32, np.float64):
        return bool(_rust.all_finite(X))
    return _numpy_backend.all_finite(X)


def _rust_backend() -> ModuleType:
    from . import _rust_backend as mod

    return mod

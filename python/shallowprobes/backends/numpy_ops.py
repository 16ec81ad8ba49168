"""numpy as an array namespace: `NUMPY_OPS`, the host counterpart of `torch_kernels.TorchOps`
(one interface for the code shared by the host and the torch paths, e.g. `formulas`)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NUMPY_OPS"]


class _NumpyOps:
    """numpy, plus the few helpers `torch_kernels.TorchOps` adds (one interface for the
    solve code shared by the host and the torch paths)."""

    is_torch = False
    device = None

    def __getattr__(self, attr: str) -> Any:
        return getattr(np, attr)

    def __repr__(self) -> str:
        return "NumpyOps"

    @staticmethod
    def all_finite(a: np.ndarray) -> bool:
        return bool(np.isfinite(a).all())

    @staticmethod
    def eigh(a: np.ndarray):
        return np.linalg.eigh(a)

    @staticmethod
    def solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.solve(a, b)

    @staticmethod
    def index(idx: Any) -> np.ndarray:
        return np.asarray(idx)

    @staticmethod
    def to_numpy(a: Any) -> Any:
        from . import to_numpy

        return to_numpy(a)


NUMPY_OPS = _NumpyOps()

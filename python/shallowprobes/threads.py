"""Threads of the Rust core, and prompt Ctrl-C for long computations.

Thread count: the core has its own rayon pool (numpy/BLAS threads are not touched), sized by
`set_num_threads`, else ``$SHALLOWPROBES_NUM_THREADS``, else ``$RAYON_NUM_THREADS``, else one
thread per core.

Interruption: see `shallowprobes._interrupt` (re-exported here): long entry points run in a
worker thread so that Ctrl-C raises KeyboardInterrupt within a second and leaves estimators
unchanged.
"""

from __future__ import annotations

from ._interrupt import cancel_flag, check_interrupt, commit_guard, interruptible
from .backends import rust_core

__all__ = [
    "set_num_threads",
    "get_num_threads",
    "interruptible",
    "check_interrupt",
    "commit_guard",
    "cancel_flag",
]


def set_num_threads(n: int) -> None:
    """Use n threads in the Rust core (0 = $SHALLOWPROBES_NUM_THREADS, else
    $RAYON_NUM_THREADS, else one per CPU core).

    Results do not depend on this: statistics are reduced in a fixed order, bit for bit.
    Single eigendecompositions of order >= 640 run in LAPACK through numpy (faster there,
    `backends.rust_kernels.LAPACK_EIGH_MIN_ORDER`) and use numpy's BLAS threads instead; limit
    those with threadpoolctl.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}.")
    if rust_core is not None:
        rust_core.set_num_threads(n)


def get_num_threads() -> int:
    """Threads the Rust core uses (1 when the extension is unavailable)."""
    return int(rust_core.get_num_threads()) if rust_core is not None else 1

"""Thread count of the Rust core (its own rayon pool; numpy/BLAS threads are not touched)."""

from __future__ import annotations

from ._backends import _rust


def set_num_threads(n: int) -> None:
    """Use n threads in the Rust core (0 = one per CPU core).

    Results do not depend on this: statistics are reduced in a fixed order, bit for bit.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}.")
    if _rust is not None:
        _rust.set_num_threads(n)


def get_num_threads() -> int:
    """Threads the Rust core uses (1 when the extension is unavailable)."""
    return int(_rust.get_num_threads()) if _rust is not None else 1

"""Threads of the Rust core, and prompt Ctrl-C for long computations.

Thread count: the core has its own rayon pool (numpy/BLAS threads are not touched), sized by
`set_num_threads`, else ``$SHALLOWPROBES_NUM_THREADS``, else ``$RAYON_NUM_THREADS``, else one
thread per core.

Interruption: Python delivers SIGINT to the main thread only, and only between bytecodes, so a
long call into Rust or LAPACK would otherwise see Ctrl-C only when it returns (47 s for a dual
solve at n=6000). Public entry points that can run long (`fit`, `partial_fit`, statistics
updates, lazy solves, transfer) are wrapped by `interruptible`: called from the main thread,
the work runs in a worker thread while the main thread waits in short, interruptible steps.
On Ctrl-C the main thread raises KeyboardInterrupt at once and raises the worker's cancel
flag; the Rust core checks that flag between row blocks and between the stages of a solve,
and Python loops check it through `check_interrupt`. The worker's result is discarded and its
commits are refused (`commit_guard`), so the estimator is left as it was. A worker inside one
uninterruptible step (a single eigendecomposition) finishes that step in the background first;
it does not delay the KeyboardInterrupt.

Warnings raised in the worker are re-issued in the calling thread, attributed to the caller's
line (the frame that called the public method).
"""

from __future__ import annotations

import functools
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, TypeVar

import numpy as np

from ._backends import _rust
from ._base import user_stacklevel

__all__ = ["set_num_threads", "get_num_threads", "interruptible", "check_interrupt"]

F = TypeVar("F", bound=Callable[..., Any])


def set_num_threads(n: int) -> None:
    """Use n threads in the Rust core (0 = $SHALLOWPROBES_NUM_THREADS, else
    $RAYON_NUM_THREADS, else one per CPU core).

    Results do not depend on this: statistics are reduced in a fixed order, bit for bit.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}.")
    if _rust is not None:
        _rust.set_num_threads(n)


def get_num_threads() -> int:
    """Threads the Rust core uses (1 when the extension is unavailable)."""
    return int(_rust.get_num_threads()) if _rust is not None else 1


class _Cancelled(BaseException):
    """Raised inside an abandoned worker to unwind it (a BaseException, so library code's
    ``except Exception`` handlers do not swallow it)."""


class CancelToken:
    """The cancel state of one interruptible call: a one-byte numpy flag the Rust core reads
    while it runs, and a lock that makes 'cancel' and 'commit' mutually exclusive."""

    def __init__(self) -> None:
        self.flag = np.zeros(1, dtype=np.uint8)
        self.lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return bool(self.flag[0])

    def cancel(self) -> None:
        with self.lock:
            self.flag[0] = 1


_local = threading.local()


def current_token() -> Optional[CancelToken]:
    """The token of the interruptible call running on this thread (None outside one)."""
    return getattr(_local, "token", None)


def cancel_flag() -> Optional[np.ndarray]:
    """The Rust core's cancel flag for the current thread (None outside interruptible work)."""
    token = current_token()
    return None if token is None else token.flag


def check_interrupt() -> None:
    """Stop the current worker if its call was interrupted (a cheap check for Python loops)."""
    token = current_token()
    if token is not None and token.cancelled:
        raise _Cancelled()


@contextmanager
def commit_guard() -> Iterator[None]:
    """Wrap the statements that commit a computation's results to an object: they run only if
    the call was not interrupted, and an interrupt cannot land half-way through them."""
    token = current_token()
    if token is None:
        yield
        return
    with token.lock:
        if token.cancelled:
            raise _Cancelled()
        yield


def _worker(token: CancelToken, fn: Callable, args: tuple, kwargs: dict, box: dict) -> None:
    _local.token = token
    try:
        with warnings.catch_warnings(record=True) as caught:
            # record=True keeps the caller's filters: ignored warnings stay ignored, and
            # "error" filters still raise here (and so reach the caller as exceptions).
            box["result"] = fn(*args, **kwargs)
        box["warnings"] = caught
    except _Cancelled:
        pass
    except BaseException as exc:  # re-raised in the calling thread
        box["error"] = exc
    finally:
        _local.token = None


def interruptible(fn: F) -> F:
    """Decorator: run `fn` so that Ctrl-C interrupts it promptly (see the module docs).

    Only calls from the main thread (the one that receives SIGINT) are moved to a worker;
    nested calls and calls from other threads run directly.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_token() is not None or threading.current_thread() is not threading.main_thread():
            return fn(*args, **kwargs)
        token = CancelToken()
        box: dict = {}
        worker = threading.Thread(
            target=_worker, args=(token, fn, args, kwargs, box), name="shallowprobes-call"
        )
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.05)  # short waits: SIGINT is handled between them
        except BaseException:
            token.cancel()
            raise
        if "error" in box:
            error = box["error"]
            raise error.with_traceback(error.__traceback__)
        for w in box.get("warnings", ()):
            warnings.warn(w.message, w.category, stacklevel=user_stacklevel())
        return box.get("result")

    return wrapper  # type: ignore[return-value]

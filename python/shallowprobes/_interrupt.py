"""Prompt Ctrl-C for long computations (the mechanism; see `shallowprobes.threads`).

Python delivers SIGINT to the main thread only, and only between bytecodes, so a long call
into Rust, LAPACK or torch would otherwise see Ctrl-C only when it returns (47 s for a dual
solve at n=6000). Public entry points that can run long (`fit`, `partial_fit`, statistics
updates, lazy solves, transfer) are wrapped by `interruptible`: called from the main thread,
the work runs in a worker thread while the main thread waits in short, interruptible steps.
On Ctrl-C the main thread raises the worker's cancel flag, gives the worker a moment to stop at
its next check (the Rust core checks the flag between row blocks and between the stages of a
solve; Python loops call `check_interrupt`), and raises KeyboardInterrupt. The worker's result
is discarded and its commits are refused (`commit_guard`), so the estimator is left as it was.
A worker inside one uninterruptible step (a single eigendecomposition) finishes that step in
the background; that does not delay the KeyboardInterrupt.

Warnings raised in the worker are re-issued in the calling thread, attributed to the caller's
line (the first frame outside the package).
"""

from __future__ import annotations

import functools
import signal
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, TypeVar

import numpy as np

from ._base import user_stacklevel

__all__ = ["interruptible", "check_interrupt", "commit_guard", "cancel_flag"]

F = TypeVar("F", bound=Callable[..., Any])

# How long the main thread waits, after Ctrl-C, for the worker to reach its next check point
# before it raises anyway (the whole reaction stays under a second).
_STOP_GRACE_S = 0.6


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


def _worker(
    token: CancelToken, fn: Callable, args: tuple, kwargs: dict, box: dict, done: threading.Event
) -> None:
    # SIGINT is for the main thread: block it here, and so in every thread this one starts
    # (native thread pools started from here inherit the mask).
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
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
        done.set()


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
        done = threading.Event()
        worker = threading.Thread(
            target=_worker, args=(token, fn, args, kwargs, box, done), name="shallowprobes-call"
        )
        worker.start()
        # Wait on our own event, not worker.join(): in CPython 3.11 a KeyboardInterrupt that
        # lands inside join() marks the still-running thread as stopped (bpo-45274), so the
        # interpreter would not wait for it at exit and the worker would be killed mid-call.
        try:
            while not done.wait(0.05):  # short waits: SIGINT is handled between them
                pass
        except BaseException:
            token.cancel()
            # Let the worker unwind at its next check, so that it does not keep computing
            # while the program goes on after the KeyboardInterrupt; an uninterruptible step
            # finishes in the background (and the interpreter waits for it at exit).
            done.wait(_STOP_GRACE_S)
            raise
        worker.join()
        if "error" in box:
            error = box["error"]
            raise error.with_traceback(error.__traceback__)
        for w in box.get("warnings", ()):
            warnings.warn(w.message, w.category, stacklevel=user_stacklevel())
        return box.get("result")

    return wrapper  # type: ignore[return-value]

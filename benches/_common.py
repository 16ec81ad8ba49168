"""Helpers shared by the benchmark scripts in benches/ (one copy of each).

The scripts run as ``python benches/bench_X.py``, so benches/ is sys.path[0] and they import
this module as ``_common`` (bench_quadratic's children re-run its file the same way).

Neither shallowprobes nor torch is imported here at import time: bench_quadratic keeps
shallowprobes out of its parent process and its sklearn children (they survive a rebuild of
the extension, and the GEMM peak is measured without the library's thread pools around), and
the memory children never import torch. Both are imported lazily, inside the helpers that need
them, and only when asked for.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable, Optional

import numpy as np


# ---------------------------------------------------------------------------------- misc
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def have(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def version(module: str) -> str:
    return str(getattr(__import__(module), "__version__", "?"))


def loadavg() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def reldiff(a: Any, b: Any) -> float:
    """max |a - b| / max |b| (in float64; 1 stands for a zero max |b|)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = float(np.max(np.abs(b)))
    return float(np.max(np.abs(a - b))) / (scale if scale > 0 else 1.0)


def gram_upcast(X: np.ndarray) -> np.ndarray:
    """The float64 Gram by an explicit upcast copy: ``Xd = X.astype(float64); Xd.T @ Xd``."""
    Xd = X.astype(np.float64)
    return Xd.T @ Xd


def add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads for every library (default: all CPUs)",
    )


def activation_layout(
    rng: np.random.Generator, d: int, rank: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The column layout of the synthetic activations (bench_linear, bench_quadratic).

    Column scales decaying over ~3 e-folds (shuffled), a (rank, d) shared-component mixing
    matrix, and per-column offsets with two "massive activation" columns (offset 50). Draws
    from `rng` in that order.
    """
    col_scale = np.exp(-np.linspace(0.0, 3.0, d))
    rng.shuffle(col_scale)
    mix = rng.standard_normal((rank, d)) * 0.5
    offset = rng.normal(0.0, 2.0, d)
    offset[rng.choice(d, size=min(2, d), replace=False)] = 50.0
    return col_scale, mix, offset


# ---------------------------------------------------------------------------------- memory probes
# RSS before a call, reset of the kernel's peak mark, and the peak (VmHWM) after it: the same
# method in every benchmark, so their memory columns mean the same.
def rss_now() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


# ---------------------------------------------------------------------------------- machine
def set_threads(threads: int, with_torch: bool = True, with_probes: bool = False) -> Any:
    """Give every library the same thread count; returns the threadpoolctl limiter (keep it).

    with_probes: also shallowprobes.set_num_threads (imported here, only then);
    with_torch: also torch.set_num_threads (when torch is installed).
    """
    if with_probes:
        import shallowprobes as sp

        sp.set_num_threads(threads)
    limiter = None
    if have("threadpoolctl"):
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=threads)
    if with_torch and have("torch"):
        import torch

        torch.set_num_threads(threads)
    return limiter


def gemm_peak_gflops(size: int = 2048, tries: int = 8) -> dict[str, float]:
    """Best-of-`tries` float64 square matmul rate, 2 m n k flops, numpy and (if present) torch."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((size, size))
    b = rng.standard_normal((size, size))
    flops = 2.0 * size**3

    def best(fn: Callable[[], Any]) -> float:
        fn()  # warm up threads
        ts = []
        for _ in range(tries):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return flops / min(ts) / 1e9

    out = {"numpy": best(lambda: a @ b)}
    if have("torch"):
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out["torch"] = best(lambda: ta @ tb)
    return out


def rotated_medians(calls: dict[str, Callable[[], Any]], repeats: int,
                    digits: int = 2) -> dict[str, float]:  # fmt: skip
    """Median seconds of each call over `repeats` rounds, the order rotated by one each round
    (slow drifts of a shared machine hit every call alike); each time is logged to stderr
    with the load average (`digits` decimals)."""
    names = list(calls)
    times: dict[str, list[float]] = {m: [] for m in names}
    for r in range(repeats):
        for m in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            calls[m]()
            times[m].append(time.perf_counter() - t0)
            log(f"  {m}: {times[m][-1]:.{digits}f}s (load {loadavg()})")
    return {m: statistics.median(t) for m, t in times.items()}


# ---------------------------------------------------------------------------------- tables
def fmt_table(headers: list[str], rows: list[list[str]]) -> str:
    """Plain-text table: first column left-aligned, the rest right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]  # fmt: skip

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def fs(t: Optional[float], digits: int = 3) -> str:
    """Seconds with `digits` decimals, "-" for None."""
    return "-" if t is None else f"{t:.{digits}f}"


def fx(num: Optional[float], den: Optional[float]) -> str:
    if num is None or den is None or den <= 0:
        return "-"
    return f"{num / den:.2f}x"


def fe(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.1e}"

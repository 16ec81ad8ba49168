"""Symmetric eigendecomposition: faer (the Rust core) against LAPACK, to choose the solver.

Run from the repository root::

    PYTHONPATH=python python benches/bench_eigh.py                  # orders 64 .. 3000
    PYTHONPATH=python python benches/bench_eigh.py --orders 768 5000

Every solver decomposes the same symmetric positive semi-definite matrix (a Gram of random
rows) with eigenvectors, in rotated order, ``--repeats`` rounds; the table shows each solver's
median time over ours-faer's time in the same round (the machine is shared; docs/design.md §5):

* faer: ``_core.spectrum`` (faer's divide-and-conquer ``self_adjoint_evd``, the core's own
  eigen solver, plus B = V^T c and the null clamp);
* LAPACK dsyevd: ``numpy.linalg.eigh`` (divide and conquer, numpy's OpenBLAS);
* scipy evd / evr: ``scipy.linalg.eigh(driver="evd" | "evr")`` (dsyevd / MRRR dsyevr);
* eigvalsh: ``numpy.linalg.eigvalsh``, eigenvalues only (a lower bound: the tridiagonal
  reduction without eigenvectors);
* chosen: ``backends.rust_kernels.spectrum``, what the library runs (LAPACK from
  ``LAPACK_EIGH_MIN_ORDER`` on, faer below).

The ratio column "faer / LAPACK" is what `LAPACK_EIGH_MIN_ORDER` is chosen from. The GEMM peak
and the load average before and after are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    add_threads_option,
    fmt_table,
    gemm_peak_gflops,
    have,
    loadavg,
    set_threads,
)


def solvers(G: np.ndarray, c: np.ndarray) -> dict[str, Callable[[], Any]]:
    from shallowprobes import _core
    from shallowprobes._interrupt import cancel_flag
    from shallowprobes.backends import rust_kernels

    out: dict[str, Callable[[], Any]] = {
        "faer": lambda: _core.spectrum(G, c, cancel_flag()),
        "LAPACK dsyevd (numpy)": lambda: np.linalg.eigh(G),
        "eigvalsh (no vectors)": lambda: np.linalg.eigvalsh(G),
        "chosen (rust_kernels)": lambda: rust_kernels.spectrum(G, c),
    }
    if have("scipy"):
        import scipy.linalg as sl

        out["scipy evd"] = lambda: sl.eigh(G, driver="evd", check_finite=False)
        out["scipy evr"] = lambda: sl.eigh(G, driver="evr", check_finite=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, nargs="+", default=[64, 128, 256, 512, 768, 1024,
                                                               2048, 3000])  # fmt: skip
    ap.add_argument("--repeats", type=int, default=3)
    add_threads_option(ap)
    args = ap.parse_args()
    threads = args.threads or os.cpu_count() or 1
    _limiter = set_threads(threads, with_torch=False, with_probes=True)
    from shallowprobes.backends.rust_kernels import LAPACK_EIGH_MIN_ORDER

    before = loadavg()
    peak = gemm_peak_gflops()["numpy"]
    rows = []
    rng = np.random.default_rng(0)
    for d in args.orders:
        A = rng.standard_normal((d + 16, d))
        G = A.T @ A
        c = rng.standard_normal((d, 16))
        fns = solvers(G, c)
        names = list(fns)
        ratios: dict[str, list[float]] = {n: [] for n in names}
        times: dict[str, list[float]] = {n: [] for n in names}
        reps = args.repeats if d <= 3000 else 1
        for r in range(reps):
            order = names[r % len(names):] + names[: r % len(names)]
            got: dict[str, float] = {}
            for n in order:
                t0 = time.perf_counter()
                fns[n]()
                got[n] = time.perf_counter() - t0
            for n in names:
                times[n].append(got[n])
                ratios[n].append(got[n] / got["faer"])
        med = {n: statistics.median(times[n]) for n in names}
        rat = {n: statistics.median(ratios[n]) for n in names}
        lapack = statistics.median(
            f / la for f, la in zip(times["faer"], times["LAPACK dsyevd (numpy)"])
        )
        for n in names:
            rows.append([f"d={d}", n, f"{med[n]:.4f}", f"{rat[n]:.2f}",
                         f"{lapack:.2f}" if n == "faer" else ""])  # fmt: skip
        print(f"d={d} done ({loadavg()})", file=sys.stderr, flush=True)
    print(f"bench_eigh: symmetric eigendecomposition with eigenvectors, {threads} threads; "
          f"GEMM peak {peak:.1f} GFLOP/s (float64); LAPACK_EIGH_MIN_ORDER = "
          f"{LAPACK_EIGH_MIN_ORDER}")  # fmt: skip
    print(f"load average before: {before}, after: {loadavg()}")
    print(fmt_table(["order", "solver", "median s", "/ faer", "faer / LAPACK"], rows))
    print("(/ faer: median over rounds of time / faer's time in the same round)")


if __name__ == "__main__":
    main()

"""The monitors' row-block kernels in the Rust core against the numpy expressions they replace.

Run from the repository root::

    PYTHONPATH=python python benches/bench_projection.py --quick   # n = 20 000
    PYTHONPATH=python python benches/bench_projection.py           # n = 20 000 and 100 000

Kernels (docs/design.md §5: ratios in one run, on the same arrays, and the fraction of the
measured GEMM peak):

* project: ``rust_kernels.project_rows(X, c, M)`` against the numpy expression of
  ``monitors.quotient.project_rows``: ``(Xb - c) @ M`` on float64 row blocks of 2^22 entries;
  d = 384 / 768, r = 16 / 64.
* evaluate: ``rust_kernels.evaluate_polynomials`` on a bank of m = 16 monitors (all degree 1,
  or 12 of degree 1 and 4 of degree 2, each with its own centre) against the numpy expression
  of ``monitors.bank._evaluate``: per float64 row block ``Xb @ W + const`` for the degree-1
  ones and ``U @ w + b + ((U @ Q) * U).sum(1)``, ``U = Xb - c``, for each degree-2 one.

X is float32 or float64 (activation-like: shuffled column scales and offsets). Each round times
numpy and ours back to back (the order alternates); the table shows median times and the median
over rounds of the paired ratio numpy / ours (above 1: ours is faster; >= 1.0 is the target).
GFLOP/s count the numpy expressions' flops, 2 n d r (project) and 2 n d (m_lin + q (d + 2))
(evaluate; the core does about half of the quadratic ones: its U Q is a triangular product
with the upper triangle of the symmetric Q); "ours/peak" and "numpy/peak" divide them by the
float64 GEMM peak (numpy, 2048^2, best at start and end). numpy and the core get the same
thread count (``--threads``). The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    add_threads_option,
    fmt_table,
    gemm_peak_gflops,
    loadavg,
    log,
    reldiff,
    set_threads,
)  # fmt: skip

BLOCK_ENTRIES = 1 << 22  # the monitors' numpy row blocks


def numpy_project(X: np.ndarray, c: np.ndarray, M: np.ndarray) -> np.ndarray:
    out = np.empty((X.shape[0], M.shape[1]))
    step = max(16, BLOCK_ENTRIES // X.shape[1])
    for s in range(0, X.shape[0], step):
        out[s : s + step] = (np.asarray(X[s : s + step], np.float64) - c) @ M
    return out


def numpy_evaluate(X: np.ndarray, W: np.ndarray, C: np.ndarray, b: np.ndarray, Qs) -> np.ndarray:
    m = len(b)
    out = np.empty((X.shape[0], m))
    lin = [j for j in range(m) if Qs[j] is None]
    quad = [j for j in range(m) if Qs[j] is not None]
    W_lin = np.stack([W[j] for j in lin], axis=1)
    const = np.asarray([b[j] - float(W[j] @ C[j]) for j in lin])
    step = max(16, BLOCK_ENTRIES // X.shape[1])
    for s in range(0, X.shape[0], step):
        Xb = np.asarray(X[s : s + step], np.float64)
        out[s : s + step, lin] = Xb @ W_lin + const
        for j in quad:
            U = Xb - C[j]
            out[s : s + step, j] = U @ W[j] + b[j] + ((U @ Qs[j]) * U).sum(1)
    return out


def make_x(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = np.exp(-np.linspace(0.0, 3.0, d))
    rng.shuffle(scale)
    X = np.empty((n, d))
    for s in range(0, n, 10_000):
        X[s : s + 10_000] = rng.standard_normal((min(10_000, n - s), d)) * scale
    return X + rng.normal(0.0, 2.0, d)


def make_bank(d: int, m: int, q: int, seed: int):
    rng = np.random.default_rng(seed)
    W, C, b = rng.standard_normal((m, d)), rng.standard_normal((m, d)), rng.standard_normal(m)
    Qs: list[Any] = [None] * m
    for j in range(m - q, m):
        A = rng.standard_normal((d, d)) / d
        Qs[j] = 0.5 * (A + A.T)
    return W, C, b, Qs


def paired(ours: Callable[[], Any], ref: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Median times, the median paired ratio ref / ours, and the results' max rel. difference."""
    got, want = ours(), ref()  # warm-up, and the accuracy check
    t_ours, t_ref, ratios = [], [], []
    for r in range(repeats):
        pair = []
        for fn in (ours, ref) if r % 2 == 0 else (ref, ours):
            t0 = time.perf_counter()
            fn()
            pair.append(time.perf_counter() - t0)
        to, tr = pair if r % 2 == 0 else pair[::-1]
        t_ours.append(to)
        t_ref.append(tr)
        ratios.append(tr / to)
    return {"ours": statistics.median(t_ours), "numpy": statistics.median(t_ref),
            "ratio": statistics.median(ratios), "spread": max(ratios) / min(ratios),
            "rel": reldiff(got, want)}  # fmt: skip


def bench_case(kernels: Any, X: np.ndarray, args: argparse.Namespace) -> list[tuple]:
    """The rows of one (n, d, dtype): project for every r, evaluate for both banks."""
    n, d = X.shape
    dtype = X.dtype.name
    c = X[:1000].astype(np.float64).mean(0)
    rows = []
    if "project" in args.kernels:
        for r in args.r:
            M = np.random.default_rng(r).standard_normal((d, r))
            res = paired(partial(kernels.project_rows, X, c, M), partial(numpy_project, X, c, M),
                         args.repeats)  # fmt: skip
            rows.append(("project", f"r={r}", n, d, dtype, res, 2.0 * n * d * r))
            log(f"project n={n} d={d} r={r} {dtype}: {res}")
    if "evaluate" in args.kernels:
        for label, q in (("16 lin", 0), ("12 lin + 4 quad", 4)):
            bank = make_bank(d, 16, q, d + q)
            res = paired(partial(kernels.evaluate_polynomials, X, *bank),
                         partial(numpy_evaluate, X, *bank), args.repeats)  # fmt: skip
            flops = 2.0 * n * d * ((16 - q) + q * (d + 2))
            rows.append(("evaluate", label, n, d, dtype, res, flops))
            log(f"evaluate n={n} d={d} {label} {dtype}: {res}")
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="n = 20 000 only")
    p.add_argument("--n", type=int, nargs="*", default=None)
    p.add_argument("--d", type=int, nargs="*", default=[384, 768])
    p.add_argument("--r", type=int, nargs="*", default=[16, 64])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--kernels", nargs="*", default=["project", "evaluate"])
    add_threads_option(p)
    args = p.parse_args(argv)
    ns = args.n or ([20_000] if args.quick else [20_000, 100_000])
    limiter = set_threads(args.threads, with_torch=False, with_probes=True)  # noqa: F841
    from shallowprobes.backends import rust_kernels

    load_before = loadavg()
    peak = gemm_peak_gflops()["numpy"]
    rows = []
    for n in ns:
        for d in args.d:
            base = make_x(n, d, n + d)
            for dtype in (np.float32, np.float64):
                rows += bench_case(rust_kernels, base.astype(dtype), args)
            del base
    peak = max(peak, gemm_peak_gflops()["numpy"])
    table = []
    for kernel, what, n, d, dtype, res, flops in rows:
        table.append([
            kernel, what, str(n), str(d), dtype, f"{res['numpy']:.4f}",
            f"{res['ours']:.4f}", f"{res['ratio']:.2f}x", f"{res['spread']:.2f}",
            f"{flops / res['ours'] / 1e9:.1f}", f"{flops / res['ours'] / 1e9 / peak:.2f}",
            f"{flops / res['numpy'] / 1e9 / peak:.2f}", f"{res['rel']:.0e}",
        ])  # fmt: skip
    print(f"bench_projection: {args.threads} threads, {args.repeats} paired rounds per row")
    print(f"GEMM peak (numpy float64, 2048^2, best at start/end): {peak:.1f} GFLOP/s")
    print(f"load average before: {load_before}, after: {loadavg()}")
    headers = ["kernel", "case", "n", "d", "X", "numpy s", "ours s", "numpy/ours", "spread",
               "GFLOP/s", "ours/peak", "numpy/peak", "rel diff"]  # fmt: skip
    print(fmt_table(headers, table))
    print("(numpy/ours: median over rounds of the paired time ratio; spread: max/min of those "
          "ratios; rel diff: max |ours - numpy| / max |numpy|)")  # fmt: skip


if __name__ == "__main__":
    main()

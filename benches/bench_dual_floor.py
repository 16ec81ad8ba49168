"""The dual (kernel) route of the degree-2 probe against its floor and against KernelRidge.

Run from the repository root::

    PYTHONPATH=python python benches/bench_dual_floor.py               # n = 5000, d = 256
    PYTHONPATH=python python benches/bench_dual_floor.py --n 3000 --d 384

One gamma (the default scale, 1 / mean ||h - mu||^2, which the loop uses too) and the
20-alpha grid of `bench_quadratic`, in rotated order for ``--repeats`` rounds, one process:

* ours: ``QuadraticProbe(alphas=grid, gamma=g, cv="gcv", solver="dual")`` (kernel by one
  symmetric rank-d product, one band reduction of the kernel in the core, exact GCV for every
  alpha from a band Cholesky each, then the polynomial (Q, w, b));
* floor: what an eigendecomposition route cannot avoid: the row Gram ``Uc @ Uc.T`` (numpy
  dispatches it to SYRK), the elementwise polynomial, and one eigendecomposition of the n x n
  kernel by the fastest solver of the run (min of LAPACK dsyevd via numpy and faer);
* floor (eigenvalues only): the same kernel and LAPACK's eigenvalues alone (``eigvalsh``:
  the tridiagonal reduction, 4n^3/3 flops, and a QL sweep), the reduction any exact GCV of a
  dense kernel needs in some form (ours is a band reduction with the same flop count);
* ours LOO: the same with ``cv="loo"``, which takes the spectrum route (the kernel's
  eigendecomposition by the faster solver, the intercept's null direction deflated first,
  exact LOO for every alpha from it): its ratio to the floor is that route's overhead;
* KRloop: scikit-learn ``KernelRidge(kernel="poly", degree=2)`` fitted once per alpha (20
  Cholesky solves, no cross-validation at all);
* himalaya: ``himalaya.kernel_ridge.KernelRidgeCV`` with the same polynomial kernel and the
  20 alphas, 5-fold (it has no GCV; its "eigenvalues" solver decomposes each training
  kernel), when himalaya is installed, next to ours with ``cv=5`` (same selection).

The table shows medians and the ratios to the floor, to the eigenvalues-only floor and to ours,
with the load average, and, for the rows with one clear flop count (ours, the eigenvalues-only
floor, the loop), GFLOP/s and their fraction of numpy's float64 GEMM peak measured at start.
Before the timings, 4 n^2 doubles are touched once, untimed, so that the first method timed
does not pay the machine's first touch of fresh memory for all of them.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402, I001
    add_threads_option, fmt_table, gemm_peak_gflops, have, loadavg, rotated_medians, set_threads,
)  # fmt: skip
from bench_quadratic import alpha_grid, make_data  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--no-himalaya", action="store_true")
    add_threads_option(ap)
    args = ap.parse_args()
    _limiter = set_threads(args.threads, with_torch=False, with_probes=True)
    import shallowprobes as sp
    from shallowprobes import _core
    from shallowprobes._interrupt import cancel_flag

    X, y = make_data(args.n, args.d, 0, 1)
    grid, gamma = alpha_grid(X)
    Uc = X.astype(np.float64) - X.astype(np.float64).mean(axis=0)

    def ours() -> None:
        sp.QuadraticProbe(alphas=grid, gamma=gamma, cv="gcv", solver="dual").fit(X, y)

    def kernel() -> np.ndarray:
        G = Uc @ Uc.T  # numpy runs a @ a.T as SYRK
        G += gamma * G * G
        return G

    def floor_lapack() -> None:
        np.linalg.eigh(kernel())

    def floor_faer() -> None:
        _core.spectrum(kernel(), np.zeros((args.n, 1)), cancel_flag())

    def floor_values() -> None:
        np.linalg.eigvalsh(kernel())

    def krloop() -> None:
        from sklearn.kernel_ridge import KernelRidge

        yc = y - y.mean()
        for a in grid:
            KernelRidge(alpha=float(a), kernel="poly", degree=2, gamma=float(np.sqrt(gamma)),
                        coef0=float(0.5 / np.sqrt(gamma))).fit(Uc, yc)  # fmt: skip

    def ours_loo() -> None:  # the spectrum route: the deflated kernel's eigendecomposition
        sp.QuadraticProbe(alphas=grid, gamma=gamma, cv="loo", solver="dual").fit(X, y)

    def ours_kfold() -> None:
        sp.QuadraticProbe(alphas=grid, gamma=gamma, cv=5, solver="dual").fit(X, y)

    def himalaya_kfold() -> None:
        from himalaya.kernel_ridge import KernelRidgeCV

        params = {"degree": 2, "gamma": float(np.sqrt(gamma)), "coef0": float(0.5 / np.sqrt(gamma))}
        KernelRidgeCV(alphas=grid, kernel="polynomial", kernel_params=params, cv=5,
                      fit_intercept=False).fit(Uc, y - y.mean())  # fmt: skip

    fns = {"ours": ours, "floor (LAPACK eigh)": floor_lapack, "floor (faer eigh)": floor_faer,
           "floor (eigenvalues only)": floor_values,
           "ours LOO (spectrum route)": ours_loo}  # fmt: skip
    if not args.no_sklearn:
        fns["KRloop (20 KernelRidge fits)"] = krloop
    if have("himalaya") and not args.no_himalaya:
        fns["ours 5-fold"] = ours_kfold
        fns["himalaya KernelRidgeCV (5-fold)"] = himalaya_kfold
    names = list(fns)
    # Fresh memory is slow to touch the first time in a process on a virtual machine (here:
    # a first 200 MB n x n product 0.40 s against 0.10 s after, a first elementwise square
    # 0.66 s against 0.03 s): the host backs the pages then. Whichever method ran first paid
    # it (ours: 3.8 s first, 1.9 s after). One untimed touch of 4 n^2 doubles (what the
    # eigendecompositions and the loop hold at their peaks) makes every timed call start warm.
    warm = np.ones((4, args.n, args.n))
    del warm
    peak = gemm_peak_gflops()["numpy"]
    before = loadavg()
    med = rotated_medians(fns, args.repeats)
    floor = min(med["floor (LAPACK eigh)"], med["floor (faer eigh)"])
    values = med["floor (eigenvalues only)"]
    # Useful flops where the work has one clear count: the kernel's symmetric rank-d product
    # (n^2 d) plus the reduction (4n^3/3, band or tridiagonal); the loop's 20 x (full kernel
    # product 2 n^2 d + Cholesky n^3 / 3). The eigendecompositions' counts depend on the solver.
    n, d = args.n, args.d
    reduction = n * n * d + 4.0 * n**3 / 3.0
    flops = {"ours": reduction, "floor (eigenvalues only)": reduction,
             "KRloop (20 KernelRidge fits)": 20.0 * (2.0 * n * n * d + n**3 / 3.0)}  # fmt: skip

    def rate(m: str) -> str:
        if m not in flops:
            return "-"
        gflops = flops[m] / med[m] / 1e9
        return f"{gflops:.0f} ({gflops / peak:.2f})"

    rows = [[m, f"{med[m]:.2f}", f"{med[m] / floor:.2f}", f"{med[m] / values:.2f}",
             f"{med[m] / med['ours']:.2f}", rate(m)] for m in names]  # fmt: skip
    print(f"bench_dual_floor: n={args.n}, d={args.d} (p = {args.d + args.d * (args.d + 1) // 2}"
          f" features), 20 alphas, one gamma, {args.threads} threads")  # fmt: skip
    print(f"load average before: {before}, after: {loadavg()}")
    print(fmt_table(["method", "median s", "/ floor", "/ values", "/ ours", "GFLOP/s (/ peak)"],
                    rows))  # fmt: skip
    print("(floor: the faster eigendecomposition row; values: the eigenvalues-only row; "
          f"peak: numpy's float64 GEMM, {peak:.0f} GFLOP/s at 2048^2, measured before the runs; "
          "'-' where the flop count depends on the solver)")  # fmt: skip
    if "ours 5-fold" in med:
        print(f"himalaya KernelRidgeCV (5-fold) / ours 5-fold = "
              f"{med['himalaya KernelRidgeCV (5-fold)'] / med['ours 5-fold']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

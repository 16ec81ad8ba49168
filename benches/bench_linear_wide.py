"""Linear probes with fewer rows than features (the dual route), against their peers and floor.

Run from the repository root::

    PYTHONPATH=python python benches/bench_linear_wide.py      # n=1000, d=4096; n=2000, d=3000
    PYTHONPATH=python python benches/bench_linear_wide.py --quick        # n=1000, d=4096, 1 round
    PYTHONPATH=python python benches/bench_linear_wide.py --n 500 --d 8192 --repeats 5

The usual probing set-up: a few thousand labelled prompts, hidden states of an LLM's width.
Data: `bench_linear.make_data` (activation-like float32 rows, k targets), the alpha grid
``np.logspace(-3, 4, 20)`` times the mean eigenvalue of the centred Gram, the same absolute
grid for every competitor. All run in one process on the same arrays, round-robin in rotated
order, ``--repeats`` rounds; the table shows medians, each method's ratio to ours with the same
criterion (above 1: ours is faster), and the load average before and after.

* ours: ``LinearProbe(alphas=grid, cv=...)`` at its defaults, which here take the dual route
  (the kernel Uc Uc^T of the centred float64 rows by SYRK, its band reduction for GCV or its
  eigendecomposition for LOO / K-fold, every alpha from that one decomposition);
* ours primal: the same with ``solver="primal"`` (the d x d statistics and their
  eigendecomposition or tridiagonal reduction: what every width got before the dual route;
  skipped above d = 3000 unless --primal, it takes tens of seconds);
* numpy (same algorithm): the float64 kernel, ``eigh``, GCV over the alphas from the spectrum
  and the coefficients at the best alpha, written directly; and the same with the kernel
  formed in float32 from the float32 rows (then upcast: what a float32 pipeline would do);
* floor: the float64 kernel (SYRK) plus LAPACK's eigenvalues alone (``eigvalsh``: the
  tridiagonal reduction every exact GCV of a dense kernel needs in some form; ours is a band
  reduction of the same flop count); "GFLOP/s" counts those n^2 d + 4 n^3 / 3 useful flops
  for ours and the floor, as a fraction of numpy's float64 GEMM peak measured at the start;
* scikit-learn ``RidgeCV(alphas=grid)`` (efficient LOO; for n < d its "gram" mode, the
  eigendecomposition of X X^T) against ours with cv="loo" (the same criterion) and against
  ours GCV; ``GridSearchCV(Ridge, 5 folds)`` (100 refits) against ours with cv=5
  (--sklearn-kfold; slow);
* himalaya ``KernelRidgeCV(kernel="linear", cv=5)`` and ``RidgeCV(cv=5)`` against ours with
  cv=5, when himalaya is installed; torch (CPU) the same algorithm as numpy's, when installed;
  scikit-learn-intelex ``Ridge`` (one alpha, no selection) when installed.

Accuracy: the largest relative difference of each competitor's predictions on the training
rows from ours with the same criterion (ours is refitted at the competitor's alpha where they
chose differently: marked *).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402, I001
    add_threads_option, fmt_table, gemm_peak_gflops, have, loadavg, reldiff, rotated_medians,
    set_threads,
)  # fmt: skip
from bench_linear import alpha_grid, make_data  # noqa: E402

KFOLD = 5


def kernel_gcv(K: np.ndarray, Uc: np.ndarray, yc: np.ndarray, grid: np.ndarray) -> tuple:
    """GCV over `grid` from the eigendecomposition of the centred kernel K (one intercept's
    null direction among its eigenvalues, clamped), and (coef, best alpha) at the best one."""
    lam, U = np.linalg.eigh(K)
    n = K.shape[0]
    keep = lam > lam[-1] * n * np.finfo(float).eps
    lam, U = lam[keep], U[:, keep]
    B = U.T @ yc
    outside = ((yc - U @ B) ** 2).sum(axis=0)
    scores = []
    for a in grid:
        f = a / (lam + a)
        rss = ((f[:, None] * B) ** 2).sum(axis=0) + outside
        resid = (n - 1 - lam.size) + f.sum()
        scores.append(float(np.mean(n * rss / resid**2)))
    best = int(np.argmin(scores))
    dual = U @ (B / (lam + grid[best])[:, None])
    return Uc.T @ dual, float(grid[best])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 2000])
    ap.add_argument("--d", type=int, nargs="+", default=[4096, 3000])
    ap.add_argument("--k", type=int, default=1, help="targets")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="n=1000, d=4096 only, one round")
    ap.add_argument("--primal", action="store_true", help="time solver='primal' at any d")
    ap.add_argument("--sklearn-kfold", action="store_true", help="GridSearchCV(Ridge, 5 folds)")
    add_threads_option(ap)
    args = ap.parse_args()
    if args.quick:
        args.n, args.d, args.repeats = [1000], [4096], 1
    if len(args.n) != len(args.d):
        ap.error("--n and --d take the same number of values (one case per pair)")
    _limiter = set_threads(args.threads, with_torch=True, with_probes=True)
    import shallowprobes as sp

    peak = gemm_peak_gflops()["numpy"]
    print(f"bench_linear_wide: {args.threads} threads, k={args.k}, numpy float64 GEMM peak "
          f"{peak:.0f} GFLOP/s, shallowprobes {sp.__version__}")  # fmt: skip
    for n, d in zip(args.n, args.d):
        run_case(sp, n, d, args, peak)


def run_case(sp: Any, n: int, d: int, args: argparse.Namespace, peak: float) -> None:
    X, Y = make_data(n, d, args.k, seed=n + d)
    y = Y[:, 0] if args.k == 1 else Y
    grid = alpha_grid(X)
    Xd = X.astype(np.float64)
    Uc = Xd - Xd.mean(axis=0)
    yc = (y - y.mean(axis=0)).reshape(n, -1)
    fits: dict[str, Any] = {}

    def ours(cv: Any, solver: str = "auto") -> Callable[[], None]:
        def run() -> None:
            fits[(cv, solver)] = sp.LinearProbe(alphas=grid, cv=cv, solver=solver).fit(X, y)

        return run

    def numpy_algorithm() -> None:
        Uc64 = X.astype(np.float64)
        Uc64 -= Uc64.mean(axis=0)
        fits["numpy"] = kernel_gcv(Uc64 @ Uc64.T, Uc64, yc, grid)

    def numpy_algorithm_f32() -> None:
        U32 = X - X.mean(axis=0)
        K = (U32 @ U32.T).astype(np.float64)
        fits["numpy f32"] = kernel_gcv(K, U32.astype(np.float64), yc, grid)

    def floor() -> None:
        np.linalg.eigvalsh(Uc @ Uc.T)

    calls: dict[str, Callable[[], None]] = {
        "ours GCV": ours("gcv"), "ours LOO": ours("loo"), f"ours {KFOLD}-fold": ours(KFOLD),
        "numpy same algorithm (f64 kernel)": numpy_algorithm,
        "numpy same algorithm (f32 kernel)": numpy_algorithm_f32,
        "floor (f64 kernel + eigenvalues)": floor,
    }  # fmt: skip
    if d <= 3000 or args.primal:
        calls["ours primal GCV"] = ours("gcv", "primal")
    if have("sklearn"):
        from sklearn.linear_model import Ridge, RidgeCV
        from sklearn.model_selection import GridSearchCV, KFold

        def sk_loo() -> None:
            fits["sklearn"] = RidgeCV(alphas=grid).fit(X, y)

        calls["sklearn RidgeCV (LOO)"] = sk_loo
        if args.sklearn_kfold:

            def sk_kfold() -> None:
                search = GridSearchCV(Ridge(), {"alpha": list(grid)}, cv=KFold(KFOLD),
                                      scoring="neg_mean_squared_error")  # fmt: skip
                fits["sklearn kfold"] = search.fit(X, y)

            calls[f"sklearn GridSearchCV ({KFOLD}-fold)"] = sk_kfold
    if have("himalaya"):
        from himalaya.kernel_ridge import KernelRidgeCV
        from himalaya.ridge import RidgeCV as HimalayaRidgeCV

        def hi_kernel() -> None:
            KernelRidgeCV(alphas=grid, kernel="linear", cv=KFOLD).fit(Xd, y)

        def hi_ridge() -> None:
            HimalayaRidgeCV(alphas=grid, cv=KFOLD).fit(Xd, y)

        calls[f"himalaya KernelRidgeCV ({KFOLD}-fold)"] = hi_kernel
        calls[f"himalaya RidgeCV ({KFOLD}-fold)"] = hi_ridge
    if have("torch"):
        import torch

        def torch_algorithm() -> None:
            U = torch.from_numpy(X).to(torch.float64)
            U -= U.mean(0)
            lam, V = torch.linalg.eigh(U @ U.T)
            del lam, V  # the decomposition is the cost; GCV on it as numpy's is n^2 more

        calls["torch same algorithm (kernel + eigh)"] = torch_algorithm
    if have("sklearnex"):
        from sklearnex.linear_model import Ridge as IntelRidge

        def intel() -> None:
            IntelRidge(alpha=float(grid[len(grid) // 2])).fit(X, y)

        calls["sklearnex Ridge (one alpha)"] = intel

    names = list(calls)
    warm = np.ones((3, max(n, 1024), max(n, 1024)))  # first touch of fresh memory, untimed
    del warm
    calls["ours GCV"]()  # untimed: the core's thread pool and first-call imports start here
    before = loadavg()
    med = rotated_medians(calls, args.repeats, digits=3)
    useful = float(n) * n * d + 4.0 * n**3 / 3.0

    def against(m: str) -> str:
        """Which ours row a competitor is compared with (same criterion)."""
        if "LOO" in m:
            return "ours LOO"
        if "fold" in m:
            return f"ours {KFOLD}-fold"
        return "ours GCV"

    def rate(m: str) -> str:
        if m not in ("ours GCV", "floor (f64 kernel + eigenvalues)"):
            return "-"
        g = useful / med[m] / 1e9
        return f"{g:.0f} ({g / peak:.2f})"

    ours_pred = {c: f.predict(X) for c, f in fits.items() if isinstance(c, tuple)}

    def accuracy(m: str) -> str:
        key = {"sklearn RidgeCV (LOO)": "sklearn", "numpy same algorithm (f64 kernel)": "numpy",
               "numpy same algorithm (f32 kernel)": "numpy f32",
               "ours primal GCV": ("gcv", "primal")}.get(m)  # fmt: skip
        if key is None or key not in fits:
            return "-"
        mine = fits[("loo", "auto")] if m.startswith("sklearn") else fits[("gcv", "auto")]
        other = fits[key]
        if isinstance(other, tuple) and not isinstance(key, tuple):  # (coef, alpha)
            pred_other, alpha_other = Uc @ other[0] + y.mean(axis=0), other[1]
        else:
            pred_other, alpha_other = other.predict(X), float(np.max(other.alpha_))
        star = ""
        pred_mine = ours_pred[("loo", "auto") if m.startswith("sklearn") else ("gcv", "auto")]
        if not np.isclose(float(np.max(mine.alpha_)), alpha_other, rtol=1e-9):
            pred_mine = sp.LinearProbe(alphas=[alpha_other]).fit(X, y).predict(X)
            star = "*"
        return f"{reldiff(np.reshape(pred_other, np.shape(pred_mine)), pred_mine):.1e}{star}"

    rows = [[m, f"{med[m]:.3f}", f"{med[m] / med[against(m)]:.2f}", against(m), rate(m),
             accuracy(m)] for m in names]  # fmt: skip
    print(f"\nn={n}, d={d}, k={args.k}, {len(grid)} alphas; load average before: {before}, "
          f"after: {loadavg()}")  # fmt: skip
    print(fmt_table(["method", "median s", "/ ours", "ours row", "GFLOP/s (/ peak)",
                     "pred. rel. diff"], rows))  # fmt: skip
    print(f"ours GCV / floor = {med['ours GCV'] / med['floor (f64 kernel + eigenvalues)']:.2f}; "
          f"solver_ = {fits[('gcv', 'auto')].solver_!r}")  # fmt: skip


if __name__ == "__main__":
    main()

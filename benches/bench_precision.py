"""Float32 input, 20 alphas, GCV: the float64 and float32 Gram paths against the field.

Run from the repository root::

    PYTHONPATH=python python benches/bench_precision.py            # quick: n = 20 000
    PYTHONPATH=python python benches/bench_precision.py --full     # n = 100 000, d = 768, k = 16

Every competitor fits the same float32 array (activation-like, with large column offsets, from
`bench_linear.make_data`) with the same absolute 20-alpha grid, ``--repeats`` rounds in rotated
order; each competitor's run directly follows a run of ours (float64 Gram) and the table shows
the median of those paired ratios (docs/design.md §5; the machine is shared). Rows:

* ours f64 / ours f32: ``LinearProbe(cv="gcv", precision="float64" | "float32")``;
  ours LOO, ours 5-fold: the float64 path with cv="loo" / cv=5 (LOO/GCV and 5-fold/GCV ratios);
* numpy f64 / numpy f32: the same algorithm in numpy (shifted row blocks, ``Xb.T @ Xb`` in
  float64 resp. float32 per 1024-row block accumulated in float64, one ``eigh``, GCV for all
  alphas from the spectrum);
* torch: the same algorithm in torch on CPU, float64 (`bench_linear.fit_torch`);
* sklearn: ``RidgeCV(alphas=grid)`` (efficient LOO);
* sklearnex: ``sklearnex.linear_model.Ridge`` at one alpha (it has no alpha search), when
  scikit-learn-intelex is installed; then ``--pairs`` extra rounds run ours f32 (20 alphas,
  GCV) and sklearnex back to back and print the median of ours f32 / sklearnex directly (the
  issue's head-to-head; the table's two rows are each paired with a different run of ours f64);
* himalaya: ``himalaya.ridge.RidgeCV(alphas=grid, cv=5, fit_intercept=True)`` (its SVD
  solver, numpy backend), when installed and n <= ``--himalaya-max-n`` (it took 103 s at
  n = 20 000 here, so it is left out of the full size unless asked for); compare it with
  ours 5-fold, the same selection;
* floor f64 / floor f32: the Gram at the measured GEMM peak of that precision (2 n d² flops,
  counted like a full GEMM) plus one measured d × d ``eigh``.

"frac peak" is (2 n d² / time) / GEMM peak of the Gram's precision: what fraction of the
machine's matmul rate the whole fit reaches. The load average is printed before and after.
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
import shallowprobes as sp  # noqa: E402
from _common import fmt_table, have, loadavg, log, set_threads  # noqa: E402
from bench_linear import alpha_grid, fit_torch, make_data  # noqa: E402

BLOCK = 1024


def gemm_peaks(size: int = 2048, tries: int = 6) -> dict[str, float]:
    rng = np.random.default_rng(0)
    out = {}
    for name, dt in (("float64", np.float64), ("float32", np.float32)):
        a = rng.standard_normal((size, size)).astype(dt)
        b = rng.standard_normal((size, size)).astype(dt)
        a @ b
        ts = []
        for _ in range(tries):
            t0 = time.perf_counter()
            a @ b
            ts.append(time.perf_counter() - t0)
        out[name] = 2.0 * size**3 / min(ts) / 1e9
    return out


def numpy_gcv(X: np.ndarray, Y: np.ndarray, grid: np.ndarray, gram_dtype: Any) -> np.ndarray:
    """docs/design.md §3 in numpy: shifted blocks, Gram per block in `gram_dtype`, f64 sums."""
    n, d = X.shape
    k = Y.shape[1]
    sx0 = X[:256].astype(np.float64).mean(0)
    sy0 = Y[:256].mean(0)
    G = np.zeros((d, d))
    C = np.zeros((d, k))
    sx, sy, syy = np.zeros(d), np.zeros(k), np.zeros(k)
    for s in range(0, n, BLOCK):
        xb = (X[s : s + BLOCK].astype(np.float64) - sx0).astype(gram_dtype)
        yb = Y[s : s + BLOCK] - sy0
        G += xb.T @ xb
        C += (xb.T @ yb.astype(gram_dtype)).astype(np.float64)
        sx += xb.sum(0, dtype=np.float64)
        sy += yb.sum(0)
        syy += (yb * yb).sum(0)
    G -= np.outer(sx, sx) / n
    C -= np.outer(sx, sy) / n
    cyy = syy - sy * sy / n
    lam, V = np.linalg.eigh(0.5 * (G + G.T))
    lam = np.where(lam <= lam.max() * d * np.finfo(float).eps, 0.0, lam)
    B = V.T @ C
    R = 1.0 / (lam[None, :] + grid[:, None])
    rss = np.maximum(cyy[None] - ((lam[None] + 2 * grid[:, None]) * R * R) @ (B * B), 0.0)
    dof = n - ((lam[None] * R).sum(1) + 1.0)
    best = int(np.argmin((n * rss / (dof * dof)[:, None]).mean(1)))
    return V @ (B * R[best][:, None])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="n = 100 000 (default: 20 000)")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--no-sklearn", action="store_true")
    p.add_argument(
        "--pairs", type=int, default=8, help="head-to-head rounds of ours f32 and sklearnex"
    )
    p.add_argument(
        "--sklearn-repeats", type=int, default=1,
        help="rounds that time RidgeCV and himalaya (slow)",
    )
    p.add_argument(
        "--himalaya-max-n", type=int, default=20_000,
        help="largest n at which himalaya's RidgeCV is timed (slow: ~100 s at 20 000)",
    )
    args = p.parse_args(argv)
    n = args.n or (100_000 if args.full else 20_000)
    d, k = args.d, args.k
    limiter = set_threads(args.threads, with_torch=True, with_probes=True)  # noqa: F841
    load_before = loadavg()
    log(f"data n={n} d={d} k={k}")
    X, Y = make_data(n, d, k)
    grid = alpha_grid(X)
    peaks = gemm_peaks()
    rng = np.random.default_rng(3)
    S = rng.standard_normal((d, d))
    S = S @ S.T

    def eigh_time() -> float:
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            np.linalg.eigh(S)
            ts.append(time.perf_counter() - t0)
        return min(ts)

    t_eigh = eigh_time()
    gram_flops = 2.0 * n * d * d

    def ours(cv: Any, precision: str) -> Callable[[], Any]:
        return lambda: sp.LinearProbe(alphas=grid, cv=cv, precision=precision).fit(X, Y).coef_

    comps: dict[str, Callable[[], Any]] = {
        "ours f64 (GCV)": ours("gcv", "float64"),
        "ours f32 Gram (GCV)": ours("gcv", "float32"),
        "ours LOO (f64)": ours("loo", "float64"),
        "ours 5-fold (f64)": ours(5, "float64"),
        "numpy f64 Gram": lambda: numpy_gcv(X, Y, grid, np.float64),
        "numpy f32 Gram": lambda: numpy_gcv(X, Y, grid, np.float32),
    }
    if have("torch"):
        comps["torch CPU (f64)"] = lambda: fit_torch(X, Y, grid)[0]
    if not args.no_sklearn:
        from sklearn.linear_model import RidgeCV

        comps["sklearn RidgeCV"] = lambda: RidgeCV(alphas=grid).fit(X, Y).coef_
    slow = {"sklearn RidgeCV"}
    if have("himalaya") and n <= args.himalaya_max_n:
        from himalaya.ridge import RidgeCV as HRidgeCV

        slow.add("himalaya RidgeCV (5-fold)")
        comps["himalaya RidgeCV (5-fold)"] = lambda: HRidgeCV(
            alphas=grid, cv=5, fit_intercept=True
        ).fit(X, Y).coef_
    sklearnex_note = ""
    if have("sklearnex"):
        from sklearnex.linear_model import Ridge as XRidge

        a_mid = float(grid[len(grid) // 2])
        comps["sklearnex Ridge (1 alpha)"] = lambda: XRidge(alpha=a_mid).fit(X, Y).coef_
    else:
        sklearnex_note = "scikit-learn-intelex: not installed"
    names = list(comps)
    times: dict[str, list[float]] = {c: [] for c in names}
    import warnings

    warnings.filterwarnings("ignore")
    sp.LinearProbe(alphas=grid).fit(X[:2000], Y[:2000])
    # Paired timing: every competitor runs right after a run of ours f64, and its ratio is
    # taken against that run, so load changes on a shared machine cancel out of the ratios.
    ratios: dict[str, list[float]] = {c: [] for c in names}

    def timed(c: str) -> float:
        t0 = time.perf_counter()
        comps[c]()
        t = time.perf_counter() - t0
        times[c].append(t)
        return t

    others = [c for c in names if c != "ours f64 (GCV)"]
    for r in range(args.repeats):
        order = others[r % len(others) :] + others[: r % len(others)]
        for c in order:
            if c in slow and r >= args.sklearn_repeats:
                continue
            t_ref = timed("ours f64 (GCV)")
            t_c = timed(c)
            ratios[c].append(t_c / t_ref)
            log(f"  {c}: {t_c:.3f}s (ours f64 {t_ref:.3f}s)")
    ratios["ours f64 (GCV)"] = [1.0]
    med = {c: statistics.median(v) for c, v in times.items()}
    med_ratio = {c: statistics.median(v) for c, v in ratios.items()}
    # accuracy of the float32 Gram against the float64 path
    c64 = sp.LinearProbe(alphas=grid, precision="float64").fit(X, Y)
    c32 = sp.LinearProbe(alphas=grid, precision="float32").fit(X, Y)
    rel = float(np.abs(c32.coef_ - c64.coef_).max() / np.abs(c64.coef_).max())
    # the floor is a best case: fastest eigh and highest GEMM rate seen at the start or the end
    t_eigh = min(t_eigh, eigh_time())
    peaks = {key: max(v, peaks[key]) for key, v in gemm_peaks().items()}
    floors = {
        "floor f64 (Gram at peak + eigh)": gram_flops / (peaks["float64"] * 1e9) + t_eigh,
        "floor f32 (Gram at peak + eigh)": gram_flops / (peaks["float32"] * 1e9) + t_eigh,
    }
    base = med["ours f64 (GCV)"]
    rows = []
    for c in names + list(floors):
        t = med.get(c, floors.get(c))
        ratio = med_ratio.get(c, t / base)
        prec = "float32" if "f32" in c else "float64"
        frac = gram_flops / t / 1e9 / peaks[prec]
        spread = max(times[c]) / min(times[c]) if c in times else 1.0
        runs = len(times[c]) if c in times else 0
        rows.append([c, f"{t:.3f}", f"{ratio:.2f}", f"{frac:.2f} of {prec}", f"{spread:.2f}",
                     str(runs)])  # fmt: skip
    print(f"bench_precision: n={n} d={d} k={k}, 20 alphas, float32 input, {args.threads} threads")
    print(
        f"GEMM peak (numpy, 2048^2, best at start/end): float64 {peaks['float64']:.1f} GFLOP/s, "
        f"float32 {peaks['float32']:.1f} GFLOP/s; eigh({d}) {t_eigh:.3f}s"
    )
    print(f"load average before: {load_before}, after: {loadavg()}")
    headers = ["competitor", "median s", "/ ours f64", "frac peak", "spread", "runs"]
    print(fmt_table(headers, rows))
    print("(/ ours f64: median over rounds of time / time of the ours-f64 run just before it;")
    print(" floors: ratio to the median ours-f64 time)")
    print(
        f"LOO / GCV = {med_ratio['ours LOO (f64)']:.2f}, "
        f"5-fold / GCV = {med_ratio['ours 5-fold (f64)']:.2f}, "
        f"f32 Gram speed-up = {1 / med_ratio['ours f32 Gram (GCV)']:.2f}x, "
        f"f32 vs f64 coef max rel diff = {rel:.1e}"
    )
    if "himalaya RidgeCV (5-fold)" in med_ratio:
        print(
            "himalaya RidgeCV (5-fold) / ours 5-fold = "
            f"{med_ratio['himalaya RidgeCV (5-fold)'] / med_ratio['ours 5-fold (f64)']:.1f}"
        )
    elif not have("himalaya"):
        print("himalaya: not installed")
    else:
        print(f"himalaya: not timed at n = {n} > --himalaya-max-n = {args.himalaya_max_n}")
    if sklearnex_note:
        print(sklearnex_note)
    elif args.pairs > 0:
        head = [timed("ours f32 Gram (GCV)") / timed("sklearnex Ridge (1 alpha)")
                for _ in range(args.pairs)]  # fmt: skip
        print(
            f"head to head, {args.pairs} back-to-back rounds (load {loadavg()}): ours f32 "
            f"(20 alphas, GCV) / sklearnex Ridge (1 alpha) = median {statistics.median(head):.2f} "
            f"(range {min(head):.2f}-{max(head):.2f})"
        )


if __name__ == "__main__":
    main()

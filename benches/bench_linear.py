"""Benchmark of linear ridge probes: shallowprobes vs numpy reference, torch (CPU) and sklearn.

Run from the repository root::

    PYTHONPATH=python python benches/bench_linear.py            # --quick (default), < 2 min
    PYTHONPATH=python python benches/bench_linear.py --full     # whole grid (tens of minutes)
    PYTHONPATH=python python benches/bench_linear.py --target   # only n=100k, d=768, k=16

Methodology (docs/design.md §5: speed is judged as ratios within one run, and against the machine's
measured GEMM peak):

* Data. Synthetic activation-like features: anisotropic columns (scales decaying over ~3
  e-folds), a rank-8 shared component, per-column offsets with two "massive activation" columns
  (offset 50), and k regression targets that are a linear function of the features plus noise.
  X is generated as float32; the float64 case is the *same values* upcast, so the float32 vs
  float64 coefficient difference measures only accumulation round-off, not data rounding.
* Alpha grid. ``np.logspace(-3, 4, 20)`` times the mean eigenvalue of the centred Gram (computed
  once per data set); the identical absolute grid is passed to every competitor.
* Competitors, all on the same arrays in the same process:
  ours    ``LinearProbe(alphas=grid, cv="gcv")`` and ``cv=5`` (exact K-fold), backend
          ``--ours-backend`` (default "auto": the Rust core when built, otherwise numpy; the
          header says which one ran);
  ref     the same estimators with ``backend="numpy"`` (the plain numpy reference); when ours
          resolves to numpy it *is* this reference, so it is timed once and the ref columns
          read "=ours";
  torch   the same algorithm written here in torch on CPU: float64 Gram by chunked upcast,
          ``torch.linalg.eigh``, GCV over all alphas from the spectrum;
  sklearn ``RidgeCV(alphas=grid)`` (efficient exact leave-one-out, ``gcv_mode="auto"``, which
          is the covariance/eigen mode for n > d; it upcasts float32 input to float64 and
          returns float32 coefficients for it). It costs ~20 Gram-sized products (one per
          alpha, for the leverages), so it is timed ``--sklearn-repeats`` times (default 1
          with --quick, else --repeats).
* Timing. Each timed call is a complete fit from the raw arrays (validation included). The
  competitors are run round-robin, ``--repeats`` times (default 3), rotating their order on
  each round so that slow drifts of a shared machine hit every competitor alike; the table
  shows the median. Speedups are ``time(X) / time(ours)``: above 1 means ours is faster. The
  "spread" column is the largest max/min ratio over the repeats of any competitor in that row
  (a noise indicator). All libraries get the same thread count (``--threads``, default: all
  CPUs): shallowprobes.set_num_threads, threadpoolctl for BLAS/OpenMP, torch.set_num_threads.
* Gram step. ``SufficientStats().update(X, Y)`` (float64 accumulation of X^T X, X^T Y, sums)
  vs numpy ``X.T @ X`` on the same array (numpy dispatches this to a BLAS syrk); for float32
  input also numpy float32 ``X.T @ X`` and the float64 upcast ``Xd = X.astype(float64);
  Xd.T @ Xd`` (upcast time included). FLOP convention: a GEMM C = A B of shapes (m x k)(k x n)
  counts 2 m n k flops, so the Gram of an n x d matrix is 2 n d^2 "GEMM-equivalent" flops,
  and the peak is measured the same way (square 2048 float64 matmuls, numpy and torch, best of
  8 at the start of the run and 8 after each data set, the fastest seen). A symmetric rank-n update
  (syrk) needs only half of that, n d^2 useful flops: "frac peak" is (2 n d^2 / t) / peak, so
  1.0 means "as fast as a GEMM at peak computing the full product" and an ideal syrk could
  approach 2.0; "useful frac" is half of that (1.0 = every flop the symmetric update really
  needs, at GEMM peak).
* Memory (float32 input). For each (n, d), with the largest k, a fresh child process (which
  never imports torch) builds X as float32 in chunks, warms up on a slice of it, then runs the
  Gram step, the GCV fit and the 5-fold fit one after the other. Before each call it records
  the resident set size and resets the kernel's peak mark (/proc/self/clear_refs; where that is
  impossible ru_maxrss is used and the value is marked "<=", an upper bound); after it, it
  reads the peak (VmHWM). "extra" = peak - RSS before: the call's own working memory. A
  float64 copy of X alone would add n d 8 bytes ("f64 copy"), so worst / f64copy below 1 shows
  that no such copy is made; the target is peak <= input + O(block d + d^2).
* Accuracy sanity. Max relative difference (max |a - b| / max |b|) between ours on float32 and
  on float64 input (target <= 1e-6), between ours and the numpy reference and torch
  coefficients, and between ours and sklearn predictions on 4096 rows (GCV and LOO may pick
  different alphas: then ours is refitted at sklearn's alpha for the comparison, marked *;
  for float32 input sklearn rounds its coefficients to float32, so ~1e-7 is expected there).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Optional

import numpy as np
import shallowprobes as sp
from shallowprobes import LinearProbe, SufficientStats

from _common import (  # isort: skip
    activation_layout, add_threads_option, fe, fmt_table, fs, fx, gemm_peak_gflops, gram_upcast,
    have, loadavg, log, peak_rss, reldiff, reset_peak, rss_now, set_threads, version,
)  # fmt: skip

N_ALPHAS = 20
KFOLD = 5
SANITY_ROWS = 4096
GEN_CHUNK = 2048
TORCH_BLOCK = 8192
MB = 1024.0**2
OURS = "auto"  # backend of "ours" (--ours-backend); module-level so the memory child sees it


# ---------------------------------------------------------------------------------- data
def make_data(n: int, d: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Activation-like float32 features (n, d) and float64 targets (n, k), built in chunks.

    Peak memory while building is the output plus O(GEN_CHUNK * d), so a child process that
    measures memory starts from a clean baseline.
    """
    rng = np.random.default_rng(seed)
    rank = 8
    col_scale, mix, offset = activation_layout(rng, d, rank)
    signal_var = float(np.sum(col_scale**2)) + float(np.sum(mix**2))
    W = rng.standard_normal((d, k)) / np.sqrt(signal_var)
    X = np.empty((n, d), dtype=np.float32)
    Y = np.empty((n, k), dtype=np.float64)
    for start in range(0, n, GEN_CHUNK):
        stop = min(start + GEN_CHUNK, n)
        c = stop - start
        xb = rng.standard_normal((c, d)) * col_scale + rng.standard_normal((c, rank)) @ mix
        Y[start:stop] = xb @ W + 0.7 * rng.standard_normal((c, k))
        X[start:stop] = xb + offset
    return X, Y


def alpha_grid(X: np.ndarray) -> np.ndarray:
    """logspace(-3, 4, 20) times the mean eigenvalue of the centred Gram (= trace / d)."""
    n, d = X.shape
    total = np.zeros(d)
    total_sq = np.zeros(d)
    for start in range(0, n, 8192):
        xb = X[start : start + 8192].astype(np.float64)
        total += xb.sum(axis=0)
        total_sq += (xb * xb).sum(axis=0)
    mean = total / n
    trace = float(np.sum(total_sq - n * mean * mean))
    return np.logspace(-3, 4, N_ALPHAS) * (trace / d)


def targets(Y16: np.ndarray, k: int) -> np.ndarray:
    return np.ascontiguousarray(Y16[:, 0]) if k == 1 else np.ascontiguousarray(Y16[:, :k])


# ---------------------------------------------------------------------------------- competitors
Fit = tuple[np.ndarray, np.ndarray, float]  # coef (d, k), intercept (k,), chosen alpha


def _as_dk(coef: np.ndarray, d: int) -> np.ndarray:
    coef = np.asarray(coef, dtype=np.float64)
    return coef.reshape(d, 1) if coef.ndim == 1 else coef.T


def fit_ours(X: np.ndarray, Y: np.ndarray, grid: np.ndarray, cv: Any, backend: str) -> Fit:
    m = LinearProbe(alphas=grid, cv=cv, backend=backend).fit(X, Y)
    return _as_dk(m.coef_, X.shape[1]), np.atleast_1d(m.intercept_), float(m.alpha_)


def fit_sklearn(X: np.ndarray, Y: np.ndarray, grid: np.ndarray) -> Fit:
    from sklearn.linear_model import RidgeCV

    m = RidgeCV(alphas=grid).fit(X, Y)
    return _as_dk(m.coef_, X.shape[1]), np.atleast_1d(m.intercept_), float(m.alpha_)


def fit_torch(X: np.ndarray, Y: np.ndarray, grid: np.ndarray) -> Fit:
    """Ridge + GCV over all alphas, the docs/design.md §3 algorithm written directly in torch.

    Float64 statistics of shifted rows (shift = mean of the first block, as in shallowprobes),
    accumulated block by block from a zero-copy view of X; one eigh; RSS and dof per alpha from
    the spectrum; the alpha minimising the target-averaged GCV; coefficients at that alpha.
    """
    import torch

    f64 = torch.float64
    n, d = X.shape
    Xt = torch.from_numpy(X)
    Yt = torch.from_numpy(np.ascontiguousarray(Y, dtype=np.float64).reshape(n, -1))
    k = Yt.shape[1]
    shift_x = Xt[:TORCH_BLOCK].to(f64).mean(0)
    shift_y = Yt[:TORCH_BLOCK].mean(0)
    G = torch.zeros(d, d, dtype=f64)
    C = torch.zeros(d, k, dtype=f64)
    sx = torch.zeros(d, dtype=f64)
    sy = torch.zeros(k, dtype=f64)
    syy = torch.zeros(k, dtype=f64)
    for start in range(0, n, TORCH_BLOCK):
        xb = Xt[start : start + TORCH_BLOCK].to(f64) - shift_x
        yb = Yt[start : start + TORCH_BLOCK] - shift_y
        G.addmm_(xb.T, xb)
        C.addmm_(xb.T, yb)
        sx += xb.sum(0)
        sy += yb.sum(0)
        syy += (yb * yb).sum(0)
    G -= torch.outer(sx, sx) / n
    C -= torch.outer(sx, sy) / n
    cyy = (syy - sy * sy / n).clamp(min=0.0)
    G = 0.5 * (G + G.T)
    lam, V = torch.linalg.eigh(G)
    null = lam <= lam.max().clamp(min=0.0) * d * torch.finfo(f64).eps
    lam = torch.where(null, torch.zeros_like(lam), lam)
    B = V.T @ C
    B[null] = 0.0
    a = torch.from_numpy(np.asarray(grid, dtype=np.float64))
    R = 1.0 / (lam[None, :] + a[:, None])  # (A, d); the grid is strictly positive
    rss = (cyy[None, :] - ((lam[None, :] + 2.0 * a[:, None]) * R * R) @ (B * B)).clamp(min=0.0)
    resid_dof = n - ((lam[None, :] * R).sum(1) + 1.0)
    gcv = n * rss / (resid_dof * resid_dof)[:, None]
    best = int(torch.argmin(gcv.mean(1)))
    coef = V @ (B * R[best][:, None])
    intercept = (shift_y + sy / n) - (shift_x + sx / n) @ coef
    return coef.numpy(), intercept.numpy(), float(grid[best])


# ---------------------------------------------------------------------------------- helpers
def predict(fit: Fit, X: np.ndarray) -> np.ndarray:
    coef, intercept, _ = fit
    return X[:SANITY_ROWS].astype(np.float64) @ coef + intercept


def time_round_robin(
    calls: dict[str, Callable[[], Any]], repeats: int, fewer: Optional[dict[str, int]] = None
) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
    """Run every call `repeats` times (`fewer[name]` for some), round-robin, rotating the order.

    Returns (median seconds, max/min spread, last result) per name.
    """
    names = list(calls)
    reps = {name: (fewer or {}).get(name, repeats) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, Any] = {}
    for r in range(max(reps.values(), default=0)):
        shift = r % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            if r >= reps[name]:
                continue
            results.pop(name, None)
            gc.collect()
            t0 = time.perf_counter()
            out = calls[name]()
            times[name].append(time.perf_counter() - t0)
            results[name] = out
            del out
    med = {name: statistics.median(ts) for name, ts in times.items()}
    spread = {name: max(ts) / min(ts) for name, ts in times.items()}
    return med, spread, results


def ours_resolved() -> str:
    """The implementation that "ours" actually runs: "rust" or "numpy"."""
    if OURS == "rust" or (OURS == "auto" and sp.rust_available()):
        return "rust"
    return "numpy"


def ours_backend_label() -> str:
    label = f"backend={OURS!r} -> {ours_resolved()}"
    if ours_resolved() == "numpy":
        why = "Rust extension not built" if OURS == "auto" else "forced"
        label += f" ({why}: 'ours' == 'ref')"
    return label


# ---------------------------------------------------------------------------------- memory child
MEM_MODES = ("stats", "gcv", "kfold")


def mem_child(n: int, d: int, k: int, threads: int, seed: int) -> None:
    """Child process: build float32 X, then for each mode record RSS before and peak after."""
    set_threads(threads, with_torch=False, with_probes=True)  # torch is never imported here
    X, Y16 = make_data(n, d, max(k, 1), seed)
    Y = targets(Y16, k)
    del Y16
    grid = alpha_grid(X)
    out: dict[str, Any] = {"input": X.nbytes}
    # Warm up on a small slice (a view): BLAS thread buffers, allocated on first use, must not be
    # charged to the call being measured. (The parent sets MALLOC_MMAP_THRESHOLD_ so that freed
    # temporaries are returned to the OS and cannot hide inside "RSS before".)
    m = min(n, 512)
    fit_ours(X[:m], Y[:m], grid, KFOLD, OURS)
    SufficientStats(backend=OURS).update(X[:m], Y[:m])
    for mode in MEM_MODES:
        gc.collect()
        rss0 = rss_now()
        reset = reset_peak()
        hw0 = peak_rss()
        if mode == "gcv":
            fit_ours(X, Y, grid, "gcv", OURS)
        elif mode == "kfold":
            fit_ours(X, Y, grid, KFOLD, OURS)
        else:
            SufficientStats(backend=OURS).update(X, Y)
        hw1 = peak_rss()
        # without a reset, a peak below the earlier high-water mark is hidden: upper bound only
        out[mode] = {
            "rss0": rss0, "peak": hw1, "extra": max(hw1 - rss0, 0),
            "upper_bound": (not reset) and hw1 <= hw0,
        }  # fmt: skip
    print(json.dumps(out))


def measure_memory(n: int, d: int, k: int, threads: int, seed: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env["MALLOC_MMAP_THRESHOLD_"] = str(256 * 1024)  # glibc: big blocks are unmapped when freed
    cmd = [
        sys.executable, os.path.abspath(__file__), "--_mem-child",
        str(n), str(d), str(k), str(threads), str(seed), OURS,
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log(f"memory child failed (n={n}, d={d}, k={k}):\n{proc.stderr[-2000:]}")
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------- tables
def case_name(dtype: str, n: int, d: int, k: int) -> str:
    size = f"{n / 1000:g}k" if n >= 1000 else str(n)
    return f"{dtype} n={size} d={d} k={k}"


# ---------------------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="n=20k, d in {256,768}, k in {1,16}, float32 (default)"
    )
    mode.add_argument(
        "--full",
        action="store_true",
        help="n in {20k,100k}, d in {256,768,1024}, k in {1,16}, float32+float64",
    )
    mode.add_argument(
        "--target",
        action="store_true",
        help="only the key case n=100k, d=768, k=16, float32+float64",
    )
    p.add_argument("--n", type=int, nargs="+", help="override the n values")
    p.add_argument("--d", type=int, nargs="+", help="override the d values")
    p.add_argument("--k", type=int, nargs="+", help="override the k values")
    p.add_argument("--dtypes", nargs="+", choices=["float32", "float64"], help="override dtypes")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per competitor (median)")
    add_threads_option(p)
    p.add_argument(
        "--skip-sklearn-above",
        type=float,
        default=None,
        metavar="W",
        help="skip sklearn when n*d^2 > W (e.g. 8e10 skips only n=100k, d=1024)",
    )
    p.add_argument(
        "--sklearn-repeats",
        type=int,
        default=None,
        help="timed sklearn runs (default: 1 with --quick, else --repeats); sklearn is the "
        "slowest competitor by far, so one run suffices for its ratio",
    )
    p.add_argument("--no-sklearn", action="store_true", help="skip sklearn everywhere")
    p.add_argument("--no-torch", action="store_true", help="skip torch everywhere")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    p.add_argument(
        "--ours-backend",
        choices=["auto", "rust", "numpy"],
        default="auto",
        help="backend of 'ours' (default auto: Rust when built, else numpy)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = p.parse_args(argv)
    if args.full:
        ns, ds, ks, dts = [20_000, 100_000], [256, 768, 1024], [1, 16], ["float32", "float64"]
    elif args.target:
        ns, ds, ks, dts = [100_000], [768], [16], ["float32", "float64"]
    else:
        ns, ds, ks, dts = [20_000], [256, 768], [1, 16], ["float32"]
    args.ns = args.n or ns
    args.ds = args.d or ds
    args.ks = args.k or ks
    args.dts = args.dtypes or dts
    if args.repeats < 1 or args.threads < 1:
        p.error("--repeats and --threads must be >= 1")
    if args.sklearn_repeats is None:
        args.sklearn_repeats = 1 if not (args.full or args.target) else args.repeats
    args.sklearn_repeats = max(1, min(args.sklearn_repeats, args.repeats))
    return args


def warm_up(use_torch: bool, use_sklearn: bool) -> None:
    X, Y = make_data(2000, 64, 2, seed=123)
    grid = alpha_grid(X)
    fit_ours(X, Y, grid, "gcv", OURS)
    fit_ours(X, Y, grid, KFOLD, OURS)
    fit_ours(X, Y, grid, "gcv", "numpy")
    if use_torch:
        fit_torch(X, Y, grid)
    if use_sklearn:
        fit_sklearn(X, Y, grid)


class Bench:
    """State shared by the cases of one run, and the rows of the output tables."""

    def __init__(self, args: argparse.Namespace, peak: dict[str, float]) -> None:
        self.args = args
        self.use_torch = not args.no_torch and have("torch")
        self.use_sklearn = not args.no_sklearn and have("sklearn")
        self.peak = peak
        self.peak_best = max(peak.values())
        self.fit_rows: list[list[str]] = []
        self.gram_rows: list[list[str]] = []
        self.gram_rates: list[float] = []  # GEMM-equivalent GFLOP/s of our Gram step
        self.mem_rows: list[list[str]] = []
        self.acc_rows: list[list[str]] = []
        self.raw: list[dict] = []
        self.load0 = loadavg()
        # When ours runs the numpy backend it *is* the numpy reference: time it once.
        self.ref_distinct = ours_resolved() != "numpy"

    def data_set(self, n: int, d: int) -> None:
        """All (dtype, k) cases of one generated (n, d) data set."""
        args = self.args
        log(f"generating n={n} d={d} ...")
        X32, Y16 = make_data(n, d, max(args.ks), args.seed)
        grid = alpha_grid(X32)
        fits: dict[tuple[int, str], Fit] = {}  # ours-gcv fit per (k, dtype)
        for dtype in args.dts:
            X = X32 if dtype == "float32" else X32.astype(np.float64)
            for k in args.ks:
                self.case(X, X32, targets(Y16, k), grid, dtype, fits)
                gc.collect()
            del X
        del X32, Y16
        gc.collect()

    def case(
        self,
        X: np.ndarray,
        X32: np.ndarray,
        Y: np.ndarray,
        grid: np.ndarray,
        dtype: str,
        fits: dict[tuple[int, str], Fit],
    ) -> None:
        args = self.args
        n, d = X.shape
        k = 1 if Y.ndim == 1 else Y.shape[1]
        name = case_name(dtype, n, d, k)
        log(f"  {name}: fits ...")
        skip_sk = not self.use_sklearn or (
            args.skip_sklearn_above is not None and n * d * d > args.skip_sklearn_above
        )
        calls: dict[str, Callable[[], Any]] = {
            "ours_gcv": lambda: fit_ours(X, Y, grid, "gcv", OURS),
            "ours_kf": lambda: fit_ours(X, Y, grid, KFOLD, OURS),
        }
        if self.ref_distinct:
            calls["ref_gcv"] = lambda: fit_ours(X, Y, grid, "gcv", "numpy")
            calls["ref_kf"] = lambda: fit_ours(X, Y, grid, KFOLD, "numpy")
        if self.use_torch:
            calls["torch"] = lambda: fit_torch(X, Y, grid)
        if not skip_sk:
            calls["sklearn"] = lambda: fit_sklearn(X, Y, grid)
        med, spread, res = time_round_robin(calls, args.repeats, {"sklearn": args.sklearn_repeats})
        if not self.ref_distinct:  # 'auto' is the numpy reference: one measurement serves both
            med["ref_gcv"], med["ref_kf"] = med["ours_gcv"], med["ours_kf"]
            res["ref_gcv"], res["ref_kf"] = res["ours_gcv"], res["ours_kf"]
        t = med.get
        self.fit_rows.append([
            name, fs(t("ours_gcv")), fs(t("ours_kf")),
            fs(t("ref_gcv")) if self.ref_distinct else "=ours",
            fs(t("ref_kf")) if self.ref_distinct else "=ours",
            fs(t("torch")) if self.use_torch else "n/a",
            "skipped" if skip_sk else fs(t("sklearn")),
            fx(t("ref_gcv"), t("ours_gcv")), fx(t("ref_kf"), t("ours_kf")),
            fx(t("torch"), t("ours_gcv")), fx(t("sklearn"), t("ours_gcv")),
            f"{max(spread.values()):.2f}",
        ])  # fmt: skip
        self.accuracy(name, X, X32, Y, grid, dtype, fits, res)
        del res
        gmed = self.gram(name, X, Y)
        entry = {
            "case": name, "n": n, "d": d, "k": k, "dtype": dtype, "fit_median_s": med,
            "fit_spread": spread, "gram_median_s": gmed, "peak_gflops": self.peak_best,
        }  # fmt: skip
        if dtype == "float32" and not args.no_memory and k == max(args.ks):
            entry["memory"] = self.memory(name, n, d, k)
        self.raw.append(entry)

    def accuracy(self, name, X, X32, Y, grid, dtype, fits, res) -> None:
        """Untimed sanity checks on the fits of the timed runs."""
        n, d = X.shape
        k = 1 if Y.ndim == 1 else Y.shape[1]
        ours = res["ours_gcv"]
        fits[(k, dtype)] = ours
        other_dtype = "float64" if dtype == "float32" else "float32"
        if (k, other_dtype) in fits:
            c32, c64 = fits[(k, "float32")], fits[(k, "float64")]
        elif len(self.args.dts) == 1:  # the other dtype is not timed: one extra fit
            Xo = X32.astype(np.float64) if dtype == "float32" else X32
            other = fit_ours(Xo, Y, grid, "gcv", OURS)
            del Xo
            c32, c64 = (ours, other) if dtype == "float32" else (other, ours)
        else:  # the other dtype comes later in this run: reported on its row
            c32 = c64 = None
        d3264 = None
        if c32 is not None and c64 is not None:
            # different alphas chosen: the coefficients are not comparable
            d3264 = reldiff(c32[0], c64[0]) if c32[2] == c64[2] else float("nan")
        d_torch = reldiff(ours[0], res["torch"][0]) if "torch" in res else None
        sk_cell, same = "skipped", "-"
        if "sklearn" in res:
            sk = res["sklearn"]
            mine, star = ours, ""
            if sk[2] != ours[2]:
                mine, star = fit_ours(X, Y, np.array([sk[2]]), "gcv", OURS), "*"
            sk_cell = fe(reldiff(predict(mine, X), predict(sk, X))) + star
            same = "yes" if sk[2] == ours[2] else "no"
        self.acc_rows.append([
            name, str(int(np.argmin(np.abs(grid - ours[2])))),
            fe(d3264) if c32 is not None else f"(on {other_dtype})",
            fe(reldiff(ours[0], res["ref_gcv"][0])),
            fe(reldiff(res["ours_kf"][0], res["ref_kf"][0])), fe(d_torch), sk_cell, same,
        ])  # fmt: skip

    def gram(self, name: str, X: np.ndarray, Y: np.ndarray) -> dict[str, float]:
        """Time the Gram step alone: ours (float64 accumulation) vs numpy."""
        log(f"  {name}: Gram step ...")
        n, d = X.shape
        gcalls: dict[str, Callable[[], Any]] = {
            "ours": lambda: SufficientStats(backend=OURS).update(X, Y),
            "np_native": lambda: X.T @ X,
        }
        if X.dtype == np.float32:
            gcalls["np_up"] = lambda: gram_upcast(X)
        gmed, _, _ = time_round_robin(gcalls, self.args.repeats)
        gflop = 2.0 * n * d * d / 1e9
        self.gram_rows.append([
            name, fs(gmed["ours"]), fs(gmed["np_native"]), fs(gmed.get("np_up")),
            fx(gmed["np_native"], gmed["ours"]), fx(gmed.get("np_up"), gmed["ours"]),
            f"{gflop / gmed['ours']:.1f}", f"{gflop / gmed['np_native']:.1f}",
        ])  # fmt: skip
        self.gram_rates.append(gflop / gmed["ours"])
        return gmed

    def set_peak(self, peak: dict[str, float]) -> None:
        self.peak = peak
        self.peak_best = max(peak.values())
        for entry in self.raw:
            entry["peak_gflops"] = self.peak_best

    def memory(self, name: str, n: int, d: int, k: int) -> dict:
        log(f"  {name}: memory (child process) ...")
        mems = measure_memory(n, d, k, self.args.threads, self.args.seed)
        copy64 = n * d * 8

        def cell(mode: str) -> str:
            if mode not in mems:
                return "error"
            m = mems[mode]
            return ("<=" if m["upper_bound"] else "") + f"{m['extra'] / MB:.1f}"

        worst = max((mems[m]["extra"] for m in MEM_MODES if m in mems), default=0)
        self.mem_rows.append([
            name, f"{n * d * 4 / MB:.0f}", f"{copy64 / MB:.0f}", f"{d * d * 8 / MB:.1f}",
            cell("stats"), cell("gcv"), cell("kfold"), f"{worst / copy64:.2f}",
            f"{mems['gcv']['peak'] / MB:.0f}" if "gcv" in mems else "-",
        ])  # fmt: skip
        return mems

    def report(self) -> str:
        args, peak = self.args, self.peak
        versions = f"python {platform.python_version()}, numpy {np.__version__}"
        if self.use_sklearn:
            versions += f", sklearn {version('sklearn')}"
        if self.use_torch:
            versions += f", torch {version('torch')}"
        out = [
            "shallowprobes linear-probe benchmark",
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
            f"threads={args.threads}; repeats={args.repeats} (median; sklearn: "
            f"{args.sklearn_repeats}); {versions}",
            f"load average at start / end: {self.load0} / {loadavg()} (other processes "
            "running: timings are noisier; ratios still compare like with like)",
            f"ours = shallowprobes {ours_backend_label()}",
            f"alpha grid: logspace(-3, 4, {N_ALPHAS}) x mean eigenvalue of the centred Gram "
            f"(same for all); {KFOLD}fold = exact K-fold from statistics",
            "float64 GEMM peak (2mnk flops, 2048^2, best of 8 at start and after each data set): "
            + ", ".join(f"{lib} {v:.1f} GFLOP/s" for lib, v in peak.items())
            + f" -> peak = {self.peak_best:.1f}",
            "",
            "Fit time, seconds (median); speedup = time(X) / time(ours), >1 means ours faster",
            fmt_table(
                ["case", "ours gcv", "ours 5fold", "ref gcv", "ref 5fold", "torch", "sklearn",
                 "vs ref", "vs ref 5f", "vs torch", "vs sklearn", "spread"],
                self.fit_rows,
            ),
            "",
            "Gram step, seconds: ours = SufficientStats().update(X, Y) (float64 accumulation); "
            "np = X.T @ X in X's dtype;",
            "np f64up = X.astype(float64), then Xd.T @ Xd (float32 input only). GF/s = "
            "GEMM-equivalent 2 n d^2 / t;",
            "frac peak = GF/s / peak (a syrk needs only n d^2 flops, so it can reach ~2); "
            "useful frac = (n d^2 / t) / peak",
            fmt_table(
                ["case", "ours", "np", "np f64up", "vs np", "vs f64up", "ours GF/s", "np GF/s",
                 "frac peak", "useful frac"],
                [row + [f"{r / self.peak_best:.2f}", f"{0.5 * r / self.peak_best:.2f}"]
                 for row, r in zip(self.gram_rows, self.gram_rates)],
            ),
        ]  # fmt: skip
        if self.mem_rows:
            out += [
                "",
                "Memory, float32 input, MiB (one fresh child process per (n, d), largest k): "
                "extra = peak RSS - RSS before the call;",
                "a float64 copy of X alone would add 'f64 copy' (worst/f64copy >= 1 if one "
                "were made)",
                fmt_table(
                    ["case", "X f32", "f64 copy", "d^2 f64", "stats extra", "gcv extra",
                     "5fold extra", "worst/f64copy", "gcv peak"],
                    self.mem_rows,
                ),
            ]  # fmt: skip
        out += [
            "",
            "Accuracy sanity, max|a-b|/max|b|: f32 vs f64 = ours on float32 vs float64 input "
            "(same values; target <= 1e-6;",
            "nan = different alphas); ref, torch = coefficients; sklearn = predictions on "
            f"{SANITY_ROWS} rows (* = ours refitted at sklearn's alpha)",
            fmt_table(
                ["case", "alpha idx", "f32 vs f64", "vs ref gcv", "vs ref 5fold", "vs torch",
                 "vs sklearn", "same alpha"],
                self.acc_rows,
            ),
        ]  # fmt: skip
        return "\n".join(out)


def run(args: argparse.Namespace) -> dict:
    # keep the BLAS limits alive for the whole run
    limiter = set_threads(args.threads, with_probes=True)
    log(f"threads={args.threads}  ours backend: {ours_backend_label()}")
    peak = gemm_peak_gflops()
    log(f"float64 GEMM peak (2*m*n*k flops): {peak}")
    bench = Bench(args, peak)
    warm_up(bench.use_torch, bench.use_sklearn)
    for n in args.ns:
        for d in args.ds:
            bench.data_set(n, d)
            # A shared machine may be busy during any one measurement: measure the peak again
            # after each data set and use the best seen (the Gram columns use it at the end).
            for lib, v in gemm_peak_gflops().items():
                peak[lib] = max(peak.get(lib, 0.0), v)
    bench.set_peak(peak)
    print(bench.report(), flush=True)
    result = {
        "peak": bench.peak, "backend": ours_backend_label(), "threads": args.threads,
        "repeats": args.repeats, "cases": bench.raw,
    }  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    del limiter
    return result


def main(argv: Optional[list[str]] = None) -> None:
    global OURS
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_mem-child":
        n, d, k, threads, seed = (int(v) for v in argv[1:6])
        OURS = argv[6]
        mem_child(n, d, k, threads, seed)
        return
    args = parse_args(argv)
    OURS = args.ours_backend
    run(args)


if __name__ == "__main__":
    main()

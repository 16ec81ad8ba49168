"""Benchmark of the torch backend: shallowprobes(backend="torch") vs the same formulas written
directly in torch, vs the Rust core and scikit-learn on CPU; CUDA columns when a GPU is present.

Run from the repository root::

    PYTHONPATH=python python benches/bench_torch.py            # --quick (default), ~1-2 min
    PYTHONPATH=python python benches/bench_torch.py --full     # the issue's sizes

Cases (docs/design.md §5: ratios within one run, and against the measured peak):

* linear: LinearProbe with 20 alphas and 5-fold CV from bfloat16 activations
  (--full: n=1M, d=4096, k=16; --quick: n=20k, d=512, k=16). Competitors: ours on torch
  (CPU, and CUDA when present), "raw torch" (the docs/design.md §3 algorithm written here: float64
  Gram by chunked upcast, one eigh per fold, held-out errors from fold statistics), the Rust
  core on the CPU (from a float32 copy: numpy has no bfloat16), scikit-learn RidgeCV(cv=5)
  on CPU (float32; only at --quick sizes or with --sklearn).
* dual: QuadraticProbe(solver="dual") with GCV over 20 alphas (--full: n=20k, d=4096;
  --quick: n=3k, d=512), ours on torch vs raw torch (kernel, double centring, eigh) vs the Rust
  core; sklearn's KernelRidge(kernel="poly", degree=2) at one alpha for scale (--quick only).
* Gram step: SufficientStats(backend="torch").update(X) vs X.T @ X; achieved TFLOP/s counted
  as 2 n d^2 (GEMM convention) and compared with the float32 peak measured by a square
  float32 torch matmul with TF32 disabled (on CUDA) / the float64 CPU matmul peak.

Speedups are time(other) / time(ours torch): above 1 means ours is faster. Times are medians of
--repeats runs.
"""

# ruff: noqa: B023  (the timed lambdas are called at once, inside their loop iteration)
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover
    sys.exit("bench_torch needs torch: pip install 'shallowprobes[torch]'")

import shallowprobes as sp


def timeit(fn: Callable[[], Any], repeats: int, sync: bool = False) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def matmul_peak(device: str, dtype: torch.dtype, size: int) -> float:
    """Best FLOP/s of square matmuls (2 s^3 flops) with TF32 off."""
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    sync = device != "cpu"
    best = 0.0
    for _ in range(6):
        t, _ = timeit(lambda: a @ b, 1, sync)
        best = max(best, 2.0 * size**3 / t)
    return best


def make_data(n: int, d: int, k: int, device: str, seed: int = 0):
    """bfloat16 activations (anisotropic, offset columns) and k linear targets, built in chunks."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    scales = torch.exp(-torch.linspace(0, 3, d)).to(torch.float32)
    W = torch.randn(d, k, generator=g) / d**0.5
    X = torch.empty(n, d, dtype=torch.bfloat16, device=device)
    Y = torch.empty(n, k, dtype=torch.float64, device=device)
    step = 65536
    for s in range(0, n, step):
        m = min(step, n - s)
        xb = torch.randn(m, d, generator=g) * scales + 0.5
        X[s : s + m] = xb.to(torch.bfloat16).to(device)
        yb = xb @ W + 0.1 * torch.randn(m, k, generator=g)
        Y[s : s + m] = yb.double().to(device)
    return X, Y


def raw_torch_kfold(X, Y, alphas: np.ndarray, K: int) -> torch.Tensor:
    """K-fold ridge over all alphas, written directly in torch (docs/design.md §3 formulas)."""
    dev, n, d = X.device, X.shape[0], X.shape[1]
    k = Y.shape[1]
    folds = torch.arange(n, device=dev) % K
    G = torch.zeros(K, d + 1, d + 1, dtype=torch.float64, device=dev)
    C = torch.zeros(K, d + 1, k, dtype=torch.float64, device=dev)
    yy = torch.zeros(K, k, dtype=torch.float64, device=dev)
    step = max(256, (1 << 24) // d)
    for f in range(K):
        rows = torch.nonzero(folds == f).flatten()
        for s in range(0, rows.numel(), step):
            idx = rows[s : s + step]
            xb = torch.cat([X[idx].double(), torch.ones(idx.numel(), 1, device=dev,
                                                         dtype=torch.float64)], 1)  # fmt: skip
            yb = Y[idx]
            G[f].addmm_(xb.T, xb)
            C[f].addmm_(xb.T, yb)
            yy[f] += (yb * yb).sum(0)
    Gt, Ct = G.sum(0), C.sum(0)
    al = torch.as_tensor(alphas, device=dev)
    sse = torch.zeros(len(alphas), k, dtype=torch.float64, device=dev)
    for f in range(K):
        Gtr, Ctr = Gt - G[f], Ct - C[f]
        m = Gtr[d, d]
        mu, ym = Gtr[:d, d] / m, Ctr[d] / m
        Gc = Gtr[:d, :d] - m * torch.outer(mu, mu)
        Cc = Ctr[:d] - m * torch.outer(mu, ym)
        lam, V = torch.linalg.eigh(Gc)
        B = V.T @ Cc
        W = V @ (B[None] / (lam[None, :, None] + al[:, None, None]))  # (A, d, k)
        b0 = ym[None] - torch.einsum("d,adk->ak", mu, W)
        Wf = torch.cat([W, b0[:, None]], 1)  # (A, d+1, k)
        quad = (Wf * torch.matmul(G[f], Wf)).sum(1)
        cross = (Wf * C[f][None]).sum(1)
        sse += yy[f][None] - 2 * cross + quad
    return sse


def raw_torch_dual(X, Y, alphas: np.ndarray) -> torch.Tensor:
    """Dual degree-2 kernel ridge with GCV over all alphas, written directly in torch."""
    U = X.double()
    U = U - U.mean(0)
    n = U.shape[0]
    G = U @ U.T
    gamma = n / float(G.trace())
    K = G + gamma * G * G
    r = K.mean(1)
    K = K - r[:, None] - r[None, :] + r.mean()
    lam, V = torch.linalg.eigh(K)
    lam = lam.clamp_min(0)
    Yc = Y - Y.mean(0)
    B = V.T @ Yc
    al = torch.as_tensor(alphas, device=X.device)
    shrink = al[:, None] / (lam[None] + al[:, None])
    rss = ((shrink[:, :, None] * B[None]) ** 2).sum(1)
    dof = n - 1 - (lam[None] / (lam[None] + al[:, None])).sum(1)
    return n * rss / dof[:, None] ** 2


def row(name: str, t: float, ref: float, extra: str = "") -> None:
    print(f"  {name:<34s} {t:9.3f} s   x{t / ref:7.2f} vs ours-torch  {extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="the issue's sizes (GPU advised)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sklearn", action="store_true", help="run scikit-learn at --full sizes")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        sp.set_num_threads(args.threads)
    lin = (1_000_000, 4096, 16) if args.full else (20_000, 512, 16)
    dual = (20_000, 4096) if args.full else (3_000, 512)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, devices {devices}")
    peaks = {"cpu": matmul_peak("cpu", torch.float64, 1024)}
    print(f"CPU float64 matmul peak: {peaks['cpu'] / 1e9:.1f} GFLOP/s")
    if "cuda" in devices:
        peaks["cuda"] = matmul_peak("cuda", torch.float32, 8192)
        print(f"CUDA float32 (TF32 off) matmul peak: {peaks['cuda'] / 1e12:.1f} TFLOP/s "
              f"({torch.cuda.get_device_name()})")  # fmt: skip

    n, d, k = lin
    print(f"\nlinear probe, 20 alphas, 5-fold CV, bfloat16 X: n={n}, d={d}, k={k}")
    Xc, Yc = make_data(n, d, k, "cpu")
    grid = np.logspace(-3, 4, 20) * float(
        (Xc[:4096].double() - Xc[:4096].double().mean(0)).pow(2).sum(0).mean() * n / 4096
    )
    for dev in devices:
        X, Y = (Xc, Yc) if dev == "cpu" else (Xc.to(dev), Yc.to(dev))
        sync = dev != "cpu"
        reps = args.repeats if n * d <= 1e9 or dev != "cpu" else 1
        t_ours, est = timeit(lambda: sp.LinearProbe(grid, cv=5, backend="torch").fit(X, Y),
                             reps, sync)  # fmt: skip
        print(f" [{dev}] ours (backend='torch'): {t_ours:.3f} s")
        t_raw, _ = timeit(lambda: raw_torch_kfold(X, Y, grid, 5), reps, sync)
        row("raw torch (same formulas)", t_raw, t_ours)
        t_gram, _ = timeit(lambda: sp.SufficientStats(backend="torch").update(X), reps, sync)
        flops = 2.0 * n * d * d
        frac = flops / t_gram / peaks[dev]
        kind = "float32" if sync else "float64"
        print(f"  Gram step (float64 accumulation): {t_gram:.3f} s, "
              f"{flops / t_gram / 1e12:.3f} TFLOP/s = {frac:.2f} x the {kind} matmul peak")
        if dev == "cpu":
            X32, Y64 = X.float().numpy(), Y.numpy()
            t_rust, ref = timeit(lambda: sp.LinearProbe(grid, cv=5, backend="rust").fit(X32, Y64),
                                 reps)  # fmt: skip
            err = np.abs(est.coef_.numpy() - ref.coef_).max() / np.abs(ref.coef_).max()
            row("Rust core (CPU, float32 copy)", t_rust, t_ours, f"coef rel diff {err:.1e}")
            if not args.full or args.sklearn:
                from sklearn.linear_model import RidgeCV

                t_sk, _ = timeit(lambda: RidgeCV(alphas=grid, cv=5).fit(X32, Y64), 1)
                row("scikit-learn RidgeCV(cv=5)", t_sk, t_ours)
        del X, Y

    n, d = dual
    print(f"\ndegree-2 dual route, GCV over 20 alphas: n={n}, d={d}")
    Xc, Yc = make_data(n, d, 1, "cpu", seed=1)
    grid = np.logspace(-3, 4, 20)
    for dev in devices:
        X, Y = (Xc, Yc) if dev == "cpu" else (Xc.to(dev), Yc.to(dev))
        sync = dev != "cpu"
        t_ours, _ = timeit(
            lambda: sp.QuadraticProbe(grid, solver="dual", backend="torch").fit(X, Y[:, 0]),
            args.repeats, sync,
        )  # fmt: skip
        print(f" [{dev}] ours (backend='torch'): {t_ours:.3f} s")
        t_raw, _ = timeit(lambda: raw_torch_dual(X, Y, grid), args.repeats, sync)
        row("raw torch (same formulas)", t_raw, t_ours)
        if dev == "cpu":
            X32, y64 = X.float().numpy(), Y[:, 0].numpy()
            t_rust, _ = timeit(
                lambda: sp.QuadraticProbe(grid, solver="dual", backend="rust").fit(X32, y64),
                args.repeats,
            )  # fmt: skip
            row("Rust core (CPU)", t_rust, t_ours)
            if not args.full or args.sklearn:
                from sklearn.kernel_ridge import KernelRidge

                t_sk, _ = timeit(
                    lambda: KernelRidge(alpha=1.0, kernel="poly", degree=2).fit(X32, y64), 1
                )
                row("sklearn KernelRidge (1 alpha, no CV)", t_sk, t_ours)


if __name__ == "__main__":
    main()

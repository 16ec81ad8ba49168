"""Benchmark of label-free monitor transfer (QuotientAligner) vs numpy, scikit-learn and torch.

Run from the repository root::

    .venv/bin/python benches/bench_transfer.py             # --quick (default), ~2-3 min
    .venv/bin/python benches/bench_transfer.py --full      # n=100k, d=4096 (GPU-sized machine)
    .venv/bin/python benches/bench_transfer.py --cases 20000x512 10000x1024

A case ``NxD`` is n paired rows with d_A = d_B = D.

Methodology (docs/design.md §5: speed is judged as ratios within one run, on the same data, and
against the machine's measured GEMM peak):

* Data. ``datasets.readout_equivalent_models(n, D, n_linear=8, n_quadratic=2,
  n_nuisance=0, noise=0.1, invisible="nonlinear", dtype=float32)``: paired float32 hidden
  states H_A (n, D), H_B (n, D) of two models that share A's probe-visible quotient (rank
  r = 8 + 2*2 = 12) up to 10% noise, with a non-linearly scrambled invisible part, and the bank
  of the 10 ground-truth monitors (8 linear, 2 quadratic) on A.
* Competitors, all on the same arrays in the same process, every one a complete pipeline from
  the raw float32 arrays (same 80/20 split of the pairs, same 27-alpha grid
  ``logspace(-10, 3, 27) * n_train * trace(cov B) / d_B``, one alpha shared by all outputs):
  ours     ``QuotientAligner("quotient", full_state_diagnostic=False,
           unportable="mark").fit(bank, H_A, H_B)`` with the default backend (the Rust core when
           built): quotient of the bank, A's moments, B -> z_A ridge with GCV over the grid,
           composition of the 10 monitors, and the coverage report (fidelity of the transferred
           scores on the 20% held-out pairs);
  numpy    the same pipeline written plainly (the textbook way): C from an SVD of the bank's
           per-monitor-normalised covectors [w, Q], z_A = (H_A - m) C on float64 copies of the
           training rows, thin SVD of the centred float64 H_B, GCV = n RSS / (n - 1 - df)^2 for
           every alpha from the singular values, coefficients at the best alpha, every monitor
           composed with the map (Q_B = W Q_z W^T, w_B = W w_z), held-out source and
           transferred scores and their R^2. No coverage (A's covariance) is computed: it is
           1 for a bank's own monitors, so ours does strictly more work;
  sklearn  the same plain prologue and composition around ``RidgeCV(alphas=grid,
           alpha_per_target=False)`` fitted on B's float32 training rows -> z_A (its efficient
           exact leave-one-out mode: an SVD of the centred design for n > d). LOO is not GCV, so
           its alpha may differ: both alphas are shown, and the scores are compared anyway;
  full     ours with ``target="full"``: B is mapped to all d_A coordinates of h_A (the
           full-state baseline). "full / ours" is what mapping d_A outputs instead of r costs
           (it also fits the B -> z_A map for the diagnostic, as the library always does);
  torch    ours with ``backend="torch"`` on CPU torch tensors (zero-copy views of the same
           arrays); when ``torch.cuda.is_available()``, also on CUDA tensors (columns shown only
           then; the copies to the device are made once, outside the timed call, and the
           timed call ends with ``torch.cuda.synchronize()``).
* Timing. One warm-up of every competitor on small data, then ``--repeats`` (default 3) timed
  calls per competitor (sklearn: ``--sklearn-repeats``, default 1 with --quick, else 3: it is
  the slowest), round-robin with the order rotated each round;
  the tables show the median. Ratios are time(X) / time(ours): above 1 means ours is faster.
  All libraries get the same thread count (``--threads``, default all CPUs).
* Gram step. The dominant cost of ours is one pass over each of A's and B's training rows
  (float64 Gram of B for the ridge, A's covariance for the report). Timed alone on B's
  training rows: ``SufficientStats().update(B_tr)`` vs numpy ``B_tr.T @ B_tr`` (float32) and
  the float64 upcast ``Bd.T @ Bd``. "frac peak" = (2 n d^2 / t) / peak, the GEMM peak measured
  as square 2048 float64 matmuls (numpy and torch, best of 8, 2 m n k flops) at the start
  and after each case (the fastest seen). A symmetric rank-n update needs only half of the
  2 n d^2 flops, so an ideal syrk could reach ~2.
* Memory. Before each timed call the resident set size is recorded and the kernel's peak mark
  reset (/proc/self/clear_refs; where that is impossible the value is an upper bound, "<=");
  "extra" = peak RSS during the call - RSS before. It is measured in the timing process
  (setting MALLOC_MMAP_THRESHOLD_ to make glibc unmap freed blocks slowed the calls down
  2-3x), so blocks below glibc's dynamic mmap threshold (<= 32 MiB) that an earlier call
  freed may be reused unseen: a lower bound for those, exact for the large arrays. CUDA memory is
  ``torch.cuda.max_memory_allocated`` over the call.
* Agreement (untimed, from the timed runs): max |a - b| / max |b| of the transferred held-out
  scores of each competitor against ours (all 10 monitors), and the alphas each chose (index
  into the grid).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Optional

import numpy as np

from _common import (  # isort: skip
    add_threads_option, fe, fmt_table, fs, fx, gemm_peak_gflops, gram_upcast, have, loadavg, log,
    peak_rss, reldiff, reset_peak, rss_now, set_threads, version,
)  # fmt: skip

N_LINEAR, N_QUADRATIC = 8, 2
NOISE = 0.1
HOLDOUT = 0.2
RTOL = 1e-6
MB = 1024.0**2
QUICK = ["20000x512", "10000x1024"]
FULL = ["100000x4096"]


# ---------------------------------------------------------------------------------- helpers
def cuda_available() -> bool:
    if not have("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def cuda_sync() -> None:
    import torch

    torch.cuda.synchronize()


# ---------------------------------------------------------------------------------- data
def make_pair(n: int, d: int, seed: int):
    from shallowprobes.datasets import readout_equivalent_models

    return readout_equivalent_models(
        n, d, n_linear=N_LINEAR, n_quadratic=N_QUADRATIC, n_nuisance=0, noise=NOISE,
        invisible="nonlinear", dtype=np.float32, random_state=seed,
    )  # fmt: skip


def split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The aligner's split (holdout=0.2, random_state=0): train and held-out row indices."""
    n_hold = int(round(HOLDOUT * n))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def grid_for(B_tr: np.ndarray) -> np.ndarray:
    """The aligner's default grid: logspace(-10, 3, 27) * n * trace(cov) / d, in plain numpy."""
    n, d = B_tr.shape
    Bd = B_tr.astype(np.float64)
    trace = float(Bd.var(axis=0).sum())
    return np.logspace(-10, 3, 27) * (n * trace / d)


# ---------------------------------------------------------------------------------- competitors
# Each returns (chosen alpha, transferred held-out scores (n_ho, m) in bank order).
Result = tuple[float, np.ndarray]


def run_ours(bank, HA, HB, target: str = "quotient", backend: str = "auto") -> Result:
    from shallowprobes.monitors.transfer import QuotientAligner

    # The computation the numpy and scikit-learn pipelines below do: one map on the training
    # split (no refit on all pairs), the Euclidean quotient, no bootstrap intervals.
    al = QuotientAligner(target, full_state_diagnostic=False, unportable="mark", refit=False,
                         quotient_metric="euclidean", n_bootstrap=0,
                         backend=backend).fit(bank, HA, HB)  # fmt: skip
    # held-out scores of the B -> z_A map's monitors; for target="full" of the full map's
    return float(np.median(np.atleast_1d(al.map_.alpha_))), np.asarray(al.heldout_scores_[1])


def plain_prologue(bank, HA: np.ndarray, HB: np.ndarray) -> dict:
    """Split, quotient basis C (SVD of the normalised covectors), z_A of the training rows."""
    train, hold = split(HA.shape[0])
    cols = []
    for m in bank.values():
        block = m.covectors()  # (d, 1) or (d, 1 + d): [w, Q]
        norm = float(np.linalg.norm(block))
        if norm > 0:
            cols.append(block / norm)
    U, s, _ = np.linalg.svd(np.hstack(cols), full_matrices=False)
    C = U[:, : int(np.sum(s > RTOL * s[0]))]
    A_tr = HA[train].astype(np.float64)
    m_A = A_tr.mean(axis=0)
    Z = (A_tr - m_A) @ C
    del A_tr
    return {"train": train, "hold": hold, "C": C, "m_A": m_A, "Z": Z}


def plain_compose(bank, pro: dict, W: np.ndarray, z0: np.ndarray, mu_B: np.ndarray,
                  HA: np.ndarray, HB: np.ndarray) -> np.ndarray:  # fmt: skip
    """Compose every monitor with z_hat(h) = W^T (h - mu_B) + z0, score the held-out B rows.

    Also computes the source scores on the held-out A rows and the fidelity R^2 (as ours does)."""
    C, m_A, hold = pro["C"], pro["m_A"], pro["hold"]
    XB = HB[hold].astype(np.float64) - mu_B
    XA = HA[hold].astype(np.float64)
    out, src = np.empty((hold.size, len(bank))), np.empty((hold.size, len(bank)))
    for j, mon in enumerate(bank.values()):
        e = m_A - mon.centre  # re-expand about m_A, then write in z and compose with the map
        w, b = mon.linear, mon.intercept + float(mon.linear @ e)
        U = XA - mon.centre
        src[:, j] = U @ mon.linear + mon.intercept
        if mon.quadratic is not None:
            Q = mon.quadratic
            w, b = w + 2.0 * (Q @ e), b + float(e @ Q @ e)
            src[:, j] += np.einsum("ij,ij->i", U @ Q, U)
        w_z = C.T @ w
        b_B = b + float(w_z @ z0)
        w_B = W @ w_z
        out[:, j] = XB @ w_B + b_B
        if mon.quadratic is not None:
            Q_z = C.T @ mon.quadratic @ C
            w_B2 = 2.0 * (W @ (Q_z @ z0))
            Q_B = W @ Q_z @ W.T
            out[:, j] += XB @ w_B2 + float(z0 @ Q_z @ z0) + np.einsum("ij,ij->i", XB @ Q_B, XB)
    sst = np.sum((src - src.mean(axis=0)) ** 2, axis=0)
    pro["fidelity_r2"] = 1.0 - np.sum((out - src) ** 2, axis=0) / sst  # the report's number
    return out


def run_numpy(bank, HA: np.ndarray, HB: np.ndarray) -> Result:
    pro = plain_prologue(bank, HA, HB)
    B_tr = HB[pro["train"]].astype(np.float64)
    n, d = B_tr.shape
    mu_B = B_tr.mean(axis=0)
    Xc = B_tr - mu_B
    del B_tr
    grid = np.logspace(-10, 3, 27) * (float(np.sum(Xc * Xc)) / d)  # n * trace(cov) / d
    Z = pro["Z"]
    z_mean = Z.mean(axis=0)
    Zc = Z - z_mean
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    del Xc
    UtZ = U.T @ Zc
    del U
    lam = s * s
    outside = float(np.sum(Zc * Zc)) - float(np.sum(UtZ * UtZ))  # part of z_A outside span
    gcv = np.empty(grid.size)
    for i, a in enumerate(grid):
        shrink = a / (lam + a)  # 1 - lam / (lam + a)
        rss = max(outside, 0.0) + float(np.sum((shrink[:, None] * UtZ) ** 2))
        dof = n - 1.0 - float(np.sum(lam / (lam + a)))
        gcv[i] = n * rss / (dof * dof) if dof > 0 else np.inf
    best = int(np.argmin(gcv))
    a = grid[best]
    W = Vt.T @ ((s / (lam + a))[:, None] * UtZ)  # (d_B, r)
    return float(a), plain_compose(bank, pro, W, z_mean, mu_B, HA, HB)


def run_sklearn(bank, HA: np.ndarray, HB: np.ndarray, grid: np.ndarray) -> Result:
    from sklearn.linear_model import RidgeCV

    pro = plain_prologue(bank, HA, HB)
    B_tr = HB[pro["train"]]
    m = RidgeCV(alphas=grid, alpha_per_target=False).fit(B_tr, pro["Z"])
    mu_B = B_tr.astype(np.float64).mean(axis=0)
    W = np.asarray(m.coef_, dtype=np.float64).T  # (d_B, r)
    z0 = np.asarray(m.intercept_, dtype=np.float64) + mu_B @ W
    return float(m.alpha_), plain_compose(bank, pro, W, z0, mu_B, HA, HB)


# ---------------------------------------------------------------------------------- timing
def timed_call(fn: Callable[[], Any], on_cuda: bool) -> tuple[float, Any, dict]:
    gc.collect()
    if on_cuda:
        import torch

        cuda_sync()
        torch.cuda.reset_peak_memory_stats()
        cuda0 = torch.cuda.memory_allocated()
    rss0 = rss_now()
    reset = reset_peak()
    hw0 = peak_rss()
    t0 = time.perf_counter()
    out = fn()
    if on_cuda:
        cuda_sync()
    t = time.perf_counter() - t0
    hw1 = peak_rss()
    mem = {"extra": max(hw1 - rss0, 0), "upper_bound": (not reset) and hw1 <= hw0}
    if on_cuda:
        mem["cuda_extra"] = torch.cuda.max_memory_allocated() - cuda0
    return t, out, mem


def round_robin(
    calls: dict[str, Callable[[], Any]],
    repeats: int,
    cuda_names: set,
    fewer: Optional[dict[str, int]] = None,
) -> tuple[dict, dict, dict, dict]:
    """Every call `repeats` times (`fewer[name]` for some), round-robin, order rotated."""
    names = list(calls)
    reps = {k: (fewer or {}).get(k, repeats) for k in names}
    times: dict[str, list[float]] = {k: [] for k in names}
    mems: dict[str, dict] = {}
    results: dict[str, Any] = {}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            if r >= reps[name]:
                continue
            log(f"    {name} (round {r + 1}/{repeats}) ...")
            results.pop(name, None)
            t, out, mem = timed_call(calls[name], name in cuda_names)
            times[name].append(t)
            results[name] = out
            if name not in mems or mem["extra"] > mems[name]["extra"]:
                mems[name] = mem
    med = {k: statistics.median(v) for k, v in times.items()}
    spread = {k: max(v) / min(v) for k, v in times.items()}
    return med, spread, mems, results


# ---------------------------------------------------------------------------------- tables
def fmem(m: Optional[dict], key: str = "extra") -> str:
    if m is None or key not in m:
        return "-"
    return ("<=" if m.get("upper_bound") and key == "extra" else "") + f"{m[key] / MB:.0f}"


# ---------------------------------------------------------------------------------- bench
class Bench:
    def __init__(self, args: argparse.Namespace, peak: dict[str, float]) -> None:
        self.args = args
        self.peak = peak
        self.use_torch = not args.no_torch and have("torch")
        self.use_cuda = self.use_torch and cuda_available()
        self.use_sklearn = not args.no_sklearn and have("sklearn")
        self.time_rows: list[list[str]] = []
        self.gram_rows: list[list[str]] = []
        self.gram_rates: list[float] = []
        self.mem_rows: list[list[str]] = []
        self.acc_rows: list[list[str]] = []
        self.raw: list[dict] = []
        self.load0 = loadavg()

    def methods(self, bank, HA, HB, grid, tensors) -> dict[str, Callable[[], Any]]:
        calls: dict[str, Callable[[], Any]] = {
            "ours": lambda: run_ours(bank, HA, HB),
            "numpy": lambda: run_numpy(bank, HA, HB),
        }
        if self.use_sklearn:
            calls["sklearn"] = lambda: run_sklearn(bank, HA, HB, grid)
        if not self.args.no_full:
            calls["full"] = lambda: run_ours(bank, HA, HB, target="full")
        if self.use_torch:
            tA, tB = tensors["cpu"]
            calls["torch"] = lambda: run_ours(bank, tA, tB, backend="torch")
        if self.use_cuda:
            gA, gB = tensors["cuda"]
            calls["cuda"] = lambda: run_ours(bank, gA, gB, backend="torch")
        return calls

    def tensors(self, HA, HB) -> dict:
        out: dict = {}
        if self.use_torch:
            import torch

            out["cpu"] = (torch.from_numpy(HA), torch.from_numpy(HB))
            if self.use_cuda:
                out["cuda"] = (out["cpu"][0].cuda(), out["cpu"][1].cuda())
        return out

    def warm_up(self) -> None:
        log("warm-up on small data ...")
        pair = make_pair(2000, 64, seed=123)
        HA, HB = pair.H_A, pair.H_B
        train, _ = split(HA.shape[0])
        grid = grid_for(HB[train])
        for call in self.methods(pair.bank, HA, HB, grid, self.tensors(HA, HB)).values():
            call()
        if self.use_cuda:
            cuda_sync()

    def case(self, n: int, d: int) -> None:
        args = self.args
        name = f"n={n / 1000:g}k d={d}"
        log(f"{name}: generating ...")
        pair = make_pair(n, d, args.seed)
        HA, HB, bank = pair.H_A, pair.H_B, pair.bank
        del pair
        gc.collect()
        train, _ = split(n)
        grid = grid_for(HB[train])
        tensors = self.tensors(HA, HB)
        log(f"{name}: timing ({args.repeats} round(s)) ...")
        med, spread, mems, res = round_robin(self.methods(bank, HA, HB, grid, tensors),
                                             args.repeats, {"cuda"},
                                             {"sklearn": args.sklearn_repeats})  # fmt: skip
        t = med.get
        row = [name, fs(t("ours"), 2), fx(t("numpy"), t("ours")), fx(t("sklearn"), t("ours")),
               fx(t("full"), t("ours")), fx(t("torch"), t("ours"))]  # fmt: skip
        if self.use_cuda:
            row.append(fx(t("cuda"), t("ours")))
        row.append(f"{max(spread.values()):.2f}")
        self.time_rows.append(row)

        # agreement with ours
        a_ours, s_ours = res["ours"]

        alpha_idx = {k: str(int(np.argmin(np.abs(np.log(grid / v[0]))))) for k, v in res.items()}
        agree = {k: fe(reldiff(v[1], s_ours)) for k, v in res.items()}
        acc = [name, alpha_idx["ours"], alpha_idx["numpy"], alpha_idx.get("sklearn", "-"),
               agree["numpy"], agree.get("sklearn", "-"), agree.get("torch", "-")]  # fmt: skip
        if self.use_cuda:
            acc.append(agree.get("cuda", "-"))
        self.acc_rows.append(acc)

        in_mb = f"{(HA.nbytes + HB.nbytes) / MB:.0f}"
        mrow = [name, in_mb] + [fmem(mems.get(k)) for k in
                                ("ours", "numpy", "sklearn", "full", "torch")]  # fmt: skip
        if self.use_cuda:
            mrow.append(fmem(mems.get("cuda"), "cuda_extra"))
        self.mem_rows.append(mrow)

        gmed = self.gram(name, np.ascontiguousarray(HB[train]))
        self.raw.append({
            "case": name, "n": n, "d": d, "median_s": med, "spread": spread, "memory": mems,
            "alphas": {k: v[0] for k, v in res.items()}, "grid": grid.tolist(),
            "score_reldiff_vs_ours": {k: reldiff(v[1], s_ours) for k, v in res.items()},
            "gram_median_s": gmed,
        })  # fmt: skip
        del res, tensors, HA, HB
        gc.collect()
        if a_ours <= 0:
            log("warning: ours chose a non-positive alpha")

    def gram(self, name: str, B_tr: np.ndarray) -> dict[str, float]:
        from shallowprobes import SufficientStats

        log(f"{name}: Gram step ...")
        n, d = B_tr.shape
        calls = {
            "ours": lambda: SufficientStats().update(B_tr),
            "np_native": lambda: B_tr.T @ B_tr,
            "np_up": lambda: gram_upcast(B_tr),
        }
        med, _, _, _ = round_robin(calls, max(self.args.repeats, 3), set())
        gflop = 2.0 * n * d * d / 1e9
        self.gram_rows.append([
            f"{name} (B_tr {n}x{d})", fs(med["ours"], 2), fx(med["np_native"], med["ours"]),
            fx(med["np_up"], med["ours"]), f"{gflop / med['ours']:.1f}",
            f"{gflop / med['np_native']:.1f}",
        ])  # fmt: skip
        self.gram_rates.append(gflop / med["ours"])
        return med

    def report(self) -> str:
        args = self.args
        peak_best = max(self.peak.values())
        import shallowprobes as sp

        backend = "rust" if sp.rust_available() else "numpy (Rust core not built)"
        versions = f"python {platform.python_version()}, numpy {np.__version__}"
        for mod in ("scipy", "sklearn", "torch"):
            if have(mod):
                versions += f", {mod} {version(mod)}"
        cuda_head = ["cuda/ours"] if self.use_cuda else []
        out = [
            "shallowprobes monitor-transfer benchmark (QuotientAligner)",
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
            f"threads={args.threads}; repeats={args.repeats} (median; sklearn "
            f"{args.sklearn_repeats}); {versions}",
            f"load average at start / end: {self.load0} / {loadavg()}",
            f"ours = QuotientAligner('quotient', full_state_diagnostic=False), backend auto -> "
            f"{backend}; bank: {N_LINEAR} linear + {N_QUADRATIC} quadratic monitors "
            f"(r = {N_LINEAR + 2 * N_QUADRATIC}); 27 alphas; 20% held-out pairs",
            "float64 GEMM peak (2mnk flops, 2048^2, best of 8, fastest seen): "
            + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in self.peak.items())
            + f" -> peak = {peak_best:.1f}",
            ""
            + ("" if self.use_cuda else "(no CUDA device: the cuda columns are left out)"),
            "",
            "Time ratios = time(X) / time(ours) (>1: ours faster); 'full/ours' = target='full' "
            "(d_A outputs) vs 'quotient' (r outputs);",
            "'ours s' = absolute seconds of ours, for scale only; spread = largest max/min over "
            "repeats",
            fmt_table(["case", "ours s", "numpy/ours", "sklearn/ours", "full/ours",
                       "torch-cpu/ours", *cuda_head, "spread"], self.time_rows),
            "",
            "Gram step on B's training rows: ours = SufficientStats().update (float64 "
            "accumulation); np = B.T @ B (float32); np f64up = upcast, then Bd.T @ Bd;",
            "ratios = time(np) / time(ours); GF/s = 2 n d^2 / t; frac peak = GF/s / peak "
            "(a syrk needs half of those flops, so it can reach ~2)",
            fmt_table(["case", "ours s", "np/ours", "np f64up/ours", "ours GF/s", "np GF/s",
                       "frac peak"],
                      [r + [f"{g / peak_best:.2f}"]
                       for r, g in zip(self.gram_rows, self.gram_rates)]),
            "",
            "Memory, MiB: extra = peak RSS during the call - RSS before (in-process, kernel peak "
            "mark reset before each call); cuda = max_memory_allocated over the call",
            fmt_table(["case", "H_A+H_B f32", "ours", "numpy", "sklearn", "full", "torch-cpu",
                       *(["cuda (device)"] if self.use_cuda else [])], self.mem_rows),
            "",
            "Agreement: alpha = index into the 27-alpha grid (sklearn: exact LOO, not GCV); "
            "scores = max|X - ours| / max|ours| of the",
            "10 transferred monitors' scores on the held-out pairs (numpy should be ~1e-6 at "
            "the same alpha)",
            fmt_table(["case", "alpha ours", "alpha numpy", "alpha sklearn", "scores numpy",
                       "scores sklearn", "scores torch-cpu",
                       *(["scores cuda"] if self.use_cuda else [])], self.acc_rows),
        ]  # fmt: skip
        return "\n".join(out)


# ---------------------------------------------------------------------------------- main
def parse_case(text: str) -> tuple[int, int]:
    try:
        n, d = text.lower().split("x")
        return int(n), int(d)
    except ValueError:
        raise ValueError(f"a case is NxD (e.g. 20000x512), got {text!r}") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help=f"default: {' '.join(QUICK)} (~2-3 min on 2 cores)")  # fmt: skip
    mode.add_argument(
        "--full",
        action="store_true",
        help=f"{' '.join(FULL)} (GPU-sized: ~30 GiB of RAM for the data)",
    )
    mode.add_argument("--cases", nargs="+", metavar="NxD", help="e.g. 20000x512 10000x1024")
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs per method (median; default 3)",
    )
    p.add_argument(
        "--sklearn-repeats",
        type=int,
        default=None,
        help="timed sklearn runs (default 1 with --quick, else --repeats)",
    )
    add_threads_option(p)
    p.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn")
    p.add_argument("--no-torch", action="store_true", help="skip the torch backend (CPU, CUDA)")
    p.add_argument("--no-full", action="store_true", help="skip the target='full' baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = p.parse_args(argv)  # fmt: skip
    names = args.cases or (FULL if args.full else QUICK)
    try:
        args.case_list = [parse_case(c) for c in names]
    except ValueError as exc:
        p.error(str(exc))
    if args.repeats is None:
        args.repeats = 3
    if args.sklearn_repeats is None:
        args.sklearn_repeats = 3 if (args.full or args.cases) else 1
    args.sklearn_repeats = max(1, min(args.sklearn_repeats, args.repeats))
    if args.repeats < 1 or args.threads < 1:
        p.error("--repeats and --threads must be >= 1")
    return args


def run(args: argparse.Namespace) -> dict:
    limiter = set_threads(args.threads, with_probes=True)
    peak = gemm_peak_gflops()
    log(f"float64 GEMM peak (2*m*n*k flops): {peak}")
    bench = Bench(args, peak)
    bench.warm_up()
    for n, d in args.case_list:
        bench.case(n, d)
        for lib, v in gemm_peak_gflops().items():
            bench.peak[lib] = max(bench.peak.get(lib, 0.0), v)
    print(bench.report(), flush=True)
    result = {"peak": bench.peak, "threads": args.threads, "repeats": args.repeats,
              "cases": bench.raw}  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1, default=float)
    del limiter
    return result


def main(argv: Optional[list[str]] = None) -> None:
    run(parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()

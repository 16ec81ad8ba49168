"""Benchmark of degree-2 (quadratic) ridge probes: shallowprobes vs numpy reference and sklearn.

Run from the repository root::

    .venv/bin/python benches/bench_quadratic.py                # --quick (default), ~4-6 min
    .venv/bin/python benches/bench_quadratic.py --full         # every case (hours)
    .venv/bin/python benches/bench_quadratic.py --cases primal-d128-n20k dual-d4096-n5k

Case names are ``primal-d<d>-n<n>`` or ``dual-d<d>-n<n>`` (n may be written 20k, 20000, ...).

Methodology (docs/design.md §5: speed is judged as ratios within one run, on the same data, and
against the machine's measured GEMM peak):

* Data. Hidden-state-like float32 activations h (n, d): anisotropic columns (scales decaying
  over ~3 e-folds, shuffled), a rank-8 shared component, per-column offsets with two "massive
  activation" columns (offset 50). The target has interactions: y = linear part (variance ~1)
  + the sum of 6 products h_a h_b of high-variance columns (standardised, variance ~1 in all)
  + noise (sd 0.5), so the best possible held-out R^2 is ~0.88-0.92 and a linear probe gets
  ~0.3-0.45. A held-out set from the same distribution (5000 rows primal, 2000 dual) gives the
  test R^2.
* gamma (weight of the quadratic block): the probe's default 1 / mean ||h - mu||^2.
* Alpha grid: ``np.logspace(-6, 3, 20)`` times trace(feature Gram) / p, where the trace is
  sum_i ||u_i||^2 + gamma ||u_i||^4 (u = h - mu) -- the scale the probe's own default uses.
  The same 20 absolute alphas go to every competitor.
* Primal cases (p = d + d(d+1)/2 features; the n x p features are never formed by ours):
  ours    ``QuadraticProbe(alphas=grid, cv="gcv", solver="primal")``, backend "auto" (the Rust
          core when built; the header says which ran);
  numpy   the same with ``backend="numpy"``: the library's numpy reference (phi expanded
          block by block in numpy, float64 X^T X accumulation, np.linalg.eigh, GCV);
  sklearn ``make_pipeline(PolynomialFeatures(2, include_bias=False), RidgeCV(alphas=grid))``
          on the centred float64 rows (centring + upcast inside the timed call). Its
          features lack the sqrt(2) / gamma column scaling, so its penalty differs: compare
          its speed and held-out R^2, not coefficients. RidgeCV's default mode is efficient
          exact LOO (covariance mode for n > p: X^T X, eigh, and one n x p x p product per
          alpha for the leverages). Run only when 3 n p float64 words fit in 60% of RAM.
  Gram step: ``SufficientStats(degree=2).update(X, y)`` alone (ours and the numpy backend),
  in the same child process before the fit. Flop count: the lower triangle of the p x p
  symmetric rank-n update, n p (p + 1) flops. "frac peak" = (n p (p+1) / t) / GEMM peak, where
  the peak counts 2 m n k flops per GEMM (square 2048 float64 matmuls, numpy and torch, best of
  8 at the start and after each case, the fastest seen). 1.0 = every flop the symmetric
  update needs, executed at GEMM peak.
* Dual cases (n x n kernel; the route for LLM widths, p = 8.4M at d = 4096):
  ours    ``QuadraticProbe(alphas=grid, cv="loo", solver="dual")`` (``--dual-cv``): exact
          leave-one-out for all 20 alphas from one n x n eigendecomposition per gamma of
          the default gamma search (so several decompositions);
  ours 1g the same at the one gamma the loop below uses (``gamma=g``): like for like with
          KRloop, one decomposition (``bench_dual_floor.py`` adds the floor);
  numpy   the same as ours with ``backend="numpy"``;
  KRloop  sklearn ``KernelRidge(kernel="poly", degree=2, gamma=sqrt(g), coef0=1/(2 sqrt(g)))``
          fitted once per alpha of the grid on the centred float64 rows and centred y, which
          is what users write. Its kernel is g <u,v>^2 + <u,v> + 1/(4g): ours plus a constant
          (ours double-centres the kernel and fits an unpenalised intercept). It recomputes
          the kernel and does a Cholesky solve per alpha and gives NO cross-validation: its
          R^2 is reported at ours' chosen alpha ("@ours a") and at the best alpha on the test
          set ("oracle", which no real user has).
* Timing and memory. Every (method, case, repeat) runs in a fresh child process (which never
  imports torch): it builds the data in chunks, warms the method up on tiny data (thread pools,
  imports), then for each timed call records the resident set size, resets the kernel's peak
  mark (/proc/self/clear_refs; where impossible ru_maxrss is used and the value is marked "<=",
  an upper bound) and reads the peak (VmHWM) after. "extra" = peak - RSS before: the call's own
  working memory (glibc returns freed large blocks to the OS: MALLOC_MMAP_THRESHOLD_ is set).
  Repeats (``--repeats``, default 1) run round-robin with the order rotated; tables show the
  median time and the largest extra. Ratios are time(X) / time(ours): above 1 = ours faster.
  All libraries get the same thread count (``--threads``, default all CPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional

import numpy as np

# The helpers come from _common, which imports neither shallowprobes nor torch. Only the
# children that run shallowprobes import it (nothing here imports bench_linear, which imports
# it): the parent and the sklearn children survive a rebuild of the extension, and the GEMM peak
# is measured without the library's thread pools around. The memory probes (rss_now,
# reset_peak, peak_rss) are bench_linear's too, so the two benchmarks' memory columns mean the
# same. The children re-run this file (sys.path[0] is benches/ again), so they find _common.
from _common import (  # isort: skip
    activation_layout, add_threads_option, fe, fmt_table, fs, fx, gemm_peak_gflops, have, loadavg,
    log, peak_rss, reldiff, reset_peak, rss_now, set_threads, version,
)  # fmt: skip

N_ALPHAS = 20
GEN_CHUNK = 2048
N_PAIRS = 6
MB = 1024.0**2
GB = 1024.0**3
MEM_FRACTION = 0.6  # sklearn runs only when its estimated working set fits this share of RAM
CASE_RE = re.compile(r"^(primal|dual)-d(\d+)-n(\d+)(k?)$")

QUICK = ["primal-d32-n20k", "primal-d64-n10k", "dual-d384-n2k", "dual-d768-n2k"]
FULL = [f"primal-d{d}-n{n}" for n in ("20k", "100k") for d in (32, 64, 128)] + [
    f"dual-d{d}-n{n}" for n in ("5k", "20k") for d in (384, 768, 4096)
]


# ---------------------------------------------------------------------------------- data
def n_features(d: int) -> int:
    return d + d * (d + 1) // 2


def make_data(n: int, d: int, seed: int, part: int) -> tuple[np.ndarray, np.ndarray]:
    """Activation-like float32 rows (n, d) and a float64 target (n,) with interactions.

    The distribution (scales, offsets, coefficients) depends on (d, seed) only; `part` picks
    the rows (1 = training, 2 = held-out). Built in chunks: peak is the output + O(chunk d).
    """
    rng = np.random.default_rng([seed, d])
    rank = 8
    col_scale, mix, offset = activation_layout(rng, d, rank)
    col_sd = np.sqrt(col_scale**2 + np.sum(mix**2, axis=0))
    signal_var = float(np.sum(col_scale**2)) + float(np.sum(mix**2))
    w = rng.standard_normal(d) / np.sqrt(signal_var)
    m = max(1, min(N_PAIRS, d // 2))
    top = np.argsort(-col_sd)[: 2 * m]
    pa, pb = top[0::2], top[1::2]
    pc = rng.choice([-1.0, 1.0], size=m) / (col_sd[pa] * col_sd[pb] * np.sqrt(m))
    rows = np.random.default_rng([seed, d, part])
    X = np.empty((n, d), dtype=np.float32)
    y = np.empty(n, dtype=np.float64)
    for start in range(0, n, GEN_CHUNK):
        stop = min(start + GEN_CHUNK, n)
        c = stop - start
        xb = rows.standard_normal((c, d)) * col_scale + rows.standard_normal((c, rank)) @ mix
        quad = (xb[:, pa] * xb[:, pb]) @ pc
        y[start:stop] = xb @ w + quad + 0.5 * rows.standard_normal(c)
        X[start:stop] = xb + offset
    return X, y


def centre_stats(X: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(mu, mean ||u||^2, mean ||u||^4) of u = x - mu, in float64, block by block."""
    n, d = X.shape
    total = np.zeros(d)
    for start in range(0, n, 8192):
        total += X[start : start + 8192].astype(np.float64).sum(axis=0)
    mu = total / n
    s2 = s4 = 0.0
    for start in range(0, n, 8192):
        u = X[start : start + 8192].astype(np.float64) - mu
        q = np.einsum("ij,ij->i", u, u)
        s2 += float(q.sum())
        s4 += float((q * q).sum())
    return mu, s2 / n, s4 / n


def alpha_grid(X: np.ndarray) -> tuple[np.ndarray, float]:
    """(grid, gamma): logspace(-6, 3, 20) x trace(feature Gram) / p, gamma = 1 / mean||u||^2."""
    n, d = X.shape
    _, m2, m4 = centre_stats(X)
    gamma = 1.0 / m2
    trace = n * (m2 + gamma * m4)  # sum_i ||phi_gamma(u_i)||^2 = sum_i |u_i|^2 + g |u_i|^4
    return np.logspace(-6, 3, N_ALPHAS) * (trace / n_features(d)), gamma


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    return 1.0 - float(np.sum((y - pred) ** 2)) / float(np.sum((y - y.mean()) ** 2))


def total_ram() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def sklearn_bytes(kind: str, n: int, d: int) -> float:
    """Estimated working set of the sklearn competitor (see the module docstring)."""
    if kind == "primal":
        return 3.0 * 8.0 * n * n_features(d)
    return 3.0 * 8.0 * n * n + 8.0 * n * d  # kernel, Cholesky copy, dual coefs; f64 rows


# ---------------------------------------------------------------------------------- child
def _measure(fn: Callable[[], Any]) -> tuple[Any, float, dict]:
    """Run fn once: (result, seconds, memory record) with peak RSS relative to before."""
    import gc

    gc.collect()
    rss0 = rss_now()
    reset = reset_peak()
    hw0 = peak_rss()
    t0 = time.perf_counter()
    out = fn()
    t = time.perf_counter() - t0
    hw1 = peak_rss()
    mem = {
        "rss0": rss0, "peak": hw1, "extra": max(hw1 - rss0, 0),
        "upper_bound": (not reset) and hw1 <= hw0,
    }  # fmt: skip
    return out, t, mem


def child(spec: dict) -> dict:
    """One timed run of one method on one case (in a fresh process)."""
    kind, n, d, method = spec["kind"], spec["n"], spec["d"], spec["method"]
    threads = spec["threads"]
    limiter = set_threads(threads, with_torch=False)  # noqa: F841 (kept alive for the run)
    X, y = make_data(n, d, spec["seed"], 1)
    Xt, yt = make_data(spec["n_test"], d, spec["seed"], 2)
    grid, gamma = alpha_grid(X)
    out: dict[str, Any] = {"method": method}
    warm_X, warm_y = make_data(400, 6, spec["seed"] + 1, 1)
    warm_grid, warm_gamma = alpha_grid(warm_X)
    if method in ("ours", "ours_1g", "numpy"):
        import shallowprobes as sp
        from shallowprobes import QuadraticProbe, SufficientStats

        sp.set_num_threads(threads)
        out["rust"] = bool(sp.rust_available())
        backend = "numpy" if method == "numpy" else "auto"  # ours_1g is ours, one gamma
        cv = "gcv" if kind == "primal" else spec["dual_cv"]

        # ours_1g: the one gamma the KernelRidge loop uses (the probe's default gamma), for a
        # like-for-like dual row; ours searches its default gammas (three decompositions)
        one_gamma = method == "ours_1g"

        def fit(Xa, ya, alphas):
            g = alpha_grid(Xa)[1] if one_gamma else None
            return QuadraticProbe(
                alphas=alphas, cv=cv, solver=kind, backend=backend, gamma=g
            ).fit(Xa, ya)

        fit(warm_X, warm_y, warm_grid)  # thread pools, lazy imports
        SufficientStats(backend=backend, degree=2).update(warm_X, warm_y)
        if kind == "primal" and spec["gram"]:
            stats, out["t_gram"], out["mem_gram"] = _measure(
                lambda: SufficientStats(backend=backend, degree=2).update(X, y)
            )
            del stats  # not kept alive during the fit
        model, out["t_fit"], out["mem_fit"] = _measure(lambda: fit(X, y, grid))
        pred = model.predict(Xt)
        out["alpha_index"] = int(np.argmin(np.abs(grid - model.alpha_)))
        out["gamma"] = float(model.gamma_)
        out["solver"] = model.solver_
        out["r2"] = r2(yt, pred)
        np.save(spec["pred_path"], pred)
    elif method == "sklearn" and kind == "primal":
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import PolynomialFeatures

        def fit_sk(Xa, ya, alphas):
            mu = Xa.astype(np.float64).mean(axis=0)
            Xc = Xa.astype(np.float64) - mu
            pipe = make_pipeline(PolynomialFeatures(2, include_bias=False), RidgeCV(alphas=alphas))
            return mu, pipe.fit(Xc, ya)

        fit_sk(warm_X, warm_y, warm_grid)
        (mu, pipe), out["t_fit"], out["mem_fit"] = _measure(lambda: fit_sk(X, y, grid))
        pred = pipe.predict(Xt.astype(np.float64) - mu)
        out["alpha_index"] = int(np.argmin(np.abs(grid - pipe[-1].alpha_)))
        out["r2"] = r2(yt, pred)
        np.save(spec["pred_path"], pred)
    elif method == "sklearn" and kind == "dual":
        from sklearn.kernel_ridge import KernelRidge

        def loop(Xa, ya, alphas, g):
            mu = Xa.astype(np.float64).mean(axis=0)
            Xc = Xa.astype(np.float64) - mu
            ym = float(ya.mean())
            yc = ya - ym
            models = []
            for a in alphas:
                kr = KernelRidge(
                    alpha=float(a), kernel="poly", degree=2, gamma=float(np.sqrt(g)),
                    coef0=float(0.5 / np.sqrt(g)),
                )  # fmt: skip
                models.append(kr.fit(Xc, yc))
            return mu, ym, models

        loop(warm_X, warm_y, warm_grid[:2], warm_gamma)
        (mu, ym, models), out["t_fit"], out["mem_fit"] = _measure(lambda: loop(X, y, grid, gamma))
        Xtc = Xt.astype(np.float64) - mu
        preds = np.stack([ym + m.predict(Xtc) for m in models])
        out["r2_per_alpha"] = [r2(yt, p) for p in preds]
        out["gamma"] = float(gamma)
        np.save(spec["pred_path"], preds)
    else:
        raise ValueError(f"unknown method {method!r} for {kind}")
    return out


def run_child(spec: dict, retries: int = 3) -> dict:
    """Run `child(spec)` in a fresh process; retries when the extension is being rebuilt."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        env[var] = str(spec["threads"])
    env["MALLOC_MMAP_THRESHOLD_"] = str(256 * 1024)  # glibc: big blocks are unmapped when freed
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", json.dumps(spec)]
    for attempt in range(retries):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        err = proc.stderr[-3000:]
        transient = proc.returncode < 0 or "_core" in err or "ImportError" in err
        if proc.returncode == -9 or "MemoryError" in err:
            return {"error": "out of memory"}
        log(f"child {spec['method']} failed (rc={proc.returncode}):\n{err}")
        if not transient or attempt == retries - 1:
            break
        log("  (maybe the extension is being rebuilt) retrying in 30 s ...")
        time.sleep(30)
    return {"error": f"failed (rc={proc.returncode})"}


# ---------------------------------------------------------------------------------- parent
def parse_case(name: str) -> tuple[str, int, int]:
    m = CASE_RE.match(name)
    if not m:
        raise ValueError(f"bad case {name!r}: use primal-d<d>-n<n> or dual-d<d>-n<n>")
    n = int(m.group(3)) * (1000 if m.group(4) else 1)
    return m.group(1), int(m.group(2)), n


def case_label(kind: str, d: int, n: int) -> str:
    size = f"{n / 1000:g}k" if n >= 1000 else str(n)
    return f"{kind} d={d} n={size}"


def fmt_mem(rec: Optional[dict]) -> str:
    if not rec:
        return "-"
    return ("<=" if rec["upper_bound"] else "") + f"{rec['extra'] / MB:.0f}"


def median(xs: list[Optional[float]]) -> Optional[float]:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Bench:
    def __init__(self, args: argparse.Namespace, peak: dict[str, float]) -> None:
        self.args = args
        self.peak = dict(peak)
        self.use_sklearn = not args.no_sklearn and have("sklearn")
        self.primal_rows: list[dict] = []
        self.dual_rows: list[dict] = []
        self.raw: list[dict] = []
        self.load0 = loadavg()
        self.tmp = tempfile.mkdtemp(prefix="bench_quadratic_")
        self.rust = None

    @property
    def peak_best(self) -> float:
        return max(self.peak.values())

    def case(self, kind: str, d: int, n: int) -> None:
        args = self.args
        label = case_label(kind, d, n)
        n_test = 5000 if kind == "primal" else 2000
        methods = ["ours", "ours_1g", "numpy"] if kind == "dual" else ["ours", "numpy"]
        sk_skip = None
        if self.use_sklearn:
            need = sklearn_bytes(kind, n, d)
            if need < MEM_FRACTION * total_ram():
                methods.append("sklearn")
            else:
                sk_skip = f"does not fit (needs {need / GB:.1f} GiB)"
        else:
            sk_skip = "skipped"
        runs: dict[str, list[dict]] = {m: [] for m in methods}
        for r in range(args.repeats):
            shift = r % len(methods)
            for method in methods[shift:] + methods[:shift]:
                spec = {
                    "kind": kind, "n": n, "d": d, "method": method, "seed": args.seed,
                    "threads": args.threads, "n_test": n_test, "dual_cv": args.dual_cv,
                    "gram": not args.no_gram,
                    "pred_path": os.path.join(self.tmp, f"{kind}{d}_{n}_{method}.npy"),
                }  # fmt: skip
                log(f"{label}: {method} (repeat {r + 1}/{args.repeats}) ...")
                t0 = time.perf_counter()
                res = run_child(spec)
                log(
                    f"  -> {time.perf_counter() - t0:.1f} s wall (child, incl. setup): "
                    + ", ".join(
                        f"{k}={v}"
                        for k, v in res.items()
                        if k in ("t_fit", "t_gram", "r2", "alpha_index", "error")
                    )
                )
                if "rust" in res and method == "ours":
                    self.rust = res["rust"]
                runs[method].append(res)
        preds = {}
        for m in methods:
            path = os.path.join(self.tmp, f"{kind}{d}_{n}_{m}.npy")
            if os.path.exists(path):
                preds[m] = np.load(path)
                os.remove(path)
        row = self.summarise(kind, d, n, label, methods, runs, preds, sk_skip)
        (self.primal_rows if kind == "primal" else self.dual_rows).append(row)
        self.raw.append({"case": label, "kind": kind, "n": n, "d": d, "p": n_features(d),
                         "runs": runs, "row": row})  # fmt: skip

    def summarise(self, kind, d, n, label, methods, runs, preds, sk_skip) -> dict:
        def ok(m: str) -> list[dict]:
            return [r for r in runs.get(m, []) if "error" not in r]

        def t(m: str, key: str = "t_fit") -> Optional[float]:
            return median([r.get(key) for r in ok(m)])

        def mem(m: str, key: str = "mem_fit") -> Optional[dict]:
            recs = [r[key] for r in ok(m) if key in r]
            return max(recs, key=lambda rec: rec["extra"]) if recs else None

        def last(m: str, key: str) -> Any:
            rs = ok(m)
            return rs[-1].get(key) if rs else None

        def err(m: str) -> Optional[str]:
            if m not in runs:
                return sk_skip if m == "sklearn" else None
            bad = [r["error"] for r in runs[m] if "error" in r]
            return bad[0] if bad and not ok(m) else None

        p = n_features(d)
        spread = [max(ts) / min(ts) for m in methods
                  if len(ts := [r["t_fit"] for r in ok(m)]) > 1]  # fmt: skip
        row: dict[str, Any] = {
            "label": label, "n": n, "d": d, "p": p,
            "t": {m: t(m) for m in ("ours", "ours_1g", "numpy", "sklearn")},
            "err": {m: err(m) for m in ("ours", "ours_1g", "numpy", "sklearn")},
            "mem": {m: mem(m) for m in ("ours", "numpy", "sklearn")},
            "r2": {m: last(m, "r2") for m in ("ours", "numpy", "sklearn")},
            "alpha_index": {m: last(m, "alpha_index") for m in ("ours", "numpy", "sklearn")},
            "solver": last("ours", "solver"),
            "spread": max(spread) if spread else None,
        }  # fmt: skip
        if "ours" in preds and "numpy" in preds:
            row["pred_diff_numpy"] = reldiff(preds["numpy"], preds["ours"])
        t_ours = row["t"]["ours"]
        ratio = {m: (row["t"][m] / t_ours if row["t"][m] and t_ours else None)
                 for m in ("numpy", "sklearn")}  # fmt: skip
        t_one = row["t"]["ours_1g"]
        ratio["sklearn_1g"] = row["t"]["sklearn"] / t_one if row["t"]["sklearn"] and t_one else None
        row["ratio"] = ratio
        if kind == "primal":
            flops = float(n) * p * (p + 1)
            row["t_gram"] = {m: t(m, "t_gram") for m in ("ours", "numpy")}
            row["mem_gram"] = {m: mem(m, "mem_gram") for m in ("ours", "numpy")}
            row["gram_gflops"] = {
                m: (flops / tg / 1e9 if (tg := row["t_gram"][m]) else None)
                for m in ("ours", "numpy")
            }
        else:
            r2s = last("sklearn", "r2_per_alpha")
            ai = row["alpha_index"]["ours"]
            if r2s is not None:
                row["r2"]["kr_at_ours"] = r2s[ai] if ai is not None else None
                row["r2"]["kr_oracle"] = max(r2s)
                row["kr_oracle_index"] = int(np.argmax(r2s))
            if "sklearn" in preds and "ours" in preds and ai is not None:
                row["pred_diff_kr"] = reldiff(preds["sklearn"][ai], preds["ours"])
        row["kind"] = kind
        return row

    def summary_line(self, kind: str, row: dict) -> str:
        r = row["ratio"]
        comp = "sklearn" if kind == "primal" else "KernelRidge-loop"
        sk = f"{r['sklearn']:.1f}x" if r["sklearn"] else (row["err"]["sklearn"] or "n/a")
        npr = f"{r['numpy']:.2f}x" if r["numpy"] else (row["err"]["numpy"] or "n/a")
        r2o = row["r2"]["ours"]
        line = f"{row['label']}: ours {fs(row['t']['ours'], 2)} s"
        if row["err"]["ours"]:
            line += f" ({row['err']['ours']})"
        line += f"; {comp}/ours {sk}; numpy/ours {npr}; held-out R2 ours "
        line += "-" if r2o is None else f"{r2o:.3f}"
        mems = {m: row["mem"][m] for m in ("ours", "sklearn") if row["mem"][m]}
        if mems:
            line += "; peak extra " + ", ".join(
                f"{m} {fmt_mem(rec)} MiB" for m, rec in mems.items()
            )
        if kind == "primal":
            g = row["gram_gflops"]["ours"]
            if g:
                line += f"; Gram {g:.1f} GF/s = {g / self.peak_best:.2f} of GEMM peak"
        else:
            one = r["sklearn_1g"]
            line += f"; KernelRidge-loop/ours at its one gamma {one:.2f}x" if one else ""
            line += f"; ours gives exact {self.args.dual_cv.upper()} for all {N_ALPHAS} alphas"
            line += ", the loop gives no CV"
        return line

    # ------------------------------------------------------------------ report
    def report(self) -> str:
        args = self.args
        versions = f"python {platform.python_version()}, numpy {np.__version__}"
        if self.use_sklearn:
            versions += f", sklearn {version('sklearn')}"
        ours = {True: "rust core", False: "numpy (Rust extension not built)", None: "?"}[self.rust]
        out = [
            "shallowprobes quadratic-probe benchmark",
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"{total_ram() / GB:.1f} GiB RAM; threads={args.threads}; repeats={args.repeats} "
            f"(median); {versions}",
            f"load average at start / end: {self.load0} / {loadavg()}",
            *self.busy_warning(),
            f"ours = shallowprobes backend 'auto' -> {ours}; numpy = backend='numpy' (the "
            "library's numpy reference)",
            f"alphas: logspace(-6, 3, {N_ALPHAS}) x trace(feature Gram)/p, the same for all; "
            "gamma = 1/mean||h - mu||^2 (the default)",
            "float64 GEMM peak (2mnk flops, 2048^2, best of 8 at start and after each case): "
            + ", ".join(f"{lib} {v:.1f}" for lib, v in self.peak.items())
            + f" GFLOP/s -> peak = {self.peak_best:.1f}",
        ]
        if self.primal_rows:
            out += ["", *self.primal_tables()]
        if self.dual_rows:
            out += ["", *self.dual_tables()]
        out += ["", "Summary (ratio = time(X) / time(ours), >1 means ours is faster):"]
        out += [f"  {self.summary_line(r['kind'], r)}" for r in self.primal_rows + self.dual_rows]
        return "\n".join(out)

    def busy_warning(self) -> list[str]:
        try:
            load = max(os.getloadavg()[0], float(self.load0.split()[0]))
        except (AttributeError, OSError, ValueError, IndexError):
            return []
        if load <= 0.75 * (os.cpu_count() or 1):
            return []
        return [
            f"WARNING: the machine was busy (1-min load {load:.1f} on {os.cpu_count()} CPUs): "
            "absolute times and GFLOP/s are low and noisy, and multi-threaded runs suffer "
            "most (spinning BLAS/rayon threads); re-run on an idle machine, or compare "
            "with --threads 1"
        ]

    def cell_t(self, row: dict, m: str) -> str:
        return row["err"][m] if row["t"][m] is None and row["err"][m] else fs(row["t"][m], 2)

    def primal_tables(self) -> list[str]:
        rows_t, rows_g, rows_m = [], [], []
        for r in self.primal_rows:
            ai = r["alpha_index"]
            rows_t.append([
                r["label"], str(r["p"]), self.cell_t(r, "ours"), self.cell_t(r, "numpy"),
                self.cell_t(r, "sklearn"), fx(r["t"]["numpy"], r["t"]["ours"]),
                fx(r["t"]["sklearn"], r["t"]["ours"]),
                *(fr2(r["r2"][m]) for m in ("ours", "numpy", "sklearn")),
                "/".join("-" if ai[m] is None else str(ai[m])
                         for m in ("ours", "numpy", "sklearn")),
                fe(r.get("pred_diff_numpy")),
                "-" if r["spread"] is None else f"{r['spread']:.2f}",
            ])  # fmt: skip
            tg, gf = r["t_gram"], r["gram_gflops"]
            to = r["t"]["ours"]
            rows_g.append([
                r["label"], fs(tg["ours"], 2), fs(tg["numpy"], 2), fx(tg["numpy"], tg["ours"]),
                f"{gf['ours']:.1f}" if gf["ours"] else "-",
                f"{gf['numpy']:.1f}" if gf["numpy"] else "-",
                f"{gf['ours'] / self.peak_best:.2f}" if gf["ours"] else "-",
                f"{gf['numpy'] / self.peak_best:.2f}" if gf["numpy"] else "-",
                f"{tg['ours'] / to:.2f}" if tg["ours"] and to else "-",
                fs(to - tg["ours"], 2) if tg["ours"] and to else "-",
            ])  # fmt: skip
            n, p = r["n"], r["p"]
            rows_m.append([
                r["label"], f"{n * r['d'] * 4 / MB:.0f}", f"{n * p * 8 / MB:.0f}",
                f"{p * p * 8 / MB:.0f}", fmt_mem(r["mem_gram"]["ours"]),
                fmt_mem(r["mem"]["ours"]), fmt_mem(r["mem_gram"]["numpy"]),
                fmt_mem(r["mem"]["numpy"]),
                fmt_mem(r["mem"]["sklearn"]) if r["mem"]["sklearn"] else
                (r["err"]["sklearn"] or "-"),
            ])  # fmt: skip
        return [
            "PRIMAL route (p = d + d(d+1)/2 features). Fit time, seconds (median of repeats); "
            "sklearn = PolynomialFeatures(2) + RidgeCV (exact LOO) on centred float64 rows",
            "R2 = held-out R^2 on 5000 new rows; alpha idx = chosen index in the grid "
            "(ours/numpy GCV, sklearn LOO, different penalty geometry); pred diff = "
            "max|ours - numpy| / max|ours| on the held-out rows",
            fmt_table(
                ["case", "p", "ours", "numpy", "sklearn", "numpy/ours", "sklearn/ours",
                 "R2 ours", "R2 numpy", "R2 sklearn", "alpha idx o/n/s", "pred diff",
                 "spread"],
                rows_t,
            ),
            "",
            "Gram step alone, SufficientStats(degree=2).update(X, y), seconds; GF/s = n p (p+1)"
            " / t (the lower triangle of a symmetric rank-n update);",
            "frac peak = GF/s / GEMM peak (1.0 = every needed flop at GEMM speed); "
            "gram/fit = ours' Gram time / ours' fit time; rest = fit - Gram (eigh, solve, CV)",
            fmt_table(
                ["case", "ours", "numpy", "numpy/ours", "ours GF/s", "numpy GF/s",
                 "ours frac peak", "numpy frac peak", "gram/fit", "rest s"],
                rows_g,
            ),
            "",
            "Memory, MiB: extra = peak RSS - RSS before the call, each method in its own "
            "process; X f32 = input size, n x p f64 = what materialising the features costs",
            fmt_table(
                ["case", "X f32", "n x p f64", "p^2 f64", "ours gram", "ours fit",
                 "numpy gram", "numpy fit", "sklearn fit"],
                rows_m,
            ),
        ]  # fmt: skip

    def dual_tables(self) -> list[str]:
        rows_t, rows_m = [], []
        for r in self.dual_rows:
            ai = r["alpha_index"]
            rows_t.append([
                r["label"], f"{r['p']:,}", self.cell_t(r, "ours"), self.cell_t(r, "ours_1g"),
                self.cell_t(r, "numpy"), self.cell_t(r, "sklearn"),
                fs(r["t"]["sklearn"] / N_ALPHAS, 2) if r["t"]["sklearn"] else "-",
                fx(r["t"]["numpy"], r["t"]["ours"]), fx(r["t"]["sklearn"], r["t"]["ours"]),
                fx(r["t"]["sklearn"], r["t"]["ours_1g"]),
                fr2(r["r2"]["ours"]), fr2(r["r2"]["numpy"]), fr2(r["r2"].get("kr_at_ours")),
                fr2(r["r2"].get("kr_oracle")),
                f"{'-' if ai['ours'] is None else ai['ours']}/{r.get('kr_oracle_index', '-')}",
                fe(r.get("pred_diff_numpy")), fe(r.get("pred_diff_kr")),
                "-" if r["spread"] is None else f"{r['spread']:.2f}",
            ])  # fmt: skip
            n, d = r["n"], r["d"]
            rows_m.append([
                r["label"], f"{n * d * 4 / MB:.0f}", f"{n * n * 8 / MB:.0f}",
                fmt_mem(r["mem"]["ours"]), fmt_mem(r["mem"]["numpy"]),
                fmt_mem(r["mem"]["sklearn"]) if r["mem"]["sklearn"] else
                (r["err"]["sklearn"] or "-"),
            ])  # fmt: skip
        cv = self.args.dual_cv.upper()
        return [
            f"DUAL route (n x n kernel). Fit time, seconds; ours/numpy = exact {cv} over all "
            f"{N_ALPHAS} alphas from one eigendecomposition per gamma, searching the default "
            "gammas; ours 1g = ours at the one gamma the loop uses (like for like); KRloop = "
            f"{N_ALPHAS} x sklearn KernelRidge(kernel='poly', degree=2) fits, one per alpha "
            "(no CV at all; benches/bench_dual_floor.py adds the floor)",
            "R2 = held-out R^2 on 2000 new rows; KR @ours a = KernelRidge at the alpha ours "
            "chose; KR oracle = its best alpha on the test set (needs test labels);",
            "alpha idx = ours' chosen index / the oracle's; pred diff = max|X - ours| / max|ours|"
            " on held-out rows (vs KR at ours' alpha: its kernel adds a penalised constant)",
            fmt_table(
                [
                    "case",
                    "p",
                    "ours",
                    "ours 1g",
                    "numpy",
                    "KRloop",
                    "KR/fit",
                    "numpy/ours",
                    "KRloop/ours",
                    "KRloop/ours 1g",
                    "R2 ours",
                    "R2 numpy",
                    "KR @ours a",
                    "KR oracle",
                    "alpha idx",
                    "diff numpy",
                    "diff KR",
                    "spread",
                ],
                rows_t,
            ),
            "",
            "Memory, MiB: extra = peak RSS - RSS before the call, each method in its own process",
            fmt_table(["case", "X f32", "n^2 f64", "ours fit", "numpy fit", "KRloop"], rows_m),
        ]


def fr2(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.4f}"


# ---------------------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help=f"default: {' '.join(QUICK)} (~4-6 min on 2 cores)"
    )
    mode.add_argument(
        "--full",
        action="store_true",
        help="primal d in {32,64,128} x n in {20k,100k}; dual d in {384,768,4096}"
        " x n in {5k,20k} (many hours on 2 cores; dual n=20k: ~17 GiB per process)",
    )
    mode.add_argument(
        "--cases", nargs="+", metavar="CASE", help="e.g. primal-d128-n20k dual-d4096-n5k (any d, n)"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="timed runs per method (median; default 1), each in a fresh process",
    )
    add_threads_option(p)
    p.add_argument("--no-sklearn", action="store_true", help="skip sklearn / KernelRidge")
    p.add_argument(
        "--no-gram", action="store_true", help="skip the separate timing of the primal Gram step"
    )
    p.add_argument(
        "--dual-cv",
        choices=["loo", "gcv"],
        default="loo",
        help="CV of ours on the dual route (default loo)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = p.parse_args(argv)  # fmt: skip
    names = args.cases or (FULL if args.full else QUICK)
    try:
        args.case_list = [parse_case(c) for c in names]
    except ValueError as exc:
        p.error(str(exc))
    if args.repeats < 1 or args.threads < 1:
        p.error("--repeats and --threads must be >= 1")
    return args


def run(args: argparse.Namespace) -> dict:
    limiter = set_threads(args.threads)
    peak = gemm_peak_gflops()
    log(f"float64 GEMM peak (2*m*n*k flops): {peak}")
    bench = Bench(args, peak)
    try:
        for kind, d, n in args.case_list:
            bench.case(kind, d, n)
            for lib, v in gemm_peak_gflops().items():
                bench.peak[lib] = max(bench.peak.get(lib, 0.0), v)
        print(bench.report(), flush=True)
    finally:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    result = {
        "peak": bench.peak, "threads": args.threads, "repeats": args.repeats,
        "rust": bench.rust, "cases": bench.raw,
    }  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1, default=float)
    del limiter
    return result


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_child":
        print(json.dumps(child(json.loads(argv[1]))), flush=True)
        return
    run(parse_args(argv))


if __name__ == "__main__":
    main()

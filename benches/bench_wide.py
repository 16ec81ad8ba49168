"""Benchmark of degree-2 probes at LLM widths: exact (dual) vs CP vs the coordinate-stable
options that survive d ~ n, on the synthetic wide tasks of `datasets.make_wide_interaction`.

Run from the repository root::

    .venv/bin/python benches/bench_wide.py           # sized for a small shared machine (~10 min)
    .venv/bin/python benches/bench_wide.py --full    # the issue's grid: d in {384, 768, 1536},
                                                     # n in {2000, 5000, 20000} (hours, ~40 GB)
    .venv/bin/python benches/bench_wide.py --quick   # two small configurations (a minute)

Methodology (docs/design.md §5: ratios in one run, on the same rows):

* Data. ``make_wide_interaction(task="pair")``: two concatenated sentence-embedding-like
  vectors (power-law spectrum, 8 high-variance noise directions each, 5 topics), label 1
  when their topics agree -- an interaction, so the linear probe stays at chance; the
  "topic" rows are 5-way topic classification of one embedding (macro one-vs-rest AUROC).
  n is the number of training rows; AUROC is measured on 1000 (pair: 20% extra) held-out
  rows. Unlabelled rows (4 n) from the same distribution serve as the whitening reference.
* Estimators, all at their defaults (the 19-point alpha grid, extended at an improving edge;
  gamma searched over g0 x (0.1, 1, 10), extended the same way; cv="gcv"):
  LinearProbeClassifier; QuadraticProbeClassifier (the exact probe:
  dual route here, one n x n eigendecomposition per gamma); CPProbeClassifier(rank=R)
  (init="auto": the sketch start at these widths, L-BFGS polish); CP init="exact" (started
  from the exact probe; --exact-start); and the metric options: metric="whiten" (full Q),
  with reference= unlabelled rows, and quadratic_rank="auto" (the spectral cut-off, m and
  gamma / alpha by refitting 5-fold CV), with metric="whiten" or the default metric.
* Times. Wall-clock seconds of one fit each (the machine is shared: the load average is
  printed before and after; rerun when it is above ~1). Where the exact dual probe is out of
  reach (n = 20000 here: a 3.2 GB kernel per gamma, over memory_limit, and hours of
  eigendecomposition on 2 cores) its time is extrapolated from the measured dual fit at the
  same d and the largest measured n: seconds per gamma x (n / n_measured)^3 (the n^3
  eigendecomposition dominates) x the gammas it searched; the table says "extrap.".
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any, Callable, Optional

import numpy as np
from _common import fmt_table, fs, loadavg, log, set_threads

PAIR_HELD_OUT = 1000


def fx(num: Optional[float], den: Optional[float]) -> str:
    """num / den as "0.06x" (4 decimals below 0.01), "-" when undefined."""
    if num is None or den is None or den <= 0:
        return "-"
    r = num / den
    return f"{r:.4f}x" if r < 0.01 else f"{r:.2f}x"


def auroc(est: Any, X: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    s = np.asarray(est.decision_function(X))
    if s.ndim == 2 and s.shape[1] > 1:
        p = np.exp(s - s.max(axis=1, keepdims=True))
        return float(roc_auc_score(y, p / p.sum(axis=1, keepdims=True), multi_class="ovr"))
    return float(roc_auc_score(y, s if s.ndim == 1 else s[:, 0]))


def estimators(task: Any, args: Any, big: bool) -> list[tuple[str, Callable[[], Any]]]:
    import shallowprobes as sp

    ref = task.X_unlabelled
    out: list[tuple[str, Callable[[], Any]]] = [("linear", lambda: sp.LinearProbeClassifier())]
    if not big:
        out.append(("exact degree 2 (dual)", lambda: sp.QuadraticProbeClassifier()))
    for r in args.ranks:
        out.append((f"CP rank {r}", lambda r=r: sp.CPProbeClassifier(rank=r)))
    if args.exact_start and not big:
        out.append(("CP rank 4, exact start", lambda: sp.CPProbeClassifier(rank=4, init="exact")))
    if not big and task.name == "wide_pair":
        out.append(("whiten (full Q)", lambda: sp.QuadraticProbeClassifier(metric="whiten")))
        if args.whiten_reference:
            out.append(("whiten + reference (full Q)", lambda: sp.QuadraticProbeClassifier(
                metric="whiten", reference=ref)))  # fmt: skip
    if task.name == "wide_pair":
        out.append(("whiten + cut-off", lambda: sp.QuadraticProbeClassifier(
            metric="whiten", quadratic_rank="auto")))  # fmt: skip
        out.append(("whiten + reference + cut-off", lambda: sp.QuadraticProbeClassifier(
            metric="whiten", reference=ref, quadratic_rank="auto")))  # fmt: skip
    out.append(("euclidean + cut-off", lambda: sp.QuadraticProbeClassifier(
        quadratic_rank="auto")))  # fmt: skip
    return out


def describe(est: Any) -> str:
    bits = []
    a = np.atleast_1d(np.asarray(est.alpha_, dtype=float))
    bits.append(f"alpha {a[0]:.3g}" + ("" if a.size == 1 else f" (+{a.size - 1})"))
    g = getattr(est, "gamma_", None)
    if g is not None:
        g = np.atleast_1d(np.asarray(g, dtype=float))
        bits.append(f"gamma {g[0]:.3g}")
    if hasattr(est, "init_"):
        bits.append(f"{est.init_}, {int(np.max(est.n_iter_))} it")
    if getattr(est, "solver_", None):
        bits.append(est.solver_)
        if est.quadratic_rank_ is not None:
            bits.append(f"m={est.quadratic_rank_}")
        if est.solver_ in ("primal", "dual"):
            bits.append(f"{est.cv_results_['gammas'].size} gammas")
    return ", ".join(bits)


def run_config(task_name: str, d: int, n: int, args: Any, dual_rate: dict) -> dict:
    from shallowprobes.datasets import make_wide_interaction

    held = PAIR_HELD_OUT
    kw = dict(task=task_name, seed=args.seed, n_unlabelled=4 * n if task_name == "pair" else 0)
    if task_name == "topic":
        kw["separation"] = 1.5
    task = make_wide_interaction(n + held, d, test_fraction=held / (n + held),
                                 dtype=np.float32, **kw)  # fmt: skip
    big = n > args.max_dual_rows
    log(f"[{task_name} d={d} n={n}] load {loadavg()}")
    rows, times, aurocs = [], {}, {}
    for name, make in estimators(task, args, big):
        est = make()
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            est.fit(task.X_train, task.y_train)
            t = time.perf_counter() - t0
        edge = sum(1 for w in rec if "grid" in str(w.message))
        a = auroc(est, task.X_test, task.y_test)
        times[name], aurocs[name] = t, a
        note = describe(est) + (f", {edge} edge warning(s)" if edge else "")
        log(f"  {name}: AUROC {a:.4f} in {t:.1f}s ({note})")
        rows.append([name, f"{a:.4f}", fs(t, 1), note])
        if name.startswith("exact degree 2"):
            dual_rate[d] = (n, t / est.cv_results_["gammas"].size, est.cv_results_["gammas"].size)
    exact = times.get("exact degree 2 (dual)")
    extrap = False
    if exact is None and d in dual_rate:
        n0, per_gamma, n_gammas = dual_rate[d]
        exact = per_gamma * (n / n0) ** 3 * n_gammas
        extrap = True
    for row in rows:
        row.insert(3, fx(times[row[0]], exact) + (" (extrap.)" if extrap and exact else ""))
    head = ["method", "AUROC", "fit s", "time / exact dual", "chosen"]
    print(f"\n## task={task_name} d={d} n={n} (held out {len(task.y_test)}; load {loadavg()})")
    if extrap:
        print(f"exact dual probe not run (n x n kernel over memory_limit / hours); time "
              f"extrapolated from n={dual_rate[d][0]}: {exact:.0f} s")  # fmt: skip
    print(fmt_table(head, rows))
    return {"times": times, "aurocs": aurocs, "exact": exact, "extrap": extrap}


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true", help="the issue's full grid (hours)")
    p.add_argument("--quick", action="store_true", help="one small configuration (smoke test)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--max-dual-rows", type=int, default=8000,
                   help="run the exact dual probe only up to this many rows")
    p.add_argument("--exact-start", action="store_true", help="also CP rank 4 init='exact'")
    p.add_argument("--no-topic", action="store_true", help="skip the 5-way topic task")
    p.add_argument("--config", nargs=3, action="append", metavar=("TASK", "D", "N"),
                   help="run only these configurations (repeatable), e.g. --config pair 768 4000")
    p.add_argument("--whiten-reference", action="store_true",
                   help="also the full whitened probe with a reference (as slow as 'exact')")
    args = p.parse_args(argv)
    limiter = set_threads(args.threads, with_torch=False, with_probes=True)  # noqa: F841
    print(f"# bench_wide: load average {loadavg()} (before), threads {args.threads}")
    if args.full:
        args.exact_start = args.whiten_reference = True
        configs = [("pair", d, n) for d in (384, 768, 1536) for n in (2000, 5000, 20000)]
        configs += [("topic", 768, 5000)]
        args.max_dual_rows = max(args.max_dual_rows, 20000)
    elif args.config:
        configs = [(t, int(d), int(n)) for t, d, n in args.config]
    elif args.quick:
        configs = [("pair", 256, 1000), ("pair", 256, 12000)]
    else:
        configs = [("pair", 384, 2000), ("pair", 768, 4000), ("pair", 1536, 2000),
                   ("pair", 768, 20000)]  # fmt: skip
        if not args.no_topic:
            configs.append(("topic", 768, 4000))
    dual_rate: dict = {}
    results = {}
    t_all = time.perf_counter()
    for task_name, d, n in configs:
        results[(task_name, d, n)] = run_config(task_name, d, n, args, dual_rate)
    print("\n## CP rank 4 fit time / exact dual probe")
    summary = []
    for (task_name, d, n), r in results.items():
        cp = r["times"].get("CP rank 4")
        if cp is None or not r["exact"]:
            continue
        gap = r["aurocs"].get("CP rank 4", np.nan) - r["aurocs"].get("exact degree 2 (dual)",
                                                                   np.nan)  # fmt: skip
        summary.append([f"{task_name} d={d} n={n}", fs(cp, 1), fs(r["exact"], 1),
                        fx(cp, r["exact"]) + (" (extrap.)" if r["extrap"] else ""),
                        "-" if np.isnan(gap) else f"{gap:+.4f}"])  # fmt: skip
    print(fmt_table(["config", "CP rank 4 s", "exact dual s", "ratio", "AUROC CP4 - exact"],
                    summary))  # fmt: skip
    print(f"\n# total {time.perf_counter() - t_all:.0f} s; load average {loadavg()} (after)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of shallowprobes.sweep: every layer x every concept of a float16 cache in one pass.

Run from the repository root::

    .venv/bin/python benches/bench_sweep.py            # --quick (default): 3 x 20k x 128, 4 targets
    .venv/bin/python benches/bench_sweep.py --full     # 12 layers x 200k rows x d=768, 16 targets

Methodology (docs/design.md §5: ratios in one run, against the machine's measured limits):

* Data. A cache written to a temporary folder (``--dir``), one float16 ``.npy`` file per
  layer: activation-like columns (bench_linear's layout: decaying scales, a rank-8 shared
  component, offsets with two "massive" columns) driven by 8 latent factors shared by all
  layers; T binary concepts are signs of noisy projections of the factors. The files are
  written just before the run, so every pass reads them from a warm page cache (the number
  is the in-memory read path, not a disk).
* Ours. ``sweep(folder, targets, degrees=1, cv=5)``: one pass (read + the float16 bits
  handed to the core, decoded in its staging loop + accumulation of the 5-fold statistics of
  all T targets per layer, float32 block Grams by default), then every probe solved (19
  alphas, exact 5-fold CV, alpha per concept). rows/s = n * L / pass seconds. The same with
  ``precision="float64"`` (exact Gram), paired with the default run by run.
* Floor of one pass: a plain ``np.load(f, mmap_mode="r")`` with ``block.sum(dtype=float32)``
  over the same files in the same row blocks; "cache reader" is our reader alone
  (``ActivationCache.iter_blocks``: read + convert to float32, nothing accumulated).
* GEMM peak: best float64 2048^3 matmul (numpy, torch), ``_common.gemm_peak_gflops``.
  Accumulation flops follow bench_linear: a Gram of n x d rows counts 2 n d^2
  GEMM-equivalent flops (an ideal symmetric update could reach 2.0 of peak). "frac peak" of
  the pass includes reading and conversion; "accumulate only" times ``SufficientStats.update``
  on one layer already in memory as float32.
* scikit-learn. A loop of ``RidgeClassifierCV(alphas=(0.1, 1, 10), cv=5)`` over layers x
  concepts (its cv=5 refits per fold and alpha: 16 fits per concept) and, as the stronger
  peer, ``RidgeClassifierCV(alphas=grid19)`` with its default efficient leave-one-out, one
  multilabel fit per layer (one alpha shared by the concepts). Both are far too slow at full
  size, so they are timed on the first ``--sk-rows`` rows of one layer (cv=5: the first
  ``--sk-targets`` concepts) and extrapolated linearly in rows, layers and concepts (their
  cost is dominated by n d^2 Gram/SVD work); the table says "extrap.".
* Dask. The same sweep on ``open_cache(folder).to_dask()`` (one chunk = one read under the
  same 512 MiB budget) on a ``dask.distributed.LocalCluster`` on loopback with 1 and with 2
  worker processes (1 thread each, RAYON_NUM_THREADS=1), against the in-process run (2
  threads). Results are checked equal to the in-process sweep.
* Load. ``os.getloadavg()`` is printed; the machine is shared, rerun when it is above ~1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    activation_layout,
    fmt_table,
    fs,
    gemm_peak_gflops,
    have,
    loadavg,
    log,
    reldiff,
    set_threads,
    version,
)

CONFIGS = {
    "quick": dict(layers=3, n=20_000, d=128, targets=4, sk_rows=5_000, sk_targets=2),
    "full": dict(layers=12, n=200_000, d=768, targets=16, sk_rows=20_000, sk_targets=2),
}


def write_cache(folder: Path, L: int, n: int, d: int, T: int, seed: int = 0) -> dict:
    """One float16 .npy file per layer, written in row blocks; returns {concept: labels}."""
    rng = np.random.default_rng(seed)
    n_lat = 8
    B = rng.normal(size=(n_lat, T))
    A = [rng.normal(size=(n_lat, d)) * 0.7 for _ in range(L)]
    layouts = [activation_layout(rng, d) for _ in range(L)]
    labels = np.empty((n, T), dtype=np.int8)
    files = [
        np.lib.format.open_memmap(
            folder / f"layer_{lay:02d}.npy", mode="w+", dtype=np.float16, shape=(n, d)
        )
        for lay in range(L)
    ]
    step = 20_000
    for a in range(0, n, step):
        b = min(n, a + step)
        Z = rng.normal(size=(b - a, n_lat))
        labels[a:b] = (Z @ B + 0.5 * rng.normal(size=(b - a, T)) > 0).astype(np.int8)
        for lay in range(L):
            col_scale, mix, offset = layouts[lay]
            H = (
                Z @ A[lay]
                + rng.normal(size=(b - a, d)) * col_scale
                + rng.normal(size=(b - a, mix.shape[0])) @ mix
                + offset
            )
            files[lay][a:b] = H.astype(np.float16)
    for f in files:
        f.flush()
    del files
    return {f"concept_{t:02d}": labels[:, t] for t in range(T)}


def floor_pass(files: list, rows: int) -> float:
    t0 = time.perf_counter()
    total = 0.0
    for f in files:
        arr = np.load(f, mmap_mode="r")
        for a in range(0, arr.shape[0], rows):
            total += float(arr[a : a + rows].sum(dtype=np.float32))
    return time.perf_counter() - t0


def reader_pass(cache: Any, budget: int) -> float:
    t0 = time.perf_counter()
    for _ in cache.iter_blocks(memory_budget=budget):
        pass
    return time.perf_counter() - t0


def sklearn_times(X: np.ndarray, Y: np.ndarray, n_targets_cv: int, grid: np.ndarray) -> dict:
    from sklearn.linear_model import RidgeClassifierCV

    t0 = time.perf_counter()
    for t in range(n_targets_cv):
        RidgeClassifierCV(alphas=(0.1, 1.0, 10.0), cv=5).fit(X, Y[:, t])
    cv5 = (time.perf_counter() - t0) / n_targets_cv
    t0 = time.perf_counter()
    RidgeClassifierCV(alphas=grid).fit(X, Y)  # efficient LOO, multilabel: one fit per layer
    loo = time.perf_counter() - t0
    return {"cv5_per_target": cv5, "loo_per_layer": loo}


def _warm_up() -> None:
    import dask.array  # noqa: F401
    import shallowprobes  # noqa: F401


def dask_sweep(folder: Path, targets: dict, workers: int, budget: int) -> tuple[float, Any]:
    import distributed
    from shallowprobes import sweep
    from shallowprobes.caches import open_cache

    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            env={"RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
            silence_logs=40,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(_warm_up)  # imports in the workers are not part of the timing
        cache = open_cache(folder).to_dask(memory_budget=budget)
        t0 = time.perf_counter()
        res = sweep(cache, targets, degrees=1, cv=5, verbose=False)
        return time.perf_counter() - t0, res


def run(args: argparse.Namespace) -> None:
    cfg = dict(CONFIGS["full" if args.full else "quick"])
    for key in ("layers", "n", "d", "targets", "sk_rows"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    L, n, d, T = cfg["layers"], cfg["n"], cfg["d"], cfg["targets"]
    budget = args.memory_budget
    limiter = set_threads(args.threads, with_torch=False, with_probes=True)  # noqa: F841
    import shallowprobes as sp
    from shallowprobes import LinearProbeClassifier, SufficientStats, sweep
    from shallowprobes.caches import open_cache

    log(f"load average before: {loadavg()}")
    peak = max(gemm_peak_gflops().values())
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"cache_{L}x{n}x{d}"
    try:
        t0 = time.perf_counter()
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        targets = write_cache(folder, L, n, d, T)
        t_write = time.perf_counter() - t0
        files = sorted(folder.glob("*.npy"))
        nbytes = sum(f.stat().st_size for f in files)
        log(f"wrote {L} x {n} x {d} float16 ({nbytes / 2**30:.2f} GiB) in {t_write:.1f} s")
        cache = open_cache(folder)
        rows = cache.rows_per_read(budget)
        t_floor = min(floor_pass(files, rows) for _ in range(2))
        t_reader = min(reader_pass(cache, budget) for _ in range(2))
        log(f"floor {t_floor:.2f} s, reader {t_reader:.2f} s")

        res = sweep(folder, targets, degrees=1, cv=5, verbose=args.verbose)
        tm = res.timings
        log(f"ours: {tm}")
        # the exact float64 Gram on the same raw bits (precision="auto" uses float32 block
        # Grams for half layers), timed right after, twice each, paired medians of the pass
        pairs = []
        for _ in range(2):
            t64 = sweep(folder, targets, degrees=1, cv=5, precision="float64",
                        verbose=False).timings["pass"]  # fmt: skip
            t32 = sweep(folder, targets, degrees=1, cv=5, verbose=False).timings["pass"]
            pairs.append((t32, t64))
        pass_ratio = float(np.median([a / b for a, b in pairs]))
        res64 = sweep(folder, targets, degrees=1, cv=5, precision="float64", verbose=False)

        # accumulation alone, one layer already in memory (float32)
        X32 = cache.read(cache.names[0])
        if X32.dtype != np.float32:
            X32 = X32.astype(np.float32)
        Y = np.stack([np.where(v > 0, 1.0, -1.0) for v in targets.values()], axis=1)
        folds = np.arange(n) % 5
        t0 = time.perf_counter()
        SufficientStats(5).update(X32, Y, folds)
        t_acc = time.perf_counter() - t0
        # correctness: our layer-0 probe of concept 0 vs the in-memory fit
        c0 = next(iter(targets))
        ref = LinearProbeClassifier(cv=5).fit(X32, targets[c0])
        err = reldiff(res.probes[(cache.names[0], 1, c0)].coef_, ref.coef_)
        err64 = reldiff(res64.probes[(cache.names[0], 1, c0)].coef_, ref.coef_)

        sk = None
        if have("sklearn"):
            m = min(cfg["sk_rows"], n)
            grid = res.probes[(cache.names[0], 1, c0)].alphas_
            sk = sklearn_times(
                X32[:m],
                np.stack(list(targets.values()), axis=1)[:m],
                min(cfg["sk_targets"], T),
                grid,
            )
            scale = n / m
            sk_cv5 = sk["cv5_per_target"] * scale * T * L
            sk_loo = sk["loo_per_layer"] * scale * L
            log(f"sklearn on {m} rows: {sk}")
        del X32, ref

        dask_times = {}
        dask_err = None
        if have("distributed") and not args.no_dask:
            for w in (1, 2):
                t, dres = dask_sweep(folder, targets, w, budget)
                dask_times[w] = t
                log(f"dask {w} worker(s): {t:.1f} s")
            dask_err = max(reldiff(p.coef_, res.probes[k].coef_) for k, p in dres.probes.items())
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
            if not args.dir:
                shutil.rmtree(root, ignore_errors=True)

    flops_pass = 2.0 * n * d * d * L
    rows_per_s = n * L / tm["pass"]
    print(
        f"\n# bench_sweep: {L} layers x n={n:,} x d={d} (float16 on disk, "
        f"{nbytes / 2**30:.2f} GiB) x {T} binary concepts, degree 1, 5-fold CV, 19 alphas"
    )
    print(
        f"# shallowprobes {sp.__version__} (backend {'rust' if sp.rust_available() else 'numpy'}"
        f"), numpy {version('numpy')}, sklearn {version('sklearn') if have('sklearn') else '-'}"
        f", dask {version('dask') if have('dask') else '-'}; threads={args.threads}; "
        f"GEMM peak {peak:.1f} GFLOP/s; memory_budget {budget / 2**20:.0f} MiB "
        f"({rows:,} rows/read); load average {loadavg()}"
    )
    table = [
        [
            "np.load(mmap) sum, same files (floor)",
            fs(t_floor, 2),
            f"{nbytes / t_floor / 1e9:.2f} GB/s",
            "1.00x",
            "-",
        ],
        [
            "cache reader (read + f16->f32)",
            fs(t_reader, 2),
            f"{nbytes / t_reader / 1e9:.2f} GB/s",
            f"{t_reader / t_floor:.2f}x floor",
            "-",
        ],
        [
            "ours: pass (read + accumulate all)",
            fs(tm["pass"], 2),
            f"{nbytes / tm['pass'] / 1e9:.2f} GB/s",
            f"{tm['pass'] / t_floor:.2f}x floor",
            f"{flops_pass / tm['pass'] / 1e9 / peak:.2f} peak",
        ],
        [
            "ours: pass, precision='float64' (paired median)",
            fs(tm["pass"] / pass_ratio, 2),
            f"{nbytes / (tm['pass'] / pass_ratio) / 1e9:.2f} GB/s",
            f"auto/float64 {pass_ratio:.2f}x",
            "-",
        ],
        ["ours: solve (all probes)", fs(tm["solve"], 2), "-", "-", "-"],
        [
            "ours: sweep total",
            fs(tm["total"], 2),
            f"{n * L / tm['total']:,.0f} rows/s",
            "1.00x",
            "-",
        ],
        [
            "accumulate only (1 layer in memory, f32)",
            fs(t_acc, 2),
            f"{n / t_acc:,.0f} rows/s",
            "-",
            f"{2.0 * n * d * d / t_acc / 1e9 / peak:.2f} peak",
        ],
    ]
    if sk is not None:
        table += [
            [
                f"sklearn RidgeClassifierCV(cv=5) loop L x T (extrap. from {m:,} rows, "
                f"{min(cfg['sk_targets'], T)} concepts)",
                fs(sk_cv5, 1),
                "-",
                f"{sk_cv5 / tm['total']:.1f}x slower",
                "-",
            ],
            [
                f"sklearn RidgeClassifierCV() LOO, multilabel per layer (extrap. from {m:,} rows)",
                fs(sk_loo, 1),
                "-",
                f"{sk_loo / tm['total']:.1f}x slower",
                "-",
            ],
        ]
    for w, t in dask_times.items():
        table.append(
            [
                f"dask LocalCluster, {w} worker process(es) x 1 thread",
                fs(t, 2),
                f"{n * L / t:,.0f} rows/s",
                f"{t / tm['total']:.2f}x in-process",
                "-",
            ]
        )
    print(fmt_table(["step", "seconds", "throughput", "ratio", "GEMM"], table))
    print(
        f"\nrows/s of the pass: {rows_per_s:,.0f} (row-layers); ours vs in-memory fit "
        f"(layer 0, concept 0): coef max rel diff {err:.1e} (precision='auto': float32 block "
        f"Grams), {err64:.1e} (precision='float64')"
    )
    if dask_times:
        print(
            f"dask: 1 -> 2 workers speedup {dask_times[1] / dask_times[2]:.2f}x; 2 workers vs "
            f"in-process {tm['total'] / dask_times[2]:.2f}x (>1: dask faster); max rel diff "
            f"to the in-process sweep {dask_err:.1e}"
        )
    print(f"load average after: {loadavg()}")


def parse_args(argv: list) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="small configuration (default)")
    g.add_argument("--full", action="store_true", help="12 layers x 200k x 768, 16 concepts")
    p.add_argument("--layers", type=int)
    p.add_argument("--n", type=int)
    p.add_argument("--d", type=int)
    p.add_argument("--targets", type=int)
    p.add_argument("--sk-rows", dest="sk_rows", type=int, help="rows sklearn is timed on")
    p.add_argument("--memory-budget", dest="memory_budget", type=int, default=512 << 20)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--dir", help="where to write the cache (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the cache files")
    p.add_argument("--no-dask", action="store_true")
    p.add_argument("--verbose", action="store_true", help="progress bars")
    return p.parse_args(argv)


def main(argv: Any = None) -> None:
    run(parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()

"""The subcommands: fit, sweep, collect, transfer, demo, bench. Each takes the parsed arguments
and returns an exit code; input and output go through `cli.files`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .files import (
    _FIG,
    Failure,
    UsageError,
    _check_rows,
    _existing,
    _json_value,
    _layer_name,
    _open_cache,
    _out_dir,
    _plot_module,
    _read_layer,
    format_table,
    gamma_option,
    load_states,
    load_targets,
    one_line,
    task_of,
    write_table,
)

_BENCHES = ("bench_linear.py", "bench_linear_wide.py", "bench_quadratic.py", "bench_torch.py",
            "bench_transfer.py", "bench_sweep.py")  # fmt: skip # the set `make bench` runs


# -------------------------------------------------------------------------------------- fit
FIT_COLUMNS = ("layer", "degree", "target", "task", "n_train", "cv", "metric", "alpha",
               "at_grid_edge", "cv_score", "test_metric", "test_score", "n_test")  # fmt: skip


def _make_probe(degree: int, task: str, cv: Any, metric: str, alphas: Any = None,
                gamma: Any = None) -> Any:  # fmt: skip
    import shallowprobes as sp

    cls = {
        (1, "classification"): sp.LinearProbeClassifier,
        (1, "regression"): sp.LinearProbe,
        (2, "classification"): sp.QuadraticProbeClassifier,
        (2, "regression"): sp.QuadraticProbe,
    }[(degree, task)]
    extra = {"gamma": gamma} if degree == 2 else {}
    return cls(cv=cv, metric=metric, alphas=alphas, **extra)


def cmd_fit(args: argparse.Namespace) -> int:
    import warnings

    import shallowprobes as sp

    from ..sweep_result import grid_edge

    cache = _open_cache(args.cache)
    if args.layer is None:
        if len(cache.names) != 1:
            raise UsageError(
                f"the cache has layers {[str(n) for n in cache.names]}; choose one with --layer"
            )
        layer = cache.names[0]
    else:
        layer = _layer_name(cache, args.layer)
    targets = load_targets(args.targets)
    n = cache.n_rows
    _check_rows(targets, n, f"CACHE layer {layer!r}")
    X = _read_layer(cache, layer, f"CACHE {args.cache}")
    n_test = int(round(args.split * n)) if args.split else 0
    n_train = n - n_test
    if n_train < 4:
        raise UsageError(f"only {n_train} training rows")
    gamma = gamma_option(args.gamma)
    if gamma is not None and args.degree != 2:
        raise UsageError("--gamma applies to --degree 2 only")
    out = _out_dir(args.out)
    bank = sp.ProbeBank(metadata={"layer": str(layer), "degree": args.degree,
                                  "cache": str(args.cache)})  # fmt: skip
    rows, probes = [], {}
    for name, values in targets.items():
        task = task_of(values)
        probe = _make_probe(args.degree, task, args.cv, args.metric, args.alphas, gamma)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the table's at_grid_edge column says it
            probe.fit(X[:n_train], values[:n_train])
        row = {"layer": str(layer), "degree": args.degree, "target": name, "task": task,
               "n_train": n_train, "cv": str(args.cv), "metric": args.metric,
               "alpha": float(np.asarray(probe.alpha_).ravel()[0]),
               "at_grid_edge": grid_edge(probe), "cv_score": float(probe.best_score_),
               "test_metric": None, "test_score": None, "n_test": n_test or None}  # fmt: skip
        if n_test:
            row["test_metric"] = "accuracy" if task == "classification" else "r2"
            row["test_score"] = float(probe.score(X[n_train:], values[n_train:]))
        rows.append(row)
        probes[name] = probe
        bank.add(name, probe)
    print(format_table(rows, [c for c in FIT_COLUMNS if any(r.get(c) is not None for r in rows)]))
    write_table(rows, FIT_COLUMNS, out / "scores")
    bank.save(out / "bank")
    written = ["scores.csv", "scores.json", "bank/"]
    plot = _plot_module()
    if plot is not None:
        plot.alpha_curves(probes, relative=len(probes) > 1, path=out / "alpha.png", **_FIG)
        written.append("alpha.png")
    else:
        print("(matplotlib not installed: no figure; pip install shallowprobes[plot])")
    print(f"wrote {', '.join(written)} to {out}")
    return 0


# ------------------------------------------------------------------------------------ sweep
def cmd_sweep(args: argparse.Namespace) -> int:
    import shallowprobes as sp
    from shallowprobes.sweep import SweepTable

    cache = _open_cache(args.cache)
    layers = None
    if args.layers:
        layers = [_layer_name(cache, name) for name in args.layers]
    targets = load_targets(args.targets)
    _check_rows(targets, cache.n_rows, "CACHE")
    task = {name: task_of(values) for name, values in targets.items()}
    out = _out_dir(args.out)
    gamma = gamma_option(args.gamma)
    if gamma is not None and 2 not in args.degrees:
        raise UsageError("--gamma applies to degree 2 only (add 2 to --degrees)")
    res = sp.sweep(cache, targets, layers=layers, degrees=tuple(args.degrees), cv=args.cv,
                   metric=args.metric, task=task, split=args.split, degree1=args.degree1,
                   degree2=args.degree2,
                   alphas=args.alphas, gamma=gamma, precision=args.precision,
                   verbose=False if args.quiet else None)  # fmt: skip
    print(res.table)
    columns = SweepTable.columns
    rows = [{**r, "layer": str(r["layer"])} for r in res.table.rows]
    write_table(rows, columns, out / "results")
    for layer, bank in res.banks.items():
        bank.save(out / "banks" / str(layer))
    written = ["results.csv", "results.json", "banks/"]
    plot = _plot_module()
    if plot is not None:
        plot.layer_curves(res, path=out / "layers.png", **_FIG)
        written.append("layers.png")
        if {1, 2} <= set(args.degrees):
            plot.degree_gap(res, path=out / "degree_gap.png", **_FIG)
            written.append("degree_gap.png")
    else:
        print("(matplotlib not installed: no figures; pip install shallowprobes[plot])")
    print(f"wrote {', '.join(written)} to {out}")
    return 0


# ---------------------------------------------------------------------------------- collect
def cmd_collect(args: argparse.Namespace) -> int:
    _existing(args.model, "MODEL")
    texts = _existing(args.texts, "TEXTS")
    if not texts.is_file() or texts.suffix.lower() not in (".txt", ".jsonl"):
        raise UsageError(f"TEXTS {args.texts}: expected a .txt (one text per line) or .jsonl "
                         "file (a \"text\" field per line)")  # fmt: skip
    if args.layers == ["all"]:
        layers: Any = "all"
    else:
        try:
            layers = [int(v) for v in args.layers]
        except ValueError:
            raise UsageError(
                f"--layers: expected 'all' or layer indices, got {args.layers}"
            ) from None
    try:
        from ..collect import collect_activations
    except ImportError as exc:
        raise Failure(
            f"collect is not available in this installation (shallowprobes.collect: "
            f"{one_line(exc)}); it needs torch and transformers"
        ) from exc
    collect_activations(args.model, str(texts), layers=layers, pool=args.pool, out=args.out,
                        batch_size=args.batch_size, max_length=args.max_length,
                        device=args.device, dtype=args.dtype, resume=not args.no_resume,
                        progress=not args.quiet)  # fmt: skip
    print(f"wrote the activation cache {args.out}")
    return 0


# --------------------------------------------------------------------------------- transfer
def cmd_transfer(args: argparse.Namespace) -> int:
    import warnings

    import shallowprobes as sp

    _existing(args.bank, "BANK")
    try:
        bank = sp.ProbeBank.load(args.bank)
    except (ValueError, OSError) as exc:
        raise UsageError(f"BANK {args.bank}: {one_line(exc)}") from exc
    HA = load_states(args.paired_a, args.layer_a, "PAIRED_A")
    HB = load_states(args.paired_b, args.layer_b, "PAIRED_B")
    if HA.shape[0] != HB.shape[0]:
        raise UsageError(f"PAIRED_A has {HA.shape[0]} rows but PAIRED_B has {HB.shape[0]} rows "
                         "(row i must be the same input in both)")  # fmt: skip
    if HA.shape[1] != bank.n_features_in_:
        raise UsageError(f"the bank reads {bank.n_features_in_} features but PAIRED_A has "
                         f"{HA.shape[1]} columns")  # fmt: skip
    out = _out_dir(args.out)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*NOT portable")  # the table says it
        moved = sp.transfer(bank, HA, HB, holdout=args.holdout, unportable=args.unportable,
                            random_state=args.seed)  # fmt: skip
    report = moved.report
    print(report)
    data = report.to_dict()
    cols = ["name", "kind", "in_bank", "coverage", "decision_auroc", "decision_agreement",
            "rank_correlation", "fidelity_r2", "threshold", "portable", "reason"]  # fmt: skip
    write_table(data["rows"], cols, out / "transfer_report")
    with open(out / "transfer_report.json", "w") as fh:  # the full report, not only the rows
        json.dump(data, fh, indent=1, default=_json_value)
    moved.save(out / "bank")
    written = ["transfer_report.csv", "transfer_report.json", "bank/"]
    plot = _plot_module()
    if plot is not None:
        plot.transfer_map(report, path=out / "coverage.png", figsize=(9.0, 4.5), dpi=100)
        written.append("coverage.png")
    else:
        print("(matplotlib not installed: no figure; pip install shallowprobes[plot])")
    print(f"wrote {', '.join(written)} to {out}")
    return 0


# ------------------------------------------------------------------------------ demo, bench
def cmd_demo(args: argparse.Namespace) -> int:
    extra = list(args.extra or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    if extra and not args.real:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)} (only --real takes more)")
    if args.real and args.quick:
        raise UsageError("--quick is for the synthetic demo; give the case study its own sizes "
                         "after --, e.g. demo --real -- --n-articles 100")  # fmt: skip
    argv = (["--quick"] if args.quick else []) + (["--out", args.out] if args.out else [])
    argv += extra
    if args.real:
        try:
            from ..case_study import main as case_main
        except ImportError as exc:
            raise Failure(f"demo --real is not available in this installation "
                          f"(shallowprobes.case_study: {one_line(exc)})") from exc  # fmt: skip
        result: object = case_main(argv)
    else:
        from ..demo import main as demo_main

        demo_main(argv)  # returns None
        result = None
    return int(result) if isinstance(result, int) else 0


def _find_benches(explicit: Optional[str]) -> Optional[Path]:
    if explicit is not None:
        p = Path(explicit)
        return p if p.is_dir() and any(p.glob("bench_*.py")) else None
    checkout = Path(__file__).resolve().parents[3]  # python/shallowprobes/cli/ -> the checkout
    candidates = [Path.cwd() / "benches", checkout / "benches"]
    for p in candidates:
        if p.is_dir() and any(p.glob("bench_*.py")):
            return p
    return None


def cmd_bench(args: argparse.Namespace) -> int:
    where = _find_benches(args.benches)
    if where is None:
        raise Failure("no benches/ folder with bench_*.py scripts found (the benchmarks ship "
                      "with the source checkout; run from its root or pass --benches DIR)")
    scripts = [where / s for s in _BENCHES if (where / s).exists()]
    if not scripts:
        scripts = sorted(where.glob("bench_*.py"))
    if args.only:
        wanted = {s if s.startswith("bench_") else f"bench_{s}" for s in args.only}
        wanted = {w if w.endswith(".py") else w + ".py" for w in wanted}
        scripts = [s for s in sorted(where.glob("bench_*.py")) if s.name in wanted]
        if not scripts:
            raise UsageError(f"--only {args.only}: no such bench_*.py in {where}")
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([pkg_root] + [p for p in [env.get("PYTHONPATH")] if p])
    failed = []
    for script in scripts:
        cmd = [sys.executable, str(script)]
        if args.quick and '"--quick"' in script.read_text(errors="replace"):
            cmd.append("--quick")
        print(f"== {script.name} {' '.join(cmd[2:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, env=env)
        print(f"== {script.name}: exit {rc}, {time.perf_counter() - t0:.1f} s", flush=True)
        if rc != 0:
            failed.append(script.name)
    if failed:
        raise Failure(f"benchmark(s) failed: {', '.join(failed)}")
    return 0

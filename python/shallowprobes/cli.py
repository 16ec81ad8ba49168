"""The ``shallowprobes`` command line (also ``python -m shallowprobes``).

Subcommands::

    shallowprobes fit CACHE TARGETS --layer L --degree 1 --cv 5 --out DIR
    shallowprobes sweep CACHE TARGETS --layers 0 1 2 --degrees 1 2 --cv 5 --out DIR
    shallowprobes collect MODEL TEXTS --layers all --pool mean --out CACHE
    shallowprobes transfer BANK PAIRED_A PAIRED_B --out DIR
    shallowprobes demo [--quick] [--out DIR] [--real]
    shallowprobes bench [--quick]

CACHE is anything `shallowprobes.caches.open_cache` opens (a directory with one ``.npy`` /
``.safetensors`` file per layer, shard directories, a stacked ``[L, n, d]`` file). TARGETS is
a ``.npy`` file (1-D, or 2-D with columns named t0, t1, ...), a ``.csv`` with a header (the
concept names) or a ``.parquet`` file (needs pyarrow). Integer, bool and string columns are
class labels (a classifier), float columns are regression targets.

Errors go to stderr as one line ``shallowprobes: error: ...``; the exit status is 2 for bad
arguments and unusable inputs, 1 for failures while working. ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

PROG = "shallowprobes"
_FIG = {"figsize": (8.0, 4.5), "dpi": 100}  # every PNG the CLI writes: 800 x 450 pixels
_BENCHES = ("bench_linear.py", "bench_quadratic.py", "bench_torch.py", "bench_transfer.py",
            "bench_sweep.py")  # fmt: skip # the set `make bench` runs


class UsageError(Exception):
    """Bad arguments or unusable inputs: exit status 2."""


class Failure(Exception):
    """A failure while working: exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's usage errors, as one line
        raise UsageError(message)


# ------------------------------------------------------------------------------ input files
def _existing(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {path}: no such file or directory")
    return p


def load_targets(path: str) -> dict[str, np.ndarray]:
    """{column name: values} from a .npy (columns t0, t1, ...), .csv or .parquet file."""
    p = _existing(path, "TARGETS")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise UsageError(
                f"TARGETS {path}: not a readable .npy file ({_one_line(exc)})"
            ) from exc
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] == 0:
            raise UsageError(f"TARGETS {path}: expected a 1-D or 2-D array, got shape {arr.shape}")
        return {f"t{j}": np.asarray(arr[:, j]) for j in range(arr.shape[1])}
    if suffix in (".csv", ".parquet"):
        try:
            import pandas as pd
        except ImportError:
            raise UsageError(f"reading {suffix} targets needs pandas: pip install pandas") from None
        try:
            if suffix == ".csv":
                frame = pd.read_csv(p)
            else:
                frame = pd.read_parquet(p)
        except ImportError as exc:
            raise UsageError(
                f"reading .parquet targets needs pyarrow: pip install pyarrow ({_one_line(exc)})"
            ) from None
        except Exception as exc:
            raise UsageError(f"TARGETS {path}: cannot read it ({_one_line(exc)})") from exc
        if frame.shape[1] == 0 or frame.shape[0] == 0:
            raise UsageError(f"TARGETS {path}: no columns or no rows")
        out = {}
        for col in frame.columns:
            values = frame[col].to_numpy()
            if frame[col].isna().any():
                raise UsageError(f"TARGETS {path}: column {col!r} has missing values")
            out[str(col)] = values
        return out
    raise UsageError(f"TARGETS {path}: unsupported file type {suffix!r} (use .npy, .csv, .parquet)")


def task_of(values: np.ndarray) -> str:
    """'classification' for integer, bool and string labels, 'regression' for floats."""
    kind = np.asarray(values).dtype.kind
    if kind in "biuUSO":
        return "classification"
    if kind == "f":
        return "regression"
    raise UsageError(f"unsupported target dtype {np.asarray(values).dtype}")


def _open_cache(path: str, what: str = "CACHE") -> Any:
    from .caches import open_cache

    _existing(path, what)
    try:
        return open_cache(path)
    except (ValueError, OSError) as exc:
        raise UsageError(f"{what} {path}: {_one_line(exc)}") from exc


def _layer_name(cache: Any, wanted: str) -> Any:
    by_text = {str(name): name for name in cache.names}
    if wanted not in by_text:
        raise UsageError(f"unknown layer {wanted!r}; the cache has layers {list(by_text)}")
    return by_text[wanted]


def _check_rows(targets: dict[str, np.ndarray], n: int, what: str) -> None:
    for name, values in targets.items():
        if values.shape[0] != n:
            raise UsageError(
                f"TARGETS has {values.shape[0]} rows (column {name!r}) but {what} has {n} rows"
            )


def _read_layer(cache: Any, layer: Any, what: str) -> np.ndarray:
    try:
        return np.asarray(cache.read(layer))
    except (ValueError, OSError) as exc:
        raise UsageError(f"{what}: {_one_line(exc)}") from exc


def load_states(path: str, layer: Optional[str], what: str) -> np.ndarray:
    """An (n, d) matrix of hidden states: a .npy file, or one layer of a cache."""
    p = _existing(path, what)
    if p.suffix.lower() == ".npy" and p.is_file():
        try:
            H = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise UsageError(f"{what} {path}: not a readable .npy file ({_one_line(exc)})") from exc
        if H.ndim != 2:
            raise UsageError(f"{what} {path}: expected an (n, d) array, got shape {H.shape}")
        return H
    cache = _open_cache(path, what)
    if layer is None:
        if len(cache.names) != 1:
            raise UsageError(
                f"{what} {path} has layers {[str(n) for n in cache.names]}; choose one with "
                f"--layer-{what[-1].lower()}"
            )
        name = cache.names[0]
    else:
        name = _layer_name(cache, layer)
    return _read_layer(cache, name, f"{what} {path}")


def _cv(text: str) -> Any:
    if text in ("gcv", "loo"):
        return text
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'gcv', 'loo' or an integer K >= 2, got {text!r}"
        ) from None
    if k < 2:
        raise argparse.ArgumentTypeError(f"K-fold needs K >= 2, got {k}")
    return k


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text!r}") from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


# ----------------------------------------------------------------------------- output files
def _json_value(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, np.ndarray):
        return [_json_value(x) for x in v.tolist()]
    return v


def write_table(rows: list[dict], columns: Sequence[str], stem: Path) -> None:
    """``stem.csv`` (floats with repr precision, empty cells for None) and ``stem.json``."""
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else _json_value(r.get(c)) for c in columns])
    with open(stem.with_suffix(".json"), "w") as fh:
        json.dump([{c: _json_value(r.get(c)) for c in columns} for r in rows], fh, indent=1)


def format_table(rows: list[dict], columns: Sequence[str]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else ""
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.4g}"
        return str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _plot_module() -> Any:
    try:
        import matplotlib  # noqa: F401

        from . import plot
    except ImportError:
        return None
    return plot


def _out_dir(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {path}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


# -------------------------------------------------------------------------------------- fit
FIT_COLUMNS = ("layer", "degree", "target", "task", "n_train", "cv", "metric", "alpha",
               "at_grid_edge", "cv_score", "test_metric", "test_score", "n_test")  # fmt: skip


def _make_probe(degree: int, task: str, cv: Any, metric: str) -> Any:
    import shallowprobes as sp

    cls = {
        (1, "classification"): sp.LinearProbeClassifier,
        (1, "regression"): sp.LinearProbe,
        (2, "classification"): sp.QuadraticProbeClassifier,
        (2, "regression"): sp.QuadraticProbe,
    }[(degree, task)]
    return cls(cv=cv, metric=metric)


def _at_edge(probe: Any) -> bool:
    alphas = np.sort(np.asarray(probe.alphas_, dtype=float).ravel())
    chosen = np.asarray(probe.alpha_, dtype=float).ravel()
    return bool(alphas.size > 1 and np.any(np.isclose(chosen, alphas[0]) |
                                           np.isclose(chosen, alphas[-1])))  # fmt: skip


def cmd_fit(args: argparse.Namespace) -> int:
    import warnings

    import shallowprobes as sp

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
    out = _out_dir(args.out)
    bank = sp.ProbeBank(metadata={"layer": str(layer), "degree": args.degree,
                                  "cache": str(args.cache)})  # fmt: skip
    rows, probes = [], {}
    for name, values in targets.items():
        task = task_of(values)
        probe = _make_probe(args.degree, task, args.cv, args.metric)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the table's at_grid_edge column says it
            probe.fit(X[:n_train], values[:n_train])
        row = {"layer": str(layer), "degree": args.degree, "target": name, "task": task,
               "n_train": n_train, "cv": str(args.cv), "metric": args.metric,
               "alpha": float(np.asarray(probe.alpha_).ravel()[0]),
               "at_grid_edge": _at_edge(probe), "cv_score": float(probe.best_score_),
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
    res = sp.sweep(cache, targets, layers=layers, degrees=tuple(args.degrees), cv=args.cv,
                   metric=args.metric, task=task, split=args.split, degree2=args.degree2,
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
        from .collect import collect_activations
    except ImportError as exc:
        raise Failure(
            f"collect is not available in this installation (shallowprobes.collect: "
            f"{_one_line(exc)}); it needs torch and transformers"
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
        raise UsageError(f"BANK {args.bank}: {_one_line(exc)}") from exc
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
            from .case_study import main as case_main
        except ImportError as exc:
            raise Failure(f"demo --real is not available in this installation "
                          f"(shallowprobes.case_study: {_one_line(exc)})") from exc  # fmt: skip
        result = case_main(argv)
    else:
        from .demo import main as demo_main

        result = demo_main(argv)
    return int(result) if isinstance(result, int) else 0


def _find_benches(explicit: Optional[str]) -> Optional[Path]:
    if explicit is not None:
        p = Path(explicit)
        return p if p.is_dir() and any(p.glob("bench_*.py")) else None
    candidates = [Path.cwd() / "benches", Path(__file__).resolve().parents[2] / "benches"]
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


# ----------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    p = _Parser(prog=PROG, description="Fit, sweep and transfer shallow probes on activation "
                "caches; draw the results.", parents=[common])  # fmt: skip
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=description, parents=[common])

    f = add("fit", "fit one probe per target at one layer",
            "Fit one probe per target column of TARGETS on one layer of CACHE (a classifier for "
            "integer/bool/string labels, a regressor for floats), print the score table, save "
            "the probe bank (DIR/bank), DIR/scores.csv|json and DIR/alpha.png (CV score "
            "against alpha).")  # fmt: skip
    f.add_argument("cache", metavar="CACHE", help="activation cache (open_cache layouts)")
    f.add_argument("targets", metavar="TARGETS", help=".npy, .csv or .parquet targets")
    f.add_argument("--layer", help="layer name (default: the cache's only layer)")
    f.add_argument("--degree", type=int, choices=(1, 2), default=1, help="1 or 2 (default 1)")
    f.add_argument("--cv", type=_cv, default=5, help="'gcv', 'loo' or K for K-fold (default 5)")
    f.add_argument("--metric", default="euclidean",
                   choices=("euclidean", "standardize", "whiten"), help="penalty geometry")
    f.add_argument("--split", type=_fraction, default=None,
                   help="hold out this last fraction of rows for a test score")
    f.add_argument("--out", required=True, metavar="DIR", help="output directory")
    f.set_defaults(func=cmd_fit)

    s = add("sweep", "probe every layer x target x degree in one pass",
            "Run shallowprobes.sweep on CACHE: every layer x target x degree in one pass. "
            "Writes DIR/results.csv|json, DIR/banks/<layer>, DIR/layers.png (score per layer "
            "per degree, chosen alpha marked) and DIR/degree_gap.png.")  # fmt: skip
    s.add_argument("cache", metavar="CACHE")
    s.add_argument("targets", metavar="TARGETS")
    s.add_argument("--layers", nargs="+", metavar="L", help="layer names (default: all)")
    s.add_argument("--degrees", nargs="+", type=int, choices=(1, 2), default=[1, 2])
    s.add_argument("--cv", type=_cv, default="gcv", help="'gcv' or K (default gcv)")
    s.add_argument("--metric", default="euclidean",
                   choices=("euclidean", "standardize", "whiten"))  # fmt: skip
    s.add_argument("--split", type=_fraction, default=None, help="held-out last fraction")
    s.add_argument("--degree2", choices=("auto", "primal", "dual"), default="auto")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--out", required=True, metavar="DIR")
    s.set_defaults(func=cmd_sweep)

    c = add("collect", "collect pooled activations of a Hugging Face model",
            "Run MODEL (a local Hugging Face model path) on TEXTS (.txt: one text per line; "
            ".jsonl: a \"text\" field) and write a per-layer activation cache "
            "(shallowprobes.collect.collect_activations; needs torch and transformers).")
    c.add_argument("model", metavar="MODEL")
    c.add_argument("texts", metavar="TEXTS")
    c.add_argument("--layers", nargs="+", default=["all"], help="'all' or layer indices")
    c.add_argument("--pool", default="mean", help="token pooling (default mean)")
    c.add_argument("--batch-size", type=_positive_int, default=16)
    c.add_argument("--max-length", type=_positive_int, default=128)
    c.add_argument("--device", default="cpu")
    c.add_argument("--dtype", default=None, help="model dtype (default: the model's)")
    c.add_argument("--no-resume", action="store_true", help="start again, ignore a partial cache")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument("--out", required=True, metavar="CACHE", help="cache directory to write")
    c.set_defaults(func=cmd_collect)

    t = add("transfer", "move a probe bank from model A to model B through the quotient",
            "Load a saved bank (fitted on model A) and paired hidden states of A and B (row i "
            "= the same input; .npy, .safetensors or a cache), run shallowprobes.transfer, "
            "print the coverage / verdict table, write DIR/transfer_report.csv|json, "
            "DIR/coverage.png and the transferred bank DIR/bank.")  # fmt: skip
    t.add_argument("bank", metavar="BANK")
    t.add_argument("paired_a", metavar="PAIRED_A")
    t.add_argument("paired_b", metavar="PAIRED_B")
    t.add_argument("--layer-a", default=None, help="layer of PAIRED_A when it is a cache")
    t.add_argument("--layer-b", default=None, help="layer of PAIRED_B when it is a cache")
    t.add_argument("--holdout", type=_fraction, default=0.2, help="held-out share of pairs")
    t.add_argument("--unportable", choices=("mark", "drop", "raise"), default="mark")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, metavar="DIR")
    t.set_defaults(func=cmd_transfer)

    d = add("demo", "the synthetic demo and its report (or --real: the case study)",
            "Run the demo on generated data and write DIR/report.md, report.json and figures "
            "(python -m shallowprobes.demo). --real runs shallowprobes.case_study instead.")
    d.add_argument("--quick", action="store_true", help="smaller sizes (< 1 minute)")
    d.add_argument("--out", default=None, metavar="DIR", help="report folder (default demo_out)")
    d.add_argument("--real", action="store_true",
                   help="the real-model case study (shallowprobes.case_study); its own options "
                   "follow --")  # fmt: skip
    d.add_argument("extra", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    d.set_defaults(func=cmd_demo)

    b = add("bench", "run the benchmark scripts (source checkout)",
            "Run benches/bench_*.py (as `make bench`) and print their ratio tables.")
    b.add_argument("--quick", action="store_true", help="pass --quick to each script")
    b.add_argument("--only", nargs="+", metavar="NAME", help="e.g. linear sweep")
    b.add_argument("--benches", default=None, metavar="DIR", help="the benches folder")
    b.set_defaults(func=cmd_bench)
    return p


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the exit status (2: bad arguments/inputs, 1: failure)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
    except (UsageError, Failure, Exception) as exc:
        if debug:
            traceback.print_exc()
        status = 2 if isinstance(exc, UsageError) else 1
        from .errors import ParameterError

        if isinstance(exc, ParameterError):
            status = 2
        what = "" if isinstance(exc, (UsageError, Failure)) else f"{type(exc).__name__}: "
        print(f"{PROG}: error: {what}{_one_line(exc)}", file=sys.stderr)
        return status


if __name__ == "__main__":
    raise SystemExit(main())

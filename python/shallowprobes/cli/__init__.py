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
import sys
import traceback
import warnings
from typing import Any, Optional

from .commands import cmd_bench, cmd_collect, cmd_demo, cmd_fit, cmd_sweep, cmd_transfer
from .files import (
    Failure,
    UsageError,
    _cv,
    _fraction,
    _gamma_value,
    _positive_float,
    _positive_int,
    load_states,
    load_targets,
    one_line,
    task_of,
)

__all__ = ["main", "build_parser", "load_targets", "load_states", "task_of"]

PROG = "shallowprobes"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's usage errors, as one line
        raise UsageError(message)


# ----------------------------------------------------------------------------------- parser
def _grid_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alphas", nargs="+", type=_positive_float, metavar="A",
                   help="the alpha grid to search (default: 19 values scaled to the data, "
                        "extended where the choice sits at an improving edge)")
    p.add_argument("--gamma", nargs="+", type=_gamma_value, metavar="G",
                   help="degree 2: the block weights to search, or 'scale' (default: "
                        "g0 x 0.1, 1, 10, extended the same way)")


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
    _grid_options(f)
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
    s.add_argument("--degree1", choices=("auto", "primal", "dual"), default="auto",
                   help="route of the linear probes (default auto: dual where a layer has "
                        "more hidden units than training rows)")
    s.add_argument("--degree2", choices=("auto", "primal", "dual"), default="auto")
    _grid_options(s)
    s.add_argument("--precision", choices=("auto", "float64", "float32"), default="auto",
                   help="Gram arithmetic of the degree-1 statistics (default auto: float32 "
                        "block Grams for float16/bfloat16 layers; float64: exact)")
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


def _one_line_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    print(f"{PROG}: warning: {one_line(message)}", file=sys.stderr)


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
        with warnings.catch_warnings():
            # a warning is one line on stderr, like an error (no source line, no file name)
            warnings.showwarning = _one_line_warning
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
        from ..errors import ParameterError

        if isinstance(exc, ParameterError):
            status = 2
        what = "" if isinstance(exc, (UsageError, Failure)) else f"{type(exc).__name__}: "
        print(f"{PROG}: error: {what}{one_line(exc)}", file=sys.stderr)
        return status


if __name__ == "__main__":
    raise SystemExit(main())

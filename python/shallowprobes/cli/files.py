"""What the command line reads and writes: targets files (.npy / .csv / .parquet), activation
caches and paired states, argument types, result tables (CSV + JSON, aligned text) and output
folders. Every problem becomes a `UsageError` (exit 2) or a `Failure` (exit 1) with one line
of message.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

_FIG = {"figsize": (8.0, 4.5), "dpi": 100}  # every PNG the CLI writes: 800 x 450 pixels


class UsageError(Exception):
    """Bad arguments or unusable inputs: exit status 2."""


class Failure(Exception):
    """A failure while working: exit status 1."""


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
                f"TARGETS {path}: not a readable .npy file ({one_line(exc)})"
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
                f"reading .parquet targets needs pyarrow: pip install pyarrow ({one_line(exc)})"
            ) from None
        except Exception as exc:
            raise UsageError(f"TARGETS {path}: cannot read it ({one_line(exc)})") from exc
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
    from ..caches import open_cache

    _existing(path, what)
    try:
        return open_cache(path)
    except (ValueError, OSError) as exc:
        raise UsageError(f"{what} {path}: {one_line(exc)}") from exc


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
        raise UsageError(f"{what}: {one_line(exc)}") from exc


def load_states(path: str, layer: Optional[str], what: str) -> np.ndarray:
    """An (n, d) matrix of hidden states: a .npy file, or one layer of a cache."""
    p = _existing(path, what)
    if p.suffix.lower() == ".npy" and p.is_file():
        try:
            H = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise UsageError(f"{what} {path}: not a readable .npy file ({one_line(exc)})") from exc
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


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (v > 0.0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return v


def _gamma_value(text: str) -> Any:
    """'scale' or a positive number (one entry of --gamma)."""
    return "scale" if text == "scale" else _positive_float(text)


def gamma_option(values: Optional[list]) -> Any:
    """--gamma as the probes' gamma= (None: the default search; 'scale'; a number; a list)."""
    if values is None:
        return None
    if "scale" in values:
        if len(values) != 1:
            raise UsageError("--gamma scale cannot be combined with numbers")
        return "scale"
    return values[0] if len(values) == 1 else list(values)


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

        from .. import plot
    except ImportError:
        return None
    return plot


def _out_dir(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {path}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__

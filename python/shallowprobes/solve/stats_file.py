"""The `.npz` file of `SufficientStats` (`save` / `load`): plain arrays, no pickle, written under
a temporary name and renamed; read back as untrusted input held to a schema (exact members,
shapes implied by n_folds, d, k and degree, finite float64 values, whole row counts)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..backends import to_numpy
from ..errors import BundleError
from ..io import open_npz, staged_file
from . import features as _quadratic

FORMAT_VERSION = 2  # 2 added degree-2 statistics (degree, input_shift); 1 still loads
# the per-fold statistics, in the order they are stored
FIELDS = ("count", "sum_x", "sum_y", "xtx", "xty", "yty")
# members of a saved file: rows_seen and degree are absent from format 1, input_shift too (and
# is an empty placeholder for degree 1)
REQUIRED = ("format_version", "n_folds", "shift_x", "shift_y", *FIELDS)
OPTIONAL = ("rows_seen", "degree", "input_shift")


def write_stats_file(stats: Any, path: Union[str, os.PathLike]) -> None:
    """Write `stats` to `path` (".npz" appended when missing; an open binary file is written
    directly)."""
    stats._require_data()
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        "n_folds": np.array(stats.n_folds),
        "rows_seen": np.array(stats.rows_seen),
        "shift_x": to_numpy(stats.shift_x),
        "shift_y": to_numpy(stats.shift_y),
        "degree": np.array(stats.degree),
        "input_shift": to_numpy(stats.input_shift) if stats.degree == 2 else np.zeros(0),
        **{field: to_numpy(getattr(stats, field)) for field in FIELDS},
    }
    if hasattr(path, "write"):  # an open binary file
        np.savez(path, **arrays)
        return
    final = Path(os.fspath(path))
    if not final.name.endswith(".npz"):
        final = final.with_name(final.name + ".npz")
    with staged_file(final) as tmp:
        with open(tmp, "xb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, final)


def read_stats_file(path: Union[str, os.PathLike]) -> tuple:
    """(n_folds, degree, d, k, rows_seen or None, {member: array}) of a file written by
    `write_stats_file`, every member checked before it is decompressed."""
    with open_npz(path, "SufficientStats") as npz:
        npz.check_names(REQUIRED, OPTIONAL)
        version = npz.read_int("format_version", lo=1)
        if version > FORMAT_VERSION:
            raise BundleError(
                f"{npz.where} was written by a newer shallowprobes (format {version}; this "
                f"version reads up to {FORMAT_VERSION}). Upgrade shallowprobes to load it."
            )
        K = npz.read_int("n_folds", lo=1)
        degree = npz.read_int("degree", 1, 2) if "degree" in npz else 1
        rows_seen = npz.read_int("rows_seen", lo=0) if "rows_seen" in npz else None
        (d,) = npz.shape("shift_x", 1)
        (k,) = npz.shape("shift_y", 1)
        if d < 1:
            raise npz.error("shift_x", "the statistics have no features")
        m = 0
        if degree == 2:
            if "input_shift" not in npz:
                raise npz.missing("input_shift")
            (m,) = npz.shape("input_shift", 1)
            if m < 1 or _quadratic.n_features(m) != d:
                raise npz.error(
                    "input_shift", f"degree-2 statistics of {m} inputs have "
                    f"{_quadratic.n_features(m)} features, but shift_x has {d}",
                )  # fmt: skip
        elif "input_shift" in npz:
            npz.check("input_shift", (0,))  # degree 1 stores an empty placeholder
        expected = {
            "shift_x": (d,), "shift_y": (k,), "count": (K,), "sum_x": (K, d), "sum_y": (K, k),
            "xtx": (K, d, d), "xty": (K, d, k), "yty": (K, k, k),
        }  # fmt: skip
        if degree == 2:
            expected["input_shift"] = (m,)
        for key, shape in expected.items():  # every size checked before any decompression
            npz.check(key, shape)
        arrays = {key: npz.read(key, shape) for key, shape in expected.items()}
        count = arrays["count"]
        if np.any(count < 0) or np.any(count != np.round(count)) or not 0 < count.sum() < 2**62:
            raise npz.error("count", "row counts must be whole, non-negative and not all 0")
    return K, degree, d, k, rows_seen, arrays

"""Directory bundles for banks, quotients and transferred monitors (no pickle).

A bundle is a directory holding two files:

* ``<kind>.json``: ``{"format": "shallowprobes", "kind": ..., "format_version": N,
  "library_version": ..., "arrays": "<kind>.npz", "sha256": ..., "meta": {...}}``;
* ``<kind>.npz``: the numerical arrays (plain ``np.savez``; read back with
  ``allow_pickle=False``).

The JSON records the SHA-256 of the array file, so a truncated or corrupted file is reported as
such instead of being read as different numbers. A bundle written by a newer format version is
refused with an error that says which version this library reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Union

import numpy as np

from .errors import BundleError

__all__ = ["FORMAT_VERSION", "BundleError", "write_bundle", "read_bundle"]

FORMAT_VERSION = 1
_FORMAT_NAME = "shallowprobes"

PathLike = Union[str, "os.PathLike[str]"]




def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_bundle(path: PathLike, kind: str, meta: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write `arrays` and the JSON-serialisable `meta` as a `kind` bundle in directory `path`.

    The directory is created if needed. Files are written under temporary names and renamed,
    so an interrupted save never leaves a bundle that looks complete.
    """
    from . import __version__

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{str(folder)!r} exists and is not a directory; pass a folder.")
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in arrays.items():
        if np.asarray(value).dtype.kind == "O":
            raise TypeError(f"array {key!r} has dtype object, which cannot be saved without pickle")
    npz_name = f"{kind}.npz"
    tmp_npz = folder / f".{kind}.npz.tmp"
    with open(tmp_npz, "wb") as fh:
        np.savez(fh, **{key: np.asarray(value) for key, value in arrays.items()})
    header = {
        "format": _FORMAT_NAME,
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "arrays": npz_name,
        "sha256": _sha256(tmp_npz),
        "meta": meta,
    }
    tmp_json = folder / f".{kind}.json.tmp"
    tmp_json.write_text(json.dumps(header, indent=2, sort_keys=True, allow_nan=False))
    os.replace(tmp_npz, folder / npz_name)
    os.replace(tmp_json, folder / f"{kind}.json")
    return folder


def _find_header(folder: Path, kind: str) -> Path:
    header = folder / f"{kind}.json"
    if header.is_file():
        return header
    others = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
    if not folder.exists():
        raise FileNotFoundError(f"no saved {kind} at {str(folder)!r}: the directory does not exist")
    if others:
        raise BundleError(
            f"{str(folder)!r} holds a saved {others[0]!r}, not a {kind!r}; load it with the "
            f"matching class's load()."
        )
    raise FileNotFoundError(f"no saved {kind} at {str(folder)!r}: {kind}.json is missing")


def read_bundle(path: PathLike, kind: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a `kind` bundle written by `write_bundle`: returns (meta, arrays).

    Raises FileNotFoundError when there is no bundle, and `BundleError` (a ValueError) when
    the metadata is not valid JSON, names another kind or a newer format version, or when the
    array file is missing, truncated or does not match its recorded checksum.
    """
    folder = Path(path)
    header_path = _find_header(folder, kind)
    try:
        header = json.loads(header_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(
            f"{str(header_path)!r} is not valid JSON ({exc}); the file is corrupted or truncated."
        ) from None
    if not isinstance(header, dict) or header.get("format") != _FORMAT_NAME:
        raise BundleError(f"{str(header_path)!r} is not a shallowprobes bundle header.")
    if header.get("kind") != kind:
        raise BundleError(
            f"{str(folder)!r} holds a saved {header.get('kind')!r}, not a {kind!r}; load it with "
            "the matching class's load()."
        )
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"{str(header_path)!r} has no valid format_version.")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{str(folder)!r} was written with bundle format version {version} (shallowprobes "
            f"{header.get('library_version', '?')}); this shallowprobes reads versions up to "
            f"{FORMAT_VERSION}. Upgrade shallowprobes to load it."
        )
    for key in ("arrays", "sha256", "meta"):
        if key not in header:
            raise BundleError(f"{str(header_path)!r} lacks the field {key!r}; it is corrupted.")
    npz_path = folder / str(header["arrays"])
    if npz_path.parent != folder or not npz_path.is_file():
        raise BundleError(f"the array file {str(npz_path)!r} of this bundle is missing.")
    if _sha256(npz_path) != header["sha256"]:
        raise BundleError(
            f"{str(npz_path)!r} does not match the checksum recorded when it was saved: the file "
            "is truncated or corrupted. Save the object again."
        )
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            arrays = {key: np.asarray(data[key]) for key in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise BundleError(f"could not read {str(npz_path)!r} ({exc}); it is corrupted.") from None
    return header["meta"], arrays


def require(arrays: dict[str, np.ndarray], key: str, where: str, ndim: int = -1) -> np.ndarray:
    """Fetch array `key` with an error that names the bundle when it is absent or malformed."""
    if key not in arrays:
        raise BundleError(f"{where}: the array {key!r} is missing; the bundle is incomplete.")
    value = arrays[key]
    if ndim >= 0 and value.ndim != ndim:
        raise BundleError(f"{where}: array {key!r} has {value.ndim} dimensions, expected {ndim}.")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise BundleError(f"{where}: array {key!r} contains NaN or inf; the bundle is corrupted.")
    return value


def json_number(value: Any) -> Any:
    """A float for JSON (None for NaN/inf, which JSON cannot hold)."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None

"""Directory bundles for banks, quotients and transferred monitors (no pickle): `write_bundle`
writes the ``<kind>.json`` header and the ``<kind>.npz`` arrays, `read_bundle` checks the header
and the arrays' checksum and opens them for schema-checked reading; plus `staged_file`, the
write-then-rename that keeps an interrupted save from leaving a file that looks complete.

The format is described in `shallowprobes.io`; the untrusted-input checks it relies on are in
`io.json_schema` and `io.npz`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import BundleError
from .json_schema import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    Checker,
    bad_field,
    json_dict,
    json_fields,
    json_int,
    json_str,
    json_too_deep,
    load_json,
    type_name,
)
from .npz import NpzMembers, PathLike, open_npz

FORMAT_VERSION = 1
_FORMAT_NAME = "shallowprobes"


# ---------------------------------------------------------------------------------- writing
@contextlib.contextmanager
def staged_file(final: Path) -> Iterator[Path]:
    """A temporary path in `final`'s folder, to write and then ``os.replace`` onto `final`.

    Whatever is left under the temporary name when the block ends (the write failed, or the
    rename never happened) is removed, so a failed save leaves no temporary file behind and
    never a half-written `final`.
    """
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(6)}.tmp")
    try:
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_bundle(path: PathLike, kind: str, meta: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write `arrays` and the JSON-serialisable `meta` as a `kind` bundle in directory `path`.

    The directory is created if needed. Files are written under temporary names and renamed,
    so an interrupted save never leaves a bundle that looks complete, and a failed one leaves
    no temporary file. Refuses (ValueError) metadata that `read_bundle` would refuse (NaN,
    nesting deeper than `MAX_JSON_DEPTH`, more than `MAX_JSON_BYTES`).
    """
    from .. import __version__

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{str(folder)!r} exists and is not a directory; pass a folder.")
    for key, value in arrays.items():
        if np.asarray(value).dtype.kind == "O":
            raise TypeError(f"array {key!r} has dtype object, which cannot be saved without pickle")
    meta_text = json.dumps(meta, sort_keys=True, allow_nan=False)  # fails before any file
    if json_too_deep(meta_text.encode(), MAX_JSON_DEPTH - 1):  # the header adds one level
        raise ValueError(
            f"the {kind} metadata nests deeper than {MAX_JSON_DEPTH - 1} levels; loading it "
            "would be refused."
        )
    folder.mkdir(parents=True, exist_ok=True)
    npz_name = f"{kind}.npz"
    npz_path, json_path = folder / npz_name, folder / f"{kind}.json"
    with staged_file(npz_path) as tmp_npz, staged_file(json_path) as tmp_json:
        with open(tmp_npz, "xb") as fh:
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
        text = json.dumps(header, indent=2, sort_keys=True, allow_nan=False)
        if len(text) > MAX_JSON_BYTES:
            raise ValueError(
                f"the {kind} metadata takes {len(text)} bytes, more than the {MAX_JSON_BYTES} "
                "a bundle header may hold; loading it would be refused."
            )
        with open(tmp_json, "x", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp_npz, npz_path)
        os.replace(tmp_json, json_path)
    return folder


# ---------------------------------------------------------------------------------- reading
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


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _array_file_name(value: Any, where: str, field: str) -> str:
    name = json_str(value, where, field)
    if not name.endswith(".npz") or name.startswith(".") or any(c in name for c in "/\\\x00"):
        raise BundleError(
            f"{where}: field {field!r} = {name[:80]!r} does not name a .npz file inside the "
            "bundle folder; the array file of this bundle is missing."
        )
    return name


def _sha256_field(value: Any, where: str, field: str) -> str:
    digest = json_str(value, where, field)
    if not _SHA256.fullmatch(digest):
        raise bad_field(where, field, "must be 64 lowercase hexadecimal digits")
    return digest


_HEADER_SCHEMA: dict[str, Checker] = {
    "format": json_str,
    "kind": json_str,
    "format_version": json_int,
    "library_version": json_str,
    "arrays": _array_file_name,
    "sha256": _sha256_field,
    "meta": json_dict,
}


class Bundle(NamedTuple):
    meta: dict  # the header's "meta" object (checked to be an object; its schema is the caller's)
    arrays: NpzMembers  # the array file, opened for schema-checked reading
    where: str  # the header file, quoted, for messages


@contextlib.contextmanager
def read_bundle(path: PathLike, kind: str) -> Iterator[Bundle]:
    """Open a `kind` bundle written by `write_bundle` (a context manager yielding a `Bundle`).

    Raises FileNotFoundError when there is no bundle, and `BundleError` (a ValueError) naming
    the file and the field when the header breaks its schema (see the module docstring), names
    another kind or a newer format version, or when the array file is missing, does not match
    its recorded checksum or is not a readable zip. The caller reads the arrays through
    ``bundle.arrays`` against its own schema.
    """
    folder = Path(path)
    header_path = _find_header(folder, kind)
    where = repr(str(header_path))
    header = load_json(header_path, "bundle header")
    if not isinstance(header, dict) or header.get("format") != _FORMAT_NAME:
        raise BundleError(f"{where} is not a shallowprobes bundle header.")
    if header.get("kind") != kind:
        raise BundleError(
            f"{str(folder)!r} holds a saved {str(header.get('kind'))[:80]!r}, not a {kind!r}; "
            "load it with the matching class's load()."
        )
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BundleError(f"{where} has no valid format_version (got {type_name(version)}).")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{str(folder)!r} was written with bundle format version {version} (shallowprobes "
            f"{str(header.get('library_version', '?'))[:40]}); this shallowprobes reads versions "
            f"up to {FORMAT_VERSION}. Upgrade shallowprobes to load it."
        )
    header = json_fields(header, where, "", _HEADER_SCHEMA)
    npz_path = folder / header["arrays"]
    if not npz_path.is_file():
        raise BundleError(f"{where}: the array file {str(npz_path)!r} of this bundle is missing.")
    if _sha256(npz_path) != header["sha256"]:
        raise BundleError(
            f"{str(npz_path)!r} does not match the checksum recorded when it was saved: the file "
            "is truncated or corrupted. Save the object again."
        )
    with open_npz(npz_path, f"shallowprobes {kind} array") as arrays:
        yield Bundle(header["meta"], arrays, where)

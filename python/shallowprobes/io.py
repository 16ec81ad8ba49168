"""Directory bundles for banks, quotients and transferred monitors (no pickle), and the
schema-checked readers that every loader of an untrusted file goes through.

A bundle is a directory holding two files:

* ``<kind>.json``: ``{"format": "shallowprobes", "kind": ..., "format_version": N,
  "library_version": ..., "arrays": "<kind>.npz", "sha256": ..., "meta": {...}}``;
* ``<kind>.npz``: the numerical arrays (plain ``np.savez``).

The JSON records the SHA-256 of the array file, so a truncated or corrupted file is reported as
such instead of being read as different numbers. A bundle written by a newer format version is
refused with an error that says which version this library reads.

Untrusted files
---------------
Saved files (bundles, and the ``.npz`` of `SufficientStats.save`) are read as untrusted input
and held to an explicit schema. Anything that breaks it raises `BundleError` (a ValueError)
whose message names the file and the field; no other exception escapes a load, except
FileNotFoundError for a missing file (and the OSError of a file that cannot be opened at all,
e.g. PermissionError). The shared helpers below enforce:

* JSON (`load_json`): at most `MAX_JSON_BYTES`, nesting at most `MAX_JSON_DEPTH` levels (checked
  on the raw bytes before parsing, so deep nesting cannot exhaust the recursion limit), strict
  UTF-8, no NaN / Infinity (nor numbers that overflow to them), no duplicate keys; the typed
  checkers (`json_fields`, `json_int`, ...) then refuse unknown keys and wrong types.
* ``.npz`` (`open_npz`): only the members a schema names (an unknown or missing member is an
  error); a member is never decompressed before its declared uncompressed size (zip central
  directory) and its ``.npy`` header (shape, dtype, read from its first bytes) have been
  compared with what the schema expects; float fields must be real float64 (complex, object,
  integer or structured arrays are refused, never cast), integer fields integer; every float
  array finite; members a load does not need are never decompressed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import secrets
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Union

import numpy as np

from .errors import BundleError

__all__ = [
    "FORMAT_VERSION",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "BundleError",
    "write_bundle",
    "read_bundle",
    "load_json",
    "open_npz",
]

FORMAT_VERSION = 1
_FORMAT_NAME = "shallowprobes"

MAX_JSON_BYTES = 32 << 20  # a bank of ~10^5 monitors fits in a few MB
MAX_JSON_DEPTH = 64  # the library's own files nest 5 levels; user metadata gets the rest

_NPY_MAX_HEADER = 10000  # numpy's own limit on the length of a .npy header
_NPY_PREFIX = 12  # magic (6) + version (2) + header length (2 or 4)
_DEFLATE_MAX_RATIO = 1032  # deflate never expands its input more than ~1032-fold
_READ_CHUNK = 1 << 24

# What parsing a damaged file can raise (zipfile, zlib, numpy's header parser, json).
_CORRUPT = (ValueError, TypeError, LookupError, ArithmeticError, EOFError, OSError, RuntimeError,
            MemoryError, SyntaxError, zipfile.BadZipFile, zlib.error, struct.error)  # fmt: skip

PathLike = Union[str, "os.PathLike[str]"]
Checker = Callable[[Any, str, str], Any]


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
    from . import __version__

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{str(folder)!r} exists and is not a directory; pass a folder.")
    for key, value in arrays.items():
        if np.asarray(value).dtype.kind == "O":
            raise TypeError(f"array {key!r} has dtype object, which cannot be saved without pickle")
    meta_text = json.dumps(meta, sort_keys=True, allow_nan=False)  # fails before any file
    if _json_too_deep(meta_text.encode(), MAX_JSON_DEPTH - 1):  # the header adds one level
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


# ---------------------------------------------------------------------------------- JSON
_JSON_SPECIAL = re.compile(rb'[\[\]{}"\\]')


def _json_too_deep(data: bytes, limit: int) -> bool:
    """Whether JSON text nests arrays/objects deeper than `limit` (brackets inside strings do
    not count). One linear pass over the bracket, quote and backslash characters."""
    depth, in_string, skip = 0, False, -1
    for match in _JSON_SPECIAL.finditer(data):
        pos = match.start()
        if pos == skip:  # the character escaped by a backslash
            continue
        char = data[pos]
        if in_string:
            if char == 0x5C:  # backslash
                skip = pos + 1
            elif char == 0x22:  # closing quote
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif char in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a shallowprobes file")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} overflows to infinity")
    return value


def _unique_keys(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"the key {dup!r} appears twice in one object")
    return out


def load_json(path: Path, what: str = "JSON") -> Any:
    """Parse an untrusted JSON file under the bounds in the module docstring.

    FileNotFoundError when it is missing; BundleError (naming the file) when it is too large,
    too deeply nested, not UTF-8, not valid JSON, or holds NaN/Infinity or duplicate keys.
    """
    with open(path, "rb") as fh:
        data = fh.read(MAX_JSON_BYTES + 1)
    where = repr(str(path))
    if len(data) > MAX_JSON_BYTES:
        raise BundleError(
            f"{where} is larger than {MAX_JSON_BYTES} bytes, more than any {what} file holds; "
            "it is corrupted or not a shallowprobes file."
        )
    if _json_too_deep(data, MAX_JSON_DEPTH):
        raise BundleError(
            f"{where} nests JSON deeper than {MAX_JSON_DEPTH} levels; it is corrupted or not a "
            "shallowprobes file."
        )
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant,
                          parse_float=_finite_float, object_pairs_hook=_unique_keys)  # fmt: skip
    except (ValueError, RecursionError, MemoryError) as exc:
        raise BundleError(
            f"{where} is not valid JSON ({exc}); the file is corrupted or truncated."
        ) from None


# ---------------------------------------------------------------------------------- JSON schema
# A checker takes (value, where, field) and returns the value (converted) or raises BundleError;
# `where` names the file, `field` the JSON path ("meta.names[2]").


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)  # fmt: skip


def bad_field(where: str, field: str, problem: str) -> BundleError:
    """The error for a JSON field that breaks the schema."""
    return BundleError(f"{where}: field {field!r} is invalid ({problem}).")


def _sub(field: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{field}[{key}]"
    return f"{field}.{key}" if field else str(key)


def json_fields(value: Any, where: str, field: str, schema: dict[str, Checker],
                optional: Iterable[str] = ()) -> dict:  # fmt: skip
    """A JSON object with exactly the keys of `schema` (those in `optional` may be absent),
    each checked by its checker. Returns the checked values (absent optional keys left out)."""
    if not isinstance(value, dict):
        raise bad_field(
            where, field or "<top level>", f"must be an object, got {_type_name(value)}"
        )
    optional = set(optional)
    for key in schema:
        if key not in value and key not in optional:
            raise BundleError(
                f"{where}: field {_sub(field, key)!r} is missing; the metadata is incomplete."
            )
    unknown = sorted(str(k) for k in value if k not in schema)
    if unknown:
        raise BundleError(
            f"{where}: field {_sub(field, unknown[0])!r} is not part of the format (unknown key); "
            "the file is corrupted or was not written by shallowprobes."
        )
    return {key: check(value[key], where, _sub(field, key))
            for key, check in schema.items() if key in value}  # fmt: skip


def json_dict(value: Any, where: str, field: str) -> dict:
    """A free-form JSON object (its contents are only bounded by `load_json`)."""
    if not isinstance(value, dict):
        raise bad_field(where, field, f"must be an object, got {_type_name(value)}")
    return value


def json_str(value: Any, where: str, field: str, choices: Optional[Iterable[str]] = None,
             non_empty: bool = False) -> str:  # fmt: skip
    if not isinstance(value, str):
        raise bad_field(where, field, f"must be a string, got {_type_name(value)}")
    if non_empty and not value:
        raise bad_field(where, field, "must be a non-empty string")
    if choices is not None and value not in tuple(choices):
        raise bad_field(where, field, f"{value[:80]!r} is not one of {tuple(choices)}")
    return value


def json_bool(value: Any, where: str, field: str) -> bool:
    if not isinstance(value, bool):
        raise bad_field(where, field, f"must be true or false, got {_type_name(value)}")
    return value


def json_int(value: Any, where: str, field: str, lo: Optional[int] = None,
             hi: Optional[int] = None, nullable: bool = False) -> Optional[int]:  # fmt: skip
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_field(where, field, f"must be an integer, got {_type_name(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise bad_field(where, field, f"{value} is outside [{lo}, {hi}]")
    return value


def json_float(
    value: Any,
    where: str,
    field: str,
    lo: Optional[float] = None,
    below: Optional[float] = None,
    nullable: bool = False,
) -> Optional[float]:
    """A finite number (int or float) in [lo, below); None too when `nullable`."""
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_field(where, field, f"must be a number, got {_type_name(value)}")
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        raise bad_field(where, field, "must be a finite number")
    if (lo is not None and out < lo) or (below is not None and out >= below):
        raise bad_field(where, field, f"{out!r} is outside [{lo}, {below})")
    return out


def json_list(value: Any, where: str, field: str, item: Optional[Checker] = None) -> list:
    """A JSON array, each element checked by `item` (fields named ``field[i]``)."""
    if not isinstance(value, list):
        raise bad_field(where, field, f"must be an array, got {_type_name(value)}")
    if item is None:
        return list(value)
    return [item(v, where, _sub(field, i)) for i, v in enumerate(value)]


# ---------------------------------------------------------------------------------- .npz
class NpyHeader(NamedTuple):
    shape: tuple
    dtype: np.dtype
    fortran_order: bool
    offset: int  # bytes before the data (magic, version, header)
    nbytes: int  # data bytes the header declares


_KINDS = {"float": "real float64", "int": "integer"}


class NpzMembers:
    """A ``.npz`` file opened for schema-checked reading (see `open_npz`).

    Members are addressed by key (the member name without ``.npy``). `header` reads only the
    first bytes of a member; `read` decompresses it, after its header has been compared with
    the shape and dtype the caller expects.
    """

    def __init__(self, path: Path, zf: zipfile.ZipFile, file_size: int, what: str) -> None:
        self.path = path
        self.where = repr(str(path))
        self.what = what
        self._zf = zf
        self._file_size = file_size
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._headers: dict[str, NpyHeader] = {}
        for info in zf.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if key in self._infos:
                raise self.error(key, "the zip holds two members of this name")
            self._infos[key] = info

    # ------------------------------------------------------------------ errors
    def error(self, key: str, problem: str) -> BundleError:
        """The error for member `key`, naming the file and the member."""
        return BundleError(f"{self.where}: member {key!r} is invalid ({problem}); the file is "
                           "corrupted.")  # fmt: skip

    def missing(self, key: str) -> BundleError:
        return BundleError(
            f"{self.where} is not a {self.what} file: the member {key!r} is missing; the file is "
            "incomplete or corrupted."
        )

    # ------------------------------------------------------------------ membership
    def __contains__(self, key: str) -> bool:
        return key in self._infos

    def check_names(self, required: Iterable[str], optional: Iterable[str] = ()) -> None:
        """Every `required` member is present and no member outside required + optional is."""
        required = list(required)
        for key in required:
            if key not in self._infos:
                raise self.missing(key)
        known = set(required) | set(optional)
        unknown = sorted(k for k in self._infos if k not in known)
        if unknown:
            raise BundleError(
                f"{self.where} is not a {self.what} file: it holds the unknown member "
                f"{unknown[0]!r}; the file is corrupted or was written by something else."
            )

    # ------------------------------------------------------------------ headers
    def _info(self, key: str) -> zipfile.ZipInfo:
        """The member's central-directory entry, checked to be physically plausible: its
        declared uncompressed size must fit in the bytes it occupies."""
        info = self._infos.get(key)
        if info is None:
            raise self.missing(key)
        if info.flag_bits & 0x1:
            raise self.error(key, "it is encrypted")
        if info.compress_type == zipfile.ZIP_STORED:
            limit = info.compress_size
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            limit = info.compress_size * _DEFLATE_MAX_RATIO + 64
        else:
            raise self.error(key, f"unsupported zip compression method {info.compress_type}")
        if info.header_offset + info.compress_size > self._file_size:
            raise self.error(key, "it extends past the end of the file; the file is truncated")
        if info.file_size > limit or (
            info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size
        ):
            raise self.error(
                key, f"it declares {info.file_size} uncompressed bytes, which its "
                f"{info.compress_size} stored bytes cannot hold",
            )  # fmt: skip
        return info

    def header(self, key: str) -> NpyHeader:
        """The member's .npy header, read from its first bytes only, and checked to declare
        exactly as many data bytes as the zip member holds."""
        if key in self._headers:
            return self._headers[key]
        info = self._info(key)
        try:
            with self._zf.open(info) as member:
                fp = io.BytesIO(member.read(min(info.file_size, _NPY_PREFIX + _NPY_MAX_HEADER)))
        except _CORRUPT as exc:
            raise self.error(key, f"unreadable zip member: {type(exc).__name__}: {exc}") from None
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, _NPY_MAX_HEADER)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, _NPY_MAX_HEADER)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            offset = fp.tell()
        except _CORRUPT as exc:
            raise self.error(key, f"unreadable .npy header: {type(exc).__name__}: {exc}") from None
        shape = tuple(shape)
        if any(n < 0 for n in shape):
            raise self.error(key, f"its .npy header declares the negative shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        if not dtype.hasobject and offset + nbytes != info.file_size:
            raise self.error(
                key, f"its .npy header declares shape {shape} of {dtype} ({nbytes} bytes) but "
                f"the member holds {info.file_size - offset} data bytes",
            )  # fmt: skip
        header = NpyHeader(shape, dtype, bool(fortran), offset, nbytes)
        self._headers[key] = header
        return header

    def _check_dtype(self, key: str, header: NpyHeader, kind: str) -> None:
        dt = header.dtype
        if kind == "float":
            ok = dt.kind == "f" and dt.itemsize == 8
        elif kind == "int":
            ok = dt.kind in "iu" and dt.itemsize <= 8
        else:  # pragma: no cover - a programming error
            raise ValueError(f"unknown field kind {kind!r}")
        if not ok:
            extra = " (a complex array is never cast to real)" if dt.kind == "c" else ""
            raise self.error(key, f"dtype {dt} where the format stores {_KINDS[kind]}{extra}")

    def shape(self, key: str, ndim: int, kind: str = "float") -> tuple:
        """The declared shape of a member whose sizes the caller reads off it (checked: the
        dtype, the number of dimensions, and that it holds exactly that many bytes)."""
        header = self.header(key)
        self._check_dtype(key, header, kind)
        if len(header.shape) != ndim:
            raise self.error(key, f"it has {len(header.shape)} dimensions, expected {ndim}")
        return header.shape

    def check(self, key: str, shape: tuple, kind: str = "float") -> NpyHeader:
        """Compare a member's header with the schema (shape, dtype), without decompressing."""
        header = self.header(key)
        self._check_dtype(key, header, kind)
        shape = tuple(shape)
        if len(header.shape) != len(shape):
            raise self.error(key, f"it has {len(header.shape)} dimensions, expected {len(shape)}")
        if header.shape != shape:
            raise self.error(key, f"shape {header.shape}, expected {shape}")
        return header

    # ------------------------------------------------------------------ data
    def read(self, key: str, shape: tuple, kind: str = "float") -> np.ndarray:
        """The member as a native-endian array of `shape` (float64, or its own integer dtype
        for "int"), decompressed only after `check`; float arrays must be finite."""
        header = self.check(key, shape, kind)
        info = self._info(key)
        try:
            raw = np.empty(header.nbytes, dtype=np.uint8)
        except MemoryError:
            raise self.error(key, f"its {header.nbytes} bytes cannot be allocated") from None
        try:
            with self._zf.open(info) as member:
                if len(member.read(header.offset)) != header.offset:
                    raise EOFError("the member ends inside its header")
                view, filled = memoryview(raw), 0
                while filled < header.nbytes:
                    n = member.readinto(view[filled : filled + _READ_CHUNK])
                    if not n:
                        raise EOFError("the member ends before its data")
                    filled += n
                if member.read(1):  # reaching the end also checks the CRC-32
                    raise ValueError("trailing bytes after the data")
        except _CORRUPT as exc:
            raise self.error(key, f"could not be read: {type(exc).__name__}: {exc}") from None
        arr = raw.view(header.dtype)
        arr = (
            arr.reshape(header.shape[::-1]).T if header.fortran_order else arr.reshape(header.shape)
        )
        native = np.float64 if kind == "float" else header.dtype.newbyteorder("=")
        arr = arr.astype(native, order="C", copy=False)
        if kind == "float" and not np.all(np.isfinite(arr)):
            raise self.error(key, "it contains NaN or inf")
        return arr

    def read_int(self, key: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
        """A 0-d integer member, within [lo, hi]."""
        value = int(self.read(key, (), "int"))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.error(key, f"{value} is outside [{lo}, {hi}]")
        return value


@contextlib.contextmanager
def open_npz(path: PathLike, what: str) -> Iterator[NpzMembers]:
    """Open an untrusted ``.npz`` (`what` names the kind of file in messages) for reading
    through `NpzMembers`. Only the zip central directory is read here.

    FileNotFoundError when it is missing; BundleError when it is not a regular file or not a
    readable zip archive.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise BundleError(f"{str(path)!r} is not a regular file, so not a {what} file.")
    with open(path, "rb") as fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            zf = zipfile.ZipFile(fh)
        except _CORRUPT as exc:
            raise BundleError(
                f"{str(path)!r} is not a readable .npz file ({type(exc).__name__}: {exc}); it is "
                "truncated or corrupted."
            ) from None
        with zf:
            yield NpzMembers(path, zf, size, what)


# ---------------------------------------------------------------------------------- bundles
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
        raise BundleError(f"{where} has no valid format_version (got {_type_name(version)}).")
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


def json_number(value: Any) -> Any:
    """A float for JSON (None for NaN/inf, which JSON cannot hold)."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None

"""Reading untrusted ``.npz`` files: `open_npz` and `NpzMembers`, which compare each
member's zip entry and ``.npy`` header with the schema the caller expects before anything is
decompressed.

Kept apart from the bundles (`io.bundles`) because the ``.npz`` of `SufficientStats.save` is
read through it too, without a bundle around it. The checks are described in
`shallowprobes.io`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, Optional, Union

import numpy as np

from ..errors import BundleError

_NPY_MAX_HEADER = 10000  # numpy's own limit on the length of a .npy header
_NPY_PREFIX = 12  # magic (6) + version (2) + header length (2 or 4)
_DEFLATE_MAX_RATIO = 1032  # deflate never expands its input more than ~1032-fold
_READ_CHUNK = 1 << 24

# What parsing a damaged file can raise (zipfile, zlib, numpy's header parser, json).
_CORRUPT = (ValueError, TypeError, LookupError, ArithmeticError, EOFError, OSError, RuntimeError,
            MemoryError, SyntaxError, zipfile.BadZipFile, zlib.error, struct.error)  # fmt: skip

PathLike = Union[str, "os.PathLike[str]"]


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

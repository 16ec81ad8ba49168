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
e.g. PermissionError). The shared helpers of `io.json_schema` and `io.npz` enforce:

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

# The public names of the package's modules, importable from shallowprobes.io wherever they
# live (the loaders in monitors/ and solve/ import them from here); __all__ stays the few that
# a user of saved files needs.
from ..errors import BundleError
from .bundles import FORMAT_VERSION, Bundle, read_bundle, staged_file, write_bundle  # noqa: F401
from .json_schema import (  # noqa: F401
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    Checker,
    bad_field,
    json_bool,
    json_dict,
    json_fields,
    json_float,
    json_int,
    json_list,
    json_number,
    json_str,
    load_json,
)
from .npz import NpyHeader, NpzMembers, PathLike, open_npz  # noqa: F401

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

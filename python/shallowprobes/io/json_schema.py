"""JSON in saved files: the bounded parser of untrusted JSON (`load_json`), the typed
checkers a loader holds each field to (`json_fields`, `json_int`, ...), and `json_number`, the
float a writer stores where those checkers expect a number or null.

Kept apart from the bundles (`io.bundles`) because every loader of a JSON file uses these,
not only the bundle header: the metadata of banks, quotients and reports is checked with them
too. The bounds are described in `shallowprobes.io`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import BundleError

MAX_JSON_BYTES = 32 << 20  # a bank of ~10^5 monitors fits in a few MB
MAX_JSON_DEPTH = 64  # the library's own files nest 5 levels; user metadata gets the rest

Checker = Callable[[Any, str, str], Any]


# ---------------------------------------------------------------------------------- parsing
_JSON_SPECIAL = re.compile(rb'[\[\]{}"\\]')


def json_too_deep(data: bytes, limit: int) -> bool:
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
    if json_too_deep(data, MAX_JSON_DEPTH):
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


def type_name(value: Any) -> str:
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
        raise bad_field(where, field or "<top level>", f"must be an object, got {type_name(value)}")
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
        raise bad_field(where, field, f"must be an object, got {type_name(value)}")
    return value


def json_str(value: Any, where: str, field: str, choices: Optional[Iterable[str]] = None,
             non_empty: bool = False) -> str:  # fmt: skip
    if not isinstance(value, str):
        raise bad_field(where, field, f"must be a string, got {type_name(value)}")
    if non_empty and not value:
        raise bad_field(where, field, "must be a non-empty string")
    if choices is not None and value not in tuple(choices):
        raise bad_field(where, field, f"{value[:80]!r} is not one of {tuple(choices)}")
    return value


def json_bool(value: Any, where: str, field: str) -> bool:
    if not isinstance(value, bool):
        raise bad_field(where, field, f"must be true or false, got {type_name(value)}")
    return value


def json_int(value: Any, where: str, field: str, lo: Optional[int] = None,
             hi: Optional[int] = None, nullable: bool = False) -> Optional[int]:  # fmt: skip
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_field(where, field, f"must be an integer, got {type_name(value)}")
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
        raise bad_field(where, field, f"must be a number, got {type_name(value)}")
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
        raise bad_field(where, field, f"must be an array, got {type_name(value)}")
    if item is None:
        return list(value)
    return [item(v, where, _sub(field, i)) for i, v in enumerate(value)]


def json_number(value: Any) -> Any:
    """A float for JSON (None for NaN/inf, which JSON cannot hold)."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None

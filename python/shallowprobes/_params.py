"""Declarative validation of the parameters of every public estimator and function.

In the style of scikit-learn's ``_parameter_constraints``: a dict maps each parameter name to
a list of constraints, and a value is valid when it satisfies any one of them. Everything is
checked before any work starts, and a failure raises an exception whose message names the
parameter, the value given and what is allowed, e.g.

    CPProbe: tol must be a finite number >= 0, got nan.

Exceptions (all are `ParameterError`, a ValueError):

* a value of an accepted type outside the allowed range or set: `ParameterError`;
* a value of no accepted type (a string for a number, a float for an integer, NaN for a
  number): `ParameterTypeError`, also a TypeError;
* a NaN or infinite entry in an array parameter (a centre, a readout matrix):
  `NonFiniteParameterError`, also a `NonFiniteError`;
* an index (fold, output) out of range: `ParameterIndexError`, also an IndexError.

Usage::

    validate_params(
        {"rank": self.rank, "tol": self.tol},
        {"rank": [Interval("int", 1, None)], "tol": [Interval("real", 0, None)]},
        owner="CPProbe",
    )
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np

from .backends import BACKENDS, all_finite, is_torch_tensor
from .errors import (
    NonFiniteParameterError,
    ParameterError,
    ParameterIndexError,
    ParameterTypeError,
)

__all__ = [
    "ParameterError",
    "ParameterTypeError",
    "ParameterIndexError",
    "NonFiniteParameterError",
    "Interval",
    "Options",
    "Boolean",
    "InstanceOf",
    "RandomState",
    "Array",
    "Predicate",
    "MATRIX",
    "ARRAY_LIKE",
    "ndim_of",
    "params_of",
    "validate_params",
    "check_param",
    "ALPHAS",
    "CV",
    "BACKEND",
    "RANDOM_STATE",
    "BOOL",
]


# ---------------------------------------------------------------------------------- constraints
_OK = None  # `check` result: the value satisfies the constraint
_WRONG_TYPE = "wrong type"  # `check` result: the constraint does not take values of this type


class _Constraint:
    """One acceptable kind of value. `check(value)` returns _OK, _WRONG_TYPE, or
    (reason, exception class) for a value of the right type that breaks the constraint
    (reason may be "")."""

    desc = ""

    def check(self, value: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class _NoneConstraint(_Constraint):
    desc = "None"

    def check(self, value: Any) -> Any:
        return _OK if value is None else _WRONG_TYPE


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _scalar(value: Any) -> Any:
    """A 0-d numpy array or torch tensor as its Python number; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
        return value.item()
    if is_torch_tensor(value) and value.ndim == 0 and not value.is_complex():
        return value.item()
    return value


def _fmt_bound(x: Any) -> str:
    if isinstance(x, numbers.Integral):
        return str(int(x))
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"


class Interval(_Constraint):
    """A number (kind "real") or an integer (kind "int") between `low` and `high` (None:
    unbounded). `closed`: "both", "left", "right" or "neither". Real numbers must be finite
    unless an infinite bound is given and closed on its side; NaN is never a number (a NaN
    is refused like a value of the wrong type). `error`: the class raised out of range,
    `reason`: text added to that message (e.g. "out of range"); `min_positive`: positive
    values below it (subnormal penalties) are refused too."""

    def __init__(
        self,
        kind: str,
        low: Optional[float] = None,
        high: Optional[float] = None,
        *,
        closed: str = "both",
        desc: Optional[str] = None,
        error: type = ParameterError,
        reason: str = "",
        min_positive: Optional[float] = None,
    ) -> None:
        if kind not in ("int", "real") or closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"bad Interval({kind!r}, closed={closed!r})")  # programming error
        self.kind, self.low, self.high, self.error = kind, low, high, error
        self.reason, self.min_positive = reason, min_positive
        self.lo_closed = closed in ("both", "left")
        self.hi_closed = closed in ("both", "right")
        self.desc = desc if desc is not None else self._describe()

    def _allows_inf(self) -> bool:
        return (self.high == math.inf and self.hi_closed) or (
            self.low == -math.inf and self.lo_closed
        )

    def _describe(self) -> str:
        if self.kind == "int":
            what = "an integer"
        else:
            what = "a number" if self._allows_inf() else "a finite number"
        lo, hi = self.low, self.high
        if lo is not None and hi is None:
            return f"{what} {'>=' if self.lo_closed else '>'} {_fmt_bound(lo)}"
        if hi is not None and lo is None:
            return f"{what} {'<=' if self.hi_closed else '<'} {_fmt_bound(hi)}"
        if lo is None and hi is None:
            return what
        return (
            f"{what} in {'[' if self.lo_closed else '('}{_fmt_bound(lo)}, "
            f"{_fmt_bound(hi)}{']' if self.hi_closed else ')'}"
        )

    def check(self, value: Any) -> Any:
        value = _scalar(value)
        if _is_bool(value):
            return _WRONG_TYPE
        if self.kind == "int":
            if not isinstance(value, numbers.Integral):
                return _WRONG_TYPE
            v = int(value)
        else:
            if not isinstance(value, numbers.Real) or math.isnan(float(value)):
                return _WRONG_TYPE
            v = float(value)
            if math.isinf(v) and not self._allows_inf():
                return self.reason, self.error
        ok = True
        if self.low is not None:
            ok = ok and (v >= self.low if self.lo_closed else v > self.low)
        if self.high is not None:
            ok = ok and (v <= self.high if self.hi_closed else v < self.high)
        if ok and self.min_positive is not None and 0.0 < v < self.min_positive:
            return _subnormal(self.min_positive), self.error
        return _OK if ok else (self.reason, self.error)


def _subnormal(tiny: float) -> str:
    return f"positive values must be >= {tiny:.3g}: smaller ones are subnormal and overflow 1/x"


class Options(_Constraint):
    """One of a fixed set of values (strings, or integers)."""

    def __init__(self, options: Sequence, *, desc: Optional[str] = None) -> None:
        self.options = tuple(options)
        self.desc = desc if desc is not None else f"one of {self.options}"
        if all(isinstance(o, str) for o in self.options):
            self._types: tuple = (str,)
        elif all(isinstance(o, numbers.Integral) and not _is_bool(o) for o in self.options):
            self._types = (numbers.Integral,)
        else:
            self._types = (object,)

    def check(self, value: Any) -> Any:
        if _is_bool(value) or not isinstance(value, self._types):
            return _WRONG_TYPE
        return _OK if any(value == o for o in self.options) else ("", ParameterError)


class Boolean(_Constraint):
    desc = "True or False"

    def check(self, value: Any) -> Any:
        return _OK if _is_bool(value) else _WRONG_TYPE


class InstanceOf(_Constraint):
    def __init__(self, types: Any, desc: Optional[str] = None) -> None:
        self.types = types if isinstance(types, tuple) else (types,)
        self.desc = (
            desc
            if desc is not None
            else ("an instance of " + " or ".join(t.__name__ for t in self.types))
        )

    def check(self, value: Any) -> Any:
        return _OK if isinstance(value, self.types) else _WRONG_TYPE


class Predicate(_Constraint):
    """Any value for which test(value) is true (an exception in test counts as false)."""

    def __init__(self, test: Any, desc: str) -> None:
        self.test, self.desc = test, desc

    def check(self, value: Any) -> Any:
        try:
            ok = bool(self.test(value))
        except Exception:  # noqa: BLE001 - a value the test cannot handle is not accepted
            ok = False
        return _OK if ok else _WRONG_TYPE


def ndim_of(value: Any) -> Optional[int]:
    """Number of dimensions of an array-like without converting it (tensors stay where they
    are); None for strings and for values that are not array-like."""
    if value is None or isinstance(value, (str, bytes, Mapping)):
        return None
    shape = getattr(value, "shape", None)
    if shape is not None and not callable(shape):
        try:
            return len(tuple(shape))
        except TypeError:
            return None
    try:
        return int(np.ndim(value))
    except Exception:  # noqa: BLE001 - ragged or odd sequences
        return None


def _is_matrix(value: Any) -> bool:
    return ndim_of(value) == 2


class RandomState(_Constraint):
    """A seed for numpy.random.default_rng: an integer >= 0, a Generator, a BitGenerator or a
    SeedSequence (None is a separate constraint)."""

    desc = "an integer seed >= 0, a numpy Generator, BitGenerator or SeedSequence"
    _TYPES = (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)

    def check(self, value: Any) -> Any:
        if isinstance(value, self._TYPES):
            return _OK
        if _is_bool(value) or not isinstance(value, numbers.Integral):
            return _WRONG_TYPE
        return _OK if value >= 0 else ("seeds must be >= 0", ParameterError)


class Array(_Constraint):
    """A numeric array (nested sequence, numpy array or torch tensor) with `ndim` dimensions
    (an int or a tuple of allowed ones; scalars are never taken here), an optional `shape`
    (None entries: any length), at least `min_size` entries, finite entries (`finite`;
    NonFiniteParameterError otherwise), entries >= `low` (> `low` with low_closed=False) and
    no positive entries below `min_positive`."""

    def __init__(
        self,
        ndim: Any = 1,
        *,
        shape: Optional[tuple] = None,
        min_size: int = 1,
        finite: bool = True,
        low: Optional[float] = None,
        low_closed: bool = True,
        min_positive: Optional[float] = None,
        desc: Optional[str] = None,
    ) -> None:
        self.ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        self.shape, self.min_size, self.finite = shape, min_size, finite
        self.low, self.low_closed, self.min_positive = low, low_closed, min_positive
        self.desc = desc if desc is not None else self._describe()

    def _describe(self) -> str:
        dims = " or ".join(f"{n}-D" for n in self.ndims)
        text = f"a {'non-empty ' if self.min_size else ''}{dims} array"
        if self.shape is not None:
            text += " of shape (" + ", ".join("n" if s is None else str(s) for s in self.shape)
            text += ")"
        values = ["finite"] if self.finite else []
        if self.low is not None:
            values.append(f"{'>=' if self.low_closed else '>'} {_fmt_bound(self.low)}")
        return text + (f" of {' '.join(values)} numbers" if values else " of numbers")

    @staticmethod
    def as_array(value: Any) -> Optional[np.ndarray]:
        """value as a real numeric numpy array (tensors come to the host), else None."""
        if (
            value is None
            or _is_bool(value)
            or isinstance(value, (str, bytes, numbers.Number, Mapping, set, frozenset))
        ):
            return None
        if is_torch_tensor(value):
            value = value.detach()
            if value.is_complex():
                return None
            if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
                value = value.float()
            value = value.cpu().numpy()
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):  # ragged nested sequences, odd objects
            return None
        return arr if arr.dtype.kind in "iuf" else None

    def check(self, value: Any) -> Any:
        arr = self.as_array(value)
        if arr is None or arr.ndim == 0:
            return _WRONG_TYPE
        if arr.ndim not in self.ndims:
            return f"it is {arr.ndim}-D, of shape {arr.shape}", ParameterError
        if self.shape is not None and any(
            want is not None and got != want for got, want in zip(arr.shape, self.shape)
        ):
            return f"it has shape {arr.shape}", ParameterError
        if arr.size < self.min_size:
            return f"it has {arr.size} entries", ParameterError
        if self.finite and arr.dtype.kind == "f":
            if arr.ndim == 2 and arr.dtype in (np.float32, np.float64):
                finite = all_finite(arr)  # one pass, no temporary (large readout matrices)
            else:
                finite = bool(np.isfinite(arr).all())
            if not finite:
                return "it contains NaN or infinity", NonFiniteParameterError
        if self.low is not None and arr.size:
            bad = arr < self.low if self.low_closed else arr <= self.low
            if bad.any():
                cmp = ">=" if self.low_closed else ">"
                return f"entries must be {cmp} {_fmt_bound(self.low)}", ParameterError
        if self.min_positive is not None and ((arr > 0) & (arr < self.min_positive)).any():
            return _subnormal(self.min_positive), ParameterError
        return _OK


_NONE = _NoneConstraint()


# ---------------------------------------------------------------------------------- checking
def shown(value: Any) -> str:
    """A short description of the value given, for messages (never a huge repr)."""
    if is_torch_tensor(value):
        if value.numel() <= 8:
            return f"tensor({value.detach().cpu().tolist()})"
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return " ".join(np.array2string(value, separator=", ").split())
        return f"an array of shape {value.shape} (dtype {value.dtype})"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"a {type(value).__name__} of length {len(value)}"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _allowed(constraints: Sequence[_Constraint]) -> str:
    descs = [c.desc for c in constraints if c is not _NONE]
    if any(c is _NONE for c in constraints):
        descs.append("None")
    if len(descs) <= 1:
        return descs[0] if descs else "nothing"
    return ", ".join(descs[:-1]) + " or " + descs[-1]


def check_param(name: str, value: Any, constraints: Any, *, owner: Optional[str] = None) -> Any:
    """Raise the right ParameterError unless `value` satisfies one of `constraints` (a
    constraint or a list of them; None in the list stands for the value None). Returns
    value unchanged."""
    if not isinstance(constraints, (list, tuple)):
        constraints = [constraints]
    cons = [_NONE if c is None else c for c in constraints]
    matched = []
    for c in cons:
        result = c.check(value)
        if result is _OK:
            return value
        if result is not _WRONG_TYPE:
            matched.append(result)
    prefix = f"{owner}: " if owner else ""
    message = f"{prefix}{name} must be {_allowed(cons)}, got {shown(value)}"
    if not matched:
        raise ParameterTypeError(message + ".")
    reason, error = next((p for p in matched if p[0]), matched[0])
    raise error(message + (f" ({reason})." if reason else "."))


def validate_params(
    params: Mapping[str, Any], constraints: Mapping[str, Any], *, owner: Optional[str] = None
) -> None:
    """Check every parameter named in `constraints` (in that order) against its constraints;
    `params` maps names to the values given (e.g. estimator attributes)."""
    for name, cons in constraints.items():
        check_param(name, params[name], cons, owner=owner)


def params_of(obj: Any, names: Any) -> dict:
    """{name: getattr(obj, name)} for the names (estimator parameters)."""
    return {name: getattr(obj, name) for name in names}


# ---------------------------------------------------------------------------------- shared
BOOL = [Boolean()]
BACKEND = [Options(BACKENDS)]
RANDOM_STATE = [None, RandomState()]
_TINY = float(np.finfo(np.float64).tiny)
# ridge penalties: finite, >= 0; positive ones not subnormal (1 / alpha would overflow)
ALPHAS = [
    Array(
        1,
        low=0.0,
        min_positive=_TINY,
        desc="numbers (a non-empty 1-D sequence of finite values >= 0)",
    ),
    Interval("real", 0.0, None, min_positive=_TINY, desc="a single finite number >= 0"),
    None,
]
MATRIX = Predicate(_is_matrix, "a 2-D array")
# any array-like; its shape is checked once the width d is known (check_readout)
ARRAY_LIKE = Predicate(lambda v: ndim_of(v) is not None, "an array of shape (m, d)")
CV = [
    Options(("gcv", "loo")),
    Interval(
        "int", 2, None, desc="an integer number of folds K >= 2 (K-fold CV needs at least 2 folds)"
    ),
    None,
]

"""Argument checks shared by the generators (each error names the offending parameter)."""

from __future__ import annotations

import numpy as np

from .._params import Interval, Options, ParameterTypeError, check_param


def _check_int(value, name: str, minimum: int) -> int:
    check_param(name, value, [Interval("int", minimum, None)])
    return int(value)


def _check_float(value, name: str, low=None, high=None, closed: str = "both") -> float:
    """A finite real number in the interval (ParameterError / ParameterTypeError naming it)."""
    check_param(name, value, [Interval("real", low, high, closed=closed)])
    return float(value)


def _check_nonneg(value, name: str) -> float:
    return _check_float(value, name, 0.0)


def _check_dtype(dtype, floats=("float32", "float64")) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ParameterTypeError(
            f"dtype must be one of {floats} (a numpy floating type), got {dtype!r}."
        ) from None
    check_param("dtype", dt.name, [Options(floats)])
    return dt

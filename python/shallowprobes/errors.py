"""The library's exceptions: one hierarchy, matched by type, never by message text.

Every class also derives from the built-in exception a caller would catch for that kind of
problem (ValueError for bad values, MemoryError for allocation failures, ...), so code written
against the built-ins keeps working.
"""

from __future__ import annotations

from ._base import NotFittedError

__all__ = [
    "ShallowProbesError",
    "NonFiniteError",
    "ScaleError",
    "BundleError",
    "CacheError",
    "ParameterError",
    "ParameterTypeError",
    "ParameterIndexError",
    "NonFiniteParameterError",
    "CoreMemoryError",
    "NotFittedError",
    "EmptyBankError",
    "NotPortableError",
    "GridEdgeWarning",
]


class ShallowProbesError(Exception):
    """Base class of the errors raised by shallowprobes itself."""


class NonFiniteError(ShallowProbesError, ValueError):
    """An input (rows X, targets y, a centre, coefficients) contains NaN or infinity."""


class ScaleError(ShallowProbesError, ValueError):
    """Input magnitudes lie outside the range the float64 statistics represent exactly
    (their squares, or fourth powers for degree 2, would overflow or underflow)."""


class BundleError(ShallowProbesError, ValueError):
    """A saved file (statistics, bank, quotient, transfer bundle) is corrupted, truncated, of
    the wrong kind, from a newer format, or breaks the file schema."""


class CacheError(BundleError):
    """An activation cache (`shallowprobes.caches`) is unusable: a missing layer or file, a
    truncated or corrupt file, row counts that disagree between layers or with the targets, or
    an unsupported dtype. The message names the file and the layer."""


class ParameterError(ShallowProbesError, ValueError):
    """An estimator or function parameter has an invalid value (the message names it)."""


class ParameterTypeError(ParameterError, TypeError):
    """A parameter has a value of a type it does not accept (still a ParameterError)."""


class ParameterIndexError(ParameterError, IndexError):
    """An index parameter (a fold, an output) is out of range (still a ParameterError)."""


class NonFiniteParameterError(NonFiniteError, ParameterError):
    """An array parameter (a centre, coefficients, a readout matrix) holds NaN or infinity."""


class CoreMemoryError(ShallowProbesError, MemoryError):
    """The Rust core could not allocate the memory a computation needs (sizes in the message)."""


class EmptyBankError(ShallowProbesError, ValueError):
    """An operation needs at least one monitor and the bank has none (or a transfer with
    unportable="drop" would return a bank with none: every monitor was judged not portable)."""


class NotPortableError(ShallowProbesError, ValueError):
    """A transfer with unportable="raise" judged some monitors not portable to model B (the
    message names them and their verdict statistics)."""


# ---------------------------------------------------------------------------------- warnings
class GridEdgeWarning(UserWarning):
    """The alpha (or gamma) chosen by cross-validation is the smallest or largest value of the
    grid that was searched and the CV score was still improving there, so the best value may
    lie outside the grid: pass alphas= (or gamma=) reaching further on that side."""

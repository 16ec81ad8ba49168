"""Estimator plumbing: parameters, repr, scikit-learn integration without requiring it.

numpy is the only hard dependency. When scikit-learn is installed our estimators derive from its
`BaseEstimator` and mixins, so `clone`, pipelines, grid search and estimator tags work as for any
scikit-learn estimator. Without it, a small fallback provides `get_params` / `set_params`.
"""

from __future__ import annotations

import inspect
from typing import Any

try:  # optional integration
    from sklearn.base import BaseEstimator as _SkBaseEstimator
    from sklearn.base import ClassifierMixin as _SkClassifierMixin
    from sklearn.base import RegressorMixin as _SkRegressorMixin
    from sklearn.exceptions import DataConversionWarning
    from sklearn.exceptions import NotFittedError as _SkNotFittedError

    HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    HAVE_SKLEARN = False
    _SkNotFittedError = None


if HAVE_SKLEARN:
    NotFittedError = _SkNotFittedError
    BaseEstimator = _SkBaseEstimator
    RegressorMixin = _SkRegressorMixin
    ClassifierMixin = _SkClassifierMixin
else:  # pragma: no cover

    class NotFittedError(ValueError, AttributeError):
        """Raised when a probe is used before it is fitted."""

    class DataConversionWarning(UserWarning):
        """A column-vector y was passed where a 1-D array was expected."""

    class BaseEstimator:
        """Minimal scikit-learn-compatible parameter handling."""

        @classmethod
        def _get_param_names(cls) -> list[str]:
            sig = inspect.signature(cls.__init__)
            return sorted(
                p.name
                for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            )

        def get_params(self, deep: bool = True) -> dict[str, Any]:
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params: Any) -> BaseEstimator:
            valid = self._get_param_names()
            for key, value in params.items():
                if key not in valid:
                    raise ValueError(
                        f"Invalid parameter {key!r} for estimator {type(self).__name__}. "
                        f"Valid parameters are: {valid}."
                    )
                setattr(self, key, value)
            return self

        def __repr__(self) -> str:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
            return f"{type(self).__name__}({args})"

    class RegressorMixin:
        _estimator_type = "regressor"

    class ClassifierMixin:
        _estimator_type = "classifier"


__all__ = [
    "BaseEstimator",
    "RegressorMixin",
    "ClassifierMixin",
    "NotFittedError",
    "DataConversionWarning",
    "HAVE_SKLEARN",
]


class streaming_method:
    """Descriptor for `partial_fit`: present only on estimators whose `_streams()` is True.

    scikit-learn (and users) test ``hasattr(est, "partial_fit")``; a probe that cannot stream
    (a dual-route or CP fit) must not pretend it can. Accessing it then raises AttributeError
    with the estimator's reason (`_no_stream_reason()`).
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        if not obj._streams():
            raise AttributeError(obj._no_stream_reason())
        return self.fn.__get__(obj, owner)


def user_stacklevel() -> int:
    """`stacklevel` for warnings.warn that points at the first frame outside this package
    (call it from the function that warns): the user's line, however deep the call chain."""
    import os
    import sys

    package = os.path.dirname(os.path.abspath(__file__))
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame = frame.f_back
        level += 1
    return level

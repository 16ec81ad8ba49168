"""`PolynomialMonitor`: one fitted probe reduced to the polynomial it computes.

A *monitor* is one scalar score read off a hidden state, e.g. a toxicity or deception detector.
Every probe family in this library computes a polynomial of degree <= 2,

    f(h) = (h - c)^T Q (h - c) + w . (h - c) + b,

so a monitor is stored as exactly that: a centre c, a symmetric Q (absent for degree 1), a
covector w and an offset b. This module holds the monitor, the checks of its coefficients,
the reading of fitted `LinearProbe` / `QuadraticProbe` / `CPProbe` estimators, and the blocked
evaluation of many monitors at once. It is apart from the bank (:mod:`.bank`, a named
collection that saves and loads) and from the scikit-learn conversion (:mod:`.from_sklearn`)
because both build on it and neither is needed to read one probe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .._params import (
    Array,
    InstanceOf,
    Interval,
    NonFiniteParameterError,
    Options,
    ParameterError,
    ParameterIndexError,
    ParameterTypeError,
    check_param,
    shown,
)
from .._validation import check_X
from ..backends import get_backend, is_torch_tensor, ops_of, torch_backend

__all__ = ["PolynomialMonitor"]

MONITOR_KINDS = ("linear", "quadratic", "cp")


def as_float64(value: Any) -> np.ndarray:
    """Fitted attributes may be torch tensors (torch-backend fits); bring them to numpy.

    Always float64 (unlike `backends.to_numpy`, which keeps a tensor's float32)."""
    if is_torch_tensor(value):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def check_rows(H: Any, d: int, owner: str) -> Any:
    """Validated hidden states: a torch tensor stays a tensor where it lives."""
    return check_X(H, name="H", n_features=d, owner=owner, keep_tensor=True)


def _check_finite(arr: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise NonFiniteParameterError(
            f"{what} contains NaN or inf; a monitor must have finite coefficients."
        )
    return arr


def _coefficients(value: Any, name: str, shape: tuple, shape_text: str = "") -> np.ndarray:
    """value as a finite float64 array (a copy) of `shape` (None entries: any length >= 1):
    ParameterTypeError unless it is a real numeric array (or tensor), ParameterError for the
    wrong shape, NonFiniteParameterError (a NonFiniteError) for NaN or infinity."""
    if not shape_text:
        dims = ", ".join("m" if n is None else str(n) for n in shape)
        shape_text = f"({dims},)" if len(shape) == 1 else f"({dims})"
    arr = Array.as_array(value)
    if arr is None:
        raise ParameterTypeError(
            f"{name} must be a real numeric array of shape {shape_text}, got {shown(value)}."
        )
    arr = np.array(arr, dtype=np.float64)
    wrong = arr.ndim != len(shape) or 0 in arr.shape
    if wrong or any(n is not None and got != n for got, n in zip(arr.shape, shape)):
        raise ParameterError(f"{name} must have shape {shape_text}, got {arr.shape}.")
    return _check_finite(arr, name)


def _intercept(value: Any) -> float:
    """A monitor's offset as a finite float: a real number, or a one-entry array / tensor."""
    if isinstance(value, (bool, np.bool_)):
        arr = None
    elif isinstance(value, (int, float, np.integer, np.floating)):
        arr = np.asarray(float(value))
    else:
        arr = Array.as_array(value)
    if arr is None or arr.size != 1:
        raise ParameterTypeError(f"intercept must be a finite real number, got {shown(value)}.")
    b = float(arr.reshape(()))
    if not np.isfinite(b):
        raise NonFiniteParameterError(
            f"intercept is NaN or inf (got {b!r}); a monitor must have finite coefficients."
        )
    return b


@dataclass(frozen=True, eq=False)
class PolynomialMonitor:
    """The score f(h) = (h - centre)^T quadratic (h - centre) + linear . (h - centre) + intercept.

    Parameters
    ----------
    linear : (d,) covector w.
    intercept : offset b (the score at h = centre).
    quadratic : (d, d) matrix Q, or None for a degree-1 monitor. Only its symmetric part
        enters the score, so it is stored symmetrised.
    centre : (d,) point c the polynomial is expanded about (default: the origin). Expanding
        about the data mean keeps the coefficients well conditioned.
    kind : where the monitor came from: "linear", "quadratic" or "cp" (default: "linear"
        when quadratic is None, else "quadratic").
    """

    linear: np.ndarray
    intercept: float = 0.0
    quadratic: Optional[np.ndarray] = None
    centre: Optional[np.ndarray] = None
    kind: Optional[str] = None
    info: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        raw = Array.as_array(self.linear)
        if raw is not None and (raw.ndim != 1 or raw.size == 0):
            raise ParameterError(f"linear must be a non-empty 1-D covector, got shape {raw.shape}.")
        w = _coefficients(self.linear, "linear", (None,), "(d,)")
        d = w.size
        c = np.zeros(d) if self.centre is None else _coefficients(
            self.centre, "centre", (d,), f"({d},) like linear")  # fmt: skip
        Q = None
        if self.quadratic is not None:
            Q = _coefficients(self.quadratic, "quadratic", (d, d))
            with np.errstate(over="ignore"):  # entries near the float64 limit: refused below
                Q = _check_finite(0.5 * (Q + Q.T), "quadratic")
        b = _intercept(self.intercept)
        check_param("kind", self.kind, [Options(MONITOR_KINDS), None])
        check_param("info", self.info, [InstanceOf(Mapping, "a dict")])
        kind = self.kind if self.kind is not None else ("linear" if Q is None else "quadratic")
        for arr in (w, c) + (() if Q is None else (Q,)):
            arr.setflags(write=False)
        object.__setattr__(self, "linear", w)
        object.__setattr__(self, "centre", c)
        object.__setattr__(self, "quadratic", Q)
        object.__setattr__(self, "intercept", b)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "_placed", {})  # float64 tensor copies per torch device

    def _on(self, device: Any) -> tuple:
        """(linear, centre, intercept, quadratic) as float64 tensors on a torch device (cached:
        evaluating on a GPU moves the coefficients there once)."""
        key = str(device)
        if key not in self._placed:
            import torch

            def put(a):
                return None if a is None else torch.from_numpy(a.copy()).to(device)

            self._placed[key] = (put(self.linear), put(self.centre), self.intercept,
                                 put(self.quadratic))  # fmt: skip
        return self._placed[key]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_input_coordinates(
        cls,
        linear: Any,
        intercept: float = 0.0,
        quadratic: Any = None,
        centre: Any = None,
        kind: Optional[str] = None,
    ) -> PolynomialMonitor:
        """The monitor h^T Q h + w . h + b (coefficients about the origin), re-expanded about
        `centre` (default: the origin)."""
        raw = cls(linear, intercept, quadratic, None, kind)
        return raw if centre is None else raw.recentred(centre)

    @classmethod
    def from_probe(cls, probe: Any, output: int = 0) -> PolynomialMonitor:
        """Output `output` of a fitted LinearProbe / QuadraticProbe / CPProbe (or classifier).

        For binary classifiers output 0 is the decision value (positive means classes_[1]);
        for multi-class classifiers output j is the one-vs-rest score of classes_[j].
        """
        n_out = n_outputs(probe)
        check_param("output", output, [Interval(
            "int", 0, n_out, closed="left", error=ParameterIndexError, reason="out of range",
            desc=f"an output index in [0, {n_out}) (the probe has {n_out} output(s))",
        )])  # fmt: skip
        kind = _probe_kind(probe)
        if kind == "linear":
            coef = as_float64(probe.coef_).reshape(n_out, -1)
            intercept = as_float64(probe.intercept_).reshape(-1)
            return cls(coef[output], float(intercept[output]), None, None, "linear")
        Q = as_float64(probe.quadratic_).reshape(n_out, *as_float64(probe.quadratic_).shape[-2:])
        w = as_float64(probe.linear_).reshape(n_out, -1)
        b = as_float64(probe.intercept_).reshape(-1)
        centre = as_float64(probe.centre_)
        return cls.from_input_coordinates(w[output], float(b[output]), Q[output], centre, kind)

    @classmethod
    def from_sklearn(cls, model: Any, output: int = 0) -> PolynomialMonitor:
        """Output `output` of a fitted scikit-learn model as a monitor, exact to round-off.

        Supported: linear models (classifiers with a linear decision_function - the
        LogisticRegression / LinearSVC / RidgeClassifier / SGDClassifier / LDA family, and
        SVC(kernel="linear") for two classes - and linear regressors: Ridge, LinearRegression,
        Lasso, SGDRegressor, LinearSVR, ...), and Pipelines of affine steps (StandardScaler,
        PCA, TruncatedSVD, MinMaxScaler without clip, MaxAbsScaler, RobustScaler, feature
        selectors, FunctionTransformer(None), "passthrough") and at most one
        PolynomialFeatures of degree <= 2, ending in such a model. The monitor's score is the
        classifier's decision_function (binary: positive means classes_[1], operating point
        ``info["threshold"] = 0``; K classes: output j is the score of classes_[j]) or the
        regressor's prediction (output j = target j). Anything else raises TypeError naming
        the step.
        """
        # lazy: the conversion builds monitors, so it imports this module
        from .from_sklearn import sklearn_monitors

        monitors, _ = sklearn_monitors(model)
        check_param("output", output, [Interval(
            "int", 0, len(monitors), closed="left", error=ParameterIndexError,
            reason="out of range",
            desc=f"an output index in [0, {len(monitors)}) (the model has {len(monitors)} "
                 "output(s))",
        )])  # fmt: skip
        return monitors[output]

    # ------------------------------------------------------------------ properties
    @property
    def n_features(self) -> int:
        return int(self.linear.size)

    @property
    def degree(self) -> int:
        """2 when Q is present and non-zero, else 1."""
        return 2 if self.quadratic is not None and np.any(self.quadratic) else 1

    def covectors(self) -> np.ndarray:
        """(d, m) matrix whose columns span the covectors the monitor reads: w and the
        columns of Q. A direction delta with covectors().T @ delta = 0 never changes f."""
        if self.quadratic is None:
            return self.linear[:, None].copy()
        return np.column_stack([self.linear, self.quadratic])

    # ------------------------------------------------------------------ evaluation
    def decision_function(self, H: Any) -> np.ndarray:
        """Scores (n,) for hidden states H (n, d): float64, a tensor on H's device when H is a
        torch tensor (computed there), else a numpy array."""
        X = check_rows(H, self.n_features, "this monitor")
        return evaluate_monitors(X, [self])[:, 0]

    __call__ = decision_function

    # ------------------------------------------------------------------ algebra
    def recentred(self, centre: Any) -> PolynomialMonitor:
        """The same function, expanded about another centre."""
        new = _coefficients(centre, "centre", (self.n_features,))
        e = new - self.centre
        w, b = self.linear, self.intercept + float(self.linear @ e)
        if self.quadratic is not None:
            Qe = self.quadratic @ e
            w = w + 2.0 * Qe
            b += float(e @ Qe)
        return PolynomialMonitor(w, b, self.quadratic, new, self.kind, dict(self.info))

    def compose_affine(self, G: Any, offset: Any, centre: Any) -> PolynomialMonitor:
        """The monitor x' -> f(G (x' - centre) + offset) on another space.

        G is (d, d') (d = this monitor's width), offset (d,), centre (d',). This is how a
        monitor on model A's coordinates becomes a monitor on model B's hidden states once an
        affine map B -> A is known; the result is again a polynomial of degree <= 2.
        """
        d = self.n_features
        G = _coefficients(G, "G", (d, None), f"({d}, d_new)")
        offset = _coefficients(offset, "offset", (d,))
        centre = _coefficients(centre, "centre", (G.shape[1],))
        e = offset - self.centre
        w = G.T @ self.linear
        b = self.intercept + float(self.linear @ e)
        Q_new = None
        if self.quadratic is not None:
            Qe = self.quadratic @ e
            w = w + 2.0 * (G.T @ Qe)
            b += float(e @ Qe)
            Q_new = G.T @ self.quadratic @ G
        return PolynomialMonitor(w, b, Q_new, centre, self.kind, dict(self.info))

    def __repr__(self) -> str:
        return f"PolynomialMonitor(kind={self.kind!r}, degree={self.degree}, d={self.n_features})"


def _probe_kind(probe: Any) -> str:
    if hasattr(probe, "factors_") or type(probe).__name__.startswith("CP"):
        return "cp"
    if hasattr(type(probe), "quadratic_"):
        return "quadratic"
    if hasattr(probe, "coef_"):
        return "linear"
    raise TypeError(
        f"{type(probe).__name__} is not a fitted probe: expected a fitted LinearProbe, "
        "QuadraticProbe or CPProbe (or classifier), or a PolynomialMonitor."
    )


def n_outputs(probe: Any) -> int:
    """How many scores a fitted probe computes (ValueError when it is not fitted)."""
    try:
        if _probe_kind(probe) == "linear":
            coef = as_float64(probe.coef_)
        else:
            coef = as_float64(probe.linear_)
    except (AttributeError, ValueError) as exc:  # NotFittedError is both
        raise ValueError(
            f"{type(probe).__name__} is not fitted; fit it before adding it to a bank ({exc})."
        ) from None
    return 1 if coef.ndim == 1 else coef.shape[0]


def output_labels(probe: Any, n_out: int) -> list[str]:
    """Names of a probe's outputs: a classifier's classes when there is one per output,
    else the output indices."""
    classes = getattr(probe, "classes_", None) if hasattr(probe, "predict_proba") else None
    if classes is not None and len(classes) == n_out:
        return [str(c) for c in classes]
    return [str(j) for j in range(n_out)]


def host_kernels() -> Any:
    """The kernels that evaluate monitors on host (numpy) rows: the Rust core, or the numpy
    statement when the extension is missing."""
    return get_backend("auto")


def evaluate_monitors(X: Any, monitors: list[PolynomialMonitor]) -> Any:
    """(n, m) float64 scores of the monitors on the rows X, in row blocks (no float64 copy of
    all of X): numpy X in the Rust core (`backends.rust_kernels.evaluate_polynomials`, the
    numpy statement without the extension), a torch X on its device
    (`torch_kernels.evaluate_polynomials`; the coefficients are copied there once, see
    `PolynomialMonitor._on`)."""
    if is_torch_tensor(X):
        xp = ops_of(X)
        placed = [m._on(X.device) for m in monitors]
        return torch_backend().evaluate_polynomials(
            X, xp.stack([p[0] for p in placed]), xp.stack([p[1] for p in placed]),
            [p[2] for p in placed], [p[3] for p in placed],
        )  # fmt: skip
    return host_kernels().evaluate_polynomials(
        X, np.stack([m.linear for m in monitors]), np.stack([m.centre for m in monitors]),
        np.array([m.intercept for m in monitors], dtype=np.float64),
        [m.quadratic for m in monitors],
    )  # fmt: skip

"""Monitors and banks of monitors: fitted probes reduced to the polynomial they compute.

A *monitor* is one scalar score read off a hidden state, e.g. a toxicity or deception detector.
Every probe family in this library computes a polynomial of degree <= 2,

    f(h) = (h - c)^T Q (h - c) + w . (h - c) + b,

so a monitor is stored as exactly that (:class:`PolynomialMonitor`): a centre c, a symmetric Q
(absent for degree 1), a covector w and an offset b. A :class:`ProbeBank` is a named, ordered
collection of monitors on one model/layer. It can be built from any mix of fitted
`LinearProbe`, `QuadraticProbe` and `CPProbe` estimators (regressors and classifiers; a
probe with several outputs contributes one monitor per output), and from fitted scikit-learn
linear models and pipelines (StandardScaler / PCA / PolynomialFeatures(2) + a linear model; see
`ProbeBank.from_sklearn`), evaluates all of them at once, and saves to / loads from a directory
without pickle (see :mod:`shallowprobes.io`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
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
from ..backends import float64_row_blocks, is_torch_tensor, ops_of
from ..errors import BundleError, EmptyBankError
from ..io import (
    NpzMembers,
    PathLike,
    bad_field,
    json_bool,
    json_dict,
    json_fields,
    json_float,
    json_list,
    json_str,
    read_bundle,
    write_bundle,
)

__all__ = ["PolynomialMonitor", "ProbeBank"]

_KINDS = ("linear", "quadratic", "cp")
_BLOCK_ENTRIES = 1 << 22  # rows x features evaluated at a time


def _to_numpy(value: Any) -> np.ndarray:
    """Fitted attributes may be torch tensors (torch-backend fits); bring them to numpy."""
    if is_torch_tensor(value):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def _check_rows(H: Any, d: int, owner: str) -> Any:
    """Validated hidden states: a torch tensor stays a tensor where it lives."""
    return check_X(H, name="H", n_features=d, owner=owner, keep_tensor=is_torch_tensor(H))


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
        check_param("kind", self.kind, [Options(_KINDS), None])
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
        n_out = _n_outputs(probe)
        check_param("output", output, [Interval(
            "int", 0, n_out, closed="left", error=ParameterIndexError, reason="out of range",
            desc=f"an output index in [0, {n_out}) (the probe has {n_out} output(s))",
        )])  # fmt: skip
        kind = _probe_kind(probe)
        if kind == "linear":
            coef = _to_numpy(probe.coef_).reshape(n_out, -1)
            intercept = _to_numpy(probe.intercept_).reshape(-1)
            return cls(coef[output], float(intercept[output]), None, None, "linear")
        Q = _to_numpy(probe.quadratic_).reshape(n_out, *_to_numpy(probe.quadratic_).shape[-2:])
        w = _to_numpy(probe.linear_).reshape(n_out, -1)
        b = _to_numpy(probe.intercept_).reshape(-1)
        centre = _to_numpy(probe.centre_)
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
        monitors, _ = _sklearn_monitors(model)
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
        X = _check_rows(H, self.n_features, "this monitor")
        return _evaluate(X, [self])[:, 0]

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


def _n_outputs(probe: Any) -> int:
    try:
        if _probe_kind(probe) == "linear":
            coef = _to_numpy(probe.coef_)
        else:
            coef = _to_numpy(probe.linear_)
    except (AttributeError, ValueError) as exc:  # NotFittedError is both
        raise ValueError(
            f"{type(probe).__name__} is not fitted; fit it before adding it to a bank ({exc})."
        ) from None
    return 1 if coef.ndim == 1 else coef.shape[0]


def _output_labels(probe: Any, n_out: int) -> list[str]:
    classes = getattr(probe, "classes_", None) if hasattr(probe, "predict_proba") else None
    if classes is not None and len(classes) == n_out:
        return [str(c) for c in classes]
    return [str(j) for j in range(n_out)]


# ---------------------------------------------------------------------------------- sklearn
def _is_sklearn(model: Any) -> bool:
    """A scikit-learn estimator (by its class's module; the library's own probes are not)."""
    return type(model).__module__.split(".")[0] == "sklearn"


def _sklearn_steps(model: Any) -> list:
    """The pipeline's steps in order, nested pipelines flattened, no-op steps dropped."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(model, Pipeline):
        out = []
        for _, step in model.steps:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            if isinstance(step, FunctionTransformer) and step.func is None:
                continue  # the identity
            out += _sklearn_steps(step)
        return out
    return [model]


def _sklearn_fitted(step: Any) -> None:
    from sklearn.exceptions import NotFittedError as SkNotFitted
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(step)
    except SkNotFitted:
        raise ValueError(
            f"the {type(step).__name__} step is not fitted; fit the model before turning it "
            "into monitors."
        ) from None


def _affine_step(step: Any) -> Optional[tuple]:
    """(G (p_out, p_in), offset (p_out,)) with step.transform(x) = G x + offset, or None
    when the step is not affine."""
    from sklearn.decomposition import PCA, TruncatedSVD
    from sklearn.feature_selection import SelectorMixin
    from sklearn.preprocessing import (
        MaxAbsScaler,
        MinMaxScaler,
        PolynomialFeatures,
        RobustScaler,
        StandardScaler,
    )

    def diag(scale, shift):
        return np.diag(scale), shift

    if isinstance(step, StandardScaler):
        p = int(step.n_features_in_)
        mean = _to_numpy(step.mean_) if step.with_mean and step.mean_ is not None else np.zeros(p)
        sc = _to_numpy(step.scale_) if step.with_std and step.scale_ is not None else np.ones(p)
        return diag(1.0 / sc, -mean / sc)
    if isinstance(step, RobustScaler):
        p = int(step.n_features_in_)
        centre = _to_numpy(step.center_) if step.center_ is not None else np.zeros(p)
        sc = _to_numpy(step.scale_) if step.scale_ is not None else np.ones(p)
        return diag(1.0 / sc, -centre / sc)
    if isinstance(step, MinMaxScaler):
        if step.clip:
            return None
        return diag(_to_numpy(step.scale_), _to_numpy(step.min_))
    if isinstance(step, MaxAbsScaler):
        return diag(1.0 / _to_numpy(step.scale_), np.zeros(int(step.n_features_in_)))
    if isinstance(step, PCA):
        G = _to_numpy(step.components_)
        if step.whiten:
            G = G / np.sqrt(_to_numpy(step.explained_variance_))[:, None]
        return G, -G @ _to_numpy(step.mean_)
    if isinstance(step, TruncatedSVD):
        G = _to_numpy(step.components_)
        return G, np.zeros(G.shape[0])
    if isinstance(step, SelectorMixin):
        keep = np.asarray(step.get_support(indices=True))
        G = np.zeros((keep.size, int(step.n_features_in_)))
        G[np.arange(keep.size), keep] = 1.0
        return G, np.zeros(keep.size)
    if isinstance(step, PolynomialFeatures) and int(np.max(step.powers_.sum(axis=1))) <= 1:
        powers = np.asarray(step.powers_)
        G = powers.astype(np.float64)
        return G, (powers.sum(axis=1) == 0).astype(np.float64)
    return None


def _linear_head(model: Any) -> tuple[np.ndarray, np.ndarray, list, str]:
    """(W (k, p), b (k,), output labels, task) of the final estimator: its score (decision
    function or prediction) is X @ W.T + b."""
    from sklearn.base import is_classifier
    from sklearn.linear_model import PassiveAggressiveRegressor, SGDRegressor
    from sklearn.svm import SVC, SVR, NuSVC, NuSVR

    try:
        from sklearn.linear_model._base import LinearClassifierMixin, LinearModel
    except ImportError:  # pragma: no cover - private location moved
        LinearClassifierMixin = LinearModel = ()
    name = type(model).__name__
    linear_svm = isinstance(model, (SVC, NuSVC, SVR, NuSVR)) and model.kernel == "linear"
    classifier = is_classifier(model)
    if classifier:
        ok = (LinearClassifierMixin and isinstance(model, LinearClassifierMixin)) or linear_svm
    else:
        ok = (
            (LinearModel and isinstance(model, LinearModel))
            or isinstance(model, (SGDRegressor, PassiveAggressiveRegressor))
            or linear_svm
        )
    if not ok:
        raise TypeError(
            f"{name} is not a linear model whose score is X @ coef_.T + intercept_; "
            "supported final steps are scikit-learn's linear classifiers and regressors "
            "(LogisticRegression, LinearSVC, RidgeClassifier, SGDClassifier, "
            "LinearDiscriminantAnalysis, Ridge, LinearRegression, Lasso, SGDRegressor, "
            "LinearSVR, SVC/SVR with kernel='linear', ...)."
        )
    _sklearn_fitted(model)
    W = _to_numpy(model.coef_)
    W = W.reshape(1, -1) if W.ndim == 1 else W
    b = np.broadcast_to(_to_numpy(model.intercept_).reshape(-1), (W.shape[0],)).copy()
    if not classifier:
        return W, b, [str(j) for j in range(W.shape[0])], "regressor"
    classes = list(model.classes_)
    if linear_svm and len(classes) > 2:
        raise TypeError(
            f"{name} with {len(classes)} classes scores pairs of classes (one-vs-one); only "
            "one score per class (one-vs-rest or multinomial) becomes monitors (LinearSVC "
            "gives one-vs-rest)."
        )
    if len(classes) == 2 and W.shape[0] == 1:
        return W, b, [str(classes[1])], "classifier"
    if W.shape[0] == len(classes):
        return W, b, [str(c) for c in classes], "classifier"
    raise TypeError(
        f"{name} with {len(classes)} classes has {W.shape[0]} coefficient rows (one-vs-one); "
        "only one score per class (one-vs-rest or multinomial) becomes monitors."
    )


def _sklearn_monitors(model: Any) -> tuple[list, list]:
    """(monitors, output labels) of a fitted scikit-learn model or pipeline."""
    from sklearn.preprocessing import PolynomialFeatures

    steps = _sklearn_steps(model)
    *transforms, head = steps
    W, b, labels, task = _linear_head(head)
    for step in transforms:
        _sklearn_fitted(step)
    quad = [i for i, st in enumerate(transforms) if isinstance(st, PolynomialFeatures)
            and int(np.max(st.powers_.sum(axis=1))) > 1]  # fmt: skip
    if len(quad) > 1 or any(
        int(np.max(transforms[i].powers_.sum(axis=1))) > 2 for i in quad
    ):
        raise TypeError(
            "a monitor is a polynomial of degree <= 2: the pipeline may hold one "
            "PolynomialFeatures of degree <= 2 (got "
            + ", ".join(f"degree {int(np.max(transforms[i].powers_.sum(axis=1)))}" for i in quad)
            + ")."
        )
    cut = quad[0] if quad else len(transforms)
    affine = {}
    for i, step in enumerate(transforms):
        if i == cut and quad:
            continue
        aff = _affine_step(step)
        if aff is None:
            raise TypeError(
                f"the pipeline step {type(step).__name__} is not an affine map (supported: "
                "StandardScaler, PCA, TruncatedSVD, MinMaxScaler(clip=False), MaxAbsScaler, "
                "RobustScaler, feature selectors, FunctionTransformer(None), "
                "PolynomialFeatures of degree <= 2, 'passthrough')."
            )
        affine[i] = aff
    # steps after the polynomial features: pulled back into the head's coefficients
    for i in range(len(transforms) - 1, cut, -1):
        G, o = affine[i]
        b = b + W @ o
        W = W @ G
    # steps before them: one affine map u = G (h - centre) + offset of the raw input
    if cut > 0:
        d = affine[0][0].shape[1]
    elif quad:
        d = int(np.asarray(transforms[cut].powers_).shape[1])
    else:
        d = W.shape[1]
    G_pre, o_pre = np.eye(d), np.zeros(d)
    for i in range(cut):
        G, o = affine[i]
        G_pre, o_pre = G @ G_pre, G @ o_pre + o
    centre = _natural_centre(steps[0], d)
    offset = o_pre + G_pre @ centre
    monitors = []
    for k in range(W.shape[0]):
        if quad:
            powers = np.asarray(transforms[cut].powers_)
            w_u, c_u, Q_u = _polynomial_coefficients(W[k], powers)
            inner = PolynomialMonitor(w_u, b[k] + c_u, Q_u)
            kind = "quadratic"
        else:
            inner = PolynomialMonitor(W[k], b[k], None)
            kind = "linear"
        m = inner.compose_affine(G_pre, offset, centre)
        info = {"source": "sklearn", "model": type(model).__name__, "task": task}
        if task == "classifier":
            info["threshold"] = 0.0
        monitors.append(PolynomialMonitor(m.linear, m.intercept, m.quadratic, m.centre, kind,
                                          info))  # fmt: skip
    return monitors, labels


def _natural_centre(first: Any, d: int) -> np.ndarray:
    """A point to expand the polynomial about: the first step's data mean when it has one
    (keeps the coefficients well conditioned), else the origin."""
    for attr in ("mean_", "center_"):
        value = getattr(first, attr, None)
        if value is not None and np.shape(value) == (d,):
            return _to_numpy(value).copy()
    return np.zeros(d)


def _polynomial_coefficients(w: np.ndarray, powers: np.ndarray) -> tuple:
    """(linear (p,), constant, Q (p, p)) of sum_j w_j prod_i u_i^powers[j, i] (degree <= 2)."""
    p = powers.shape[1]
    lin, Q, const = np.zeros(p), np.zeros((p, p)), 0.0
    for coef, pw in zip(w, powers):
        deg = int(pw.sum())
        idx = np.flatnonzero(pw)
        if deg == 0:
            const += float(coef)
        elif deg == 1:
            lin[idx[0]] += coef
        elif idx.size == 1:  # u_i^2
            Q[idx[0], idx[0]] += coef
        else:  # u_i u_l
            i, j = idx
            Q[i, j] += 0.5 * coef
            Q[j, i] += 0.5 * coef
    return lin, const, Q


def _evaluate(X: Any, monitors: list[PolynomialMonitor]) -> Any:
    """(n, m) float64 scores, in row blocks so no n x d float64 temporary is larger than
    needed: numpy for numpy X, a tensor on X's device for a torch X (the coefficients are
    copied there once, see `PolynomialMonitor._on`). The degree-1 monitors are evaluated
    together with one matrix product."""
    xp = ops_of(X)
    if xp.is_torch:
        params = [m._on(X.device) for m in monitors]
    else:
        params = [(m.linear, m.centre, m.intercept, m.quadratic) for m in monitors]
    out = xp.empty((X.shape[0], len(monitors)))
    lin = [j for j, m in enumerate(monitors) if m.quadratic is None]
    quad = [j for j, m in enumerate(monitors) if m.quadratic is not None]
    if lin:
        W = xp.stack([params[j][0] for j in lin], axis=1)
        const = xp.asarray([params[j][2] - float(params[j][0] @ params[j][1]) for j in lin])
    for rows, Xb in float64_row_blocks(X, _BLOCK_ENTRIES):
        if lin:
            out[rows, lin] = Xb @ W + const
        for j in quad:
            w, c, b, Q = params[j]
            U = Xb - c
            out[rows, j] = U @ w + b + ((U @ Q) * U).sum(1)
    return out


class ProbeBank(Mapping):
    """A named, ordered collection of monitors on one model / layer.

    Parameters
    ----------
    monitors : mapping name -> fitted probe or PolynomialMonitor (optional; see `add`).
    metadata : free-form JSON-serialisable dict saved with the bank (model name, layer, ...).

    A bank is a read-only mapping name -> PolynomialMonitor; `add` appends. All monitors must
    read hidden states of the same width (`n_features_in_`).

    Examples
    --------
    >>> bank = ProbeBank({"toxicity": tox_probe, "deception": dec_probe})  # doctest: +SKIP
    >>> scores = bank.decision_function(H)   # (n, 2), columns in bank.names order
    """

    def __init__(
        self, monitors: Optional[Mapping[str, Any]] = None, *, metadata: Optional[dict] = None
    ) -> None:
        check_param("metadata", metadata, [InstanceOf(Mapping, "a dict"), None],
                    owner="ProbeBank")  # fmt: skip
        self._monitors: dict[str, PolynomialMonitor] = {}
        self.metadata: dict = dict(metadata or {})
        self.report: Any = None  # a CoverageReport when the bank was made by `transfer`
        if monitors is not None:
            if not isinstance(monitors, Mapping):
                raise ParameterTypeError(
                    "monitors must be a mapping name -> fitted probe or PolynomialMonitor, got "
                    f"{type(monitors).__name__}."
                )
            for name, probe in monitors.items():
                self.add(name, probe)

    # ------------------------------------------------------------------ building
    def add(self, name: str, probe: Any, *, output: Optional[int] = None) -> ProbeBank:
        """Add a fitted probe (or a PolynomialMonitor) under `name`.

        A probe with several outputs (multi-class classifier, multi-target regressor) adds one
        monitor per output, named ``"name[label]"`` (label = class or output index), unless
        `output` picks one. Nothing is added if any check fails.
        """
        if not isinstance(name, str) or not name:
            raise ParameterTypeError(f"monitor names must be non-empty strings, got {name!r}.")
        check_param("output", output, [Interval("int", 0, None), None], owner="ProbeBank.add")
        if isinstance(probe, PolynomialMonitor):
            if output not in (None, 0):
                raise ParameterError(
                    f"a PolynomialMonitor has a single output; drop output= (got {output!r})."
                )
            new = {name: probe}
        elif _is_sklearn(probe):
            monitors, labels = _sklearn_monitors(probe)
            if output is not None:
                if output >= len(monitors):
                    raise ParameterIndexError(
                        f"output={output} is out of range: the model has {len(monitors)} "
                        "output(s)."
                    )
                new = {name: monitors[output]}
            elif len(monitors) == 1:
                new = {name: monitors[0]}
            else:
                new = {f"{name}[{lab}]": m for lab, m in zip(labels, monitors)}
        else:
            n_out = _n_outputs(probe)
            if output is not None:
                new = {name: PolynomialMonitor.from_probe(probe, output)}
            elif n_out == 1:
                new = {name: PolynomialMonitor.from_probe(probe, 0)}
            else:
                labels = _output_labels(probe, n_out)
                new = {f"{name}[{lab}]": PolynomialMonitor.from_probe(probe, j)
                       for j, lab in enumerate(labels)}  # fmt: skip
        for key, monitor in new.items():
            if key in self._monitors:
                raise ValueError(f"the bank already has a monitor named {key!r}.")
            if self._monitors and monitor.n_features != self.n_features_in_:
                raise ValueError(
                    f"monitor {key!r} reads {monitor.n_features}-dimensional hidden states but "
                    f"the bank's monitors read {self.n_features_in_}; a bank holds monitors of "
                    "one model/layer."
                )
        self._monitors.update(new)
        return self

    @classmethod
    def from_sklearn(
        cls, models: Mapping[str, Any], *, metadata: Optional[dict] = None
    ) -> ProbeBank:
        """A bank of fitted scikit-learn models: linear models, or pipelines of
        StandardScaler / PCA (any affine step, see `PolynomialMonitor.from_sklearn`) /
        PolynomialFeatures (degree <= 2) ending in a linear model.

        models : mapping name -> fitted model. A classifier contributes its decision_function
            (binary: one monitor, positive = classes_[1]; K classes: K monitors named
            ``"name[class]"``); a regressor its prediction (one monitor per target). Each
            monitor equals the model's own score to round-off.
        """
        if not isinstance(models, Mapping):
            raise ParameterTypeError(
                "models must be a mapping name -> fitted scikit-learn model, got "
                f"{type(models).__name__}."
            )
        for name, model in models.items():
            if not _is_sklearn(model):
                raise ParameterTypeError(
                    f"models[{name!r}] is not a scikit-learn estimator (got "
                    f"{type(model).__name__}); add the library's own probes with ProbeBank(...)."
                )
        return cls(models, metadata=metadata)

    def subset(self, names: Any) -> ProbeBank:
        """A new bank with the monitors `names` (in that order)."""
        names = [names] if isinstance(names, str) else list(names)
        missing = [n for n in names if n not in self._monitors]
        if missing:
            raise KeyError(f"no monitor(s) named {missing}; the bank has {self.names}.")
        return ProbeBank({n: self._monitors[n] for n in names}, metadata=dict(self.metadata))

    # ------------------------------------------------------------------ mapping protocol
    def __getitem__(self, name: str) -> PolynomialMonitor:
        try:
            return self._monitors[name]
        except KeyError:
            raise KeyError(f"no monitor named {name!r}; the bank has {self.names}.") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._monitors)

    def __len__(self) -> int:
        return len(self._monitors)

    @property
    def names(self) -> list[str]:
        return list(self._monitors)

    @property
    def n_features_in_(self) -> int:
        if not self._monitors:
            raise EmptyBankError("the bank is empty; add monitors first.")
        return next(iter(self._monitors.values())).n_features

    # ------------------------------------------------------------------ evaluation
    def decision_function(self, H: Any, names: Any = None) -> np.ndarray:
        """Scores (n, m) of every monitor (or of `names`), columns in `names` order.

        float64; for a torch tensor H the scores are computed on H's device and returned as a
        tensor there (the coefficients are copied to the device once and cached)."""
        if not self._monitors:
            raise EmptyBankError("the bank is empty; add monitors first.")
        if names is None or isinstance(names, str):
            picked = self.names if names is None else [names]
        else:
            try:
                picked = None if isinstance(names, Mapping) else list(names)
            except TypeError:
                picked = None
        if picked is None or not all(isinstance(n, str) for n in picked):
            raise ParameterTypeError(
                f"names must be a monitor name, a sequence of names or None, got {shown(names)}."
            )
        monitors = [self[n] for n in picked]
        X = _check_rows(H, self.n_features_in_, "this bank")
        return _evaluate(X, monitors)

    def covectors(self) -> np.ndarray:
        """(d, m) all monitors' covectors side by side (see PolynomialMonitor.covectors)."""
        return np.column_stack([m.covectors() for m in self._monitors.values()])

    # ------------------------------------------------------------------ persistence
    def _to_arrays(self, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"names": self.names, "kinds": [], "has_quadratic": [], "intercepts": [],
                "infos": [], "metadata": self.metadata}  # fmt: skip
        arrays: dict[str, np.ndarray] = {}
        for j, monitor in enumerate(self._monitors.values()):
            meta["kinds"].append(monitor.kind)
            meta["has_quadratic"].append(monitor.quadratic is not None)
            meta["intercepts"].append(monitor.intercept)
            meta["infos"].append(monitor.info)
            arrays[f"{prefix}linear_{j}"] = monitor.linear
            arrays[f"{prefix}centre_{j}"] = monitor.centre
            if monitor.quadratic is not None:
                arrays[f"{prefix}quadratic_{j}"] = monitor.quadratic
        return meta, arrays

    # The bank's part of a bundle's metadata: parallel lists, one entry per monitor.
    _META_SCHEMA = {
        "names": partial(json_list, item=partial(json_str, non_empty=True)),
        "kinds": partial(json_list, item=partial(json_str, choices=_KINDS)),
        "has_quadratic": partial(json_list, item=json_bool),
        "intercepts": partial(json_list, item=json_float),
        "infos": partial(json_list, item=lambda v, w, f: None if v is None else json_dict(v, w, f)),
        "metadata": json_dict,
        "report": lambda v, w, f: None if v is None else json_dict(v, w, f),
    }

    @classmethod
    def _read_meta(cls, meta: Any, where: str, field: str, allow_report: bool) -> dict:
        """The checked bank metadata (lists of equal length, unique names)."""
        optional = ("infos", "metadata", "report") if allow_report else ("infos", "metadata")
        schema = {k: v for k, v in cls._META_SCHEMA.items() if allow_report or k != "report"}
        meta = json_fields(meta, where, field, schema, optional)
        lists = ("names", "kinds", "has_quadratic", "intercepts", "infos")
        meta.setdefault("infos", [None] * len(meta["names"]))
        if len({len(meta[key]) for key in lists}) != 1:
            fields = ", ".join(repr(f"{field}.{key}") for key in lists)
            raise BundleError(f"{where}: the fields {fields} have different lengths.")
        seen: set = set()
        for j, name in enumerate(meta["names"]):
            if name in seen:
                raise bad_field(where, f"{field}.names[{j}]", f"the name {name[:80]!r} repeats")
            seen.add(name)
        return meta

    @staticmethod
    def _member_names(meta: dict, prefix: str = "") -> list[str]:
        """The array members a bank with this (checked) metadata is stored in."""
        names = []
        for j, has_q in enumerate(meta["has_quadratic"]):
            names += [f"{prefix}linear_{j}", f"{prefix}centre_{j}"]
            names += [f"{prefix}quadratic_{j}"] if has_q else []
        return names

    @staticmethod
    def _check_arrays(meta: dict, npz: NpzMembers, prefix: str = "") -> Optional[int]:
        """Compare the monitors' array headers with the schema (nothing decompressed); returns
        the width d (None for an empty bank)."""
        if not meta["names"]:
            return None
        (d,) = npz.shape(f"{prefix}linear_0", 1)
        if d < 1:
            raise npz.error(f"{prefix}linear_0", "a monitor reads at least one feature")
        for key in ProbeBank._member_names(meta, prefix):
            npz.check(key, (d, d) if "quadratic_" in key else (d,))
        return d

    @classmethod
    def _read_arrays(cls, meta: dict, npz: NpzMembers, where: str, prefix: str = "") -> ProbeBank:
        """The bank from checked metadata and arrays (call `_check_arrays` first)."""
        d = cls._check_arrays(meta, npz, prefix)
        bank = cls(metadata=dict(meta.get("metadata", {})))
        for j, name in enumerate(meta["names"]):
            key = f"{prefix}quadratic_{j}"
            Q = npz.read(key, (d, d)) if meta["has_quadratic"][j] else None
            try:
                monitor = PolynomialMonitor(
                    npz.read(f"{prefix}linear_{j}", (d,)), meta["intercepts"][j], Q,
                    npz.read(f"{prefix}centre_{j}", (d,)), meta["kinds"][j],
                    dict(meta["infos"][j] or {}),
                )  # fmt: skip
                bank.add(name, monitor)
            except (ValueError, TypeError) as exc:
                if isinstance(exc, BundleError):
                    raise
                raise BundleError(f"{where}: monitor {name!r} is invalid ({exc}).") from None
        return bank

    def save(self, path: PathLike) -> None:
        """Write the bank to directory `path` (bank.json + bank.npz; no pickle)."""
        meta, arrays = self._to_arrays()
        if self.report is not None:
            meta["report"] = self.report.to_dict()
        write_bundle(path, "bank", meta, arrays)

    @classmethod
    def load(cls, path: PathLike) -> ProbeBank:
        """Read a bank written by `save` (a transferred bank keeps its coverage report).

        The files are untrusted input held to a schema (see `shallowprobes.io`). Raises
        FileNotFoundError when there is no bank at `path`, and `BundleError` (a ValueError)
        naming the file and the field for a corrupted, truncated or inconsistent bundle.
        """
        with read_bundle(path, "bank") as bundle:
            meta = cls._read_meta(bundle.meta, bundle.where, "meta", allow_report=True)
            bundle.arrays.check_names(cls._member_names(meta))
            bank = cls._read_arrays(meta, bundle.arrays, bundle.where)
        if meta.get("report") is not None:
            from .transfer import CoverageReport

            bank.report = CoverageReport.from_dict(meta["report"], where=bundle.where,
                                                   field="meta.report")  # fmt: skip
        return bank

    def __repr__(self) -> str:
        if not self._monitors:
            return "ProbeBank(empty)"
        kinds = {k: sum(m.kind == k for m in self._monitors.values()) for k in _KINDS}
        mix = ", ".join(f"{v} {k}" for k, v in kinds.items() if v)
        return f"ProbeBank({len(self)} monitors on d={self.n_features_in_}: {mix})"


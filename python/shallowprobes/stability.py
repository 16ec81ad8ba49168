"""Coordinate-stability checks: does a fitted probe depend on the basis of the hidden states?

Hidden states are only defined up to an invertible affine change of coordinates ``h -> T h + v``
(docs/design.md §1.1): at a network's final readout, logits ``W h + b`` are unchanged when ``(h,
W, b)`` become ``(T h + v, W T^-1, b - W T^-1 v)``. A probe that is meant to reveal what is *in*
a representation should therefore give the same held-out predictions whichever coordinates it is
fitted in. Whether it does depends on its penalty (§2): plain ridge is invariant only under
orthogonal maps and shifts, ridge on z-scores also under diagonal scalings and permutations, and
ridge on whitened features (or in the readout metric) under every invertible affine map.

This module measures it empirically for any scikit-learn-style estimator:

- group actions (:class:`Euclidean`, :class:`DiagonalAffine`, :class:`Affine`,
  :class:`ReadoutAffine`) draw random, well-conditioned elements ``g = (T, v)``
  (:class:`GroupElement`; user-supplied ones via :func:`from_matrix`);
- :func:`stability_report` fits the estimator on the original training rows and, for each
  draw ``g``, on ``g(X_train)``, and compares the held-out outputs ``f_g(g(x))`` with ``f(x)``;
- :func:`compare_stability` and :func:`format_reports` do the same for several estimators.

**What "stable" means.** For each draw the *relative change* of the held-out outputs
(decision values when the estimator has ``decision_function``) is
``max_i |f_g(g x_i) - f(x_i)| / max_i |f(x_i)|``. A probe that is exactly invariant under the
group shows only float64 round-off, typically 1e-14 .. 1e-11 (larger when ``cond(T)`` is large
or the fit involves an ill-conditioned solve); :meth:`StabilityReport.is_stable` uses a
default tolerance of 1e-6, far above round-off and far below any real dependence on the
coordinates. Estimators fitted by an iterative optimiser (logistic regression, MLPs) are at
best invariant up to the optimiser's tolerance, and only when their iterations are
equivariant too.

Only numpy is needed at import; scikit-learn (``clone``) and pandas
(:meth:`StabilityReport.to_frame`) are used when available.
"""

from __future__ import annotations

import copy
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from ._params import (
    BOOL,
    RANDOM_STATE,
    Interval,
    NonFiniteParameterError,
    ParameterError,
    ParameterTypeError,
    check_param,
    shown,
)

__all__ = [
    "DEFAULT_TOL",
    "GroupAction",
    "GroupElement",
    "Euclidean",
    "DiagonalAffine",
    "Affine",
    "ReadoutAffine",
    "from_matrix",
    "StabilityReport",
    "stability_report",
    "compare_stability",
    "format_reports",
]

DEFAULT_TOL = 1e-6
"""Default tolerance of :meth:`StabilityReport.is_stable` (float64 round-off is ~1e-12)."""

_TINY = np.finfo(np.float64).tiny
_EPS = np.finfo(np.float64).eps

RandomLike = Union[None, int, np.integer, np.random.Generator, np.random.SeedSequence]


# --------------------------------------------------------------------------------------------
# Group elements
# --------------------------------------------------------------------------------------------


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False, repr=False)
class GroupElement:
    """An invertible affine map ``h -> T h + v`` of d-dimensional hidden states.

    Rows of a data matrix are transformed as ``X @ T.T + v``. Together with the readout
    transformation ``W -> W T^-1``, ``b -> b - W T^-1 v`` it leaves logits ``W h + b``
    unchanged (docs/design.md §1.1).

    Parameters
    ----------
    matrix : array-like of shape (d, d)
        The invertible matrix ``T``. Stored as a read-only float64 copy.
    offset : array-like of shape (d,)
        The shift ``v``. Stored as a read-only float64 copy.

    Attributes
    ----------
    d : int
        The dimension.
    condition_number : float
        ``cond(T)`` in the 2-norm (ratio of the largest to the smallest singular value).

    Raises
    ------
    ValueError
        If ``T`` is not a finite square matrix, ``v`` does not have shape (d,) or is not
        finite, or ``T`` is singular to working precision (condition number at least
        ``1 / (d * eps)``, the rank tolerance of :func:`numpy.linalg.matrix_rank`); the
        message states the condition number.
    """

    matrix: np.ndarray
    offset: np.ndarray
    condition_number: float = field(init=False)
    _inverse_matrix: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        try:
            T = np.asarray(self.matrix, dtype=np.float64)
            v = np.asarray(self.offset, dtype=np.float64)
        except (TypeError, ValueError):
            raise ParameterTypeError("matrix and offset must be numeric arrays.") from None
        if T.ndim != 2 or T.shape[0] != T.shape[1] or T.shape[0] == 0:
            raise ParameterError(
                f"matrix T must be a non-empty square 2-D array, got shape {T.shape}."
            )
        d = T.shape[0]
        if v.shape != (d,):
            raise ParameterError(
                f"offset v must have shape ({d},) to match T, got shape {v.shape}."
            )
        if not (np.isfinite(T).all() and np.isfinite(v).all()):
            raise NonFiniteParameterError("matrix T and offset v must be finite.")
        sv = np.linalg.svd(T, compute_uv=False)
        cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else math.inf
        if not (sv[-1] > sv[0] * d * _EPS):
            raise ParameterError(
                f"matrix T is singular to working precision (condition number {cond:.3e}); "
                "a group element must be invertible."
            )
        object.__setattr__(self, "matrix", _readonly(T))
        object.__setattr__(self, "offset", _readonly(v))
        object.__setattr__(self, "condition_number", cond)
        object.__setattr__(self, "_inverse_matrix", _readonly(np.linalg.inv(T)))

    @property
    def d(self) -> int:
        """The dimension d of the hidden states."""
        return int(self.matrix.shape[0])

    def __repr__(self) -> str:
        return f"GroupElement(d={self.d}, condition_number={self.condition_number:.4g})"

    def _check_width(self, A: Any, what: str) -> np.ndarray:
        arr = np.asarray(A, dtype=np.float64)
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.d:
            raise ValueError(
                f"{what} must have {self.d} columns (the dimension of the group element), "
                f"got shape {arr.shape}."
            )
        return arr

    def apply(self, X: Any) -> np.ndarray:
        """Transform hidden states: ``X @ T.T + v``.

        Parameters
        ----------
        X : array-like of shape (n, d) or (d,)
            Hidden states as rows (float32 or float64).

        Returns
        -------
        ndarray of float64, the same shape as ``X``.
        """
        X = self._check_width(X, "X")
        return X @ self.matrix.T + self.offset

    def inverse(self) -> GroupElement:
        """The inverse element ``h -> T^-1 h - T^-1 v``."""
        Ti = self._inverse_matrix
        return GroupElement(Ti, -(Ti @ self.offset))

    def apply_readout(self, W: Any) -> np.ndarray:
        """Transform a readout matrix with the hidden states: ``W @ T^-1``.

        Parameters
        ----------
        W : array-like of shape (k, d) or (d,)
            Readout weights acting on the hidden states (logits ``W h + b``).

        Returns
        -------
        ndarray of float64, the same shape as ``W``.
        """
        W = self._check_width(W, "W")
        return W @ self._inverse_matrix

    def readout_bias(self, W: Any, b: Any) -> np.ndarray:
        """Transform the readout bias: ``b - W @ T^-1 @ v``.

        With ``h' = T h + v``, ``W' = apply_readout(W)`` and ``b' = readout_bias(W, b)``,
        ``W' h' + b' = W h + b``.

        Parameters
        ----------
        W : array-like of shape (k, d) or (d,)
            The *original* readout weights.
        b : array-like of shape (k,) or scalar
            The original readout bias.
        """
        W = self._check_width(W, "W")
        return np.asarray(b, dtype=np.float64) - W @ (self._inverse_matrix @ self.offset)

    def compose(self, other: GroupElement) -> GroupElement:
        """The element ``self ∘ other``: ``h -> T_s (T_o h + v_o) + v_s``."""
        if other.d != self.d:
            raise ValueError(f"cannot compose elements of dimension {self.d} and {other.d}.")
        return GroupElement(self.matrix @ other.matrix, self.matrix @ other.offset + self.offset)


def from_matrix(T: Any, v: Any = None) -> GroupElement:
    """A user-supplied group element ``h -> T h + v`` (``v`` defaults to 0).

    Raises
    ------
    ValueError
        If ``T`` is not square, is singular (the message gives its condition number) or ``v``
        has the wrong shape.
    """
    try:
        T = np.asarray(T, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterTypeError(f"matrix T must be a numeric array, got {shown(T)}.") from None
    if v is None:
        if T.ndim != 2 or T.shape[0] != T.shape[1]:
            raise ParameterError(f"matrix T must be a square 2-D array, got shape {T.shape}.")
        v = np.zeros(T.shape[0])
    return GroupElement(T, v)


# --------------------------------------------------------------------------------------------
# Group actions
# --------------------------------------------------------------------------------------------


def _haar_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    """Haar-distributed d x d orthogonal matrix (QR of a Gaussian matrix with sign fix)."""
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    signs = np.sign(np.diag(R))
    signs[signs == 0] = 1.0
    return Q * signs


def _log_uniform(rng: np.random.Generator, condition: float, d: int) -> np.ndarray:
    """d values log-uniform in [condition^-1/2, condition^1/2] (ratio of any two <= condition)."""
    half = 0.5 * math.log(condition)
    return np.exp(rng.uniform(-half, half, size=d))


def _check_positive_real(value: Any, name: str, minimum: float, owner: Any = None) -> float:
    """A finite real number >= minimum (ParameterError naming `name` otherwise)."""
    check_param(name, value, [Interval("real", minimum, None)], owner=owner)
    return float(value)


def _check_dim(d: Any) -> int:
    check_param("d", d, [Interval("int", 1, None, desc="a positive integer")])
    return int(d)


_TOL = [Interval("real", 0.0, None)]


class GroupAction:
    """A family of coordinate changes ``h -> T h + v`` to test a probe against.

    Subclasses implement :meth:`_sample_matrix`; the shift ``v ~ N(0, shift_scale^2 I)`` is
    common to all (hidden units often carry large offsets).

    Attributes
    ----------
    name : str
        Short name of the group (the class name).
    condition : float
        Upper bound on ``cond(T)`` of the sampled elements (1 for orthogonal groups).
    shift_scale : float
        Standard deviation of each coordinate of the shift ``v`` (0 for no shift).
    transforms_readout : bool
        True when the readout matrix ``W`` of the network is transformed together with the
        hidden states (``W -> W T^-1``), as for :class:`ReadoutAffine`.
    """

    transforms_readout: bool = False

    def __init__(self, *, condition: float = 10.0, shift_scale: float = 5.0) -> None:
        owner = type(self).__name__
        self.condition = _check_positive_real(condition, "condition", 1.0, owner)
        self.shift_scale = _check_positive_real(shift_scale, "shift_scale", 0.0, owner)

    @property
    def name(self) -> str:
        return type(self).__name__

    def _params(self) -> dict:
        return {"condition": self.condition, "shift_scale": self.shift_scale}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self._params().items())
        return f"{self.name}({args})"

    def _sample_matrix(self, rng: np.random.Generator, d: int) -> np.ndarray:
        raise NotImplementedError

    def sample(self, d: int, rng_or_seed: RandomLike = None) -> GroupElement:
        """Draw a random element of dimension ``d``.

        Parameters
        ----------
        d : int
            Dimension of the hidden states.
        rng_or_seed : int, numpy.random.Generator, SeedSequence or None
            Source of randomness (passed to :func:`numpy.random.default_rng`); an integer
            seed makes the draw deterministic.

        Returns
        -------
        GroupElement
        """
        d = _check_dim(d)
        check_param("rng_or_seed", rng_or_seed, RANDOM_STATE, owner=f"{self.name}.sample")
        rng = np.random.default_rng(rng_or_seed)
        T = self._sample_matrix(rng, d)
        v = rng.normal(scale=self.shift_scale, size=d) if self.shift_scale > 0 else np.zeros(d)
        return GroupElement(T, v)


class Euclidean(GroupAction):
    """Rigid motions: ``T`` Haar-random orthogonal, ``v ~ N(0, shift_scale^2 I)``.

    Plain (centred) ridge regression is exactly invariant under this group: the penalty
    ``||w||^2`` and the unpenalised intercept do not see rotations or shifts. ``condition``
    is always 1.
    """

    def __init__(self, shift_scale: float = 5.0) -> None:
        super().__init__(condition=1.0, shift_scale=shift_scale)

    def _params(self) -> dict:
        return {"shift_scale": self.shift_scale}

    def _sample_matrix(self, rng: np.random.Generator, d: int) -> np.ndarray:
        return _haar_orthogonal(rng, d)


class DiagonalAffine(GroupAction):
    """Per-unit rescaling (with sign flips), optional permutation of units, and a shift.

    ``T = P diag(s)`` with ``|s_j|`` log-uniform in ``[condition^-1/2, condition^1/2]``
    (so ``cond(T) <= condition``), random signs, and ``P`` a uniformly random permutation
    matrix (the identity when ``permute=False``). Ridge on per-coordinate z-scores
    (``metric="standardize"``, or ``StandardScaler`` in front of an L2-penalised model) is
    invariant under it: standardising turns ``T`` into the signed permutation ``P sign(s)``,
    an orthogonal map.
    """

    def __init__(
        self, condition: float = 10.0, permute: bool = True, shift_scale: float = 5.0
    ) -> None:
        super().__init__(condition=condition, shift_scale=shift_scale)
        check_param("permute", permute, BOOL, owner="DiagonalAffine")
        self.permute = bool(permute)

    def __repr__(self) -> str:
        return (
            f"DiagonalAffine(condition={self.condition:g}, permute={self.permute}, "
            f"shift_scale={self.shift_scale:g})"
        )

    def _sample_matrix(self, rng: np.random.Generator, d: int) -> np.ndarray:
        s = _log_uniform(rng, self.condition, d) * rng.choice(np.array([-1.0, 1.0]), size=d)
        T = np.diag(s)
        if self.permute:
            T = T[rng.permutation(d)]
        return T


class Affine(GroupAction):
    """General invertible affine maps with bounded condition number.

    ``T = U diag(s) V^T`` with ``U``, ``V`` Haar-random orthogonal and ``s`` log-uniform in
    ``[condition^-1/2, condition^1/2]``, so ``cond(T) <= condition`` exactly; plus a shift
    ``v ~ N(0, shift_scale^2 I)``. Only a probe whose penalty is measured in an
    affine-covariant geometry (``metric="whiten"``; or unpenalised least squares) is
    invariant under it; a fixed-alpha ridge or an L2-penalised logistic regression is not.
    """

    def _sample_matrix(self, rng: np.random.Generator, d: int) -> np.ndarray:
        U = _haar_orthogonal(rng, d)
        V = _haar_orthogonal(rng, d)
        s = _log_uniform(rng, self.condition, d)
        return (U * s) @ V.T


class ReadoutAffine(Affine):
    """The paper's exact symmetry: affine maps acting on hidden states *and* the readout.

    The elements are those of :class:`Affine`; the difference is that the network's readout
    matrix ``W`` is transformed with the hidden states (``W -> W T^-1``, so logits are
    unchanged). :func:`stability_report` then passes ``readout=element.apply_readout(W)`` to
    estimators that take a ``readout`` parameter (``metric="readout"``), whose penalty is
    measured in the metric ``(W^T W)^1/2`` and is therefore invariant under this action.
    """

    transforms_readout = True


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def _fmt(x: Optional[float], spec: str = ".2e") -> str:
    if x is None:
        return "n/a"
    return format(x, spec)


def _fmt_alpha(a: Any) -> str:
    if a is None:
        return "n/a"
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 0:
        return f"{float(arr):.4g}"
    return (
        "[" + ", ".join(f"{x:.3g}" for x in arr.ravel()[:4]) + (", ...]" if arr.size > 4 else "]")
    )


@dataclass
class StabilityReport:
    """How much an estimator's held-out outputs change under random coordinate changes.

    Produced by :func:`stability_report`. All "changes" are relative and dimensionless.

    Attributes
    ----------
    estimator : str
        Name of the estimator (class name, ``Pipeline(A, B)``, or the given name).
    group : str
        Name of the group action (e.g. ``"Affine"``).
    condition : float
        The group's bound on ``cond(T)`` (1 for :class:`Euclidean`).
    n_draws : int
        Number of random group elements.
    max_change : float
        Largest over the draws of the relative change
        ``max_i |f_g(g x_i) - f(x_i)| / max_i |f(x_i)|`` of the held-out outputs.
    median_change : float
        Median over the draws of the same quantity.
    per_draw_change : ndarray of shape (n_draws,)
        The relative change of each draw.
    label_change_rate : float or None
        Classifiers: the largest over the draws of the fraction of held-out rows whose
        predicted label differs from the reference fit's. None for regressors.
    alpha_reference : float, ndarray or None
        Regularisation chosen/used by the reference fit (``alpha_``, else ``C_``, ``alpha``,
        ``C`` of the estimator or the last pipeline step); None if the estimator has none.
    alpha_per_draw : list or None
        The same quantity for each draw.
    alpha_max_change : float or None
        ``max_g max |alpha_g - alpha_ref| / |alpha_ref|`` (absolute change if the reference
        is 0); None if unavailable.
    output : str
        Which outputs were compared: ``"decision_function"``, ``"predict_proba"`` (the
        positive-class column for binary problems) or ``"predict"``.
    typical_change : float
        Largest over the draws of ``median_i |f_g(g x_i) - f(x_i)| / std_i f(x_i)``: the
        change of a typical row relative to the spread of the outputs.
    per_draw_typical_change : ndarray of shape (n_draws,)
    per_draw_label_change : ndarray of shape (n_draws,) or None
    per_draw_condition : ndarray of shape (n_draws,)
        ``cond(T)`` of each drawn element.
    alpha_name : str or None
        Which attribute the regularisation was read from.
    readout_transformed : bool
        Whether a ``readout`` matrix was transformed with each draw and passed to the
        estimator (:class:`ReadoutAffine` with an estimator taking ``readout``).
    n_train, n_test : int
        Rows used for fitting and for the comparison.
    elements : list of GroupElement
        The drawn group elements (for reproducing a draw).
    """

    estimator: str
    group: str
    condition: float
    n_draws: int
    max_change: float
    median_change: float
    per_draw_change: np.ndarray
    label_change_rate: Optional[float]
    alpha_reference: Any
    alpha_per_draw: Optional[list]
    alpha_max_change: Optional[float]
    output: str = "decision_function"
    typical_change: float = float("nan")
    per_draw_typical_change: Optional[np.ndarray] = None
    per_draw_label_change: Optional[np.ndarray] = None
    per_draw_condition: Optional[np.ndarray] = None
    alpha_name: Optional[str] = None
    readout_transformed: bool = False
    n_train: int = 0
    n_test: int = 0
    elements: list = field(default_factory=list, repr=False)

    def is_stable(self, tol: float = DEFAULT_TOL) -> bool:
        """True if every draw changed the held-out outputs by at most ``tol`` (relative).

        Float64 round-off of an exactly invariant fit is ~1e-12; the default 1e-6 separates
        round-off from a genuine dependence on the coordinates.
        """
        check_param("tol", tol, _TOL, owner="StabilityReport.is_stable")
        return bool(np.isfinite(self.max_change) and self.max_change <= tol)

    def verdict(self, tol: float = DEFAULT_TOL) -> str:
        """``"stable (<= tol)"`` or ``"NOT stable"``."""
        return f"stable (<= {tol:g})" if self.is_stable(tol) else "NOT stable"

    def __str__(self) -> str:
        rows = [
            ("estimator", self.estimator),
            ("group", f"{self.group} (condition <= {self.condition:g})"),
            (
                "draws",
                f"{self.n_draws} (train rows {self.n_train}, test rows {self.n_test}, "
                f"output {self.output}"
                + (", readout transformed" if self.readout_transformed else "")
                + ")",
            ),
            (
                "relative change",
                f"max {_fmt(self.max_change)}, median {_fmt(self.median_change)} "
                f"(typical row / std: {_fmt(self.typical_change)})",
            ),
            (
                "label flips",
                "n/a (regressor)"
                if self.label_change_rate is None
                else f"{100.0 * self.label_change_rate:.2f}% of test rows (worst draw)",
            ),
            (
                "alpha",
                "n/a"
                if self.alpha_reference is None
                else f"{self.alpha_name} = {_fmt_alpha(self.alpha_reference)} (reference), "
                f"max relative change {_fmt(self.alpha_max_change)}",
            ),
            ("verdict", self.verdict()),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}} : {v}" for k, v in rows)

    def to_frame(self):
        """One row per draw as a :class:`pandas.DataFrame`.

        Columns: estimator, group, draw, condition_number, change, typical_change,
        label_change_rate, alpha.

        Raises
        ------
        ImportError
            If pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError(
                "StabilityReport.to_frame() needs pandas; install it with `pip install pandas`."
            ) from None
        n = self.n_draws
        labels = (
            self.per_draw_label_change
            if self.per_draw_label_change is not None
            else np.full(n, np.nan)
        )
        alphas = self.alpha_per_draw if self.alpha_per_draw is not None else [None] * n
        return pd.DataFrame(
            {
                "estimator": [self.estimator] * n,
                "group": [self.group] * n,
                "draw": np.arange(n),
                "condition_number": _or_nan(self.per_draw_condition, n),
                "change": np.asarray(self.per_draw_change, dtype=np.float64),
                "typical_change": _or_nan(self.per_draw_typical_change, n),
                "label_change_rate": np.asarray(labels, dtype=np.float64),
                "alpha": list(alphas),
            }
        )


def _or_nan(a: Optional[np.ndarray], n: int) -> np.ndarray:
    return np.full(n, np.nan) if a is None else np.asarray(a, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Estimator plumbing
# --------------------------------------------------------------------------------------------


def _clone(estimator: Any) -> Any:
    try:
        from sklearn.base import clone
    except ImportError:  # pragma: no cover - exercised only without scikit-learn
        return copy.deepcopy(estimator)
    try:
        return clone(estimator)
    except TypeError:  # not a scikit-learn-style estimator (no get_params)
        return copy.deepcopy(estimator)


def _final_step(estimator: Any) -> tuple[Any, str]:
    """(last step, parameter prefix) for a Pipeline; (estimator, "") otherwise."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps and isinstance(steps[-1], tuple):
        name, step = steps[-1][0], steps[-1][1]
        return step, f"{name}__"
    return estimator, ""


def _estimator_name(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps and isinstance(steps[0], tuple):
        inner = ", ".join(type(s[1]).__name__ for s in steps)
        return f"{type(estimator).__name__}({inner})"
    return type(estimator).__name__


def _has_param(obj: Any, name: str) -> bool:
    get_params = getattr(obj, "get_params", None)
    if callable(get_params):
        try:
            return name in get_params(deep=False)
        except TypeError:
            pass
    try:
        return name in inspect.signature(type(obj).__init__).parameters
    except (TypeError, ValueError):
        return False


def _get_param(obj: Any, name: str) -> Any:
    get_params = getattr(obj, "get_params", None)
    if callable(get_params):
        try:
            return get_params(deep=False).get(name)
        except TypeError:
            pass
    return getattr(obj, name, None)


def _set_readout(estimator: Any, value: np.ndarray) -> None:
    step, prefix = _final_step(estimator)
    if callable(getattr(estimator, "set_params", None)):
        estimator.set_params(**{prefix + "readout": value})
    else:
        step.readout = value


def _output_kind(estimator: Any) -> str:
    for kind in ("decision_function", "predict_proba", "predict"):
        if hasattr(estimator, kind):
            return kind
    raise TypeError(
        f"{type(estimator).__name__} has none of decision_function, predict_proba, predict."
    )


def _outputs(estimator: Any, X: np.ndarray, kind: str) -> np.ndarray:
    out = np.asarray(getattr(estimator, kind)(X))
    if kind == "predict_proba" and out.ndim == 2 and out.shape[1] == 2:
        out = out[:, 1]
    try:
        return np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{type(estimator).__name__}.{kind} returned non-numeric values ({out.dtype}); "
            "cannot measure their change."
        ) from None


def _is_classifier(fitted: Any) -> bool:
    try:
        return getattr(fitted, "classes_", None) is not None
    except Exception:  # noqa: BLE001 - a property may raise anything when unavailable
        return False


_ALPHA_ATTRS = ("alpha_", "C_", "alpha", "C")


def _regularisation(fitted: Any) -> tuple[Optional[str], Any]:
    step, _ = _final_step(fitted)
    for attr in _ALPHA_ATTRS:
        try:
            value = getattr(step, attr)
        except Exception:  # noqa: BLE001 - fitted-only properties raise various errors
            continue
        if value is None:
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue  # e.g. a string option
        return attr, (float(arr) if arr.ndim == 0 else arr.copy())
    return None, None


def _alpha_change(ref: Any, draws: list) -> Optional[float]:
    if ref is None or any(a is None for a in draws):
        return None
    r = np.asarray(ref, dtype=np.float64)
    worst = 0.0
    for a in draws:
        a = np.asarray(a, dtype=np.float64)
        if a.shape != r.shape:
            return float("nan")
        diff = np.abs(a - r)
        scale = np.abs(r)
        rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), diff)
        worst = max(worst, float(np.max(rel)) if rel.size else 0.0)
    return worst


def _as_2d_float(X: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a numeric 2-D array.") from None
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{what} must be a non-empty 2-D array, got shape {arr.shape}.")
    return arr


def _spawn(random_state: RandomLike, k: int) -> list[np.random.Generator]:
    seeds = np.random.default_rng(random_state).integers(0, 2**63 - 1, size=k)
    return [np.random.default_rng(int(s)) for s in seeds]


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def stability_report(
    estimator: Any,
    X: Any,
    y: Any,
    group: GroupAction,
    *,
    n_draws: int = 5,
    X_test: Any = None,
    test_size: float = 0.25,
    readout: Any = None,
    random_state: RandomLike = 0,
    name: Optional[str] = None,
) -> StabilityReport:
    """Measure how much an estimator's held-out outputs depend on the coordinates of X.

    The estimator is cloned and fitted on the training rows in the original coordinates
    (the *reference*), then, for each of ``n_draws`` random elements ``g`` of ``group``,
    cloned again and fitted on ``g(X_train)``; its outputs on ``g(X_test)`` are compared with
    the reference outputs on ``X_test``. For an estimator that is invariant under the group
    the two agree up to round-off (relative change ~1e-12).

    Parameters
    ----------
    estimator : estimator
        Anything with ``fit`` and one of ``decision_function`` / ``predict_proba`` /
        ``predict`` (our probes, scikit-learn classifiers, regressors, pipelines). It is not
        modified: ``sklearn.base.clone`` is used (``copy.deepcopy`` without scikit-learn).
    X : array-like of shape (n, d)
        Hidden states. Converted to float64 once, so that the reference fit and the
        transformed fits see the same precision.
    y : array-like of shape (n,) or (n, k)
        Targets or class labels.
    group : GroupAction
        The coordinate changes to test, e.g. ``Affine(condition=10)``.
    n_draws : int, default=5
        Number of random group elements.
    X_test : array-like of shape (m, d), optional
        Rows to compare the outputs on. If given, all of ``X`` is used for fitting;
        otherwise ``X`` is split at random (deterministically for an integer
        ``random_state``) and a fraction ``test_size`` is held out.
    test_size : float, default=0.25
        Held-out fraction, in (0, 1), when ``X_test`` is not given.
    readout : array-like of shape (k, d), optional
        The network's readout matrix W. Passed as the ``readout`` parameter to an estimator
        (or the last step of a pipeline) that has one: unchanged for the reference fit and
        for groups that do not act on the readout, ``g.apply_readout(W)`` for each draw of
        :class:`ReadoutAffine`. Ignored for estimators without such a parameter. When None
        and the group acts on the readout, the estimator's own ``readout`` parameter (if
        set) is used.
    random_state : int, Generator or None, default=0
        Seeds the split and the group draws.
    name : str, optional
        Name to report for the estimator (default: its class name).

    Returns
    -------
    StabilityReport

    Raises
    ------
    ValueError
        On malformed X / y / X_test / readout or out-of-range ``n_draws`` / ``test_size``.
    TypeError
        If ``group`` is not a :class:`GroupAction` or the estimator cannot be evaluated.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5)); y = X @ rng.normal(size=5) + rng.normal(size=200)
    >>> stability_report(LinearRegression(), X, y, Affine(condition=10)).is_stable()
    True
    """
    owner = "stability_report"
    if isinstance(group, type) and issubclass(group, GroupAction):
        group = group()
    if not isinstance(group, GroupAction):
        raise ParameterTypeError(
            f"group must be a GroupAction (e.g. Affine()), got {shown(group)}."
        )
    check_param("n_draws", n_draws, [Interval("int", 1, None, desc="a positive integer")],
                owner=owner)  # fmt: skip
    n_draws = int(n_draws)
    if not callable(getattr(estimator, "fit", None)):
        raise ParameterTypeError(f"estimator must have a fit method, got {shown(estimator)}.")
    check_param("test_size", test_size,
                [Interval("real", 0.0, 1.0, closed="neither", desc="a fraction in (0, 1)")],
                owner=owner)  # fmt: skip
    check_param("random_state", random_state, RANDOM_STATE, owner=owner)
    if name is not None and not isinstance(name, str):
        raise ParameterTypeError(f"name must be a string or None, got {shown(name)}.")

    X = _as_2d_float(X, "X")
    y = np.asarray(y)
    n, d = X.shape
    if y.shape[:1] != (n,):
        raise ValueError(f"y must have {n} rows to match X, got shape {y.shape}.")
    if readout is not None:
        try:
            readout = np.asarray(readout, dtype=np.float64)
        except (TypeError, ValueError):
            raise ParameterTypeError(
                f"readout must be a numeric array of shape (k, {d}), got {shown(readout)}."
            ) from None
        if readout.ndim not in (1, 2) or readout.shape[-1] != d:
            raise ParameterError(
                f"readout must have shape (k, {d}) to act on the {d}-dimensional hidden states, "
                f"got shape {readout.shape}."
            )
        if not np.isfinite(readout).all():
            raise NonFiniteParameterError(
                "readout contains NaN or infinity; the readout matrix must be finite."
            )

    split_rng, group_rng = _spawn(random_state, 2)
    if X_test is not None:
        X_train, y_train = X, y
        X_te = _as_2d_float(X_test, "X_test")
        if X_te.shape[1] != d:
            raise ValueError(f"X_test must have {d} columns like X, got shape {X_te.shape}.")
    else:
        test_size = float(test_size)
        n_test = int(round(test_size * n))
        if n_test < 1 or n - n_test < 2:
            raise ParameterError(
                f"cannot split {n} rows with test_size={test_size}: need at least 1 test row "
                "and 2 training rows (or pass X_test)."
            )
        perm = split_rng.permutation(n)
        te, tr = perm[:n_test], perm[n_test:]
        X_train, y_train, X_te = X[tr], y[tr], X[te]

    final, _ = _final_step(estimator)
    takes_readout = _has_param(final, "readout")
    if readout is None and group.transforms_readout and takes_readout:
        readout = _get_param(final, "readout")
    if readout is not None:  # the estimator's own readout (the one passed is checked above)
        readout = np.asarray(readout, dtype=np.float64)
        if readout.ndim not in (1, 2) or readout.shape[-1] != d:
            raise ParameterError(
                f"readout must have shape (k, {d}) to act on the {d}-dimensional hidden states, "
                f"got shape {readout.shape}."
            )
    use_readout = readout is not None and takes_readout

    # Reference fit in the original coordinates.
    ref = _clone(estimator)
    if use_readout:
        _set_readout(ref, readout)
    ref.fit(X_train, y_train)
    kind = _output_kind(ref)
    f_ref = _outputs(ref, X_te, kind)
    classifier = _is_classifier(ref)
    labels_ref = np.asarray(ref.predict(X_te)) if classifier else None
    alpha_name, alpha_ref = _regularisation(ref)
    scale = max(float(np.max(np.abs(f_ref))), _TINY)
    spread = max(float(np.std(f_ref)), _TINY)

    changes, typical, flips, alphas, conds, elements = [], [], [], [], [], []
    for _ in range(n_draws):
        g = group.sample(d, group_rng)
        elements.append(g)
        conds.append(g.condition_number)
        est = _clone(estimator)
        if use_readout:
            _set_readout(est, g.apply_readout(readout) if group.transforms_readout else readout)
        est.fit(g.apply(X_train), y_train)
        X_g = g.apply(X_te)
        f_g = _outputs(est, X_g, kind)
        if f_g.shape != f_ref.shape:
            raise ValueError(
                f"outputs changed shape under the group ({f_ref.shape} -> {f_g.shape})."
            )
        delta = np.abs(f_g - f_ref)
        changes.append(float(np.max(delta)) / scale)
        typical.append(float(np.median(delta)) / spread)
        if classifier:
            flips.append(float(np.mean(np.asarray(est.predict(X_g)) != labels_ref)))
        alphas.append(_regularisation(est)[1])

    per_draw = np.asarray(changes)
    per_flip = np.asarray(flips) if classifier else None
    has_alpha = alpha_ref is not None
    return StabilityReport(
        estimator=name if name is not None else _estimator_name(estimator),
        group=group.name,
        condition=group.condition,
        n_draws=n_draws,
        max_change=float(np.max(per_draw)),
        median_change=float(np.median(per_draw)),
        per_draw_change=per_draw,
        label_change_rate=float(np.max(per_flip)) if classifier else None,
        alpha_reference=alpha_ref,
        alpha_per_draw=alphas if has_alpha else None,
        alpha_max_change=_alpha_change(alpha_ref, alphas) if has_alpha else None,
        output=kind,
        typical_change=float(np.max(typical)),
        per_draw_typical_change=np.asarray(typical),
        per_draw_label_change=per_flip,
        per_draw_condition=np.asarray(conds),
        alpha_name=alpha_name,
        readout_transformed=bool(use_readout and group.transforms_readout),
        n_train=int(X_train.shape[0]),
        n_test=int(X_te.shape[0]),
        elements=elements,
    )


def compare_stability(
    estimators: dict, X: Any, y: Any, group: GroupAction, **kw: Any
) -> list[StabilityReport]:
    """:func:`stability_report` for several estimators on the same split and group draws.

    Parameters
    ----------
    estimators : dict of str -> estimator
        Names (used in the reports) and estimators.
    X, y, group, **kw
        As for :func:`stability_report` (``name`` is taken from the dict keys). With the
        same ``random_state`` every estimator sees the same split and the same elements.

    Returns
    -------
    list of StabilityReport, in the order of ``estimators``.
    """
    if not isinstance(estimators, dict) or not estimators:
        raise (ParameterError if isinstance(estimators, dict) else ParameterTypeError)(
            f"estimators must be a non-empty dict of name -> estimator, got {shown(estimators)}."
        )
    for key, est in estimators.items():  # all of them, before the first fit
        if not callable(getattr(est, "fit", None)):
            raise ParameterTypeError(
                f"estimators[{key!r}] must have a fit method, got {shown(est)}."
            )
    kw.pop("name", None)
    return [
        stability_report(est, X, y, group, name=str(key), **kw) for key, est in estimators.items()
    ]


def format_reports(reports: Any, tol: float = DEFAULT_TOL) -> str:
    """A compact text table of several :class:`StabilityReport` objects.

    Columns: estimator, group, condition bound, draws, max and median relative change of
    the held-out outputs, worst label-flip rate, max relative change of alpha, verdict at
    ``tol``.
    """
    check_param("tol", tol, _TOL, owner="format_reports")
    if isinstance(reports, StabilityReport):
        reports = [reports]
    reports = list(reports)
    if not all(isinstance(r, StabilityReport) for r in reports):
        raise ParameterTypeError(
            f"reports must be a StabilityReport or a sequence of them, got {shown(reports)}."
        )
    header = ("estimator", "group", "cond", "draws", "max change", "median", "flips", "alpha chg",
              "verdict")  # fmt: skip
    rows = [header]
    for r in reports:
        rows.append(
            (
                r.estimator,
                r.group,
                f"{r.condition:g}",
                str(r.n_draws),
                _fmt(r.max_change),
                _fmt(r.median_change),
                "n/a" if r.label_change_rate is None else f"{100 * r.label_change_rate:.1f}%",
                _fmt(r.alpha_max_change),
                r.verdict(tol),
            )
        )
    widths = [max(len(row[j]) for row in rows) for j in range(len(header))]
    numeric = {2, 3, 4, 5, 6, 7}
    lines = []
    for i, row in enumerate(rows):
        cells = [
            cell.rjust(w) if (j in numeric and i > 0) else cell.ljust(w)
            for j, (cell, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)

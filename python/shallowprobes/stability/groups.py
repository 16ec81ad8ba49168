"""The coordinate changes a probe is tested against: group elements ``h -> T h + v``
(:class:`GroupElement`, :func:`from_matrix`) and the group actions that draw them at random
(:class:`Euclidean`, :class:`DiagonalAffine`, :class:`Affine`, :class:`ReadoutAffine`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from .._params import (
    BOOL,
    RANDOM_STATE,
    Interval,
    NonFiniteParameterError,
    ParameterError,
    ParameterTypeError,
    check_param,
    shown,
)

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

"""Synthetic activation data for demos and tests (generated, never downloaded).

Besides :func:`make_linear_concepts`, this module generates the synthetic tasks of Lee & Kondor
(2026), "Deep Minds and Shallow Probes": XOR (:func:`make_xor`) and the circle
(:func:`make_circle`) are solved by degree-2 polynomial probes but not by linear ones, and
N-bit parity (:func:`make_parity`) with N >= 3 defeats degree 2 as well. They return a
:class:`SyntheticTask` whose signal lives in a known low-dimensional subspace of randomly
scrambled (affinely transformed) coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ._params import (
    BOOL,
    RANDOM_STATE,
    Interval,
    Options,
    ParameterError,
    ParameterTypeError,
    check_param,
)

__all__ = [
    "LinearConceptData",
    "SyntheticTask",
    "make_circle",
    "make_linear_concepts",
    "make_parity",
    "make_xor",
    "ModelPair",
    "readout_equivalent_models",
    "concept_model_pair",
]


@dataclass
class LinearConceptData:
    """Activations with linearly encoded concepts, split into train and test rows."""

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray  # (n_train, n_concepts) real-valued concept strengths
    y_test: np.ndarray
    labels_train: np.ndarray  # (n_train,) class of the first concept's sign x second's sign
    labels_test: np.ndarray
    directions: np.ndarray  # (n_concepts, d) the planted concept directions


def make_linear_concepts(
    n_samples: int = 20000,
    n_features: int = 256,
    n_concepts: int = 4,
    *,
    noise: float = 0.5,
    offset_scale: float = 20.0,
    anisotropy: float = 3.0,
    test_fraction: float = 0.2,
    dtype: type = np.float32,
    seed: int = 0,
) -> LinearConceptData:
    """Hidden-state-like data: anisotropic Gaussian activations with a large per-unit offset
    (as in language-model residual streams) in which `n_concepts` real-valued concepts are
    linearly decodable with additive noise.

    Targets y[:, c] = <direction_c, h> + noise; `labels` is a 3-class label built from the
    first concept (negative / middle / positive tercile) for classification demos.
    """
    n_samples = _check_int(n_samples, "n_samples", 10)
    n_features = _check_int(n_features, "n_features", 1)
    n_concepts = _check_int(n_concepts, "n_concepts", 1)
    noise = _check_nonneg(noise, "noise")
    offset_scale = _check_nonneg(offset_scale, "offset_scale")
    anisotropy = _check_nonneg(anisotropy, "anisotropy")
    test_fraction = _check_float(test_fraction, "test_fraction", 0.0, 1.0, closed="left")
    dtype = _check_dtype(dtype, floats=("float16", "float32", "float64"))
    check_param("seed", seed, RANDOM_STATE)
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.uniform(-anisotropy / 2, anisotropy / 2, n_features))
    offset = rng.normal(scale=offset_scale, size=n_features)
    H = rng.standard_normal((n_samples, n_features)) * scales + offset
    directions = rng.standard_normal((n_concepts, n_features)) / np.sqrt(n_features)
    directions /= scales  # concepts live partly in low-variance units, as probes often find
    signal = (H - offset) @ directions.T
    signal /= signal.std(axis=0)
    y = signal + noise * rng.standard_normal((n_samples, n_concepts))
    cuts = np.quantile(y[:, 0], [1 / 3, 2 / 3])
    labels = np.digitize(y[:, 0], cuts)
    n_test = int(round(test_fraction * n_samples))
    H = H.astype(dtype)
    return LinearConceptData(
        X_train=H[n_test:], X_test=H[:n_test],
        y_train=y[n_test:], y_test=y[:n_test],
        labels_train=labels[n_test:], labels_test=labels[:n_test],
        directions=directions,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Synthetic tasks of Lee & Kondor (2026): XOR, N-bit parity, circle.
# --------------------------------------------------------------------------------------------

_OFFSET_SCALE = 5.0  # standard deviation of each coordinate of the offset v when scrambling
_DISK_RADIUS = 2.0  # circle task: uniform on the disk of radius 2 (unit variance per axis)
_CIRCLE_MARGIN = 0.2  # default half-width of the empty annulus around the circle


@dataclass
class SyntheticTask:
    """A binary task with a planted low-dimensional signal, in scrambled coordinates.

    The unscrambled coordinates ``Z`` (n x d) hold the ``r`` signal coordinates in their first
    ``r`` columns and nuisance coordinates in the others; the returned features are the affine
    image ``X = Z @ scramble_matrix.T + scramble_offset``.

    Attributes
    ----------
    X_train, X_test : ndarray of shape (n_train, d) and (n_test, d)
        Features in the scrambled coordinates, in the requested dtype.
    y_train, y_test : ndarray of shape (n_train,) and (n_test,), dtype int64
        Labels in {0, 1} (after any label noise).
    relevant_subspace : ndarray of shape (d, r)
        Orthonormal basis, in the scrambled coordinates, of the span of the signal directions
        ``scramble_matrix[:, :r]`` (the images ``T e_i`` of the latent signal axes): where the
        signal moves x. Projecting x onto it does *not* recover the signal when T is not
        orthogonal (nuisance leaks in); use `readout_subspace` for that.
    readout_subspace : ndarray of shape (d, r)
        Orthonormal basis of the span of the covectors that read the signal out of x: the
        first r rows of ``T^-1`` (the label depends on x only through
        ``readout_subspace.T @ x``). It equals `relevant_subspace` when T is orthogonal.
    latent_train, latent_test : ndarray of shape (n_train, r) and (n_test, r), float64
        The unscrambled signal coordinates ``Z[:, :r]``.
    scramble_matrix : ndarray of shape (d, d), float64
        The invertible matrix ``T`` (the identity when not scrambled).
    scramble_offset : ndarray of shape (d,), float64
        The offset ``v`` (zero when not scrambled).
    name : str
        Short task name: ``"xor"``, ``"parity<N>"`` or ``"circle"``.
    params : dict
        Generator parameters needed to restate the labelling rule, e.g. ``{"n_bits": 3}`` for
        parity or ``{"radius": r0, ...}`` for the circle.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    relevant_subspace: np.ndarray
    latent_train: np.ndarray
    latent_test: np.ndarray
    scramble_matrix: np.ndarray
    scramble_offset: np.ndarray
    name: str
    params: dict = field(default_factory=dict)
    readout_subspace: np.ndarray = None  # set by the generators

    @property
    def n_signal(self) -> int:
        """Number ``r`` of signal (latent) dimensions."""
        return int(self.relevant_subspace.shape[1])

    @property
    def chance_accuracy(self) -> float:
        """Majority-class rate on the test labels (accuracy of always predicting one class)."""
        p = float(np.mean(self.y_test))
        return max(p, 1.0 - p)


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


def _check_common(
    n_samples, n_features, n_signal: int, nuisance_std, label_noise, condition, test_fraction, dtype
) -> dict:
    """Validate the arguments shared by the task generators."""
    n = _check_int(n_samples, "n_samples", 2)
    d = _check_int(n_features, "n_features", 1)
    if d < n_signal:
        raise ParameterError(
            f"n_features={d} is smaller than the number of signal dimensions ({n_signal})."
        )
    label_noise = _check_float(label_noise, "label_noise", 0.0, 0.5, closed="left")
    condition = _check_float(condition, "condition", 1.0)
    test_fraction = _check_float(test_fraction, "test_fraction", 0.0, 1.0, closed="neither")
    n_test = int(round(test_fraction * n))
    if n_test < 1 or n - n_test < 1:
        raise ParameterError(
            f"n_samples={n} is too small for test_fraction={test_fraction}: the split would "
            f"leave {n - n_test} training and {n_test} test samples (each needs at least 1)."
        )
    dt = _check_dtype(dtype)
    return dict(
        d=d, n_test=n_test, nuisance_std=_check_nonneg(nuisance_std, "nuisance_std"),
        label_noise=label_noise, condition=condition, dtype=dt,
    )  # fmt: skip


def _haar_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    """Haar-distributed d x d orthogonal matrix (QR of a Gaussian matrix with sign fix)."""
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    signs = np.sign(np.diag(R))
    signs[signs == 0] = 1.0
    return Q * signs


def _random_affine(rng: np.random.Generator, d: int, condition: float) -> tuple:
    """T = U diag(s) V^T, s log-uniform in [condition^-1/2, condition^1/2]; v ~ N(0, 5^2 I)."""
    U = _haar_orthogonal(rng, d)
    V = _haar_orthogonal(rng, d)
    half = 0.5 * math.log(condition)
    s = np.exp(rng.uniform(-half, half, size=d))
    T = (U * s) @ V.T
    v = rng.normal(scale=_OFFSET_SCALE, size=d)
    return T, v


def _assemble(
    rng: np.random.Generator,
    signal: np.ndarray,
    labels: np.ndarray,
    *,
    d: int,
    n_test: int,
    nuisance_std: float,
    label_noise: float,
    scramble: bool,
    condition: float,
    dtype: np.dtype,
    name: str,
    params: dict,
) -> SyntheticTask:
    """Add nuisance coordinates, label noise and the affine scramble; split train / test."""
    n, r = signal.shape
    Z = np.empty((n, d), dtype=np.float64)
    Z[:, :r] = signal
    Z[:, r:] = nuisance_std * rng.standard_normal((n, d - r))
    # Always draw the flips, so that label_noise changes the labels and nothing else.
    flip = rng.random(n) < label_noise
    labels = np.where(flip, 1 - labels, labels).astype(np.int64)
    if scramble:
        T, v = _random_affine(rng, d, condition)
    else:
        T, v = np.eye(d), np.zeros(d)
    X = (Z @ T.T + v).astype(dtype)
    basis, _ = np.linalg.qr(T[:, :r])
    readout, _ = np.linalg.qr(np.linalg.inv(T)[:r].T)
    return SyntheticTask(
        X_train=X[n_test:], y_train=labels[n_test:],
        X_test=X[:n_test], y_test=labels[:n_test],
        relevant_subspace=basis,
        latent_train=Z[n_test:, :r].copy(), latent_test=Z[:n_test, :r].copy(),
        scramble_matrix=T, scramble_offset=v,
        name=name, params=params, readout_subspace=readout,
    )  # fmt: skip


def make_parity(
    n_samples: int = 4000,
    n_features: int = 20,
    n_bits: int = 3,
    *,
    cluster_std: float = 0.25,
    nuisance_std: float = 1.0,
    label_noise: float = 0.0,
    scramble: bool = True,
    condition: float = 10.0,
    test_fraction: float = 0.25,
    dtype: type = np.float64,
    seed: Optional[int] = 0,
) -> SyntheticTask:
    """N-bit parity: the label is the parity of ``n_bits`` hidden random signs.

    Latent bits ``b_1, ..., b_N`` are i.i.d. uniform on {-1, +1}; the signal coordinates are
    ``z_i = b_i + cluster_std * N(0, 1)`` (Gaussian clusters at the corners of the cube) and
    the label is 1 when an odd number of the bits are +1, else 0. The label is a function of
    the degree-``N`` monomial ``b_1 ... b_N`` and is uncorrelated with every monomial of lower
    degree, so for ``N >= 3`` neither a linear nor a degree-2 polynomial probe beats chance.
    ``n_bits=2`` is XOR (see :func:`make_xor`); ``n_bits=1`` is linearly separable.

    Parameters
    ----------
    n_samples : int, default=4000
        Total number of samples (train + test).
    n_features : int, default=20
        Dimension ``d`` of the features; must be >= ``n_bits``.
    n_bits : int, default=3
        Number ``N >= 1`` of latent bits, which is also the number ``r`` of signal dimensions.
    cluster_std : float, default=0.25
        Standard deviation of the Gaussian noise around each bit's value +-1. The label is
        defined by the bits, so it can disagree with the parity of the signs of the latent
        coordinates when this noise crosses zero (probability ~3e-5 per coordinate at 0.25).
    nuisance_std : float, default=1.0
        Standard deviation of the ``n_features - n_bits`` i.i.d. Gaussian nuisance coordinates.
    label_noise : float, default=0.0
        Probability, in [0, 0.5), that each label (train and test alike) is flipped,
        independently of everything else. Features, latents and scramble do not depend on it
        (for a given seed only the labels change).
    scramble : bool, default=True
        If True, map the unscrambled coordinates ``Z`` through a random invertible affine map,
        ``X = Z @ T.T + v``, with ``T = U diag(s) V^T`` (``U``, ``V`` Haar-random orthogonal,
        ``s`` log-uniform in ``[condition**-0.5, condition**0.5]``, so ``cond(T) <= condition``)
        and ``v ~ N(0, 5^2 I)`` (hidden units often carry large offsets). If False, ``T = I``
        and ``v = 0``.
    condition : float, default=10.0
        Upper bound (>= 1) on the condition number of ``T``; 1 gives an orthogonal ``T``.
    test_fraction : float, default=0.25
        Fraction, in (0, 1), of the samples held out as the test split
        (``round(test_fraction * n_samples)`` rows).
    dtype : {numpy.float32, numpy.float64}, default=numpy.float64
        Floating type of ``X_train`` and ``X_test`` (latents, ``T`` and ``v`` are float64,
        labels int64).
    seed : int or None, default=0
        Seed for :func:`numpy.random.default_rng`; the output is a deterministic function of
        the arguments (``None`` draws fresh entropy).

    Returns
    -------
    SyntheticTask
        Train / test features and labels, latent coordinates, the scramble ``(T, v)`` and an
        orthonormal basis of the relevant (signal) subspace; ``name`` is ``"parity<N>"``
        (``"xor"`` for ``n_bits=2``).

    Raises
    ------
    ValueError
        If an argument is out of range: ``n_samples`` too small for the split, ``n_features <
        n_bits``, ``n_bits < 1``, ``label_noise`` outside [0, 0.5), ``condition < 1``,
        ``test_fraction`` outside (0, 1), a negative standard deviation or another dtype.

    Examples
    --------
    >>> task = make_parity(n_samples=1000, n_features=8, n_bits=3, seed=1)
    >>> task.X_train.shape, task.X_test.shape, task.relevant_subspace.shape
    ((750, 8), (250, 8), (8, 3))
    """
    n_bits = _check_int(n_bits, "n_bits", 1)
    common = _check_common(
        n_samples, n_features, n_bits, nuisance_std, label_noise, condition, test_fraction, dtype
    )
    cluster_std = _check_nonneg(cluster_std, "cluster_std")
    check_param("scramble", scramble, BOOL)
    check_param("seed", seed, RANDOM_STATE)
    n = int(n_samples)
    rng = np.random.default_rng(seed)
    bits = rng.choice(np.array([-1.0, 1.0]), size=(n, n_bits))
    signal = bits + cluster_std * rng.standard_normal((n, n_bits))
    labels = np.sum(bits > 0, axis=1) % 2
    name = "xor" if n_bits == 2 else f"parity{n_bits}"
    params = {"n_bits": n_bits, "cluster_std": cluster_std}
    return _assemble(
        rng, signal, labels, scramble=bool(scramble), name=name, params=params, **common
    )


def make_xor(
    n_samples: int = 4000,
    n_features: int = 20,
    *,
    cluster_std: float = 0.25,
    nuisance_std: float = 1.0,
    label_noise: float = 0.0,
    scramble: bool = True,
    condition: float = 10.0,
    test_fraction: float = 0.25,
    dtype: type = np.float64,
    seed: Optional[int] = 0,
) -> SyntheticTask:
    """XOR of two hidden random signs: solved by a degree-2 probe, not by a linear one.

    Latent bits ``b_1, b_2`` are i.i.d. uniform on {-1, +1}; the two signal coordinates are
    ``z_i = b_i + cluster_std * N(0, 1)`` and the label is 1 if ``b_1 != b_2``, else 0. The
    label is a function of the product ``z_1 z_2`` (a degree-2 feature) but uncorrelated with
    every linear function of the features. This is :func:`make_parity` with ``n_bits=2``
    (same random draws for the same seed), named ``"xor"``.

    Parameters
    ----------
    n_samples : int, default=4000
        Total number of samples (train + test).
    n_features : int, default=20
        Dimension ``d`` of the features; must be >= 2.
    cluster_std : float, default=0.25
        Standard deviation of the Gaussian noise around each bit's value +-1. The label is
        defined by the bits, so it can disagree with ``sign(z_1) != sign(z_2)`` when this noise
        crosses zero (probability ~3e-5 per coordinate at 0.25).
    nuisance_std : float, default=1.0
        Standard deviation of the ``n_features - 2`` i.i.d. Gaussian nuisance coordinates.
    label_noise : float, default=0.0
        Probability, in [0, 0.5), that each label (train and test alike) is flipped,
        independently of everything else. Features, latents and scramble do not depend on it
        (for a given seed only the labels change).
    scramble : bool, default=True
        If True, ``X = Z @ T.T + v`` with a random ``T`` of condition number at most
        ``condition`` and ``v ~ N(0, 5^2 I)``; if False, ``T = I`` and ``v = 0``
        (see :func:`make_parity`).
    condition : float, default=10.0
        Upper bound (>= 1) on the condition number of ``T``.
    test_fraction : float, default=0.25
        Fraction, in (0, 1), of the samples held out as the test split.
    dtype : {numpy.float32, numpy.float64}, default=numpy.float64
        Floating type of ``X_train`` and ``X_test``.
    seed : int or None, default=0
        Seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    SyntheticTask
        The task, with ``name="xor"`` and a 2-dimensional relevant subspace.

    Raises
    ------
    ValueError
        If an argument is out of range (see :func:`make_parity`).

    Examples
    --------
    >>> task = make_xor(n_samples=400, n_features=5, seed=3)
    >>> task.name, task.latent_train.shape
    ('xor', (300, 2))
    """
    return make_parity(
        n_samples, n_features, 2, cluster_std=cluster_std, nuisance_std=nuisance_std,
        label_noise=label_noise, scramble=scramble, condition=condition,
        test_fraction=test_fraction, dtype=dtype, seed=seed,
    )  # fmt: skip


def make_circle(
    n_samples: int = 4000,
    n_features: int = 20,
    *,
    margin: float = _CIRCLE_MARGIN,
    radius_noise: float = 0.0,
    nuisance_std: float = 1.0,
    label_noise: float = 0.0,
    scramble: bool = True,
    condition: float = 10.0,
    test_fraction: float = 0.25,
    dtype: type = np.float64,
    seed: Optional[int] = 0,
) -> SyntheticTask:
    """Inside vs. outside a circle in a hidden 2-D plane: degree 2 solves it, linear cannot.

    The two signal coordinates ``(z_1, z_2)`` are uniform on the disk of radius 2 (so each
    has unit variance, like the nuisance coordinates) with the annulus
    ``r0 - margin < |z| < r0 + margin`` removed, where ``r0 = sqrt(2 - margin**2)`` makes the
    two classes equally likely. The label is 1 inside the circle (``|z| < r0``), 0 outside.
    The boundary is the zero set of the degree-2 polynomial ``z_1^2 + z_2^2 - r0^2``, while by
    rotational symmetry every linear function of the features is uncorrelated with the label.

    Why a disk rather than a Gaussian: ``|z|^2`` is then uniform (on [0, 4] minus the gap) and
    symmetric about 2, the middle of the gap, so a least-squares (ridge) probe on degree-2
    features puts its threshold on a perfect boundary. For a 2-D Gaussian ``|z|^2`` is
    exponential and skewed, and the least-squares threshold lands at ``|z|^2 = 2`` instead of
    the median ``2 ln 2``, capping such probes at ~87% accuracy. The default gap keeps a
    degree-2 probe at >= 97% test accuracy at the default size (20 features, 3000 training
    samples) despite estimation noise in its 230 coefficients; ``margin=0`` gives the plain
    uniform disk with ``r0 = sqrt(2)``.

    Parameters
    ----------
    n_samples : int, default=4000
        Total number of samples (train + test).
    n_features : int, default=20
        Dimension ``d`` of the features; must be >= 2.
    margin : float, default=0.2
        Half-width, in [0, 1), of the empty annulus around the decision circle.
    radius_noise : float, default=0.0
        If positive, the label is ``|z| + radius_noise * N(0, 1) < r0``: a fuzzy boundary
        (label noise concentrated near the circle). 0 gives labels exactly ``|z| < r0``.
        As with ``label_noise``, only the labels depend on it.
    nuisance_std : float, default=1.0
        Standard deviation of the ``n_features - 2`` i.i.d. Gaussian nuisance coordinates.
    label_noise : float, default=0.0
        Probability, in [0, 0.5), that each label (train and test alike) is flipped,
        independently of everything else. Features, latents and scramble do not depend on it
        (for a given seed only the labels change).
    scramble : bool, default=True
        If True, ``X = Z @ T.T + v`` with a random ``T`` of condition number at most
        ``condition`` and ``v ~ N(0, 5^2 I)``; if False, ``T = I`` and ``v = 0``
        (see :func:`make_parity`).
    condition : float, default=10.0
        Upper bound (>= 1) on the condition number of ``T``.
    test_fraction : float, default=0.25
        Fraction, in (0, 1), of the samples held out as the test split.
    dtype : {numpy.float32, numpy.float64}, default=numpy.float64
        Floating type of ``X_train`` and ``X_test``.
    seed : int or None, default=0
        Seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    SyntheticTask
        The task, with ``name="circle"``, a 2-dimensional relevant subspace and
        ``params["radius"] = r0``.

    Raises
    ------
    ValueError
        If an argument is out of range (see :func:`make_parity`), ``radius_noise < 0`` or
        ``margin`` is outside [0, 1).

    Examples
    --------
    >>> task = make_circle(n_samples=400, n_features=5, scramble=False, seed=0)
    >>> r = np.hypot(task.latent_test[:, 0], task.latent_test[:, 1])
    >>> bool(np.all(task.y_test == (r < task.params["radius"])))
    True
    """
    common = _check_common(
        n_samples, n_features, 2, nuisance_std, label_noise, condition, test_fraction, dtype
    )
    margin = _check_float(margin, "margin", 0.0, 1.0, closed="left")
    radius_noise = _check_nonneg(radius_noise, "radius_noise")
    check_param("scramble", scramble, BOOL)
    check_param("seed", seed, RANDOM_STATE)
    n = int(n_samples)
    r0 = math.sqrt(_DISK_RADIUS**2 / 2.0 - margin**2)
    rng = np.random.default_rng(seed)
    # Uniform on the disk minus the annulus: |z|^2 is uniform on [0, a] U [b, 4] with
    # a = (r0 - margin)^2 and b = (r0 + margin)^2. Both pieces have length 2 - 2 r0 margin
    # (a = 4 - b), hence equal probability: balanced classes, symmetric about |z|^2 = 2.
    a = (r0 - margin) ** 2
    b = (r0 + margin) ** 2
    u = rng.uniform(0.0, a + (_DISK_RADIUS**2 - b), size=n)
    radius = np.sqrt(np.where(u < a, u, u - a + b))
    angle = rng.uniform(0.0, 2.0 * math.pi, size=n)
    signal = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    # Always drawn, so that radius_noise changes the labels and nothing else.
    jitter = rng.standard_normal(n)
    labels = radius + radius_noise * jitter < r0
    params = {"radius": r0, "margin": margin, "disk_radius": _DISK_RADIUS}
    return _assemble(
        rng, signal, labels, scramble=bool(scramble), name="circle", params=params, **common
    )


# ---------------------------------------------------------------------------------- model pairs
_VARIANCE_RANGES = {  # (visible, invisible) per-coordinate variance ranges (log-uniform)
    "high": ((1.0, 4.0), (0.05, 1.0)),
    "low": ((0.01, 0.04), (1.0, 4.0)),
}


@dataclass
class ModelPair:
    """Two synthetic "models" that agree (up to an affine map) on A's probe-visible quotient.

    H_A (n, d_A), H_B (n, d_B): paired hidden states (row i is the same input in both models).
    bank: ProbeBank of the ground-truth monitors on A (degree 1 and 2), which read exactly the
        `n_visible` directions of `visible_basis`.
    labels: (n, m) binary labels, one column per bank monitor (a noisy threshold of its score),
        for measuring AUROC and training few-label baselines; transfers never need them.
    extra_monitors: ProbeBank of two monitors on A that are not in the bank: "inside" reads a
        random direction of the visible span, "outside" one of the invisible span (absent when
        nothing is invisible).
    visible_basis (d_A, r), invisible_basis (d_A, d_A - r): orthonormal; the monitors' span and
        its complement.
    readout_A (k, d_A), readout_B (k, d_B): readout matrices. readout_B = readout_A composed with
        the map B -> A, exact when the pair is exactly equivalent (invisible="affine", noise=0).
    T (d_B, d_B), v (d_B,): h_B = T x_B + v, with x_B = [visible coordinates (+ noise),
        scrambled invisible coordinates, nuisance coordinates].
    """

    H_A: np.ndarray
    H_B: np.ndarray
    labels: np.ndarray
    bank: object
    extra_monitors: object
    visible_basis: np.ndarray
    invisible_basis: np.ndarray
    readout_A: np.ndarray
    readout_B: np.ndarray
    T: np.ndarray
    v: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def n_visible(self) -> int:
        """The number of independent directions the bank's monitors read (its quotient rank)."""
        return self.visible_basis.shape[1]


def _scramble_invisible(t: np.ndarray) -> np.ndarray:
    """Non-linear, non-invertible scramble of standard-normal coordinates t (n, k): products of
    neighbours t_j t_(j+1) (for k = 1, (t^2 - 1)/sqrt 2). Unit variance and uncorrelated with
    every linear function of t, so no affine map can recover t from it."""
    if t.shape[1] == 1:
        return (t * t - 1.0) / math.sqrt(2.0)
    return t * np.roll(t, -1, axis=1)


def readout_equivalent_models(
    n_samples: int = 4000,
    d_A: int = 32,
    *,
    n_linear: int = 3,
    n_quadratic: int = 1,
    n_nuisance: int = 8,
    noise: float = 0.0,
    invisible: str = "affine",
    visible_variance: str = "high",
    label_noise: float = 0.25,
    n_readout: Optional[int] = None,
    condition: float = 10.0,
    dtype=np.float64,
    random_state: Optional[int] = None,
) -> ModelPair:
    """Paired hidden states of two models that share model A's probe-visible quotient.

    Model A: h_A = mu_A + E [s_vis; s_inv] with E a random rotation of R^d_A, s_vis the
    r = n_linear + 2 n_quadratic visible coordinates and s_inv the rest, independent Gaussians
    with per-coordinate variances from `visible_variance` ("high": visible 1..4, invisible
    0.05..1; "low": visible 0.01..0.04, invisible 1..4, so that A's top-r principal components
    miss the monitors). The bank: `n_linear` linear monitors w = E_vis g and `n_quadratic`
    XOR-like monitors f = (a.s_vis)(b.s_vis), together reading exactly the r visible directions.

    Model B: h_B = T [s_vis + noise * std * eps; g(s_inv); nuisance] + v, with T a random
    invertible matrix of condition number `condition`, `n_nuisance` extra standard-normal
    coordinates, and g the identity (invisible="affine": B is an exact affine
    reparameterisation of A when noise=0) or a non-linear scramble (invisible="nonlinear":
    products of neighbouring coordinates, which no affine map can undo; the visible quotient
    still aligns exactly). `noise` is the non-equivalence noise on the visible coordinates,
    relative to their standard deviation. `n_readout` is the number of readout rows (default
    2 d_A, so that W_A has full column rank like a real unembedding).
    """
    n = _check_int(n_samples, "n_samples", 10)
    dA = _check_int(d_A, "d_A", 1)
    n_lin = _check_int(n_linear, "n_linear", 0)
    n_quad = _check_int(n_quadratic, "n_quadratic", 0)
    n_nuis = _check_int(n_nuisance, "n_nuisance", 0)
    n_readout = 2 * dA if n_readout is None else _check_int(n_readout, "n_readout", 1)
    if n_lin + n_quad == 0:
        raise ParameterError("the bank needs at least one monitor: n_linear + n_quadratic >= 1.")
    r = n_lin + 2 * n_quad
    if r > dA:
        raise ParameterError(
            f"the monitors read n_linear + 2 n_quadratic = {r} directions, more than d_A = {dA}."
        )
    noise = _check_nonneg(noise, "noise")
    label_noise = _check_nonneg(label_noise, "label_noise")
    condition = _check_float(condition, "condition", 1.0)
    check_param("invisible", invisible, [Options(("affine", "nonlinear"))])
    check_param("visible_variance", visible_variance, [Options(tuple(_VARIANCE_RANGES))])
    dt = _check_dtype(dtype)
    check_param("random_state", random_state, RANDOM_STATE)
    from .monitors.bank import PolynomialMonitor, ProbeBank

    rng = np.random.default_rng(random_state)
    (vis_lo, vis_hi), (inv_lo, inv_hi) = _VARIANCE_RANGES[visible_variance]
    var = np.concatenate([
        np.exp(rng.uniform(math.log(vis_lo), math.log(vis_hi), r)),
        np.exp(rng.uniform(math.log(inv_lo), math.log(inv_hi), dA - r)),
    ])  # fmt: skip
    std = np.sqrt(var)
    E = _haar_orthogonal(rng, dA)
    E_vis, E_inv = E[:, :r], E[:, r:]
    mu_A = rng.normal(scale=_OFFSET_SCALE, size=dA)
    S = rng.standard_normal((n, dA)) * std  # latent [s_vis, s_inv]
    H_A = mu_A + S @ E.T

    # monitors: each reads its own visible directions; coefficients in latent units
    bank = ProbeBank(metadata={"model": "A", "source": "readout_equivalent_models"})
    mix = _haar_orthogonal(rng, r) if r > 0 else np.zeros((0, 0))
    dirs = E_vis @ mix  # (d_A, r): r independent directions inside the visible span
    col = 0
    for i in range(n_lin):
        w = dirs[:, col] / float(np.sqrt(dirs[:, col] @ (E * var) @ E.T @ dirs[:, col]))
        bank.add(f"linear_{i}", PolynomialMonitor(w, 0.0, None, mu_A))
        col += 1
    for j in range(n_quad):
        a, b = dirs[:, col], dirs[:, col + 1]
        sa = float(np.sqrt(a @ (E * var) @ E.T @ a))
        sb = float(np.sqrt(b @ (E * var) @ E.T @ b))
        Q = 0.5 * (np.outer(a, b) + np.outer(b, a)) / (sa * sb)
        bank.add(f"xor_{j}", PolynomialMonitor(np.zeros(dA), 0.0, Q, mu_A))
        col += 2
    scores = bank.decision_function(H_A)
    noisy = scores + label_noise * scores.std(axis=0) * rng.standard_normal(scores.shape)
    labels = (noisy > np.median(noisy, axis=0)).astype(np.int64)

    extra = ProbeBank(metadata={"model": "A"})
    g = rng.standard_normal(r)
    extra.add("inside", PolynomialMonitor(E_vis @ g, 0.0, None, mu_A))
    if dA > r:
        extra.add("outside", PolynomialMonitor(E_inv @ rng.standard_normal(dA - r), 0.0, None,
                                               mu_A))  # fmt: skip

    # model B
    x_vis = S[:, :r] + noise * std[:r] * rng.standard_normal((n, r))
    s_inv = S[:, r:]
    if invisible == "nonlinear" and dA > r:
        x_inv = _scramble_invisible(s_inv / std[r:]) * std[r:]
    else:
        x_inv = s_inv
    XB = np.hstack([x_vis, x_inv, rng.standard_normal((n, n_nuis))])
    dB = dA + n_nuis
    T, v = _random_affine(rng, dB, condition)
    H_B = XB @ T.T + v

    W_A = rng.standard_normal((n_readout, dA)) / math.sqrt(dA)
    # h_A = mu_A + E [I_dA 0] T^-1 (h_B - v) when B is exactly equivalent
    back = E @ np.linalg.solve(T, np.eye(dB))[:dA]  # (d_A, d_B)
    W_B = W_A @ back
    return ModelPair(
        H_A=H_A.astype(dt), H_B=H_B.astype(dt), labels=labels, bank=bank,
        extra_monitors=extra, visible_basis=np.linalg.qr(dirs)[0] if r else dirs,
        invisible_basis=E_inv.copy(), readout_A=W_A, readout_B=W_B, T=T, v=v,
        params=dict(n_samples=n, d_A=dA, d_B=dB, n_linear=n_lin, n_quadratic=n_quad,
                    n_nuisance=n_nuis, noise=noise, invisible=invisible,
                    visible_variance=visible_variance, label_noise=label_noise,
                    condition=condition, random_state=random_state),
    )  # fmt: skip


def _warp(u: np.ndarray, strength: float) -> np.ndarray:
    """The non-linear scramble of standardised coordinates u: (1 - s) u + s sqrt(2) sin(2 u),
    non-monotone for s > 1/3 (so part of the information is destroyed, not just bent)."""
    return (1.0 - strength) * u + strength * math.sqrt(2.0) * np.sin(2.0 * u)


def concept_model_pair(
    n_samples: int = 3000,
    d_A: int = 32,
    *,
    n_concepts: int = 5,
    separation: float = 4.0,
    background: float = 0.3,
    within_class_noise: float = 0.0,
    visible_noise: float = 0.0,
    scramble: float = 0.0,
    destroyed: tuple = (),
    shuffle: bool = False,
    n_nuisance: int = 8,
    n_monitor_rows: Optional[int] = None,
    invisible: str = "nonlinear",
    condition: float = 10.0,
    dtype=np.float64,
    random_state: Optional[int] = None,
) -> ModelPair:
    """Two models that encode the same topics, with controlled ways for B to fall short of A.

    Every input belongs to one of `n_concepts` topics or to a background (probability
    `background`). Model A: h_A = mu_A + E [a * s; s_inv] with E a random rotation, s the r =
    n_concepts visible coordinates, s = separation * onehot(topic) + xi (xi ~ N(0, I): the
    within-class position of the input; the background has no topic coordinate), a a random
    per-coordinate scale and s_inv the other d_A - r coordinates. The bank holds one
    one-vs-rest monitor per topic, ``concept_k``: a LinearProbeClassifier fitted on
    `n_monitor_rows` separate labelled rows of A (default n_samples), operating point 0.
    `labels` (n, n_concepts) is the true topic membership of the paired rows.

    Model B: h_B = T [a * x; g(s_inv); nuisance] + v, where x starts as s (B is then an affine
    image of A on the visible span) and is degraded by, in this order:

    - within_class_noise w in [0, 1]: B keeps A's topics but only part of A's within-class
      position: xi becomes sqrt(1 - w^2) xi + w xi' with xi' independent (w = 1: B knows the
      topic and nothing else A's monitors read);
    - destroyed: indices of topics whose coordinate B does not carry (replaced by independent
      noise of the same variance): their monitors cannot transfer, the others can;
    - visible_noise: independent noise on every visible coordinate, relative to its standard
      deviation (blurs topics and positions alike: a weaker target model);
    - scramble s in [0, 1]: a non-linear warp of the (standardised, randomly rotated) visible
      coordinates, (1 - s) u + s sqrt(2) sin(2u), which no affine map undoes;
    - shuffle: the rows of H_B are permuted (a broken pairing: the control).

    g is the identity (invisible="affine") or a non-linear scramble of the invisible
    coordinates (invisible="nonlinear", the default: no affine map recovers all of h_A, only
    the visible part). `extra_monitors` holds "inside" (a random direction of the visible span)
    and "outside" (one of the invisible span).
    """
    n = _check_int(n_samples, "n_samples", 20)
    dA = _check_int(d_A, "d_A", 1)
    K = _check_int(n_concepts, "n_concepts", 1)
    if K > dA:
        raise ParameterError(f"n_concepts={K} topics need d_A >= {K}, got d_A={dA}.")
    separation = _check_nonneg(separation, "separation")
    background = _check_float(background, "background", 0.0, 1.0, closed="left")
    within_class_noise = _check_float(within_class_noise, "within_class_noise", 0.0, 1.0)
    visible_noise = _check_nonneg(visible_noise, "visible_noise")
    scramble = _check_float(scramble, "scramble", 0.0, 1.0)
    if isinstance(destroyed, (str, bytes)) or not hasattr(destroyed, "__iter__"):
        raise ParameterTypeError(
            f"destroyed must be a tuple of topic indices in [0, {K}), got {destroyed!r}."
        )
    destroyed = tuple(destroyed)
    for k in destroyed:
        check_param("destroyed entries", k, [Interval("int", 0, K, closed="left")])
    check_param("shuffle", shuffle, BOOL)
    n_nuis = _check_int(n_nuisance, "n_nuisance", 0)
    n_mon = n if n_monitor_rows is None else _check_int(n_monitor_rows, "n_monitor_rows", 20)
    check_param("invisible", invisible, [Options(("affine", "nonlinear"))])
    condition = _check_float(condition, "condition", 1.0)
    dt = _check_dtype(dtype)
    check_param("random_state", random_state, RANDOM_STATE)
    from .monitors.bank import PolynomialMonitor, ProbeBank
    from .probes.linear import LinearProbeClassifier

    rng = np.random.default_rng(random_state)
    scale = np.exp(rng.uniform(math.log(0.5), math.log(2.0), K))  # a
    inv_std = np.exp(rng.uniform(math.log(0.3), math.log(1.5), dA - K))
    E = _haar_orthogonal(rng, dA)
    mu_A = rng.normal(scale=_OFFSET_SCALE, size=dA)

    def draw(m):
        topic = np.where(rng.random(m) < background, -1, rng.integers(0, K, m))
        onehot = (topic[:, None] == np.arange(K)[None, :]).astype(np.float64)
        xi = rng.standard_normal((m, K))
        s_inv = rng.standard_normal((m, dA - K)) * inv_std
        return topic, onehot, xi, s_inv

    def model_a(onehot, xi, s_inv):
        return mu_A + np.hstack([(separation * onehot + xi) * scale, s_inv]) @ E.T

    # the monitors: fitted on separate labelled rows of A
    t_mon, oh_mon, xi_mon, inv_mon = draw(n_mon)
    H_mon = model_a(oh_mon, xi_mon, inv_mon)
    bank = ProbeBank(metadata={"model": "A", "source": "concept_model_pair"})
    for k in range(K):
        y = (t_mon == k).astype(np.int64)
        if y.min() == y.max():  # a topic no monitor row drew: make the classes exist
            y[:2] = [0, 1]
        bank.add(f"concept_{k}", LinearProbeClassifier(cv="gcv").fit(H_mon, y))

    topic, onehot, xi, s_inv = draw(n)
    H_A = model_a(onehot, xi, s_inv)
    labels = onehot.astype(np.int64)

    # model B
    w = within_class_noise
    x = separation * onehot + math.sqrt(1.0 - w * w) * xi + w * rng.standard_normal((n, K))
    sd = x.std(axis=0) + 1e-12
    for k in destroyed:
        x[:, k] = x[:, k].mean() + sd[k] * rng.standard_normal(n)
    x = x + visible_noise * sd * rng.standard_normal((n, K))
    if scramble > 0.0:
        R = _haar_orthogonal(rng, K)
        mean, sd2 = x.mean(axis=0), x.std(axis=0) + 1e-12
        u = ((x - mean) / sd2) @ R.T
        x = mean + (_warp(u, scramble) @ R) * sd2
    if invisible == "nonlinear" and dA > K:
        x_inv = _scramble_invisible(s_inv / inv_std) * inv_std
    else:
        x_inv = s_inv
    XB = np.hstack([x * scale, x_inv, rng.standard_normal((n, n_nuis))])
    dB = dA + n_nuis
    T, v = _random_affine(rng, dB, condition)
    H_B = XB @ T.T + v
    if shuffle:
        H_B = H_B[rng.permutation(n)]

    E_vis, E_inv = E[:, :K], E[:, K:]
    extra = ProbeBank(metadata={"model": "A"})
    extra.add("inside", PolynomialMonitor(E_vis @ rng.standard_normal(K), 0.0, None, mu_A))
    if dA > K:
        extra.add("outside", PolynomialMonitor(E_inv @ rng.standard_normal(dA - K), 0.0, None,
                                               mu_A))  # fmt: skip
    W_A = rng.standard_normal((2 * dA, dA)) / math.sqrt(dA)
    back = E @ np.linalg.solve(T, np.eye(dB))[:dA]
    return ModelPair(
        H_A=H_A.astype(dt), H_B=H_B.astype(dt), labels=labels, bank=bank,
        extra_monitors=extra, visible_basis=E_vis.copy(), invisible_basis=E_inv.copy(),
        readout_A=W_A, readout_B=W_A @ back, T=T, v=v,
        params=dict(n_samples=n, d_A=dA, d_B=dB, n_concepts=K, separation=separation,
                    background=background, within_class_noise=w, visible_noise=visible_noise,
                    scramble=scramble, destroyed=destroyed, shuffle=bool(shuffle),
                    n_nuisance=n_nuis, n_monitor_rows=n_mon, invisible=invisible,
                    condition=condition, random_state=random_state),
    )  # fmt: skip


# ---------------------------------------------------------------------------------- wide tasks
@dataclass
class WideTask:
    """A wide (LLM-width) hidden-state task from :func:`make_wide_interaction`.

    Attributes
    ----------
    X_train, X_test : ndarray of shape (n_train, d) and (n_test, d)
        Hidden states in the requested dtype (d = n_features).
    y_train, y_test : ndarray of int64
        ``task="pair"``: 1 when the two concatenated embeddings share their topic, else 0.
        ``task="topic"``: the topic (0 .. n_topics - 1) of the embedding.
    X_unlabelled : ndarray of shape (n_unlabelled, d)
        Further rows from the same distribution without labels (e.g. a whitening
        ``reference``); empty unless ``n_unlabelled > 0``.
    topics_train, topics_test : ndarray of int64, shape (n, 2) for pairs, (n, 1) otherwise
        The topic of each embedding.
    topic_basis : ndarray of shape (m, n_topics)
        Orthonormal directions of one embedding (m = d/2 for pairs, d otherwise) that carry
        the topic centroids.
    spectrum : ndarray of shape (m,)
        Variances of the embedding's background coordinates (decaying, mean 1), before the
        noise directions are added.
    name : str
        ``"wide_pair"`` or ``"wide_topic"``.
    params : dict
        The generator's arguments.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_unlabelled: np.ndarray
    topics_train: np.ndarray
    topics_test: np.ndarray
    topic_basis: np.ndarray
    spectrum: np.ndarray
    name: str
    params: dict = field(default_factory=dict)


def make_wide_interaction(
    n_samples: int = 5000,
    n_features: int = 768,
    *,
    task: str = "pair",
    n_topics: int = 5,
    separation: float = 5.0,
    decay: float = 1.0,
    n_noise_directions: int = 8,
    noise_scale: float = 1.0,
    n_unlabelled: int = 0,
    test_fraction: float = 0.2,
    dtype: type = np.float64,
    seed: Optional[int] = 0,
) -> WideTask:
    """Sentence-encoder-like hidden states at LLM widths, with a topic interaction to probe.

    One embedding (width m) is ``e = mu + c_topic + E (s * g) + noise``: a random offset mu;
    a topic centroid c_topic in a random ``n_topics``-dimensional subspace (the centroids are
    centred unit vectors times `separation`); background coordinates with a power-law
    spectrum, ``s_j^2 ~ j^-decay`` scaled to mean 1, rotated by a random orthogonal E; and
    `n_noise_directions` random coordinates replaced by pure noise of standard deviation
    ``noise_scale * s_1`` (as large as the top of the spectrum: directions that look
    important and carry nothing).

    ``task="pair"`` (the default): ``h = [e_a, e_b]`` (d = 2 m) for two inputs whose topics
    agree with probability 1/2, label 1 when they do. Every embedding has the same marginal
    distribution either way, so a linear probe stays at chance; the label is the bilinear
    form ``onehot(t_a) . onehot(t_b)``, read by a degree-2 probe whose Q couples the two
    halves' topic subspaces (rank 2 (n_topics - 1); a CP probe of rank n_topics - 1 holds it
    exactly). ``task="topic"``: ``h = e`` (d = m) and the label is its topic (multi-class,
    mostly linear: degree 2 adds a little).

    Parameters
    ----------
    n_samples : int, default=5000
        Labelled rows (train + test).
    n_features : int, default=768
        Width d (even for pairs: two embeddings of d/2).
    task : {"pair", "topic"}, default="pair"
    n_topics : int, default=5
        Number of topics (>= 2).
    separation : float, default=5.0
        Norm of the topic centroids, in units of the background's mean standard deviation.
    decay : float, default=1.0
        Exponent of the power-law spectrum of the background (0: isotropic).
    n_noise_directions : int, default=8
        High-variance pure-noise coordinates per embedding (at most m).
    noise_scale : float, default=1.0
        Their standard deviation relative to the largest background one.
    n_unlabelled : int, default=0
        Unlabelled rows drawn in addition (``X_unlabelled``).
    test_fraction : float, default=0.2
        Fraction, in (0, 1), of the labelled rows held out.
    dtype : {numpy.float32, numpy.float64}, default=numpy.float64
    seed : int or None, default=0

    Returns
    -------
    WideTask

    Examples
    --------
    >>> task = make_wide_interaction(n_samples=500, n_features=64, seed=1)
    >>> task.X_train.shape, task.name
    ((400, 64), 'wide_pair')
    """
    n = _check_int(n_samples, "n_samples", 4)
    d = _check_int(n_features, "n_features", 2)
    check_param("task", task, [Options(("pair", "topic"))])
    K = _check_int(n_topics, "n_topics", 2)
    separation = _check_nonneg(separation, "separation")
    decay = _check_nonneg(decay, "decay")
    n_noise = _check_int(n_noise_directions, "n_noise_directions", 0)
    noise_scale = _check_nonneg(noise_scale, "noise_scale")
    n_unl = _check_int(n_unlabelled, "n_unlabelled", 0)
    test_fraction = _check_float(test_fraction, "test_fraction", 0.0, 1.0, closed="neither")
    dt = _check_dtype(dtype)
    check_param("seed", seed, RANDOM_STATE)
    if task == "pair" and d % 2:
        raise ParameterError(f"task='pair' concatenates two embeddings: n_features must be even, "
                             f"got {d}.")  # fmt: skip
    m = d // 2 if task == "pair" else d
    if K > m:
        raise ParameterError(f"n_topics={K} needs embeddings of width >= {K}, got {m}.")
    n_test = int(round(test_fraction * n))
    if n_test < 1 or n - n_test < 2:
        raise ParameterError(
            f"n_samples={n} is too small for test_fraction={test_fraction}: the split would "
            f"leave {n - n_test} training and {n_test} test rows."
        )
    rng = np.random.default_rng(seed)
    E = _haar_orthogonal(rng, m)
    spectrum = np.arange(1, m + 1, dtype=np.float64) ** (-decay)
    spectrum /= spectrum.mean()
    sd = np.sqrt(spectrum)
    noisy = rng.choice(m, size=min(n_noise, m), replace=False)
    basis = _haar_orthogonal(rng, m)[:, :K]
    C = rng.standard_normal((K, K))
    C -= C.mean(axis=0)
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    centroids = separation * C @ basis.T  # (K, m)
    mu = rng.normal(scale=2.0, size=m)

    def embed(t: np.ndarray) -> np.ndarray:
        g = rng.standard_normal((t.shape[0], m)) * sd
        g[:, noisy] = rng.standard_normal((t.shape[0], noisy.size)) * (noise_scale * sd[0])
        return mu + centroids[t] + g @ E.T

    def draw(k: int):
        ta = rng.integers(0, K, k)
        if task == "topic":
            return embed(ta), ta.astype(np.int64), ta[:, None].astype(np.int64)
        same = rng.random(k) < 0.5
        tb = np.where(same, ta, (ta + rng.integers(1, K, k)) % K)
        X = np.hstack([embed(ta), embed(tb)])
        return X, same.astype(np.int64), np.column_stack([ta, tb]).astype(np.int64)

    X, y, topics = draw(n)
    X_unl = draw(n_unl)[0] if n_unl else np.empty((0, d))
    return WideTask(
        X_train=X[n_test:].astype(dt), y_train=y[n_test:], X_test=X[:n_test].astype(dt),
        y_test=y[:n_test], X_unlabelled=X_unl.astype(dt), topics_train=topics[n_test:],
        topics_test=topics[:n_test], topic_basis=basis, spectrum=spectrum,
        name=f"wide_{task}",
        params=dict(n_samples=n, n_features=d, task=task, n_topics=K, separation=separation,
                    decay=decay, n_noise_directions=n_noise, noise_scale=noise_scale,
                    n_unlabelled=n_unl, test_fraction=test_fraction, dtype=dt.name, seed=seed),
    )  # fmt: skip


__all__ += ["WideTask", "make_wide_interaction"]

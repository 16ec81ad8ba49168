"""The synthetic tasks of Lee & Kondor (2026), "Deep Minds and Shallow Probes": XOR, N-bit
parity and the circle, each a :class:`SyntheticTask` whose signal lives in a known
low-dimensional subspace of randomly scrambled (affinely transformed) coordinates."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .._params import BOOL, RANDOM_STATE, ParameterError, check_param
from ._checks import _check_dtype, _check_float, _check_int, _check_nonneg
from .transforms import _random_affine

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
    readout_subspace: Optional[np.ndarray] = None  # set by the generators

    @property
    def n_signal(self) -> int:
        """Number ``r`` of signal (latent) dimensions."""
        return int(self.relevant_subspace.shape[1])

    @property
    def chance_accuracy(self) -> float:
        """Majority-class rate on the test labels (accuracy of always predicting one class)."""
        p = float(np.mean(self.y_test))
        return max(p, 1.0 - p)


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

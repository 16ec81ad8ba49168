"""Hidden-state-like activations: linearly encoded concepts in anisotropic, offset
activations, and wide (LLM-width) tasks with a topic interaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .._params import RANDOM_STATE, Options, ParameterError, check_param
from ._checks import _check_dtype, _check_float, _check_int, _check_nonneg
from .transforms import _haar_orthogonal


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
    dtype: Any = np.float32,
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

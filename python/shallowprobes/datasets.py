"""Synthetic activation data for demos and tests (generated, never downloaded)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LinearConceptData", "make_linear_concepts"]


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
    if n_samples < 10 or n_features < 1 or n_concepts < 1:
        raise ValueError("need n_samples >= 10, n_features >= 1 and n_concepts >= 1.")
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

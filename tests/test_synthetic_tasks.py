"""The hierarchy of Lee & Kondor (2026) on the synthetic tasks, in scrambled coordinates.

* XOR and the circle: a degree-2 probe (exact QuadraticProbeClassifier, and the low-rank
  CPProbeClassifier) solves them, a linear probe stays at chance;
* 3-bit parity: degree 2 stays at chance too, while the task itself is learnable at degree 3;
* label noise caps the degree-2 probe at 1 - noise on noisy labels, not on the clean rule;
* the degree-2 probe (default gamma and alphas) is invariant to orthogonal maps and shifts of
  the inputs, but not to general invertible linear maps.

Every task uses the default scramble (random affine map with condition number <= 10).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import rel_err
from shallowprobes import CPProbeClassifier, LinearProbeClassifier, QuadraticProbeClassifier
from shallowprobes.datasets import make_circle, make_parity, make_xor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

# Size of the hierarchy tasks. The linear probe on XOR / circle is (close to) a constant
# predictor, so its test accuracy is about the majority rate of the *training* labels applied
# to the test labels: when train and test majorities differ it lands at 1 - chance_accuracy,
# 2 (chance - 0.5) below chance -- a property of the test-set size, not of the probe.
# Measured deviations lin - chance_accuracy (d = 20, default scramble, seeds 0..9):
#   n = 4000:  xor   0.0, -.048, 0.0, -.012, 0.0, -.076, 0.0, 0.0, -.022, -.028
#              circle -.054, 0.0, .010, -.012, -.012, 0.0, 0.0, .026, -.012, .002
#              (xor seed 5 and circle seed 0 break the 0.05 bound)
#   n = 8000:  worst |dev| .044 (xor seed 5), .034 (circle seed 5); parity3 seed 2: -.055
#   n = 12000: xor   0.0, 0.0, -.005, -.008, 0.0, -.005, 0.0, -.005, -.012, -.015
#              circle -.009, -.019, .004, .007, -.012, -.014, -.012, 0.0, -.005, 0.0
# At n = 12000 the worst |dev| over seeds 0..29 was .027 (xor), .029 (circle), .039 (linear
# and degree-2 probes on 3-bit parity), so the bounds below (0.05, parity 0.07) hold with
# margin for every seed tried, not just the ones used here.
N_SAMPLES = 12000
N_FEATURES = 20
SEEDS = range(6)
# CP fits are iterative (slower): they use fewer rows, which their accuracy bounds do not need.
CP_SAMPLES = 4000
CP_SEEDS = range(4)

_MAKERS = {"xor": make_xor, "circle": make_circle, "parity3": make_parity}


@functools.cache
def task(name, seed, n_samples=N_SAMPLES, **kwargs):
    """Cached task (tests must not modify its arrays)."""
    return _MAKERS[name](n_samples=n_samples, n_features=N_FEATURES, seed=seed, **kwargs)


def clean_labels(t):
    """The noise-free labelling rule, from the latent signal coordinates."""
    z = t.latent_test
    if t.name == "xor":
        return ((z[:, 0] > 0) != (z[:, 1] > 0)).astype(np.int64)
    if t.name == "circle":
        return (np.hypot(z[:, 0], z[:, 1]) < t.params["radius"]).astype(np.int64)
    raise ValueError(t.name)


def readout_basis(t):
    """Orthonormal basis of the directions that *read out* the signal: z_signal =
    (T^-1)[:r] (x - v), so the label depends on x only through the span of the first r rows of
    T^-1. (task.relevant_subspace spans T e_i instead, the directions along which the signal
    moves x; the two agree only for orthogonal T, and nuisance coordinates leak into the
    projection onto relevant_subspace when T is not orthogonal.)"""
    basis, _ = np.linalg.qr(np.linalg.inv(t.scramble_matrix)[: t.n_signal].T)
    return basis


def accuracy(est, t):
    est.fit(t.X_train, t.y_train)
    return float(np.mean(est.predict(t.X_test) == t.y_test))


# every seed with the default backend (the Rust core when built), one seed with numpy
HIERARCHY_CASES = [(s, "auto") for s in SEEDS] + [(0, "numpy")]
HIERARCHY_IDS = [f"seed{s}-{b}" for s, b in HIERARCHY_CASES]


# ------------------------------------------------------------------------------ XOR, circle
@pytest.mark.parametrize("name", ["xor", "circle"])
@pytest.mark.parametrize(("seed", "backend"), HIERARCHY_CASES, ids=HIERARCHY_IDS)
def test_degree2_probe_solves_task(name, seed, backend):
    t = task(name, seed)
    assert t.X_train.shape == (N_SAMPLES - N_SAMPLES // 4, N_FEATURES)
    acc = accuracy(QuadraticProbeClassifier(backend=backend), t)
    assert acc >= 0.97, (name, seed, acc)
    acc = accuracy(QuadraticProbeClassifier(cv="loo", scoring="accuracy", backend=backend), t)
    assert acc >= 0.97, (name, seed, "loo/accuracy", acc)


@pytest.mark.parametrize("name", ["xor", "circle"])
@pytest.mark.parametrize(("seed", "backend"), HIERARCHY_CASES, ids=HIERARCHY_IDS)
def test_linear_probe_stays_at_chance(name, seed, backend):
    t = task(name, seed)
    acc = accuracy(LinearProbeClassifier(backend=backend), t)
    assert abs(acc - t.chance_accuracy) <= 0.05, (name, seed, acc, t.chance_accuracy)


# ------------------------------------------------------------------------------ parity
@pytest.mark.parametrize(("seed", "backend"), HIERARCHY_CASES, ids=HIERARCHY_IDS)
def test_degree2_probe_cannot_do_3bit_parity(seed, backend):
    t = task("parity3", seed)
    assert t.n_signal == 3
    acc = accuracy(QuadraticProbeClassifier(backend=backend), t)
    assert abs(acc - t.chance_accuracy) <= 0.07, (seed, acc, t.chance_accuracy)
    acc = accuracy(LinearProbeClassifier(backend=backend), t)
    assert abs(acc - t.chance_accuracy) <= 0.05, (seed, acc, t.chance_accuracy)


def _degree3_logistic():
    return make_pipeline(
        PolynomialFeatures(3), StandardScaler(), LogisticRegression(C=1e4, max_iter=2000)
    )


@pytest.mark.parametrize("seed", range(4))
def test_3bit_parity_is_learnable_at_degree3(seed):
    """The same data as above, read out in the signal's 3 dimensions: a degree-3 model
    solves it, so 'degree 2 stays at chance' is a property of the degree, not of the data."""
    t = task("parity3", seed)
    B = readout_basis(t)
    model = _degree3_logistic().fit(t.X_train @ B, t.y_train)
    assert model.score(t.X_test @ B, t.y_test) >= 0.95


def test_3bit_parity_degree3_on_relevant_subspace_when_unscrambled_orthogonally():
    """With an orthogonal scramble (condition=1), relevant_subspace is the readout subspace
    and the projection onto it suffices."""
    t = task("parity3", 0, condition=1.0)
    B = t.relevant_subspace
    assert np.linalg.svd(B.T @ readout_basis(t), compute_uv=False).min() > 1 - 1e-9
    model = _degree3_logistic().fit(t.X_train @ B, t.y_train)
    assert model.score(t.X_test @ B, t.y_test) >= 0.95


# ------------------------------------------------------------------------------ CP probes
@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("seed", CP_SEEDS)
def test_cp_probe_solves_xor(rank, seed):
    """XOR's rule is the product of the two latent coordinates: rank 1 already suffices."""
    t = task("xor", seed, n_samples=CP_SAMPLES)
    est = CPProbeClassifier(rank=rank)
    acc = accuracy(est, t)
    assert acc >= 0.97, (rank, seed, acc)
    assert est.converged_.all()


@pytest.mark.parametrize("seed", CP_SEEDS)
def test_cp_rank2_solves_circle(seed):
    t = task("circle", seed, n_samples=CP_SAMPLES)
    acc = accuracy(CPProbeClassifier(rank=2), t)
    assert acc >= 0.95, (seed, acc)


def test_cp_rank1_cannot_do_circle():
    """The circle's Q is definite of rank 2, while (u v^T + v u^T)/2 is indefinite or of rank 1:
    a rank-1 CP probe falls well short (measured ~0.78)."""
    t = task("circle", 0, n_samples=CP_SAMPLES)
    assert accuracy(CPProbeClassifier(rank=1), t) <= 0.9


def test_cp_numpy_backend():
    t = task("xor", 0, n_samples=CP_SAMPLES)
    assert accuracy(CPProbeClassifier(rank=1, backend="numpy"), t) >= 0.97
    t = task("circle", 0, n_samples=CP_SAMPLES)
    assert accuracy(CPProbeClassifier(rank=2, backend="numpy"), t) >= 0.95


# ------------------------------------------------------------------------------ label noise
@pytest.mark.parametrize("name", ["xor", "circle"])
@pytest.mark.parametrize("seed", range(4))
def test_label_noise_caps_accuracy_on_noisy_labels(name, seed):
    t = task(name, seed, label_noise=0.1)
    clean = clean_labels(t)
    flipped = float(np.mean(clean != t.y_test))
    assert abs(flipped - 0.1) < 0.02  # the realised noise rate of the test split
    pred = QuadraticProbeClassifier().fit(t.X_train, t.y_train).predict(t.X_test)
    acc_noisy = float(np.mean(pred == t.y_test))
    acc_clean = float(np.mean(pred == clean))
    # the probe learns the rule despite 10% flipped training labels ...
    assert acc_clean >= 0.97, (name, seed, acc_clean)
    # ... and is then right on about 0.9 * 1 + 0.1 * 0 of the noisy test labels
    assert abs(acc_noisy - 0.9) <= 0.03, (name, seed, acc_noisy)
    assert abs(acc_noisy - (1.0 - flipped)) <= 0.02
    assert acc_clean > acc_noisy + 0.05


# ------------------------------------------------------------------------------ invariance
def _decision_values(X_train, y_train, X_test):
    return QuadraticProbeClassifier().fit(X_train, y_train).decision_function(X_test)


@pytest.mark.parametrize("name", ["xor", "circle"])
def test_degree2_probe_invariant_to_orthogonal_maps_and_shifts(name):
    """Kernel <u, v> + gamma <u, v>^2 of the centred rows, gamma = 1 / mean ||u||^2, default
    alpha grid relative to the Gram's trace: all unchanged by h -> O h + s with O orthogonal."""
    t = task(name, 1, n_samples=4000)
    rng = np.random.default_rng(7)
    orth, _ = np.linalg.qr(rng.standard_normal((N_FEATURES, N_FEATURES)))
    shift = rng.normal(scale=10.0, size=N_FEATURES)
    ref = _decision_values(t.X_train, t.y_train, t.X_test)
    moved = _decision_values(t.X_train @ orth.T + shift, t.y_train, t.X_test @ orth.T + shift)
    assert rel_err(moved, ref) <= 1e-6

    # a general invertible map changes the kernel (hence gamma, the penalty and alpha): the
    # decision values move by far more than the tolerance above, so the check can fail
    A = rng.standard_normal((N_FEATURES, N_FEATURES))
    assert np.linalg.cond(A) < 1e3
    general = _decision_values(t.X_train @ A.T + shift, t.y_train, t.X_test @ A.T + shift)
    assert rel_err(general, ref) > 1e-3

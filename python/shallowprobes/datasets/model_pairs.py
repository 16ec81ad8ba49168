"""Paired hidden states of two synthetic models, with a bank of monitors on model A: for
trying monitor transfer where the answer is known."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .._params import (
    BOOL,
    RANDOM_STATE,
    Interval,
    Options,
    ParameterError,
    ParameterTypeError,
    check_param,
)
from ._checks import _check_dtype, _check_float, _check_int, _check_nonneg
from .transforms import _OFFSET_SCALE, _haar_orthogonal, _random_affine

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
    from ..monitors.bank import ProbeBank
    from ..monitors.monitor import PolynomialMonitor

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
    from ..monitors.bank import ProbeBank
    from ..monitors.monitor import PolynomialMonitor
    from ..probes.linear import LinearProbeClassifier

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

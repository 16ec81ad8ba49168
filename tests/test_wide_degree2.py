"""Degree 2 at LLM widths: CP probes started from the exact probe or a sketch, and the
coordinate-stable options that survive d ~ n.

* CP rank R started from an exact probe whose Q fits the rank reproduces the exact probe's
  predictions (1e-6), on the primal and on the dual route, for regression and classifiers;
* on the synthetic wide tasks (`datasets.make_wide_interaction`) CP ranks 4 and 8 reach the
  exact probe's AUROC (within 0.01), the linear probe stays at chance;
* the L-BFGS polish follows its documented stopping rule and never increases J_F;
* the spectral cut-off (quadratic_rank) and reference whitening keep their stated groups
  (random group elements, 1e-6), and maps outside the group change the predictions;
* the generator itself.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import rel_err
from shallowprobes import (
    CPProbe,
    CPProbeClassifier,
    LinearProbeClassifier,
    QuadraticProbe,
    QuadraticProbeClassifier,
)
from shallowprobes.datasets import WideTask, make_wide_interaction
from shallowprobes.errors import GridEdgeWarning, ParameterError
from shallowprobes.stability import Affine, DiagonalAffine, Euclidean
from sklearn.metrics import roc_auc_score

TOL = 1e-6  # invariance and reproduction: relative change of the predictions
BROKEN = 1e-3


def quiet(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        return est.fit(X, y)


def rows(seed, n, d, spread=1.0):
    """Non-isotropic rows with an offset and a quadratic + linear target."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, d))
    Q1 = np.linalg.qr(rng.normal(size=(d, d)))[0]
    X = (Z * np.exp(rng.uniform(-spread, spread, size=d))) @ Q1.T + rng.normal(scale=4, size=d)
    y = 1.5 * Z[:, 0] * Z[:, 1] - Z[:, 2] ** 2 + 0.5 * Z[:, 3 % d] + 0.3 * rng.normal(size=n)
    return X, y


# ------------------------------------------------------------------------------ reproduction
@pytest.mark.parametrize("metric", ["euclidean", "whiten"])
def test_exact_start_reproduces_the_exact_probe_primal(backend, metric):
    """d = 3 <= R = 3: any Q fits the rank, so the start is the exact probe, already
    stationary for J_F, and the CP predicts what the exact probe predicts."""
    X, y = rows(0, 300, 3)
    Xte = rows(1, 50, 3)[0]
    exact = quiet(QuadraticProbe(metric=metric, backend=backend), X, y)
    assert exact.solver_ == "primal"
    cp = quiet(CPProbe(rank=3, init="exact", metric=metric, backend=backend), X, y)
    assert cp.init_ == "exact" and cp.converged_.all() and cp.n_iter_.tolist() == [1]
    assert cp.alpha_ == pytest.approx(exact.alpha_, rel=1e-12)
    assert cp.gamma_ == pytest.approx(exact.gamma_, rel=1e-12)
    assert rel_err(cp.predict(Xte), exact.predict(Xte)) <= TOL
    assert rel_err(cp.quadratic_, exact.quadratic_) <= TOL


def test_exact_start_reproduces_the_exact_probe_dual(backend):
    """n = 9 rows, d = 20: the dual route's Q = gamma U^T diag(c) U has rank <= 8 (centred
    rows), so rank 8 holds it exactly."""
    X, y = rows(2, 9, 20)
    Xte = rows(3, 40, 20)[0]
    exact = quiet(QuadraticProbe(backend=backend), X, y)
    assert exact.solver_ == "dual"
    cp = quiet(CPProbe(rank=8, init="exact", backend=backend), X, y)
    assert cp.converged_.all()
    assert rel_err(cp.predict(Xte), exact.predict(Xte)) <= TOL


def test_exact_start_reproduces_a_low_rank_exact_classifier(backend):
    """Rows in a 3-dimensional affine subspace of R^10: the exact Q has rank <= 3 (the
    minimum-norm solution lives in the rows' span); CP rank 3, 3 classes (one probe per
    one-vs-rest column)."""
    rng = np.random.default_rng(4)
    B = rng.normal(size=(3, 10))
    Zl = rng.normal(size=(240, 3))
    X = Zl @ B + 2.0
    labels = np.digitize(Zl[:, 0] * Zl[:, 1] + 0.3 * Zl[:, 2], [-0.3, 0.3])
    Xte = rng.normal(size=(60, 3)) @ B + 2.0
    exact = quiet(QuadraticProbeClassifier(backend=backend), X, labels)
    cp = quiet(CPProbeClassifier(rank=3, init="exact", backend=backend), X, labels)
    assert exact.classes_.tolist() == cp.classes_.tolist() == [0, 1, 2]
    # per-column alpha and gamma: the exact probe shares them, so compare per column fits
    for t in range(3):
        col = quiet(QuadraticProbe(backend=backend, gamma=float(cp.gamma_[t])), X,
                    np.where(labels == t, 1.0, -1.0))  # fmt: skip
        assert rel_err(cp.decision_function(Xte)[:, t], col.predict(Xte)) <= TOL


# ------------------------------------------------------------------------------ wide tasks
def auroc(est, task):
    s = est.decision_function(task.X_test)
    return roc_auc_score(task.y_test, s if s.ndim == 1 else s[:, 0])


@pytest.mark.parametrize("seed", [0, 1])
def test_cp_reaches_the_exact_probe_on_a_wide_pair_task(seed):
    """d = 256 (p = 33k degree-2 features) and 1200 training rows: the dual regime."""
    task = make_wide_interaction(1500, 256, seed=seed)
    exact = quiet(QuadraticProbeClassifier(), task.X_train, task.y_train)
    assert exact.solver_ == "dual"
    linear = LinearProbeClassifier().fit(task.X_train, task.y_train)
    a_exact, a_lin = auroc(exact, task), auroc(linear, task)
    assert a_lin < 0.6  # an interaction: the linear probe stays at chance
    assert a_exact > a_lin + 0.2
    for rank in (4, 8):
        cp = quiet(CPProbeClassifier(rank=rank), task.X_train, task.y_train)
        assert cp.init_ == "sketch" and cp.converged_.all()
        assert auroc(cp, task) >= a_exact - 0.01, (rank, auroc(cp, task), a_exact)


def test_cp_and_cut_off_on_a_wide_topic_task():
    """Five topics of single embeddings (multi-class, one CP per one-vs-rest column)."""
    task = make_wide_interaction(1000, 128, task="topic", separation=1.2, seed=3)
    # every estimator with its defaults (the exact probe's default searches g0 x 0.1, 1, 10)
    exact = quiet(QuadraticProbeClassifier(), task.X_train, task.y_train)
    assert exact.cv_results_["gammas"].size >= 3
    cp = quiet(CPProbeClassifier(rank=4), task.X_train, task.y_train)
    cut = quiet(QuadraticProbeClassifier(quadratic_rank="auto"), task.X_train, task.y_train)
    acc = {n: e.score(task.X_test, task.y_test) for n, e in
           (("exact", exact), ("cp", cp), ("cut", cut))}  # fmt: skip
    assert acc["exact"] > 0.5, acc  # chance is 0.2
    assert acc["cp"] >= acc["exact"] - 0.03 and acc["cut"] >= acc["exact"] - 0.03, acc


def test_whiten_cut_off_survives_d_close_to_n():
    """metric="whiten" alone falls towards chance at d / n ~ 0.2; with the spectral cut-off
    of the quadratic block (chosen by refitting CV) it keeps the signal."""
    task = make_wide_interaction(1000, 160, seed=2)
    full = quiet(QuadraticProbeClassifier(metric="whiten"), task.X_train, task.y_train)
    cut = quiet(QuadraticProbeClassifier(metric="whiten", quadratic_rank="auto"), task.X_train,
                task.y_train)  # fmt: skip
    assert cut.solver_ == "subspace" and cut.quadratic_rank_ in (1, 2, 4, 8, 16)
    res = cut.cv_results_
    assert res["quadratic_ranks"] == [1, 2, 4, 8, 16]
    assert res["quadratic_rank_scores"].shape[0] == 5
    assert np.linalg.matrix_rank(cut.quadratic_[0], tol=1e-10 * abs(cut.quadratic_).max()) \
        <= cut.quadratic_rank_  # fmt: skip
    assert auroc(cut, task) > 0.9 and auroc(cut, task) > auroc(full, task) + 0.1


# ------------------------------------------------------------------------------ the polish
def objective(est, X, y):
    """J_F = ||y - f||^2 + alpha ||w||^2 + (alpha / gamma) ||Q||_F^2 (euclidean metric, w in
    centred coordinates), from public attributes."""
    Q, lin = est.quadratic_, est.linear_
    w = lin + 2.0 * Q @ est.centre_
    f = est.predict(X)
    return float(np.sum((y - f) ** 2)) + est.alpha_ * float(w @ w) + (
        est.alpha_ / est.gamma_
    ) * float(np.sum(Q * Q))


@pytest.mark.parametrize("init", ["exact", "sketch"])
def test_polish_never_increases_its_objective_and_stops_by_the_rule(init):
    X, _ = rows(5, 400, 8)
    # three positive curvature directions: more than a rank-2 CP holds, so the start (the
    # exact probe, or the probe on the 4-dimensional sketch) is not stationary
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    y = Z[:, 0] ** 2 + 0.8 * Z[:, 1] ** 2 + 0.6 * Z[:, 2] ** 2 - 0.4 * Z[:, 3] * Z[:, 4] + Z[:, 5]
    y = y + 0.3 * np.random.default_rng(5).normal(size=400)
    tol = 1e-6
    kw = dict(rank=2, init=init, gamma="scale", alphas=[3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        final = CPProbe(tol=tol, max_iter=500, **kw).fit(X, y)
        T = int(final.n_iter_[0])
        assert final.converged_.all() and 3 <= T < 500
        Js = [objective(CPProbe(tol=0.0, max_iter=t, **kw).fit(X, y), X, y)
              for t in range(1, T + 1)]  # fmt: skip
    Js = np.array(Js)
    assert np.all(np.diff(Js) <= 1e-12 * Js[0])
    assert Js[-1] < Js[0]
    # converged at the first t >= 2 with J_{t-2} - J_t <= tol J_t (J_0: the start)
    for t in range(3, T):
        assert Js[t - 3] - Js[t - 1] > tol * Js[t - 1], t
    assert objective(final, X, y) == pytest.approx(Js[-1], rel=1e-12)


def test_max_iter_bounds_the_polish_with_a_warning():
    from shallowprobes.probes.cp import ConvergenceWarning

    X, y = rows(6, 300, 6)
    with pytest.warns(ConvergenceWarning, match="L-BFGS"):
        est = quiet(CPProbe(rank=2, init="exact", max_iter=2, tol=0.0), X, y)
    assert est.n_iter_.tolist() == [2] and not est.converged_.any()


# ------------------------------------------------------------------------------ invariance
def transformed(make, X, y, Xte, g, reference=None, moved_reference=True):
    kw = {}
    if reference is not None:
        kw["reference"] = g.apply(reference) if moved_reference else reference
    base = quiet(make(**({"reference": reference} if reference is not None else {})), X, y)
    moved = quiet(make(**kw), g.apply(X), y)
    return rel_err(moved.predict(g.apply(Xte)), base.predict(Xte))


CUT = dict(quadratic_rank=[1, 2, 4])
OPTIONS = {
    "euclidean-cut": (lambda **kw: QuadraticProbe(**CUT, **kw), Euclidean(shift_scale=5.0)),
    "standardize-cut": (lambda **kw: QuadraticProbe(metric="standardize", **CUT, **kw),
                        DiagonalAffine(condition=30.0, permute=True, shift_scale=5.0)),
    "whiten-cut": (lambda **kw: QuadraticProbe(metric="whiten", **CUT, **kw),
                   Affine(condition=30.0, shift_scale=5.0)),
    "whiten-cut-kfold": (lambda **kw: QuadraticProbe(metric="whiten", cv=3, quadratic_rank=3,
                                                     **kw),
                         Affine(condition=30.0, shift_scale=5.0)),
    "cp-sketch-whiten": (lambda **kw: CPProbe(rank=2, init="sketch", metric="whiten", tol=1e-12,
                                              max_iter=2000, **kw),
                         Affine(condition=30.0, shift_scale=5.0)),
    "cp-sketch-euclidean": (lambda **kw: CPProbe(rank=2, init="sketch", tol=1e-12, max_iter=2000,
                                                 **kw), Euclidean(shift_scale=5.0)),
}  # fmt: skip


@pytest.mark.parametrize("name", list(OPTIONS))
def test_options_keep_their_invariance_group(name):
    make, group = OPTIONS[name]
    X, y = rows(7, 300, 6)
    Xte = rows(8, 60, 6)[0]
    for seed in (11, 12, 13):
        change = transformed(make, X, y, Xte, group.sample(6, seed))
        assert change <= TOL, f"{name}: relative change {change:.3e} (seed {seed})"


@pytest.mark.parametrize(
    "name,outside",
    [
        ("euclidean-cut", Affine(condition=30.0, shift_scale=5.0)),
        ("standardize-cut", Euclidean(shift_scale=5.0)),
        ("cp-sketch-euclidean", Affine(condition=30.0, shift_scale=5.0)),
    ],
)
def test_maps_outside_the_group_change_predictions(name, outside):
    make, _ = OPTIONS[name]
    X, y = rows(7, 300, 6)
    Xte = rows(8, 60, 6)[0]
    assert transformed(make, X, y, Xte, outside.sample(6, 21)) > BROKEN


@pytest.mark.parametrize("cut", [None, [1, 2, 4]], ids=["full", "cut"])
def test_reference_whitening_is_invariant_when_the_reference_moves_too(cut):
    """reference= (e.g. unlabelled rows, more than the labelled ones): invariant under affine
    maps applied to the training rows and the reference together; a reference held fixed
    breaks it."""
    X, y = rows(9, 200, 6)
    Xte = rows(10, 60, 6)[0]
    # from another distribution than the training rows
    R = rows(11, 1000, 6, spread=1.3)[0] * np.array([1.0, 6.0, 0.2, 1.0, 3.0, 0.4]) + 2.0

    def make(**kw):
        return QuadraticProbe(metric="whiten", quadratic_rank=cut, **kw)

    for seed in (31, 32):
        g = Affine(condition=30.0, shift_scale=5.0).sample(6, seed)
        assert transformed(make, X, y, Xte, g, reference=R) <= TOL
        assert transformed(make, X, y, Xte, g, reference=R, moved_reference=False) > BROKEN


# ------------------------------------------------------------------------------ misc
def test_cut_off_route_has_no_partial_fit_and_torch_parity():
    X, y = rows(12, 200, 6)
    est = QuadraticProbe(quadratic_rank=2)
    with pytest.raises(AttributeError, match="quadratic_rank"):
        est.partial_fit  # noqa: B018
    torch = pytest.importorskip("torch")
    host = quiet(QuadraticProbe(quadratic_rank=[1, 2]), X, y)
    dev = quiet(QuadraticProbe(quadratic_rank=[1, 2], backend="torch"), torch.from_numpy(X), y)
    assert dev.quadratic_rank_ == host.quadratic_rank_
    assert rel_err(np.asarray(dev.predict(X)), host.predict(X)) <= 1e-8
    cp_host = quiet(CPProbe(rank=2, init="sketch"), X, y)
    cp_dev = quiet(CPProbe(rank=2, init="sketch", backend="torch"), torch.from_numpy(X), y)
    assert rel_err(cp_dev.predict(torch.from_numpy(X)).numpy(), cp_host.predict(X)) <= 1e-8


def test_wide_generator():
    task = make_wide_interaction(600, 64, n_unlabelled=100, seed=5)
    assert isinstance(task, WideTask) and task.name == "wide_pair"
    assert task.X_train.shape == (480, 64) and task.X_test.shape == (120, 64)
    assert task.X_unlabelled.shape == (100, 64)
    assert set(np.unique(task.y_train)) == {0, 1} and 0.35 < task.y_train.mean() < 0.65
    np.testing.assert_array_equal(task.y_train, task.topics_train[:, 0] == task.topics_train[:, 1])
    assert task.topic_basis.shape == (32, 5) and task.spectrum.shape == (32,)
    np.testing.assert_allclose(task.spectrum.mean(), 1.0)
    again = make_wide_interaction(600, 64, n_unlabelled=100, seed=5)
    np.testing.assert_array_equal(again.X_train, task.X_train)
    topic = make_wide_interaction(300, 40, task="topic", n_topics=3, dtype=np.float32, seed=1)
    assert topic.X_train.dtype == np.float32 and topic.name == "wide_topic"
    assert set(np.unique(topic.y_train)) == {0, 1, 2}
    for bad in (dict(n_features=63), dict(n_topics=40, n_features=64), dict(task="xor"),
                dict(separation=-1.0), dict(test_fraction=1.0)):  # fmt: skip
        with pytest.raises(ParameterError):
            make_wide_interaction(**{"n_samples": 600, "n_features": 64, **bad})


def test_refitting_cv_equals_an_explicit_refit_loop():
    """The refitting K-fold CV of the subspace probe (block elimination against one
    eigendecomposition per fold) equals refitting scikit-learn's Ridge fold by fold on the
    same per-fold subspaces."""
    from shallowprobes.backends import NUMPY_OPS
    from shallowprobes.solve import features as _quadratic
    from shallowprobes.solve.subspace import RefitCV, SubspaceFeatureMap, WhitenedRows
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(13)
    n, d = 250, 10
    Z = rng.normal(size=(n, d)) * np.linspace(0.5, 2.0, d)
    Z -= Z.mean(axis=0)
    Y = Z[:, :1] * Z[:, 1:2] + 0.3 * rng.normal(size=(n, 1))
    est = QuadraticProbe()
    cv = RefitCV(est, Z, Y, 4, None, NUMPY_OPS)
    white = WhitenedRows(Z, NUMPY_OPS)
    _, pair_b, _ = _quadratic.pairs(4)
    assign = np.arange(n) % 5
    for m, g in [(1, 0.1), (3, 1.0), (4, 0.05)]:
        ours = cv.sse(m, g)[:, 0]
        ref = np.zeros_like(ours)
        for f in range(5):
            tr, ho = assign != f, assign == f
            C = white.directions(Y[tr] - Y[tr].mean(axis=0), 4, np.flatnonzero(tr))
            F = SubspaceFeatureMap(C, np.sqrt(g))(Z)[:, np.r_[0:d, d + np.flatnonzero(pair_b < m)]]
            Fc = F[tr] - F[tr].mean(axis=0)
            for j, a in enumerate(np.logspace(-6, 3, 19) * np.trace(Fc.T @ Fc) / F.shape[1]):
                fit = Ridge(alpha=a, solver="svd").fit(F[tr], Y[tr, 0])
                ref[j] += np.sum((fit.predict(F[ho]) - Y[ho, 0]) ** 2)
        assert rel_err(ours, ref) <= 1e-10, (m, g)

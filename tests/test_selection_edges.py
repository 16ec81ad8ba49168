"""Alpha and gamma selection at the ends of their grids, and ties.

* exact CV ties go to the larger alpha (more regularisation) and to the smaller gamma,
  whatever the order of the grid;
* default grids are extended (alpha: 3 decades at a time, at most twice per side; gamma: a
  factor of 10, at most twice per side) while the choice sits at an edge where the score
  still improves; with per-target selection each target's grid grows on its own, so a
  multi-target fit and a sweep pick exactly what separate fits pick;
* a choice left at an edge of its grid gives a GridEdgeWarning -- for every estimator --
  and a plateau at the edge, or an interior choice, gives none;
* the default gamma grid starts at g0 x (0.1, 1, 10) on both routes; gamma="scale" is g0.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
from shallowprobes import (
    CPProbe,
    CPProbeClassifier,
    LinearProbe,
    LinearProbeClassifier,
    QuadraticProbe,
    QuadraticProbeClassifier,
)
from shallowprobes.errors import GridEdgeWarning
from shallowprobes.solve.ridge import EXTEND_POINTS, best_index, edge_side, select_alpha

SEARCH_FACTORS = np.array([0.1, 1.0, 10.0])


@contextlib.contextmanager
def no_edge_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", GridEdgeWarning)
        yield


def separable(seed=0, n=80, d=4):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, d)) + 6.0 * (2 * y[:, None] - 1) * np.eye(d)[0]
    return X, y


def mean_eig(X):
    Xc = X - X.mean(axis=0)
    return float(np.trace(Xc.T @ Xc)) / X.shape[1]


# ------------------------------------------------------------------------------ ties
def test_best_index_breaks_ties_toward_the_preferred_value():
    scores = np.array([0.9, 1.0, 1.0, 0.7, 1.0])
    alphas = np.array([1.0, 10.0, 0.1, 100.0, 3.0])
    assert best_index(scores, alphas) == 1  # the largest alpha among the tied
    assert best_index(scores, -alphas) == 2  # the smallest (gamma's rule)
    # NaN is the worst score; ties within round-off count
    assert best_index(np.array([np.nan, 1.0, 1.0 + 1e-15]), np.array([5.0, 1.0, 2.0])) == 2
    per = np.array([[1.0, 0.2], [1.0, 0.3], [0.5, 0.3]])
    np.testing.assert_array_equal(best_index(per, np.array([1.0, 2.0, 3.0]), axis=0), [1, 2])


@pytest.mark.parametrize("cv", ["loo", 4])
def test_tied_accuracy_chooses_the_largest_alpha(backend, cv):
    """Separable classes: every alpha of the grid reaches accuracy 1 (a five-way tie, as on
    the real topic task of the issue); the most regularised probe is kept."""
    X, y = separable()
    grid = np.array([1e-3, 1e-2, 0.1, 1.0, 10.0])
    with no_edge_warning():  # tied at the edge: a plateau, not an improving edge
        clf = LinearProbeClassifier(alphas=grid, cv=cv, scoring="accuracy", backend=backend)
        clf.fit(X, y)
    assert np.all(clf.cv_results_["mean_scores"] == 1.0)
    assert clf.alpha_ == 10.0
    shuffled = LinearProbeClassifier(alphas=grid[[3, 0, 4, 2, 1]], cv=cv, scoring="accuracy",
                                     backend=backend).fit(X, y)  # fmt: skip
    assert shuffled.alpha_ == 10.0
    quad = QuadraticProbeClassifier(alphas=grid, gamma=0.1, cv=cv, scoring="accuracy",
                                    backend=backend).fit(X, y)  # fmt: skip
    assert quad.alpha_ == 10.0


def test_tied_gammas_choose_the_smallest():
    probe = QuadraticProbe(gamma=[3.0, 1.0, 2.0])
    from shallowprobes.solve.ridge import RidgeSolution

    def fit_one(g):
        return RidgeSolution(None, None, np.array([1.0]), np.array([0]), np.ones((1, 1)),
                         np.ones(1))  # fmt: skip

    gammas, _, best = probe._search_gammas(np.array([3.0, 1.0, 2.0]), fit_one)
    np.testing.assert_array_equal(gammas, [3.0, 1.0, 2.0])  # as given: no extension
    assert gammas[best] == 1.0


# ------------------------------------------------------------------------------ extension
def test_select_alpha_extends_a_default_grid_until_the_peak_is_inside():
    calls = []

    def scores(grid):
        calls.append(np.asarray(grid).copy())
        s = -((np.log10(grid) - 4.2) ** 2)  # peak at 10^4.2, beyond the grid's 10^3
        return s[:, None], s

    grid = np.logspace(-6, 3, 19)
    alphas, per, joint, idx, edges, searched = select_alpha(scores, grid, True, False)
    assert len(calls) == 2 and calls[1].size == EXTEND_POINTS  # one extension, upwards
    assert np.all(np.diff(alphas) > 0) and alphas.size == 19 + EXTEND_POINTS
    assert np.isclose(alphas[idx[0]], 10**4.0)
    assert edges == [None]
    # an explicit grid is never extended; its edge choice is reported
    alphas, _, _, idx, edges, _ = select_alpha(scores, grid, False, False)
    assert alphas.size == 19 and idx[0] == 18 and edges == ["high"]
    # at most two extensions per side, then the edge is reported
    def far(g):
        s = -((np.log10(g) - 20.0) ** 2)
        return s[:, None], s

    alphas, _, _, idx, edges, _ = select_alpha(far, grid, True, False)
    assert alphas.size == 19 + 2 * EXTEND_POINTS and edges == ["high"]
    assert np.isclose(alphas.max(), 1e9)


def test_edge_side_ignores_a_plateau():
    grid = np.array([1.0, 10.0, 100.0])
    assert edge_side(np.array([-1.0, -2.0, -3.0]), grid, 0) == "low"
    assert edge_side(np.array([-3.0, -2.0, -1.0]), grid, 2) == "high"
    assert edge_side(np.array([-1.0, -1.0 - 1e-9, -3.0]), grid, 0) is None  # flat
    assert edge_side(np.array([-2.0, -1.0, -3.0]), grid, 1) is None  # interior
    assert edge_side(np.array([1.0]), np.array([5.0]), 0) is None  # a single value


def test_default_grid_reaches_below_its_start_when_needed(backend):
    """A direction with tiny variance carries the signal: the best alpha lies far below
    1e-6 x the mean eigenvalue, where the default grid used to stop."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 6))
    X[:, 0] *= 1e-4
    y = 1e4 * X[:, 0] + 0.01 * rng.normal(size=2000)
    probe = LinearProbe(backend=backend).fit(X, y)
    scale = mean_eig(X)
    assert probe.alphas_.size > 19
    assert probe.alphas_.min() < 1e-6 * scale * 0.99
    assert probe.alpha_ < 1e-6 * scale * 0.99
    assert probe.score(X, y) > 0.999
    # the extended grid is reported whole and sorted, with a score for each alpha
    assert np.all(np.diff(probe.alphas_) > 0)
    assert probe.cv_results_["scores"].shape == (probe.alphas_.size, 1)


# ------------------------------------------------------------------------------ warnings
def strong_signal(seed=1, n=300, d=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * 2.0 + 1.0
    y = X @ rng.normal(size=d) + 0.05 * rng.normal(size=n)
    return X, y


@pytest.mark.parametrize(
    "make",
    [
        lambda: LinearProbe(alphas=[1e3, 1e4, 1e5]),
        lambda: QuadraticProbe(alphas=[1e3, 1e4, 1e5], gamma=0.05),
        lambda: QuadraticProbe(alphas=[1e3, 1e4, 1e5], gamma=0.05, solver="dual"),
        lambda: CPProbe(rank=1, alphas=[1e3, 1e4, 1e5], gamma=0.05),
        lambda: CPProbe(rank=1, alphas=[1e3, 1e4, 1e5], gamma=0.05, init="sketch"),
        lambda: CPProbe(rank=1, alphas=[1e3, 1e4, 1e5], init="moments"),
    ],
    ids=["linear", "quad-primal", "quad-dual", "cp-exact", "cp-sketch", "cp-als"],
)
def test_alpha_at_the_lower_edge_warns(make):
    X, y = strong_signal()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        make().fit(X, y)
    hits = [r for r in rec if issubclass(r.category, GridEdgeWarning)]
    assert len(hits) == 1, [str(r.message) for r in rec]
    msg = str(hits[0].message)
    assert "alpha" in msg and "smallest" in msg and "alphas=" in msg
    assert hits[0].filename == __file__  # points at the caller's line


def test_alpha_at_the_upper_edge_warns_and_interior_does_not():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 40))
    y = X[:, 0] + 2.0 * rng.normal(size=60)  # n ~ d: needs heavy regularisation
    scale = mean_eig(X)
    with pytest.warns(GridEdgeWarning, match="largest"):
        LinearProbe(alphas=np.array([1e-6, 1e-5, 1e-4]) * scale).fit(X, y)
    with no_edge_warning():
        probe = LinearProbe(alphas=np.logspace(-3, 4, 15) * scale).fit(X, y)
    assert 0 < list(probe.alphas_).index(probe.alpha_) < 14


def test_classifier_and_per_target_warnings_count_targets():
    X, y = strong_signal()
    Y = np.column_stack([y, X[:, 0] + 0.01 * X[:, 1]])
    with pytest.warns(GridEdgeWarning, match="for 2 of 2 targets"):
        LinearProbe(alphas=[1e3, 1e4], alpha_per_target=True).fit(X, Y)
    labels = (y > np.median(y)).astype(int)
    with pytest.warns(GridEdgeWarning, match="alpha"):
        LinearProbeClassifier(alphas=[1e4, 1e5, 1e6]).fit(X, labels)


def test_gamma_at_an_edge_of_an_explicit_grid_warns():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 30))
    y = 2.0 * X[:, 0] * X[:, 1] + X[:, 2] + 0.3 * rng.normal(size=200)
    g0 = 1.0 / np.mean(np.sum((X - X.mean(axis=0)) ** 2, axis=1))
    low = [1e-3 * g0, 1e-2 * g0]  # the quadratic block far too heavily penalised
    for make in (lambda: QuadraticProbe(gamma=low),
                 lambda: CPProbe(rank=1, gamma=low, init="exact")):  # fmt: skip
        with pytest.warns(GridEdgeWarning, match="gamma.*largest"):
            make().fit(X, y)
    with no_edge_warning():  # the default grid (extended if need be) finds the inside
        QuadraticProbe().fit(X, y)


def test_plain_fits_with_an_interior_optimum_do_not_warn(backend):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 5))
    y = X[:, 0] * X[:, 1] + X[:, 2] + 0.5 * rng.normal(size=300)
    with no_edge_warning():
        LinearProbe(backend=backend).fit(X, y)
        QuadraticProbe(backend=backend, gamma=[0.003, 0.01, 0.03, 0.1, 0.3]).fit(X, y)


# ------------------------------------------------------------------------------ gamma grid
@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_default_gamma_grid_is_searched_on_both_routes(backend, solver):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(120, 5)) * 3.0 + 2.0
    y = X[:, 0] * X[:, 1] + X[:, 2] + 0.3 * rng.normal(size=120)
    g0 = 1.0 / np.mean(np.sum((X - X.mean(axis=0)) ** 2, axis=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        probe = QuadraticProbe(solver=solver, backend=backend).fit(X, y)
    gammas = probe.cv_results_["gammas"]
    assert gammas.size >= 3
    for f in SEARCH_FACTORS:  # the starting grid is part of what was searched
        assert np.any(np.isclose(gammas, f * g0, rtol=1e-10))
    assert np.all(np.diff(gammas) > 0)
    assert probe.gamma_ in gammas
    ratios = gammas / g0
    assert ratios.min() >= 1e-3 * (1 - 1e-9) and ratios.max() <= 1e3 * (1 + 1e-9)
    single = QuadraticProbe(solver=solver, gamma="scale", backend=backend).fit(X, y)
    np.testing.assert_allclose(single.cv_results_["gammas"], [g0], rtol=1e-10)
    # the grid's choice is the best of the single-gamma fits it is made of
    best = QuadraticProbe(solver=solver, gamma=float(probe.gamma_), backend=backend).fit(X, y)
    np.testing.assert_allclose(best.predict(X), probe.predict(X), rtol=1e-9, atol=1e-9)


def tiny_direction_data(seed=3, n=2000, d=6):
    """A direction with 1e-4 of the others' scale carries target 0 (its best alpha lies far
    below the default grid); target 1 is an ordinary linear target (interior optimum)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[:, 0] *= 1e-4
    y0 = 1e4 * X[:, 0] + 0.01 * rng.normal(size=n)
    y1 = X[:, 1] - X[:, 2] + 0.5 * rng.normal(size=n)
    return X, np.column_stack([y0, y1])


@pytest.mark.parametrize("cv", ["gcv", "loo", 4])
def test_per_target_grids_grow_on_their_own_and_match_separate_fits(backend, cv):
    X, Y = tiny_direction_data()
    joint = LinearProbe(backend=backend, cv=cv, alpha_per_target=True).fit(X, Y)
    scores = joint.cv_results_["scores"]
    alone = [LinearProbe(backend=backend, cv=cv).fit(X, Y[:, t]) for t in range(2)]
    assert alone[0].alphas_.size > 19 and alone[1].alphas_.size == 19  # only target 0 grew
    for t, ref in enumerate(alone):
        searched = ~np.isnan(scores[:, t])
        np.testing.assert_array_equal(joint.alphas_[searched], ref.alphas_)
        np.testing.assert_allclose(scores[searched, t], ref.cv_results_["scores"][:, 0],
                                   rtol=1e-9, atol=1e-300)  # fmt: skip
        assert joint.alpha_[t] == ref.alpha_
        np.testing.assert_allclose(joint.coef_[t], ref.coef_, rtol=1e-8, atol=1e-12)
    # target 1 did not search the values target 0 added, and none of them beats its choice
    assert np.isnan(scores[:, 1]).sum() == joint.alphas_.size - 19
    # a shared alpha (alpha_per_target=False) searches one grid for all targets
    shared = LinearProbe(backend=backend, cv=cv).fit(X, Y)
    assert not np.isnan(shared.cv_results_["scores"]).any()


def test_sweep_picks_what_separate_fits_pick_when_one_target_extends():
    from shallowprobes import sweep

    X, Y = tiny_direction_data(n=1500)
    res = sweep({"h": X}, {"tiny": Y[:, 0], "plain": Y[:, 1]}, degrees=(1,), cv=5,
                verbose=False)  # fmt: skip
    for t, name in enumerate(("tiny", "plain")):
        got = res.probes[("h", 1, name)]
        ref = LinearProbe(cv=5).fit(X, Y[:, t])
        np.testing.assert_array_equal(got.alphas_, ref.alphas_)
        assert got.alpha_ == ref.alpha_
        np.testing.assert_allclose(got.coef_, ref.coef_, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(got.cv_results_["scores"], ref.cv_results_["scores"],
                                   rtol=1e-9)  # fmt: skip
    assert res.probes[("h", 1, "tiny")].alphas_.size > 19


def test_default_gamma_search_differs_from_scale_only_by_choosing_better():
    """The default gamma grid contains g0 ("scale"): its CV criterion is never worse."""
    rng = np.random.default_rng(3)
    Xq = rng.normal(size=(120, 5)) * 3.0 + 2.0
    yq = Xq[:, 0] * Xq[:, 1] + 0.3 * rng.normal(size=120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        default = QuadraticProbe(cv=4).fit(Xq, yq)
        scale = QuadraticProbe(cv=4, gamma="scale").fit(Xq, yq)
    assert default.best_score_ >= scale.best_score_ - 1e-12
    assert scale.gamma_ in default.cv_results_["gammas"] or np.any(
        np.isclose(default.cv_results_["gammas"], scale.gamma_, rtol=1e-12)
    )


def test_gamma_scale_is_validated():
    X, y = strong_signal()
    for bad in ("bogus", "", [0.1, -1.0]):
        with pytest.raises(ValueError):
            QuadraticProbe(gamma=bad).fit(X, y)
        with pytest.raises(ValueError):
            CPProbeClassifier(gamma=bad).fit(X, y > 0)


def test_sweep_gathers_edge_choices_into_one_warning_and_a_column():
    from shallowprobes import sweep

    X, Y = tiny_direction_data(n=1200)
    strong = X[:, 1] - X[:, 2] + 0.01 * np.random.default_rng(0).normal(size=1200)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = sweep({"h": X}, {"strong": strong, "plain": Y[:, 1]}, degrees=(1,),
                    alphas=[1e2, 1e3, 1e4], verbose=False)  # fmt: skip
    hits = [r for r in rec if issubclass(r.category, GridEdgeWarning)]
    assert len(hits) == 1, [str(r.message) for r in rec]
    msg = str(hits[0].message)
    assert "layer h degree 1 strong (alpha low)" in msg and "alphas=" in msg
    edge = {r["target"]: r["at_grid_edge"] for r in res.table}
    assert edge["strong"] == "alpha low"
    # the same choice, fitted alone, is at the same edge
    with pytest.warns(GridEdgeWarning, match="smallest"):
        alone = LinearProbe(alphas=[1e2, 1e3, 1e4]).fit(X, strong)
    assert alone.alpha_ == 1e2
    with no_edge_warning():  # the default grid reaches the inside: no warning, no flag
        res = sweep({"h": X}, {"plain": Y[:, 1]}, degrees=(1,), verbose=False)
    assert [r["at_grid_edge"] for r in res.table] == [None]

"""Estimator kinds for the tests parametrised over them: factories, data, a snapshot of a fitted
probe, and numpy references on the explicit feature map.

A kind names an estimator family and route: "linear" (LinearProbe / LinearProbeClassifier,
degree 1, solver="primal": the streaming route), "linear-dual" (the same from the rows' kernel)
or "quadratic-<solver>" (QuadraticProbe / QuadraticProbeClassifier with solver="primal",
"dual" or "auto", degree 2). The references here never call the library: the
degree-2 features phi(h - c) are built with plain numpy indexing (pairs a <= b in
numpy.triu_indices order, s_ab = sqrt(2) off the diagonal) and solved as two-pass normal
equations.
"""

from __future__ import annotations

import numpy as np
from conftest import assert_rel, make_regression
from shallowprobes import (
    LinearProbe,
    LinearProbeClassifier,
    QuadraticProbe,
    QuadraticProbeClassifier,
    SufficientStats,
)

KINDS = ("linear", "linear-dual", "quadratic-primal", "quadratic-dual")
ROUTES = (*KINDS, "quadratic-auto")  # "auto" picks a route from the data's shape
STREAMING = ("linear", "quadratic-primal", "quadratic-auto")  # the kinds with partial_fit
DEGREES = (1, 2)
FIELDS = ("count", "sum_x", "sum_y", "xtx", "xty", "yty")
ROLES = ("probe", "classifier")


# ------------------------------------------------------------------------------ estimators
def degree_of(kind) -> int:
    return 1 if kind.startswith("linear") else 2


def solver_of(kind) -> str:
    """The `solver` parameter of the kind's estimators ("linear": the primal route)."""
    return "primal" if kind == "linear" else kind.split("-", 1)[1]


def streams(kind) -> bool:
    return kind in STREAMING


def make(kind, role="probe", **params):
    """A fresh estimator of `kind`: role "probe" (regression) or "classifier"."""
    params.setdefault("solver", solver_of(kind))
    if degree_of(kind) == 1:
        return (LinearProbe if role == "probe" else LinearProbeClassifier)(**params)
    return (QuadraticProbe if role == "probe" else QuadraticProbeClassifier)(**params)


def streamed(degree, role="probe", **params):
    """The estimator that partial_fit streams into (degree 2: the default route, "auto")."""
    return make("linear" if degree == 1 else "quadratic-auto", role, **params)


def fitted(degree, role="probe", **params):
    """The fit() counterpart of a streamed probe: all rows at once (degree 2: primal route)."""
    return make("linear" if degree == 1 else "quadratic-primal", role, **params)


def is_quadratic(est) -> bool:
    return isinstance(est, (QuadraticProbe, QuadraticProbeClassifier))


def coefficients(est) -> dict:
    """The fitted parameters of a probe, by name."""
    names = ("quadratic_", "linear_", "intercept_", "centre_")
    if not is_quadratic(est):
        names = ("coef_", "intercept_")
    return {name: np.array(getattr(est, name), copy=True) for name in names}


def assert_same_fit(a, b, rtol, what=""):
    ca, cb = coefficients(a), coefficients(b)
    assert ca.keys() == cb.keys()
    for name in ca:
        assert_rel(ca[name], cb[name], rtol, f"{what} {name}")


def snapshot(est):
    """Everything observable about a fitted probe of any kind."""
    X_probe = np.random.default_rng(99).normal(size=(9, est.n_features_in_))
    res = est.cv_results_
    out = coefficients(est)
    out.update(
        alpha_=np.array(est.alpha_, copy=True),
        scores=res["scores"].copy(),
        mean_scores=res["mean_scores"].copy(),
        n_features_in_=est.n_features_in_,
        pred=np.array(est.predict(X_probe), copy=True),
    )
    out.update(solver_=est.solver_)
    if is_quadratic(est):
        out.update(
            gamma_=est.gamma_,
            gamma_scores=np.concatenate([np.ravel(s) for s in res["gamma_scores"]]),
        )
    if est.solver_ == "primal":  # the dual route keeps no statistics
        stats = est.stats_
        out.update(n_samples=stats.n_samples, rows_seen=stats.rows_seen, xtx=stats.xtx.copy())
    if hasattr(est, "classes_"):
        out.update(classes_=np.array(est.classes_, copy=True), proba=est.predict_proba(X_probe))
    return out


def assert_unchanged(est, before):
    after = snapshot(est)
    assert after.keys() == before.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


# ------------------------------------------------------------------------------ data
def data(degree, seed=0, n=30, d=4, k=None):
    """Regression data a probe of `degree` can fit (degree 2: quadratic in the centred X)."""
    if degree == 1:
        return make_regression(seed, n, d, k)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 1.0
    U = X - X.mean(axis=0)
    kk = 1 if k is None else k
    Y = (U**2) @ rng.normal(size=(d, kk)) + U @ rng.normal(size=(d, kk))
    Y += 0.1 * rng.normal(size=(n, kk))
    return X, (Y[:, 0] if k is None else Y)


def stream_data(degree, seed, n, d, k=None):
    """Data with non-trivial offsets, so the statistics' shifts matter."""
    if degree == 2:
        return make_quad(seed, n, d, k)
    X, y = make_regression(seed, n, d, k)
    return X + np.random.default_rng(seed + 100).normal(size=d) * 20, y


def make_quad(seed, n, d, k=None, offset=5.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d) + offset * rng.normal(size=d)
    U = X - X.mean(axis=0)
    kk = 1 if k is None else k
    A = rng.normal(size=(kk, d, d)) / d
    Y = (
        np.einsum("ni,tij,nj->nt", U, A, U)
        + U @ rng.normal(size=(d, kk))
        + 0.3 * rng.normal(size=(n, kk))
    )
    return X, (Y[:, 0] if k is None else Y)


def labels(y):
    return (y > np.median(y)).astype(int)


def target(role, y):
    return y if role == "probe" else labels(y)


def with_bad(X, value, where=5):
    Xb = np.array(X, copy=True)
    Xb.flat[where] = value
    return Xb


def random_chunks(n, rng, max_chunks=6):
    """Random split points of range(n) into 1..max_chunks non-empty chunks."""
    n_chunks = int(rng.integers(1, max_chunks + 1))
    cuts = np.sort(rng.choice(np.arange(1, n), size=n_chunks - 1, replace=False))
    bounds = np.concatenate(([0], cuts, [n]))
    return list(zip(bounds[:-1], bounds[1:]))


def uneven_chunks(n, rng, singles=3):
    """Random uneven chunks of range(n), starting with `singles` one-row chunks and with one
    more one-row chunk in the middle."""
    bounds = list(range(singles + 1))
    mid = int(rng.integers(singles + 5, n - 5))
    cuts = sorted(
        set(rng.choice(np.arange(singles + 1, n), size=4, replace=False)) | {mid, mid + 1}
    )
    bounds += [c for c in cuts if c > bounds[-1]] + [n]
    return list(zip(bounds[:-1], bounds[1:]))


# ------------------------------------------------------------------------------ statistics
def stats_of(X, Y=None, n_folds=1, backend="numpy", chunks=None, fold_ids=None, degree=1):
    s = SufficientStats(n_folds, backend=backend, degree=degree)
    for a, b in chunks or [(0, X.shape[0])]:
        s.update(X[a:b], None if Y is None else Y[a:b], None if fold_ids is None else fold_ids[a:b])
    return s


def n_features(degree, d) -> int:
    return d if degree == 1 else d + d * (d + 1) // 2


def phi(X, centre, quad_scale=1.0):
    X = np.asarray(X, dtype=np.float64) - centre
    a, b = np.triu_indices(X.shape[1])
    s = np.where(a == b, 1.0, np.sqrt(2.0)) * quad_scale
    return np.hstack([X, X[:, a] * X[:, b] * s])


def features(degree, X, centre=None, quad_scale=1.0):
    """The explicit feature matrix: X itself (degree 1) or phi(X - centre) (degree 2; the
    centre defaults to the column means)."""
    X = np.asarray(X, dtype=np.float64)
    if degree == 1:
        return X
    return phi(X, X.mean(axis=0) if centre is None else centre, quad_scale)


def feature_view(stats, centre=None, quad_scale=1.0):
    """Degree-1 statistics of the features: the statistics themselves at degree 1."""
    if stats.degree == 1:
        return stats
    return stats.feature_stats(centre, quad_scale)


def reference_ne(F, Y, fit_intercept):
    """(n, gram, cxy, cyy, x_mean, y_mean) of features F and targets Y, two-pass numpy."""
    F = np.asarray(F, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64).reshape(F.shape[0], -1)
    if fit_intercept:
        xm, ym = F.mean(axis=0), Y.mean(axis=0)
    else:
        xm, ym = np.zeros(F.shape[1]), np.zeros(Y.shape[1])
    Fc, Yc = F - xm, Y - ym
    return F.shape[0], Fc.T @ Fc, Fc.T @ Yc, np.sum(Yc * Yc, axis=0), xm, ym


def assert_ne(ne, ref, rtol, what=""):
    n, gram, cxy, cyy, xm, ym = ref
    assert ne.n == n
    assert_rel(ne.gram, gram, rtol, f"{what} gram")
    assert_rel(ne.cxy, cxy, rtol, f"{what} cxy")
    assert_rel(ne.cyy, cyy, rtol, f"{what} cyy")
    assert_rel(ne.x_mean, xm, rtol, f"{what} x_mean")
    assert_rel(ne.y_mean, ym, rtol, f"{what} y_mean")

"""The `metric`, `reference` and `readout` parameters: validation, equivalences, closed forms.

- validation: unknown metric names, reference / readout with the wrong metric, a missing
  readout, malformed readout / reference arrays;
- `reference` as rows, as degree-1 or degree-2 `SufficientStats`, rank-deficient;
- closed forms: "whiten" on its own training rows is least squares shrunk by n/(n + alpha);
  "standardize" is scikit-learn's StandardScaler + Ridge (population std); constant columns
  are ignored by "standardize";
- fitted coefficients are reported in the caller's coordinates for every metric;
- streaming (`partial_fit`) equals `fit`, numpy and rust backends agree, and the parameters
  take part in get_params / clone.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import assert_rel, rel_err
from shallowprobes import (
    CPProbe,
    CPProbeClassifier,
    LinearProbe,
    LinearProbeClassifier,
    QuadraticProbe,
    QuadraticProbeClassifier,
    SufficientStats,
)
from shallowprobes.probes.cp import ConvergenceWarning

METRICS = ["euclidean", "standardize", "whiten", "readout"]
ALL_CLASSES = [
    LinearProbe,
    LinearProbeClassifier,
    QuadraticProbe,
    QuadraticProbeClassifier,
    CPProbe,
    CPProbeClassifier,
]
CLASS_IDS = [c.__name__ for c in ALL_CLASSES]
CLASSIFIERS = [LinearProbeClassifier, QuadraticProbeClassifier, CPProbeClassifier]

# estimator factories: name -> (class, fixed keyword arguments)
KINDS = {
    "linear": (LinearProbe, {}),
    "quad-primal": (QuadraticProbe, {"solver": "primal"}),
    "quad-dual": (QuadraticProbe, {"solver": "dual"}),
    "cp": (CPProbe, {"rank": 2, "max_iter": 30}),
}


def make(kind: str, **kw):
    cls, fixed = KINDS[kind]
    return cls(**fixed, **kw)


def fit_quiet(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def data(seed: int = 0, n: int = 200, d: int = 5, k: int | None = None, noise: float = 0.5):
    """Non-isotropic rows with offsets and a quadratic + linear signal; a readout W (d+2, d)."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, d))
    Q1 = np.linalg.qr(rng.normal(size=(d, d)))[0]
    X = (Z * np.exp(rng.uniform(-1.0, 1.0, size=d))) @ Q1.T + rng.normal(scale=4.0, size=d)
    kk = 1 if k is None else k
    Y = (
        (Z[:, :1] * Z[:, 1:2]) * rng.normal(size=kk)
        + Z @ rng.normal(size=(d, kk)) / np.sqrt(d)
        + noise * rng.normal(size=(n, kk))
        + 2.0
    )
    W = rng.normal(size=(d + 2, d))
    return X, (Y[:, 0] if k is None else Y), W


def metric_kw(metric: str, W) -> dict:
    return {"metric": metric, "readout": W if metric == "readout" else None}


def labels(y):
    return (y > np.median(y)).astype(int)


def fit_args(cls, X, y):
    return (X, labels(y)) if "Classifier" in cls.__name__ else (X, y)


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("cls", ALL_CLASSES, ids=CLASS_IDS)
@pytest.mark.parametrize("bogus", ["bogus", "Whiten", "", None, 3])
def test_unknown_metric_names_the_options(cls, bogus):
    X, y, _ = data()
    with pytest.raises(ValueError, match="metric must be one of") as info:
        cls(metric=bogus).fit(*fit_args(cls, X, y))
    for name in METRICS:
        assert name in str(info.value)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=CLASS_IDS)
@pytest.mark.parametrize("metric", ["euclidean", "standardize", "readout"])
def test_reference_only_with_whiten(cls, metric):
    X, y, W = data()
    kw = metric_kw(metric, W)
    with pytest.raises(ValueError, match=r'reference= is used by metric="whiten" only'):
        cls(**kw, reference=X[:50]).fit(*fit_args(cls, X, y))


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=CLASS_IDS)
@pytest.mark.parametrize("metric", ["euclidean", "standardize", "whiten"])
def test_readout_only_with_readout_metric(cls, metric):
    X, y, W = data()
    with pytest.raises(ValueError, match=r'readout= is used by metric="readout" only'):
        cls(metric=metric, readout=W).fit(*fit_args(cls, X, y))


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=CLASS_IDS)
def test_readout_metric_needs_readout(cls):
    X, y, _ = data()
    with pytest.raises(ValueError, match=r'metric="readout" needs the model\'s readout matrix'):
        cls(metric="readout").fit(*fit_args(cls, X, y))


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=CLASS_IDS)
def test_malformed_readout(cls):
    X, y, W = data()
    d = X.shape[1]
    bad_nan = W.copy()
    bad_nan[1, 2] = np.nan
    bad_inf = W.copy()
    bad_inf[0, 0] = np.inf
    cases = {
        "wide": (np.ones((3, d + 1)), r"readout must have shape \(m, 5\)"),
        "narrow": (np.ones((3, d - 1)), r"readout must have shape \(m, 5\)"),
        "1-D": (np.ones(d), r"readout must have shape \(m, 5\)"),
        "3-D": (np.ones((2, 3, d)), r"readout must have shape \(m, 5\)"),
        "nan": (bad_nan, "readout contains NaN or infinity"),
        "inf": (bad_inf, "readout contains NaN or infinity"),
    }
    for Wbad, msg in cases.values():
        with pytest.raises(ValueError, match=msg):
            cls(metric="readout", readout=Wbad).fit(*fit_args(cls, X, y))


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=CLASS_IDS)
def test_malformed_reference(cls):
    X, y, _ = data()
    d = X.shape[1]
    R_nan = X[:40].copy()
    R_nan[3, 1] = np.nan
    cases = {
        "wide": (np.ones((40, d + 1)), "reference has 6 features"),
        "narrow": (X[:40, :-1], "reference has 4 features"),
        "1-D": (X[0], "reference"),
        "one row": (X[:1], "minimum of 2"),
        "nan": (R_nan, "reference contains NaN"),
        "stats of other width": (SufficientStats().update(X[:, :3]), "reference statistics"),
    }
    for R, msg in cases.values():
        with pytest.raises(ValueError, match=msg):
            cls(metric="whiten", reference=R).fit(*fit_args(cls, X, y))


# ------------------------------------------------------------------------------ reference
def _reference_rows(seed: int, d: int, n: int = 120) -> np.ndarray:
    """Reference rows from another distribution than `data` (other scales, axes, offset)."""
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    scales = np.exp(rng.uniform(-1.0, 1.0, size=d))
    return (rng.normal(size=(n, d)) * scales) @ Q.T + rng.normal(scale=3.0, size=d)


@pytest.mark.parametrize("kind", list(KINDS))
def test_reference_as_sufficient_stats_equals_rows(kind):
    X, y, _ = data(1)
    R = _reference_rows(2, X.shape[1])
    Xte = data(9)[0]
    p_rows = fit_quiet(make(kind, metric="whiten", reference=R), X, y).predict(Xte)
    for stats in (
        SufficientStats().update(R),
        SufficientStats().update(R[:50]).update(R[50:]),  # streamed in chunks
        SufficientStats(degree=2).update(R),
        SufficientStats(n_folds=3).update(R, np.zeros(len(R))),
    ):
        est = make(kind, metric="whiten", reference=stats)
        p_stats = fit_quiet(est, X, y).predict(Xte)
        assert_rel(p_stats, p_rows, 1e-10, f"{kind} reference={stats!r}")
    # and the reference matters: it is not the training rows' whitening
    p_own = fit_quiet(make(kind, metric="whiten"), X, y).predict(Xte)
    assert rel_err(p_own, p_rows) > 1e-3


@pytest.mark.parametrize("kind", list(KINDS))
def test_rank_deficient_reference(kind):
    """Reference rows in a 3-dimensional affine subspace of R^5: the whitening is the
    pseudo-inverse square root, and the probe only sees the reference span."""
    X, y, _ = data(3)
    d = X.shape[1]
    rng = np.random.default_rng(4)
    basis = np.linalg.qr(rng.normal(size=(d, 3)))[0]  # (d, 3) orthonormal
    R = rng.normal(size=(100, 3)) @ (basis * [3.0, 1.0, 0.2]).T + rng.normal(size=d)
    assert np.linalg.matrix_rank(np.cov(R, rowvar=False)) == 3
    est = fit_quiet(make(kind, metric="whiten", reference=R), X, y)
    Xte = data(9)[0]
    pred = est.predict(Xte)
    assert np.isfinite(pred).all()
    # moving rows orthogonally to the reference span does not change predictions
    null = np.linalg.svd(basis.T)[2][3:]  # (2, d) orthonormal, orthogonal to the span
    shifted = Xte + rng.normal(scale=10.0, size=(len(Xte), 2)) @ null
    assert_rel(est.predict(shifted), pred, 1e-9, f"{kind}: moves outside the span")


# ------------------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("k", [None, 3], ids=["1-target", "3-targets"])
@pytest.mark.parametrize("alpha_factor", [0.0, 0.1, 1.0, 10.0])
@pytest.mark.parametrize("n,d", [(200, 5), (40, 12)])
def test_whiten_on_training_rows_is_shrunk_least_squares(n, d, alpha_factor, k):
    """Features A x with A = S^-1/2 (S the training covariance, /n) have centred Gram
    A Xc^T Xc A = n I, so ridge gives w_A = A Xc^T yc / (n + a) and, in input coordinates,
    coef = A w_A = S^-1 Xc^T yc / (n + a) = n / (n + a) * (Xc^T Xc)^-1 Xc^T yc:
    the OLS coefficients shrunk by n / (n + a) (the documented caveat)."""
    X, Y, _ = data(5, n, d, k=k)
    a = alpha_factor * n
    est = LinearProbe(alphas=[a], metric="whiten").fit(X, Y)
    Xc = X - X.mean(axis=0)
    Yc = Y - Y.mean(axis=0)
    ols = np.linalg.lstsq(Xc, Yc, rcond=None)[0]  # (d,) or (d, k)
    shrunk = n / (n + a) * ols
    assert_rel(est.coef_, shrunk if k is None else shrunk.T, 1e-9, "coef_")
    intercept = Y.mean(axis=0) - X.mean(axis=0) @ shrunk
    assert_rel(np.atleast_1d(est.intercept_), np.atleast_1d(intercept), 1e-9, "intercept_")


@pytest.mark.parametrize("alpha", [1e-3, 0.5, 10.0, 500.0])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_standardize_equals_standard_scaler_ridge(alpha, fit_intercept):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, _ = data(6, 150, 7)
    Xte = data(7, 60, 7)[0]
    ours = LinearProbe(alphas=[alpha], metric="standardize", fit_intercept=fit_intercept)
    ref = make_pipeline(StandardScaler(), Ridge(alpha=alpha, fit_intercept=fit_intercept))
    p_ours = ours.fit(X, y).predict(Xte)
    p_ref = ref.fit(X, y).predict(Xte)
    if fit_intercept:
        assert_rel(p_ours, p_ref, 1e-9, "standardize vs StandardScaler + Ridge")
    else:
        # without an intercept our geometry still scales by the population std about the
        # mean (the metric) but does not centre; StandardScaler centres. Compare with the
        # scaling alone.
        sd = X.std(axis=0)
        p_scaled = Ridge(alpha=alpha, fit_intercept=False).fit(X / sd, y).predict(Xte / sd)
        assert_rel(p_ours, p_scaled, 1e-9, "standardize without intercept")


def test_standardize_uses_population_std():
    """StandardScaler divides by the population std (ddof=0); so do we. With the sample std
    (ddof=1) the effective penalty differs by (n-1)/n and the predictions visibly change."""
    from sklearn.linear_model import Ridge

    X, y, _ = data(8, 30, 6)
    a = 5.0
    Xte = data(9, 20, 6)[0]
    ours = LinearProbe(alphas=[a], metric="standardize").fit(X, y).predict(Xte)
    for ddof, should_match in ((0, True), (1, False)):
        sd = X.std(axis=0, ddof=ddof)
        p = Ridge(alpha=a).fit(X / sd, y).predict(Xte / sd)
        assert (rel_err(ours, p) <= 1e-9) is should_match, (ddof, rel_err(ours, p))


@pytest.mark.parametrize("kind", list(KINDS))
def test_standardize_ignores_constant_columns(kind):
    X, y, _ = data(10, 150, 5)
    Xte = data(11, 40, 5)[0]
    const = np.hstack([X[:, :2], np.full((len(X), 1), 7.5), X[:, 2:], np.zeros((len(X), 1))])
    const_te = np.hstack([Xte[:, :2], np.full((len(Xte), 1), 7.5), Xte[:, 2:], np.zeros((40, 1))])
    # defaults: no crash, finite
    est = fit_quiet(make(kind, metric="standardize"), const, y)
    assert np.isfinite(est.predict(const_te)).all()
    # explicit alpha (and gamma): identical to the fit without the constant columns (the
    # default grids depend on the number of features, so they would differ)
    extra = {} if kind in ("linear", "cp") else {"gamma": 0.3}
    a = fit_quiet(make(kind, metric="standardize", alphas=[2.0], **extra), const, y)
    b = fit_quiet(make(kind, metric="standardize", alphas=[2.0], **extra), X, y)
    assert_rel(a.predict(const_te), b.predict(Xte), 1e-9, f"{kind}: constant columns")
    # and they get zero coefficients
    lin = a.coef_ if kind == "linear" else a.linear_
    assert np.all(lin[[2, 6]] == 0.0)
    if kind != "linear":
        Q = a.quadratic_
        assert np.all(Q[[2, 6]] == 0.0) and np.all(Q[:, [2, 6]] == 0.0)


# ------------------------------------------------------------------------------ coefficients
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("k", [None, 2], ids=["1-target", "2-targets"])
def test_coefficients_are_in_input_coordinates(kind, metric, k):
    X, Y, W = data(12, 200, 5, k=k)
    Xte = data(13, 50, 5)[0]
    est = fit_quiet(make(kind, **metric_kw(metric, W)), X, Y)
    pred = est.predict(Xte)
    if kind == "linear":
        coef = np.atleast_2d(est.coef_)  # (k, d)
        manual = Xte @ coef.T + est.intercept_
    else:
        Q = est.quadratic_.reshape(-1, 5, 5)
        w = np.atleast_2d(est.linear_)
        manual = np.einsum("ni,tij,nj->nt", Xte, Q, Xte) + Xte @ w.T + est.intercept_
        assert_rel(Q, np.swapaxes(Q, 1, 2), 1e-12, "quadratic_ symmetric")
    assert_rel(manual.reshape(pred.shape), pred, 1e-9, f"{kind} metric={metric}")


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("cls", CLASSIFIERS, ids=lambda c: c.__name__)
def test_classifier_coefficients_are_in_input_coordinates(cls, metric):
    X, y, W = data(14, 200, 5)
    Xte = data(15, 50, 5)[0]
    kw = {"max_iter": 20} if cls is CPProbeClassifier else {}
    est = fit_quiet(cls(**metric_kw(metric, W), **kw), X, labels(y))
    dec = est.decision_function(Xte)
    if cls is LinearProbeClassifier:
        manual = Xte @ est.coef_[0] + est.intercept_[0]
    else:
        Q, w = est.quadratic_[0], est.linear_[0]
        manual = np.einsum("ni,ij,nj->n", Xte, Q, Xte) + Xte @ w + est.intercept_[0]
    assert_rel(manual, dec, 1e-9, f"{cls.__name__} metric={metric}")


# ------------------------------------------------------------------------------ streaming
@pytest.mark.parametrize("cv", ["gcv", 3], ids=["gcv", "cv3"])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["linear", "quad-primal"])
def test_partial_fit_equals_fit(kind, metric, cv):
    """The geometry is fitted from the statistics, so chunked partial_fit equals fit."""
    X, y, W = data(16, 300, 5)
    Xte = data(17, 50, 5)[0]
    kw = {**metric_kw(metric, W), "cv": cv}
    full = make(kind, **kw).fit(X, y)
    stream = make(kind, **kw)
    for lo, hi in ((0, 70), (70, 71), (71, 200), (200, 300)):
        stream.partial_fit(X[lo:hi], y[lo:hi])
    assert stream.alpha_ == pytest.approx(full.alpha_, rel=1e-9)
    assert_rel(stream.predict(Xte), full.predict(Xte), 1e-8, f"{kind} metric={metric}")


@pytest.mark.parametrize("kind", ["linear", "quad-primal"])
def test_partial_fit_whiten_with_reference(kind):
    X, y, _ = data(18, 300, 5)
    R = _reference_rows(19, 5)
    Xte = data(20, 50, 5)[0]
    full = make(kind, metric="whiten", reference=R).fit(X, y)
    stream = make(kind, metric="whiten", reference=SufficientStats().update(R))
    for lo in range(0, 300, 64):
        stream.partial_fit(X[lo : lo + 64], y[lo : lo + 64])
    assert_rel(stream.predict(Xte), full.predict(Xte), 1e-8, f"{kind} whiten reference")


# ------------------------------------------------------------------------------ backends
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_backends_agree(backend, kind, metric):
    X, y, W = data(21, 200, 5)
    Xte = data(22, 50, 5)[0]
    kw = metric_kw(metric, W)
    if metric == "whiten":
        kw["reference"] = _reference_rows(23, 5)
    ref = fit_quiet(make(kind, **kw, backend="numpy"), X, y)
    est = fit_quiet(make(kind, **kw, backend=backend), X, y)
    assert est.alpha_ == pytest.approx(ref.alpha_, rel=1e-9)
    assert_rel(est.predict(Xte), ref.predict(Xte), 1e-8, f"{kind} metric={metric} {backend}")


# ------------------------------------------------------------------------------ params
@pytest.mark.parametrize("cls", ALL_CLASSES, ids=CLASS_IDS)
def test_get_params_and_clone(cls):
    from sklearn.base import clone

    X, y, W = data()
    for metric, extra in (
        ("euclidean", {}),
        ("whiten", {"reference": X[:30]}),
        ("readout", {"readout": W}),
    ):
        est = cls(metric=metric, **extra)
        params = est.get_params()
        for name in ("metric", "reference", "readout"):
            assert name in params
        assert params["metric"] == metric
        for name in ("reference", "readout"):
            if name in extra:
                assert params[name] is extra[name]
            else:
                assert params[name] is None
        twin = clone(est)
        tp = twin.get_params()
        assert tp["metric"] == metric
        for name in ("reference", "readout"):
            if name in extra:
                np.testing.assert_array_equal(tp[name], extra[name])
            else:
                assert tp[name] is None
        other = cls(metric="euclidean").set_params(metric=metric, **extra)
        assert other.get_params()["metric"] == metric
    defaults = cls().get_params()
    assert defaults["metric"] == "euclidean"
    assert defaults["reference"] is None and defaults["readout"] is None


@pytest.mark.parametrize("Est", [LinearProbe, QuadraticProbe])
@pytest.mark.parametrize(
    "kw",
    [
        {"metric": "readout", "readout": np.ones((3, 5))},
        {"metric": "whiten", "reference": np.ones((10, 5))},
    ],
    ids=["readout-width", "reference-width"],
)
def test_metric_inputs_checked_before_any_work(Est, kw):
    """A readout / reference of the wrong width fails in fit and in the first partial_fit,
    before any statistics are kept (the probe stays unfitted)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 4)), rng.standard_normal(40)
    for call in ("fit", "partial_fit"):
        est = Est(**kw)
        with pytest.raises(ValueError, match="4"):
            getattr(est, call)(X, y)
        assert getattr(est, "_stats", None) is None
        assert getattr(est, "_solution_cache", None) is None

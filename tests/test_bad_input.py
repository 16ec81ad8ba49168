"""Bad input, for every probe kind (linear; degree 2 on the primal, dual and auto routes):
clear errors, and failed calls leave a fitted estimator exactly as it was.

Unusual-but-valid inputs (dtypes, layouts, containers) are in test_input_dtypes.py; what only
the degree-2 routes refuse (memory limits, streaming on the dual route, gamma) is in
test_degree2_routes.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sparse
from _probe_kinds import (
    KINDS,
    ROLES,
    ROUTES,
    STREAMING,
    assert_same_fit,
    assert_unchanged,
    data,
    degree_of,
    fitted,
    labels,
    make,
    snapshot,
    solver_of,
    streams,
    target,
    with_bad,
)
from conftest import assert_rel
from shallowprobes import NotFittedError, SufficientStats

NONFINITE = "NaN or infinity"


def classes_kwargs(role):
    return {"classes": [0, 1]} if role == "classifier" else {}


# ------------------------------------------------------------------------------ non-finite
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ROUTES)
def test_nonfinite_X_raises(backend, kind, bad, dtype):
    degree = degree_of(kind)
    X, y = data(degree, n=20, d=6)  # degree 2: p = 27 > n, so "auto" takes the dual route
    for where in (X.size - 3, 0):  # late in X, and in the first row (the statistics' shift)
        Xb = with_bad(X, bad, where).astype(dtype)
        for role in ROLES:
            with pytest.raises(ValueError, match=NONFINITE):
                make(kind, role, backend=backend).fit(Xb, target(role, y))
            if streams(kind):
                with pytest.raises(ValueError, match=NONFINITE):
                    make(kind, role, backend=backend).partial_fit(
                        Xb, target(role, y), **classes_kwargs(role)
                    )
        with pytest.raises(ValueError, match=NONFINITE):
            SufficientStats(backend=backend, degree=degree).update(Xb, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("kind", STREAMING)
def test_nonfinite_X_in_partial_fit(backend, kind, bad):
    X, y = data(degree_of(kind), n=40, d=3)
    fresh = make(kind, backend=backend)
    with pytest.raises(ValueError, match=NONFINITE):
        fresh.partial_fit(with_bad(X[:20], bad), y[:20])
    assert not hasattr(fresh, "n_features_in_")
    with pytest.raises(NotFittedError):
        fresh.predict(X)
    # the failed first chunk left nothing behind: streaming starts cleanly
    fresh.partial_fit(X, y)
    ref = fitted(degree_of(kind), backend=backend).fit(X, y)
    assert_rel(fresh.predict(X), ref.predict(X), 1e-9, "after a failed first chunk")
    assert_same_fit(fresh, ref, 1e-9, "after a failed first chunk")
    # a bad later chunk is refused without touching the statistics
    probe = make(kind, cv=3, backend=backend).partial_fit(X[:20], y[:20])
    before = snapshot(probe)
    with pytest.raises(ValueError, match=NONFINITE):
        probe.partial_fit(with_bad(X[20:], bad), y[20:])
    assert_unchanged(probe, before)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", KINDS)
def test_nonfinite_y_raises(backend, kind, bad):
    X, y = data(degree_of(kind), k=2)
    y[3, 1] = bad
    with pytest.raises(ValueError, match=NONFINITE):
        make(kind, backend=backend).fit(X, y)
    with pytest.raises(ValueError, match=NONFINITE):
        make(kind, backend=backend).fit(X, y[:, 1])
    with pytest.raises(ValueError, match=NONFINITE):
        make(kind, "classifier", cv=3, backend=backend).fit(X, y[:, 1])
    if streams(kind):
        with pytest.raises(ValueError, match=NONFINITE):
            make(kind, backend=backend).partial_fit(X, y)


@pytest.mark.parametrize("kind", KINDS)
def test_nonfinite_X_at_predict_raises(backend, kind):
    X, y = data(degree_of(kind))
    probe = make(kind, backend=backend).fit(X, y)
    clf = make(kind, "classifier", backend=backend).fit(X, labels(y))
    for Xb in (with_bad(X, np.nan, 0), with_bad(X[:5], np.inf, 1)):
        for method in (probe.predict, clf.predict, clf.decision_function, clf.predict_proba):
            with pytest.raises(ValueError, match=NONFINITE):
                method(Xb)


# ------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", KINDS)
def test_wrong_ndim_X(backend, kind, role):
    X, y = data(degree_of(kind))
    yy = target(role, y)
    with pytest.raises(ValueError, match=r"Expected 2D array.*got 1D.*reshape\(-1, 1\)"):
        make(kind, role, backend=backend).fit(X[:, 0], yy)
    with pytest.raises(ValueError, match=r"Expected 2D array.*got 3D"):
        make(kind, role, backend=backend).fit(X[:, :, None], yy)
    with pytest.raises(ValueError, match=r"Expected 2D array.*got 0D"):
        make(kind, role, backend=backend).fit(np.float64(3.0), yy)
    est = make(kind, role, backend=backend).fit(X, yy)
    with pytest.raises(ValueError, match=r"Expected 2D array.*got 1D"):
        est.predict(X[0])


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_ndim_y(backend, kind):
    X, y = data(degree_of(kind))
    with pytest.raises(ValueError, match=r"y must be 1-D .* or 2-D"):
        make(kind, backend=backend).fit(X, y[:, None, None])
    with pytest.raises(ValueError, match=r"y must be a 1-D array of class labels"):
        make(kind, "classifier", backend=backend).fit(X, np.c_[y > 0, y > 0])


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", KINDS)
def test_mismatched_lengths(backend, kind, role):
    X, y = data(degree_of(kind))
    yy = target(role, y)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples.*30.*29"):
        make(kind, role, backend=backend).fit(X, yy[:-1])
    if streams(kind):
        with pytest.raises(ValueError, match=r"inconsistent numbers of samples"):
            make(kind, role, backend=backend).partial_fit(X[:-2], yy, **classes_kwargs(role))


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_n_features(backend, kind):
    X, y = data(degree_of(kind), n=30, d=4)
    probe = make(kind, backend=backend).fit(X, y)
    for Xb in (X[:, :3], np.hstack([X, X])):
        with pytest.raises(ValueError, match="expecting 4 features"):
            probe.predict(Xb)
    clf = make(kind, "classifier", backend=backend).fit(X, labels(y))
    for method in (clf.predict, clf.decision_function, clf.predict_proba):
        with pytest.raises(ValueError, match="expecting 4 features"):
            method(X[:, :2])
    if streams(kind):
        for role in ROLES:
            est = make(kind, role, backend=backend)
            est.partial_fit(X, target(role, y), **classes_kwargs(role))
            name = type(est).__name__
            with pytest.raises(ValueError, match=f"X has 3 features, but {name} is expecting 4"):
                est.partial_fit(X[:, :3], target(role, y))


@pytest.mark.parametrize("kind", ROUTES)
def test_too_few_samples(backend, kind):
    X, y = data(degree_of(kind), n=10, d=3)
    for role in ROLES:
        with pytest.raises(ValueError, match="1 sample.*minimum of 2"):
            make(kind, role, backend=backend).fit(X[:1], target(role, y)[:1])
    if streams(kind):
        probe = make(kind, backend=backend).partial_fit(X[:1], y[:1])  # streaming: allowed
        with pytest.raises(ValueError, match="at least 2 samples"):
            probe.predict(X)
        probe.partial_fit(X[1:], y[1:])  # and then the full data solves normally
        ref = fitted(degree_of(kind), backend=backend).fit(X, y)
        assert_same_fit(probe, ref, 1e-9, "after a single-row first chunk")
        assert_rel(probe.predict(X), ref.predict(X), 1e-9, "after a single-row first chunk")


@pytest.mark.parametrize("shape", [(0, 4), (5, 0), (0, 0)])
@pytest.mark.parametrize("kind", ROUTES)
def test_empty_arrays(backend, kind, shape):
    X = np.zeros(shape)
    y = np.zeros(shape[0])
    for role in ROLES:
        with pytest.raises(ValueError, match=r"0 (sample|feature)"):
            make(kind, role, backend=backend).fit(X, y)
    if streams(kind):
        with pytest.raises(ValueError, match=r"0 (sample|feature)"):
            make(kind, backend=backend).partial_fit(X, y)
    with pytest.raises(ValueError, match=r"0 (sample|feature)"):
        SufficientStats(backend=backend, degree=degree_of(kind)).update(X, y)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_target_columns(backend, kind):
    X, _ = data(degree_of(kind))
    with pytest.raises(ValueError, match="0 targets"):
        make(kind, backend=backend).fit(X, np.zeros((30, 0)))


@pytest.mark.parametrize("kind", ROUTES)
def test_one_class(backend, kind):
    X, _ = data(degree_of(kind), n=20, d=3)
    for one in (np.full(20, "cat"), np.ones(20, dtype=int)):
        with pytest.raises(ValueError, match="only one class"):
            make(kind, "classifier", backend=backend).fit(X, one)
    if streams(kind):
        with pytest.raises(ValueError, match="only one class"):
            make(kind, "classifier", backend=backend).partial_fit(X, np.zeros(20))


# ------------------------------------------------------------------------------ state on error
BAD_FITS = {
    "nan_X": lambda X, y: (with_bad(X, np.nan), y),
    "inf_X_late": lambda X, y: (with_bad(X, np.inf, X.size - 1), y),
    "inf_y": lambda X, y: (X, with_bad(y, np.inf, 3)),
    "ndim": lambda X, y: (X[:, 0], y),
    "lengths": lambda X, y: (X, y[:-1]),
    "one_row": lambda X, y: (X[:1], y[:1]),
    "strings": lambda X, y: (np.full(X.shape, "x"), y),
    "sparse": lambda X, y: (sparse.csr_matrix(X), y),
    "complex": lambda X, y: (X + 1j, y),
}


@pytest.mark.parametrize("bad", sorted(BAD_FITS))
@pytest.mark.parametrize("cv", ["gcv", 3])
@pytest.mark.parametrize("kind", KINDS)
def test_failed_fit_leaves_estimator_unchanged(backend, kind, bad, cv):
    X, y = data(degree_of(kind), seed=1, n=40, d=4)
    probe = make(kind, cv=cv, backend=backend).fit(X, y)
    before = snapshot(probe)
    Xb, yb = BAD_FITS[bad](X * 2 + 1, y * 3)
    # a probe may be refitted on any route: a failure on each leaves the old fit
    for route in ["primal", "dual", "auto"]:
        probe.set_params(solver=route)
        with pytest.raises((ValueError, TypeError)):
            probe.fit(Xb, yb)
        probe.set_params(solver=solver_of(kind))
        assert_unchanged(probe, before)
    if streams(kind) and bad != "one_row":  # one row is a valid partial_fit chunk
        with pytest.raises((ValueError, TypeError)):
            probe.partial_fit(Xb, yb)
        assert_unchanged(probe, before)


@pytest.mark.parametrize("kind", STREAMING)
def test_failed_partial_fit_leaves_streaming_state_unchanged(backend, kind):
    X, y = data(degree_of(kind), seed=2, n=60, d=5, k=2)
    probe = make(kind, cv=3, backend=backend).partial_fit(X[:30], y[:30])
    before = snapshot(probe)
    bad_chunks = [
        (X[30:, :4], y[30:]),  # wrong n_features
        (X[30:], y[30:, :1]),  # wrong n_targets
        (X[30:], y[31:]),  # lengths
        (np.where(X[30:] > 1, np.nan, X[30:]), y[30:]),
    ]
    for Xb, yb in bad_chunks:
        with pytest.raises(ValueError):
            probe.partial_fit(Xb, yb)
        assert_unchanged(probe, before)
    probe.partial_fit(X[30:], y[30:])
    ref = fitted(degree_of(kind), cv=3, backend=backend).fit(X, y)
    assert_same_fit(probe, ref, 1e-9, "after recovering from errors")


@pytest.mark.parametrize("cv", [3, "loo"])
@pytest.mark.parametrize("kind", KINDS)
def test_classifier_failed_fit_leaves_estimator_unchanged(backend, kind, cv):
    X, y = data(degree_of(kind), seed=3, n=45, d=4)
    abc = np.array(["a", "b", "c"])[np.arange(45) % 3]
    scoring = {"scoring": "accuracy"} if cv == "loo" else {}
    clf = make(kind, "classifier", cv=cv, backend=backend, **scoring).fit(X, abc)
    before = snapshot(clf)
    failures = [
        (X, np.full(45, "a"), "only one class"),
        (with_bad(X, np.nan), abc, NONFINITE),
        (X, y, "continuous"),
    ]
    for Xb, yb, msg in failures:
        with pytest.raises(ValueError, match=msg):
            clf.fit(Xb, yb)
        assert_unchanged(clf, before)
    if streams(kind):
        for Xb, yb, msg in [
            (X[:3], np.array(["a", "b", "zebra"]), "not in classes"),
            (X[:3, :2], abc[:3], "features"),
        ]:
            with pytest.raises(ValueError, match=msg):
                clf.partial_fit(Xb, yb)
            assert_unchanged(clf, before)


@pytest.mark.parametrize("kind", ROUTES)
def test_failed_kfold_solve_leaves_estimator_unchanged(backend, kind):
    X, y = data(degree_of(kind), seed=4)
    probe = make(kind, cv=3, backend=backend).fit(X, y)
    before = snapshot(probe)
    with pytest.raises(ValueError, match="holds every row"):
        probe.fit(X, y, fold_ids=np.zeros(30, dtype=int))
    assert_unchanged(probe, before)


# ------------------------------------------------------------------------------ not fitted
FITTED_ATTRS = {
    1: ("coef_", "intercept_", "alpha_", "cv_results_", "stats_"),
    2: ("quadratic_", "linear_", "intercept_", "alpha_", "gamma_", "solver_", "centre_",
        "cv_results_", "stats_"),
}  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", KINDS)
def test_not_fitted(kind, role):
    X, _ = data(degree_of(kind))
    est = make(kind, role)
    methods = ["predict"] + (["decision_function", "predict_proba"] if role == "classifier" else [])
    for name in methods:
        with pytest.raises(NotFittedError):
            getattr(est, name)(X)
    attrs = FITTED_ATTRS[degree_of(kind)] + (("classes_",) if role == "classifier" else ())
    for attr in attrs:
        with pytest.raises(NotFittedError):
            getattr(est, attr)
        assert not hasattr(est, attr)
    if degree_of(kind) == 2:
        with pytest.raises(AttributeError, match="quadratic_"):
            est.coef_  # noqa: B018


# ------------------------------------------------------------------------------ hyperparameters
BAD_PARAMS = [
    ({"cv": 1}, "at least 2 folds"),
    ({"cv": 0}, "at least 2 folds"),
    ({"cv": "foo"}, "cv must be"),
    ({"cv": "kfold"}, "cv must be"),
    ({"cv": 2.5}, "cv must be"),
    ({"cv": True}, "cv must be"),
    ({"alphas": [-1.0, 1.0]}, ">= 0"),
    ({"alphas": [-1.0]}, ">= 0"),
    ({"alphas": -1.0}, ">= 0"),
    ({"alphas": [np.nan]}, "finite"),
    ({"alphas": [np.inf]}, "finite"),
    ({"alphas": []}, "non-empty"),
    ({"alphas": [[1.0, 2.0]]}, "1-D"),
    ({"alphas": ["a"]}, "alphas must be numbers"),
    ({"backend": "cuda"}, "backend must be one of"),
    ({"fit_intercept": "yes"}, "fit_intercept"),
]
BAD_SCORING = [
    ({"scoring": "accuracy"}, "GCV"),
    ({"scoring": "roc_auc"}, "GCV"),
    ({"scoring": "roc_auc", "cv": "gcv"}, "GCV"),
    ({"scoring": "f1"}, "scoring must be one of"),
    ({"scoring": "f1", "cv": 3}, "scoring must be one of"),
]


def _check_bad_params(kind, role, params, msg):
    X, y = data(degree_of(kind), n=20, d=3)
    yy = target(role, y)
    est = make(kind, role, **params)  # construction never validates (scikit-learn convention)
    for key, value in params.items():
        assert est.get_params()[key] is value
    with pytest.raises(ValueError, match=msg):
        est.fit(X, yy)
    if streams(kind):
        with pytest.raises(ValueError, match=msg):
            make(kind, role, **params).partial_fit(X, yy, **classes_kwargs(role))


@pytest.mark.parametrize(("params", "msg"), BAD_PARAMS, ids=[repr(p) for p, _ in BAD_PARAMS])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", KINDS)
def test_bad_hyperparameters_raise_at_fit(kind, role, params, msg):
    _check_bad_params(kind, role, params, msg)


@pytest.mark.parametrize(("params", "msg"), BAD_SCORING, ids=[repr(p) for p, _ in BAD_SCORING])
@pytest.mark.parametrize("kind", KINDS)
def test_bad_classifier_scoring_raises_at_fit(kind, params, msg):
    _check_bad_params(kind, "classifier", params, msg)


@pytest.mark.parametrize("kind", ROUTES)
def test_more_folds_than_samples_and_bad_fold_ids(backend, kind):
    X, y = data(degree_of(kind))
    with pytest.raises(ValueError, match="only 30 samples"):
        make(kind, cv=31, backend=backend).fit(X, y)
    with pytest.raises(ValueError, match=r"fold_ids must lie in \[0, 3\)"):
        make(kind, cv=3, backend=backend).fit(X, y, fold_ids=np.arange(30))
    with pytest.raises(TypeError, match="integers"):
        make(kind, cv=3, backend=backend).fit(X, y, fold_ids=np.zeros(30))
    with pytest.raises(ValueError, match="one entry per row"):
        make(kind, cv=3, backend=backend).fit(X, y, fold_ids=np.arange(29) % 3)
    with pytest.raises(ValueError, match="only used with integer cv"):
        make(kind, cv="gcv", backend=backend).fit(X, y, fold_ids=np.arange(30) % 3)
    with pytest.raises(ValueError, match="fold 0 holds every row"):
        make(kind, cv=3, backend=backend).fit(X, y, fold_ids=np.zeros(30, dtype=int))


@pytest.mark.parametrize("degree", [1, 2])
def test_bad_stats_constructor(degree):
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="n_folds"):
            SufficientStats(bad, degree=degree)
    with pytest.raises(ValueError, match="backend"):
        SufficientStats(1, backend="cuda", degree=degree)


def test_bad_stats_degree():
    for bad in (0, 3, True, "2"):
        with pytest.raises(ValueError, match="degree"):
            SufficientStats(degree=bad)


# ------------------------------------------------------------------------------ torch
TORCH_DATA = {1: {"seed": 7, "n": 70, "d": 8}, 2: {"seed": 5, "n": 40, "d": 4}}
TORCH_PARAMS = {1: {"cv": 4}, 2: {"cv": 3, "gamma": [0.1, 1.0]}}


@pytest.mark.parametrize("tdtype", ["float32", "float64", "bfloat16", "float16"])
@pytest.mark.parametrize("kind", KINDS)
def test_torch_tensors(backend, kind, tdtype):
    torch = pytest.importorskip("torch")
    degree = degree_of(kind)
    X, y = data(degree, **TORCH_DATA[degree])
    X = X + 1.5
    t = torch.from_numpy(X).to(getattr(torch, tdtype))
    assert t.device.type == "cpu"
    X_same = t.to(torch.float64).numpy()  # the exact values the tensor holds
    params = dict(TORCH_PARAMS[degree], backend=backend)
    ours = make(kind, **params).fit(t, torch.from_numpy(y))
    ref = make(kind, **params).fit(X_same, y)
    assert ours.alpha_ == ref.alpha_
    if degree == 2:
        assert ours.gamma_ == ref.gamma_
    assert_same_fit(ours, ref, 1e-12, f"torch {tdtype}")
    assert_rel(ours.predict(t), ref.predict(X_same), 1e-12, "predict on tensor")
    assert_rel(ours.predict(X_same), ref.predict(X_same), 1e-12, "predict on numpy")
    # requires_grad and non-contiguous tensors are fine too, as inputs and as targets
    tg = torch.from_numpy(np.asfortranarray(X_same)).requires_grad_(True)
    assert_rel(ours.predict(tg), ref.predict(X_same), 1e-12, "requires_grad")
    tt = t.T.contiguous().T
    assert not tt.is_contiguous()
    assert_rel(ours.predict(tt), ref.predict(X_same), 1e-12, "non-contiguous")
    yt = torch.from_numpy(y).requires_grad_(True)
    again = make(kind, **params).fit(tt, yt)
    assert_same_fit(again, ref, 1e-12, "non-contiguous tensor")
    lab = labels(y)
    clf = make(kind, "classifier", backend=backend).fit(t, torch.from_numpy(lab.astype(np.int64)))
    clf_ref = make(kind, "classifier", backend=backend).fit(X_same, lab)
    assert_rel(clf.decision_function(t), clf_ref.decision_function(X_same), 1e-12, "classifier")
    np.testing.assert_array_equal(clf.predict(t), clf_ref.predict(X_same))


@pytest.mark.parametrize("kind", KINDS)
def test_torch_complex_raises(kind):
    torch = pytest.importorskip("torch")
    X, y = data(degree_of(kind))
    with pytest.raises(ValueError, match="Complex"):
        make(kind).fit(torch.from_numpy(X + 1j), y)


@pytest.mark.parametrize("kind", STREAMING)
def test_torch_partial_fit(backend, kind):
    torch = pytest.importorskip("torch")
    X, y = data(degree_of(kind), seed=6, n=50, d=3)
    X32 = X.astype(np.float32)
    t = torch.from_numpy(X32)
    streamed = make(kind, backend=backend)
    for a in range(0, 50, 17):
        streamed.partial_fit(t[a : a + 17], torch.from_numpy(y[a : a + 17]))
    ref = fitted(degree_of(kind), backend=backend).fit(X32, y)
    assert_rel(streamed.predict(t), ref.predict(X32), 1e-9, "torch partial_fit")
    assert_same_fit(streamed, ref, 1e-9, "torch partial_fit")

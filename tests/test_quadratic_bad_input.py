"""Degree-2 probes on bad input: clear errors (ValueError / MemoryError / AttributeError), failed
calls leave a fitted probe exactly as it was, the dual route refuses to stream, and torch
tensors are accepted."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import assert_rel
from shallowprobes import NotFittedError, QuadraticProbe, QuadraticProbeClassifier

SOLVERS = ["primal", "dual"]


def _data(seed=0, n=30, d=4, k=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 1.0
    U = X - X.mean(axis=0)
    kk = 1 if k is None else k
    Y = (U**2) @ rng.normal(size=(d, kk)) + U @ rng.normal(size=(d, kk))
    Y += 0.1 * rng.normal(size=(n, kk))
    return X, (Y[:, 0] if k is None else Y)


def _labels(y):
    return (y > np.median(y)).astype(int)


def snapshot(est):
    """Everything observable about a fitted degree-2 probe."""
    X_probe = np.random.default_rng(99).normal(size=(7, est.n_features_in_))
    res = est.cv_results_
    out = {
        "quadratic_": np.array(est.quadratic_, copy=True),
        "linear_": np.array(est.linear_, copy=True),
        "intercept_": np.array(est.intercept_, copy=True),
        "centre_": est.centre_.copy(),
        "alpha_": np.array(est.alpha_, copy=True),
        "gamma_": est.gamma_,
        "solver_": est.solver_,
        "mean_scores": res["mean_scores"].copy(),
        "n_features_in_": est.n_features_in_,
        "pred": np.array(est.predict(X_probe), copy=True),
    }
    if est.solver_ == "primal":
        out["n_samples"] = est.stats_.n_samples
        out["xtx"] = est.stats_.xtx.copy()
    if hasattr(est, "classes_"):
        out["classes_"] = np.array(est.classes_, copy=True)
        out["proba"] = est.predict_proba(X_probe)
    return out


def assert_unchanged(est, before):
    after = snapshot(est)
    assert after.keys() == before.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def with_bad(X, value, where=5):
    Xb = np.array(X, copy=True)
    Xb.flat[where] = value
    return Xb


# ------------------------------------------------------------------------------ non-finite
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", ["primal", "dual", "auto"])
def test_nonfinite_X_raises_on_both_routes(backend, bad, dtype, solver):
    X, y = _data(n=20, d=6)  # p = 27 > n: "auto" takes the dual route
    Xb = with_bad(X, bad, where=int(X.size) - 3).astype(dtype)  # late in X
    with pytest.raises(ValueError, match="NaN|inf"):
        QuadraticProbe(solver=solver, backend=backend).fit(Xb, y)
    with pytest.raises(ValueError, match="NaN|inf"):
        QuadraticProbeClassifier(solver=solver, backend=backend).fit(Xb, _labels(y))
    Xb2 = with_bad(X, bad, where=0).astype(dtype)  # in the first rows (the stats' shift)
    with pytest.raises(ValueError, match="NaN|inf"):
        QuadraticProbe(solver=solver, backend=backend).fit(Xb2, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_X_in_partial_fit(backend, bad):
    X, y = _data(n=40, d=3)
    fresh = QuadraticProbe(backend=backend)
    with pytest.raises(ValueError, match="NaN|inf"):
        fresh.partial_fit(with_bad(X[:20], bad), y[:20])
    assert not hasattr(fresh, "n_features_in_")
    with pytest.raises(NotFittedError):
        fresh.predict(X)
    # the failed first chunk left nothing behind: streaming starts cleanly
    fresh.partial_fit(X, y)
    ref = QuadraticProbe(solver="primal", backend=backend).fit(X, y)
    assert_rel(fresh.predict(X), ref.predict(X), 1e-9, "after a failed first chunk")
    # a bad later chunk is refused without touching the statistics
    probe = QuadraticProbe(cv=3, backend=backend).partial_fit(X[:20], y[:20])
    before = snapshot(probe)
    rows_seen = probe.stats_.rows_seen
    with pytest.raises(ValueError, match="NaN|inf"):
        probe.partial_fit(with_bad(X[20:], bad), y[20:])
    assert_unchanged(probe, before)
    assert probe.stats_.rows_seen == rows_seen


@pytest.mark.parametrize("solver", SOLVERS)
def test_nonfinite_y_and_X_at_predict(backend, solver):
    X, y = _data(n=25, d=3)
    with pytest.raises(ValueError, match="NaN|inf"):
        QuadraticProbe(solver=solver, backend=backend).fit(X, with_bad(y, np.nan, 2))
    probe = QuadraticProbe(solver=solver, backend=backend).fit(X, y)
    with pytest.raises(ValueError, match="NaN|inf"):
        probe.predict(with_bad(X[:5], np.inf, 1))


# ------------------------------------------------------------------------------ state on error
BAD_FITS = {
    "nan_X": lambda X, y: (with_bad(X, np.nan), y),
    "inf_X_late": lambda X, y: (with_bad(X, np.inf, X.size - 1), y),
    "inf_y": lambda X, y: (X, with_bad(y, np.inf, 3)),
    "ndim": lambda X, y: (X[:, 0], y),
    "lengths": lambda X, y: (X, y[:-1]),
    "one_row": lambda X, y: (X[:1], y[:1]),
    "strings": lambda X, y: (np.full(X.shape, "x"), y),
    "complex": lambda X, y: (X + 1j, y),
}


@pytest.mark.parametrize("bad", sorted(BAD_FITS))
@pytest.mark.parametrize("first", SOLVERS)
@pytest.mark.parametrize("second", ["primal", "dual", "auto"])
def test_failed_fit_leaves_estimator_unchanged(backend, bad, first, second):
    X, y = _data(seed=1, n=30, d=4)
    probe = QuadraticProbe(cv=3, solver=first, backend=backend).fit(X, y)
    before = snapshot(probe)
    probe.set_params(solver=second)
    Xb, yb = BAD_FITS[bad](X * 2 + 1, y * 3)
    with pytest.raises((ValueError, TypeError)):
        probe.fit(Xb, yb)
    probe.set_params(solver=first)
    assert_unchanged(probe, before)


@pytest.mark.parametrize("solver", SOLVERS)
def test_classifier_failed_fit_leaves_estimator_unchanged(backend, solver):
    X, y = _data(seed=2, n=36, d=4)
    labels = np.array(["a", "b", "c"])[np.arange(36) % 3]
    clf = QuadraticProbeClassifier(cv="loo", scoring="accuracy", solver=solver, backend=backend)
    clf.fit(X, labels)
    before = snapshot(clf)
    with pytest.raises(ValueError, match="only one class"):
        clf.fit(X, np.full(36, "a"))
    assert_unchanged(clf, before)
    with pytest.raises(ValueError, match="NaN|inf"):
        clf.fit(with_bad(X, np.nan), labels)
    assert_unchanged(clf, before)
    with pytest.raises(ValueError, match="continuous"):
        clf.fit(X, y)
    assert_unchanged(clf, before)


@pytest.mark.parametrize("solver", SOLVERS)
def test_failed_fit_by_memory_error_leaves_estimator_unchanged(backend, solver):
    X, y = _data(seed=3, n=30, d=5)
    probe = QuadraticProbe(solver=solver, backend=backend).fit(X, y)
    before = snapshot(probe)
    probe.set_params(solver="auto", memory_limit=100)
    with pytest.raises(MemoryError):
        probe.fit(X * 2, y)
    probe.set_params(solver=solver, memory_limit=None)
    assert_unchanged(probe, before)


# ------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("solver", SOLVERS)
def test_wrong_n_features_at_predict(backend, solver):
    X, y = _data(n=30, d=4)
    probe = QuadraticProbe(solver=solver, backend=backend).fit(X, y)
    with pytest.raises(ValueError, match="expecting 4 features"):
        probe.predict(X[:, :3])
    with pytest.raises(ValueError, match="expecting 4 features"):
        probe.predict(np.hstack([X, X]))
    with pytest.raises(ValueError):
        probe.predict(X[0])  # 1-D
    clf = QuadraticProbeClassifier(solver=solver, backend=backend).fit(X, _labels(y))
    for method in (clf.predict, clf.decision_function, clf.predict_proba):
        with pytest.raises(ValueError, match="expecting 4 features"):
            method(X[:, :2])
    stream = QuadraticProbe(backend=backend).partial_fit(X, y)
    with pytest.raises(ValueError, match="expecting 4"):
        stream.partial_fit(X[:, :3], y)


@pytest.mark.parametrize("solver", ["primal", "dual", "auto"])
def test_too_few_samples(backend, solver):
    X, y = _data(n=10, d=3)
    for est in (
        QuadraticProbe(solver=solver, backend=backend),
        QuadraticProbeClassifier(solver=solver, backend=backend),
    ):
        yy = y if isinstance(est, QuadraticProbe) else _labels(y)
        with pytest.raises(ValueError, match="sample"):
            est.fit(X[:1], yy[:1])
        with pytest.raises(ValueError):
            est.fit(X[:0], yy[:0])
    with pytest.raises(ValueError, match="only 10 samples"):
        QuadraticProbe(cv=11, solver=solver, backend=backend).fit(X, y)
    if solver != "dual":
        one = QuadraticProbe(solver=solver, backend=backend).partial_fit(X[:1], y[:1])
        with pytest.raises(ValueError, match="at least 2 samples"):
            one.predict(X)
        one.partial_fit(X[1:], y[1:])  # more rows make it solvable
        assert one.predict(X).shape == (10,)


@pytest.mark.parametrize("solver", ["primal", "dual", "auto"])
def test_one_class(backend, solver):
    X, _ = _data(n=20, d=3)
    with pytest.raises(ValueError, match="only one class"):
        QuadraticProbeClassifier(solver=solver, backend=backend).fit(X, np.ones(20, dtype=int))
    if solver != "dual":
        with pytest.raises(ValueError, match="only one class"):
            QuadraticProbeClassifier(solver=solver, backend=backend).partial_fit(X, np.ones(20))


# ------------------------------------------------------------------------------ hyperparameters
BAD_PARAMS = [
    ({"solver": "PRIMAL"}, "solver must be one of"),
    ({"solver": "svd"}, "solver must be one of"),
    ({"solver": None}, "solver must be one of"),
    ({"solver": 1}, "solver must be one of"),
    ({"gamma": 0}, "gamma must be"),
    ({"gamma": 0.0}, "gamma must be"),
    ({"gamma": -1.0}, "gamma must be"),
    ({"gamma": np.nan}, "gamma must be"),
    ({"gamma": np.inf}, "gamma must be"),
    ({"gamma": []}, "gamma must be"),
    ({"gamma": [0.1, -0.1]}, "gamma must be"),
    ({"gamma": [0.1, np.nan]}, "gamma must be"),
    ({"gamma": [[0.1, 1.0]]}, "gamma must be"),
    ({"gamma": "auto"}, "gamma must be"),
    ({"gamma": "median"}, "gamma must be"),  # "scale" is an option (the single g0)
    ({"gamma": ["a"]}, "gamma must be"),
    ({"gamma": {"a": 1}}, "gamma must be"),
    ({"gamma": 1j}, "gamma must be"),
    ({"memory_limit": 0}, "memory_limit"),
    ({"memory_limit": -1e9}, "memory_limit"),
    ({"memory_limit": np.nan}, "memory_limit"),
    ({"memory_limit": "1e9"}, "memory_limit"),
    ({"memory_limit": True}, "memory_limit"),
    ({"memory_limit": [1e9]}, "memory_limit"),
    ({"cv": 1}, "at least 2 folds"),
    ({"cv": "kfold"}, "cv must be"),
    ({"alphas": [-1.0]}, ">= 0"),
    ({"alphas": []}, "non-empty"),
    ({"fit_intercept": "yes"}, "fit_intercept"),
    ({"backend": "cuda"}, "backend must be one of"),
]


@pytest.mark.parametrize(("params", "msg"), BAD_PARAMS, ids=[repr(p) for p, _ in BAD_PARAMS])
@pytest.mark.parametrize("est_cls", [QuadraticProbe, QuadraticProbeClassifier])
def test_bad_hyperparameters_raise(est_cls, params, msg):
    X, y = _data(n=20, d=3)
    yy = y if est_cls is QuadraticProbe else _labels(y)
    est = est_cls(**params)  # construction never validates (scikit-learn convention)
    for key, value in params.items():
        assert est.get_params()[key] is value
    with pytest.raises(ValueError, match=msg):
        est.fit(X, yy)
    if params.get("solver") != "dual":
        kwargs = {} if est_cls is QuadraticProbe else {"classes": [0, 1]}
        with pytest.raises(ValueError, match=msg):
            est_cls(**params).partial_fit(X, yy, **kwargs)


# Strings and booleans are not numbers: memory_limit refuses them, gamma should too.
BAD_GAMMA_TYPES = {"str": "1.0", "bool": True, "mixed": [0.5, "2"], "str_array": np.array(["0.5"])}


@pytest.mark.parametrize("gamma", list(BAD_GAMMA_TYPES.values()), ids=list(BAD_GAMMA_TYPES))
def test_gamma_must_be_numeric(backend, gamma):
    X, y = _data(n=20, d=3)
    with pytest.raises(ValueError, match="gamma must be"):
        QuadraticProbe(gamma=gamma, backend=backend).fit(X, y)


@pytest.mark.parametrize("scoring", ["accuracy", "roc_auc", "f1"])
def test_classifier_scoring_checks(scoring):
    X, y = _data(n=20, d=3)
    with pytest.raises(ValueError, match="GCV|scoring must be"):
        QuadraticProbeClassifier(scoring=scoring).fit(X, _labels(y))


def test_streaming_refuses_what_needs_rows(backend):
    X, y = _data(n=40, d=3)
    probe = QuadraticProbe(cv="loo", backend=backend).partial_fit(X, y)
    with pytest.raises(ValueError, match="loo"):
        probe.predict(X)
    clf = QuadraticProbeClassifier(cv=3, scoring="accuracy", backend=backend)
    clf.partial_fit(X, _labels(y))
    with pytest.raises(ValueError, match="need the rows|needs the rows"):
        clf.predict(X)


def test_fold_ids_errors(backend):
    X, y = _data(n=30, d=3)
    for solver in SOLVERS:
        with pytest.raises(ValueError, match=r"fold_ids must lie in \[0, 3\)"):
            QuadraticProbe(cv=3, solver=solver, backend=backend).fit(X, y, fold_ids=np.arange(30))
        with pytest.raises(ValueError, match="only used with integer cv"):
            QuadraticProbe(solver=solver, backend=backend).fit(X, y, fold_ids=np.arange(30) % 3)
    with pytest.raises(ValueError, match="holds every row"):
        QuadraticProbe(cv=3, solver="primal", backend=backend).fit(
            X, y, fold_ids=np.zeros(30, dtype=int)
        )


# ------------------------------------------------------------------------------ memory limits
@pytest.mark.parametrize("est_cls", [QuadraticProbe, QuadraticProbeClassifier])
def test_memory_error_when_no_route_fits(backend, est_cls):
    n, d = 30, 10
    p = d + d * (d + 1) // 2  # 65
    X, y = _data(n=n, d=d)
    yy = y if est_cls is QuadraticProbe else _labels(y)
    est = est_cls(memory_limit=1000, backend=backend)
    with pytest.raises(MemoryError) as info:
        est.fit(X, yy)
    msg = str(info.value)
    assert f"p={p}" in msg and f"n={n}" in msg and f"d={d}" in msg, msg
    assert "CPProbe" in msg, msg
    assert "memory_limit" in msg and "1000" in msg, msg
    sizes = re.findall(r"\d+(?:\.\d+)? (?:B|KiB|MiB|GiB|TiB)\b", msg)
    assert len(sizes) >= 3, msg  # primal need, dual need, the limit
    # both needs are reported above the limit
    units = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
    values = [float(s.split()[0]) * units[s.split()[1]] for s in sizes]
    assert sum(v > 1000 for v in values) >= 2, msg
    assert not hasattr(est, "n_features_in_")
    with pytest.raises(NotFittedError):
        est.predict(X)


def test_memory_limit_large_enough_fits(backend):
    n, d = 30, 10
    X, y = _data(n=n, d=d)
    # 100 kB: ample for a 30 x 30 kernel (the dual route, n < p = 65) and for the statistics
    # of d = 3 inputs (p = 9 <= n: the primal route), though not for 65 x 65 statistics
    limit = 1e5
    assert QuadraticProbe(memory_limit=limit, backend=backend).fit(X, y).solver_ == "dual"
    small = QuadraticProbe(memory_limit=limit, backend=backend).fit(X[:, :3], y)
    assert small.solver_ == "primal"
    ref = QuadraticProbe(solver="primal", backend=backend).fit(X[:, :3], y)
    np.testing.assert_array_equal(small.predict(X[:, :3]), ref.predict(X[:, :3]))
    # unlimited
    assert QuadraticProbe(memory_limit=float("inf"), backend=backend).fit(X, y).solver_ == "dual"


@pytest.mark.parametrize("solver", ["auto", "primal"])
def test_partial_fit_width_too_large_raises_memory_error(backend, solver):
    d = 30
    p = d + d * (d + 1) // 2  # 495: statistics of several MB
    X, y = _data(n=8, d=d)
    probe = QuadraticProbe(solver=solver, memory_limit=1e6, backend=backend)
    with pytest.raises(MemoryError) as info:
        probe.partial_fit(X, y)
    msg = str(info.value)
    assert f"d={d}" in msg and f"p={p}" in msg and "CPProbe" in msg, msg
    assert "partial_fit" in msg
    assert getattr(probe, "_stats", None) is None
    with pytest.raises(NotFittedError):
        probe.predict(X)
    clf = QuadraticProbeClassifier(solver=solver, memory_limit=1e6, backend=backend)
    with pytest.raises(MemoryError):
        clf.partial_fit(X, _labels(y), classes=[0, 1])


# ------------------------------------------------------------------------------ dual: no stream
def test_dual_solver_has_no_partial_fit():
    for est in (QuadraticProbe(solver="dual"), QuadraticProbeClassifier(solver="dual")):
        assert not hasattr(est, "partial_fit")
        with pytest.raises(AttributeError, match="dual") as info:
            est.partial_fit  # noqa: B018
        assert "partial_fit" in str(info.value) and "fit()" in str(info.value)
    for est in (QuadraticProbe(), QuadraticProbe(solver="primal"), QuadraticProbeClassifier()):
        assert hasattr(est, "partial_fit")
    # switching the solver switches the attribute
    est = QuadraticProbe(solver="dual")
    est.set_params(solver="primal")
    assert hasattr(est, "partial_fit")


@pytest.mark.parametrize("est_cls", [QuadraticProbe, QuadraticProbeClassifier])
def test_partial_fit_after_dual_fit_errors(backend, est_cls):
    X, y = _data(n=20, d=6)  # p = 27 > n: auto takes the dual route
    yy = y if est_cls is QuadraticProbe else _labels(y)
    est = est_cls(backend=backend).fit(X, yy)
    assert est.solver_ == "dual"
    assert hasattr(est, "partial_fit")  # solver="auto" streams in general ...
    before = snapshot(est)
    with pytest.raises(ValueError, match="dual route"):
        est.partial_fit(X, yy)  # ... but not on top of a dual-route fit
    assert_unchanged(est, before)
    with pytest.raises(AttributeError, match="dual"):
        est.stats_  # noqa: B018
    # a fresh fit is always possible
    est.fit(X[:15], yy[:15])
    assert est.solver_ == "dual"


# ------------------------------------------------------------------------------ not fitted
@pytest.mark.parametrize("est_cls", [QuadraticProbe, QuadraticProbeClassifier])
def test_not_fitted(est_cls):
    X, _ = _data()
    est = est_cls()
    with pytest.raises(NotFittedError):
        est.predict(X)
    for attr in ("quadratic_", "linear_", "intercept_", "alpha_", "gamma_", "solver_",
                 "centre_", "cv_results_", "stats_"):  # fmt: skip
        with pytest.raises(NotFittedError):
            getattr(est, attr)
        assert not hasattr(est, attr)
    with pytest.raises(AttributeError, match="quadratic_"):
        est.coef_  # noqa: B018


# ------------------------------------------------------------------------------ torch
@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_torch_tensors(backend, solver):
    torch = pytest.importorskip("torch")
    X, y = _data(seed=5, n=40, d=4)
    X32 = X.astype(np.float32)
    t = torch.from_numpy(X32.copy())
    assert t.dtype == torch.float32 and t.device.type == "cpu"
    params = dict(gamma=[0.1, 1.0], cv=3, solver=solver, backend=backend)
    ours = QuadraticProbe(**params).fit(t, torch.from_numpy(y))
    ref = QuadraticProbe(**params).fit(X32, y)
    assert ours.alpha_ == ref.alpha_ and ours.gamma_ == ref.gamma_
    assert_rel(ours.predict(t), ref.predict(X32), 1e-12, "torch predict")
    assert_rel(ours.predict(X32), ref.predict(X32), 1e-12, "numpy predict")
    # requires_grad and non-contiguous tensors are fine too
    tg = torch.from_numpy(np.asfortranarray(X32)).requires_grad_(True)
    assert_rel(ours.predict(tg), ref.predict(X32), 1e-12, "requires_grad")
    tt = torch.from_numpy(X32.T.copy()).T
    assert not tt.is_contiguous()
    assert_rel(ours.predict(tt), ref.predict(X32), 1e-12, "non-contiguous")
    labels = _labels(y)
    clf = QuadraticProbeClassifier(solver=solver, backend=backend)
    clf.fit(t, torch.from_numpy(labels.astype(np.int64)))
    clf_ref = QuadraticProbeClassifier(solver=solver, backend=backend).fit(X32, labels)
    assert_rel(clf.decision_function(t), clf_ref.decision_function(X32), 1e-12, "torch clf")
    np.testing.assert_array_equal(clf.predict(t), clf_ref.predict(X32))


def test_torch_partial_fit(backend):
    torch = pytest.importorskip("torch")
    X, y = _data(seed=6, n=50, d=3)
    X32 = X.astype(np.float32)
    t = torch.from_numpy(X32)
    streamed = QuadraticProbe(backend=backend)
    for a in range(0, 50, 17):
        streamed.partial_fit(t[a : a + 17], torch.from_numpy(y[a : a + 17]))
    ref = QuadraticProbe(solver="primal", backend=backend).fit(X32, y)
    assert_rel(streamed.predict(t), ref.predict(X32), 1e-9, "torch partial_fit")

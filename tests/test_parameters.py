"""Every parameter of every public estimator and function is validated before any work.

A bad value raises `shallowprobes.errors.ParameterError` (a ValueError) whose message names the
parameter; a value of the wrong type raises a ParameterError that is also a TypeError, a NaN or
infinite entry of an array parameter one that is also a NonFiniteError, an index out of range
one that is also an IndexError. Nothing has been computed, and nothing has changed, when the
error is raised.
"""

from __future__ import annotations

import importlib
import math
import warnings

import numpy as np
import pytest
import shallowprobes as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shallowprobes import datasets, metrics, stability
from shallowprobes.datasets import readout_equivalent_models
from shallowprobes.errors import NonFiniteError, ParameterError
from shallowprobes.probes.base import RidgeProbeBase
from shallowprobes.probes.cp import CPProbeBase
from shallowprobes.probes.quadratic import QuadraticProbeBase
from shallowprobes.solve.stats import SufficientStats

NAN, INF = float("nan"), float("inf")

# What a bad value must raise, beyond ParameterError (TYPE: also TypeError; VALUE: not a
# TypeError; NONFINITE: also NonFiniteError; INDEX: also IndexError).
TYPE, VALUE, NONFINITE, INDEX = "type", "value", "nonfinite", "index"


def _data(n=40, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X[:, 0] - 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(n)
    return X, y


def _labels(y):
    return (y > np.median(y)).astype(int)


def assert_param_error(info, name: str, kind: str) -> None:
    """The exception names the parameter and has the kind's types."""
    exc = info.value
    assert isinstance(exc, ParameterError), type(exc)
    assert name in str(exc), (name, str(exc))
    if kind == TYPE:
        assert isinstance(exc, TypeError), (type(exc), str(exc))
    elif kind == VALUE:
        assert not isinstance(exc, TypeError), (type(exc), str(exc))
    elif kind == NONFINITE:
        assert isinstance(exc, NonFiniteError), (type(exc), str(exc))
    elif kind == INDEX:
        assert isinstance(exc, IndexError), (type(exc), str(exc))


# ------------------------------------------------------------------------------ estimators
REGRESSORS = [sp.LinearProbe, sp.QuadraticProbe, sp.CPProbe]
CLASSIFIERS = [sp.LinearProbeClassifier, sp.QuadraticProbeClassifier, sp.CPProbeClassifier]
ESTIMATORS = REGRESSORS + CLASSIFIERS
QUADRATIC = {sp.QuadraticProbe, sp.QuadraticProbeClassifier}
CP = {sp.CPProbe, sp.CPProbeClassifier}

COMMON_BAD = [
    ("alphas", [NAN], NONFINITE),
    ("alphas", [1.0, INF], NONFINITE),
    ("alphas", [-1.0], VALUE),
    ("alphas", -1.0, VALUE),
    ("alphas", NAN, TYPE),
    ("alphas", "a", TYPE),
    ("alphas", ["a", "b"], TYPE),
    ("alphas", [[1.0, 2.0]], VALUE),
    ("alphas", [], VALUE),
    ("alphas", [1.0, 5e-324], VALUE),  # subnormal: 1 / alpha overflows
    ("alphas", 1e-310, VALUE),
    ("cv", 1, VALUE),
    ("cv", -3, VALUE),
    ("cv", 2.5, TYPE),
    ("cv", True, TYPE),
    ("cv", "kfold", VALUE),
    ("cv", NAN, TYPE),
    ("alpha_per_target", "yes", TYPE),
    ("alpha_per_target", 1, TYPE),
    ("alpha_per_target", None, TYPE),
    ("fit_intercept", "no", TYPE),
    ("fit_intercept", 0, TYPE),
    ("metric", "bogus", VALUE),
    ("metric", None, TYPE),
    ("metric", 3, TYPE),
    ("backend", "cuda", VALUE),
    ("backend", None, TYPE),
    ("reference", "rows", TYPE),
    ("reference", 3.0, TYPE),
    ("readout", "W", TYPE),
]
QUADRATIC_BAD = [
    ("gamma", 0, VALUE),
    ("gamma", -1.0, VALUE),
    ("gamma", NAN, TYPE),
    ("gamma", INF, VALUE),
    ("gamma", "auto", VALUE),  # strings are options of gamma ("scale"), "auto" is not one
    ("gamma", [1.0, NAN], NONFINITE),
    ("gamma", [[1.0]], VALUE),
    ("solver", "svd", VALUE),
    ("solver", None, TYPE),
    ("memory_limit", 0, VALUE),
    ("memory_limit", -1.0, VALUE),
    ("memory_limit", NAN, TYPE),
    ("memory_limit", "1e9", TYPE),
    ("memory_limit", True, TYPE),
]
CP_BAD = [
    ("rank", 0, VALUE),
    ("rank", -1, VALUE),
    ("rank", 1.5, TYPE),
    ("rank", True, TYPE),
    ("rank", "2", TYPE),
    ("rank", NAN, TYPE),
    ("max_iter", 0, VALUE),
    ("max_iter", 2.5, TYPE),
    ("max_iter", None, TYPE),
    ("max_iter", INF, TYPE),
    ("tol", NAN, TYPE),
    ("tol", INF, VALUE),
    ("tol", -1e-3, VALUE),
    ("tol", "0.1", TYPE),
    ("tol", None, TYPE),
    ("init", "bogus", VALUE),
    ("init", None, TYPE),
    ("random_state", -1, VALUE),
    ("random_state", 1.5, TYPE),
    ("random_state", "seed", TYPE),
]
CLASSIFIER_BAD = [("scoring", "f1", VALUE), ("scoring", None, TYPE)]


def _estimator_cases():
    for cls in ESTIMATORS:
        cases = list(COMMON_BAD)
        if cls in QUADRATIC:
            cases += QUADRATIC_BAD
        if cls in CP:
            cases += CP_BAD
        if cls in CLASSIFIERS:
            cases += CLASSIFIER_BAD
        for name, value, kind in cases:
            yield pytest.param(cls, name, value, kind, id=f"{cls.__name__}-{name}={value!r}")


def _extra_params(name: str) -> dict:
    """Other parameters that make `name` meaningful (reference: whiten, readout: readout)."""
    return {"reference": {"metric": "whiten"}, "readout": {"metric": "readout"}}.get(name, {})


def _target(cls, y):
    return _labels(y) if cls in CLASSIFIERS else y


@pytest.fixture
def no_work(monkeypatch):
    """Make every fitting routine fail loudly: a parameter error must come first."""

    def boom(*args, **kwargs):
        raise AssertionError("work started before the parameters were validated")

    for cls in (RidgeProbeBase, QuadraticProbeBase, CPProbeBase):
        monkeypatch.setattr(cls, "_fit_rows", boom)
    monkeypatch.setattr(SufficientStats, "_accumulate_validated", boom)
    monkeypatch.setattr(SufficientStats, "update", boom)
    return boom


@pytest.mark.parametrize("cls,name,value,kind", list(_estimator_cases()))
def test_estimator_parameter_errors(cls, name, value, kind, no_work):
    X, y = _data()
    est = cls(**{name: value, **_extra_params(name)})
    with pytest.raises(ParameterError) as info:
        est.fit(X, _target(cls, y))
    assert_param_error(info, name, kind)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_fit_and_partial_fit_leave_the_estimator_unchanged(cls):
    """A parameter error from fit / partial_fit changes nothing: the fitted solution, the
    statistics and the fitted attributes are those of the last good fit."""
    X, y = _data()
    yy = _target(cls, y)
    est = cls(alphas=[0.1, 1.0]).fit(X, yy)
    before = dict(vars(est))
    pred = np.asarray(est.predict(X))
    for name, value in [("alphas", [NAN]), ("cv", 1), ("metric", "bogus"),
                        ("fit_intercept", "no"), ("backend", "cuda")]:  # fmt: skip
        est.set_params(**{name: value})
        with pytest.raises(ParameterError, match=name):
            est.fit(X[:20], yy[:20])
        if hasattr(est, "partial_fit"):
            kwargs = {"classes": [0, 1]} if cls in CLASSIFIERS else {}
            with pytest.raises(ParameterError, match=name):
                est.partial_fit(X[:20], yy[:20], **kwargs)
        est.set_params(**{name: before[name]})
        after = {k: v for k, v in vars(est).items()}
        assert after.keys() == before.keys()
        for k, v in before.items():
            assert after[k] is v, k
    np.testing.assert_array_equal(np.asarray(est.predict(X)), pred)


def test_readout_shape_and_values_checked_before_work(no_work):
    X, y = _data()
    d = X.shape[1]
    for W, kind in [(np.ones((2, d + 1)), VALUE), (np.ones(d), VALUE),
                    (np.full((2, d), np.nan), NONFINITE), ([["a"] * d], TYPE)]:  # fmt: skip
        for cls in ESTIMATORS:
            with pytest.raises(ParameterError) as info:
                cls(metric="readout", readout=W).fit(X, _target(cls, y))
            assert_param_error(info, "readout", kind)


def test_reference_checked_before_work(no_work):
    X, y = _data()
    bad = X[:10].copy()
    bad[2, 1] = np.inf
    for R, kind in [(bad, NONFINITE), (X[:1], VALUE), (X[:10, :2], VALUE),
                    (SufficientStats(), VALUE)]:  # fmt: skip
        with pytest.raises(ParameterError) as info:
            sp.LinearProbe(metric="whiten", reference=R).fit(X, y)
        assert_param_error(info, "reference", kind)


def test_partial_fit_checks_parameters_before_work(no_work):
    X, y = _data()
    with pytest.raises(ParameterError, match="alpha_per_target"):
        sp.LinearProbe(alpha_per_target="yes").partial_fit(X, y)
    with pytest.raises(ParameterError, match="memory_limit"):
        sp.QuadraticProbe(memory_limit=-1).partial_fit(X, y)


# ------------------------------------------------------------------------------ statistics
@pytest.mark.parametrize(
    "kwargs,name,kind",
    [
        (dict(only_fold=7), "only_fold", INDEX),
        (dict(exclude_fold=7), "exclude_fold", INDEX),
        (dict(only_fold=3), "only_fold", INDEX),
        (dict(exclude_fold=-1), "exclude_fold", INDEX),
        (dict(only_fold=1.0), "only_fold", TYPE),
        (dict(exclude_fold=True), "exclude_fold", TYPE),
        (dict(only_fold="0"), "only_fold", TYPE),
        (dict(only_fold=0, exclude_fold=1), "only_fold", VALUE),
        (dict(fit_intercept="yes"), "fit_intercept", TYPE),
    ],
)
def test_normal_equations_fold_arguments(kwargs, name, kind):
    X, y = _data()
    stats = SufficientStats(3).update(X, y)
    with pytest.raises(ParameterError) as info:
        stats.normal_equations(**kwargs)
    assert_param_error(info, name, kind)
    if kind == INDEX:
        assert "[0, 3)" in str(info.value)


def test_normal_equations_valid_folds_still_work():
    X, y = _data()
    stats = SufficientStats(3).update(X, y)
    total = stats.normal_equations(True).n
    for f in range(3):
        assert stats.normal_equations(True, only_fold=np.int64(f)).n + stats.normal_equations(
            True, exclude_fold=f).n == total  # fmt: skip


@pytest.mark.parametrize(
    "centre,kind",
    [
        (np.full(3, np.nan), NONFINITE),
        (np.array([0.0, np.inf, 0.0]), NONFINITE),
        (np.zeros(4), VALUE),
        (np.zeros((1, 3)), VALUE),
        (np.float64(0.0), VALUE),
        ("abc", TYPE),
        (["a", "b", "c"], TYPE),
        (None, TYPE),
    ],
)
def test_recentred_centre(centre, kind):
    X, y = _data()
    stats = SufficientStats(1, degree=2).update(X, y)
    with pytest.raises(ParameterError) as info:
        stats.recentred(centre)
    assert_param_error(info, "centre", kind)
    if centre is not None:  # feature_stats(None): the input mean
        with pytest.raises(ParameterError):
            stats.feature_stats(centre)


# ------------------------------------------------------------------------------ monitors, banks
@pytest.mark.parametrize(
    "kwargs,name,kind",
    [
        (dict(linear=[1.0, NAN]), "linear", NONFINITE),
        (dict(linear="ab"), "linear", TYPE),
        (dict(linear=[[1.0, 2.0]]), "linear", VALUE),
        (dict(linear=[1.0, 2.0], intercept=NAN), "intercept", NONFINITE),
        (dict(linear=[1.0, 2.0], intercept="1"), "intercept", TYPE),
        (dict(linear=[1.0, 2.0], intercept=[1.0, 2.0]), "intercept", TYPE),
        (dict(linear=[1.0, 2.0], quadratic=np.eye(3)), "quadratic", VALUE),
        (dict(linear=[1.0, 2.0], quadratic=[[INF, 0], [0, 1]]), "quadratic", NONFINITE),
        (dict(linear=[1.0, 2.0], centre=[INF, 0.0]), "centre", NONFINITE),
        (dict(linear=[1.0, 2.0], centre=[0.0]), "centre", VALUE),
        (dict(linear=[1.0, 2.0], kind="cubic"), "kind", VALUE),
        (dict(linear=[1.0, 2.0], kind=2), "kind", TYPE),
        (dict(linear=[1.0, 2.0], info="notes"), "info", TYPE),
    ],
)
def test_monitor_parameters(kwargs, name, kind):
    with pytest.raises(ParameterError) as info:
        sp.PolynomialMonitor(**kwargs)
    assert_param_error(info, name, kind)


def test_monitor_algebra_arguments():
    m = sp.PolynomialMonitor(np.ones(3), 0.5, np.eye(3))
    cases = [
        (lambda: m.recentred([NAN, 0, 0]), "centre", NONFINITE),
        (lambda: m.recentred(np.zeros(2)), "centre", VALUE),
        (lambda: m.recentred("c"), "centre", TYPE),
        (lambda: m.compose_affine(np.full((3, 2), NAN), np.zeros(3), np.zeros(2)), "G",
         NONFINITE),
        (lambda: m.compose_affine(np.ones((2, 2)), np.zeros(3), np.zeros(2)), "G", VALUE),
        (lambda: m.compose_affine(np.ones((3, 2)), [0, INF, 0], np.zeros(2)), "offset",
         NONFINITE),
        (lambda: m.compose_affine(np.ones((3, 2)), np.zeros(2), np.zeros(2)), "offset", VALUE),
        (lambda: m.compose_affine(np.ones((3, 2)), np.zeros(3), [NAN, 0]), "centre", NONFINITE),
        (lambda: m.compose_affine(np.ones((3, 2)), np.zeros(3), np.zeros(3)), "centre", VALUE),
    ]  # fmt: skip
    for call, name, kind in cases:
        with pytest.raises(ParameterError) as info:
            call()
        assert_param_error(info, name, kind)


def test_bank_parameters():
    X, y = _data()
    probe = sp.LinearProbe().fit(X, np.column_stack([y, -y]))
    for output, kind in [(2, INDEX), (-1, INDEX), (1.0, TYPE), ("0", TYPE)]:
        with pytest.raises(ParameterError) as info:
            sp.PolynomialMonitor.from_probe(probe, output)
        assert_param_error(info, "output", kind)
    bank = sp.ProbeBank({"p": probe})
    before = bank.names
    with pytest.raises(ParameterError) as info:
        bank.add("q", probe, output=-1)
    assert_param_error(info, "output", VALUE)
    with pytest.raises(ParameterError) as info:
        bank.add("q", probe, output=5)
    assert_param_error(info, "output", INDEX)
    assert bank.names == before
    with pytest.raises(ParameterError) as info:
        sp.ProbeBank(metadata="layer 3")
    assert_param_error(info, "metadata", TYPE)
    for names in (3, [1, 2], {"p[0]": 1}):
        with pytest.raises(ParameterError) as info:
            bank.decision_function(X, names=names)
        assert_param_error(info, "names", TYPE)


# ------------------------------------------------------------------------------ quotient
def _bank(d=6):
    rng = np.random.default_rng(0)
    return sp.ProbeBank({f"m{j}": sp.PolynomialMonitor(rng.standard_normal(d)) for j in range(3)})


@pytest.mark.parametrize(
    "params,name,kind",
    [
        (dict(rtol=NAN), "rtol", TYPE),
        (dict(rtol=-0.1), "rtol", VALUE),
        (dict(rtol=1.0), "rtol", VALUE),
        (dict(rtol="small"), "rtol", TYPE),
        (dict(rank=0), "rank", VALUE),
        (dict(rank=7), "rank", VALUE),
        (dict(rank=2.0), "rank", TYPE),
        (dict(centre=np.full(6, NAN)), "centre", NONFINITE),
        (dict(centre=np.zeros(5)), "centre", VALUE),
        (dict(centre="origin"), "centre", TYPE),
        (dict(device=3), "device", TYPE),
    ],
)
def test_quotient_parameters(params, name, kind, monkeypatch):
    from shallowprobes.monitors import quotient

    monkeypatch.setattr(quotient, "visible_covectors", lambda *a: pytest.fail("work started"))
    with pytest.raises(ParameterError) as info:
        sp.Quotient(**params).fit(_bank())
    assert_param_error(info, name, kind)


def test_quotient_bad_device_name():
    pytest.importorskip("torch")
    with pytest.raises(ParameterError, match="device"):
        sp.Quotient(device="no-such-device").fit(_bank())


# ------------------------------------------------------------------------------ transfer
@pytest.fixture(scope="module")
def pair():
    return readout_equivalent_models(120, 6, n_linear=2, n_quadratic=1, random_state=0)


@pytest.fixture
def no_transfer_work(monkeypatch):
    aligner = importlib.import_module("shallowprobes.monitors.aligner")

    def boom(*args, **kwargs):
        raise AssertionError("work started before the parameters were validated")

    for name in ("reference_moments", "column_moments", "alpha_grid"):
        monkeypatch.setattr(aligner, name, boom)
    monkeypatch.setattr(sp.Quotient, "fit", boom)
    monkeypatch.setattr(sp.LinearProbe, "fit", boom)
    monkeypatch.setattr(sp.LinearProbeClassifier, "fit", boom)
    monkeypatch.setattr(sp.QuadraticProbeClassifier, "fit", boom)


ALIGNER_BAD = [
    ("target", "everything", VALUE),
    ("target", None, TYPE),
    ("alphas", [NAN], NONFINITE),
    ("alphas", [-1.0], VALUE),
    ("cv", 1, VALUE),
    ("cv", "kfold", VALUE),
    ("alpha_per_target", "yes", TYPE),
    ("metric", "bogus", VALUE),
    ("readout", "W", TYPE),
    ("rtol", 1.0, VALUE),
    ("rtol", NAN, TYPE),
    ("rank", 0, VALUE),
    ("rank", 7, VALUE),
    ("rank", 2.5, TYPE),
    ("pca_rank", 0, VALUE),
    ("pca_rank", 2.5, TYPE),
    ("holdout", 0.0, VALUE),
    ("holdout", 1.5, VALUE),
    ("holdout", 1, VALUE),
    ("holdout", 119, VALUE),
    ("holdout", "0.2", TYPE),
    ("holdout", NAN, TYPE),
    ("random_state", -1, VALUE),
    ("random_state", "seed", TYPE),
    ("min_coverage", 1.5, VALUE),
    ("min_coverage", NAN, TYPE),
    ("min_fidelity", -0.1, VALUE),
    ("min_fidelity", "high", TYPE),
    ("unportable", "ignore", VALUE),
    ("full_state_diagnostic", "yes", TYPE),
    ("backend", "cuda", VALUE),
]


@pytest.mark.parametrize("name,value,kind", ALIGNER_BAD, ids=[f"{n}={v!r}" for n, v, _ in
                                                              ALIGNER_BAD])  # fmt: skip
def test_aligner_and_transfer_parameters(pair, name, value, kind, no_transfer_work):
    for call in (lambda: sp.QuotientAligner(**{name: value}).fit(pair.bank, pair.H_A, pair.H_B),
                 lambda: sp.transfer(pair.bank, pair.H_A, pair.H_B, **{name: value})):  # fmt: skip
        with pytest.raises(ParameterError) as info:
            call()
        assert_param_error(info, name, kind)


def test_transfer_readout(pair, no_transfer_work):
    dB = pair.H_B.shape[1]
    bad_nan = np.array(pair.readout_B, dtype=float)
    bad_nan[0, 0] = np.nan
    cases = [
        (dict(metric="bogus"), "metric", VALUE),
        (dict(metric="readout"), "readout", VALUE),  # missing
        (dict(metric="readout", readout=np.ones((4, dB + 1))), "readout", VALUE),
        (dict(metric="readout", readout=np.ones(dB)), "readout", VALUE),
        (dict(metric="readout", readout=np.ones((2, 3, dB))), "readout", VALUE),
        (dict(metric="readout", readout=bad_nan), "readout", NONFINITE),
        (dict(readout=pair.readout_B), "readout", VALUE),  # readout without its metric
    ]
    for params, name, kind in cases:
        with pytest.raises(ParameterError) as info:
            sp.transfer(pair.bank, pair.H_A, pair.H_B, **params)
        assert_param_error(info, name, kind)


def test_aligner_error_leaves_a_fitted_aligner_unchanged(pair):
    al = sp.QuotientAligner(unportable="mark").fit(pair.bank, pair.H_A, pair.H_B)
    before = dict(vars(al))
    al.set_params(holdout=2.0)
    with pytest.raises(ParameterError, match="holdout"):
        al.fit(pair.bank, pair.H_A, pair.H_B)
    al.set_params(holdout=before["holdout"])
    assert vars(al).keys() == before.keys()
    assert all(vars(al)[k] is v for k, v in before.items())


@pytest.mark.parametrize(
    "kwargs,name,kind",
    [
        (dict(targets="quotient"), "targets", TYPE),
        (dict(targets=()), "targets", VALUE),
        (dict(targets=("quotient", "bogus")), "targets", VALUE),
        (dict(n_labels=16), "n_labels", TYPE),
        (dict(n_labels=(0,)), "n_labels", VALUE),
        (dict(n_labels=(2.5,)), "n_labels", TYPE),
        (dict(holdout=1.5), "holdout", VALUE),
        (dict(min_fidelity=NAN), "min_fidelity", TYPE),
        (dict(targets=("pca",), pca_rank=0), "pca_rank", VALUE),
    ],
)
def test_compare_transfer_parameters(pair, kwargs, name, kind, no_transfer_work, monkeypatch):
    monkeypatch.setattr(sp.QuotientAligner, "fit", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ParameterError) as info:
        sp.compare_transfer(pair.bank, pair.H_A, pair.H_B, pair.labels, **kwargs)
    assert_param_error(info, name, kind)


@pytest.mark.parametrize(
    "kwargs,name,kind",
    [
        (dict(degree=3), "degree", VALUE),
        (dict(degree="2"), "degree", TYPE),
        (dict(n_labels=0), "n_labels", VALUE),
        (dict(n_labels=2.5), "n_labels", TYPE),
        (dict(random_state=-1), "random_state", VALUE),
        (dict(cv=1), "cv", VALUE),
        (dict(scoring="f1", cv=3), "scoring", VALUE),
        (dict(alphas=[NAN]), "alphas", NONFINITE),
        (dict(degree=2, gamma=-1.0), "gamma", VALUE),
    ],
)
def test_few_label_probe_parameters(pair, kwargs, name, kind, no_transfer_work, monkeypatch):
    transfer = importlib.import_module("shallowprobes.monitors.transfer")
    monkeypatch.setattr(transfer, "check_X", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ParameterError) as info:
        sp.few_label_probe(pair.H_B, pair.labels[:, 0], **kwargs)
    assert_param_error(info, name, kind)


# ------------------------------------------------------------------------------ stability
def test_stability_parameters(monkeypatch):
    drift = importlib.import_module("shallowprobes.stability.drift")  # where the refits start
    monkeypatch.setattr(drift, "_clone", lambda est: pytest.fail("work started"))
    X, y = _data(60, 4)
    est = sp.LinearProbe()
    base = dict(estimator=est, X=X, y=y, group=stability.Affine())
    cases = [
        (dict(n_draws=0), "n_draws", VALUE),
        (dict(n_draws=2.5), "n_draws", TYPE),
        (dict(test_size=0.0), "test_size", VALUE),
        (dict(test_size=1.5), "test_size", VALUE),
        (dict(test_size=NAN), "test_size", TYPE),
        (dict(random_state=-1), "random_state", VALUE),
        (dict(random_state="seed"), "random_state", TYPE),
        (dict(name=3), "name", TYPE),
        (dict(readout=np.full((2, 4), NAN)), "readout", NONFINITE),
        (dict(readout=np.ones((2, 5))), "readout", VALUE),
        (dict(readout=[["a"] * 4]), "readout", TYPE),
        (dict(group="affine"), "group", TYPE),
        (dict(estimator=object()), "estimator", TYPE),
    ]
    for extra, name, kind in cases:
        with pytest.raises(ParameterError) as info:
            stability.stability_report(**{**base, **extra})
        assert_param_error(info, name, kind)
    with pytest.raises(ParameterError) as info:
        stability.compare_stability({"a": est, "b": object()}, X, y, stability.Affine())
    assert_param_error(info, "estimators", TYPE)
    with pytest.raises(ParameterError) as info:
        stability.compare_stability({}, X, y, stability.Affine())
    assert_param_error(info, "estimators", VALUE)


def test_group_parameters():
    cases = [
        (lambda: stability.Affine(condition=NAN), "condition", TYPE),
        (lambda: stability.Affine(condition=0.5), "condition", VALUE),
        (lambda: stability.Affine(condition=INF), "condition", VALUE),
        (lambda: stability.Euclidean(shift_scale=-1.0), "shift_scale", VALUE),
        (lambda: stability.Euclidean(shift_scale="big"), "shift_scale", TYPE),
        (lambda: stability.DiagonalAffine(permute="yes"), "permute", TYPE),
        (lambda: stability.Affine().sample(0), "d", VALUE),
        (lambda: stability.Affine().sample(2.0), "d", TYPE),
        (lambda: stability.Affine().sample(3, "seed"), "rng_or_seed", TYPE),
        (lambda: stability.Affine().sample(3, -1), "rng_or_seed", VALUE),
        (lambda: stability.format_reports([], tol=-1.0), "tol", VALUE),
        (lambda: stability.format_reports(["report"]), "reports", TYPE),
    ]
    for call, name, kind in cases:
        with pytest.raises(ParameterError) as info:
            call()
        assert_param_error(info, name, kind)
    X, y = _data(60, 4)
    report = stability.stability_report(sp.LinearProbe(), X, y, stability.Euclidean(), n_draws=1)
    for tol, kind in [(NAN, TYPE), (-1.0, VALUE), ("1e-6", TYPE)]:
        with pytest.raises(ParameterError) as info:
            report.is_stable(tol)
        assert_param_error(info, "tol", kind)


# ------------------------------------------------------------------------------ datasets
DATASET_BAD = [
    (datasets.make_xor, dict(n_samples=0), "n_samples", VALUE),
    (datasets.make_xor, dict(n_samples=100.0), "n_samples", TYPE),
    (datasets.make_xor, dict(n_samples="100"), "n_samples", TYPE),
    (datasets.make_xor, dict(n_features=0), "n_features", VALUE),
    (datasets.make_xor, dict(cluster_std=-1.0), "cluster_std", VALUE),
    (datasets.make_xor, dict(cluster_std=NAN), "cluster_std", TYPE),
    (datasets.make_xor, dict(nuisance_std=INF), "nuisance_std", VALUE),
    (datasets.make_xor, dict(label_noise=0.5), "label_noise", VALUE),
    (datasets.make_xor, dict(label_noise="0.1"), "label_noise", TYPE),
    (datasets.make_xor, dict(condition=NAN), "condition", TYPE),
    (datasets.make_xor, dict(test_fraction=1.0), "test_fraction", VALUE),
    (datasets.make_xor, dict(dtype=np.int64), "dtype", VALUE),
    (datasets.make_xor, dict(dtype="no-such-type"), "dtype", TYPE),
    (datasets.make_xor, dict(seed=-1), "seed", VALUE),
    (datasets.make_xor, dict(seed="x"), "seed", TYPE),
    (datasets.make_xor, dict(scramble="yes"), "scramble", TYPE),
    (datasets.make_parity, dict(n_bits=0), "n_bits", VALUE),
    (datasets.make_circle, dict(margin=1.0), "margin", VALUE),
    (datasets.make_circle, dict(radius_noise=-0.1), "radius_noise", VALUE),
    (datasets.make_circle, dict(seed=1.5), "seed", TYPE),
    (datasets.make_linear_concepts, dict(n_samples=5), "n_samples", VALUE),
    (datasets.make_linear_concepts, dict(n_features=0), "n_features", VALUE),
    (datasets.make_linear_concepts, dict(n_concepts=1.0), "n_concepts", TYPE),
    (datasets.make_linear_concepts, dict(noise=-1.0), "noise", VALUE),
    (datasets.make_linear_concepts, dict(noise=NAN), "noise", TYPE),
    (datasets.make_linear_concepts, dict(anisotropy=INF), "anisotropy", VALUE),
    (datasets.make_linear_concepts, dict(offset_scale="big"), "offset_scale", TYPE),
    (datasets.make_linear_concepts, dict(test_fraction=1.0), "test_fraction", VALUE),
    (datasets.make_linear_concepts, dict(dtype=np.int32), "dtype", VALUE),
    (datasets.make_linear_concepts, dict(seed="x"), "seed", TYPE),
    (readout_equivalent_models, dict(d_A=0), "d_A", VALUE),
    (readout_equivalent_models, dict(n_samples=9), "n_samples", VALUE),
    (readout_equivalent_models, dict(n_linear=-1), "n_linear", VALUE),
    (readout_equivalent_models, dict(noise=-1.0), "noise", VALUE),
    (readout_equivalent_models, dict(condition=0.5), "condition", VALUE),
    (readout_equivalent_models, dict(invisible="x"), "invisible", VALUE),
    (readout_equivalent_models, dict(visible_variance=None), "visible_variance", TYPE),
    (readout_equivalent_models, dict(dtype="int32"), "dtype", VALUE),
    (readout_equivalent_models, dict(random_state=-1), "random_state", VALUE),
]


@pytest.mark.parametrize(
    "make,kwargs,name,kind",
    DATASET_BAD,
    ids=[f"{m.__name__}-{n}={k[n]!r}" for m, k, n, _ in DATASET_BAD],
)
def test_dataset_parameters(make, kwargs, name, kind, monkeypatch):  # fmt: skip
    monkeypatch.setattr(np.random, "default_rng", lambda *a: pytest.fail("work started"))
    with pytest.raises(ParameterError) as info:
        make(**kwargs)
    assert_param_error(info, name, kind)


# ------------------------------------------------------------------------------ metrics
def test_metric_helpers():
    S = np.eye(3)
    for call in (lambda: metrics.psd_sqrt(S, rcond=NAN), lambda: metrics.psd_inv_sqrt(S, -1.0),
                 lambda: metrics.fit_geometry("whiten", lambda: S, 3, rcond=2.0)):  # fmt: skip
        with pytest.raises(ParameterError, match="rcond"):
            call()
    with pytest.raises(ParameterError, match="metric must be one of"):
        metrics.check_metric("Whiten")


# ------------------------------------------------------------------------------ hypothesis
def _numbers():
    specials = st.sampled_from([NAN, INF, -INF, -1.0, 0.0, -0.0, 1e-12, 1e-300, 5e-324, 1e6])
    return st.one_of(st.floats(-10.0, 1e4), specials)


def _ints(lo=-2, hi=5):
    return st.integers(lo, hi)


def _junk():
    return st.sampled_from(["x", "", None, True, [1], {"a": 1}, 1j])


COMMON_STRATEGIES = {
    "alphas": st.one_of(st.none(), _numbers(), st.lists(_numbers(), max_size=3), _junk()),
    "cv": st.one_of(
        st.sampled_from(["gcv", "loo", "kfold", None]), _ints(-1, 6), _numbers(), _junk()
    ),  # fmt: skip
    "alpha_per_target": st.one_of(st.booleans(), _ints(0, 1), _junk()),
    "fit_intercept": st.one_of(st.booleans(), _ints(0, 1), _junk()),
    "metric": st.sampled_from([*metrics.METRICS, "bogus", None]),
    "backend": st.sampled_from(["auto", "numpy", "rust", "cuda", None]),
}
CP_STRATEGIES = {
    "rank": st.one_of(_ints(-1, 4), _numbers(), _junk()),
    "max_iter": st.one_of(_ints(-1, 4), _numbers(), _junk()),
    "tol": st.one_of(_numbers(), _junk()),
    "init": st.sampled_from(["moments", "random", "bogus", None]),
    "random_state": st.one_of(st.none(), st.integers(-3, 2**40), _numbers(), _junk()),
}
QUADRATIC_STRATEGIES = {
    "gamma": st.one_of(st.none(), _numbers(), st.lists(_numbers(), max_size=3), _junk()),
    "solver": st.sampled_from(["auto", "primal", "dual", "svd", None]),
    "memory_limit": st.one_of(st.none(), _numbers(), st.sampled_from([1e12, INF]), _junk()),
}
STRATEGIES = {
    sp.LinearProbe: COMMON_STRATEGIES,
    sp.QuadraticProbe: {**COMMON_STRATEGIES, **QUADRATIC_STRATEGIES},
    sp.CPProbe: {**COMMON_STRATEGIES, **CP_STRATEGIES},
}
_HYP_X, _HYP_Y = _data(30, 3, seed=5)


def _drawn_params(cls):
    strategies = STRATEGIES[cls]
    return st.fixed_dictionaries({}, optional=strategies)


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda c: c.__name__)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_parameters_fit_or_name_the_parameter(cls, data):
    """Random parameter values: fit succeeds with finite predictions, or raises a
    ParameterError / TypeError / ValueError naming one of the parameters (never IndexError,
    ZeroDivisionError, LinAlgError, a RuntimeWarning, ...). A memory_limit too small for
    either degree-2 route is a MemoryError naming memory_limit."""
    params = data.draw(_drawn_params(cls), label="params")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", sp.probes.cp.ConvergenceWarning)
        try:
            est = cls(**params).fit(_HYP_X, _HYP_Y)
        except (ParameterError, TypeError, ValueError, MemoryError) as exc:
            assert not isinstance(exc, (np.linalg.LinAlgError, IndexError)), repr(exc)
            message = str(exc)
            assert any(name in message for name in params), (params, message)
            return
        pred = np.asarray(est.predict(_HYP_X))
    assert pred.shape == (_HYP_X.shape[0],)
    assert np.isfinite(pred).all(), params


def test_messages_name_value_and_allowed():
    with pytest.raises(ParameterError) as info:
        sp.CPProbe(tol=NAN).fit(*_data())
    msg = str(info.value)
    assert "CPProbe" in msg and "tol" in msg and "nan" in msg and ">= 0" in msg
    assert math.isnan(sp.CPProbe(tol=NAN).tol)  # construction never validates

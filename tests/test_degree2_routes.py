"""What only the degree-2 probes refuse: their own hyperparameters (solver, gamma,
memory_limit), memory limits no route fits in (MemoryError, the probe left as it was), and the
dual route, which keeps no statistics, refusing to stream."""

from __future__ import annotations

import re

import numpy as np
import pytest
from _probe_kinds import assert_unchanged, data, labels, snapshot
from shallowprobes import NotFittedError, QuadraticProbe, QuadraticProbeClassifier

SOLVERS = ["primal", "dual"]


def _data(n, d):
    return data(2, n=n, d=d)


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
]


@pytest.mark.parametrize(("params", "msg"), BAD_PARAMS, ids=[repr(p) for p, _ in BAD_PARAMS])
@pytest.mark.parametrize("est_cls", [QuadraticProbe, QuadraticProbeClassifier])
def test_bad_degree2_hyperparameters_raise(est_cls, params, msg):
    X, y = _data(n=20, d=3)
    yy = y if est_cls is QuadraticProbe else labels(y)
    est = est_cls(**params)  # construction never validates (scikit-learn convention)
    for key, value in params.items():
        assert est.get_params()[key] is value
    with pytest.raises(ValueError, match=msg):
        est.fit(X, yy)
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


# ------------------------------------------------------------------------------ memory limits
@pytest.mark.parametrize("solver", SOLVERS)
def test_failed_fit_by_memory_error_leaves_estimator_unchanged(backend, solver):
    X, y = _data(n=30, d=5)
    probe = QuadraticProbe(solver=solver, backend=backend).fit(X, y)
    before = snapshot(probe)
    probe.set_params(solver="auto", memory_limit=100)
    with pytest.raises(MemoryError):
        probe.fit(X * 2, y)
    probe.set_params(solver=solver, memory_limit=None)
    assert_unchanged(probe, before)


@pytest.mark.parametrize("est_cls", [QuadraticProbe, QuadraticProbeClassifier])
def test_memory_error_when_no_route_fits(backend, est_cls):
    n, d = 30, 10
    p = d + d * (d + 1) // 2  # 65
    X, y = _data(n=n, d=d)
    yy = y if est_cls is QuadraticProbe else labels(y)
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
        clf.partial_fit(X, labels(y), classes=[0, 1])


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
    yy = y if est_cls is QuadraticProbe else labels(y)
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

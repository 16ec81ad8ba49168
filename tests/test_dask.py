"""Dask inputs: estimators' fit, SufficientStats.update and sweep on dask arrays equal the
in-memory fits, on the threaded scheduler and on a real dask.distributed LocalCluster whose
client is shown never to receive a row block."""

from __future__ import annotations

import numpy as np
import pytest
from _sweep_data import activations
from conftest import assert_rel
from shallowprobes import (
    CPProbe,
    LinearProbe,
    LinearProbeClassifier,
    QuadraticProbe,
    QuadraticProbeClassifier,
    SufficientStats,
    sweep,
)
from shallowprobes.caches import open_cache
from shallowprobes.errors import NonFiniteError, ParameterError

da = pytest.importorskip("dask.array")
import dask  # noqa: E402

RTOL = 1e-10
FIELDS = ("count", "sum_x", "sum_y", "xtx", "xty", "yty")


def data(n=900, d=6, seed=0):
    H, targets = activations(n, d, 2, seed=seed)
    return H, targets


def uneven(X, sizes):
    """X as a dask array with the given (uneven) row chunks."""
    assert sum(sizes) == X.shape[0]
    return da.from_array(X, chunks=(tuple(sizes), X.shape[1]))


def assert_same_fit(got, ref, what, X_eval=None):
    """Same alpha, CV scores and coefficients; the intercept in input coordinates is checked
    through the decision values on X_eval (it can be a near-cancellation of large terms)."""
    assert_rel(got.cv_results_["scores"], ref.cv_results_["scores"], RTOL, f"{what} scores")
    assert_rel(got.alpha_, ref.alpha_, RTOL, f"{what} alpha")
    if hasattr(ref, "quadratic_"):
        assert_rel(got.quadratic_, ref.quadratic_, RTOL, f"{what} quadratic_")
        assert_rel(got.linear_, ref.linear_, RTOL, f"{what} linear_")
    else:
        assert_rel(got.coef_, ref.coef_, RTOL, f"{what} coef_")
    if X_eval is None:
        assert_rel(got.intercept_, ref.intercept_, RTOL, f"{what} intercept_")
    else:
        f = "decision_function" if hasattr(ref, "classes_") else "predict"
        assert_rel(getattr(got, f)(X_eval), getattr(ref, f)(X_eval), RTOL, f"{what} {f}")


CASES = [
    (LinearProbeClassifier, dict(cv=5), "sign"),
    (LinearProbeClassifier, dict(cv="gcv"), "three"),
    (LinearProbe, dict(cv=4, alpha_per_target=True), "value"),
    (QuadraticProbeClassifier, dict(cv=5), "xor"),
    (QuadraticProbe, dict(cv="gcv"), "value"),
]


# ---------------------------------------------------------------------------------- threaded
@pytest.mark.parametrize("cls,kw,target", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_fit_on_dask_equals_in_memory(cls, kw, target):
    H, targets = data()
    X, y = H[0], targets[target]
    Xd = uneven(X, [100, 1, 250, 300, 249])  # K-fold folds must follow global row indices
    with dask.config.set(scheduler="threads"):
        got = cls(**kw).fit(Xd, y)
    ref = cls(**kw).fit(X, y)
    assert_same_fit(got, ref, cls.__name__)
    if hasattr(ref, "classes_"):
        np.testing.assert_array_equal(got.predict(X[:20]), ref.predict(X[:20]))
    else:
        assert_rel(got.predict(X[:20]), ref.predict(X[:20]), RTOL, "predict")


def test_fit_on_float16_dask_with_fold_ids_and_dask_targets():
    H, targets = data()
    X16 = H[1].astype(np.float16)
    folds = np.random.default_rng(2).integers(0, 3, X16.shape[0])
    y = targets["sign"]
    ref = LinearProbeClassifier(cv=3).fit(X16.astype(np.float64), y, fold_ids=folds)
    Xd = uneven(X16, [450, 450])
    got = LinearProbeClassifier(cv=3).fit(
        Xd, da.from_array(y, chunks=300), fold_ids=da.from_array(folds, chunks=200)
    )
    assert_same_fit(got, ref, "float16 dask")


def test_stats_update_with_dask_continues_the_row_count():
    H, targets = data()
    X, Y = H[0], np.c_[targets["value"], targets["sign"]]
    ref = SufficientStats(n_folds=4).update(X, Y)
    s = SufficientStats(n_folds=4).update(X[:333], Y[:333])  # in memory first ...
    s.update(uneven(X[333:], [67, 500]), da.from_array(Y[333:], chunks=(100, 2)))  # ... then dask
    assert s.rows_seen == ref.rows_seen == 900
    for sel in (dict(), dict(exclude_fold=1), dict(only_fold=3)):
        a, b = s.normal_equations(**sel), ref.normal_equations(**sel)
        assert_rel(a.gram, b.gram, 1e-12, f"gram {sel}")
        assert_rel(a.cxy, b.cxy, 1e-12, f"cxy {sel}")
    fresh = SufficientStats(degree=2).update(uneven(X, [300, 600]))
    assert_rel(
        fresh.feature_stats().normal_equations().gram,
        SufficientStats(degree=2).update(X).feature_stats().normal_equations().gram,
        1e-12,
        "degree-2 unlabeled",
    )


def test_sweep_on_dask_cache_equals_in_process_sweep(tmp_path):
    H, targets = data(600, 5)
    np.save(tmp_path / "stack.npy", H.astype(np.float16))
    # precision="float64": the exact Gram, so the chunked graph and the one local pass agree
    # to round-off (the default float32 block Grams of half layers depend on the blocking)
    exact = {"precision": "float64"}
    local = sweep(tmp_path / "stack.npy", targets, degrees=(1, 2), cv=3, split=0.2, verbose=False,
                  **exact)  # fmt: skip
    cache = open_cache(tmp_path / "stack.npy").to_dask(chunk_rows=77)
    assert cache.is_dask and cache[0].dask.chunks[0][0] == 77
    with dask.config.set(scheduler="threads"):
        remote = sweep(cache, targets, degrees=(1, 2), cv=3, split=0.2, verbose=False, **exact)
    for a, b in zip(remote.table, local.table):
        assert (a["layer"], a["degree"], a["target"]) == (b["layer"], b["degree"], b["target"])
        assert_rel(a["cv_score"], b["cv_score"], RTOL, "cv_score")
        assert_rel(a["test_score"], b["test_score"], 1e-9, "test_score")
    for key, probe in remote.probes.items():
        assert_same_fit(probe, local.probes[key], str(key))


def test_sweep_reads_zarr_through_dask(tmp_path):
    zarr = pytest.importorskip("zarr")
    H, targets = data(500, 4)
    z = zarr.create_array(
        store=str(tmp_path / "acts.zarr"), shape=H[1].shape, chunks=(64, 4), dtype="float32"
    )
    z[...] = H[1].astype(np.float32)
    arr = da.from_zarr(str(tmp_path / "acts.zarr"))
    with dask.config.set(scheduler="threads"):
        res = sweep({"mlp": arr}, {"sign": targets["sign"]}, degrees=(1,), cv=5, verbose=False)
    ref = LinearProbeClassifier(cv=5).fit(
        H[1].astype(np.float32).astype(np.float64), targets["sign"]
    )
    assert_same_fit(res.probes[("mlp", 1, "sign")], ref, "zarr")


def test_dask_fit_refuses_what_needs_rows_and_keeps_the_old_fit():
    H, targets = data(300, 4)
    X, y = H[0], targets["sign"]
    Xd = da.from_array(X, chunks=(100, 4))
    for est, match in [
        (LinearProbe(cv="loo"), "cv='loo'"),
        (LinearProbeClassifier(cv=5, scoring="roc_auc"), "scoring='roc_auc'"),
        (QuadraticProbe(solver="dual"), "dual route"),
        (CPProbe(rank=2), "CP probe"),
    ]:
        with pytest.raises(ParameterError, match=match):
            est.fit(Xd, y)
    probe = LinearProbeClassifier(cv=3).fit(X, y)
    before = probe.coef_.copy()
    bad = X.copy()
    bad[150, 2] = np.inf
    with pytest.raises(NonFiniteError, match=r"rows 100:200"):
        probe.fit(da.from_array(bad, chunks=(100, 4)), y)
    np.testing.assert_array_equal(probe.coef_, before)


# ---------------------------------------------------------------------------------- cluster
class _Watch:
    """Scheduler plugin: every task result that a client wanted (the only data a client
    receives), and where the per-block statistics tasks ran."""

    name = "shallowprobes-watch"

    def __init__(self) -> None:
        self.recording = False
        self.wanted: list = []  # (key, type name, nbytes)
        self.block_tasks: list = []  # (key, worker address)

    def transition(self, key, start, finish, *args, **kwargs):
        if not self.recording or finish != "memory":
            return
        ts = self.scheduler.tasks.get(key)
        if ts is None:
            return
        name = key[0] if isinstance(key, tuple) else key
        if str(name).startswith("shallowprobes-block-stats"):
            self.block_tasks.append((key, tuple(ws.address for ws in ts.who_has)))
        if ts.who_wants:
            deps = tuple(
                str(dep.key[0] if isinstance(dep.key, tuple) else dep.key)
                for dep in ts.dependencies
            )
            self.wanted.append((key, ts.type, ts.nbytes, deps))


@pytest.mark.slow
def test_local_cluster_fit_and_sweep_equal_in_memory_and_ship_no_rows(monkeypatch):
    distributed = pytest.importorskip("distributed")
    from distributed.diagnostics.plugin import SchedulerPlugin

    watch_cls = type("Watch", (_Watch, SchedulerPlugin), {})
    n, d = 2000, 6
    chunks = 250
    X0 = da.random.default_rng(11).standard_normal((n, d), chunks=(chunks, d)) * 2.0 + 5.0
    mix = np.eye(d) + 0.3 * np.random.default_rng(3).normal(size=(d, d))  # well conditioned
    X1 = (X0 @ da.from_array(mix)).astype(np.float32)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            env={"RAYON_NUM_THREADS": "1"},
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        worker_addrs = set(client.scheduler_info()["workers"])
        assert len(worker_addrs) == 2
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in worker_addrs)
        A0, A1 = dask.compute(X0, X1)  # the test's own references, before recording
        y_bin = (A0[:, 0] - 5.0) * (A0[:, 1] - 5.0) > 0
        y_val = A0[:, 2] + 0.2 * A0[:, 3] ** 2
        watch = watch_cls()
        watch.scheduler = cluster.scheduler
        cluster.scheduler.add_plugin(watch)

        def no_local_accumulation(*args, **kwargs):
            raise AssertionError("rows were accumulated in the client process")

        with monkeypatch.context() as m:
            m.setattr(SufficientStats, "_accumulate_validated", no_local_accumulation)
            watch.recording = True
            fits = {
                "lin5": LinearProbeClassifier(cv=5).fit(X0, y_bin),
                "lin_gcv": LinearProbe(cv="gcv").fit(X1, y_val),
                "quad5": QuadraticProbeClassifier(cv=5).fit(X0, y_bin),
                "quad_gcv": QuadraticProbe(cv="gcv").fit(X1, y_val),
            }
            res = sweep(
                {"l0": X0, "l1": X1},
                {"bin": y_bin, "val": y_val},
                degrees=(1, 2),
                cv=5,
                verbose=False,
            )
            res_gcv = sweep({"l1": X1}, {"val": y_val}, degrees=(1, 2), cv="gcv", verbose=False)
            watch.recording = False
        refs = {
            "lin5": LinearProbeClassifier(cv=5).fit(A0, y_bin),
            "lin_gcv": LinearProbe(cv="gcv").fit(A1, y_val),
            "quad5": QuadraticProbeClassifier(cv=5, solver="primal").fit(A0, y_bin),
            "quad_gcv": QuadraticProbe(cv="gcv", solver="primal").fit(A1, y_val),
        }
        for name, ref in refs.items():
            assert_same_fit(fits[name], ref, name, (A0 if name.endswith("5") else A1)[:200])
        for (layer, deg, t), probe in res.probes.items():
            A = A0 if layer == "l0" else A1
            y = y_bin if t == "bin" else y_val
            cls = {
                1: (LinearProbeClassifier, LinearProbe),
                2: (QuadraticProbeClassifier, QuadraticProbe),
            }[deg][t == "val"]
            kw = {"solver": "primal"} if deg == 2 else {}
            assert_same_fit(probe, cls(cv=5, **kw).fit(A, y), f"sweep {layer} {deg} {t}", A[:200])
        for deg, cls in ((1, LinearProbe), (2, QuadraticProbe)):
            kw = {"solver": "primal"} if deg == 2 else {}
            ref = cls(cv="gcv", **kw).fit(A1, y_val)
            assert_same_fit(res_gcv.probes[("l1", deg, "val")], ref, f"gcv sweep {deg}", A1[:200])
        assert res.routes[("l0", 2)] == "primal"
    # what the client received: the merged statistics of each fit (4) and of each layer of
    # the sweeps (2 + 1), nothing else -- no row block, no per-block statistics
    assert len(watch.wanted) == 7, watch.wanted
    for key, type_name, _, deps in watch.wanted:
        name = str(key[0] if isinstance(key, tuple) else key)
        # the merged statistics, or dask's finalize step applied to them and nothing else
        assert name.startswith("shallowprobes-merge-stats") or (
            deps and all(dep.startswith("shallowprobes-merge-stats") for dep in deps)
        ), (key, deps)
        assert "_Group" in type_name, (key, type_name)
    # the per-block statistics ran on the workers, one task per block of each graph
    blocks = n // chunks
    assert len(watch.block_tasks) == 7 * blocks
    workers = {addr for _, where in watch.block_tasks for addr in where}
    assert workers and workers <= worker_addrs


@pytest.mark.slow
def test_local_cluster_wide_rows_come_to_the_client_for_the_dual_route():
    """Fewer rows than features: the linear probe brings the rows (n d values, less than one
    fold's d x d statistics) from the cluster's workers and fits its dual route: the same
    probe as in memory, LOO included; the sweep does the same per layer."""
    distributed = pytest.importorskip("distributed")
    n, d = 120, 300
    X = da.random.default_rng(12).standard_normal((n, d), chunks=(40, d)) + 3.0
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 host="127.0.0.1", dashboard_address=None) as cluster,
        distributed.Client(cluster),
    ):  # fmt: skip
        A = X.compute()
        y = A[:, 0] - A[:, 1] + 0.1 * np.random.default_rng(0).normal(size=n)
        got = {cv: LinearProbe(cv=cv).fit(X, y) for cv in ("gcv", "loo", 5)}
        res = sweep({"wide": X}, {"y": y}, degrees=(1,), cv=5, verbose=False)
    for cv, probe in got.items():
        assert probe.solver_ == "dual"
        assert_same_fit(probe, LinearProbe(cv=cv).fit(A, y), f"cluster {cv}", A[:50])
    assert res.routes[("wide", 1)] == f"dual ({n} rows)"
    assert_same_fit(res.probes[("wide", 1, "y")], LinearProbe(cv=5).fit(A, y), "sweep", A[:50])


def test_dask_rows_added_to_a_sweep_probe_leave_the_others_alone():
    H, targets = data(400, 4)
    X = H[0]
    y = {"sign": targets["sign"], "value": targets["value"]}
    res = sweep({"h": X}, y, degrees=1, cv=3, verbose=False)
    value = res.probes[("h", 1, "value")]
    before, gram = value.coef_.copy(), res.stats[("h", 1)].xtx.copy()
    sign_stats = res.probes[("h", 1, "sign")].stats_
    extra = np.random.default_rng(1).normal(size=(60, 4)) + X.mean(0)
    codes = np.where(np.arange(60) % 2 == 1, 1.0, -1.0)
    with dask.config.set(scheduler="threads"):
        sign_stats.update(da.from_array(extra, chunks=(25, 4)), codes)
    ref = SufficientStats(3).update(
        np.vstack([X, extra]), np.r_[np.where(y["sign"] == 1, 1.0, -1.0), codes]
    )
    assert_rel(
        sign_stats.normal_equations(exclude_fold=2).gram,
        ref.normal_equations(exclude_fold=2).gram,
        1e-12,
        "streamed with dask",
    )
    np.testing.assert_array_equal(value.coef_, before)
    np.testing.assert_array_equal(res.stats[("h", 1)].xtx, gram)


@pytest.mark.parametrize("shape", [(40, 6), (12, 30)], ids=["tall-primal", "wide-dual"])
def test_fold_errors_on_dask_rows_are_those_of_numpy_rows(shape):
    """Every entry point assigns folds through one rule (`_validation.fold_assignment`):
    dask rows (statistics on the workers, or the dual route on the client) raise the same
    error, with the same message, as the same fit on numpy rows, before any work."""
    n, d = shape
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    Xd = da.from_array(X, chunks=(7, d))
    cases = [
        (dict(cv=n + 1), None),  # more folds than rows
        (dict(cv="gcv"), np.arange(n) % 3),  # fold ids without K-fold
        (dict(cv=3), np.arange(n)),  # out of range
        (dict(cv=3), np.arange(n - 1) % 3),  # one short
        (dict(cv=3), np.zeros(n)),  # not integers
    ]
    for params, folds in cases:
        with pytest.raises((ValueError, TypeError)) as on_numpy:
            LinearProbe(**params).fit(X, y, fold_ids=folds)
        with pytest.raises(on_numpy.type) as on_dask:
            LinearProbe(**params).fit(Xd, y, fold_ids=folds)
        assert str(on_dask.value) == str(on_numpy.value), params
    # and the default folds are i % K on both: the same K-fold probe
    ref = LinearProbe(cv=4).fit(X, y, fold_ids=np.arange(n) % 4)
    got = LinearProbe(cv=4).fit(Xd, y)
    assert got.solver_ == ref.solver_
    assert_rel(got.coef_, ref.coef_, 1e-10, "default folds")

"""shallowprobes.sweep: one pass over a cache on disk equals fitting every layer in memory.

References are independent: each (layer, degree, target) probe is fitted with the public
estimators on a float64 in-memory copy of exactly the stored values (numpy's float16
conversion, torch's bfloat16 conversion), and test scores are recomputed with plain numpy.
Sweeps run with precision="float64" (`exact_sweep`), the exact arithmetic of the references.
Every read goes through `caches.Segment.read`, which the tests wrap to check that each file
region is read exactly once and that no read asks for more rows than the budget allows.
"""

from __future__ import annotations

import numpy as np
import pytest
from _sweep_data import activations, bf16, f16, save_safetensors, write_sharded
from conftest import assert_rel
from shallowprobes import (
    LinearProbe,
    LinearProbeClassifier,
    ProbeBank,
    QuadraticProbe,
    QuadraticProbeClassifier,
    sweep,
)
from shallowprobes.caches import Segment, open_cache
from shallowprobes.errors import ParameterError
from shallowprobes.sweep import SweepResult


def exact_sweep(*args, **kwargs):
    """sweep with the exact float64 Gram for every layer (half-precision layers are still
    read by the core as raw bits): what the in-memory references compute. The default
    float32 block Grams for half layers are checked against their bound in
    test_sweep_precision.py."""
    kwargs.setdefault("precision", "float64")
    return sweep(*args, **kwargs)


def needs_safetensors():
    """bfloat16 / safetensors caches need torch (to write them and for the independent
    conversion) and safetensors."""
    pytest.importorskip("safetensors")
    pytest.importorskip("torch")


N, D, L = 1200, 8, 3
RTOL = 1e-10
CLASSIFICATION = ("sign", "xor", "three")


def reference(task: str, degree: int, X, y, **kw):
    if degree == 1:
        cls = LinearProbeClassifier if task == "classification" else LinearProbe
    else:
        cls = QuadraticProbeClassifier if task == "classification" else QuadraticProbe
        kw.setdefault("solver", "primal")
    fold_ids = kw.pop("fold_ids", None)
    return cls(**kw).fit(X, y, fold_ids=fold_ids)


def assert_same_probe(got, ref, degree: int, X_eval, what: str) -> None:
    assert type(got) is type(ref), what
    assert_rel(got.alphas_, ref.alphas_, RTOL, f"{what} alphas_")
    assert_rel(got.alpha_, ref.alpha_, RTOL, f"{what} alpha_")
    assert_rel(got.cv_results_["scores"], ref.cv_results_["scores"], RTOL, f"{what} cv scores")
    assert_rel(got.best_score_, ref.best_score_, RTOL, f"{what} best_score_")
    if degree == 1:
        assert_rel(got.coef_, ref.coef_, RTOL, f"{what} coef_")
    else:
        assert_rel(got.quadratic_, ref.quadratic_, RTOL, f"{what} quadratic_")
        assert_rel(got.linear_, ref.linear_, RTOL, f"{what} linear_")
        assert_rel(got.gamma_, ref.gamma_, RTOL, f"{what} gamma_")
    assert_rel(got.intercept_, ref.intercept_, RTOL, f"{what} intercept_")
    if hasattr(ref, "predict_proba"):
        assert_rel(got.decision_function(X_eval), ref.decision_function(X_eval), RTOL, what)
        assert_rel(got.predict_proba(X_eval), ref.predict_proba(X_eval), RTOL, f"{what} proba")
        np.testing.assert_array_equal(got.classes_, ref.classes_)
    else:
        assert_rel(got.predict(X_eval), ref.predict(X_eval), RTOL, f"{what} predict")


def task_of(name: str) -> str:
    return "classification" if name in CLASSIFICATION else "regression"


class ReadLog:
    """Wraps Segment.read: records (segment, start, stop) of every read."""

    def __init__(self, monkeypatch) -> None:
        self.reads: list = []
        original = Segment.read
        log = self.reads

        def read(seg, start, stop):
            log.append((seg, start, stop))
            return original(seg, start, stop)

        monkeypatch.setattr(Segment, "read", read)

    def assert_each_region_once(self, cache) -> None:
        by_seg: dict = {}
        for seg, a, b in self.reads:
            by_seg.setdefault(seg.where, []).append((a, b))
        segments = [s for layer in cache.values() for s in layer.segments]
        assert {s.where for s in segments} == set(by_seg), "a segment was never read"
        for seg in segments:
            spans = sorted(by_seg[seg.where])
            at = 0
            for a, b in spans:
                assert a == at, f"{seg.where}: rows {at}:{a} skipped or read twice ({spans})"
                assert b > a
                at = b
            assert at == seg.n_rows, f"{seg.where}: rows {at}:{seg.n_rows} never read"

    def assert_budget(self, cache, budget: int) -> None:
        limit = cache.rows_per_read(budget)
        for seg, a, b in self.reads:
            layer = next(
                lay for lay in cache.values() if any(s.where == seg.where for s in lay.segments)
            )
            assert b - a <= limit, f"{seg.where}: read of {b - a} rows > {limit}"
            assert (b - a) * layer.row_bytes <= budget


@pytest.fixture(scope="module")
def data():
    return activations(N, D, L, seed=3)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, data):
    needs_safetensors()
    H, targets = data
    root = tmp_path_factory.mktemp("sharded")
    copies = write_sharded(
        root,
        H,
        bounds=[[400, 650], [700], [300, 301, 1000]],
        kinds=["f16-npy", "bf16-st", "f16-st"],
    )
    return root, copies, targets


# ---------------------------------------------------------------------------------- main claim
def test_sharded_sweep_equals_in_memory_fits_and_reads_once(sharded, monkeypatch):
    root, X64, targets = sharded
    log = ReadLog(monkeypatch)
    budget = 61 * D * 6  # 61 rows of float16/bfloat16 + their float32 conversion
    res = exact_sweep(
        root, targets, degrees=(1, 2), cv=5, split=0.25, memory_budget=budget, verbose=False
    )
    assert isinstance(res, SweepResult)
    assert res.layers == ["layer_00", "layer_01", "layer_02"]
    assert res.routes == {(f"layer_{lay:02d}", g): "primal" for lay in range(L) for g in (1, 2)}
    n_train = N - int(np.ceil(0.25 * N))
    assert (res.n_train, res.n_test) == (n_train, N - n_train)
    cache = open_cache(root)
    assert [cache[n].storage for n in res.layers] == ["float16", "bfloat16", "float16"]
    log.assert_each_region_once(cache)
    log.assert_budget(cache, budget)
    assert max(b - a for _, a, b in log.reads) == 61
    rows = {(r["layer"], r["degree"], r["target"]): r for r in res.table}
    for lay, name in enumerate(res.layers):
        X, X_test = X64[lay, :n_train], X64[lay, n_train:]
        for degree in (1, 2):
            for t, y in targets.items():
                ref = reference(task_of(t), degree, X, y[:n_train], cv=5)
                got = res.probes[(name, degree, t)]
                assert_same_probe(got, ref, degree, X_test, f"{name} degree {degree} {t}")
                row = rows[(name, degree, t)]
                assert row["route"] == "primal" and row["n_train"] == n_train
                assert row["cv"] == "5"
                assert_rel(row["cv_score"], ref.best_score_, RTOL, "table cv_score")
                if task_of(t) == "classification":
                    assert row["test_metric"] == "accuracy"
                    assert row["test_score"] == np.mean(ref.predict(X_test) == y[n_train:])
                else:
                    resid = y[n_train:] - ref.predict(X_test)
                    r2 = 1 - resid @ resid / np.sum((y[n_train:] - y[n_train:].mean()) ** 2)
                    assert row["test_metric"] == "r2"
                    assert_rel(row["test_score"], r2, 1e-9, "test r2")


def test_stacked_caches_gcv_named_by_index(tmp_path, data):
    """[L, n, d] float16 .npy and a stacked bfloat16 .safetensors tensor: layers 0..L-1,
    selected and ordered by layers=, cv='gcv'."""
    needs_safetensors()
    H, targets = data
    targets = {t: targets[t] for t in ("sign", "value", "three")}
    stored16, copy16 = f16(H)
    np.save(tmp_path / "stack.npy", stored16)
    stored_bf, copy_bf = bf16(H)
    save_safetensors(tmp_path / "stack.safetensors", {"hidden_states": stored_bf})
    for path, X64 in ((tmp_path / "stack.npy", copy16), (tmp_path / "stack.safetensors", copy_bf)):
        res = exact_sweep(path, targets, layers=[2, 0], degrees=(1, 2), verbose=False)
        assert res.layers == [2, 0]
        for name in (2, 0):
            for degree in (1, 2):
                for t, y in targets.items():
                    ref = reference(task_of(t), degree, X64[name], y)
                    assert_same_probe(
                        res.probes[(name, degree, t)],
                        ref,
                        degree,
                        X64[name][:50],
                        f"{path.name} {name} {degree} {t}",
                    )


def test_layers_named_by_file_and_key(tmp_path, data):
    H, targets = data
    y = {"sign": targets["sign"]}
    folder = tmp_path / "files"
    folder.mkdir()
    a16, a64 = f16(H[0])
    np.save(folder / "resid_post.npy", a16)
    np.save(folder / "attn_out.npy", H[1].astype(np.float32))
    res = exact_sweep(folder, y, degrees=1, cv=3, verbose=False)
    assert res.layers == ["attn_out", "resid_post"]
    ref = reference("classification", 1, a64, y["sign"], cv=3)
    assert_same_probe(res.probes[("resid_post", 1, "sign")], ref, 1, a64[:40], "by stem")
    ref = reference(
        "classification", 1, H[1].astype(np.float32).astype(np.float64), y["sign"], cv=3
    )
    assert_same_probe(res.probes[("attn_out", 1, "sign")], ref, 1, a64[:40], "float32 file")
    # one tensor per layer in one safetensors file: layers named by key
    needs_safetensors()
    tb, copy_b = bf16(H[2])
    save_safetensors(
        tmp_path / "model.safetensors",
        {"model.layers.3": tb, "model.layers.10": H[0].astype(np.float16)},
    )
    res = exact_sweep(tmp_path / "model.safetensors", y, degrees=1, verbose=False)
    assert set(res.layers) == {"model.layers.3", "model.layers.10"}
    ref = reference("classification", 1, copy_b, y["sign"])
    assert_same_probe(res.probes[("model.layers.3", 1, "sign")], ref, 1, copy_b[:40], "by key")


class MinimalRows:
    """The smallest object the RowSource protocol accepts: shape, dtype, row slicing."""

    def __init__(self, arr):
        self._arr = arr
        self.shape = arr.shape
        self.dtype = arr.dtype
        self.slices = []

    def __getitem__(self, key):
        self.slices.append(key)
        return self._arr[key]


def test_array_likes_protocol_memmap_and_zarr(tmp_path, data):
    H, targets = data
    y = {"value": targets["value"], "xor": targets["xor"]}
    s16, c16 = f16(H[0])
    mm = np.lib.format.open_memmap(
        tmp_path / "mm.npy", mode="w+", dtype=np.float32, shape=H[1].shape
    )
    mm[...] = H[1]
    mm.flush()
    minimal = MinimalRows(s16)
    arrays = {"minimal": minimal, "memmap": np.load(tmp_path / "mm.npy", mmap_mode="r")}
    expected = {"minimal": c16, "memmap": H[1].astype(np.float32).astype(np.float64)}
    zarr = pytest.importorskip("zarr")
    z = zarr.create_array(
        store=str(tmp_path / "z.zarr"), shape=H[2].shape, chunks=(100, D), dtype="float16"
    )
    z[...] = H[2].astype(np.float16)
    arrays["zarr"] = zarr.open_array(str(tmp_path / "z.zarr"), mode="r")
    expected["zarr"] = H[2].astype(np.float16).astype(np.float64)
    res = exact_sweep(arrays, y, degrees=(1,), cv=4, memory_budget=150 * D * 6, verbose=False)
    for name, X64 in expected.items():
        for t in y:
            ref = reference(task_of(t), 1, X64, y[t], cv=4)
            assert_same_probe(res.probes[(name, 1, t)], ref, 1, X64[:30], f"{name} {t}")
    assert all(isinstance(k, slice) and k.stop - k.start <= 150 for k in minimal.slices)


# ---------------------------------------------------------------------------------- degree 2 routes
def test_dual_route_on_a_bounded_row_subset(tmp_path, data):
    H, targets = data
    y = {"xor": targets["xor"], "value": targets["value"], "three": targets["three"]}
    stored, X64 = f16(H[1])
    np.save(tmp_path / "layer.npy", stored)
    res = exact_sweep(
        tmp_path / "layer.npy", y, degrees=(2,), cv=5, degree2="dual", dual_rows=300, verbose=False
    )
    assert res.routes == {("layer", 2): "dual (300 rows)"}
    subset = np.sort(np.random.default_rng(0).choice(N, 300, replace=False))
    np.testing.assert_array_equal(res.dual_subset, subset)
    folds = np.arange(N) % 5
    for t, values in y.items():
        ref = reference(
            task_of(t), 2, X64[subset], values[subset], cv=5, solver="dual", fold_ids=folds[subset]
        )
        got = res.probes[("layer", 2, t)]
        assert got.solver_ == "dual"
        assert_rel(got.quadratic_, ref.quadratic_, RTOL, f"dual {t} quadratic_")
        assert_rel(got.linear_, ref.linear_, RTOL, f"dual {t} linear_")
        assert_rel(got.cv_results_["scores"], ref.cv_results_["scores"], RTOL, f"dual {t}")
        assert_rel(got.alpha_, ref.alpha_, RTOL, f"dual {t} alpha")
        if t == "value":
            assert_rel(got.predict(X64[:40]), ref.predict(X64[:40]), RTOL, t)
        else:
            assert_rel(got.decision_function(X64[:40]), ref.decision_function(X64[:40]), RTOL, t)
            # the logistic slope comes from the polynomial's values (round-off level apart)
            assert_rel(got.predict_proba(X64[:40]), ref.predict_proba(X64[:40]), 1e-8, t)
    row = res.table[0]
    assert row["route"] == "dual (300 rows)" and row["n_train"] == 300


def test_auto_route_goes_dual_when_features_outnumber_rows(tmp_path):
    rng = np.random.default_rng(1)
    n, d = 300, 30  # p = 525 > n
    H = rng.normal(size=(n, d)).astype(np.float32)
    y = (H[:, 0] * H[:, 1] > 0).astype(int)
    res = exact_sweep({"wide": H}, {"y": y}, degrees=(1, 2), dual_rows=10_000, verbose=False)
    assert res.routes[("wide", 2)] == "dual (300 rows)"
    assert res.routes[("wide", 1)] == "primal"
    ref = QuadraticProbeClassifier(solver="dual").fit(H.astype(np.float64), y)
    assert_rel(res.probes[("wide", 2, "y")].quadratic_, ref.quadratic_, RTOL, "auto dual")


@pytest.mark.parametrize("cv", ["gcv", 4])
def test_degree1_dual_route_at_wide_layers(cv):
    """A layer with more hidden units than training rows gets the linear probes' dual route
    (all training rows copied out of the pass); a narrow one keeps the statistics. Both equal
    the in-memory fits, the dual one also the primal route's; the wide layer's degree-2 dual
    probes take their subset from the rows it copied out."""
    wide, targets = activations(150, 400, 1, seed=5)
    narrow, _ = activations(150, 6, 1, seed=5)
    layers = {"wide": wide[0].astype(np.float32), "narrow": narrow[0].astype(np.float32)}
    y = {t: targets[t] for t in ("sign", "three", "value")}
    res = exact_sweep(layers, y, degrees=(1, 2), cv=cv, dual_rows=100, verbose=False)
    assert res.routes[("wide", 1)] == "dual (150 rows)"
    assert res.routes[("narrow", 1)] == "primal"
    assert res.routes[("wide", 2)] == "dual (100 rows)"
    assert ("wide", 1) not in res.stats and ("narrow", 1) in res.stats
    subset = res.dual_subset
    folds = None if cv == "gcv" else np.arange(150) % cv
    for lay, X in layers.items():
        X64 = X.astype(np.float64)
        for t, values in y.items():
            got = res.probes[(lay, 1, t)]
            assert got.solver_ == ("dual" if lay == "wide" else "primal")
            ref = reference(task_of(t), 1, X64, values, cv=cv, fold_ids=folds)
            assert_same_probe(got, ref, 1, X64[:30], f"{lay} {t}")
            primal = reference(task_of(t), 1, X64, values, cv=cv, fold_ids=folds, solver="primal")
            assert_rel(got.coef_, primal.coef_, 1e-7, f"{lay} {t} vs the primal route")
    for t, values in y.items():
        sub_folds = None if folds is None else folds[subset]
        ref = reference(task_of(t), 2, layers["wide"][subset].astype(np.float64),
                        values[subset], cv=cv, solver="dual", fold_ids=sub_folds)  # fmt: skip
        got = res.probes[("wide", 2, t)]
        assert_rel(got.quadratic_, ref.quadratic_, RTOL, f"wide degree 2 {t}")
        assert_rel(got.cv_results_["scores"], ref.cv_results_["scores"], RTOL, f"wide 2 {t}")
    rows = {(r["layer"], r["degree"], r["target"]): r for r in res.table.rows}
    assert rows[("wide", 1, "sign")]["n_train"] == 150
    assert rows[("wide", 2, "sign")]["n_train"] == 100


def test_degree1_route_choice_and_validation(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 90)).astype(np.float32)
    y = {"v": X[:, 0] + rng.normal(size=60)}
    primal = exact_sweep({"h": X}, y, degrees=(1,), degree1="primal", verbose=False)
    assert primal.routes[("h", 1)] == "primal" and ("h", 1) in primal.stats
    dual = exact_sweep({"h": X}, y, degrees=(1,), verbose=False)
    assert dual.routes[("h", 1)] == "dual (60 rows)"
    a, b = primal.probes[("h", 1, "v")], dual.probes[("h", 1, "v")]
    assert_rel(b.coef_, a.coef_, 1e-8, "dual vs primal sweep")
    # forced dual at a narrow layer: the same probe as its statistics give
    tall = rng.normal(size=(80, 5))
    forced = exact_sweep({"t": tall}, {"v": tall[:, 1]}, degrees=(1,), degree1="dual",
                         verbose=False)  # fmt: skip
    assert forced.routes[("t", 1)] == "dual (80 rows)"
    ref = LinearProbe(solver="primal").fit(tall, tall[:, 1])
    assert_rel(forced.probes[("t", 1, "v")].coef_, ref.coef_, 1e-8, "forced dual")
    with pytest.raises(ParameterError, match="degree1"):
        sweep({"h": X}, y, degree1="kernel")
    with pytest.raises(MemoryError, match="stats_memory"):
        sweep({"h": X}, y, degrees=(1,), stats_memory=60 * 90 * 4 - 1)


def test_degree1_dual_route_on_dask_layers():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(4)
    X = rng.normal(size=(70, 120))
    y = {"c": (X[:, 0] > 0).astype(int)}
    res = exact_sweep({"h": da.from_array(X, chunks=(25, 120))}, y, degrees=(1,), cv=3,
                      verbose=False)  # fmt: skip
    assert res.routes[("h", 1)] == "dual (70 rows)"
    ref = LinearProbeClassifier(cv=3).fit(X, y["c"])
    assert_same_probe(res.probes[("h", 1, "c")], ref, 1, X[:20], "dask dual")


# ---------------------------------------------------------------------------------- results
def test_results_table_frame_and_banks(sharded):
    root, X64, targets = sharded
    pd = pytest.importorskip("pandas")
    res = exact_sweep(
        root, targets, layers=["layer_02"], degrees=(1, 2), cv=3, split=200, verbose=False
    )
    frame = res.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == 2 * len(targets)
    assert list(frame.columns)[:5] == ["layer", "degree", "target", "task", "route"]
    assert frame["n_test"].eq(200).all()
    # exactly one selected degree per target, the one with the better CV score
    for t in targets:
        sub = frame[frame.target == t]
        assert sub.selected.sum() == 1
        assert sub.loc[sub.selected, "cv_score"].iloc[0] == sub.cv_score.max()
    bank = res.banks["layer_02"]
    assert isinstance(bank, ProbeBank)
    assert bank.names[:2] == ["sign", "xor"] and "three[0]" in bank.names
    assert bank.metadata["layer"] == "layer_02"
    Xe = X64[2, :25]
    for t in ("sign", "xor", "value"):
        probe = res.probes[("layer_02", bank.metadata["degrees"][t], t)]
        want = probe.predict(Xe) if t == "value" else probe.decision_function(Xe)
        assert_rel(bank[t].decision_function(Xe), want, 1e-12, f"bank {t}")
    assert res.bank("layer_02", degree=1).names == bank.names
    text = str(res.table)
    assert "layer_02" in text and "cv_score" in text


def test_progress_bar_only_when_asked(sharded, capsys):
    pytest.importorskip("tqdm")
    root, _, targets = sharded
    y = {"sign": targets["sign"]}
    exact_sweep(root, y, degrees=1, verbose=False)
    exact_sweep(root, y, degrees=1)  # verbose=None: pytest's stderr is not a terminal
    assert capsys.readouterr().err == ""
    exact_sweep(root, y, degrees=1, verbose=True)
    err = capsys.readouterr().err
    assert "sweep" in err and "row" in err


def test_sweep_probes_keep_streaming_without_touching_the_others(sharded):
    """Probes of one layer share its Gram; partial_fit on one copies before writing."""
    root, X64, targets = sharded
    y = {"sign": targets["sign"], "value": targets["value"]}
    res = exact_sweep(root, y, layers=["layer_00"], degrees=1, cv=4, verbose=False)
    sign, value = res.probes[("layer_00", 1, "sign")], res.probes[("layer_00", 1, "value")]
    before = value.coef_.copy()
    gram = res.stats[("layer_00", 1)].xtx.copy()
    extra = np.random.default_rng(5).normal(size=(40, D)) + X64[0].mean(0)
    sign.partial_fit(extra, np.arange(40) % 2)
    ref = LinearProbeClassifier(cv=4).fit(
        np.vstack([X64[0], extra]), np.concatenate([y["sign"], np.arange(40) % 2])
    )
    assert_rel(sign.coef_, ref.coef_, RTOL, "streamed on after the sweep")
    np.testing.assert_array_equal(value.coef_, before)
    np.testing.assert_array_equal(res.stats[("layer_00", 1)].xtx, gram)


def test_separate_test_cache(tmp_path, data):
    H, targets = data
    y = targets["sign"]
    np.save(tmp_path / "train.npy", H[:, :1000].astype(np.float32))
    np.save(tmp_path / "test.npy", H[:, 1000:].astype(np.float32))
    res = exact_sweep(
        tmp_path / "train.npy",
        {"sign": y[:1000]},
        degrees=1,
        test=(tmp_path / "test.npy", {"sign": y[1000:]}),
        verbose=False,
    )
    for lay in range(L):
        ref = LinearProbeClassifier().fit(
            H[lay, :1000].astype(np.float32).astype(np.float64), y[:1000]
        )
        row = next(r for r in res.table if r["layer"] == lay)
        acc = np.mean(ref.predict(H[lay, 1000:].astype(np.float32)) == y[1000:])
        assert row["test_score"] == acc and row["n_test"] == 200
        pos = y[1000:] == 1
        f = ref.decision_function(H[lay, 1000:].astype(np.float32))
        auc = np.mean(f[pos][:, None] > f[~pos][None, :]) + 0.5 * np.mean(
            f[pos][:, None] == f[~pos][None, :]
        )
        assert_rel(row["test_auroc"], auc, 1e-12, "test AUROC")


def test_grouped_folds_and_memory_limits(sharded):
    root, X64, targets = sharded
    y = {"value": targets["value"], "three": targets["three"]}
    groups = (np.arange(N) // 37) % 4  # e.g. all rows of one document in one fold
    res = exact_sweep(
        root, y, layers=["layer_01"], degrees=(1, 2), cv=4, fold_ids=groups, verbose=False
    )
    for degree in (1, 2):
        for t in y:
            ref = reference(task_of(t), degree, X64[1], y[t], cv=4, fold_ids=groups)
            assert_same_probe(
                res.probes[("layer_01", degree, t)],
                ref,
                degree,
                X64[1][:30],
                f"grouped folds {degree} {t}",
            )
    with pytest.raises(MemoryError, match="degree2='primal'.*stats_memory"):
        exact_sweep(root, y, degrees=(2,), degree2="primal", stats_memory=2e4, verbose=False)
    with pytest.raises(MemoryError, match="stats_memory"):
        exact_sweep(root, y, degrees=(1,), stats_memory=1e3, verbose=False)
    # auto: the degree-2 statistics do not fit, so degree 2 goes to the dual route
    res = exact_sweep(
        root, y, layers=["layer_01"], degrees=(1, 2), stats_memory=1e4, dual_rows=200, verbose=False
    )
    assert res.routes == {("layer_01", 1): "primal", ("layer_01", 2): "dual (200 rows)"}


def test_torch_device_accumulation_equals_in_memory(sharded):
    """device=: blocks go to a torch device as stored (float16 / bfloat16) and are
    accumulated there; "cpu" here, the same path as "cuda" on a GPU box."""
    root, X64, targets = sharded
    y = {"xor": targets["xor"], "value": targets["value"]}
    res = exact_sweep(
        root,
        y,
        layers=["layer_01", "layer_02"],
        degrees=(1, 2),
        cv=3,
        device="cpu",
        memory_budget=100 * D * 6,
        verbose=False,
    )
    assert all(s.device is None for s in res.stats.values())  # back on the host
    for lay, name in ((1, "layer_01"), (2, "layer_02")):
        for degree in (1, 2):
            for t in y:
                ref = reference(task_of(t), degree, X64[lay], y[t], cv=3)
                assert_same_probe(
                    res.probes[(name, degree, t)],
                    ref,
                    degree,
                    X64[lay][:30],
                    f"device {name} {degree} {t}",
                )

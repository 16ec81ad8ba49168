"""The torch backend: parity with the Rust core, dispatch, tensor in -> tensor out.

Every parity test runs on the CPU device always and on CUDA when a GPU is present (the CUDA
cases are skipped otherwise, with a visible reason in ``pytest -ra``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import traceback

import numpy as np
import pytest
from conftest import rel_err
from shallowprobes import (
    CPProbe,
    CPProbeClassifier,
    LinearProbe,
    LinearProbeClassifier,
    QuadraticProbe,
    QuadraticProbeClassifier,
    SufficientStats,
)

torch = pytest.importorskip("torch")

CUDA = torch.cuda.is_available()
NO_CUDA = "no CUDA device: the CUDA parity tests run only where torch.cuda.is_available()"
requires_cuda = pytest.mark.skipif(not CUDA, reason=NO_CUDA)
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=requires_cuda)]
METRICS = ["euclidean", "standardize", "whiten", "readout"]
TOL = {np.float64: 1e-8, np.float32: 1e-4}


def _data(seed: int, n: int, d: int, k: int | None = None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.linspace(0.5, 2.0, d) + 1.5
    kk = 1 if k is None else k
    Y = X @ rng.normal(size=(d, kk)) + 0.3 * X[:, :1] * X[:, 1:2] + 0.5 * rng.normal(size=(n, kk))
    return X, (Y[:, 0] if k is None else Y)


def _labels(y: np.ndarray, n_classes: int) -> np.ndarray:
    edges = np.quantile(y, np.linspace(0, 1, n_classes + 1)[1:-1])
    return np.searchsorted(edges, y)


def _metric_kwargs(metric: str, d: int) -> dict:
    if metric == "readout":
        return {"metric": metric, "readout": np.random.default_rng(99).normal(size=(3, d))}
    return {"metric": metric}


def _close(a, b, tol: float, what: str) -> None:
    err = rel_err(_np(a), _np(b))
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.1e}"


def _np(a):
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def _on(X: np.ndarray, device: str, dtype=np.float64):
    return torch.from_numpy(np.ascontiguousarray(X.astype(dtype))).to(device)


# ------------------------------------------------------------------------------ dispatch
def test_backend_names():
    with pytest.raises(ValueError, match="backend must be one of"):
        LinearProbe(backend="cuda").fit(np.ones((4, 2)), np.arange(4.0))
    with pytest.raises(ValueError, match="backend must be one of"):
        SufficientStats(backend="jax")
    from shallowprobes.backends import resolve_backend

    X = np.zeros((3, 2))
    assert resolve_backend("auto", X).name in ("rust", "numpy")
    assert resolve_backend("auto", torch.zeros(3, 2)).name in ("rust", "numpy")  # CPU tensor
    assert resolve_backend("torch", X).name == "torch"
    assert resolve_backend("numpy", torch.zeros(3, 2)).name == "numpy"


def test_import_without_torch():
    """shallowprobes imports and fits without torch; backend='torch' names the extra."""
    code = textwrap.dedent(
        """
        import sys

        class _NoTorch:  # any `import torch` now raises ImportError, as without torch
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("No module named 'torch' (blocked by the test)")
                return None

        sys.meta_path.insert(0, _NoTorch())
        import numpy as np
        import shallowprobes
        assert "torch" not in sys.modules
        X = np.random.default_rng(0).normal(size=(30, 3)); y = X[:, 0]
        shallowprobes.LinearProbe().fit(X, y).predict(X)
        try:
            shallowprobes.LinearProbe(backend="torch").fit(X, y)
        except ImportError as exc:
            assert "shallowprobes[torch]" in str(exc), exc
        else:
            raise AssertionError("no ImportError")
        try:
            shallowprobes.SufficientStats(backend="torch")
        except ImportError as exc:
            assert "shallowprobes[torch]" in str(exc), exc
        else:
            raise AssertionError("no ImportError")
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_numpy_import_does_not_load_torch():
    code = "import sys, shallowprobes; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------ statistics
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("degree", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stats_parity(device, degree, dtype):
    X, Y = _data(1, 300, 5, k=2)
    X = X.astype(dtype)
    ref = SufficientStats(3, "rust", degree).update(X, Y)
    ours = SufficientStats(3, "torch", degree).update(_on(X, device, dtype), _on(Y, device))
    assert ours.device.type == device and isinstance(ours.xtx, torch.Tensor)
    for fit_intercept in (True, False):
        a, b = ours.normal_equations(fit_intercept), ref.normal_equations(fit_intercept)
        _close(a.gram, b.gram, 1e-12, "gram")
        _close(a.cxy, b.cxy, 1e-12, "cxy")
    # streaming, merging, host copies and save/load
    half = SufficientStats(3, "torch", degree).update(_on(X[:140], device, dtype), Y[:140])
    rest = SufficientStats(3, "rust", degree).update(X[140:], Y[140:])
    merged = half.merge(rest)
    assert merged.device == half.device
    if degree == 2:  # degree-2 statistics are about their own centre: compare at the mean
        merged, ref = merged.feature_stats(), ref.feature_stats()
        ours = ours.feature_stats()
    _close(merged.normal_equations().gram, ref.normal_equations().gram, 1e-10, "merge")
    host = ours.numpy()
    assert host.device is None and isinstance(host.xtx, np.ndarray)
    _close(host.normal_equations().gram, ref.normal_equations().gram, 1e-12, "numpy()")


def test_stats_save_load(tmp_path):
    X, Y = _data(2, 80, 4, k=1)
    s = SufficientStats(2, "torch").update(torch.from_numpy(X), Y)
    s.save(tmp_path / "s.npz")
    back = SufficientStats.load(tmp_path / "s.npz")
    _close(back.xtx, s.xtx, 0.0, "save/load")


def test_bfloat16_stats_accumulate_in_float64():
    X, Y = _data(3, 500, 6, k=1)
    t = torch.from_numpy(X).to(torch.bfloat16)
    exact = t.to(torch.float64).numpy()  # the values the tensor holds
    ours = SufficientStats(1, "torch").update(t, Y)
    ref = SufficientStats(1, "rust").update(exact, Y)
    _close(ours.normal_equations().gram, ref.normal_equations().gram, 1e-12, "bfloat16")


# ------------------------------------------------------------------------------ linear
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cv", ["gcv", "loo", 4])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(200, 8, 3), (30, 50, None)], ids=["n>d", "n<d"])
def test_linear_probe_parity(device, cv, metric, dtype, shape):
    n, d, k = shape
    X, y = _data(4, n, d, k)
    X = X.astype(dtype)
    kw = dict(cv=cv, **_metric_kwargs(metric, d))
    if metric == "whiten" and n < d:
        # whitened rows interpolate: every alpha of a grid ties, so which one wins is round-off
        # on any backend (numpy and Rust differ too); compare the fits at one explicit alpha
        kw["alphas"] = [0.5]
    ref = LinearProbe(backend="rust", **kw).fit(X, y)
    ours = LinearProbe(backend="torch", **kw).fit(_on(X, device, dtype), y)
    tol = TOL[dtype]
    assert ours.alpha_ == pytest.approx(ref.alpha_, rel=tol)
    _close(ours.coef_, ref.coef_, tol, "coef_")
    _close(ours.intercept_, ref.intercept_, tol, "intercept_")
    pred = ours.predict(_on(X, device, dtype))
    assert isinstance(pred, torch.Tensor) and pred.device.type == device
    _close(pred, ref.predict(X), tol, "predict")
    _close(ours.cv_results_["scores"], ref.cv_results_["scores"], 1e-6, "cv scores")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize(
    "cv,scoring", [("gcv", "squared_error"), ("loo", "accuracy"), (3, "roc_auc"), (4, "accuracy")]
)
def test_linear_classifier_parity(device, n_classes, cv, scoring):
    X, y = _data(5, 150, 6)
    labels = _labels(y, n_classes)
    kw = dict(cv=cv, scoring=scoring)
    ref = LinearProbeClassifier(backend="rust", **kw).fit(X, labels)
    ours = LinearProbeClassifier(backend="torch", **kw).fit(_on(X, device), labels)
    Xt = _on(X, device)
    _close(ours.coef_, ref.coef_, 1e-8, "coef_")
    _close(ours.decision_function(Xt), ref.decision_function(X), 1e-8, "decision")
    _close(ours.predict_proba(Xt), ref.predict_proba(X), 1e-8, "proba")
    pred = ours.predict(Xt)
    assert isinstance(pred, torch.Tensor) and pred.device.type == device
    np.testing.assert_array_equal(pred.cpu().numpy(), ref.predict(X))
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))  # numpy in, numpy out
    assert ours.score(Xt, labels) == pytest.approx(ref.score(X, labels))


@pytest.mark.parametrize("device", DEVICES)
def test_linear_partial_fit_on_device(device):
    X, y = _data(6, 120, 5)
    ours = LinearProbe(cv=3, backend="torch")
    for a in range(0, 120, 50):
        ours.partial_fit(_on(X[a : a + 50], device), _on(y[a : a + 50], device))
    assert ours.stats_.device.type == device
    ref = LinearProbe(cv=3, backend="rust").fit(X, y)
    _close(ours.coef_, ref.coef_, 1e-8, "partial_fit")


# ------------------------------------------------------------------------------ degree 2
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("cv", ["gcv", "loo", 3])
@pytest.mark.parametrize("metric", METRICS)
def test_quadratic_probe_parity(device, solver, cv, metric):
    X, y = _data(7, 60, 4, k=2)
    kw = dict(cv=cv, solver=solver, gamma=[0.1, 1.0], **_metric_kwargs(metric, 4))
    ref = QuadraticProbe(backend="rust", **kw).fit(X, y)
    ours = QuadraticProbe(backend="torch", **kw).fit(_on(X, device), _on(y, device))
    assert ours.gamma_ == ref.gamma_ and ours.solver_ == solver
    np.testing.assert_allclose(_np(ours.alpha_), _np(ref.alpha_), rtol=1e-8)
    _close(ours.quadratic_, ref.quadratic_, 1e-8, "quadratic_")
    _close(ours.linear_, ref.linear_, 1e-8, "linear_")
    _close(ours.intercept_, ref.intercept_, 1e-8, "intercept_")
    _close(ours.predict(_on(X, device)), ref.predict(X), 1e-8, "predict")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_quadratic_classifier_parity(device, solver, dtype):
    X, y = _data(8, 90, 4)
    X = X.astype(dtype)
    labels = _labels(y, 3)
    kw = dict(cv=3, solver=solver, scoring="accuracy")
    ref = QuadraticProbeClassifier(backend="rust", **kw).fit(X, labels)
    ours = QuadraticProbeClassifier(backend="torch", **kw).fit(_on(X, device, dtype), labels)
    Xt = _on(X, device, dtype)
    _close(ours.decision_function(Xt), ref.decision_function(X), TOL[dtype], "decision")
    _close(ours.predict_proba(Xt), ref.predict_proba(X), TOL[dtype], "proba")


@pytest.mark.parametrize("device", DEVICES)
def test_cp_probe_parity(device):
    X, y = _data(9, 100, 4)
    ref = CPProbe(rank=2, backend="rust").fit(X, y)
    ours = CPProbe(rank=2, backend="torch").fit(_on(X, device), y)
    _close(ours.predict(_on(X, device)), ref.predict(X), 1e-8, "CP predict")
    labels = _labels(y, 2)
    refc = CPProbeClassifier(rank=1, backend="rust").fit(X, labels)
    oursc = CPProbeClassifier(rank=1, backend="torch").fit(_on(X, device), labels)
    _close(oursc.decision_function(_on(X, device)), refc.decision_function(X), 1e-8, "CP clf")


# ------------------------------------------------------------------------------ dtypes, devices
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tdtype", ["bfloat16", "float16"])
def test_low_precision_inputs(device, tdtype):
    X, y = _data(10, 200, 6)
    t = torch.from_numpy(X).to(getattr(torch, tdtype)).to(device)
    exact = t.to(torch.float64).cpu().numpy()
    ours = LinearProbe(cv=5, backend="torch").fit(t, y)
    ref = LinearProbe(cv=5, backend="rust").fit(exact, y)
    _close(ours.coef_, ref.coef_, 1e-8, tdtype)
    out = ours.predict(t)
    assert out.dtype == torch.float64 and out.device == t.device  # float64 results
    _close(out, ref.predict(exact), 1e-8, "predict")


@pytest.mark.parametrize("device", DEVICES)
def test_tensor_in_tensor_out_and_to(device):
    X, y = _data(11, 100, 5, k=2)
    host_fit = LinearProbe().fit(X, y)  # Rust fit, numpy attributes
    assert isinstance(host_fit.coef_, np.ndarray)
    Xt = _on(X, device, np.float32)
    out = host_fit.predict(Xt)
    assert isinstance(out, torch.Tensor) and out.device == Xt.device
    assert out.dtype == torch.float64
    _close(out, host_fit.predict(X), 1e-6, "rust fit, tensor predict")
    # a torch fit: attributes are tensors on the fit device; numpy in -> numpy out
    dev_fit = LinearProbe(backend="torch").fit(_on(X, device), y)
    assert isinstance(dev_fit.coef_, torch.Tensor) and dev_fit.coef_.device.type == device
    assert isinstance(dev_fit.predict(X), np.ndarray)
    # .to moves the predict-time arrays
    dev_fit.to(None)
    assert isinstance(dev_fit.coef_, np.ndarray)
    dev_fit.to(device)
    assert dev_fit.coef_.device.type == device
    _close(dev_fit.predict(Xt), host_fit.predict(X), 1e-6, "after .to")
    q = QuadraticProbe(solver="dual").fit(X, y[:, 0]).to(device)
    assert isinstance(q.quadratic_, torch.Tensor) and q.quadratic_.device.type == device
    _close(q.predict(X), QuadraticProbe(solver="dual").fit(X, y[:, 0]).predict(X), 1e-10, "q")


def test_auto_sends_cpu_tensors_to_rust():
    X, y = _data(12, 50, 3)
    est = LinearProbe().fit(torch.from_numpy(X), torch.from_numpy(y))
    assert isinstance(est.coef_, np.ndarray)  # host fit
    assert isinstance(est.stats_.xtx, np.ndarray)


# ------------------------------------------------------------------------------ CUDA only
@requires_cuda
@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_cuda_results_stay_on_device(solver):
    X, y = _data(13, 80, 4)
    Xt = torch.from_numpy(X).float().cuda()
    yt = torch.from_numpy(y).cuda()
    est = QuadraticProbe(solver=solver, cv=3).fit(Xt, yt)  # backend="auto"
    sol = est._solution()
    for name in ("coef", "intercept", "quadratic", "centre"):
        assert getattr(sol, name).device.type == "cuda", name
    if solver == "primal":
        assert est.stats_.xtx.device.type == "cuda"
    out = est.predict(Xt)
    assert out.device.type == "cuda"
    lin = LinearProbe(cv="loo").fit(Xt, y)  # y on the host is moved to the device
    assert lin.coef_.device.type == "cuda" and lin.predict(Xt).device.type == "cuda"


@requires_cuda
def test_cuda_rust_backend_forces_host():
    X, y = _data(14, 60, 3)
    est = LinearProbe(backend="rust").fit(torch.from_numpy(X).cuda(), y)
    assert isinstance(est.coef_, np.ndarray)
    assert est.predict(torch.from_numpy(X).cuda()).device.type == "cuda"


# ------------------------------------------------------------------------------ no host copies
class _HostTraffic(torch.overrides.TorchFunctionMode):
    """Records, during library calls, what would break or copy on a CUDA device:

    * torch ops fed numpy arrays (other than the explicit `as_tensor` uploads);
    * tensors of more than `limit` entries read to the host;
    * tensor factories (zeros, empty, ...) called from shallowprobes without a device=, which
      would create CPU tensors next to CUDA ones."""

    _FACTORIES = ("zeros", "ones", "empty", "full", "eye", "arange", "as_tensor", "tensor",
                  "linspace", "rand", "randn")  # fmt: skip

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.bad: list = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        flat = [x for a in (*args, *kwargs.values()) for x in (a if isinstance(a, (tuple, list))
                                                              else [a])]  # fmt: skip
        if name != "as_tensor" and any(isinstance(x, np.ndarray) and x.ndim for x in flat):
            self.bad.append(f"{name} with a numpy argument")
        if name in ("numpy", "__array__", "tolist", "cpu") and args[0].numel() > self.limit:
            self.bad.append(f"{name} of a tensor of shape {tuple(args[0].shape)}")
        if name in self._FACTORIES and "device" not in kwargs:
            caller = next(f for f in reversed(traceback.extract_stack(limit=16)[:-1])
                          if "/torch/" not in f.filename)  # fmt: skip
            if "shallowprobes" in caller.filename:
                where = caller.filename.rsplit("/", 1)[-1]
                self.bad.append(f"torch.{name} without device= at {where}:{caller.lineno}")
        return func(*args, **kwargs)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LinearProbe(cv="loo", metric="whiten"),
        lambda: LinearProbe(cv=4, metric="standardize"),
        lambda: LinearProbeClassifier(cv=4, scoring="accuracy"),
        lambda: LinearProbeClassifier(cv="loo", scoring="roc_auc"),
        lambda: QuadraticProbe(solver="primal", cv=3, metric="whiten"),
        lambda: QuadraticProbe(solver="dual", cv=3, metric="standardize"),
        lambda: QuadraticProbe(solver="dual", cv="loo"),
    ],
    ids=["linear-loo", "linear-kfold", "classifier", "classifier-auroc", "primal", "dual-kfold",
         "dual-loo"],  # fmt: skip
)
def test_torch_path_moves_no_rows_to_host(make):
    """On CPU, a stand-in for the CUDA check: the torch path neither mixes numpy arrays into
    device ops nor reads anything row-sized back to the host (only score tables, scalars)."""
    X, y = _data(15, 80, 4)
    est = make().set_params(backend="torch")
    yy = _labels(y, 2) if isinstance(est, LinearProbeClassifier) else torch.from_numpy(y)
    guard = _HostTraffic(limit=40)  # < n = 80 rows; the (alphas x targets) tables are smaller
    with guard:
        out = est.fit(torch.from_numpy(X), yy).decision_function(torch.from_numpy(X)) \
            if isinstance(est, LinearProbeClassifier) else \
            est.fit(torch.from_numpy(X), yy).predict(torch.from_numpy(X))  # fmt: skip
    assert isinstance(out, torch.Tensor)
    assert not guard.bad, sorted(set(guard.bad))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_device_auroc_matches_host_with_ties(seed):
    """The on-device AUROC (one sort, average ranks for ties) equals the host formula and a
    plain pairwise count, including heavy ties, one-class and non-finite cases."""
    from shallowprobes.solve.scoring import binary_roc_auc, binary_roc_auc_torch

    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, size=300).astype(float)  # many ties
    positive = rng.random(300) < 0.4
    pos, neg = scores[positive], scores[~positive]
    diff = pos[:, None] - neg[None, :]
    pairwise = (np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / (pos.size * neg.size)
    got = binary_roc_auc_torch(torch.from_numpy(scores), torch.from_numpy(positive))
    assert got == pytest.approx(pairwise, abs=1e-12)
    assert got == pytest.approx(binary_roc_auc(scores, positive), abs=1e-12)
    one_class = torch.zeros(300, dtype=torch.bool)
    assert np.isnan(binary_roc_auc_torch(torch.from_numpy(scores), one_class))
    scores[3] = np.nan
    assert np.isnan(binary_roc_auc_torch(torch.from_numpy(scores), torch.from_numpy(positive)))

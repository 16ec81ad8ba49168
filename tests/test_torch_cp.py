"""CP probes on the torch backend: the alternating fit runs on the data's device.

With backend="torch" (or "auto" and a CUDA tensor) the statistics of every half-step, their
eigendecompositions and CV, the moments initialisation, the rebalancing and the objective J
all run in the torch namespace. Checked here: parity with the Rust fit on the same rows (same
number of alternations, same probe), tensor in -> float64 tensor out, fitted attributes on
the fit's device, and (on CPU, standing in for CUDA) that no numpy array is fed into torch ops
and nothing row-sized is read back to the host during the fit.

CUDA cases are parametrised by device and skipped, with a visible reason, without a GPU.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import rel_err
from shallowprobes import CPProbe, CPProbeClassifier

# the watcher of the other torch tests (that module skips itself without torch, as this one)
from test_torch_backend import _HostTraffic

torch = pytest.importorskip("torch")

CUDA = torch.cuda.is_available()
NO_CUDA = "no CUDA device: the CUDA CP tests run only where torch.cuda.is_available()"
requires_cuda = pytest.mark.skipif(not CUDA, reason=NO_CUDA)
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=requires_cuda)]
TOL = {np.float64: 1e-8, np.float32: 1e-4}



def _data(seed: int, n: int, d: int, k: int | None = None):
    """Rows with an offset mean and a rank-2 interaction target (plus a linear part)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.linspace(0.5, 2.0, d) + 1.5
    kk = 1 if k is None else k
    Z = X - X.mean(axis=0)
    Y = (
        Z[:, :1] * Z[:, 1:2]
        - 0.5 * Z[:, 2:3] * Z[:, 3:4]
        + Z @ rng.normal(size=(d, kk)) * 0.3
        + 0.3 * rng.normal(size=(n, kk))
    )
    return X, (Y[:, 0] if k is None else Y)


def _labels(y: np.ndarray, n_classes: int) -> np.ndarray:
    edges = np.quantile(y, np.linspace(0, 1, n_classes + 1)[1:-1])
    return np.searchsorted(edges, y)


def _np(a):
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def _close(a, b, tol: float, what: str) -> None:
    err = rel_err(_np(a), _np(b))
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.1e}"


def _on(X: np.ndarray, device: str, dtype=np.float64):
    return torch.from_numpy(np.ascontiguousarray(X.astype(dtype))).to(device)


def _fit(est, X, y):
    with warnings.catch_warnings():  # max_iter is not the subject here
        warnings.simplefilter("ignore")
        return est.fit(X, y)


def _assert_on_device(est, device: str) -> None:
    """The fitted arrays are float64 tensors on the fit's device; the CV tables numpy."""
    sol = est._solution()
    for arr in (*sol.factors, sol.coef, sol.intercept, sol.centre, sol.halfsteps[-1].coef):
        assert isinstance(arr, torch.Tensor) and arr.device.type == device
        assert arr.dtype == torch.float64
    for attr in ("quadratic_", "linear_"):
        val = getattr(est, attr)
        assert isinstance(val, torch.Tensor) and val.device.type == device, attr
        assert val.dtype == torch.float64, attr
    for val in est.factors_:
        assert isinstance(val, torch.Tensor) and val.device.type == device
    assert isinstance(est.alphas_, np.ndarray)
    assert all(isinstance(s, np.ndarray) for s in est.cv_results_["scores"])
    assert isinstance(est.n_iter_, np.ndarray) and isinstance(est.converged_, np.ndarray)


def _compare(ours, ref, Xt, X, tol: float) -> None:
    np.testing.assert_array_equal(ours.n_iter_, ref.n_iter_)  # the same alternation path
    np.testing.assert_array_equal(ours.converged_, ref.converged_)
    np.testing.assert_allclose(_np(ours.alpha_), _np(ref.alpha_), rtol=tol)
    _close(ours.quadratic_, ref.quadratic_, tol, "quadratic_")
    _close(ours.linear_, ref.linear_, tol, "linear_")
    _close(ours.intercept_, ref.intercept_, tol, "intercept_")
    _close(ours.centre_, ref.centre_, tol, "centre_")
    for a, b in zip(ours.cv_results_["scores"], ref.cv_results_["scores"]):
        _close(a, b, 1e-6, "cv scores")
    if isinstance(ours, CPProbeClassifier):
        dec = ours.decision_function(Xt)
        _close(dec, ref.decision_function(X), tol, "decision_function")
        _close(ours.predict_proba(Xt), ref.predict_proba(X), tol, "predict_proba")
    else:
        dec = ours.predict(Xt)
        _close(dec, ref.predict(X), tol, "predict")
    assert isinstance(dec, torch.Tensor) and dec.device == Xt.device
    assert dec.dtype == torch.float64


# ------------------------------------------------------------------------------ parity
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("cv", ["gcv", "loo", 3])
@pytest.mark.parametrize("init", ["moments", "random"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cp_probe_parity(device, rank, cv, init, dtype):
    X, y = _data(1, 120, 5)
    X = X.astype(dtype)
    kw = dict(rank=rank, cv=cv, init=init, random_state=3)
    ref = _fit(CPProbe(backend="rust", **kw), X, y)
    ours = _fit(CPProbe(backend="torch", **kw), _on(X, device, dtype), _on(y, device))
    _assert_on_device(ours, device)
    _compare(ours, ref, _on(X, device, dtype), X, TOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("metric", ["euclidean", "standardize", "whiten", "readout"])
@pytest.mark.parametrize("rank", [1, 2])
def test_cp_probe_parity_metrics(device, metric, rank):
    X, y = _data(2, 100, 4, k=2)  # two targets: one CP probe per column
    kw = dict(rank=rank, cv=4, metric=metric)
    if metric == "readout":
        kw["readout"] = np.random.default_rng(7).normal(size=(3, 4))
    ref = _fit(CPProbe(backend="rust", **kw), X, y)
    ours = _fit(CPProbe(backend="torch", **kw), _on(X, device), _on(y, device))
    _assert_on_device(ours, device)
    _compare(ours, ref, _on(X, device), X, 1e-8)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize(
    "cv,scoring,rank,init",
    [
        ("gcv", "squared_error", 1, "moments"),
        ("loo", "accuracy", 2, "moments"),
        (3, "roc_auc", 1, "random"),
        (4, "accuracy", 2, "random"),
    ],
)
def test_cp_classifier_parity(device, n_classes, cv, scoring, rank, init):
    X, y = _data(3, 150, 5)
    labels = _labels(y, n_classes)
    kw = dict(rank=rank, cv=cv, scoring=scoring, init=init, random_state=5)
    ref = _fit(CPProbeClassifier(backend="rust", **kw), X, labels)
    ours = _fit(CPProbeClassifier(backend="torch", **kw), _on(X, device), labels)
    _assert_on_device(ours, device)
    assert isinstance(ours.classes_, np.ndarray)
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    _compare(ours, ref, _on(X, device), X, 1e-8)
    assert ours._solution().calibration == pytest.approx(ref._solution().calibration, rel=1e-8)
    pred = ours.predict(_on(X, device))
    assert isinstance(pred, torch.Tensor) and pred.device.type == device
    np.testing.assert_array_equal(pred.cpu().numpy(), ref.predict(X))


@pytest.mark.parametrize("device", DEVICES)
def test_cp_float32_classifier_and_fold_ids(device):
    X, y = _data(4, 120, 4)
    X = X.astype(np.float32)
    labels = _labels(y, 2)
    folds = (np.arange(120) // 7) % 3  # blocks of rows, not i % K
    kw = dict(rank=2, cv=3, scoring="accuracy")
    ref = _fit(CPProbeClassifier(backend="rust", **kw), X, labels)
    ref.fit(X, labels, fold_ids=folds)
    ours = CPProbeClassifier(backend="torch", **kw)
    ours.fit(_on(X, device, np.float32), labels, fold_ids=folds)
    _compare(ours, ref, _on(X, device, np.float32), X, 1e-4)


def test_rank_above_d_pads_like_the_host():
    """d < rank: the moments start is padded with the same random directions."""
    X, y = _data(5, 80, 4)
    X = np.ascontiguousarray(X[:, :3])  # d = 3, rank 4
    kw = dict(rank=4, random_state=11)
    ref = _fit(CPProbe(backend="rust", **kw), X, y)
    ours = _fit(CPProbe(backend="torch", **kw), torch.from_numpy(X), y)
    _compare(ours, ref, torch.from_numpy(X), X, 1e-8)


# ------------------------------------------------------------------------------ dispatch, I/O
def test_backend_torch_on_numpy_rows_fits_on_cpu_tensors():
    X, y = _data(6, 90, 4)
    ours = _fit(CPProbe(backend="torch"), X, y)
    _assert_on_device(ours, "cpu")
    assert isinstance(ours.predict(X), np.ndarray)  # numpy in, numpy out
    _close(ours.predict(X), _fit(CPProbe(backend="rust"), X, y).predict(X), 1e-8, "predict")


def test_auto_fits_cpu_tensors_on_the_host():
    X, y = _data(7, 90, 4)
    est = _fit(CPProbe(), torch.from_numpy(X), torch.from_numpy(y))  # backend="auto"
    assert isinstance(est.quadratic_, np.ndarray)
    assert isinstance(est._solution().halfsteps[0].coef, np.ndarray)
    out = est.predict(torch.from_numpy(X))  # predictions still on the tensor's device
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64


@pytest.mark.parametrize("device", DEVICES)
def test_tensor_in_tensor_out_and_to(device):
    X, y = _data(8, 100, 4)
    Xt = _on(X, device, np.float32)
    est = _fit(CPProbe(rank=2, backend="torch"), Xt, y)
    out = est.predict(Xt)
    assert isinstance(out, torch.Tensor) and out.device == Xt.device
    assert out.dtype == torch.float64
    host = est.predict(X.astype(np.float32))
    assert isinstance(host, np.ndarray)
    _close(out, host, 1e-12, "tensor vs numpy predict")
    assert isinstance(est.intercept_, float)  # 1-D y: a float, as for the other probes
    est.to(None)
    assert isinstance(est.quadratic_, np.ndarray) and isinstance(est.factors_[0], np.ndarray)
    _close(est.predict(X.astype(np.float32)), host, 1e-12, "after .to(None)")
    est.to(device)
    assert est.quadratic_.device.type == device
    _close(est.predict(Xt), host, 1e-12, "after .to(device)")


@requires_cuda
def test_cuda_auto_fits_on_the_device():
    X, y = _data(9, 100, 4)
    Xt = torch.from_numpy(X).float().cuda()
    est = _fit(CPProbe(rank=2, cv=3), Xt, torch.from_numpy(y).cuda())  # backend="auto"
    _assert_on_device(est, "cuda")
    ref = _fit(CPProbe(rank=2, cv=3, backend="rust"), X.astype(np.float32), y)
    _compare(est, ref, Xt, X.astype(np.float32), 1e-4)
    clf = _fit(CPProbeClassifier(rank=1, cv="loo", scoring="accuracy"), Xt, _labels(y, 3))
    _assert_on_device(clf, "cuda")
    host = _fit(CPProbeClassifier(rank=2, backend="rust"), Xt, _labels(y, 2))  # forced host
    assert isinstance(host.quadratic_, np.ndarray)


# ------------------------------------------------------------------------------ no host copies
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "make",
    [
        lambda: CPProbe(rank=2, cv="loo", metric="whiten"),
        lambda: CPProbe(rank=2, cv=4, metric="standardize", init="random", random_state=0),
        lambda: CPProbe(rank=1, cv="gcv", metric="readout",
                        readout=np.random.default_rng(1).normal(size=(2, 4))),
        lambda: CPProbeClassifier(rank=2, cv=4, scoring="accuracy"),
        lambda: CPProbeClassifier(rank=1, cv="loo", scoring="squared_error"),
    ],
    ids=["loo-whiten", "kfold-random", "gcv-readout", "clf-kfold", "clf-loo"],
)  # fmt: skip
def test_cp_fit_moves_no_rows_to_host(device, make):
    """The torch CP fit feeds no numpy arrays into torch ops and reads nothing row-sized back
    (only Python scalars and the half-steps' (alphas x 1) score tables)."""
    X, y = _data(10, 80, 4)
    est = make().set_params(backend="torch")
    clf = isinstance(est, CPProbeClassifier)
    yy = _labels(y, 3 if "loo" in str(est.cv) else 2) if clf else _on(y, device)
    Xt = _on(X, device)
    guard = _HostTraffic(limit=40)  # < n = 80 rows; features (R+1)d <= 12, tables 19 x 1
    with guard:
        est = _fit(est, Xt, yy)
        out = est.decision_function(Xt) if clf else est.predict(Xt)
    assert isinstance(out, torch.Tensor) and out.device == Xt.device
    assert not guard.bad, sorted(set(guard.bad))
    _assert_on_device(est, device)

"""Banks, quotients and transfer on torch tensors: parity with the numpy path, tensor in ->
tensor out, and no activations read back to the host (CPU always, CUDA when present)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from shallowprobes import ProbeBank, Quotient, QuotientAligner, few_label_probe
from shallowprobes.datasets import readout_equivalent_models

torch = pytest.importorskip("torch")

CUDA = torch.cuda.is_available()
NO_CUDA = "no CUDA device: the CUDA transfer tests run only where torch.cuda.is_available()"
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not CUDA, reason=NO_CUDA)),
]


def _pair(seed: int = 0, **kw):
    params = dict(n_quadratic=1, n_linear=3, invisible="nonlinear", noise=0.05)
    params.update(kw)
    return readout_equivalent_models(1200, 16, random_state=seed, **params)


def _rel(a, b) -> float:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tdtype", ["float64", "float32", "bfloat16"])
def test_bank_scores_tensor_in_tensor_out(device, tdtype):
    pair = _pair(1)
    H = torch.from_numpy(pair.H_A).to(device=device, dtype=getattr(torch, tdtype))
    # the reference sees exactly the values the tensor holds
    H_ref = H.detach().cpu().to(torch.float64).numpy()
    got = pair.bank.decision_function(H)
    assert isinstance(got, torch.Tensor)
    assert got.dtype == torch.float64 and got.device.type == device
    # plain numpy reference: (h-c)^T Q (h-c) + w.(h-c) + b per monitor
    for j, m in enumerate(pair.bank.values()):
        U = H_ref - m.centre
        ref = U @ m.linear + m.intercept
        if m.quadratic is not None:
            ref = ref + np.einsum("ij,jk,ik->i", U, m.quadratic, U)
        assert _rel(got[:, j], ref) < 1e-12
    one = pair.bank["linear_0"].decision_function(H)
    assert isinstance(one, torch.Tensor) and one.shape == (H.shape[0],)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n_quadratic", [0, 2, 6])
def test_quotient_svd_on_device_matches_numpy(device, n_quadratic):
    pair = readout_equivalent_models(400, 20, n_linear=2, n_quadratic=n_quadratic, random_state=3)
    host = Quotient().fit(pair.bank)
    dev = Quotient(device=device).fit(pair.bank)
    assert dev.rank_ == host.rank_ == pair.n_visible
    assert _rel(dev.singular_values_, host.singular_values_) < 1e-12
    # the bases may differ inside degenerate singular subspaces; the subspaces may not
    C, Ch = dev.visible_basis_, host.visible_basis_
    assert np.abs(C @ C.T - Ch @ Ch.T).max() < 1e-10
    K, Kh = dev.invisible_basis_, host.invisible_basis_
    assert np.abs(K @ K.T - Kh @ Kh.T).max() < 1e-10
    assert isinstance(C, np.ndarray)  # fitted bases are small and kept as numpy


@pytest.mark.parametrize("device", DEVICES)
def test_quotient_transform_on_tensors(device):
    pair = _pair(2)
    q = Quotient().fit(pair.bank)
    H = torch.from_numpy(pair.H_A).to(device)
    Z = q.transform(H)
    assert isinstance(Z, torch.Tensor) and Z.device.type == device and Z.dtype == torch.float64
    ref = (pair.H_A - q.centre_) @ q.visible_basis_
    assert _rel(Z, ref) < 1e-12
    back = q.inverse_transform(Z)
    assert isinstance(back, torch.Tensor) and back.device.type == device
    assert _rel(q.transform(back), ref) < 1e-10
    assert np.max(q.check(H)) < 1e-9 * np.abs(pair.bank.decision_function(pair.H_A)).max()


def _fit(aligner, pair, HA, HB):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return aligner.fit(pair.bank, HA, HB, extra_monitors=pair.extra_monitors)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("target", ["quotient", "full", "pca"])
@pytest.mark.parametrize("cv", ["gcv", 3])
def test_transfer_torch_backend_matches_numpy(device, target, cv):
    pair = _pair(4)
    params = dict(target=target, cv=cv, unportable="mark")
    ref = _fit(QuotientAligner(**params), pair, pair.H_A, pair.H_B)
    tA = torch.from_numpy(pair.H_A).to(device)
    tB = torch.from_numpy(pair.H_B).to(device)
    got = _fit(QuotientAligner(backend="torch", **params), pair, tA, tB)
    assert got.report_.alpha == pytest.approx(ref.report_.alpha, rel=1e-12)
    assert got.report_.portable == ref.report_.portable
    for key in ("quotient_r2", "full_state_r2"):
        assert getattr(got.report_, key) == pytest.approx(getattr(ref.report_, key), abs=1e-8)
    for name in ref.bank_.names:
        a, b = got.bank_[name], ref.bank_[name]
        assert _rel(a.linear, b.linear) < 1e-8, name
        if b.quadratic is not None:
            assert _rel(a.quadratic, b.quadratic) < 1e-8, name
        assert got.report_[name].fidelity_r2 == pytest.approx(
            ref.report_[name].fidelity_r2, abs=1e-8
        )
    Z = got.transform(tB)
    assert isinstance(Z, torch.Tensor) and Z.device.type == device
    assert _rel(Z, ref.transform(pair.H_B)) < 1e-8


def test_mixed_numpy_and_tensor_pairs():
    pair = _pair(5)
    ref = _fit(QuotientAligner(unportable="mark"), pair, pair.H_A, pair.H_B)
    got = _fit(QuotientAligner(unportable="mark"), pair, pair.H_A, torch.from_numpy(pair.H_B))
    for name in ref.bank_.names:
        assert _rel(got.bank_[name].linear, ref.bank_[name].linear) < 1e-8


def test_few_label_probe_on_tensors():
    pair = _pair(6)
    y = pair.labels[:, 0]
    ref = few_label_probe(pair.H_B, y, 64, random_state=1)
    got = few_label_probe(torch.from_numpy(pair.H_B), torch.from_numpy(y), 64, random_state=1)
    assert _rel(got.decision_function(torch.from_numpy(pair.H_B)), ref.decision_function(
        pair.H_B)) < 1e-8  # fmt: skip


def test_transfer_reads_no_activations_back_to_host():
    """Stand-in for the CUDA check on CPU: with backend="torch" on tensors, no torch op is fed
    a numpy array of data, and nothing of activation size (n x d) is read back to the host;
    only d x d moments, coefficients and the n_heldout x m score tables are."""
    from test_torch_backend import _HostTraffic

    pair = readout_equivalent_models(300, 40, n_linear=3, n_quadratic=1, n_nuisance=8,
                                     random_state=7)  # fmt: skip
    tA, tB = torch.from_numpy(pair.H_A), torch.from_numpy(pair.H_B)
    n_hold, m = 60, len(pair.bank)
    # scores (60 x 4 = 240), moments (40 x 40 = 1600) pass; activations (240 x 40 = 9600) do not
    guard = _HostTraffic(limit=2000)
    with guard:
        al = QuotientAligner(backend="torch", holdout=n_hold, unportable="mark")
        al.fit(pair.bank, tA, tB)
        out = al.bank_.decision_function(tB)
    assert isinstance(out, torch.Tensor)
    assert not guard.bad, sorted(set(guard.bad))
    assert al.report_.n_heldout == n_hold and m == 4


@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
def test_cuda_transfer_results_live_on_device():
    pair = _pair(8)
    tA, tB = torch.from_numpy(pair.H_A).cuda(), torch.from_numpy(pair.H_B).cuda()
    al = _fit(QuotientAligner(unportable="mark"), pair, tA, tB)  # auto: CUDA -> torch
    assert al.zmap_.stats_.device.type == "cuda"
    assert al.transform(tB).device.type == "cuda"
    assert al.bank_.decision_function(tB).device.type == "cuda"
    assert al.quotient_.transform(tA).device.type == "cuda"
    moved = ProbeBank({"m": al.bank_[al.bank_.names[0]]})
    assert moved.decision_function(tB.float()).device.type == "cuda"

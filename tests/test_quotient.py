"""The probe-visible quotient of a bank (issue 5, docs/design.md §1 point 4).

Invisible directions are checked by evaluating the monitors at h + delta; coverage against a
plain-numpy whitened-projection formula; ranks against the number of independent directions
the monitors were built (or fitted) to read.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import shallowprobes as sp
from conftest import assert_rel
from shallowprobes import PolynomialMonitor, ProbeBank, Quotient
from shallowprobes.datasets import readout_equivalent_models


# ---------------------------------------------------------------------------------- helpers
def orthonormal(rng, d, k):
    return np.linalg.qr(rng.standard_normal((d, k)))[0]


def subspace_gap(A, B):
    """||P_A - P_B||_2 for orthonormal bases A, B (0 iff the spans are equal)."""
    return float(np.linalg.norm(A @ A.T - B @ B.T, 2))


def assert_invariant(bank, quotient, H, rng, scale=100.0, rtol=1e-8):
    """f(h + delta) = f(h) for every monitor and large deltas in invisible_basis_
    (|delta| = scale x the largest |h|)."""
    K = quotient.invisible_basis_
    assert K.shape == (bank.n_features_in_, bank.n_features_in_ - quotient.rank_)
    base = bank.decision_function(H)
    ref = np.max(np.abs(base), axis=0)
    size = scale * float(np.linalg.norm(H, axis=1).max())
    for _ in range(3):
        delta = rng.standard_normal((H.shape[0], K.shape[1])) @ K.T
        delta *= size / np.linalg.norm(delta, axis=1, keepdims=True)
        moved = bank.decision_function(H + delta)
        err = np.max(np.abs(moved - base), axis=0) / ref
        assert np.all(err <= rtol), dict(zip(bank.names, err))
    # and a visible direction does change something (the check is not vacuous)
    C = quotient.visible_basis_
    moved = bank.decision_function(H + C[:, 0])
    assert np.max(np.abs(moved - base)) > 1e-3 * np.max(ref)


def cp_monitor(U, V, w, a, centre, b=0.0):
    """f(h) = sum_r a_r (u_r.(h-c))(v_r.(h-c)) + w.(h-c) + b as a PolynomialMonitor."""
    Q = sum(a_r * np.outer(u, v) for a_r, u, v in zip(a, U.T, V.T))
    return PolynomialMonitor(w, b, Q, centre, kind="cp")


def random_bank(rng, d, basis, kinds):
    """Monitors of the given kinds whose covectors lie in span(basis) (d x k)."""
    k = basis.shape[1]
    bank = ProbeBank()
    for i, kind in enumerate(kinds):
        c = rng.standard_normal(d)
        w = basis @ rng.standard_normal(k)
        if kind == "linear":
            bank.add(f"m{i}", PolynomialMonitor(w, rng.standard_normal(), None, c))
        elif kind == "quadratic":
            A = rng.standard_normal((k, k))
            bank.add(f"m{i}", PolynomialMonitor(w, 0.3, basis @ A @ basis.T, c))
        else:
            U, V = basis @ rng.standard_normal((k, 2)), basis @ rng.standard_normal((k, 2))
            bank.add(f"m{i}", cp_monitor(U, V, w, rng.standard_normal(2), c))
    return bank


def affine_subspace_data(seed, n, d, k):
    rng = np.random.default_rng(seed)
    E = orthonormal(rng, d, k)
    m = rng.standard_normal(d) * 3
    S = rng.standard_normal((n, k)) * rng.uniform(0.5, 2.0, k)
    return rng, E, m, S, m + S @ E.T


# ---------------------------------------------------------------------------------- ground truth
@pytest.mark.parametrize(
    "seed,d_A,n_linear,n_quadratic",
    [(0, 16, 3, 1), (1, 24, 1, 2), (2, 32, 5, 0), (3, 12, 0, 3), (4, 48, 4, 2)],
)
def test_rank_and_spans_of_ground_truth_bank(seed, d_A, n_linear, n_quadratic):
    pair = readout_equivalent_models(300, d_A, n_linear=n_linear, n_quadratic=n_quadratic,
                                     random_state=seed)  # fmt: skip
    q = Quotient().fit(pair.bank)
    r = n_linear + 2 * n_quadratic
    assert q.rank_ == r == pair.n_visible
    assert q.visible_basis_.shape == (d_A, r)
    assert subspace_gap(q.visible_basis_, pair.visible_basis) < 1e-10
    assert subspace_gap(q.invisible_basis_, pair.invisible_basis) < 1e-10
    full = np.hstack([q.visible_basis_, q.invisible_basis_])
    np.testing.assert_allclose(full.T @ full, np.eye(d_A), atol=1e-12)
    s = q.singular_values_
    assert np.all(np.diff(s) <= 1e-12) and np.all(s >= 0)
    assert s[r - 1] > 1e-3 * s[0]
    assert np.all(s[r:] <= 1e-12 * s[0])
    assert max(q.reproduction_error_.values()) < 1e-10
    assert np.all(q.check(pair.H_A) <= 1e-10 * np.abs(pair.bank.decision_function(pair.H_A)).max())
    assert_invariant(pair.bank, q, pair.H_A[:100], np.random.default_rng(seed))
    # the monitors written on z reproduce the bank
    assert q.monitors_.n_features_in_ == r
    np.testing.assert_allclose(q.monitors_.decision_function(q.transform(pair.H_A)),
                               pair.bank.decision_function(pair.H_A), atol=1e-10)  # fmt: skip


@pytest.mark.parametrize("seed,d,k", [(0, 10, 3), (1, 20, 6), (2, 33, 10)])
@pytest.mark.parametrize(
    "kinds",
    [("linear",) * 12, ("quadratic",), ("cp", "cp", "cp", "cp"), ("linear", "quadratic", "cp")],
    ids=["degree1", "degree2", "cp", "mixed"],
)
def test_invisible_directions_of_random_banks(seed, d, k, kinds):
    rng = np.random.default_rng(seed)
    E = orthonormal(rng, d, k)
    bank = random_bank(rng, d, E, kinds)
    q = Quotient().fit(bank)
    expected = min(k, int(np.linalg.matrix_rank(bank.covectors())))
    assert q.rank_ == expected
    assert expected == k or kinds[0] == "cp"  # the bank reads all of span(E) (cp: up to 2R+1)
    if expected == k:
        assert subspace_gap(q.visible_basis_, E) < 1e-10
    assert np.linalg.norm(E.T @ q.invisible_basis_) < 1e-10 * max(1, expected)
    H = rng.standard_normal((60, d)) * 2
    assert_invariant(bank, q, H, rng)


# ---------------------------------------------------------------------------------- fitted probes
def fitted_bank(seed, n, d, k, which):
    """Probes fitted on rows h = m + E s (an affine k-subspace): their coefficients lie in
    span(E), so the bank's invisible subspace is exactly the complement of span(E)."""
    rng, E, m, S, H = affine_subspace_data(seed, n, d, k)
    noise = 0.1 * rng.standard_normal(n)
    y_lin = S @ rng.standard_normal((k, k)) + 0.1 * rng.standard_normal((n, k))  # k targets
    A = rng.standard_normal((k, k))
    y_quad = np.einsum("ni,ij,nj->n", S, A, S) + S[:, 0] + noise
    pairs = [(i, (i + 1) % k) for i in range(0, k, 2)]
    y_cp = sum(S[:, i] * S[:, j] for i, j in pairs) + 0.5 * S[:, -1] + noise
    cls = (y_quad > np.median(y_quad)).astype(int)
    cls3 = np.digitize(y_lin[:, 0], np.quantile(y_lin[:, 0], [1 / 3, 2 / 3]))
    probes = {}
    if which in ("linear", "mixed"):
        probes["lin"] = sp.LinearProbe().fit(H, y_lin)
        probes["linc"] = sp.LinearProbeClassifier().fit(H, cls3)
    if which in ("quadratic", "mixed"):
        probes["quad"] = sp.QuadraticProbe().fit(H, y_quad)
        probes["quadc"] = sp.QuadraticProbeClassifier().fit(H, cls)
    if which in ("cp", "mixed"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ALS convergence is not the point here
            probes["cp"] = sp.CPProbe(rank=len(pairs) + 1, random_state=0).fit(H, y_cp)
            probes["cpc"] = sp.CPProbeClassifier(rank=len(pairs) + 1, random_state=0).fit(H, cls)
    return rng, E, H, ProbeBank(probes)


@pytest.mark.parametrize("seed,n,d,k", [(0, 400, 12, 4), (1, 600, 20, 6), (2, 500, 30, 5)])
@pytest.mark.parametrize("which", ["linear", "quadratic", "cp", "mixed"])
def test_fitted_probes_on_an_affine_subspace(seed, n, d, k, which):
    rng, E, H, bank = fitted_bank(seed, n, d, k, which)
    # independent check of the premise: every covector lies in span(E)
    M = bank.covectors()
    assert np.linalg.norm(M - E @ (E.T @ M)) <= 1e-10 * np.linalg.norm(M)
    q = Quotient().fit(bank)
    assert q.rank_ == k
    assert subspace_gap(q.visible_basis_, E) < 1e-8
    complement = np.linalg.svd(np.eye(d) - E @ E.T)[0][:, : d - k]
    assert subspace_gap(q.invisible_basis_, complement) < 1e-8
    assert_invariant(bank, q, H[:80], rng, scale=100.0, rtol=1e-8)
    # off the subspace too: the invariance holds for every h, not only the training rows
    assert_invariant(bank, q, rng.standard_normal((40, d)) * 5, rng, scale=100.0, rtol=1e-8)


# ---------------------------------------------------------------------------------- coverage
def numpy_coverage_linear(w, C, S):
    """||P S^1/2 w||^2 / ||S^1/2 w||^2, P the orthogonal projector onto span(S^1/2 C)."""
    lam, V = np.linalg.eigh(S)
    root = (V * np.sqrt(np.clip(lam, 0, None))) @ V.T
    A = root @ C
    Qa, sa, _ = np.linalg.svd(A, full_matrices=False)
    Qa = Qa[:, sa > 1e-12 * sa[0]]
    x = root @ w
    return float(np.sum((Qa.T @ x) ** 2) / np.sum(x * x))


def numpy_coverage_quadratic(w, Q, C, S):
    """Gaussian variance kept by the whitened projection: (||P b||^2 + 2||P A P||_F^2) /
    (||b||^2 + 2||A||_F^2) with b = S^1/2 w, A = S^1/2 Q S^1/2 (w taken at the mean)."""
    lam, V = np.linalg.eigh(S)
    root = (V * np.sqrt(np.clip(lam, 0, None))) @ V.T
    Qa = np.linalg.qr(root @ C)[0]
    P = Qa @ Qa.T
    b, A = root @ w, root @ Q @ root
    kept = np.sum((P @ b) ** 2) + 2 * np.sum((P @ A @ P) ** 2)
    return float(kept / (np.sum(b * b) + 2 * np.sum(A * A)))


@pytest.mark.parametrize("seed,d,k", [(0, 8, 2), (1, 16, 5), (2, 30, 7)])
def test_coverage_matches_numpy_formula(seed, d, k):
    rng = np.random.default_rng(seed)
    E = orthonormal(rng, d, k)
    bank = random_bank(rng, d, E, ("linear",) * k)
    q = Quotient().fit(bank)
    C = q.visible_basis_
    # a correlated reference set (non-trivial geometry)
    L = rng.standard_normal((d, d)) * rng.uniform(0.2, 3.0, d)
    ref = rng.standard_normal((3 * d + 50, d)) @ L.T + rng.standard_normal(d)
    S = np.cov(ref, rowvar=False, bias=True)
    extra = ProbeBank()
    covs_expected = {}
    for i in range(6):
        w = rng.standard_normal(d)
        c = rng.standard_normal(d)
        extra.add(f"lin{i}", PolynomialMonitor(w, 0.0, None, c))
        covs_expected[f"lin{i}"] = numpy_coverage_linear(w, C, S)
        Qm = rng.standard_normal((d, d))
        Qm = Qm + Qm.T
        mq = PolynomialMonitor(w, 0.0, Qm, c)
        extra.add(f"quad{i}", mq)
        covs_expected[f"quad{i}"] = numpy_coverage_quadratic(
            mq.recentred(ref.mean(axis=0)).linear, Qm, C, S
        )
    got = q.coverage(extra, reference=ref)
    assert set(got) == set(covs_expected)
    for name, expected in covs_expected.items():
        assert got[name] == pytest.approx(expected, rel=1e-8, abs=1e-12), name
        assert 0.0 <= got[name] <= 1.0
    # a single monitor gives a float; reference=None is the Euclidean geometry
    w = rng.standard_normal(d)
    single = q.coverage(PolynomialMonitor(w), reference=None)
    assert isinstance(single, float)
    assert single == pytest.approx(numpy_coverage_linear(w, C, np.eye(d)), rel=1e-10)
    assert single == pytest.approx(np.sum((C.T @ w) ** 2) / np.sum(w * w), rel=1e-10)
    # monitors of the bank are fully covered, monitors reading only K(V) not at all
    for val in q.coverage(bank, reference=ref).values():
        assert val == pytest.approx(1.0, abs=1e-10)
    K = q.invisible_basis_
    outside = PolynomialMonitor(K @ rng.standard_normal(d - k), 0.0,
                                K @ rng.standard_normal((d - k, d - k)) @ K.T)  # fmt: skip
    assert q.coverage(outside) == pytest.approx(0.0, abs=1e-12)


def test_coverage_of_probes_and_width_errors():
    rng, E, H, bank = fitted_bank(0, 400, 12, 4, "linear")
    q = Quotient().fit(bank)
    # a probe fitted on the same subspace reads only span(E): coverage 1
    y = H @ E @ rng.standard_normal(4)
    probe = sp.LinearProbe().fit(H, y)
    assert q.coverage(probe, reference=H) == pytest.approx(1.0, abs=1e-8)
    with pytest.raises(ValueError, match="dimensional"):
        q.coverage(PolynomialMonitor(np.ones(13)))
    with pytest.raises(ValueError, match="dimensional"):
        q.coverage(ProbeBank({"w": PolynomialMonitor(np.ones(5))}))
    with pytest.raises(ValueError):
        q.coverage(bank, reference=np.ones((10, 5)))


@pytest.mark.parametrize("seed,d,k", [(0, 9, 3), (1, 20, 6)])
@pytest.mark.parametrize("use_reference", [False, True])
def test_project_in_span_returns_the_same_function(seed, d, k, use_reference):
    rng = np.random.default_rng(seed)
    E = orthonormal(rng, d, k)
    bank = random_bank(rng, d, E, ("linear", "quadratic"))
    q = Quotient().fit(bank)
    ref = rng.standard_normal((200, d)) @ rng.standard_normal((d, d)) if use_reference else None
    other = random_bank(rng, d, E, ("linear", "quadratic", "cp"))  # in span, not in the bank
    H = rng.standard_normal((50, d)) * 3
    Z = q.transform(H)
    for name, m in {**dict(bank.items()), **dict(other.items())}.items():
        p = q.project(m, reference=ref)
        assert p.n_features == q.rank_
        assert p.kind == m.kind
        assert_rel(p(Z), m(H), 1e-9, name)


@pytest.mark.parametrize("seed,d,k", [(0, 10, 3), (1, 25, 8)])
def test_project_linear_is_least_squares_on_the_reference(seed, d, k):
    rng = np.random.default_rng(seed)
    E = orthonormal(rng, d, k)
    q = Quotient().fit(random_bank(rng, d, E, ("linear",) * k))
    ref = rng.standard_normal((500, d)) @ rng.standard_normal((d, d)) + 2.0
    m = PolynomialMonitor(rng.standard_normal(d), 1.5, None, rng.standard_normal(d))
    p = q.project(m, reference=ref)
    # plain least squares of f(h) on [1, z] over the reference rows
    Z = q.transform(ref)
    design = np.column_stack([np.ones(len(ref)), Z])
    coef = np.linalg.lstsq(design, m(ref), rcond=None)[0]
    assert_rel(p(Z), design @ coef, 1e-9, "projection = least squares")


@pytest.mark.parametrize("seed,d,k", [(0, 7, 2), (1, 18, 9)])
def test_transform_inverse_transform_round_trip(seed, d, k):
    rng = np.random.default_rng(seed)
    E = orthonormal(rng, d, k)
    bank = random_bank(rng, d, E, ("linear", "quadratic"))
    centre = rng.standard_normal(d)
    q = Quotient(centre=centre).fit(bank)
    np.testing.assert_array_equal(q.centre_, centre)
    Z = rng.standard_normal((30, k))
    np.testing.assert_allclose(q.transform(q.inverse_transform(Z)), Z, atol=1e-12)
    H = rng.standard_normal((30, d)) * 4
    back = q.inverse_transform(q.transform(H))
    # the round trip removes only the invisible component
    np.testing.assert_allclose(back, centre + (H - centre) @ E @ E.T, atol=1e-10)
    np.testing.assert_allclose(bank.decision_function(back), bank.decision_function(H),
                               rtol=1e-10, atol=1e-10)  # fmt: skip
    np.testing.assert_allclose(q.transform(H), (H - centre) @ q.visible_basis_, atol=1e-12)
    with pytest.raises(ValueError):
        q.transform(np.ones((3, d + 1)))
    with pytest.raises(ValueError):
        q.inverse_transform(np.ones((3, k + 1)))
    # default centre: the mean of the monitors' centres
    q2 = Quotient().fit(bank)
    np.testing.assert_allclose(q2.centre_, np.mean([m.centre for m in bank.values()], axis=0))


# ---------------------------------------------------------------------------------- params
def _bank_with_spectrum(d=10):
    """A quadratic monitor reading e0, e1, e2 with weights 1, 1e-3, 1e-7 (and e3 linearly),
    plus a linear monitor on e4: normalised singular values 1, .71, .71, 7e-4, 7e-8."""
    Q = np.zeros((d, d))
    Q[0, 0], Q[1, 1], Q[2, 2] = 1.0, 1e-3, 1e-7
    w = np.zeros(d)
    w[3] = 1.0
    v = np.zeros(d)
    v[4] = 1.0
    return ProbeBank({"mix": PolynomialMonitor(w, 0.0, Q), "e4": PolynomialMonitor(v)})


def test_rtol_rank_and_warnings():
    bank = _bank_with_spectrum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q_fine = Quotient(rtol=1e-12).fit(bank)
    assert q_fine.rank_ == 5
    s = q_fine.singular_values_
    np.testing.assert_allclose(s[:5] / s[0], [1, 2**-0.5, 2**-0.5, 1e-3 * 2**-0.5,
                                              1e-7 * 2**-0.5], rtol=1e-6)  # fmt: skip
    assert np.all(np.diff(s) <= 0)
    # the default cut-off (1e-6) drops the 1e-7 direction: 'mix' is no longer exact
    with pytest.warns(UserWarning, match="'mix'"):
        q_default = Quotient().fit(bank)
    assert q_default.rank_ == 4
    assert q_default.reproduction_error_["mix"] == pytest.approx(1e-7 / np.sqrt(2), rel=1e-3)
    assert q_default.reproduction_error_["e4"] < 1e-14
    # rank= overrides rtol in both directions
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Quotient(rtol=0.9, rank=5).fit(bank).rank_ == 5
        assert Quotient(rank=7).fit(bank).rank_ == 7  # extra directions no monitor reads
    with pytest.warns(UserWarning, match="dropped directions"):
        q1 = Quotient(rtol=1e-12, rank=1).fit(bank)
    assert q1.rank_ == 1
    assert q1.reproduction_error_["e4"] < 1e-14  # the largest singular value is e4's
    assert q1.reproduction_error_["mix"] == pytest.approx(1.0, abs=1e-6)
    # rtol alone: the 1e-3 direction goes at rtol = 1e-2
    with pytest.warns(UserWarning, match="'mix'"):
        q3 = Quotient(rtol=1e-2).fit(bank)
    assert q3.rank_ == 3
    assert q3.reproduction_error_["mix"] == pytest.approx(1e-3 / np.sqrt(2), rel=1e-3)


@pytest.mark.parametrize(
    "params,exc,match",
    [
        (dict(rtol=-0.1), ValueError, "rtol"),
        (dict(rtol=1.0), ValueError, "rtol"),
        (dict(rtol=True), TypeError, "rtol"),
        (dict(rtol="small"), TypeError, "rtol"),
        (dict(rank=0), ValueError, "rank"),
        (dict(rank=11), ValueError, "rank"),
        (dict(rank=2.0), TypeError, "rank"),
        (dict(rank=True), TypeError, "rank"),
        (dict(centre=np.zeros(9)), ValueError, "centre"),
        (dict(centre=np.full(10, np.nan)), ValueError, "centre"),
    ],
)
def test_bad_quotient_params(params, exc, match):
    with pytest.raises(exc, match=match):
        Quotient(**params).fit(_bank_with_spectrum(10))


def test_quotient_fit_and_use_errors():
    with pytest.raises(TypeError, match="ProbeBank"):
        Quotient().fit({"a": PolynomialMonitor(np.ones(3))})
    with pytest.raises(ValueError, match="empty"):
        Quotient().fit(ProbeBank())
    with pytest.raises(ValueError, match="constant"):
        Quotient().fit(ProbeBank({"c": PolynomialMonitor(np.zeros(4), 2.0)}))
    q = Quotient()
    for call in (lambda: q.transform(np.ones((2, 3))), lambda: q.coverage(PolynomialMonitor(
            np.ones(3))), lambda: q.check(np.ones((2, 3)))):  # fmt: skip
        with pytest.raises(ValueError, match="not fitted"):
            call()
    assert "rtol" in repr(q)
    q.fit(_bank_with_spectrum(6).subset(["e4"]))
    assert "rank_=1" in repr(q)
    assert Quotient.from_bank(_bank_with_spectrum(6), rtol=1e-12).rank_ == 5


@pytest.mark.parametrize("seed,d,k", [(7, 6, 4), (0, 12, 4)])
@pytest.mark.parametrize("rtol", [1e-6, 1e-10])
def test_many_quadratic_monitors_use_the_gram_path(seed, d, k, rtol):
    # more covector columns than 2 d (the library's Gram / eigh branch): the answer must be the
    # one of the SVD branch, also for a small rtol (the warning advises lowering it)
    rng = np.random.default_rng(seed)
    E = orthonormal(rng, d, k)
    bank = random_bank(rng, d, E, ("quadratic",) * 5)
    assert bank.covectors().shape[1] > 2 * d
    q = Quotient(rtol=rtol).fit(bank)
    assert q.rank_ == k
    assert subspace_gap(q.visible_basis_, E) < 1e-10
    assert np.all(np.diff(q.singular_values_) <= 1e-12)
    # the zero singular values must be round-off of the covectors (~1e-16), small enough to
    # fall under any sensible cut-off (a Gram matrix's eigenvalues only give ~1e-8)
    assert np.all(q.singular_values_[k:] < rtol * q.singular_values_[0])
    assert_invariant(bank, q, rng.standard_normal((30, d)), rng)

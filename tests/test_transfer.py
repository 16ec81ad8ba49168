"""Label-free monitor transfer through the probe-visible quotient (issue 5, docs/design.md §1 4-5).

Model pairs come from `readout_equivalent_models`: B is an affine reparameterisation of A on
A's visible quotient (exactly, or up to noise), and possibly a non-linear scramble elsewhere.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import shallowprobes as sp
from shallowprobes import CoverageReport, ProbeBank, Quotient, QuotientAligner
from shallowprobes.datasets import readout_equivalent_models


# ---------------------------------------------------------------------------------- helpers
def auroc(scores, labels):
    """Plain Mann-Whitney AUROC (ties count 1/2), written independently of the library."""
    scores = np.asarray(scores, float)
    labels = np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    diff = pos[:, None] - neg[None, :]
    return float((np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / (pos.size * neg.size))


def rel_cols(a, b):
    """Per column max |a - b| / max |b|."""
    return np.max(np.abs(a - b), axis=0) / np.max(np.abs(b), axis=0)


def r2(truth, pred):
    truth, pred = np.asarray(truth, float), np.asarray(pred, float)
    return 1.0 - np.sum((pred - truth) ** 2) / np.sum((truth - truth.mean(axis=0)) ** 2)


def whitened_r2(truth, pred, reference):
    """R^2 averaged over whitened coordinates: 1 - mean_rows(e^T S^-1 e) / dim, with S the
    (population) covariance of `reference` (the true coordinates on the training pairs)."""
    S = np.cov(np.asarray(reference, float), rowvar=False, bias=True)
    err = np.asarray(pred, float) - np.asarray(truth, float)
    return 1.0 - float(np.mean(np.sum(err * np.linalg.solve(S, err.T).T, axis=1))) / S.shape[0]


def quiet_fit(aligner, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return aligner.fit(*args, **kwargs)


EXACT_SHAPES = [
    # seed, n, d_A, n_linear, n_quadratic, n_nuisance
    (0, 1500, 16, 3, 1, 8),
    (1, 2000, 24, 2, 2, 4),
    (2, 1200, 32, 5, 0, 0),
    (3, 1500, 12, 1, 1, 12),
]


# ---------------------------------------------------------------------------------- exact pairs
@pytest.mark.parametrize("seed,n,d_A,n_lin,n_quad,n_nuis", EXACT_SHAPES)
@pytest.mark.parametrize("alphas", [None, [1e-8]], ids=["default-grid", "alpha1e-8"])
def test_exact_equivalence_reproduces_decision_values(seed, n, d_A, n_lin, n_quad, n_nuis,
                                                      alphas):  # fmt: skip
    # The default grid (down to 1e-10 x the mean eigenvalue, chosen by GCV) already gives
    # ~1e-9 relative error on these pairs; a single tiny alpha gives ~1e-11.
    pair = readout_equivalent_models(n, d_A, n_linear=n_lin, n_quadratic=n_quad,
                                     n_nuisance=n_nuis, invisible="affine", noise=0.0,
                                     random_state=seed)  # fmt: skip
    al = QuotientAligner(alphas=alphas).fit(pair.bank, pair.H_A, pair.H_B)
    names = pair.bank.names
    assert al.bank_.names == names  # everything portable, nothing dropped
    assert al.report_.portable == names
    assert al.quotient_.rank_ == pair.n_visible == n_lin + 2 * n_quad
    assert al.report_.rank == pair.n_visible
    src = pair.bank.decision_function(pair.H_A)
    dst = al.bank_.decision_function(pair.H_B, names=names)
    assert np.all(rel_cols(dst, src) <= 1e-6), rel_cols(dst, src)
    ho = al.heldout_index_
    for j in range(len(names)):
        a_src = auroc(src[ho, j], pair.labels[ho, j])
        a_dst = auroc(dst[ho, j], pair.labels[ho, j])
        assert a_src > 0.75  # the labels are informative (the check is not vacuous)
        assert a_dst == pytest.approx(a_src, abs=1e-9)
    assert al.report_.quotient_r2 > 1 - 1e-9
    assert al.report_.full_state_r2 > 1 - 1e-9  # B determines all of h_A here
    for row in al.report_.rows:
        assert row.fidelity_r2 > 1 - 1e-9 and row.coverage == pytest.approx(1.0, abs=1e-9)
        assert row.rank_correlation > 1 - 1e-9
    # the aligner's z-predictions are A's quotient coordinates
    np.testing.assert_allclose(
        al.transform(pair.H_B),
        al.quotient_.transform(pair.H_A),
        atol=1e-6 * np.abs(al.quotient_.transform(pair.H_A)).max(),
    )
    assert al.train_index_.size + ho.size == n
    assert np.intersect1d(al.train_index_, ho).size == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_transfer_function_returns_the_aligners_bank(seed):
    pair = readout_equivalent_models(1000, 16, noise=0.0, random_state=seed)
    bank = sp.transfer(pair.bank, pair.H_A, pair.H_B, holdout=300, random_state=3)
    al = QuotientAligner(holdout=300, random_state=3).fit(pair.bank, pair.H_A, pair.H_B)
    assert isinstance(bank, ProbeBank) and isinstance(bank.report, CoverageReport)
    assert bank.report.n_heldout == 300 and bank.report.n_train == 700
    np.testing.assert_array_equal(bank.decision_function(pair.H_B),
                                  al.bank_.decision_function(pair.H_B))  # fmt: skip
    assert bank.n_features_in_ == pair.H_B.shape[1]
    assert bank.metadata["target"] == "quotient"


# ---------------------------------------------------------------------------------- the identity
IDENTITY_CASES = [
    # seed, n, d_A, invisible, noise
    (0, 800, 16, "nonlinear", 0.1),
    (1, 1200, 24, "affine", 0.3),
    (2, 600, 12, "nonlinear", 0.0),
    (3, 1000, 32, "affine", 1.0),
]


@pytest.mark.parametrize("seed,n,d_A,invisible,noise", IDENTITY_CASES)
@pytest.mark.parametrize("alpha", [1e-3, 1.0, 300.0])
def test_full_then_project_equals_quotient_map(seed, n, d_A, invisible, noise, alpha):
    pair = readout_equivalent_models(n, d_A, invisible=invisible, noise=noise,
                                     random_state=seed)  # fmt: skip
    names = pair.bank.names
    # 1. through the aligner: target "full" vs "quotient" with the same single alpha
    outs = {}
    for target in ("full", "quotient"):
        al = quiet_fit(QuotientAligner(target, alphas=[alpha], unportable="mark"),
                       pair.bank, pair.H_A, pair.H_B)  # fmt: skip
        assert al.report_.alpha == alpha
        outs[target] = al.bank_.decision_function(pair.H_B, names=names)
    assert np.all(rel_cols(outs["full"], outs["quotient"]) <= 1e-10)
    # 2. directly: LinearProbe h_B -> h_A, projected by C^T, equals LinearProbe h_B -> z_A
    q = Quotient().fit(pair.bank)
    C, m = q.visible_basis_, q.centre_
    full = sp.LinearProbe(alphas=[alpha]).fit(pair.H_B, pair.H_A)
    quot = sp.LinearProbe(alphas=[alpha]).fit(pair.H_B, q.transform(pair.H_A))
    G_full = np.asarray(full.coef_).reshape(d_A, -1)
    G_quot = np.asarray(quot.coef_).reshape(q.rank_, -1)
    np.testing.assert_allclose(C.T @ G_full, G_quot, rtol=0, atol=1e-10 * np.abs(G_quot).max())
    b_full = C.T @ (np.asarray(full.intercept_) - m)
    b_quot = np.asarray(quot.intercept_).reshape(-1)
    np.testing.assert_allclose(b_full, b_quot, rtol=0, atol=1e-10 * np.abs(b_quot).max())
    Zq = quot.predict(pair.H_B)
    Zf = (full.predict(pair.H_B) - m) @ C
    assert np.max(np.abs(Zf - Zq)) <= 1e-10 * np.max(np.abs(Zq))


@pytest.mark.parametrize("metric", ["standardize", "whiten"])
def test_identity_holds_for_other_metrics(metric):
    pair = readout_equivalent_models(800, 16, invisible="nonlinear", noise=0.2, random_state=5)
    outs = {}
    for target in ("full", "quotient"):
        al = quiet_fit(QuotientAligner(target, alphas=[2.0], metric=metric, unportable="mark"),
                       pair.bank, pair.H_A, pair.H_B)  # fmt: skip
        outs[target] = al.bank_.decision_function(pair.H_B, names=pair.bank.names)
    assert np.all(rel_cols(outs["full"], outs["quotient"]) <= 1e-10)


# ---------------------------------------------------------------------------------- partial pairs
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("visible_variance", ["high", "low"])
def test_partially_equivalent_pairs(seed, visible_variance):
    pair = readout_equivalent_models(2000, 24, invisible="nonlinear", noise=0.02,
                                     visible_variance=visible_variance,
                                     random_state=seed)  # fmt: skip
    al = QuotientAligner().fit(pair.bank, pair.H_A, pair.H_B)
    rep = al.report_
    ho = al.heldout_index_
    src = pair.bank.decision_function(pair.H_A[ho])
    dst = al.bank_.decision_function(pair.H_B[ho], names=pair.bank.names)
    for j in range(src.shape[1]):
        a_src = auroc(src[:, j], pair.labels[ho, j])
        assert a_src > 0.75
        assert auroc(dst[:, j], pair.labels[ho, j]) >= 0.99 * a_src
    # independent held-out (whitened) R^2 of the quotient map and of the full-state map
    tr = al.train_index_
    Z_tr = al.quotient_.transform(pair.H_A[tr])
    Z_ho = al.quotient_.transform(pair.H_A[ho])
    # the report's figures are those of the map fitted on the training pairs (the monitors
    # then use the map refitted on all pairs)
    q_r2 = whitened_r2(Z_ho, al.split_zmap_.predict(pair.H_B[ho]), Z_tr)
    assert q_r2 == pytest.approx(rep.quotient_r2, abs=1e-9)
    assert rep.n_refit == pair.H_A.shape[0]
    assert rep.quotient_r2 >= 0.99
    full_alpha = float(np.median(np.atleast_1d(al.full_map_.alpha_)))
    full_map = sp.LinearProbe(alphas=[full_alpha]).fit(pair.H_B[tr], pair.H_A[tr])
    f_r2 = whitened_r2(pair.H_A[ho], full_map.predict(pair.H_B[ho]), pair.H_A[tr])
    assert f_r2 == pytest.approx(rep.full_state_r2, abs=1e-6)
    # the full state is not recoverable (scrambled invisible part): low full-state R^2
    assert rep.full_state_r2 < 0.8
    assert rep.quotient_r2 - rep.full_state_r2 > 0.2
    # ... whatever alpha: the best single alpha on the held-out pairs is still low
    best = max(whitened_r2(pair.H_A[ho], sp.LinearProbe(alphas=[a]).fit(
        pair.H_B[tr], pair.H_A[tr]).predict(pair.H_B[ho]), pair.H_A[tr])
        for a in (1e-6, 1e-2, 1e2, 1e4))  # fmt: skip
    assert best < 0.8
    text = str(rep)
    assert f"{rep.quotient_r2:.3f}" in text and f"{rep.full_state_r2:.3f}" in text
    assert "quotient" in text and "full state" in text
    assert repr(rep) == text


def test_full_state_diagnostic_can_be_switched_off():
    pair = readout_equivalent_models(600, 12, random_state=0)
    al = QuotientAligner(full_state_diagnostic=False).fit(pair.bank, pair.H_A, pair.H_B)
    assert al.report_.full_state_r2 is None
    assert "n/a" in str(al.report_)


# ---------------------------------------------------------------------------------- PCA baseline
@pytest.mark.parametrize("invisible,noise", [("affine", 0.0), ("nonlinear", 0.05)])
def test_pca_subspace_misses_low_variance_monitors(invisible, noise):
    fid = {"quotient": [], "pca": [], "full": []}
    for seed in range(4):
        pair = readout_equivalent_models(1500, 24, invisible=invisible, noise=noise,
                                         visible_variance="low", random_state=seed)  # fmt: skip
        cmp = sp.compare_transfer(pair.bank, pair.H_A, pair.H_B, pair.labels)
        methods = {r["method"] for r in cmp.rows}
        assert {"transfer: quotient", "transfer: pca"} <= methods
        full_methods = [m for m in methods if m.startswith("transfer: full")]
        assert full_methods, methods
        for meth in methods:  # every method is reported with finite numbers
            for key in ("fidelity_r2", "rank_correlation", "auroc", "source_auroc"):
                assert np.isfinite(cmp.mean(meth, key)), (meth, key)
            assert meth in str(cmp)
        fid["quotient"].append(cmp.mean("transfer: quotient", "fidelity_r2"))
        fid["pca"].append(cmp.mean("transfer: pca", "fidelity_r2"))
        fid["full"].append(cmp.mean("transfer: full", "fidelity_r2"))
        # pca_rank defaults to the quotient's rank: the same r numbers
        al = quiet_fit(QuotientAligner("pca"), pair.bank, pair.H_A, pair.H_B)
        assert al.pca_basis_.shape == (24, pair.n_visible)
    assert np.mean(fid["pca"]) <= np.mean(fid["quotient"]) - 0.5
    assert min(fid["quotient"]) > 0.95
    assert np.all(np.isfinite(fid["full"]))


def test_pca_rank_parameter():
    pair = readout_equivalent_models(1500, 16, visible_variance="low", random_state=0)
    al = quiet_fit(QuotientAligner("pca", pca_rank=16), pair.bank, pair.H_A, pair.H_B)
    # all of A's principal directions: the PCA baseline is then the full-state map
    assert al.pca_basis_.shape == (16, 16)
    assert min(r.fidelity_r2 for r in al.report_.rows) > 0.999


# ---------------------------------------------------------------------------------- coverage
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("target", ["quotient", "full"])
def test_coverage_decides_portability(seed, target):
    pair = readout_equivalent_models(1500, 20, noise=0.0, random_state=seed)
    al = quiet_fit(QuotientAligner(target, unportable="mark"), pair.bank, pair.H_A, pair.H_B,
                   extra_monitors=pair.extra_monitors)  # fmt: skip
    rep = al.report_
    inside, outside = rep["inside"], rep["outside"]
    assert not inside.in_bank and not outside.in_bank
    assert inside.coverage >= 0.99 and inside.portable
    assert outside.coverage < 0.05 and not outside.portable
    assert "coverage" in outside.reason
    assert "NOT portable" in str(rep) and "outside" in rep.not_portable
    if target == "full":
        # B determines all of h_A here, so the raw score is reproduced, but the monitor reads
        # nothing the bank's quotient covers: still not portable (coverage decides)
        assert outside.fidelity_r2 > 0.99
    # with unportable="mark" the monitor is kept and flagged
    assert al.bank_["outside"].info["portable"] is False
    assert al.bank_["inside"].info["portable"] is True
    assert al.bank_["inside"].info["coverage"] == pytest.approx(inside.coverage)
    # the inside monitor transfers: its score on B reproduces A's
    src = pair.extra_monitors["inside"](pair.H_A)
    assert r2(src, al.bank_["inside"](pair.H_B)) > 0.999


def test_unportable_drop_mark_raise():
    from shallowprobes.errors import NotPortableError, ShallowProbesError

    pair = readout_equivalent_models(1000, 16, noise=0.0, random_state=4)
    args = (pair.bank, pair.H_A, pair.H_B)
    kw = dict(extra_monitors=pair.extra_monitors)
    # default: mark - every monitor kept, the unportable one flagged, with a warning
    with pytest.warns(UserWarning, match="outside") as rec:
        mark = QuotientAligner().fit(*args, **kw)
    assert rec[0].filename == __file__  # the warning points at this line, not the library
    assert "report_" in str(rec[0].message)
    assert mark.bank_.names == pair.bank.names + pair.extra_monitors.names
    assert mark.bank_["outside"].info["portable"] is False
    with pytest.warns(UserWarning, match="outside") as rec:
        drop = QuotientAligner(unportable="drop").fit(*args, **kw)
    assert rec[0].filename == __file__
    assert "outside" not in drop.bank_ and "inside" in drop.bank_
    assert "outside" in drop.report_.not_portable
    assert any("outside" in note for note in drop.report_.notes)
    with pytest.raises(NotPortableError, match="outside") as info:
        QuotientAligner(unportable="raise").fit(*args, **kw)
    assert isinstance(info.value, ShallowProbesError) and isinstance(info.value, ValueError)
    assert "unportable='mark'" in str(info.value)
    # thresholds: with min_coverage=0, coverage no longer blocks; through the full-state map
    # (exact pair) the outside monitor's score is reproduced, so it passes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lax = QuotientAligner("full", min_coverage=0.0).fit(*args, **kw)
    assert "outside" in lax.bank_ and lax.report_["outside"].portable
    with pytest.warns(UserWarning, match="outside"):
        QuotientAligner("full").fit(*args, **kw)  # the default min_coverage blocks it
    # an unreachable fidelity threshold marks everything
    strict = quiet_fit(QuotientAligner(min_fidelity=1.0), *args, **kw)
    assert any("score R^2" in r.reason for r in strict.report_.rows)


# ---------------------------------------------------------------------------------- errors
def _small_pair():
    return readout_equivalent_models(200, 8, n_linear=2, n_quadratic=1, random_state=0)


@pytest.mark.parametrize(
    "params,exc,match",
    [
        (dict(target="everything"), ValueError, "target"),
        (dict(unportable="ignore"), ValueError, "unportable"),
        (dict(holdout=0.0), ValueError, "holdout"),
        (dict(holdout=1.0), ValueError, "holdout"),
        (dict(holdout=1), ValueError, "held-out"),
        (dict(holdout=198), ValueError, "training pairs"),
        (dict(holdout="0.2"), TypeError, "holdout"),
        (dict(holdout=True), TypeError, "holdout"),
        (dict(min_coverage=1.5), ValueError, "min_coverage"),
        (dict(min_coverage=-0.1), ValueError, "min_coverage"),
        (dict(min_fidelity=float("nan")), TypeError, "min_fidelity"),
        (dict(min_fidelity="high"), TypeError, "min_fidelity"),
        (dict(pca_rank=0), ValueError, "pca_rank"),
        (dict(pca_rank=2.5), ValueError, "pca_rank"),
        (dict(metric="readout"), ValueError, "readout"),
        (dict(rtol=2.0), ValueError, "rtol"),
        (dict(rank=100), ValueError, "rank"),
    ],
)
def test_aligner_parameter_errors(params, exc, match):
    pair = _small_pair()
    with pytest.raises(exc, match=match):
        QuotientAligner(**params).fit(pair.bank, pair.H_A, pair.H_B)


def test_aligner_input_errors():
    pair = _small_pair()
    bank, HA, HB = pair.bank, pair.H_A, pair.H_B
    with pytest.raises(ValueError, match="same inputs"):
        QuotientAligner().fit(bank, HA, HB[:-1])
    with pytest.raises(ValueError):
        QuotientAligner().fit(bank, HA[:, :-1], HB)  # not the bank's width
    with pytest.raises(ValueError):
        QuotientAligner().fit(bank, HA[:4], HB[:4])  # too few pairs
    with pytest.raises(ValueError):
        QuotientAligner().fit(bank, np.where(HA > 2, np.nan, HA), HB)
    with pytest.raises(TypeError, match="ProbeBank"):
        QuotientAligner().fit(dict(bank.items()), HA, HB)
    with pytest.raises(TypeError, match="ProbeBank"):
        QuotientAligner().fit(ProbeBank(), HA, HB)
    with pytest.raises(TypeError, match="extra_monitors"):
        QuotientAligner().fit(bank, HA, HB, extra_monitors={"x": bank["linear_0"]})
    with pytest.raises(ValueError, match="repeats names"):
        QuotientAligner().fit(bank, HA, HB, extra_monitors=bank.subset(["linear_0"]))
    wide = ProbeBank({"w": sp.PolynomialMonitor(np.ones(HA.shape[1] + 1))})
    with pytest.raises(ValueError, match="width"):
        QuotientAligner().fit(bank, HA, HB, extra_monitors=wide)
    with pytest.raises(ValueError, match="not fitted"):
        QuotientAligner().transform(HB)


# ---------------------------------------------------------------------------------- B's metric
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("metric", ["euclidean", "standardize", "whiten", "readout"])
def test_metrics_on_b_side(seed, metric):
    # readout_B = readout_A composed with the map B -> A; it sees every direction of h_B that
    # h_A depends on only when readout_A has full column rank (n_readout >= d_A): the readout
    # metric drops directions outside W_B's row space.
    pair = readout_equivalent_models(1500, 16, noise=0.0, n_readout=20, random_state=seed)
    readout = pair.readout_B if metric == "readout" else None
    al = QuotientAligner(metric=metric, readout=readout).fit(pair.bank, pair.H_A, pair.H_B)
    assert al.report_.metric == metric
    assert al.report_.quotient_r2 > 1 - 1e-6
    assert al.report_.portable == pair.bank.names
    src = pair.bank.decision_function(pair.H_A)
    dst = al.bank_.decision_function(pair.H_B, names=pair.bank.names)
    assert np.all(rel_cols(dst, src) <= 1e-5)
    assert f"metric = {metric}" in str(al.report_)


# ---------------------------------------------------------------------------------- input types
@pytest.mark.parametrize("seed", [0, 1])
def test_float32_inputs(seed):
    pair32 = readout_equivalent_models(1500, 16, noise=0.0, dtype=np.float32, random_state=seed)
    assert pair32.H_A.dtype == np.float32 and pair32.H_B.dtype == np.float32
    al = QuotientAligner().fit(pair32.bank, pair32.H_A, pair32.H_B)
    assert al.report_.quotient_r2 > 0.99999
    assert al.report_.portable == pair32.bank.names
    src = pair32.bank.decision_function(pair32.H_A)
    dst = al.bank_.decision_function(pair32.H_B)
    assert dst.dtype == np.float64
    assert np.all(rel_cols(dst, src) <= 1e-4)


def test_torch_cpu_tensor_inputs():
    torch = pytest.importorskip("torch")
    pair = readout_equivalent_models(1200, 16, invisible="nonlinear", noise=0.05, random_state=2)
    kw = dict(extra_monitors=pair.extra_monitors)
    ref = quiet_fit(QuotientAligner(unportable="mark"), pair.bank, pair.H_A, pair.H_B, **kw)
    tA, tB = torch.from_numpy(pair.H_A), torch.from_numpy(pair.H_B)
    got = quiet_fit(QuotientAligner(unportable="mark"), pair.bank, tA, tB, **kw)
    assert got.bank_.names == ref.bank_.names
    d_ref = ref.bank_.decision_function(pair.H_B)
    d_got = got.bank_.decision_function(tB)
    # tensor in -> float64 tensor out, on the input's device
    assert isinstance(d_got, torch.Tensor)
    assert d_got.dtype == torch.float64 and d_got.device == tB.device
    assert np.all(rel_cols(d_got.numpy(), d_ref) <= 1e-8)
    assert got.report_.quotient_r2 == pytest.approx(ref.report_.quotient_r2, abs=1e-8)
    for name in ref.bank_.names:
        assert isinstance(got.bank_[name].linear, np.ndarray)
    # float32 tensors too
    got32 = quiet_fit(QuotientAligner(unportable="mark"), pair.bank, tA.float(), tB.float(), **kw)
    assert got32.report_.quotient_r2 == pytest.approx(ref.report_.quotient_r2, abs=1e-4)


# ---------------------------------------------------------------------------------- report
def test_coverage_report_api():
    pair = readout_equivalent_models(800, 16, noise=0.0, random_state=1)
    al = quiet_fit(QuotientAligner(unportable="mark"), pair.bank, pair.H_A, pair.H_B,
                   extra_monitors=pair.extra_monitors)  # fmt: skip
    rep = al.report_
    assert rep.names == pair.bank.names + pair.extra_monitors.names
    assert set(rep.portable) | set(rep.not_portable) == set(rep.names)
    assert rep["linear_0"].in_bank and rep["linear_0"].kind == "linear"
    assert rep["xor_0"].kind == "quadratic"
    with pytest.raises(KeyError, match="nothing"):
        rep["nothing"]
    data = rep.to_dict()
    text = json.dumps(data, allow_nan=False)  # strictly JSON
    back = CoverageReport.from_dict(json.loads(text))
    assert str(back) == str(rep)
    assert back.names == rep.names and back.portable == rep.portable
    for a, b in zip(back.rows, rep.rows):
        assert a.coverage == b.coverage and a.fidelity_r2 == b.fidelity_r2
    assert back.rank == rep.rank == pair.n_visible and back.alpha == rep.alpha
    pd = pytest.importorskip("pandas")
    frame = rep.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == rep.names
    assert frame.loc["outside", "portable"] == rep["outside"].portable


# ---------------------------------------------------------------------------------- baselines
@pytest.mark.parametrize("seed", [0, 1])
def test_few_label_probe(seed):
    pair = readout_equivalent_models(1000, 16, noise=0.0, random_state=seed)
    y = pair.labels[:, 0]
    HB = pair.H_B
    # all labels: the same as a LinearProbeClassifier fitted on everything (gcv for n >= 200)
    full = sp.few_label_probe(HB, y)
    ref = sp.LinearProbeClassifier(cv="gcv").fit(HB, y)
    np.testing.assert_allclose(full.decision_function(HB), ref.decision_function(HB),
                               rtol=1e-10, atol=1e-12)  # fmt: skip
    assert auroc(full.decision_function(HB), y) > 0.8
    # few labels: deterministic for a seed, at least one of each class
    a = sp.few_label_probe(HB, y, 20, random_state=1)
    b = sp.few_label_probe(HB, y, 20, random_state=1)
    c = sp.few_label_probe(HB, y, 20, random_state=2)
    np.testing.assert_array_equal(a.decision_function(HB), b.decision_function(HB))
    assert not np.array_equal(a.decision_function(HB), c.decision_function(HB))
    two = sp.few_label_probe(HB, y, 2, random_state=0)
    assert set(two.classes_) == {0, 1}
    quad = sp.few_label_probe(HB, pair.labels[:, -1], 300, degree=2)
    assert isinstance(quad, sp.QuadraticProbeClassifier)
    # the monitor can go into a bank next to the transferred ones
    assert ProbeBank({"few": a}).n_features_in_ == HB.shape[1]
    with pytest.raises(ValueError, match="classes"):
        sp.few_label_probe(HB, y, 1)
    with pytest.raises(ValueError, match="single class"):
        sp.few_label_probe(HB, np.zeros(len(y)))
    with pytest.raises(ValueError, match="degree"):
        sp.few_label_probe(HB, y, 50, degree=3)
    with pytest.raises(ValueError, match="rows"):
        sp.few_label_probe(HB, y[:-1])


def test_compare_transfer_basics():
    pair = readout_equivalent_models(1200, 16, invisible="nonlinear", noise=0.05,
                                     random_state=3)  # fmt: skip
    cmp = sp.compare_transfer(pair.bank, pair.H_A, pair.H_B, pair.labels, n_labels=(16, 64))
    methods = list(dict.fromkeys(r["method"] for r in cmp.rows))
    assert methods[0] == "transfer: quotient"
    assert "few labels on B: 16" in methods and "few labels on B: 64" in methods
    m = len(pair.bank)
    for meth in methods:
        rows = [r for r in cmp.rows if r["method"] == meth]
        assert [r["monitor"] for r in rows] == pair.bank.names
        assert len(rows) == m
    few = [r for r in cmp.rows if r["method"].startswith("few labels")]
    assert all(np.isnan(r["fidelity_r2"]) for r in few)
    assert all(0.0 <= r["auroc"] <= 1.0 for r in few)
    # the source AUROC is the same on every row of a monitor (same held-out pairs)
    for name in pair.bank.names:
        vals = {round(r["source_auroc"], 12) for r in cmp.rows if r["monitor"] == name}
        assert len(vals) == 1
    # the quotient transfer agrees with a direct aligner fit on the same split (without the
    # refit on all pairs, the returned bank is the map of the held-out figures)
    al = QuotientAligner(refit=False).fit(pair.bank, pair.H_A, pair.H_B)
    assert cmp.quotient_r2 == pytest.approx(al.report_.quotient_r2, abs=1e-12)
    assert cmp.rank == al.quotient_.rank_
    ho = al.heldout_index_
    dst = al.bank_.decision_function(pair.H_B[ho], names=pair.bank.names)
    q_rows = [r for r in cmp.rows if r["method"] == "transfer: quotient"]
    for j, r in enumerate(q_rows):
        assert r["auroc"] == pytest.approx(auroc(dst[:, j], pair.labels[ho, j]), abs=1e-12)
    assert cmp.mean("transfer: quotient", "auroc") >= 0.98 * cmp.mean("transfer: quotient",
                                                                      "source_auroc")  # fmt: skip
    assert np.isnan(cmp.mean("no such method", "auroc"))
    text = str(cmp)
    assert "transfer: quotient" in text and "few labels on B: 64" in text
    # without labels: no AUROC, transfers still compared
    nolab = sp.compare_transfer(pair.bank, pair.H_A, pair.H_B, targets=("quotient",))
    assert {r["method"] for r in nolab.rows} == {"transfer: quotient"}
    assert all(np.isnan(r["auroc"]) for r in nolab.rows)
    with pytest.raises(ValueError, match="one column per monitor"):
        sp.compare_transfer(pair.bank, pair.H_A, pair.H_B, pair.labels[:, :1])


def test_compare_transfer_needs_a_target():
    pair = _small_pair()
    with pytest.raises(ValueError, match="target"):
        sp.compare_transfer(pair.bank, pair.H_A, pair.H_B, targets=())


@pytest.mark.parametrize("seed", [0, 1])
def test_truncated_quotient_flags_the_monitors_it_drops(seed):
    # rank=2 keeps 2 of the 5 directions the bank reads: the monitors that need the others
    # lose coverage, and for linear monitors the coverage predicts the held-out fidelity
    pair = readout_equivalent_models(3000, 16, noise=0.0, random_state=seed)
    with pytest.warns(UserWarning, match="not reproduced exactly"):
        al = QuotientAligner(rank=2, holdout=0.5, unportable="mark").fit(
            pair.bank, pair.H_A, pair.H_B
        )
    rep = al.report_
    assert rep.rank == 2
    assert any(r.coverage < 0.9 for r in rep.rows)
    for row in rep.rows:
        assert row.portable == (row.coverage >= 0.9 and row.decision_auroc >= 0.97)
        if row.coverage < 0.9:
            assert not row.portable and "coverage" in row.reason
        if row.kind == "linear":
            assert row.fidelity_r2 == pytest.approx(row.coverage, abs=0.1), row


def test_parameter_protocol_and_not_fitted_errors():
    """QuotientAligner and Quotient follow scikit-learn's parameter conventions, and say
    NotFittedError (a ValueError) when used before fit."""
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    al = QuotientAligner("pca", cv=3, min_fidelity=0.8)
    twin = clone(al)
    assert twin is not al and twin.get_params() == al.get_params()
    assert twin.set_params(target="full").target == "full" and al.target == "pca"
    with pytest.raises(ValueError, match="Invalid parameter"):
        al.set_params(no_such_thing=1)
    with pytest.raises(NotFittedError, match="not fitted"):
        al.transform(np.zeros((3, 4)))
    q = Quotient(rank=2)
    assert clone(q).get_params() == {"centre": None, "device": None, "rank": 2, "rtol": 1e-6}
    with pytest.raises(NotFittedError, match="not fitted"):
        q.transform(np.zeros((3, 4)))
    # a refit with other parameters gives the other quotient
    pair = readout_equivalent_models(400, 12, random_state=0)
    with pytest.warns(UserWarning, match="not reproduced exactly"):
        assert q.fit(pair.bank).rank_ == 2
    assert q.set_params(rank=None).fit(pair.bank).rank_ == pair.n_visible

"""PolynomialMonitor and ProbeBank (issue 5): monitors are the polynomials the probes compute.

Every check compares with a plain-numpy evaluation of f(h) = (h-c)^T Q (h-c) + w.(h-c) + b
written here, or with the fitted probe's own decision_function / predict.
"""

from __future__ import annotations

import numpy as np
import pytest
import shallowprobes as sp
from conftest import assert_rel
from shallowprobes import PolynomialMonitor, ProbeBank


# ---------------------------------------------------------------------------------- helpers
def poly_eval(H, w, b=0.0, Q=None, c=None):
    """Plain-numpy reference: (h-c)^T Q (h-c) + w.(h-c) + b, row by row."""
    H = np.asarray(H, dtype=np.float64)
    U = H - (0.0 if c is None else np.asarray(c))
    out = U @ np.asarray(w) + b
    if Q is not None:
        out = out + np.einsum("ni,ij,nj->n", U, np.asarray(Q), U)
    return out


def random_monitor(rng, d, quadratic=True, kind=None):
    w = rng.standard_normal(d)
    Q = rng.standard_normal((d, d)) if quadratic else None
    c = rng.standard_normal(d)
    b = float(rng.standard_normal())
    return PolynomialMonitor(w, b, Q, c, kind), (w, b, Q, c)


def fitting_data(seed, n, d):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, d) + rng.standard_normal(d)
    y = X[:, 0] * X[:, 1] - X[:, 2] + 0.5 * X[:, 3 % d] + 0.3 * rng.standard_normal(n)
    return X, y


def probe_scores(probe, X):
    return probe.decision_function(X) if hasattr(probe, "decision_function") else probe.predict(X)


# ---------------------------------------------------------------------------------- monitors
@pytest.mark.parametrize("seed,d", [(0, 3), (1, 7), (2, 16)])
@pytest.mark.parametrize("quadratic", [False, True])
def test_monitor_matches_numpy(seed, d, quadratic):
    rng = np.random.default_rng(seed)
    m, (w, b, Q, c) = random_monitor(rng, d, quadratic)
    H = rng.standard_normal((50, d)) * 3
    Qs = None if Q is None else 0.5 * (Q + Q.T)
    assert_rel(m.decision_function(H), poly_eval(H, w, b, Q, c), 1e-12, "monitor")
    assert_rel(m(H), poly_eval(H, w, b, Qs, c), 1e-12, "__call__ / symmetrised Q")
    assert m.n_features == d
    assert m.degree == (2 if quadratic else 1)
    assert m.kind == ("quadratic" if quadratic else "linear")
    if quadratic:
        np.testing.assert_array_equal(m.quadratic, m.quadratic.T)
    cov = m.covectors()
    assert cov.shape == (d, 1 + (d if quadratic else 0))


def test_monitor_copies_and_is_read_only():
    w = np.array([1.0, 2.0, 3.0])
    m = PolynomialMonitor(w, 0.5)
    w[0] = 100.0
    assert m.linear[0] == 1.0
    with pytest.raises(ValueError):
        m.linear[0] = 5.0
    np.testing.assert_array_equal(m.centre, np.zeros(3))


def test_monitor_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    w, Q, c = rng.standard_normal(4), rng.standard_normal((4, 4)), rng.standard_normal(4)
    m = PolynomialMonitor(torch.tensor(w), torch.tensor(1.5), torch.tensor(Q), torch.tensor(c))
    H = rng.standard_normal((20, 4))
    assert_rel(m(H), poly_eval(H, w, 1.5, Q, c), 1e-12, "torch coefficients")


@pytest.mark.parametrize("seed,d", [(0, 4), (1, 9)])
@pytest.mark.parametrize("quadratic", [False, True])
def test_from_input_coordinates(seed, d, quadratic):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(d)
    Q = rng.standard_normal((d, d)) if quadratic else None
    centre = rng.standard_normal(d) * 5
    m = PolynomialMonitor.from_input_coordinates(w, -0.7, Q, centre=centre)
    H = rng.standard_normal((30, d)) * 2
    assert_rel(m(H), poly_eval(H, w, -0.7, Q), 1e-11, "input coordinates")
    np.testing.assert_allclose(m.centre, centre)
    # the offset is the value at the centre
    assert m.intercept == pytest.approx(poly_eval(centre[None], w, -0.7, Q)[0], rel=1e-12)


@pytest.mark.parametrize("seed,d", [(0, 5), (4, 12)])
@pytest.mark.parametrize("quadratic", [False, True])
def test_recentred_is_the_same_function(seed, d, quadratic):
    rng = np.random.default_rng(seed)
    m, (w, b, Q, c) = random_monitor(rng, d, quadratic, kind="cp" if quadratic else None)
    new_centre = rng.standard_normal(d) * 10
    r = m.recentred(new_centre)
    H = rng.standard_normal((40, d)) * 4
    assert_rel(r(H), poly_eval(H, w, b, Q, c), 1e-11, "recentred")
    np.testing.assert_array_equal(r.centre, new_centre)
    assert r.kind == m.kind
    # intercept = value at the new centre
    assert r.intercept == pytest.approx(poly_eval(new_centre[None], w, b, Q, c)[0], rel=1e-10)
    with pytest.raises(ValueError, match="centre"):
        m.recentred(np.zeros(d + 1))
    with pytest.raises(ValueError, match="NaN"):
        m.recentred(np.full(d, np.nan))


@pytest.mark.parametrize("seed,d,d_new", [(0, 4, 6), (1, 8, 3), (2, 5, 5)])
@pytest.mark.parametrize("quadratic", [False, True])
def test_compose_affine_matches_direct_evaluation(seed, d, d_new, quadratic):
    rng = np.random.default_rng(seed)
    m, (w, b, Q, c) = random_monitor(rng, d, quadratic)
    G = rng.standard_normal((d, d_new))
    offset = rng.standard_normal(d)
    centre = rng.standard_normal(d_new)
    g = m.compose_affine(G, offset, centre)
    X = rng.standard_normal((25, d_new)) * 3
    mapped = (X - centre) @ G.T + offset
    assert_rel(g(X), poly_eval(mapped, w, b, Q, c), 1e-11, "compose_affine")
    assert g.n_features == d_new
    assert g.kind == m.kind
    with pytest.raises(ValueError, match="G must have shape"):
        m.compose_affine(np.zeros((d + 1, d_new)), offset, centre)
    with pytest.raises(ValueError, match="offset"):
        m.compose_affine(G, np.zeros(d + 1), centre)
    with pytest.raises(ValueError, match="NaN"):
        m.compose_affine(np.full((d, d_new), np.nan), offset, centre)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(linear=[1.0, np.nan]), "NaN"),
        (dict(linear=[1.0, np.inf]), "NaN or inf"),
        (dict(linear=[1.0, 2.0], quadratic=[[1.0, np.nan], [0.0, 1.0]]), "NaN"),
        (dict(linear=[1.0, 2.0], centre=[np.inf, 0.0]), "NaN"),
        (dict(linear=[1.0, 2.0], intercept=np.nan), "intercept"),
        (dict(linear=[[1.0, 2.0]]), "1-D"),
        (dict(linear=[]), "non-empty"),
        (dict(linear=[1.0, 2.0], quadratic=np.eye(3)), r"shape \(2, 2\)"),
        (dict(linear=[1.0, 2.0], centre=[0.0]), r"shape \(2,\)"),
        (dict(linear=[1.0, 2.0], kind="cubic"), "kind"),
    ],
)
def test_monitor_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolynomialMonitor(**kwargs)


# ---------------------------------------------------------------------------------- from_probe
@pytest.mark.parametrize("seed,n,d", [(0, 300, 5), (1, 500, 9)])
def test_from_probe_regressors(seed, n, d):
    X, y = fitting_data(seed, n, d)
    rng = np.random.default_rng(seed + 100)
    Xt = rng.standard_normal((80, d)) * 2
    probes = {
        "lin": sp.LinearProbe().fit(X, y),
        "lin_whiten": sp.LinearProbe(metric="whiten").fit(X, y),
        "quad": sp.QuadraticProbe().fit(X, y),
        "quad_std": sp.QuadraticProbe(metric="standardize").fit(X, y),
        "cp": sp.CPProbe(rank=2, random_state=0).fit(X, y),
    }
    for name, probe in probes.items():
        m = PolynomialMonitor.from_probe(probe)
        assert_rel(m(Xt), probe.predict(Xt), 1e-9, name)
        assert m.kind == {"lin": "linear", "qua": "quadratic", "cp": "cp"}[name[:3].rstrip("_")]
    bank = ProbeBank(probes)
    scores = bank.decision_function(Xt)
    assert scores.shape == (80, len(probes))
    for j, (name, probe) in enumerate(probes.items()):
        assert_rel(scores[:, j], probe.predict(Xt), 1e-9, f"bank column {name}")


@pytest.mark.parametrize("seed", [0, 1])
def test_from_probe_multi_target_regressors(seed):
    X, y = fitting_data(seed, 400, 6)
    Y = np.column_stack([y, X[:, 0] - X[:, 4], X[:, 5] ** 2])
    Xt = np.random.default_rng(seed).standard_normal((50, 6))
    for probe in (sp.LinearProbe().fit(X, Y), sp.QuadraticProbe().fit(X, Y)):
        bank = ProbeBank({"p": probe})
        assert bank.names == ["p[0]", "p[1]", "p[2]"]
        assert_rel(bank.decision_function(Xt), probe.predict(Xt), 1e-9, type(probe).__name__)
        one = ProbeBank().add("only2", probe, output=2)
        assert one.names == ["only2"]
        assert_rel(one.decision_function(Xt)[:, 0], probe.predict(Xt)[:, 2], 1e-9, "output=2")
        with pytest.raises(IndexError, match="out of range"):
            PolynomialMonitor.from_probe(probe, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "cls", [sp.LinearProbeClassifier, sp.QuadraticProbeClassifier, sp.CPProbeClassifier]
)
def test_from_probe_binary_classifiers(seed, cls):
    X, y = fitting_data(seed, 400, 6)
    labels = np.where(y > np.median(y), "yes", "no")
    params = {"random_state": 0} if cls is sp.CPProbeClassifier else {}
    probe = cls(**params).fit(X, labels)
    Xt = np.random.default_rng(seed).standard_normal((100, 6)) * 1.5
    m = PolynomialMonitor.from_probe(probe)
    dec = np.asarray(probe.decision_function(Xt)).reshape(-1)
    assert_rel(m(Xt), dec, 1e-9, cls.__name__)
    # positive decision value means classes_[1]
    predicted = np.where(m(Xt) > 0, probe.classes_[1], probe.classes_[0])
    np.testing.assert_array_equal(predicted, probe.predict(Xt))
    bank = ProbeBank({"clf": probe})
    assert bank.names == ["clf"]  # a binary classifier is one monitor


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("cls", [sp.LinearProbeClassifier, sp.QuadraticProbeClassifier])
def test_from_probe_multiclass_classifiers(seed, cls):
    X, y = fitting_data(seed, 450, 5)
    labels = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3])) * 10 + 1  # classes 1, 11, 21
    probe = cls().fit(X, labels)
    Xt = np.random.default_rng(seed).standard_normal((90, 5))
    bank = ProbeBank({"c": probe})
    assert bank.names == [f"c[{k}]" for k in probe.classes_]
    S = bank.decision_function(Xt)
    assert_rel(S, probe.decision_function(Xt), 1e-9, cls.__name__)
    np.testing.assert_array_equal(probe.classes_[np.argmax(S, axis=1)], probe.predict(Xt))


# ---------------------------------------------------------------------------------- bank
def _small_bank(d=4, seed=0):
    rng = np.random.default_rng(seed)
    bank = ProbeBank(metadata={"model": "toy"})
    bank.add("a", random_monitor(rng, d, False)[0])
    bank.add("b", random_monitor(rng, d, True)[0])
    return bank


def test_bank_mapping_and_evaluation():
    rng = np.random.default_rng(5)
    bank = _small_bank(d=5)
    H = rng.standard_normal((30, 5))
    assert len(bank) == 2 and list(bank) == ["a", "b"] and bank.names == ["a", "b"]
    assert bank.n_features_in_ == 5
    S = bank.decision_function(H)
    np.testing.assert_allclose(S[:, 0], bank["a"](H), rtol=1e-13)
    np.testing.assert_allclose(S[:, 1], bank["b"](H), rtol=1e-13)
    np.testing.assert_allclose(bank.decision_function(H, names="b")[:, 0], S[:, 1], rtol=1e-13)
    np.testing.assert_allclose(bank.decision_function(H, names=["b", "a"]), S[:, ::-1], rtol=1e-13)
    assert bank.covectors().shape == (5, 1 + 6)
    sub = bank.subset(["b"])
    assert sub.names == ["b"] and sub.metadata == {"model": "toy"}
    with pytest.raises(KeyError, match="no monitor"):
        bank.subset(["zz"])
    with pytest.raises(KeyError, match="'a', 'b'"):
        bank["zz"]
    assert "2 monitors" in repr(bank) and "d=5" in repr(bank)


@pytest.mark.parametrize("kernels", ["default", "numpy, small blocks"])
def test_bank_blocked_evaluation_matches_numpy(monkeypatch, kernels):
    if kernels != "default":
        # the numpy statement, forced into many small row blocks (its real block is 4M
        # entries / d rows); the default is the Rust core wherever the extension is built
        import shallowprobes.backends.numpy_kernels as numpy_kernels
        import shallowprobes.monitors.monitor as monitor_module

        monkeypatch.setattr(numpy_kernels, "_MONITOR_BLOCK_ENTRIES", 64)
        monkeypatch.setattr(monitor_module, "host_kernels", lambda: numpy_kernels)
    rng = np.random.default_rng(11)
    d, n = 6, 1000
    H = rng.standard_normal((n, d)).astype(np.float32)
    m, (w, b, Q, c) = random_monitor(rng, d, True)
    m2, (w2, b2, Q2, c2) = random_monitor(rng, d, True, kind="cp")
    ml, (wl, bl, _, cl) = random_monitor(rng, d, False)
    bank = ProbeBank({"q": m, "l": ml, "q2": m2})
    S = bank.decision_function(H)
    assert_rel(S[:, 0], poly_eval(H, w, b, Q, c), 1e-10, "quadratic, blocked")
    assert_rel(S[:, 1], poly_eval(H, wl, bl, None, cl), 1e-10, "linear, blocked")
    assert_rel(S[:, 2], poly_eval(H, w2, b2, Q2, c2), 1e-10, "cp, blocked")


def _snapshot(bank):
    return [(k, id(v)) for k, v in bank.items()]


def test_bank_bad_inputs_leave_bank_unchanged():
    X, y = fitting_data(0, 200, 4)
    bank = _small_bank(d=4)
    before = _snapshot(bank)
    rng = np.random.default_rng(1)

    with pytest.raises(ValueError, match="already has a monitor named 'a'"):
        bank.add("a", random_monitor(rng, 4, False)[0])
    with pytest.raises(ValueError, match="reads 5-dimensional"):
        bank.add("wide", random_monitor(rng, 5, False)[0])
    with pytest.raises(TypeError, match="non-empty strings"):
        bank.add("", random_monitor(rng, 4, False)[0])
    with pytest.raises(TypeError, match="non-empty strings"):
        bank.add(3, random_monitor(rng, 4, False)[0])
    with pytest.raises(TypeError, match="not a fitted probe"):
        bank.add("junk", np.ones(4))
    with pytest.raises(ValueError, match="single output"):
        bank.add("m1", random_monitor(rng, 4, False)[0], output=1)
    for unfitted in (sp.LinearProbe(), sp.LinearProbeClassifier(), sp.QuadraticProbe(),
                     sp.CPProbe()):  # fmt: skip
        with pytest.raises((TypeError, ValueError), match="fitted"):
            bank.add("unfitted", unfitted)
    # a multi-output probe adds all its monitors or none: "m[1]" clashes
    labels = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
    clf = sp.LinearProbeClassifier().fit(X, labels)
    bank.add("m[1]", random_monitor(rng, 4, False)[0])
    before = _snapshot(bank)
    with pytest.raises(ValueError, match=r"'m\[1\]'"):
        bank.add("m", clf)
    # a probe fitted on another width
    other = sp.LinearProbe().fit(np.hstack([X, X]), y)
    with pytest.raises(ValueError, match="one model/layer"):
        bank.add("other", other)
    assert _snapshot(bank) == before

    with pytest.raises(TypeError, match="mapping"):
        ProbeBank([("a", clf)])
    with pytest.raises(ValueError, match="empty"):
        ProbeBank().decision_function(X)
    with pytest.raises(ValueError, match="empty"):
        _ = ProbeBank().n_features_in_
    with pytest.raises(ValueError):
        bank.decision_function(np.hstack([X, X]))
    with pytest.raises(ValueError):
        bank.decision_function(np.where(X > 1, np.nan, X))


def test_probes_fitted_on_torch_tensors():
    # fitted attributes may be torch tensors (torch backend): the monitors are plain numpy
    torch = pytest.importorskip("torch")
    X, y = fitting_data(7, 300, 5)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    probes = {
        "lin": sp.LinearProbe(backend="torch").fit(Xt, yt),
        "quad": sp.QuadraticProbe(backend="torch").fit(Xt, yt),
        "clf": sp.LinearProbeClassifier(backend="torch").fit(Xt, (yt > 0).long()),
    }
    bank = ProbeBank(probes)
    S = bank.decision_function(X)
    for j, (name, probe) in enumerate(probes.items()):
        assert isinstance(bank[name].linear, np.ndarray)
        ref = probe_scores(probe, Xt)
        ref = ref.cpu().numpy() if hasattr(ref, "cpu") else np.asarray(ref)
        assert_rel(S[:, j], ref.reshape(-1), 1e-9, name)
    # torch input rows too
    np.testing.assert_allclose(bank.decision_function(Xt), S, rtol=1e-12, atol=1e-12)

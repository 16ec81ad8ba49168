"""Saving and loading banks, quotients and transferred banks (issue 5): exact round trips, and
clear errors for damaged bundles (shallowprobes.io)."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import shallowprobes as sp
from shallowprobes import PolynomialMonitor, ProbeBank, Quotient, QuotientAligner
from shallowprobes.datasets import readout_equivalent_models
from shallowprobes.io import FORMAT_VERSION, BundleError


# ---------------------------------------------------------------------------------- fixtures
def fitted_mixed_bank(seed=0, n=300, d=6):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) + rng.standard_normal(d)
    y = X[:, 0] * X[:, 1] + X[:, 2] + 0.2 * rng.standard_normal(n)
    labels = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probes = {
            "lin": sp.LinearProbe().fit(X, y),
            "multi": sp.LinearProbeClassifier().fit(X, labels),
            "quad": sp.QuadraticProbeClassifier().fit(X, y > np.median(y)),
            "cp": sp.CPProbe(rank=2, random_state=0).fit(X, y),
        }
    bank = ProbeBank(probes, metadata={"model": "toy", "layer": 3, "tags": ["a", "b"]})
    bank.add("hand", PolynomialMonitor(rng.standard_normal(d), 0.25, None, rng.standard_normal(d),
                                       info={"note": "hand-made", "score": 0.5}))  # fmt: skip
    return bank, X


@pytest.fixture(scope="module")
def transferred():
    pair = readout_equivalent_models(1000, 16, invisible="nonlinear", noise=0.05, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        al = QuotientAligner(unportable="mark").fit(pair.bank, pair.H_A, pair.H_B,
                                                    extra_monitors=pair.extra_monitors)  # fmt: skip
    return pair, al


def assert_same_bank(a, b, H):
    assert a.names == b.names
    assert a.metadata == b.metadata
    for name in a.names:
        ma, mb = a[name], b[name]
        assert ma.kind == mb.kind and ma.intercept == mb.intercept and ma.info == mb.info
        np.testing.assert_array_equal(ma.linear, mb.linear)
        np.testing.assert_array_equal(ma.centre, mb.centre)
        assert (ma.quadratic is None) == (mb.quadratic is None)
        if ma.quadratic is not None:
            np.testing.assert_array_equal(ma.quadratic, mb.quadratic)
    assert np.array_equal(a.decision_function(H), b.decision_function(H))


# ---------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("seed", [0, 1])
def test_bank_round_trip(tmp_path, seed):
    bank, X = fitted_mixed_bank(seed)
    bank.save(tmp_path / "bank")
    assert sorted(p.name for p in (tmp_path / "bank").iterdir()) == ["bank.json", "bank.npz"]
    loaded = ProbeBank.load(tmp_path / "bank")
    assert_same_bank(bank, loaded, X)
    assert loaded.report is None
    header = json.loads((tmp_path / "bank" / "bank.json").read_text())
    assert header["kind"] == "bank" and header["format_version"] == FORMAT_VERSION
    # no pickle anywhere: the arrays load with allow_pickle=False
    with np.load(tmp_path / "bank" / "bank.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    # saving again into the same folder overwrites cleanly; str paths work too
    loaded.save(str(tmp_path / "bank"))
    assert_same_bank(bank, ProbeBank.load(str(tmp_path / "bank")), X)


def test_quotient_round_trip(tmp_path):
    bank, X = fitted_mixed_bank(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = Quotient(rtol=1e-3).fit(bank)
    q.save(tmp_path / "q")
    q2 = Quotient.load(tmp_path / "q")
    assert q2.rank_ == q.rank_ and q2.rtol == q.rtol and q2.rank == q.rank
    for attr in ("visible_basis_", "invisible_basis_", "singular_values_", "centre_"):
        assert np.array_equal(getattr(q, attr), getattr(q2, attr)), attr
    assert np.array_equal(q.transform(X), q2.transform(X))
    Z = q.transform(X)
    assert np.array_equal(q.monitors_.decision_function(Z), q2.monitors_.decision_function(Z))
    assert q.reproduction_error_ == q2.reproduction_error_
    assert_same_bank(q.bank_, q2.bank_, X)
    assert q2.coverage(bank, reference=X) == q.coverage(bank, reference=X)
    # with an explicit rank
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qr = Quotient(rank=2).fit(bank)
    qr.save(tmp_path / "qr")
    assert Quotient.load(tmp_path / "qr").rank == 2


def test_transferred_bank_round_trip_keeps_report(tmp_path, transferred):
    pair, al = transferred
    al.bank_.save(tmp_path / "moved")
    loaded = ProbeBank.load(tmp_path / "moved")
    assert_same_bank(al.bank_, loaded, pair.H_B)
    assert loaded.report is not None
    assert str(loaded.report) == str(al.report_)
    assert loaded.report.portable == al.report_.portable
    assert loaded.report.not_portable == al.report_.not_portable == ["outside"]
    assert loaded.report.quotient_r2 == al.report_.quotient_r2
    assert loaded.report.full_state_r2 == al.report_.full_state_r2
    assert loaded["outside"].info["portable"] is False


def test_unsaved_quotient_and_bad_destination(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        Quotient().save(tmp_path / "q")
    (tmp_path / "file").write_text("x")
    bank, _ = fitted_mixed_bank()
    with pytest.raises(NotADirectoryError, match="not a directory"):
        bank.save(tmp_path / "file")


# ---------------------------------------------------------------------------------- damage
@pytest.fixture()
def saved_bank(tmp_path):
    bank, X = fitted_mixed_bank(3)
    folder = tmp_path / "bank"
    bank.save(folder)
    return folder


def _rewrite_header(folder: Path, kind: str, edit) -> None:
    path = folder / f"{kind}.json"
    header = json.loads(path.read_text())
    edit(header)
    path.write_text(json.dumps(header))


def _resign(folder: Path, kind: str) -> None:
    """Recompute the recorded checksum (to get past it and reach the next check)."""
    digest = hashlib.sha256((folder / f"{kind}.npz").read_bytes()).hexdigest()
    _rewrite_header(folder, kind, lambda h: h.__setitem__("sha256", digest))


def test_truncated_npz(saved_bank):
    npz = saved_bank / "bank.npz"
    data = npz.read_bytes()
    npz.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="truncated or corrupted"):
        ProbeBank.load(saved_bank)
    # even with a matching checksum, a truncated zip is reported as corrupted
    _resign(saved_bank, "bank")
    with pytest.raises(BundleError, match="corrupted"):
        ProbeBank.load(saved_bank)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_flipped_byte_in_npz(saved_bank, where):
    npz = saved_bank / "bank.npz"
    data = bytearray(npz.read_bytes())
    data[int(where * len(data))] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum"):
        ProbeBank.load(saved_bank)


@pytest.mark.parametrize("text", ["{not json", "", '{"format": "shallowprobes", "kind": "ba'])
def test_garbage_json(saved_bank, text):
    (saved_bank / "bank.json").write_text(text)
    with pytest.raises(BundleError, match="not valid JSON"):
        ProbeBank.load(saved_bank)


def test_json_that_is_not_a_header(saved_bank):
    (saved_bank / "bank.json").write_text(json.dumps([1, 2, 3]))
    with pytest.raises(BundleError, match="not a shallowprobes bundle"):
        ProbeBank.load(saved_bank)
    (saved_bank / "bank.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BundleError, match="JSON"):
        ProbeBank.load(saved_bank)


def test_missing_npz(saved_bank):
    (saved_bank / "bank.npz").unlink()
    with pytest.raises(BundleError, match="missing"):
        ProbeBank.load(saved_bank)


def test_missing_bundle(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ProbeBank.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="bank.json is missing"):
        ProbeBank.load(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="quotient.json is missing"):
        Quotient.load(tmp_path / "empty")


def test_wrong_kind(tmp_path, saved_bank):
    with pytest.raises(BundleError, match="holds a saved 'bank', not a 'quotient'"):
        Quotient.load(saved_bank)
    bank, _ = fitted_mixed_bank(0)
    Quotient().fit(bank.subset(["lin", "hand"])).save(tmp_path / "q")
    with pytest.raises(BundleError, match="holds a saved 'quotient', not a 'bank'"):
        ProbeBank.load(tmp_path / "q")
    # a header that names another kind under the right file name
    _rewrite_header(saved_bank, "bank", lambda h: h.__setitem__("kind", "quotient"))
    with pytest.raises(BundleError, match="not a 'bank'"):
        ProbeBank.load(saved_bank)


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 99])
def test_future_format_version(saved_bank, version):
    _rewrite_header(saved_bank, "bank", lambda h: h.__setitem__("format_version", version))
    with pytest.raises(BundleError, match="Upgrade shallowprobes") as info:
        ProbeBank.load(saved_bank)
    assert f"version {version}" in str(info.value)
    assert f"up to {FORMAT_VERSION}" in str(info.value)


@pytest.mark.parametrize("value", [None, "1", 1.5, True])
def test_invalid_format_version(saved_bank, value):
    _rewrite_header(saved_bank, "bank", lambda h: h.__setitem__("format_version", value))
    with pytest.raises(BundleError, match="format_version"):
        ProbeBank.load(saved_bank)


@pytest.mark.parametrize("field", ["arrays", "sha256", "meta"])
def test_missing_header_field(saved_bank, field):
    _rewrite_header(saved_bank, "bank", lambda h: h.pop(field))
    with pytest.raises(BundleError, match=field):
        ProbeBank.load(saved_bank)


def test_array_path_outside_the_bundle(tmp_path, saved_bank):
    other = tmp_path / "elsewhere.npz"
    other.write_bytes((saved_bank / "bank.npz").read_bytes())
    _rewrite_header(saved_bank, "bank", lambda h: h.__setitem__("arrays", "../elsewhere.npz"))
    with pytest.raises(BundleError, match="missing"):
        ProbeBank.load(saved_bank)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda m: m.pop("names"), "incomplete"),
        (lambda m: m.__setitem__("kinds", m["kinds"][:-1]), "different lengths"),
        (lambda m: m["kinds"].__setitem__(0, "cubic"), "invalid"),
        (lambda m: m["intercepts"].__setitem__(0, "abc"), "invalid"),
        (lambda m: m["names"].__setitem__(1, m["names"][0]), "invalid"),
        (lambda m: m["has_quadratic"].__setitem__(0, True), "missing"),
        (lambda m: m.__setitem__("report", {"rows": 3}), "report"),
        (lambda m: m.__setitem__("report", {"target": "quotient"}), "report"),
    ],
)
def test_inconsistent_bank_metadata(saved_bank, edit, match):
    _rewrite_header(saved_bank, "bank", lambda h: edit(h["meta"]))
    with pytest.raises(BundleError, match=match):
        ProbeBank.load(saved_bank)


def _rewrite_arrays(folder: Path, kind: str, edit) -> None:
    path = folder / f"{kind}.npz"
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    edit(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    _resign(folder, kind)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda a: a.pop("linear_0"), "missing"),
        (lambda a: a.__setitem__("linear_0", np.full_like(a["linear_0"], np.nan)), "NaN"),
        (lambda a: a.__setitem__("linear_0", a["linear_0"][None]), "dimensions"),
        (lambda a: a.__setitem__("centre_0", a["centre_0"][:-1]), "invalid"),
    ],
)
def test_bad_arrays_with_a_valid_checksum(saved_bank, edit, match):
    _rewrite_arrays(saved_bank, "bank", edit)
    with pytest.raises(BundleError, match=match):
        ProbeBank.load(saved_bank)


def test_pickled_arrays_are_refused(saved_bank):
    def add_object(arrays):
        arrays["evil"] = np.array([{"a": 1}], dtype=object)

    _rewrite_arrays(saved_bank, "bank", add_object)
    with pytest.raises(BundleError, match="corrupted"):
        ProbeBank.load(saved_bank)


def test_quotient_damage(tmp_path):
    bank, X = fitted_mixed_bank(4)
    folder = tmp_path / "q"
    Quotient(rtol=1e-3).fit(bank.subset(["lin", "hand", "quad"])).save(folder)
    # basis of the wrong width
    _rewrite_arrays(folder, "quotient",
                    lambda a: a.__setitem__("visible_basis", a["visible_basis"][:-1]))  # fmt: skip
    with pytest.raises(BundleError, match="basis shapes"):
        Quotient.load(folder)
    Quotient(rtol=1e-3).fit(bank.subset(["lin", "hand", "quad"])).save(folder)
    _rewrite_arrays(folder, "quotient", lambda a: a.pop("invisible_basis"))
    with pytest.raises(BundleError, match="invisible_basis"):
        Quotient.load(folder)
    Quotient(rtol=1e-3).fit(bank.subset(["lin", "hand", "quad"])).save(folder)
    _rewrite_header(folder, "quotient", lambda h: h["meta"].pop("bank"))
    with pytest.raises(BundleError, match="incomplete"):
        Quotient.load(folder)
    # the flipped byte and the truncation are caught for quotients too
    Quotient(rtol=1e-3).fit(bank.subset(["lin", "hand", "quad"])).save(folder)
    data = (folder / "quotient.npz").read_bytes()
    (folder / "quotient.npz").write_bytes(data[:-10])
    with pytest.raises(BundleError, match="truncated"):
        Quotient.load(folder)


def test_bundle_error_is_a_value_error():
    assert issubclass(BundleError, ValueError)

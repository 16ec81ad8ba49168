"""Saved files are untrusted input (reliability issue): `SufficientStats.load`, `ProbeBank.load`
and `Quotient.load` hold the .npz / .json they read to an explicit schema (shallowprobes.io).
A file that breaks it raises BundleError naming the file and the field; nothing else escapes.

Part 1: one targeted test per schema rule. Part 2: a hypothesis fuzz test that damages real
saved statistics, banks, quotients and transferred banks and checks that every load either
raises BundleError or returns an object equal to the original (or, for a JSON edit that is a
meaningful but valid change, the object the edited file describes).
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tempfile
import warnings
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import shallowprobes as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shallowprobes import PolynomialMonitor, ProbeBank, Quotient, QuotientAligner, SufficientStats
from shallowprobes.datasets import readout_equivalent_models
from shallowprobes.errors import BundleError
from shallowprobes.io import MAX_JSON_BYTES, MAX_JSON_DEPTH

FIELDS = ("count", "sum_x", "sum_y", "xtx", "xty", "yty")


# ---------------------------------------------------------------------------------- objects
def make_stats(degree=1, n_folds=2, targets=True, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3)) + 5.0
    Y = rng.normal(size=(40, 2)) if targets else None
    return SufficientStats(n_folds, backend="numpy", degree=degree).update(X, Y)


@cache
def make_bank():
    rng = np.random.default_rng(1)
    d = 5
    X = rng.standard_normal((120, d)) + rng.standard_normal(d)
    y = X[:, 0] * X[:, 1] + X[:, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probes = {"lin": sp.LinearProbe().fit(X, y),
                  "quad": sp.QuadraticProbeClassifier().fit(X, y > np.median(y))}  # fmt: skip
    bank = ProbeBank(probes, metadata={"model": "toy", "layer": 3, "tags": ["a", "b"]})
    bank.add("hand", PolynomialMonitor(rng.standard_normal(d), 0.25, None, rng.standard_normal(d),
                                       info={"note": "hand-made", "score": 0.5}))  # fmt: skip
    return bank


@cache
def make_quotient():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = Quotient(rtol=1e-3).fit(make_bank())
    assert q.singular_values_.size == q.n_features_in_  # so a longer singular_values is invalid
    return q


@cache
def make_transferred():
    pair = readout_equivalent_models(400, 8, invisible="nonlinear", noise=0.05, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        al = QuotientAligner(unportable="mark").fit(pair.bank, pair.H_A, pair.H_B,
                                                    extra_monitors=pair.extra_monitors)  # fmt: skip
    assert al.bank_.report is not None
    return al.bank_


def same_stats(a, b):
    if (a.n_folds, a.degree, a.rows_seen, a.n_inputs) != (b.n_folds, b.degree, b.rows_seen,
                                                          b.n_inputs):  # fmt: skip
        return False
    if (a.input_shift is None) != (b.input_shift is None):
        return False
    names = (*FIELDS, "shift_x", "shift_y") + (() if a.input_shift is None else ("input_shift",))
    return all(getattr(a, f).dtype == np.float64 and np.array_equal(getattr(a, f), getattr(b, f))
               for f in names)  # fmt: skip


def same_bank(a, b):
    if a.names != b.names or a.metadata != b.metadata:
        return False
    for name in a.names:
        ma, mb = a[name], b[name]
        if (ma.kind, ma.intercept, ma.info) != (mb.kind, mb.intercept, mb.info):
            return False
        if not (np.array_equal(ma.linear, mb.linear) and np.array_equal(ma.centre, mb.centre)):
            return False
        if (ma.quadratic is None) != (mb.quadratic is None):
            return False
        if ma.quadratic is not None and not np.array_equal(ma.quadratic, mb.quadratic):
            return False
    if (a.report is None) != (b.report is None):
        return False
    return a.report is None or a.report.to_dict() == b.report.to_dict()


def same_quotient(a, b):
    arrays = ("visible_basis_", "invisible_basis_", "singular_values_", "centre_")
    return (
        (a.rtol, a.rank, a.rank_) == (b.rtol, b.rank, b.rank_)
        and all(np.array_equal(getattr(a, k), getattr(b, k)) for k in arrays)
        and same_bank(a.bank_, b.bank_)
    )


# ---------------------------------------------------------------------------------- file helpers
def npz_arrays(data: bytes) -> dict:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=True)
    return buf.getvalue()


def npy_header_only(shape, descr="<f8", data=b"", version=(1, 0)) -> bytes:
    """A .npy member whose header declares `shape` / `descr` whatever data follows."""
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, header)
    else:
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue() + data


def fortran(arr):
    """The same array in Fortran order (np.asfortranarray would make a 0-d array 1-d)."""
    return np.asfortranarray(arr) if arr.ndim >= 2 else arr


def build_npz(members, compression=zipfile.ZIP_STORED) -> bytes:
    """A zip of (key, .npy bytes) members, as np.savez lays it out."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names, on purpose
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for key, raw in members:
                zf.writestr(zipfile.ZipInfo(f"{key}.npy", (1980, 1, 1, 0, 0, 0)), raw,
                            compress_type=compression)  # fmt: skip
    return buf.getvalue()


def patch_central_size(data: bytes, key: str, size: int) -> bytes:
    """Rewrite the uncompressed size the zip central directory declares for member `key`."""
    out = bytearray(data)
    pos = out.find(b"PK\x01\x02")
    while pos >= 0:
        name_len, extra_len, comment_len = struct.unpack("<HHH", out[pos + 28 : pos + 34])
        if out[pos + 46 : pos + 46 + name_len].decode() == f"{key}.npy":
            out[pos + 24 : pos + 28] = struct.pack("<I", size)
            return bytes(out)
        pos = out.find(b"PK\x01\x02", pos + 46 + name_len + extra_len + comment_len)
    raise AssertionError(f"no member {key}")


def resign(folder: Path, kind: str) -> None:
    """Recompute the recorded checksum (to get past it and reach the schema checks)."""
    path = folder / f"{kind}.json"
    header = json.loads(path.read_text())
    header["sha256"] = hashlib.sha256((folder / f"{kind}.npz").read_bytes()).hexdigest()
    path.write_text(json.dumps(header))


def edit_header(folder: Path, kind: str, edit) -> None:
    path = folder / f"{kind}.json"
    header = json.loads(path.read_text())
    edit(header)
    path.write_text(json.dumps(header))


def edit_arrays(folder: Path, kind: str, edit, compression=zipfile.ZIP_STORED) -> None:
    """Rewrite the bundle's npz with members edited by `edit(list of [key, npy bytes])`, then
    re-sign it."""
    path = folder / f"{kind}.npz"
    members = [[k, npy_bytes(v)] for k, v in npz_arrays(path.read_bytes()).items()]
    edit(members)
    path.write_bytes(build_npz(members, compression))
    resign(folder, kind)


def set_member(members, key, raw):
    for m in members:
        if m[0] == key:
            m[1] = raw
            return
    members.append([key, raw])


@pytest.fixture()
def stats_file(tmp_path):
    path = tmp_path / "stats.npz"
    make_stats(degree=2, n_folds=3).save(path)
    return path


def rewrite_stats(path: Path, edit, compression=zipfile.ZIP_STORED) -> Path:
    members = [[k, npy_bytes(v)] for k, v in npz_arrays(path.read_bytes()).items()]
    edit(members)
    path.write_bytes(build_npz(members, compression))
    return path


@pytest.fixture()
def bank_dir(tmp_path):
    folder = tmp_path / "bank"
    make_bank().save(folder)
    return folder


@pytest.fixture()
def quotient_dir(tmp_path):
    folder = tmp_path / "q"
    make_quotient().save(folder)
    return folder


def raises_naming(load, *words):
    """load() raises BundleError whose message contains every word (file, field, ...)."""
    with pytest.raises(BundleError) as info:
        load()
    for word in words:
        assert str(word) in str(info.value), (word, str(info.value))
    return str(info.value)


# ---------------------------------------------------------------------------------- types
def test_json_field_of_the_wrong_type(bank_dir):
    edit_header(bank_dir, "bank", lambda h: h["meta"]["intercepts"].__setitem__(1, "abc"))
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.json", "meta.intercepts[1]", "number")
    edit_header(bank_dir, "bank", lambda h: h["meta"].__setitem__("has_quadratic", "yes"))
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.json", "meta.has_quadratic")
    edit_header(bank_dir, "bank", lambda h: h.__setitem__("sha256", 12))
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.json", "sha256")


def test_json_field_of_the_wrong_type_in_quotient_and_report(tmp_path, quotient_dir):
    edit_header(quotient_dir, "quotient", lambda h: h["meta"].__setitem__("rank", 2.5))
    raises_naming(lambda: Quotient.load(quotient_dir), "quotient.json", "meta.rank", "integer")
    edit_header(quotient_dir, "quotient", lambda h: h["meta"].__setitem__("rank", None))
    edit_header(quotient_dir, "quotient", lambda h: h["meta"].__setitem__("rtol", [1]))
    raises_naming(lambda: Quotient.load(quotient_dir), "quotient.json", "meta.rtol")
    folder = tmp_path / "moved"
    make_transferred().save(folder)
    edit_header(folder, "bank", lambda h: h["meta"]["report"]["rows"][0].__setitem__("in_bank", 1))
    raises_naming(lambda: ProbeBank.load(folder), "bank.json", "meta.report.rows[0].in_bank")


def test_integer_member_of_the_wrong_type(stats_file):
    rewrite_stats(stats_file, lambda m: set_member(m, "n_folds", npy_bytes(np.array(3.0))))
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", "n_folds", "integer")


# ---------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize(
    "key,value",
    [
        ("xtx", np.zeros((3, 9, 8))),  # d differs from shift_x's
        ("count", np.full(4, 10.0)),  # 4 folds where n_folds says 3
        ("sum_y", np.zeros((3, 3))),  # k differs from shift_y's
        ("input_shift", np.zeros(4)),  # 4 inputs make 14 degree-2 features, not 9
        ("yty", np.zeros((3, 2))),  # wrong number of dimensions
    ],
)
def test_stats_shapes_must_agree(stats_file, key, value):
    rewrite_stats(stats_file, lambda m: set_member(m, key, npy_bytes(value)))
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", repr(key))


def test_bank_and_quotient_shapes_must_agree(bank_dir, quotient_dir):
    edit_arrays(bank_dir, "bank", lambda m: set_member(m, "centre_2", npy_bytes(np.zeros(4))))
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.npz", "centre_2", "(5,)")
    square = npy_bytes(np.zeros((5, 5)))
    edit_arrays(quotient_dir, "quotient", lambda m: set_member(m, "invisible_basis", square))
    raises_naming(lambda: Quotient.load(quotient_dir), "quotient.npz", "basis shapes")
    make_quotient().save(quotient_dir)
    edit_arrays(quotient_dir, "quotient",
                lambda m: set_member(m, "singular_values", npy_bytes(np.ones(6))))  # fmt: skip
    raises_naming(lambda: Quotient.load(quotient_dir), "quotient.npz", "singular_values")
    make_quotient().save(quotient_dir)
    rank = make_quotient().rank_
    edit_header(quotient_dir, "quotient", lambda h: h["meta"].__setitem__("rank", rank + 1))
    raises_naming(lambda: Quotient.load(quotient_dir), "quotient.json", "meta.rank")


def test_json_lists_must_agree(bank_dir):
    edit_header(bank_dir, "bank", lambda h: h["meta"]["kinds"].pop())
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.json", "meta.kinds", "different lengths")


# ---------------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("imag", [0.0, 1.0])
def test_complex_arrays_are_refused_never_cast(stats_file, bank_dir, imag):
    xtx = npz_arrays(stats_file.read_bytes())["xtx"].astype(complex) + 1j * imag
    rewrite_stats(stats_file, lambda m: set_member(m, "xtx", npy_bytes(xtx)))
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", "xtx", "complex")
    lin = make_bank()["lin"].linear.astype(complex) + 1j * imag
    edit_arrays(bank_dir, "bank", lambda m: set_member(m, "linear_0", npy_bytes(lin)))
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.npz", "linear_0", "complex")


@pytest.mark.parametrize(
    "value",
    [
        np.zeros((3, 9, 9), dtype=np.int64),
        np.zeros((3, 9, 9), dtype=np.float32),
        np.zeros((3, 9, 9), dtype=bool),
        np.zeros((3, 9, 9), dtype=[("a", "<f8")]),
        np.array([np.zeros(3)] * 3, dtype=object),
    ],
    ids=["int", "float32", "bool", "structured", "object"],
)
def test_float_members_must_be_real_float64(stats_file, value):
    rewrite_stats(stats_file, lambda m: set_member(m, "xtx", npy_bytes(value)))
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", "'xtx'", "dtype")


def test_equivalent_encodings_load_equal(tmp_path):
    """Big-endian float64, Fortran order and a deflated zip are the same numbers: accepted."""
    s = make_stats(degree=2, n_folds=3)
    path = tmp_path / "s.npz"
    s.save(path)
    arrays = npz_arrays(path.read_bytes())
    members = [[k, npy_bytes(fortran(v).astype(v.dtype.newbyteorder(">")))]
               for k, v in arrays.items()]  # fmt: skip
    path.write_bytes(build_npz(members, zipfile.ZIP_DEFLATED))
    assert same_stats(SufficientStats.load(path), s)


# ---------------------------------------------------------------------------------- finiteness
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(stats_file, bank_dir, bad):
    xty = npz_arrays(stats_file.read_bytes())["xty"]
    xty[1, 2, 0] = bad
    rewrite_stats(stats_file, lambda m: set_member(m, "xty", npy_bytes(xty)))
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", "xty", "NaN or inf")
    Q = make_bank()["quad"].quadratic.copy()
    Q[0, 0] = bad
    edit_arrays(bank_dir, "bank", lambda m: set_member(m, "quadratic_1", npy_bytes(Q)))
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.npz", "quadratic_1", "NaN or inf")


def test_non_finite_json_numbers_are_refused(bank_dir):
    path = bank_dir / "bank.json"
    header = json.loads(path.read_text())
    for token in ("NaN", "Infinity", "-Infinity", "1e999"):
        header["meta"]["intercepts"][0] = "@@"
        path.write_text(json.dumps(header).replace('"@@"', token))
        raises_naming(lambda: ProbeBank.load(bank_dir), "bank.json")


def test_huge_values_that_overflow_when_symmetrised(bank_dir):
    Q = make_bank()["quad"].quadratic.copy()
    Q[0, 1], Q[1, 0] = 1.7e308, 1.7e308  # finite, but Q + Q^T is not
    edit_arrays(bank_dir, "bank", lambda m: set_member(m, "quadratic_1", npy_bytes(Q)))
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.json", "quad")


# ---------------------------------------------------------------------------------- non-empty
@pytest.mark.parametrize("count", [np.zeros(3), np.array([4.0, -1.0, 2.0]), np.array([1.5, 1, 1])])
def test_row_counts_must_be_whole_non_negative_and_not_all_zero(stats_file, count):
    rewrite_stats(stats_file, lambda m: set_member(m, "count", npy_bytes(count)))
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", "'count'")


def test_a_quotient_bank_is_never_empty(quotient_dir):
    def empty(header):
        header["meta"]["bank"].update(names=[], kinds=[], has_quadratic=[], intercepts=[],
                                      infos=[])  # fmt: skip

    edit_header(quotient_dir, "quotient", empty)
    raises_naming(lambda: Quotient.load(quotient_dir), "quotient.json", "meta.bank.names")


def test_stats_need_features(stats_file):
    s = make_stats(degree=1, n_folds=1, targets=False)
    s.save(stats_file)

    def no_features(m):
        for key, shape in [("shift_x", (0,)), ("sum_x", (1, 0)), ("xtx", (1, 0, 0)),
                           ("xty", (1, 0, 0))]:  # fmt: skip
            set_member(m, key, npy_bytes(np.zeros(shape)))

    rewrite_stats(stats_file, no_features)
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", "shift_x")


# ---------------------------------------------------------------------------------- known keys
@pytest.mark.parametrize(
    "where,field",
    [
        (lambda h: h, "extra"),
        (lambda h: h["meta"], "meta.extra"),
        (lambda h: h["meta"]["report"], "meta.report.extra"),
        (lambda h: h["meta"]["report"]["rows"][2], "meta.report.rows[2].extra"),
    ],
)
def test_unknown_json_keys_are_refused(tmp_path, where, field):
    folder = tmp_path / "moved"
    make_transferred().save(folder)
    edit_header(folder, "bank", lambda h: where(h).__setitem__("extra", 1))
    raises_naming(lambda: ProbeBank.load(folder), "bank.json", field, "unknown key")


def test_duplicate_json_keys_are_refused(bank_dir):
    path = bank_dir / "bank.json"
    path.write_text(path.read_text().replace("{", '{"kind": "bank", ', 1))
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.json", "twice")


def test_unknown_npz_members_are_refused(stats_file, bank_dir):
    rewrite_stats(stats_file, lambda m: m.append(["extra", npy_bytes(np.zeros(2))]))
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", "unknown member", "extra")
    edit_arrays(bank_dir, "bank", lambda m: m.append(["quadratic_0", npy_bytes(np.eye(5))]))
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.npz", "unknown member", "quadratic_0")
    make_bank().save(bank_dir)
    edit_arrays(bank_dir, "bank", lambda m: m.append(["linear_0", m[0][1]]))  # a duplicate
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.npz", "linear_0", "two members")


def test_missing_npz_member(stats_file):
    rewrite_stats(stats_file, lambda m: m.__delitem__([k for k, _ in m].index("yty")))
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", "'yty'", "missing")


# ---------------------------------------------------------------------------------- JSON depth
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 200_000])
def test_deep_json_is_refused_without_recursion(bank_dir, depth):
    path = bank_dir / "bank.json"
    header = json.loads(path.read_text())
    header["meta"]["metadata"]["deep"] = "@@"
    path.write_text(json.dumps(header).replace('"@@"', "[" * depth + "]" * depth))
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.json", "deeper")


def test_brackets_inside_strings_do_not_count_as_depth(bank_dir):
    bank = make_bank()
    deep_text = ProbeBank(dict(bank), metadata={"s": "[{" * 5000 + '\\"' + "]}" * 10})
    deep_text.save(bank_dir)
    assert ProbeBank.load(bank_dir).metadata == deep_text.metadata


def test_oversized_json_is_refused_before_parsing(bank_dir, monkeypatch):
    monkeypatch.setattr(sp.io.json_schema, "MAX_JSON_BYTES", 100)  # load_json reads it there
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.json", "larger than 100 bytes")
    assert MAX_JSON_BYTES > 1 << 20


def test_save_refuses_metadata_a_load_would_refuse(tmp_path):
    nested: list = []
    for _ in range(MAX_JSON_DEPTH):
        nested = [nested]
    bank = ProbeBank(dict(make_bank()), metadata={"deep": nested})
    with pytest.raises(ValueError, match="deeper"):
        bank.save(tmp_path / "b")
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").iterdir())


# ---------------------------------------------------------------------------------- sizes
class ReadSpy:
    """Counts the bytes decompressed from each zip member."""

    def __init__(self, monkeypatch):
        self.bytes: dict = {}
        original = zipfile.ZipExtFile.read
        spy = self

        def read(ext, n=-1):
            out = original(ext, n)
            spy.bytes[ext.name] = spy.bytes.get(ext.name, 0) + len(out)
            return out

        monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
        monkeypatch.setattr(zipfile.ZipExtFile, "readinto",
                            lambda ext, b: _readinto(ext, b, read))  # fmt: skip


def _readinto(ext, b, read):
    data = read(ext, len(b))
    b[: len(data)] = data
    return len(data)


def test_big_declared_shape_is_refused_before_decompression(stats_file, monkeypatch):
    """A deflated xtx of the wrong (large) shape: refused from its header, never inflated."""
    big = np.zeros((3, 600, 600))  # 8.6 MB of zeros, a few KB deflated
    rewrite_stats(stats_file, lambda m: set_member(m, "xtx", npy_bytes(big)), zipfile.ZIP_DEFLATED)
    assert stats_file.stat().st_size < 100_000
    spy = ReadSpy(monkeypatch)
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", "xtx", "(3, 9, 9)")
    assert spy.bytes["xtx.npy"] <= 20_000


@pytest.mark.parametrize("shape", [(10**12,), (-1,), (2**62, 2**62)])
def test_npy_header_declaring_more_than_the_member_holds(stats_file, shape):
    rewrite_stats(
        stats_file, lambda m: set_member(m, "shift_x", npy_header_only(shape, data=b"\0" * 72))
    )
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", "shift_x")


def test_npy_header_of_an_unsupported_version_or_size(stats_file):
    shift_x = npz_arrays(stats_file.read_bytes())["shift_x"]
    raw = npy_header_only((9,), data=shift_x.astype("<f8").tobytes(), version=(2, 0))
    rewrite_stats(stats_file, lambda m: set_member(m, "shift_x", raw))
    assert same_stats(SufficientStats.load(stats_file), make_stats(degree=2, n_folds=3))
    # a version-2 header that claims to be 2 GB long
    raw = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{" * 100
    rewrite_stats(stats_file, lambda m: set_member(m, "shift_x", raw))
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", "shift_x", "header")


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_declared_uncompressed_size_larger_than_the_member(stats_file, monkeypatch, compression):
    rewrite_stats(stats_file, lambda m: None, compression)
    stats_file.write_bytes(patch_central_size(stats_file.read_bytes(), "xtx", 2**32 - 1))
    spy = ReadSpy(monkeypatch)
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", "xtx", "cannot hold")
    assert "xtx.npy" not in spy.bytes


def test_members_a_load_does_not_need_are_never_decompressed(tmp_path, monkeypatch):
    s = make_stats(degree=1, n_folds=2)
    path = tmp_path / "s.npz"
    s.save(path)
    spy = ReadSpy(monkeypatch)
    assert same_stats(SufficientStats.load(path), s)
    assert spy.bytes["input_shift.npy"] <= 200  # the degree-1 placeholder: its header only
    rewrite_stats(path, lambda m: m.append(["zz_extra", npy_bytes(np.zeros(10_000))]))
    spy.bytes.clear()
    raises_naming(lambda: SufficientStats.load(path), "zz_extra")
    assert spy.bytes == {}  # refused from the central directory alone


# ---------------------------------------------------------------------------------- corrupt files
@pytest.mark.parametrize(
    "content",
    [b"", b"PK\x05\x06" + b"\0" * 18, b"not a zip at all", b"PK\x03\x04" + b"\xff" * 200],
)
def test_corrupt_stats_files(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    raises_naming(lambda: SufficientStats.load(path), "bad.npz")


def test_zip_of_an_unsupported_method_or_version(stats_file):
    rewrite_stats(stats_file, lambda m: None, zipfile.ZIP_BZIP2)
    raises_naming(lambda: SufficientStats.load(stats_file), "stats.npz", "compression")
    make_stats(degree=2, n_folds=3).save(stats_file)
    data = bytearray(stats_file.read_bytes())
    pos = data.find(b"PK\x01\x02")
    data[pos + 6 : pos + 8] = struct.pack("<H", 99)  # "version needed to extract": 9.9
    stats_file.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="stats.npz"):
        SufficientStats.load(stats_file)


def test_not_a_file_and_missing_files(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    raises_naming(lambda: SufficientStats.load(tmp_path / "dir.npz"), "dir.npz", "not a regular")
    with pytest.raises(FileNotFoundError):
        SufficientStats.load(tmp_path / "nowhere.npz")
    with pytest.raises(FileNotFoundError):
        ProbeBank.load(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):
        Quotient.load(tmp_path)


def test_non_utf8_json(bank_dir):
    (bank_dir / "bank.json").write_bytes(b'{"format": "shallowprobes\xff"}')
    raises_naming(lambda: ProbeBank.load(bank_dir), "bank.json", "JSON")


# ---------------------------------------------------------------------------------- failed saves
class Boom(RuntimeError):
    pass


def _exploding_savez(fh, **arrays):
    fh.write(b"PK partial data")
    raise Boom("disk full")


def test_failed_stats_save_leaves_nothing_behind(tmp_path, monkeypatch):
    s = make_stats()
    path = tmp_path / "s.npz"
    s.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(np, "savez", _exploding_savez)
    with pytest.raises(Boom):
        s.save(path)
    with pytest.raises(Boom):
        s.save(tmp_path / "new.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]  # no temporary file
    assert path.read_bytes() == before  # the old file is intact
    monkeypatch.undo()
    s.save(tmp_path / "plain")  # np.savez's rule: .npz is appended
    assert (tmp_path / "plain.npz").is_file()


def test_failed_bundle_save_leaves_nothing_behind(tmp_path, monkeypatch):
    bank = make_bank()
    folder = tmp_path / "bank"
    bank.save(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setattr(np, "savez", _exploding_savez)
    with pytest.raises(Boom):
        bank.save(folder)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    # a failure after the array file was written (the JSON cannot be written)
    bad = ProbeBank(dict(bank), metadata={"x": object()})
    with pytest.raises(TypeError):
        bad.save(folder)
    real_dumps = json.dumps
    calls = []

    def dumps_fails_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Boom("while writing the header")
        return real_dumps(*args, **kwargs)

    monkeypatch.setattr(json, "dumps", dumps_fails_second)
    with pytest.raises(Boom):
        bank.save(folder)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert same_bank(ProbeBank.load(folder), bank)


# ---------------------------------------------------------------------------------- fuzz
# Templates: real saved files, made once. Statistics of degree 1 and 2, 1 to 4 folds, with and
# without targets; a bank of mixed monitors; its quotient; a transferred bank with a report.
STATS_VARIANTS = {
    "stats-d1-k1-y": (1, 1, True), "stats-d1-k3-noy": (1, 3, False),
    "stats-d2-k1-noy": (2, 1, False), "stats-d2-k4-y": (2, 4, True),
}  # fmt: skip
TEMPLATES = (*STATS_VARIANTS, "bank", "quotient", "transferred")


@cache
def template(name):
    """(kind, {file name: bytes}, original object)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if name in STATS_VARIANTS:
            obj = make_stats(*STATS_VARIANTS[name])
            obj.save(folder / "stats.npz")
            kind = "stats"
        else:
            obj = {"bank": make_bank, "quotient": make_quotient,
                   "transferred": make_transferred}[name]()  # fmt: skip
            kind = "quotient" if name == "quotient" else "bank"
            obj.save(folder)
        return kind, {p.name: p.read_bytes() for p in folder.iterdir()}, obj


def load(kind, folder):
    if kind == "stats":
        return SufficientStats.load(folder / "stats.npz")
    return Quotient.load(folder) if kind == "quotient" else ProbeBank.load(folder)


def same(kind, a, b):
    if kind == "stats":
        return same_stats(a, b)
    return same_quotient(a, b) if kind == "quotient" else same_bank(a, b)


def normalised_meta(kind, meta):
    """Bank / quotient metadata with the defaults a load fills in made explicit."""
    meta = json.loads(json.dumps(meta))
    banks = [meta["bank"]] if kind == "quotient" else [meta]
    for bank in banks:
        bank.setdefault("metadata", {})
        bank["infos"] = [info or {} for info in bank.get("infos", [None] * len(bank["names"]))]
        bank["intercepts"] = [float(b) for b in bank["intercepts"]]
        if bank.get("report", 0) is None:
            del bank["report"]
        report = bank.get("report")
        if report is not None:
            report.setdefault("metric", "euclidean")
            report.setdefault("notes", [])
            # report statistics are floats too (alpha, R^2, thresholds); these are the counts
            for key, value in report.items():
                if isinstance(value, int) and not isinstance(value, bool) and key not in (
                    "rank", "n_train", "n_heldout", "n_bootstrap", "n_refit"
                ):
                    report[key] = float(value)
            for row in report["rows"]:
                row.setdefault("reason", "")
                # statistics are floats: an integer written into one (10**30) loads as a float
                for key, value in row.items():
                    if key in ("index", "n", "n_heldout", "rank"):
                        continue
                    if isinstance(value, int) and not isinstance(value, bool):
                        row[key] = float(value)
                    elif isinstance(value, list):  # intervals [lo, hi]: floats as well
                        row[key] = [float(v) if isinstance(v, int) and not isinstance(v, bool)
                                    else v for v in value]  # fmt: skip
    if kind == "quotient":
        meta["rtol"] = float(meta["rtol"])
    return meta


# Values a JSON edit puts in a field: wrong types, huge / negative numbers, NaN, deep nesting.
_DEEP, _NAN, _INF = "@@deep@@", "@@nan@@", "@@inf@@"
JSON_VALUES = ["x", "", 1.5, -1, 0, 7, 10**30, -(10**30), 1e308, [], {}, None, True, False,
               [1, 2], ["linear"], {"k": 1}, _DEEP, _NAN, _INF]  # fmt: skip


def json_paths(obj, prefix=()):
    """Every path to a value in a parsed JSON document (root excluded)."""
    out, stack = [], [(obj, prefix)]
    while stack:
        value, path = stack.pop()
        if path:
            out.append(path)
        if isinstance(value, dict):
            stack += [(v, path + (k,)) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, path + (i,)) for i, v in enumerate(value)]
    return sorted(out, key=repr)


def edited_json(data, text: str) -> str:
    """The header text with one field replaced, removed or added, or a key duplicated."""
    header = json.loads(text)
    action = data.draw(st.sampled_from(["replace", "replace", "remove", "add", "duplicate"]))
    if action == "duplicate":
        return text.replace("{", '{"format": "shallowprobes", ', 1)
    paths = [p for p in json_paths(header) if action != "remove" or not isinstance(p[-1], int)]
    path = data.draw(st.sampled_from(paths))
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    if action == "remove":
        del parent[path[-1]]
    elif action == "add":
        target = parent[path[-1]] if isinstance(parent[path[-1]], dict) else parent
        if isinstance(target, dict):
            target[data.draw(st.sampled_from(["extra", "names", "zzz"]))] = 1
        else:
            target.append(1)
    else:
        parent[path[-1]] = data.draw(st.sampled_from(JSON_VALUES))
    depth = data.draw(st.sampled_from([MAX_JSON_DEPTH - 8, MAX_JSON_DEPTH + 1, 50_000]))
    return (json.dumps(header).replace(f'"{_DEEP}"', "[" * depth + "]" * depth)
            .replace(f'"{_NAN}"', "NaN").replace(f'"{_INF}"', "-Infinity"))  # fmt: skip


# Replacements for one npz member: (name, valid). Valid ones hold the same numbers.
def member_variant(name, arr):
    is_int = arr.dtype.kind in "iu"
    if name == "same":
        return arr
    if name == "big_endian":
        return arr.astype(arr.dtype.newbyteorder(">"))
    if name == "fortran":
        return fortran(arr)
    if name == "int32":
        return arr.astype(np.int32) if is_int else arr.astype(np.int64)
    if name == "float":
        return arr.astype(np.float64) if is_int else arr.astype(np.float32)
    if name == "complex":
        return arr.astype(np.complex128) + (0 if arr.size % 2 else 1j)
    if name == "bool":
        return arr.astype(bool)
    if name == "unicode":
        return arr.astype("U3")
    if name == "object":
        return np.array([arr, None], dtype=object)
    if name == "structured":
        return np.zeros(arr.shape, dtype=[("a", "<f8"), ("b", "<i4")])
    if name == "add_axis":
        return arr[None]
    if name == "grow":
        arr = arr.reshape(1) if arr.ndim == 0 else arr
        return np.concatenate([arr, np.zeros((1,) + arr.shape[1:], arr.dtype)])
    if name in ("nan", "inf"):
        out = arr.astype(np.float64 if is_int else arr.dtype).reshape(-1).copy()
        if out.size == 0:
            out = np.zeros(1)
        out[out.size // 2] = np.nan if name == "nan" else -np.inf
        return out.reshape(arr.shape) if arr.size else out
    raise AssertionError(name)


VALID_VARIANTS = ("same", "big_endian", "fortran")
VARIANTS = (*VALID_VARIANTS, "int32", "float", "complex", "bool", "unicode", "object",
            "structured", "add_axis", "grow", "nan", "inf", "big_shape", "negative_shape",
            "garbage", "truncated", "drop", "extra", "duplicate")  # fmt: skip
OPTIONAL_STATS_MEMBERS = ("rows_seen", "degree", "input_shift")


def edit_members(data, kind, raw: bytes):
    """The npz with one member replaced; returns (bytes, valid: True / False / None=unknown)."""
    arrays = npz_arrays(raw)
    key = data.draw(st.sampled_from(sorted(arrays)))
    variant = data.draw(st.sampled_from(VARIANTS))
    compression = data.draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    arr = arrays[key]
    members = [[k, npy_bytes(v)] for k, v in arrays.items()]
    valid = variant in VALID_VARIANTS or (variant == "int32" and arr.dtype.kind in "iu")
    if variant == "big_shape":
        new = npy_header_only((10**12,) + arr.shape[1:], arr.dtype.str, data=arr.tobytes())
    elif variant == "negative_shape":
        new = npy_header_only((-1,) + arr.shape[1:], arr.dtype.str, data=arr.tobytes())
    elif variant == "garbage":
        new = data.draw(st.binary(max_size=64))
    elif variant == "truncated":
        full = npy_bytes(arr)
        new = full[: data.draw(st.integers(0, len(full) - 1))]
    elif variant in ("drop", "extra", "duplicate"):
        if variant == "drop":
            members = [m for m in members if m[0] != key]
            valid = None if kind == "stats" and key in OPTIONAL_STATS_MEMBERS else False
        elif variant == "extra":
            members.append([f"{key}_extra", npy_bytes(arr)])
        else:
            members.append([key, npy_bytes(arr)])
        return build_npz(members, compression), valid
    else:
        value = member_variant(variant, arr)
        if variant == "nan" and arr.dtype.kind in "iu":
            valid = False  # a float where an integer belongs
        new = npy_bytes(value)
    set_member(members, key, new)
    return build_npz(members, compression), valid


def damage_bytes(data, raw: bytes) -> bytes:
    """Random byte flips, a truncation or appended bytes."""
    action = data.draw(st.sampled_from(["flip", "flip", "truncate", "append"]))
    if not raw:
        action = "append"
    if action == "truncate":
        return raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)))]
    if action == "append":
        return raw + data.draw(st.binary(min_size=1, max_size=64))
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(out) - 1))
        out[pos] ^= data.draw(st.integers(1, 255))
    return bytes(out)


def plain_meta(text: bytes):
    try:
        return json.loads(text)["meta"]
    except Exception:  # noqa: BLE001 - unparseable or not a header: no meta to compare
        return None


def check_one(data):
    name = data.draw(st.sampled_from(TEMPLATES), label="template")
    kind, files, original = template(name)
    files = dict(files)
    npz_name = "stats.npz" if kind == "stats" else f"{kind}.npz"
    json_name = f"{kind}.json"
    valid = True  # True: must load equal; False: must raise; None: either
    if data.draw(st.booleans(), label="edit a member"):
        files[npz_name], valid = edit_members(data, kind, files[npz_name])
    if kind != "stats":
        resign_now = data.draw(st.booleans(), label="re-sign")
        if resign_now:
            header = json.loads(files[json_name])
            header["sha256"] = hashlib.sha256(files[npz_name]).hexdigest()
            files[json_name] = json.dumps(header).encode()
        elif files[npz_name] != template(name)[1][npz_name]:
            valid = False  # the checksum no longer matches
        if data.draw(st.booleans(), label="edit the JSON"):
            files[json_name] = edited_json(data, files[json_name].decode()).encode()
            valid = None  # may be a valid change (or even repair a member edit)
    for _ in range(data.draw(st.sampled_from([0, 0, 0, 1, 1, 2]), label="byte damage")):
        target = npz_name if kind == "stats" else data.draw(st.sampled_from([npz_name, json_name]))
        files[target] = damage_bytes(data, files[target])
        valid = None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for fname, raw in files.items():
            (folder / fname).write_bytes(raw)
        try:
            loaded = load(kind, folder)
        except BundleError as exc:
            assert tmp in str(exc), f"the message does not name the file: {exc}"
            assert valid is not True, f"a valid file was refused: {exc}"
            return
        assert valid is not False, "an invalid file was accepted"
        if kind == "stats" or plain_meta(files[json_name]) == plain_meta(
            template(name)[1][json_name]
        ):
            assert same(kind, loaded, original), "loaded an object that differs from the saved one"
            return
        # a JSON edit that is a valid change: the object must be what the edited file says
        meta = plain_meta(files[json_name])
        assert meta is not None, "loaded a header that is not valid JSON"
        loaded.save(folder / "again")
        again = json.loads((folder / "again" / json_name).read_text())["meta"]
        assert normalised_meta(kind, again) == normalised_meta(kind, meta)


# 600 examples over 7 templates: about 7 s (the whole file about 10 s, on one core).
@settings(max_examples=600, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(data=st.data())
def test_fuzz_damaged_files_raise_bundle_error_or_load_equal(data):
    check_one(data)

"""SufficientStats.save / load, at degree 1 and 2: exact round trips that keep streaming,
format-1 files, and truncated, corrupted or malformed files refused with a ValueError naming
the file."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from _probe_kinds import (
    DEGREES,
    FIELDS,
    assert_ne,
    feature_view,
    features,
    n_features,
    reference_ne,
    stats_of,
)
from shallowprobes import SufficientStats

degrees = pytest.mark.parametrize("degree", DEGREES, ids=["deg1", "deg2"])


def shift_names(degree):
    return ("shift_x", "shift_y") + (("input_shift",) if degree == 2 else ())


@pytest.mark.parametrize("n_folds", [1, 4])
@degrees
def test_save_load_round_trip_is_exact(tmp_path, backend, degree, n_folds):
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(57, 5)) + 100, rng.normal(size=(57, 3))
    s = stats_of(X[:50], Y[:50], n_folds, backend, [(0, 20), (20, 50)], degree=degree)
    path = tmp_path / "stats.npz"
    s.save(path)
    loaded = SufficientStats.load(path, backend=backend)
    assert loaded.degree == degree and loaded.n_folds == n_folds
    assert loaded.n_inputs == 5 and loaded.n_features == n_features(degree, 5)
    assert loaded.n_targets == 3
    assert loaded.rows_seen == s.rows_seen
    for field in (*FIELDS, *shift_names(degree)):
        a, b = getattr(loaded, field), getattr(s, field)
        assert a.dtype == np.float64, field
        np.testing.assert_array_equal(a, b, err_msg=field)
    if degree == 2:
        assert "degree=2" in repr(loaded)
    else:
        assert loaded.input_shift is None
    # the loaded statistics keep streaming identically
    s.update(X[50:], Y[50:])
    loaded.update(X[50:], Y[50:])
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(loaded, field), getattr(s, field), err_msg=field)
    ref = reference_ne(features(degree, X), Y, True)
    assert_ne(feature_view(loaded).normal_equations(True), ref, 1e-9, "loaded")


def test_degree1_files_still_load(tmp_path, backend):
    rng = np.random.default_rng(15)
    X, Y = rng.normal(size=(40, 3)) + 2.0, rng.normal(size=(40, 1))
    s = SufficientStats(backend=backend).update(X, Y)
    current = tmp_path / "current.npz"
    s.save(current)
    # a format-1 file: what shallowprobes wrote before degree-2 statistics existed
    old = tmp_path / "format1.npz"
    np.savez(
        old, format_version=np.array(1), n_folds=np.array(1), rows_seen=np.array(40),
        shift_x=s.shift_x, shift_y=s.shift_y, **{f: getattr(s, f) for f in FIELDS},
    )  # fmt: skip
    for path in (current, old):
        loaded = SufficientStats.load(path, backend=backend)
        assert loaded.degree == 1 and loaded.input_shift is None and loaded.n_inputs == 3
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(loaded, name), getattr(s, name))
        ne, ref = loaded.normal_equations(True), s.normal_equations(True)
        np.testing.assert_array_equal(ne.gram, ref.gram)


# ------------------------------------------------------------------------------ bad files
def _save(tmp_path, degree):
    rng = np.random.default_rng(4)
    s = SufficientStats(2, backend="numpy", degree=degree)
    s.update(rng.normal(size=(40, 4)), rng.normal(size=40))
    path = tmp_path / "good.npz"
    s.save(path)
    return path


@pytest.fixture(params=DEGREES, ids=["deg1", "deg2"])
def saved_stats(request, tmp_path):
    return _save(tmp_path, request.param)


def _arrays(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_load_truncated_file_raises_valueerror(tmp_path, saved_stats, keep):
    data = saved_stats.read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match="truncated.npz"):
        SufficientStats.load(bad)


def test_load_corrupted_bytes_raises_valueerror(tmp_path, saved_stats):
    data = bytearray(saved_stats.read_bytes())
    mid = len(data) // 3
    data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt.npz"):
        SufficientStats.load(bad)


def test_load_not_a_stats_file(tmp_path):
    bad = tmp_path / "other.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a SufficientStats file"):
        SufficientStats.load(bad)
    text = tmp_path / "text.npz"
    text.write_text("hello, not a zip file at all")
    with pytest.raises(ValueError):
        SufficientStats.load(text)


def test_load_wrong_field_shape(tmp_path, saved_stats):
    arrays = _arrays(saved_stats)
    arrays["xtx"] = arrays["xtx"][:, :2]
    bad = tmp_path / "shape.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="corrupt"):
        SufficientStats.load(bad)


# name: (change to the arrays, degrees it applies to, member the message must name or None)
MALFORMED = {
    "missing_shift_y": (lambda a: a.pop("shift_y"), DEGREES, "shift_y"),
    "missing_xty": (lambda a: a.pop("xty"), DEGREES, "xty"),
    "shift_x_length": (lambda a: a.update(shift_x=np.zeros(a["shift_x"].size + 1)), DEGREES, None),
    "shift_y_length": (lambda a: a.update(shift_y=np.zeros(a["shift_y"].size + 2)), DEGREES, None),
    "sum_x_1d": (lambda a: a.update(sum_x=np.zeros(4)), DEGREES, "sum_x"),
    "count_int": (lambda a: a.update(count=a["count"].astype(np.int64)), DEGREES, "count"),
    "n_folds_mismatch": (lambda a: a.update(n_folds=np.array(3)), DEGREES, None),
    "missing_shift": (lambda a: a.pop("input_shift"), (2,), "input_shift"),
    "shift_length": (lambda a: a.update(input_shift=np.zeros(4 + 1)), (2,), "input_shift"),
    "shift_2d": (lambda a: a.update(input_shift=np.zeros((4, 1))), (2,), "input_shift"),
}


@pytest.mark.parametrize(
    ("degree", "problem"),
    [(degree, name) for name in sorted(MALFORMED) for degree in MALFORMED[name][1]],
)
def test_load_malformed_file_raises_valueerror_at_load(tmp_path, degree, problem):
    """A well-formed zip whose arrays are missing or inconsistent is refused by `load` itself
    with a ValueError naming the file (not a KeyError/IndexError, nor an error at first use)."""
    change, _, member = MALFORMED[problem]
    arrays = _arrays(_save(tmp_path, degree))
    change(arrays)
    bad = tmp_path / f"{problem}.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=problem) as info:
        SufficientStats.load(bad)
    if member is not None:
        assert member in str(info.value).replace(str(bad), ""), str(info.value)


def test_load_newer_format_version(tmp_path, saved_stats):
    arrays = _arrays(saved_stats)
    arrays["format_version"] = np.array(int(arrays["format_version"]) + 1)
    newer = tmp_path / "newer.npz"
    np.savez(newer, **arrays)
    with pytest.raises(ValueError, match="newer"):
        SufficientStats.load(newer)


def test_save_format_is_a_plain_npz(tmp_path, saved_stats):
    with zipfile.ZipFile(saved_stats) as zf:
        names = set(zf.namelist())
    assert {f"{f}.npy" for f in (*FIELDS, "shift_x", "shift_y", "input_shift")} <= names
    with np.load(saved_stats, allow_pickle=False) as data:  # no pickle needed
        assert int(data["format_version"]) >= 1

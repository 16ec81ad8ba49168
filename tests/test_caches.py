"""shallowprobes.caches: readers, conversion, memory budget, and bad caches.

Bad caches must fail with a CacheError that names the file and the layer, before any row is
read when the problem is visible from the metadata, and `sweep` must return nothing.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from _sweep_data import bf16, save_safetensors
from shallowprobes import sweep
from shallowprobes.caches import DEFAULT_MEMORY_BUDGET, Segment, open_cache
from shallowprobes.errors import BundleError, CacheError, NonFiniteError, ParameterError


def needs_safetensors():
    """torch (bfloat16 tensors, the independent conversion) and safetensors, or skip."""
    pytest.importorskip("safetensors")
    return pytest.importorskip("torch")


def rows(n=120, d=6, seed=0, offset=0.0):
    return np.random.default_rng(seed).normal(offset, 1.0, size=(n, d))


@pytest.fixture
def no_reads(monkeypatch):
    """Fails the test if any row block is read."""

    def read(seg, start, stop):
        raise AssertionError(f"{seg.where} was read although the cache is invalid")

    monkeypatch.setattr(Segment, "read", read)


def layer_dirs(root, layers):
    for name, shards in layers.items():
        (root / name).mkdir(parents=True)
        for i, arr in enumerate(shards):
            np.save(root / name / f"part_{i}.npy", arr)
    return root


# ---------------------------------------------------------------------------------- reading
def test_bfloat16_blocks_match_torch_conversion(tmp_path):
    torch = needs_safetensors()
    H = rows(300, 7) * np.logspace(-6, 6, 7)  # a wide range of exponents per column
    t, copy = bf16(H)
    save_safetensors(tmp_path / "a.safetensors", {"h": t})
    layer = open_cache(tmp_path / "a.safetensors")["h"]
    assert layer.storage == "bfloat16" and layer.out_dtype == np.float32
    got = np.vstack([layer.read(a, min(a + 37, 300)) for a in range(0, 300, 37)])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.astype(np.float64), copy)
    # the raw bit patterns of a .npy file, with raw_bfloat16=True
    np.save(tmp_path / "raw.npy", t.view(torch.int16).numpy().view(np.uint16))
    raw = open_cache(tmp_path / "raw.npy", raw_bfloat16=True)["raw"]
    np.testing.assert_array_equal(raw.read(0, 300).astype(np.float64), copy)
    with pytest.raises(CacheError, match=r"raw\.npy.*layer 'raw'.*uint16"):
        open_cache(tmp_path / "raw.npy")


def test_float16_and_float64_blocks(tmp_path):
    H = rows(50, 4)
    np.save(tmp_path / "h16.npy", H.astype(np.float16))
    np.save(tmp_path / "h64.npy", H)
    np.save(tmp_path / "big_endian.npy", H.astype(">f4"))
    cache = open_cache(tmp_path)
    b16 = cache.read("h16", 5, 25)
    assert b16.dtype == np.float32
    np.testing.assert_array_equal(b16, H[5:25].astype(np.float16).astype(np.float32))
    b64 = cache.read("h64", 0, 50)
    assert b64.dtype == np.float64 and np.array_equal(b64, H)
    np.testing.assert_array_equal(cache.read("big_endian"), H.astype(np.float32))
    # float16 stays float16 in the stored block: only the read converts
    assert cache["h16"].segments[0].read(0, 3).dtype == np.float16


def test_rows_per_read_counts_stored_and_converted_bytes(tmp_path):
    np.save(tmp_path / "a.npy", rows(10, 100).astype(np.float16))
    np.save(tmp_path / "b.npy", rows(10, 50))
    cache = open_cache(tmp_path)
    assert cache["a"].row_bytes == 100 * (2 + 4)
    assert cache["b"].row_bytes == 50 * (8 + 8)
    assert cache.rows_per_read(6000) == 7  # the widest row (a: 600 bytes... b: 800)
    assert cache.rows_per_read(10) == 1
    assert cache.rows_per_read() == DEFAULT_MEMORY_BUDGET // 800
    for bad in (0, -1, "1GB", None, True):
        with pytest.raises(ParameterError, match="memory_budget"):
            cache.rows_per_read(bad)
    blocks = list(cache.iter_blocks(memory_budget=3 * 800))
    assert [(name, a, b) for name, a, b, _ in blocks][:4] == [
        ("a", 0, 3),
        ("b", 0, 3),
        ("a", 3, 6),
        ("b", 3, 6),
    ]


def test_shards_are_concatenated_in_natural_order(tmp_path):
    H = rows(90, 3)
    layer_dirs(tmp_path, {"layer_1": [H[:10], H[10:11], H[11:90]]})
    # part_0, part_1, part_2 ... and a part_10 that a plain sort would put second
    np.save(tmp_path / "layer_1" / "part_10.npy", H[:5])
    cache = open_cache(tmp_path)
    assert [s.where.rsplit("/", 1)[1] for s in cache["layer_1"].segments] == [
        "part_0.npy",
        "part_1.npy",
        "part_2.npy",
        "part_10.npy",
    ]
    np.testing.assert_array_equal(
        cache.read("layer_1", 0, 95), np.vstack([H, H[:5]]).astype(np.float64)
    )
    np.testing.assert_array_equal(cache.read("layer_1", 8, 13), H[8:13])


# ---------------------------------------------------------------------------------- bad caches
def test_missing_layer(tmp_path, no_reads):
    layer_dirs(tmp_path, {"layer_00": [rows()], "layer_01": [rows()]})
    with pytest.raises(CacheError, match=r"layer_07.*layer_00.*layer_01") as info:
        sweep(tmp_path, {"y": np.arange(120) % 2}, layers=["layer_00", "layer_07"])
    assert str(tmp_path) in str(info.value)
    np.save(tmp_path.parent / "stack.npy", np.zeros((2, 5, 3), np.float32))
    with pytest.raises(CacheError, match=r"no layer\(s\) \[5\].*\[0, 1\]"):
        sweep(tmp_path.parent / "stack.npy", {"y": np.arange(5) % 2}, layers=[5])


def test_layer_directory_without_shards(tmp_path):
    layer_dirs(tmp_path, {"layer_00": [rows()]})
    (tmp_path / "layer_01").mkdir()
    with pytest.raises(CacheError, match=r"layer_01.*layer 'layer_01' has no shard files"):
        open_cache(tmp_path)


def test_row_counts_disagree_between_layers(tmp_path, no_reads):
    np.save(tmp_path / "early.npy", rows(120).astype(np.float16))
    np.save(tmp_path / "late.npy", rows(119).astype(np.float16))
    with pytest.raises(
        CacheError,
        match=r"layer 'early' \(.*early\.npy\) has 120 rows but "
        r"layer 'late' \(.*late\.npy\) has 119",
    ):
        sweep(tmp_path, {"y": np.arange(120) % 2})


def test_row_counts_disagree_with_targets(tmp_path, no_reads):
    layer_dirs(tmp_path, {"layer_00": [rows(60), rows(60)], "layer_01": [rows(120)]})
    with pytest.raises(
        CacheError,
        match=r"target 'concept' has 100 rows but the cache's layers "
        r"have 120 \(layer 'layer_00', .*part_0\.npy",
    ):
        sweep(tmp_path, {"ok": np.arange(120) % 2, "concept": np.arange(100) % 2})


def test_shards_of_one_layer_disagree_on_width_or_dtype(tmp_path):
    layer_dirs(tmp_path, {"layer_00": [rows(10, 6), rows(10, 5)]})
    with pytest.raises(CacheError, match=r"layer 'layer_00'.*part_0\.npy: d=6.*part_1\.npy: d=5"):
        open_cache(tmp_path)
    other = tmp_path.parent / "dtypes"
    layer_dirs(other, {"layer_00": [rows(10), rows(10).astype(np.float16)]})
    with pytest.raises(CacheError, match=r"different dtypes.*float64.*float16"):
        open_cache(other)


def test_truncated_npy(tmp_path, no_reads):
    path = tmp_path / "layer_3.npy"
    np.save(path, rows(200, 8).astype(np.float16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CacheError, match=r"layer_3\.npy: truncated file \(layer 'layer_3'\)"):
        sweep(path, {"y": np.arange(200) % 2})


def test_corrupt_npy_header(tmp_path):
    path = tmp_path / "layer_0.npy"
    np.save(path, rows())
    data = bytearray(path.read_bytes())
    data[:6] = b"garbag"
    path.write_bytes(bytes(data))
    with pytest.raises(
        CacheError, match=r"layer_0\.npy: not a valid \.npy file \(layer 'layer_0'\)"
    ):
        open_cache(path)
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    with pytest.raises(CacheError, match=r"empty\.npy: not a valid \.npy file"):
        open_cache(empty)


def test_truncated_and_corrupt_safetensors(tmp_path, no_reads):
    needs_safetensors()
    path = tmp_path / "model.safetensors"
    t, _ = bf16(rows(100, 8))
    save_safetensors(path, {"layer.1": t})
    data = path.read_bytes()
    path.write_bytes(data[:-64])
    with pytest.raises(CacheError, match=r"model\.safetensors.*layer 'model'"):
        sweep(path, {"y": np.arange(100) % 2})
    # a header whose offsets run past the end of the data, with a valid JSON header
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["layer.1"]["shape"] = [101, 8]
    header["layer.1"]["data_offsets"] = [0, 101 * 8 * 2]
    raw = json.dumps(header).encode()
    (tmp_path / "long.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    with pytest.raises(CacheError, match=r"long\.safetensors"):
        open_cache(tmp_path / "long.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(struct.pack("<Q", 20) + b"{not json at all!!!}" + bytes(64))
    with pytest.raises(CacheError, match=r"garbage\.safetensors.*not a valid \.safetensors"):
        open_cache(garbage)
    assert issubclass(CacheError, BundleError) and issubclass(CacheError, ValueError)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.uint8, np.complex64, np.bool_])
def test_unsupported_npy_dtypes(tmp_path, dtype, no_reads):
    path = tmp_path / "layer_2.npy"
    np.save(path, np.ones((20, 4), dtype=dtype))
    with pytest.raises(
        CacheError,
        match=rf"layer_2\.npy: layer 'layer_2' has dtype "
        rf"{np.dtype(dtype).name}.*not supported",
    ):
        sweep(path, {"y": np.arange(20) % 2})


@pytest.mark.parametrize("dtype", ["int32", "uint8", "float8_e4m3fn"])
def test_unsupported_safetensors_dtypes(tmp_path, dtype):
    torch = needs_safetensors()
    path = tmp_path / "acts.safetensors"
    save_safetensors(path, {"blocks.4": torch.ones(10, 4).to(getattr(torch, dtype))})
    with pytest.raises(
        CacheError,
        match=r"acts\.safetensors: layer 'blocks\.4' has dtype .* not "
        r"supported",
    ):
        open_cache(path)


def test_object_arrays_and_odd_shapes(tmp_path):
    with pytest.raises(CacheError, match=r"layer 'words'.*dtype object"):
        open_cache({"words": np.array([["a", 1]], dtype=object)})
    np.save(tmp_path / "flat.npy", np.zeros(10, np.float32))
    with pytest.raises(CacheError, match=r"flat\.npy: layer 'flat' has shape \(10,\)"):
        open_cache(tmp_path / "flat.npy")
    (tmp_path / "notes.txt").write_text("hi")
    np.save(tmp_path / "good.npy", rows())
    with pytest.raises(CacheError, match=r"notes\.txt: unsupported cache file type"):
        open_cache([tmp_path / "good.npy", tmp_path / "notes.txt"])
    with pytest.raises(CacheError, match="no such file"):
        open_cache(tmp_path / "missing")
    mixed = tmp_path / "mixed"
    (mixed / "layer_0").mkdir(parents=True)
    np.save(mixed / "layer_0" / "a.npy", rows())
    np.save(mixed / "stray.npy", rows())
    with pytest.raises(CacheError, match="both layer directories"):
        open_cache(mixed)


def test_non_finite_rows_name_layer_file_and_rows(tmp_path):
    H = rows(300, 5)
    H[250, 3] = np.nan
    layer_dirs(tmp_path, {"layer_00": [rows(300, 5)], "layer_01": [H[:200], H[200:]]})
    with pytest.raises(
        NonFiniteError,
        match=r"layer 'layer_01' \(.*layer_01/part_1\.npy\), rows "
        r"240:300",
    ):
        sweep(tmp_path, {"y": np.arange(300) % 2}, memory_budget=60 * 5 * 16, degrees=(1, 2))


def test_bad_targets(tmp_path, no_reads):
    np.save(tmp_path / "h.npy", rows(50).astype(np.float32))
    with pytest.raises(ValueError, match="target 'single'.*only one class"):
        sweep(tmp_path / "h.npy", {"single": np.ones(50, int)})
    with pytest.raises(NonFiniteError, match="target 'v'"):
        sweep(tmp_path / "h.npy", {"v": np.r_[np.nan, np.arange(49.0)]})
    with pytest.raises(ParameterError, match="cv='loo'"):
        sweep(tmp_path / "h.npy", {"y": np.arange(50) % 2}, cv="loo")
    with pytest.raises(ParameterError, match="degrees"):
        sweep(tmp_path / "h.npy", {"y": np.arange(50) % 2}, degrees=(3,))

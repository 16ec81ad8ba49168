"""collect_activations on a tiny randomly initialised BERT built offline in the test.

Cache contents are checked against a direct forward pass with output_hidden_states=True,
pooled by hand in numpy, for every pool mode, left and right padding, float32 and
bfloat16/float16; hooks against the modules' own outputs; resume after an interruption
against an uninterrupted run; manifest mismatches and bad inputs raise.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import shallowprobes as sp  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from shallowprobes.collect import (  # noqa: E402
    ModelNotFoundError,
    collect_activations,
    load_row_index,
    load_texts,
)
from shallowprobes.errors import CacheError, ParameterError  # noqa: E402

WORDS = (
    "the a cat dog sat on mat ran fast slow red blue big small bird fish swam flew over under "
    "house tree green old new"
).split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 12)))) for _ in range(n)]


TEXTS = _texts(23)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny BERT and its WordPiece tokenizer, saved with save_pretrained."""
    root = tmp_path_factory.mktemp("tiny_bert")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tok = transformers.BertTokenizerFast(vocab_file=str(vocab))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = transformers.BertModel(config)
    path = root / "model"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _load(path, dtype=None, padding_side="right"):
    model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
    if dtype is not None:
        model = model.to(dtype)
    tok = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    tok.padding_side = padding_side
    return model.eval(), tok


def _bf16_to_np(t):
    return t.float().numpy()


def _direct(model, tok, texts, pool, batch_size, max_length=128, layers=None):
    """{layer index: (rows, d) float32 numpy} from a plain forward pass, pooled in numpy."""
    out: dict = {}
    with torch.inference_mode():
        for a in range(0, len(texts), batch_size):
            enc = tok(texts[a : a + batch_size], padding=True, truncation=True,
                      max_length=max_length, return_tensors="pt")  # fmt: skip
            hs = model(**enc, output_hidden_states=True).hidden_states
            mask = enc["attention_mask"].numpy().astype(bool)
            for i, h in enumerate(hs):
                if layers is not None and i not in layers:
                    continue
                h = _bf16_to_np(h)
                rows = []
                for b in range(h.shape[0]):
                    tokens = h[b][mask[b]]  # non-padding tokens in order
                    if pool == "mean":
                        rows.append(tokens.mean(0, keepdims=True))
                    elif pool == "last":
                        rows.append(tokens[-1:])
                    elif pool in ("cls", "first"):
                        rows.append(tokens[:1])
                    else:
                        rows.append(tokens)
                out.setdefault(i, []).append(np.concatenate(rows))
    return {i: np.concatenate(v) for i, v in out.items()}


def _cast(x: np.ndarray, storage: str) -> np.ndarray:
    """x rounded to the storage dtype (and back to float32)."""
    return torch.from_numpy(np.ascontiguousarray(x)).to(getattr(torch, storage)).float().numpy()


def _read(cache, name):
    return cache.read(name)


# ---------------------------------------------------------------------- contents vs direct
@pytest.mark.parametrize("pool", ["mean", "last", "cls", "none"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_float32_matches_direct_forward(model_dir, tmp_path, pool, side):
    model, tok = _load(model_dir, padding_side=side)
    cache = collect_activations(model, TEXTS, pool=pool, out=tmp_path / "c", batch_size=5,
                                tokenizer=tok, progress=False)  # fmt: skip
    expect = _direct(model, tok, TEXTS, pool, 5)
    assert cache.names == ["0", "1", "2"]
    for i, want in expect.items():
        layer = cache[str(i)]
        assert layer.storage == "float32"
        got = _read(cache, str(i))
        if pool == "mean":
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(got, want)
    if pool == "none":
        text_id, position = load_row_index(tmp_path / "c")
        lengths = [len(tok(t)["input_ids"]) for t in TEXTS]
        assert text_id.tolist() == [i for i, n in enumerate(lengths) for _ in range(n)]
        assert position.tolist() == [p for n in lengths for p in range(n)]
    else:
        assert cache.n_rows == len(TEXTS)


@pytest.mark.parametrize("pool", ["mean", "last", "first", "none"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_bfloat16_model_keeps_bfloat16(model_dir, tmp_path, pool, side):
    model, tok = _load(model_dir, dtype=torch.bfloat16, padding_side=side)
    cache = collect_activations(model, TEXTS, pool=pool, out=tmp_path / "c", batch_size=4,
                                tokenizer=tok, progress=False)  # fmt: skip
    expect = _direct(model, tok, TEXTS, pool, 4)
    for i, want in expect.items():
        assert cache[str(i)].storage == "bfloat16"
        got = _read(cache, str(i))
        if pool == "mean":  # float32 mean of bfloat16 states, rounded to bfloat16 once
            np.testing.assert_allclose(got, _cast(want, "bfloat16"), rtol=8e-3, atol=1e-6)
        else:
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", torch.float64])
def test_dtype_casts_storage(model_dir, tmp_path, dtype):
    cache = collect_activations(model_dir, TEXTS, out=tmp_path / "c", batch_size=8,
                                dtype=dtype, progress=False)  # fmt: skip
    model, tok = _load(model_dir)
    expect = _direct(model, tok, TEXTS, "mean", 8)
    name = str(dtype).replace("torch.", "")
    for i, want in expect.items():
        assert cache[str(i)].storage == name
        got = _read(cache, str(i))
        if name == "float64":
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        else:
            tol = 2e-3 if name == "float16" else 8e-3
            np.testing.assert_allclose(got, _cast(want, name), rtol=tol, atol=1e-4)


def test_layer_selection_and_names(model_dir, tmp_path):
    cache = collect_activations(model_dir, TEXTS, layers=[-1, 0], out=tmp_path / "c",
                                pool="last", progress=False)  # fmt: skip
    assert cache.names == ["2", "0"]
    model, tok = _load(model_dir)
    expect = _direct(model, tok, TEXTS, "last", 16)
    np.testing.assert_array_equal(cache.read("2"), expect[2])
    np.testing.assert_array_equal(cache.read("0"), expect[0])
    # reopening the folder with open_cache reads the same cache
    again = sp.open_cache(tmp_path / "c")
    assert sorted(again.names) == ["0", "2"]
    np.testing.assert_array_equal(again.read("2"), expect[2])


def test_truncation_to_max_length(model_dir, tmp_path):
    long = [" ".join(WORDS * 3), "cat"]
    cache = collect_activations(model_dir, long, out=tmp_path / "c", pool="none",
                                max_length=10, progress=False)  # fmt: skip
    assert cache.n_rows == 10 + 3
    text_id, position = load_row_index(tmp_path / "c")
    assert (text_id == 0).sum() == 10 and position.max() == 9


def test_texts_from_txt_and_jsonl(model_dir, tmp_path):
    txt = tmp_path / "t.txt"
    txt.write_text("\n".join(TEXTS) + "\n\n", encoding="utf-8")
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "id": i}) for i, t in enumerate(TEXTS)))
    assert load_texts(txt) == TEXTS
    assert load_texts(str(jsonl)) == TEXTS
    assert load_texts(np.array(TEXTS)) == TEXTS
    a = collect_activations(model_dir, txt, out=tmp_path / "a", progress=True)  # tqdm bar
    b = collect_activations(model_dir, TEXTS, out=tmp_path / "b", progress=False)
    np.testing.assert_array_equal(a.read("1"), b.read("1"))


# ------------------------------------------------------------------------------------ hooks
def test_hooks_on_named_modules_equal_module_outputs(model_dir, tmp_path):
    model, tok = _load(model_dir)
    names = ["encoder.layer.0.output", "encoder.layer.1.attention", "pooler"]
    seen: dict = {}
    handles = [
        dict(model.named_modules())[n].register_forward_hook(
            lambda _m, _i, o, n=n: seen.setdefault(n, []).append(
                (o[0] if isinstance(o, tuple) else o).float().numpy().copy()
            )
        )
        for n in names
    ]
    encs = []
    with torch.inference_mode():
        for a in range(0, len(TEXTS), 6):
            enc = tok(TEXTS[a : a + 6], padding=True, truncation=True, max_length=128,
                      return_tensors="pt")  # fmt: skip
            encs.append(enc["attention_mask"].numpy().astype(bool))
            model(**enc)
    for h in handles:
        h.remove()
    cache = collect_activations(model, TEXTS, modules=names, out=tmp_path / "c",
                                batch_size=6, progress=False)  # fmt: skip
    assert cache.names == names
    for n in names[:2]:
        want = np.concatenate([
            np.stack([h[b][m[b]].mean(0) for b in range(h.shape[0])])
            for h, m in zip(seen[n], encs)
        ])  # fmt: skip
        np.testing.assert_allclose(cache.read(n), want, rtol=1e-5, atol=1e-6)
    # the pooler gives one vector per input: stored as it is
    np.testing.assert_array_equal(cache.read("pooler"), np.concatenate(seen["pooler"]))
    with pytest.raises(ParameterError, match="pool='none'"):
        collect_activations(model, TEXTS, modules=["pooler"], pool="none",
                            out=tmp_path / "d", progress=False)  # fmt: skip


class _TinyEncoder(torch.nn.Module):
    """Not a transformers model: embeddings, a projection and a nonlinearity."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, 8)
        self.proj = torch.nn.Linear(8, 6)
        self.act = torch.nn.Tanh()

    def forward(self, input_ids, attention_mask):
        return self.act(self.proj(self.embed(input_ids)))


def test_plain_torch_module_with_hooks(model_dir, tmp_path):
    torch.manual_seed(1)
    net = _TinyEncoder(len(VOCAB)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    cache = collect_activations(net, TEXTS, modules=["proj", "act"], tokenizer=tok,
                                pool="last", out=tmp_path / "c", progress=False)  # fmt: skip
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        e = net.embed(enc["input_ids"])
        proj = net.proj(e)
        act = torch.tanh(proj)
    last = enc["attention_mask"].sum(1) - 1
    rows = torch.arange(len(TEXTS))
    np.testing.assert_allclose(cache.read("proj"), proj[rows, last].numpy(), rtol=1e-6)
    np.testing.assert_allclose(cache.read("act"), act[rows, last].numpy(), rtol=1e-6)
    with pytest.raises(ParameterError, match="modules="):
        collect_activations(net, TEXTS, tokenizer=tok, out=tmp_path / "d", progress=False)
    with pytest.raises(ParameterError, match="tokenizer"):
        collect_activations(net, TEXTS, modules=["proj"], out=tmp_path / "e", progress=False)


# ----------------------------------------------------------------------------------- resume
class _Stop(KeyboardInterrupt):
    pass


def _shards(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.safetensors"))


def test_interrupted_collection_resumes_to_same_cache(model_dir, tmp_path):
    model, tok = _load(model_dir)
    full = collect_activations(model, TEXTS, out=tmp_path / "full", batch_size=4,
                               pool="none", progress=False)  # fmt: skip
    calls = {"n": 0}

    def stop_after_three(_m, _i, _o):
        calls["n"] += 1
        if calls["n"] > 3:
            raise _Stop()

    handle = model.encoder.register_forward_hook(stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        collect_activations(model, TEXTS, out=tmp_path / "part", batch_size=4,
                            pool="none", progress=False)  # fmt: skip
    handle.remove()
    part = tmp_path / "part"
    manifest = json.loads((part / "manifest.json").read_text())
    assert manifest["complete"] is False
    assert len(_shards(part)) == 3 * 3  # 3 batches x 3 layers, each file complete
    # a half-written shard from a crash is a temporary file, ignored and replaced
    (part / "1" / "shard_000003.safetensors.tmp-12345").write_bytes(b"garbage")
    calls = {"n": 0}
    counter = model.encoder.register_forward_hook(
        lambda *_: calls.__setitem__("n", calls["n"] + 1)
    )
    resumed = collect_activations(model, TEXTS, out=part, batch_size=4, pool="none",
                                  progress=False)  # fmt: skip
    assert calls["n"] == 6 - 3  # only the missing batches ran
    assert _shards(part) == _shards(tmp_path / "full")
    for name in full.names:
        np.testing.assert_array_equal(resumed.read(name), full.read(name))
    for a, b in zip(load_row_index(part), load_row_index(tmp_path / "full")):
        np.testing.assert_array_equal(a, b)
    # a finished collection returns at once
    calls["n"] = 0
    again = collect_activations(model, TEXTS, out=part, batch_size=4, pool="none",
                                progress=False)  # fmt: skip
    assert calls["n"] == 0 and again.names == full.names
    counter.remove()


def test_manifest_mismatch_raises(model_dir, tmp_path):
    out = tmp_path / "c"
    collect_activations(model_dir, TEXTS, out=out, batch_size=8, progress=False)
    with pytest.raises(CacheError, match="texts"):
        collect_activations(model_dir, TEXTS[:-1], out=out, batch_size=8, progress=False)
    with pytest.raises(CacheError, match="settings.pool"):
        collect_activations(model_dir, TEXTS, out=out, batch_size=8, pool="last",
                            progress=False)  # fmt: skip
    with pytest.raises(CacheError, match="settings.max_length"):
        collect_activations(model_dir, TEXTS, out=out, batch_size=8, max_length=7,
                            progress=False)  # fmt: skip
    with pytest.raises(CacheError, match="settings.batch_size"):
        collect_activations(model_dir, TEXTS, out=out, batch_size=4, progress=False)
    torch.manual_seed(5)
    other = transformers.BertModel(transformers.AutoConfig.from_pretrained(str(model_dir)))
    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    with pytest.raises(CacheError, match="model.parameters_sha256"):
        collect_activations(other, TEXTS, out=out, batch_size=8, tokenizer=tok, progress=False)
    # the same model loaded by the caller resumes the collection made from its path
    model, tok = _load(model_dir)
    calls = {"n": 0}
    h = model.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    collect_activations(model, TEXTS, out=out, batch_size=8, progress=False)
    h.remove()
    assert calls["n"] == 0
    # resume=False starts over with the new settings
    cache = collect_activations(model_dir, TEXTS, out=out, batch_size=4, pool="last",
                                resume=False, progress=False)  # fmt: skip
    model, tok = _load(model_dir)
    np.testing.assert_array_equal(cache.read("2"), _direct(model, tok, TEXTS, "last", 4)[2])


@pytest.fixture(scope="module")
def unbatched(model_dir, tmp_path_factory):
    """The reference: every text alone (no padding at all)."""
    model, tok = _load(model_dir)
    ref = tmp_path_factory.mktemp("ref")
    return model, tok, {
        pool: collect_activations(model, TEXTS, out=ref / pool, batch_size=1, pool=pool,
                                  tokenizer=tok, progress=False)
        for pool in ("mean", "last")
    }  # fmt: skip


# Right padding only: BERT's absolute positions count from the first token, so with left
# padding the number of pads (which depends on the batch) really changes the states.
@settings(max_examples=8, deadline=None)
@given(batch_size=st.integers(2, 25))
def test_batch_size_does_not_change_the_cache(unbatched, tmp_path_factory, batch_size):
    model, tok, ref = unbatched
    out = tmp_path_factory.mktemp("bs")
    for pool, want in ref.items():
        got = collect_activations(model, TEXTS, out=out / pool, batch_size=batch_size,
                                  pool=pool, tokenizer=tok, progress=False)  # fmt: skip
        for name in want.names:  # padding changes the float rounding only
            np.testing.assert_allclose(got.read(name), want.read(name), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------- bad inputs
def test_bad_inputs_raise_clearly(model_dir, tmp_path):
    out = tmp_path / "c"

    def run(**kw):
        args = {"model": model_dir, "texts": TEXTS, "out": out, "progress": False, **kw}
        return collect_activations(**args)

    with pytest.raises(ParameterError, match="empty"):
        run(texts=[])
    with pytest.raises(ParameterError, match="str"):
        run(texts=["a", 3])
    with pytest.raises(ParameterError, match="index 3 does not exist"):
        run(layers=[0, 3])
    with pytest.raises(ParameterError, match="index -4 does not exist"):
        run(layers=-4)
    with pytest.raises(ParameterError, match="twice"):
        run(layers=[2, -1])
    with pytest.raises(ParameterError, match="no module"):
        run(modules=["encoder.layer.9"])
    with pytest.raises(ParameterError, match="pool"):
        run(pool="max")
    with pytest.raises(ParameterError, match="batch_size"):
        run(batch_size=0)
    with pytest.raises(ParameterError, match="dtype"):
        run(dtype="int8")
    with pytest.raises(ParameterError, match="not both"):
        run(layers=[1], modules=["pooler"])
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        run(model=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):
        run(model=str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFoundError, match="config.json"):
        run(model=tmp_path)
    with pytest.raises(ParameterError, match="no tokens"):
        run(texts=["cat", ""], tokenizer=_NoSpecials(model_dir))
    bad = tmp_path / "bad.txt"
    bad.write_text("cat\n\ndog\n")
    with pytest.raises(ParameterError, match="line 2 is blank"):
        run(texts=bad)
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"text": "cat"}\n{"body": "dog"}\n')
    with pytest.raises(ParameterError, match="line 2 has no string field 'text'"):
        run(texts=bad_jsonl)
    other = tmp_path / "full"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(CacheError, match="not empty"):
        run(out=other)
    assert (other / "notes.txt").read_text() == "mine"
    assert not out.exists() or not any(p.suffix == ".safetensors" for p in out.rglob("*"))


class _NoSpecials:
    """A tokenizer without special tokens (an empty text then has no tokens)."""

    padding_side = "right"
    pad_token = "[PAD]"

    def __init__(self, path) -> None:
        self.tok = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)

    def __call__(self, texts, **kw):
        return self.tok(texts, add_special_tokens=False, **kw)

    def __len__(self) -> int:
        return len(self.tok)


# ------------------------------------------------------------------------ probe from cache
def test_sweep_on_collected_cache(model_dir, tmp_path):
    texts = _texts(120, seed=3)
    labels = np.array(["cat" in t.split() for t in texts])
    if labels.all() or not labels.any():
        pytest.skip("degenerate labels")
    cache = collect_activations(model_dir, texts, out=tmp_path / "c", batch_size=32,
                                progress=False)  # fmt: skip
    res = sp.sweep(cache, {"cat": labels}, degrees=(1, 2), split=0.25, verbose=False)
    assert res.layers == ["0", "1", "2"]
    assert len(res.table) == 3 * 2
    for row in res.table:
        assert np.isfinite(row["test_score"])
    # the saved folder sweeps the same as the returned cache
    again = sp.sweep(os.fspath(tmp_path / "c"), {"cat": labels}, degrees=(1,), split=0.25,
                     verbose=False)  # fmt: skip
    a = [r["test_score"] for r in res.table if r["degree"] == 1]
    b = [r["test_score"] for r in again.table]
    np.testing.assert_allclose(a, b)

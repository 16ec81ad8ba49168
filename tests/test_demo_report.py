"""The demo's report: `shallowprobes demo --quick --out DIR` writes report.md, report.json and
figures whose numbers reproduce the paper's synthetic claims."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("demo") / "report"
    run = subprocess.run([sys.executable, "-m", "shallowprobes", "demo", "--quick", "--out",
                          str(out)], capture_output=True, text=True, env=dict(os.environ),
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return out, json.loads((out / "report.json").read_text()), run.stdout


@pytest.mark.slow
def test_degree_two_beats_linear_on_interactions(report):
    _, numbers, _ = report
    for task in ("xor", "circle"):
        row = numbers["tasks"][task]
        assert row["degree 2"] - row["linear"] > 0.3, row
        assert row["CP rank 2"] - row["linear"] > 0.3, row
        assert abs(row["linear"] - row["chance"]) < 0.1, row  # linear stays at chance
    parity = numbers["tasks"]["parity3"]  # degree 3: beyond every degree-2 probe
    assert max(parity["linear"], parity["degree 2"], parity["CP rank 2"]) < 0.6


@pytest.mark.slow
def test_whitened_probes_are_stable_euclidean_are_not(report):
    _, numbers, _ = report
    by_name = {r["estimator"]: r for r in numbers["stability"]}
    for cls in ("LinearProbeClassifier", "QuadraticProbeClassifier"):
        whiten, euclid = by_name[f"{cls}(metric='whiten')"], by_name[f"{cls}(metric='euclidean')"]
        assert whiten["stable"] and whiten["max_change"] < 1e-9
        assert not euclid["stable"] and euclid["max_change"] > 1e-4


@pytest.mark.slow
def test_quotient_transfer_beats_full_state_with_few_pairs(report):
    _, numbers, _ = report
    curve = numbers["transfer_curve"]
    first = 0  # the smallest number of pairs
    assert curve["n_pairs"][first] == min(curve["n_pairs"])
    assert curve["quotient"][first] > curve["full state"][first] + 0.2
    assert curve["quotient"][first] > curve["top-r PCA"][first] + 0.2
    assert curve["quotient"][-1] > 0.9  # and approaches the source monitors with more pairs
    assert curve["source_auroc"] > 0.9


@pytest.mark.slow
def test_report_files_and_figures(report):
    out, numbers, stdout = report
    from matplotlib.image import imread

    md = (out / "report.md").read_text()
    assert set(numbers["figures"]) == {"tasks", "stability", "transfer_curve", "coverage"}
    for name in numbers["figures"].values():
        assert f"]({name})" in md
        img = imread(str(out / name))
        assert img.shape[0] == 450 and img.shape[1] in (800, 900)
    # the tables show the numbers of report.json
    xor = numbers["tasks"]["xor"]
    assert f"| xor | {xor['chance']:.3f} | {xor['linear']:.3f} | {xor['degree 2']:.3f}" in md
    assert "report:" in stdout


def test_text_only_report_without_matplotlib(tmp_path, monkeypatch):
    from shallowprobes.demo_report import write_report

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    results = {"quick": True, "seconds": 1.0,
               "tasks": {"xor": {"chance": 0.5, "linear": 0.5, "degree 2": 1.0, "CP rank 2": 1.0}},
               "transfer_curve": {"n_pairs": [10, 20], "n_test": 5, "source_auroc": 0.9,
                                  "quotient": [0.8, 0.9], "full state": [0.5, 0.5]}}  # fmt: skip
    path = write_report(results, tmp_path)
    md = path.read_text()
    assert "matplotlib is not installed" in md and ".png" not in md
    assert not list(tmp_path.glob("*.png"))
    numbers = json.loads((tmp_path / "report.json").read_text())
    assert numbers["figures"] == {} and numbers["tasks"]["xor"]["degree 2"] == 1.0
    assert "| 10 | 0.800 | 0.500 |" in md

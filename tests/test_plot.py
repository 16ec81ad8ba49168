"""shallowprobes.plot: each figure has the lines / bars / labels it promises and saves a PNG
of figsize x dpi pixels that decodes."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

mpl_image = pytest.importorskip("matplotlib.image")

import shallowprobes as sp  # noqa: E402
from shallowprobes import plot  # noqa: E402
from shallowprobes.stability import Affine, compare_stability  # noqa: E402


def _png_shape(path):
    img = mpl_image.imread(str(path))
    return img.shape[:2]  # (height, width)


@pytest.fixture(scope="module")
def small_sweep():
    rng = np.random.default_rng(0)
    n, d = 300, 5
    Z = rng.normal(size=(n, 3))
    layers = {f"l{i}": Z @ rng.normal(size=(3, d)) + 0.5 * rng.normal(size=(n, d))
              for i in range(3)}  # fmt: skip
    targets = {"sign": (Z[:, 0] > 0).astype(int), "value": Z[:, 1] + 0.1 * rng.normal(size=n)}
    return sp.sweep(layers, targets, degrees=(1, 2), cv=5, verbose=False)


def test_layer_curves_lines_labels_png(small_sweep, tmp_path):
    path = tmp_path / "layers.png"
    fig = plot.layer_curves(small_sweep, path=path, figsize=(6, 3), dpi=50)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["sign", "value"]
    for ax in axes:
        assert len(ax.get_lines()) == 2  # one per degree
        assert ax.get_xlabel() == "layer"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["l0", "l1", "l2"]
        # every point's chosen alpha is written next to it
        texts = [t.get_text() for t in ax.texts]
        assert len(texts) == 6 and all(t.startswith("α=") for t in texts)
    assert "CV score" in axes[0].get_ylabel()
    # the plotted values are the table's cv_score of that target and degree
    rows = [r for r in small_sweep.table.rows if r["target"] == "sign" and r["degree"] == 2]
    np.testing.assert_allclose(axes[0].get_lines()[1].get_ydata(),
                               [r["cv_score"] for r in rows], rtol=0, atol=0)  # fmt: skip
    assert _png_shape(path) == (150, 300)


def test_layer_curves_rejects_unknown_target(small_sweep):
    with pytest.raises(ValueError, match="no target"):
        plot.layer_curves(small_sweep, targets=["nope"])


def test_degree_gap_bars(small_sweep, tmp_path):
    fig = plot.degree_gap(small_sweep, path=tmp_path / "gap.png", figsize=(5, 4), dpi=40)
    ax = fig.get_axes()[0]
    bars = ax.patches
    assert len(bars) == 3 * 2  # layers x targets
    got = {(r["layer"], r["degree"], r["target"]): r["cv_score"] for r in small_sweep.table}
    expected_first = got[("l0", 2, "sign")] - got[("l0", 1, "sign")]
    assert bars[0].get_height() == pytest.approx(expected_first, rel=1e-12)
    assert "degree 2" in ax.get_ylabel() and ax.get_xlabel() == "layer"
    assert _png_shape(tmp_path / "gap.png") == (160, 200)


def test_degree_gap_needs_both_degrees():
    rows = [{"layer": 0, "degree": 1, "target": "a", "cv_score": -1.0}]
    with pytest.raises(ValueError, match="degrees"):
        plot.degree_gap(rows)


def test_alpha_curves_marks_choice_and_grid_edge(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 30))
    y_signal = 0.3 * X @ rng.normal(size=30) + rng.normal(size=80)  # noisy: an inner optimum
    good = sp.LinearProbe(cv=5).fit(X, y_signal)
    assert good.alphas_.min() < good.alpha_ < good.alphas_.max()
    # a grid that stops well below the optimum: the choice is its largest value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        noise = sp.LinearProbe(cv=5, alphas=[0.1, 1.0, 10.0]).fit(X, rng.normal(size=80))
    # the premise of the edge flag: chosen at the top, with the CV score still improving there
    from shallowprobes.sweep_result import grid_edge

    assert noise.alpha_ == pytest.approx(10.0) and grid_edge(noise) == "alpha high"
    fig = plot.alpha_curves({"signal": good, "noise": noise}, path=tmp_path / "a.png")
    ax = fig.get_axes()[0]
    assert len(ax.get_lines()) == 2
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["signal", "noise  (at grid edge)"]
    assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("alpha")
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), np.sort(good.alphas_))
    # the chosen point is drawn where the probe's alpha and best score are
    offsets = ax.collections[0].get_offsets()[0]
    assert offsets[0] == pytest.approx(good.alpha_) and offsets[1] == pytest.approx(
        good.best_score_)
    assert _png_shape(tmp_path / "a.png") == (450, 800)


def _flagged_labels(fig):
    return [t.get_text() for t in fig.get_axes()[0].get_legend().get_texts()
            if t.get_text().endswith("(at grid edge)")]  # fmt: skip


def test_alpha_curves_does_not_flag_a_plateau_at_the_edge():
    # alphas 12 decades below the Gram's eigenvalues: the CV error is flat to round-off over
    # the grid, so the tie goes to its largest value, an edge, but there is no reason to
    # widen the grid
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 6))
    y = X @ rng.normal(size=6) + rng.normal(size=120)
    flat = sp.LinearProbe(cv=5, alphas=[1e-12, 1e-11, 1e-10]).fit(X, y)
    assert flat.alpha_ == pytest.approx(1e-10)  # the premise: chosen at the top edge
    from shallowprobes.sweep_result import grid_edge

    assert grid_edge(flat) is None
    fig = plot.alpha_curves({"flat": flat})
    assert _flagged_labels(fig) == []
    plt = pytest.importorskip("matplotlib.pyplot")
    plt.close(fig)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("per_target", [False, True])
def test_alpha_curves_flags_what_the_tables_flag(seed, per_target):
    """The figure's red crosses agree with `sweep_result.grid_edge`, the rule of the CLI's
    at_grid_edge column and of GridEdgeWarning, target by target."""
    from shallowprobes.sweep_result import grid_edge

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(90, 12))
    # one target with signal, one pure noise (wants a large alpha), one exact (a plateau)
    Y = np.stack([X @ rng.normal(size=12) + rng.normal(size=90), rng.normal(size=90),
                  X[:, 0] - X[:, 1]], axis=1)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = sp.LinearProbe(cv=4, alphas=np.logspace(-8, -1, 6),
                               alpha_per_target=per_target).fit(X, Y)  # fmt: skip
    fig = plot.alpha_curves({"p": probe})
    flagged = {label.split("  ")[0] for label in _flagged_labels(fig)}
    expected = set()
    for t in range(3):
        single = sp.LinearProbe(cv=4, alphas=np.logspace(-8, -1, 6))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            single.fit(X, Y[:, t]) if per_target else None
        if per_target and grid_edge(single) is not None:
            expected.add(f"p[{t}]")
    if not per_target and grid_edge(probe) is not None:
        expected = {f"p[{t}]" for t in range(3)}
    assert flagged == expected
    plt = pytest.importorskip("matplotlib.pyplot")
    plt.close(fig)


def test_alpha_curves_applies_the_edge_rule_to_duck_typed_probes():
    """Objects with only alphas_, alpha_ and cv_results_ (no solution record) are judged by
    the same rule (`solve.ridge.edge_side`) on the curve drawn."""

    class Fitted:
        def __init__(self, scores, alpha):
            self.alphas_ = np.array([1e-3, 1e-2, 1e-1, 1.0])
            self.cv_results_ = {"scores": np.asarray(scores, dtype=float)}
            self.alpha_ = alpha

    rising = Fitted([-4.0, -3.0, -2.0, -1.0], 1.0)  # still improving at the top edge
    plateau = Fitted([-4.0, -3.0, -1.0, -1.0], 1.0)  # at the edge, but flat there
    inner = Fitted([-4.0, -1.0, -2.0, -3.0], 1e-2)
    fig = plot.alpha_curves({"rising": rising, "plateau": plateau, "inner": inner})
    assert _flagged_labels(fig) == ["rising  (at grid edge)"]
    plt = pytest.importorskip("matplotlib.pyplot")
    plt.close(fig)


def test_alpha_curves_needs_fitted_probe():
    with pytest.raises(ValueError, match="alphas_"):
        plot.alpha_curves({"x": sp.LinearProbe()})


@pytest.fixture(scope="module")
def moved():
    from shallowprobes.datasets import readout_equivalent_models

    pair = readout_equivalent_models(1500, 12, n_linear=2, n_quadratic=0, noise=0.05,
                                     random_state=0)  # fmt: skip
    bank = sp.ProbeBank()
    for j, name in enumerate(pair.bank.names):
        bank.add(name, sp.LinearProbeClassifier().fit(pair.H_A[:600], pair.labels[:600, j]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sp.transfer(bank, pair.H_A[600:], pair.H_B[600:], unportable="mark")


def test_transfer_map(moved, tmp_path):
    report = moved.report
    fig = plot.transfer_map(moved, path=tmp_path / "c.png", figsize=(9, 4.5), dpi=60)
    left, heat = fig.get_axes()[:2]
    names = [r.name for r in report.rows]
    assert [t.get_text() for t in left.get_yticklabels()] == names
    assert len(left.collections) >= len(names)  # one dot per monitor (+ the shaded region)
    assert len(heat.texts) == 5 * len(names)  # a value per monitor and statistic
    first = [t.get_text() for t in heat.texts[:5]]
    assert first[0] == "in bank"
    assert first[1] == f"{report.rows[0].decision_auroc:.2f}"
    assert "decision AUROC" in left.get_xlabel()
    assert _png_shape(tmp_path / "c.png") == (270, 540)
    with pytest.raises(TypeError):
        plot.transfer_map(object())


def test_stability_drift(tmp_path):
    from shallowprobes.datasets import make_xor

    task = make_xor(400, 4, seed=0)
    reports = compare_stability(
        {"whiten": sp.LinearProbeClassifier(metric="whiten"),
         "euclidean": sp.LinearProbeClassifier()},
        task.X_train, task.y_train, Affine(), n_draws=2,
    )  # fmt: skip
    fig = plot.stability_drift(reports, path=tmp_path / "s.png")
    ax = fig.get_axes()[0]
    assert len(ax.patches) == 2
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["whiten", "euclidean"]
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths[0] < 1e-6 < widths[1]  # whitened is invariant, euclidean is not
    assert "relative change" in ax.get_xlabel()
    assert _png_shape(tmp_path / "s.png") == (450, 800)


def test_task_accuracy_and_transfer_curve(tmp_path):
    accs = {"xor": {"linear": 0.5, "degree 2": 1.0}, "circle": {"linear": 0.52, "degree 2": 0.99}}
    fig = plot.task_accuracy(accs, chance={"xor": 0.5, "circle": 0.5}, path=tmp_path / "t.png")
    ax = fig.get_axes()[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == [0.5, 0.52, 1.0, 0.99]  # probe by probe, task by task
    assert ax.get_ylabel() == "test accuracy"
    fig = plot.transfer_curve([10, 100], {"a": [0.6, 0.9], "b": [0.5, 0.5]}, reference=0.95,
                              path=tmp_path / "p.png")  # fmt: skip
    ax = fig.get_axes()[0]
    assert len(ax.get_lines()) == 3  # two methods + the reference line
    assert ax.get_xlabel().startswith("paired samples")
    for name in ("t.png", "p.png"):
        assert _png_shape(tmp_path / name) == (450, 800)


def test_missing_matplotlib_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install shallowprobes\[plot\]"):
        plot.transfer_curve([1], {"a": [0.5]})

"""Figures of probe results (needs matplotlib: ``pip install shallowprobes[plot]``).

Every function returns a :class:`matplotlib.figure.Figure` and, with ``path=``, also writes
it as a PNG of ``figsize x dpi`` pixels. Figures are drawn on matplotlib's Agg canvas directly
(no pyplot, no global backend change), so the module works on headless machines and from
threads; in a notebook, ``display(fig)`` shows them.

* `layer_curves` -- score per layer, one line per degree, chosen alpha annotated (a `sweep`).
* `degree_gap` -- degree 2 minus degree 1 score per layer and target (a `sweep`).
* `alpha_curves` -- CV score against alpha per target, the chosen alpha marked and a choice
  at the edge of the grid flagged (fitted probes: ``alphas_``, ``alpha_``, ``cv_results_``).
* `transfer_map` -- coverage / fidelity of each monitor after `shallowprobes.transfer`
  (a `CoverageReport`, or the transferred bank whose ``.report`` it is).
* `stability_drift` -- relative change of held-out outputs under random coordinate changes
  (`shallowprobes.stability.stability_report` / `compare_stability` reports).
* `task_accuracy`, `transfer_curve` -- the demo's bar chart and line plot.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union, cast

import numpy as np

from .solve.ridge import edge_side

__all__ = [
    "layer_curves",
    "degree_gap",
    "alpha_curves",
    "transfer_map",
    "stability_drift",
    "task_accuracy",
    "transfer_curve",
]

PathLike = Union[str, "os.PathLike[str]"]
DEFAULT_FIGSIZE = (8.0, 4.5)
DEFAULT_DPI = 100

_INSTALL = "shallowprobes.plot needs matplotlib: pip install shallowprobes[plot]"


def _new_figure(figsize: Sequence[float], dpi: int, nrows: int = 1, ncols: int = 1,
                **subplot_kw: Any) -> tuple[Any, np.ndarray]:
    """A Figure on an Agg canvas (constrained layout) and its axes as an array."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(_INSTALL) from None
    # matplotlib checks the length (figsize is a public Sequence[float] parameter)
    size = cast("tuple[float, float]", tuple(figsize))
    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def _finish(fig: Any, path: Optional[PathLike]) -> Any:
    if path is not None:
        fig.savefig(os.fspath(path), format="png", dpi=fig.dpi)
    return fig


def _rows_of(result: Any) -> list[dict]:
    """The row dicts of a SweepResult, a SweepTable, a DataFrame or a list of dicts."""
    table = getattr(result, "table", result)
    if hasattr(table, "to_dict") and hasattr(table, "columns"):  # a DataFrame
        return list(table.to_dict("records"))
    rows = getattr(table, "rows", table)
    if not isinstance(rows, Sequence) or not all(isinstance(r, Mapping) for r in rows):
        raise TypeError(
            "expected a SweepResult, SweepTable, DataFrame or list of row dicts, got "
            f"{type(result).__name__}."
        )
    return [dict(r) for r in rows]


def _score_key(rows: list[dict], score: str) -> str:
    if score not in ("auto", "cv_score", "test_score"):
        raise ValueError(f"score must be 'auto', 'cv_score' or 'test_score', got {score!r}.")
    if score == "auto":
        has_test = rows and all(_finite(r.get("test_score")) for r in rows)
        return "test_score" if has_test else "cv_score"
    return score


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _score_label(rows: list[dict], key: str) -> str:
    if key == "test_score":
        metrics = sorted({str(r.get("test_metric")) for r in rows})
        return "test " + " / ".join(m.replace("r2", "R²") for m in metrics)
    return "CV score (−squared error, higher is better)"


def _ordered(values: Any) -> list:
    return list(dict.fromkeys(values))


def layer_curves(
    result: Any,
    *,
    targets: Optional[Sequence[str]] = None,
    score: str = "auto",
    annotate_alpha: bool = True,
    path: Optional[PathLike] = None,
    figsize: Sequence[float] = DEFAULT_FIGSIZE,
    dpi: int = DEFAULT_DPI,
) -> Any:
    """Score per layer, one line per degree, one panel per target.

    result : a `SweepResult` (or its table, a DataFrame of it, or a list of its row dicts).
    targets : which targets to draw (default all, in the sweep's order).
    score : "test_score" (when the sweep had a test split), "cv_score", or "auto" (test
        score when every row has one, else the CV score).
    annotate_alpha : write the chosen alpha next to each point; the degree kept per layer
        (``selected``) is drawn as a filled star.
    """
    rows = _rows_of(result)
    if not rows:
        raise ValueError("layer_curves: the sweep has no rows.")
    key = _score_key(rows, score)
    names = _ordered(r["target"] for r in rows)
    if targets is not None:
        missing = [t for t in targets if t not in names]
        if missing:
            raise ValueError(f"layer_curves: no target(s) {missing} in the sweep; it has {names}.")
        names = list(targets)
    layers = _ordered(r["layer"] for r in rows)
    degrees = sorted({int(r["degree"]) for r in rows})
    fig, axes = _new_figure(figsize, dpi, 1, len(names), sharex=True)
    x_of = {layer: i for i, layer in enumerate(layers)}
    for ax, name in zip(axes[0], names):
        for deg, colour in zip(degrees, ("C0", "C1", "C2")):
            sub = [r for r in rows if r["target"] == name and int(r["degree"]) == deg]
            sub.sort(key=lambda r: x_of[r["layer"]])
            xs = [x_of[r["layer"]] for r in sub]
            ys = [float(r[key]) if _finite(r[key]) else np.nan for r in sub]
            ax.plot(xs, ys, marker="o", color=colour, label=f"degree {deg}")
            sel = [(x, y) for x, y, r in zip(xs, ys, sub) if r.get("selected")]
            if sel:
                ax.scatter(*zip(*sel), marker="*", s=160, color=colour, zorder=3,
                           edgecolors="black", linewidths=0.5)  # fmt: skip
            if annotate_alpha:
                for x, y, r in zip(xs, ys, sub):
                    if _finite(y) and _finite(r.get("alpha")):
                        ax.annotate(f"α={float(r['alpha']):.2g}", (x, y), fontsize=7,
                                    color=colour, textcoords="offset points",
                                    xytext=(4, 6 if deg == degrees[0] else -11))  # fmt: skip
        ax.set_title(str(name))
        ax.set_xlabel("layer")
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels([str(v) for v in layers], rotation=45 if len(layers) > 8 else 0)
        ax.margins(x=0.12, y=0.15)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(_score_label(rows, key))
    axes[0][0].legend(fontsize=8, title="★ = degree kept", title_fontsize=7)
    return _finish(fig, path)


def degree_gap(
    result: Any,
    *,
    score: str = "auto",
    path: Optional[PathLike] = None,
    figsize: Sequence[float] = DEFAULT_FIGSIZE,
    dpi: int = DEFAULT_DPI,
) -> Any:
    """Degree-2 score minus degree-1 score per layer: one group of bars per layer, one bar
    per target (positive: the interaction terms help). Needs a sweep with degrees (1, 2)."""
    rows = _rows_of(result)
    key = _score_key(rows, score)
    got = {(r["layer"], int(r["degree"]), r["target"]): r for r in rows}
    if not {1, 2} <= {d for _, d, _ in got}:
        raise ValueError("degree_gap: the sweep needs degrees (1, 2).")
    layers = _ordered(r["layer"] for r in rows)
    names = _ordered(r["target"] for r in rows)
    fig, axes = _new_figure(figsize, dpi)
    ax = axes[0][0]
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        gaps = []
        for layer in layers:
            r1, r2 = got.get((layer, 1, name)), got.get((layer, 2, name))
            ok = r1 is not None and r2 is not None and _finite(r1[key]) and _finite(r2[key])
            gaps.append(float(r2[key]) - float(r1[key]) if ok else np.nan)  # type: ignore[index]
        xs = np.arange(len(layers)) + (j - (len(names) - 1) / 2) * width
        ax.bar(xs, gaps, width=width, label=str(name))
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels([str(v) for v in layers])
    ax.set_xlabel("layer")
    ax.set_ylabel(f"degree 2 − degree 1 ({'test' if key == 'test_score' else 'CV'} score)")
    ax.set_title("What the degree-2 terms add, per layer")
    ax.legend(fontsize=8, ncol=min(len(names), 4))
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig, path)


def _alpha_edges(probe: Any, alphas: np.ndarray, scores: np.ndarray, chosen: np.ndarray) -> list:
    """Per target column: whether its chosen alpha sits at an edge of the grid where the CV
    score still improves. The probe's own record when it has one (the rule behind its
    GridEdgeWarning and the tables' at_grid_edge column, `solve.ridge.edge_side`), else the
    same rule applied to the curve drawn; a choice at an edge on a plateau is not flagged."""
    solution = getattr(probe, "_solution", None)
    edges = getattr(solution(), "alpha_edges", None) if callable(solution) else None
    if edges is not None and len(edges) == scores.shape[1]:
        return [e is not None for e in edges]
    flags = []
    for j in range(scores.shape[1]):
        at = np.flatnonzero(alphas == chosen[j])
        flags.append(at.size > 0 and edge_side(scores[:, j], alphas, int(at[0])) is not None)
    return flags


def _probe_curves(name: str, probe: Any) -> list[tuple[str, np.ndarray, np.ndarray, float, bool]]:
    """(label, alphas, scores, chosen alpha, at an improving grid edge) per target column of a
    fitted probe."""
    for attr in ("alphas_", "alpha_", "cv_results_"):
        if not hasattr(probe, attr):
            raise ValueError(
                f"alpha_curves: {name!r} has no {attr}; pass fitted probes (CV over alphas)."
            )
    alphas = np.asarray(probe.alphas_, dtype=float).ravel()
    scores = np.asarray(probe.cv_results_["scores"], dtype=float)
    scores = scores.reshape(alphas.size, -1)
    chosen = np.broadcast_to(np.asarray(probe.alpha_, dtype=float).ravel(), (scores.shape[1],))
    edges = _alpha_edges(probe, alphas, scores, chosen)
    if scores.shape[1] == 1:
        return [(name, alphas, scores[:, 0], float(chosen[0]), edges[0])]
    return [(f"{name}[{j}]", alphas, scores[:, j], float(chosen[j]), edges[j])
            for j in range(scores.shape[1])]  # fmt: skip


def alpha_curves(
    probes: Any,
    *,
    relative: bool = False,
    path: Optional[PathLike] = None,
    figsize: Sequence[float] = DEFAULT_FIGSIZE,
    dpi: int = DEFAULT_DPI,
) -> Any:
    """CV score against alpha, one line per target, the chosen alpha marked.

    probes : a fitted probe, or {name: fitted probe} (one line per target column of each).
    relative : draw score minus the best score of each line (targets on different scales).

    A chosen alpha at the first or last grid value, where the score still improves towards
    the edge, is drawn as a red cross and named in the legend ("at grid edge"): the grid
    should be widened there. The rule is the probe's GridEdgeWarning's (and the at_grid_edge
    column of the CLI's tables): a choice at an edge on a plateau of the score is not flagged.
    """
    if not isinstance(probes, Mapping):
        probes = {type(probes).__name__: probes}
    curves = [c for name, p in probes.items() for c in _probe_curves(str(name), p)]
    if not curves:
        raise ValueError("alpha_curves: no probes given.")
    fig, axes = _new_figure(figsize, dpi)
    ax = axes[0][0]
    flagged = []
    for i, (label, alphas, scores, chosen, at_edge) in enumerate(curves):
        ys = scores - np.nanmax(scores) if relative else scores
        order = np.argsort(alphas)
        alphas, ys = alphas[order], ys[order]
        k = int(np.argmin(np.abs(np.log(np.maximum(alphas, 1e-300) / max(chosen, 1e-300)))))
        colour = f"C{i % 10}"
        ax.plot(alphas, ys, color=colour, label=label + ("  (at grid edge)" if at_edge else ""))
        ax.scatter([alphas[k]], [ys[k]], color="red" if at_edge else colour,
                   marker="X" if at_edge else "o", s=70 if at_edge else 40, zorder=3,
                   edgecolors="black", linewidths=0.5)  # fmt: skip
        if at_edge:
            flagged.append(label)
    ax.set_xscale("log")
    ax.set_xlabel("alpha (ridge penalty)")
    ax.set_ylabel("CV score − best" if relative else "CV score (higher is better)")
    title = "CV score against alpha (● chosen"
    title += ", red ✕ = chosen at the edge of the grid)" if flagged else ")"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=1 + len(curves) // 8)
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def transfer_map(
    report: Any,
    *,
    path: Optional[PathLike] = None,
    figsize: Sequence[float] = (9.0, 4.5),
    dpi: int = DEFAULT_DPI,
) -> Any:
    """Coverage and fidelity of every transferred monitor.

    report : a `CoverageReport`, or the bank `shallowprobes.transfer` returned (its
        ``.report``).

    Left: each monitor's decision AUROC on the held-out pairs with its bootstrap interval
    (green: portable, red: not), the verdict's AUROC threshold shaded. Right: a heat map of
    the statistics per monitor (coverage -- "in bank" for the bank's own monitors --,
    decision AUROC, decision agreement, rank correlation, score R²), values written in the
    cells, verdict in the row label; the rows of both panels line up.
    """
    report = getattr(report, "report", report)
    rows = getattr(report, "rows", None)
    if rows is None:
        raise TypeError(f"transfer_map: expected a CoverageReport, got {type(report).__name__}.")
    fig, axes = _new_figure(figsize, dpi, 1, 2, width_ratios=[1, 1.4])
    ax, hm = axes[0]
    n = len(rows)
    ys = np.arange(n)
    dauc = np.array([r.decision_auroc for r in rows], dtype=float)
    ivs = np.array([list(r.decision_auroc_interval) for r in rows], dtype=float).reshape(n, 2)
    min_auc = getattr(report, "min_decision_auroc", None)
    finite = dauc[np.isfinite(dauc)]
    lo_x = min(0.45, float(finite.min()) - 0.03) if finite.size else 0.45
    if min_auc is not None:
        ax.axvspan(min_auc, 1.01, color="green", alpha=0.12, label="portable (AUROC part)")
        ax.axvline(min_auc, color="grey", linestyle="--", linewidth=0.8)
    ax.axvline(0.5, color="black", linestyle=":", linewidth=0.8, label="chance")
    for y, r, x, (lo, hi) in zip(ys, rows, dauc, ivs):
        colour = "tab:green" if r.portable else "tab:red"
        if np.isfinite(lo) and np.isfinite(hi):
            ax.plot([lo, hi], [y, y], color=colour, linewidth=2)
        ax.scatter([x], [y], color=colour, s=45, edgecolors="black", linewidths=0.5, zorder=3)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_yticks(ys)
    ax.set_yticklabels([r.name for r in rows], fontsize=8)
    ax.set_xlim(lo_x, 1.01)
    ax.set_xlabel("decision AUROC, held-out pairs (95% interval)")
    ax.set_title(f"{getattr(report, 'target', '?')} alignment, r = {getattr(report, 'rank', '?')}",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(axis="x", alpha=0.3)

    stats = ["coverage", "decision_auroc", "decision_agreement", "rank_correlation",
             "fidelity_r2"]  # fmt: skip
    heads = ["coverage", "dec. AUROC", "agreement", "rank corr", "score R²"]
    M = np.array([[getattr(r, s) for s in stats] for r in rows], dtype=float)
    im = hm.imshow(np.clip(M, 0, 1), vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            if j == 0 and not rows[i].coverage_measured:
                text = "in bank"
            else:
                text = "n/a" if not np.isfinite(M[i, j]) else f"{M[i, j]:.2f}"
            hm.text(j, i, text, ha="center", va="center", fontsize=7)
    hm.set_xticks(range(len(heads)))
    hm.set_xticklabels(heads, rotation=30, ha="right", fontsize=8)
    hm.set_yticks(range(len(rows)))
    hm.set_yticklabels([f"{r.name} ({'ok' if r.portable else 'NOT portable'})" for r in rows],
                       fontsize=8)  # fmt: skip
    hm.set_title("held-out fidelity per monitor", fontsize=10)
    fig.colorbar(im, ax=hm, shrink=0.8)
    return _finish(fig, path)


def stability_drift(
    reports: Any,
    *,
    tol: float = 1e-6,
    path: Optional[PathLike] = None,
    figsize: Sequence[float] = DEFAULT_FIGSIZE,
    dpi: int = DEFAULT_DPI,
) -> Any:
    """Relative change of held-out outputs under random coordinate changes, per estimator.

    reports : StabilityReport objects (a list, or {label: report}; `compare_stability`'s list).
    One horizontal bar per report (its worst draw, ``max_change``, log scale), each draw as a
    dot, and the tolerance ``tol`` as a dashed line: bars left of it are invariant up to
    round-off. Changes of exactly 0 are drawn at 1e-17.
    """
    if isinstance(reports, Mapping):
        labels, reps = [str(k) for k in reports], list(reports.values())
    else:
        reps = [reports] if hasattr(reports, "max_change") else list(reports)
        same_group = len({r.group for r in reps}) == 1
        labels = [r.estimator if same_group else f"{r.estimator} [{r.group}]" for r in reps]
    if not reps:
        raise ValueError("stability_drift: no reports given.")
    floor = 1e-17
    fig, axes = _new_figure(figsize, dpi)
    ax = axes[0][0]
    ys = np.arange(len(reps))[::-1]
    worst = np.array([max(float(r.max_change), floor) for r in reps])
    colours = ["tab:green" if w <= tol else "tab:red" for w in worst]
    ax.barh(ys, worst, color=colours, alpha=0.7, left=floor)
    for y, r in zip(ys, reps):
        draws = np.maximum(np.asarray(r.per_draw_change, dtype=float), floor)
        ax.scatter(draws, np.full(draws.shape, y), color="black", s=12, zorder=3)
    ax.axvline(tol, color="grey", linestyle="--", linewidth=1)
    ax.text(tol, ys[0] + 0.45, f" tol {tol:g}", fontsize=8, va="bottom", color="grey")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="tab:green", alpha=0.7, label="invariant (≤ tol)"),
                       Patch(color="tab:red", alpha=0.7, label="coordinate-dependent")],
              fontsize=7, loc="upper left", bbox_to_anchor=(0.22, 1.0))  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlim(floor, max(1.0, float(worst.max()) * 3))
    ax.set_ylim(-0.6, len(reps) - 0.2)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("relative change of held-out outputs (bar: worst draw, dots: each draw)")
    group = reps[0].group
    ax.set_title(f"Refit after random {group} maps (condition ≤ {reps[0].condition:g})",
                 fontsize=10)  # fmt: skip
    ax.grid(axis="x", alpha=0.3)
    return _finish(fig, path)


def task_accuracy(
    accuracies: Mapping[str, Mapping[str, float]],
    *,
    chance: Optional[Mapping[str, float]] = None,
    title: Optional[str] = None,
    path: Optional[PathLike] = None,
    figsize: Sequence[float] = DEFAULT_FIGSIZE,
    dpi: int = DEFAULT_DPI,
) -> Any:
    """Grouped bars of test accuracy: {task: {probe: accuracy}}, one group per task, one bar
    container per probe; ``chance`` ({task: accuracy}) is drawn as a dashed segment."""
    tasks = list(accuracies)
    probes = _ordered(p for t in tasks for p in accuracies[t])
    fig, axes = _new_figure(figsize, dpi)
    ax = axes[0][0]
    width = 0.8 / max(len(probes), 1)
    for j, probe in enumerate(probes):
        vals = [float(accuracies[t].get(probe, np.nan)) for t in tasks]
        xs = np.arange(len(tasks)) + (j - (len(probes) - 1) / 2) * width
        bars = ax.bar(xs, vals, width=width, label=probe)
        ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=-12, color="white")  # inside the top
    if chance:
        for i, t in enumerate(tasks):
            if t in chance:
                ax.hlines(chance[t], i - 0.45, i + 0.45, colors="black", linestyles="--",
                          linewidth=1, label="chance" if i == 0 else None)  # fmt: skip
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("test accuracy")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=len(probes) + 1, loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig, path)


def transfer_curve(
    n_pairs: Sequence[int],
    curves: Mapping[str, Sequence[float]],
    *,
    ylabel: str = "AUROC on B (held-out pairs)",
    reference: Optional[float] = None,
    reference_label: str = "source monitor on A",
    title: Optional[str] = None,
    path: Optional[PathLike] = None,
    figsize: Sequence[float] = DEFAULT_FIGSIZE,
    dpi: int = DEFAULT_DPI,
) -> Any:
    """One line per method of a statistic against the number of paired samples (log x);
    ``reference`` (e.g. the source monitors' AUROC) as a dashed line."""
    fig, axes = _new_figure(figsize, dpi)
    ax = axes[0][0]
    for i, (method, values) in enumerate(curves.items()):
        ax.plot(list(n_pairs), list(values), marker="o", color=f"C{i % 10}", label=method)
    if reference is not None:
        ax.axhline(reference, color="black", linestyle="--", linewidth=1, label=reference_label)
    ax.set_xscale("log")
    ax.set_xticks(list(n_pairs))
    ax.set_xticklabels([str(n) for n in n_pairs])
    ax.minorticks_off()
    ax.set_xlabel("paired samples (unlabelled)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _finish(fig, path)

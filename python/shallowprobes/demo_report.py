"""The demo's report: ``report.md``, ``report.json`` and PNG figures (see `shallowprobes.demo`).

`write_report(results, out)` takes the numbers the demo collected and writes

* ``tasks.png`` -- test accuracy of linear, exact degree-2 and CP rank-2 probes on XOR,
  circle and 3-bit parity in scrambled coordinates (the degree hierarchy);
* ``stability.png`` -- how much held-out outputs of linear / degree-2 probes change when
  refitted after random invertible affine maps, Euclidean against whitened penalty;
* ``transfer_pairs.png`` -- AUROC on model B of monitors moved from model A, against the
  number of unlabeled pairs: quotient transfer, full-state alignment, top-r PCA alignment;
* ``coverage.png`` -- coverage / fidelity of each monitor of the quotient transfer;
* ``report.md`` (the tables and the figures) and ``report.json`` (every number shown).

Without matplotlib the report is text only and says so.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

FIGURES = {
    "tasks": "tasks.png",
    "stability": "stability.png",
    "transfer_curve": "transfer_pairs.png",
    "coverage": "coverage.png",
}


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        return _clean(v.item())
    return v


def _figures(results: dict, out: Path) -> list[str]:
    try:
        import matplotlib  # noqa: F401

        from . import plot
    except ImportError:
        return []
    made = []
    tasks = results.get("tasks")
    if tasks:
        accs = {t: {k: v for k, v in row.items() if k != "chance"} for t, row in tasks.items()}
        plot.task_accuracy(accs, chance={t: row["chance"] for t, row in tasks.items()},
                           title="Probes on scrambled coordinates (d = 24): test accuracy",
                           path=out / FIGURES["tasks"])  # fmt: skip
        made.append("tasks")
    reports = results.get("stability_reports")
    if reports:
        plot.stability_drift(reports, path=out / FIGURES["stability"])
        made.append("stability")
    curve = results.get("transfer_curve")
    if curve:
        lines = {k: v for k, v in curve.items()
                 if k not in ("n_pairs", "n_test", "source_auroc")}  # fmt: skip
        plot.transfer_curve(curve["n_pairs"], lines, reference=curve["source_auroc"],
                            ylabel="AUROC on model B (true labels, held-out texts)",
                            title="Monitors moved from model A to model B without labels",
                            path=out / FIGURES["transfer_curve"])  # fmt: skip
        made.append("transfer_curve")
    report = results.get("transfer_report")
    if report is not None:
        plot.transfer_map(report, path=out / FIGURES["coverage"], figsize=(9.0, 4.5))
        made.append("coverage")
    return made


def _markdown(results: dict, made: list[str]) -> str:
    md = ["# shallowprobes demo report", ""]
    md.append(f"Generated data only ({'--quick sizes' if results.get('quick') else 'full sizes'}, "
              f"{results.get('seconds', float('nan')):.0f} s). Every number is in "
              "`report.json`.")  # fmt: skip
    md.append("")
    if not made:
        md += ["*matplotlib is not installed, so this report has no figures "
               "(`pip install shallowprobes[plot]`).*", ""]  # fmt: skip

    def fig(key: str, alt: str) -> None:
        if key in made:
            md.extend([f"![{alt}]({FIGURES[key]})", ""])

    tasks = results.get("tasks", {})
    if tasks:
        md += ["## Degree 2 sees interactions", "",
               "Test accuracy; tasks in randomly scrambled coordinates, d = 24.", "",
               "| task | chance | linear | degree 2 | CP rank 2 |", "|---|---|---|---|---|"]
        for t, r in tasks.items():
            md.append(f"| {t} | {r['chance']:.3f} | {r['linear']:.3f} | {r['degree 2']:.3f} | "
                      f"{r['CP rank 2']:.3f} |")  # fmt: skip
        md += ["", "3-bit parity is degree 3: beyond any degree-2 probe, as the hierarchy says.",
               ""]  # fmt: skip
        fig("tasks", "test accuracy per task and probe")
    stab = results.get("stability", [])
    if stab:
        md += ["## Coordinate stability", "",
               "Each probe refitted after random invertible affine maps of h (XOR, d = 8); "
               "relative change of its held-out decision values.", "",
               "| estimator | draws | max change | median change | label flips | stable |",
               "|---|---|---|---|---|---|"]  # fmt: skip
        for r in stab:
            rate = r["label_change_rate"]
            flips = "n/a" if rate is None else f"{100 * rate:.1f}%"
            md.append(f"| {r['estimator']} | {r['n_draws']} | {r['max_change']:.2e} | "
                      f"{r['median_change']:.2e} | {flips} | {'yes' if r['stable'] else 'no'} |")
        md += ["", "Whitening makes the penalty, hence the fitted probe, invariant under every "
               "invertible affine map (changes are round-off); the Euclidean penalty is not.", ""]
        fig("stability", "relative change under random affine maps")
    curve = results.get("transfer_curve")
    if curve:
        methods = [k for k in curve if k not in ("n_pairs", "n_test", "source_auroc")]
        md += ["## Moving monitors to another model", "",
               "Model B is an affine map of A on the directions A's monitors read (+5 % noise), "
               "a non-linear scramble elsewhere, and extra units. Monitors fitted on A are moved "
               "with unlabeled pairs only; AUROC on B against the true labels of "
               f"{curve['n_test']} held-out texts (mean over monitors; source monitors on A: "
               f"{curve['source_auroc']:.3f}).", "",
               "| pairs | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
        for i, n in enumerate(curve["n_pairs"]):
            md.append(f"| {n} | " + " | ".join(f"{curve[m][i]:.3f}" for m in methods) + " |")
        md.append("")
        fig("transfer_curve", "AUROC on B against the number of paired samples")
    tr = results.get("transfer")
    if tr:
        md += ["### Coverage report of the quotient transfer", "",
               f"Quotient rank r = {tr['rank']}.", ""]
        if results.get("transfer_report") is not None:
            md += ["```", str(results["transfer_report"]), "```", ""]
        fig("coverage", "coverage and fidelity per monitor")
    return "\n".join(md) + "\n"


def write_report(results: dict, out: Any = "demo_out") -> Path:
    """Write report.md, report.json and the figures into `out`; returns report.md's path."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    made = _figures(results, folder)
    numbers = {k: v for k, v in results.items()
               if k not in ("stability_reports", "transfer_report")}  # fmt: skip
    numbers["figures"] = {k: FIGURES[k] for k in made}
    with open(folder / "report.json", "w") as fh:
        json.dump(_clean(numbers), fh, indent=1)
    path = folder / "report.md"
    path.write_text(_markdown(results, made))
    return path

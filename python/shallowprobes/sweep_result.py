"""What `sweep` returns: the results table (one row per layer x degree x target) and the
result object holding the fitted probes, the banks and the statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .monitors.bank import ProbeBank

__all__ = ["SweepResult", "SweepTable", "grid_edge", "json_name"]

_COLUMNS = (
    "layer",
    "degree",
    "target",
    "task",
    "route",
    "n_train",
    "alpha",
    "gamma",
    "cv",
    "cv_score",
    "test_metric",
    "test_score",
    "test_auroc",
    "n_test",
    "selected",
    "at_grid_edge",
)


def grid_edge(probe: Any) -> Optional[str]:
    """The results tables' at_grid_edge entry for a fitted linear or degree-2 probe: which of
    its choices sit at an edge of their grid where the CV score was still improving ("alpha
    low", "gamma high", both joined by ", "), or None. The same rule as the probes' own
    GridEdgeWarning (`solve.ridge.edge_side`): a choice at an edge on a plateau is not flagged."""
    sol = probe._solution()
    parts = [f"alpha {side}" for side in sorted({e for e in (sol.alpha_edges or []) if e})]
    if sol.gamma_edge:
        parts.append(f"gamma {sol.gamma_edge}")
    return ", ".join(parts) or None


# ---------------------------------------------------------------------------------- results
class SweepTable(Sequence):
    """The results table: one row (a dict) per (layer, degree, target).

    Columns: layer, degree, target, task ("classification"/"regression"), route ("primal" or
    "dual (m rows)"), n_train, alpha, gamma (degree 2), cv ("gcv" or K), cv_score (the
    criterion alpha was chosen by, higher is better: minus the GCV score or minus the K-fold
    mean squared error, on the +-1 codes for classifiers), test_metric ("accuracy" / "r2"),
    test_score, test_auroc (binary targets), n_test, selected (the degree kept in
    `SweepResult.banks`: the best cv_score per layer and target).
    """

    columns = _COLUMNS

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def __getitem__(self, i: Any) -> Any:
        return self.rows[i]

    def __len__(self) -> int:
        return len(self.rows)

    def to_frame(self) -> Any:
        """A pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("SweepTable.to_frame() needs pandas: pip install pandas") from None
        return pd.DataFrame(self.rows, columns=list(self.columns))

    def __str__(self) -> str:
        def cell(v: Any) -> str:
            if v is None:
                return "-"
            if isinstance(v, (bool, np.bool_)):
                return "*" if v else ""
            if isinstance(v, float):
                return f"{v:.4g}"
            return str(v)

        cols = [c for c in self.columns if any(r.get(c) is not None for r in self.rows)]
        cells = [[cell(r.get(c)) for c in cols] for r in self.rows]
        widths = [
            max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
            for i, c in enumerate(cols)
        ]
        lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)

    __repr__ = __str__


@dataclass
class SweepResult:
    """What `sweep` returns.

    table : SweepTable (`.to_frame()` with pandas).
    banks : {layer: ProbeBank} keyed by target name, holding per target the degree with the
        best CV score (the ``selected`` rows); `bank(layer, degree)` gives one degree.
    probes : {(layer, degree, target): fitted probe} (LinearProbe[Classifier],
        QuadraticProbe[Classifier]): predict, decision_function, stats_ (primal), ...
    stats : {(layer, degree): SufficientStats} of all targets' columns (primal routes).
    routes : {(layer, degree): description of the route}.
    dual_subset : the training rows the dual-route degree-2 probes were fitted on (sorted
        indices), or None when no layer took the dual route.
    timings : seconds spent in setup, the pass, the solve and the test rows.
    """

    table: SweepTable
    banks: dict
    probes: dict
    stats: dict
    routes: dict
    layers: list
    targets: list
    degrees: tuple
    n_train: int
    n_test: int
    dual_subset: Optional[np.ndarray] = None
    timings: dict = field(default_factory=dict)

    def to_frame(self) -> Any:
        return self.table.to_frame()

    def bank(self, layer: Any, degree: Optional[int] = None) -> ProbeBank:
        """The bank of `layer`: the selected degree per target, or all targets at `degree`."""
        if layer not in self.banks:
            raise KeyError(f"no layer {layer!r} in this sweep; it has {self.layers}.")
        if degree is None:
            return self.banks[layer]
        if degree not in self.degrees:
            raise KeyError(f"degree {degree} was not swept (degrees={self.degrees}).")
        return ProbeBank(
            {t: self.probes[(layer, degree, t)] for t in self.targets},
            metadata={"layer": json_name(layer), "degree": degree},
        )

    def __repr__(self) -> str:
        return (
            f"SweepResult({len(self.layers)} layer(s) x {len(self.targets)} target(s) x "
            f"degrees {self.degrees}, n_train={self.n_train}, n_test={self.n_test})"
        )


def json_name(name: Any) -> Any:
    return int(name) if isinstance(name, (int, np.integer)) else str(name)

"""The coverage report of a transfer: one `MonitorCoverage` row per monitor (in-bank share, the
agreement statistics with intervals, the verdict and its reason) and the `CoverageReport`
table, its text form and its JSON schema (current and legacy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Optional

import numpy as np

from ..errors import BundleError
from ..io import json_bool, json_fields, json_float, json_int, json_list, json_number, json_str
from .agreement import (
    DEFAULT_MIN_DECISION_AUROC,
    STATISTICS,
)

_QUOTIENT_METRICS = ("data", "euclidean")
# Share of an in-bank monitor's score variance (on A's pairs) outside the kept quotient rank
# above which the aligner warns.
_LOST_SHARE_TOL = 1e-6


# ---------------------------------------------------------------------------------- report
_NAN = float("nan")
_NO_INTERVAL = (_NAN, _NAN)


@dataclass
class MonitorCoverage:
    """One row of a CoverageReport (the statistics are on the held-out pairs).

    coverage : share of the monitor's score variance on A's data carried by the visible
        quotient (1 for the bank's own monitors unless the cut-off dropped directions).
    fidelity_r2 : score R^2 of the transferred score against the source score.
    rank_correlation : Spearman correlation of the two scores.
    decision_auroc : AUROC of the transferred score for the source's decisions (s > threshold).
    decision_agreement : share of pairs on which the two scores decide alike at `threshold`.
    threshold : the operating point the decisions were taken at.
    *_interval : (low, high) percentile-bootstrap interval of that statistic.
    """

    name: str
    kind: str
    in_bank: bool
    coverage: float
    fidelity_r2: float
    rank_correlation: float
    portable: bool
    reason: str = ""
    decision_auroc: float = _NAN
    decision_agreement: float = _NAN
    threshold: float = _NAN
    decision_auroc_interval: tuple = _NO_INTERVAL
    decision_agreement_interval: tuple = _NO_INTERVAL
    rank_correlation_interval: tuple = _NO_INTERVAL
    fidelity_r2_interval: tuple = _NO_INTERVAL

    def interval(self, statistic: str) -> tuple:
        """The (low, high) bootstrap interval of `statistic` (one of STATISTICS)."""
        if statistic not in STATISTICS:
            raise KeyError(f"no statistic {statistic!r}; choose from {STATISTICS}.")
        return tuple(getattr(self, f"{statistic}_interval"))

    @property
    def coverage_measured(self) -> bool:
        """False for a bank monitor whose coverage is 1 by construction."""
        return not self.in_bank or not self.coverage >= 1.0 - _LOST_SHARE_TOL


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "n/a" if x is None or not np.isfinite(x) else format(float(x), spec)


def _fmt_interval(iv: tuple) -> str:
    lo, hi = iv
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    return f"[{lo:.3f}, {hi:.3f}]"


@dataclass
class CoverageReport:
    """Label-free portability of monitors moved from model A to model B.

    rows : one MonitorCoverage per monitor (coverage, held-out statistics, verdict).
    target : "quotient", "full" or "pca": what B's hidden states were aligned to.
    rank : r, the dimension of A's visible quotient.
    quotient_r2 : held-out R^2 of B -> z_A (the diagnostic that predicts transfer), averaged
        over whitened coordinates so that it does not depend on the basis of z (see
        `whitened_r2`).
    full_state_r2 : the same for B -> h_A (None if not computed); it can be low, even
        negative, when every monitor transfers, because directions no monitor reads need not
        be alignable (the report then says so in a note).
    alpha : the ridge penalty of the map that produced the monitors (chosen by CV; the
        refitted map when n_refit > 0), heldout_alpha : that of the split fit the held-out
        statistics come from.
    n_train, n_heldout : the split; n_refit : pairs the final map was refitted on (0: no refit).
    min_coverage, min_decision_auroc, min_rank_correlation, min_fidelity : the verdict's
        thresholds (None: not used).
    confidence, n_bootstrap : of the intervals.
    metric : geometry of B's side of the map; quotient_metric : "data" or "euclidean".
    """

    rows: list
    target: str
    rank: int
    quotient_r2: float
    full_state_r2: Optional[float]
    alpha: float
    n_train: int
    n_heldout: int
    min_coverage: float
    min_fidelity: Optional[float]
    metric: str = "euclidean"
    notes: list = field(default_factory=list)
    min_decision_auroc: Optional[float] = DEFAULT_MIN_DECISION_AUROC
    min_rank_correlation: Optional[float] = None
    confidence: float = 0.95
    n_bootstrap: int = 0
    n_refit: int = 0
    heldout_alpha: float = _NAN
    quotient_metric: str = "data"

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rows]

    @property
    def portable(self) -> list[str]:
        """Names of the monitors judged portable."""
        return [r.name for r in self.rows if r.portable]

    @property
    def not_portable(self) -> list[str]:
        return [r.name for r in self.rows if not r.portable]

    def __getitem__(self, name: str) -> MonitorCoverage:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no monitor named {name!r} in the report; it has {self.names}.")

    @property
    def rule(self) -> str:
        """The verdict rule in words."""
        parts = [f"coverage >= {self.min_coverage:g}"]
        for key, label in (("min_decision_auroc", "decision AUROC"),
                           ("min_rank_correlation", "rank correlation"),
                           ("min_fidelity", "score R^2")):  # fmt: skip
            value = getattr(self, key)
            if value is not None and np.isfinite(value):
                parts.append(f"{label} >= {value:g}")
        return " and ".join(parts)

    def best(self, statistic: str = "decision_auroc") -> Optional[MonitorCoverage]:
        """The row with the highest `statistic` (None when no row has a finite one)."""
        rows = [r for r in self.rows if np.isfinite(getattr(r, statistic))]
        return max(rows, key=lambda r: getattr(r, statistic)) if rows else None

    def to_dict(self) -> dict:
        """JSON-serialisable form (NaN becomes None)."""
        out = asdict(self)
        rows = []
        for r in self.rows:
            row = {}
            for k, v in asdict(r).items():
                if k.endswith("_interval"):
                    v = [json_number(x) for x in v]
                elif isinstance(v, float):
                    v = json_number(v)
                row[k] = v
            rows.append(row)
        out["rows"] = rows
        for key in ("quotient_r2", "full_state_r2", "alpha", "min_coverage", "min_fidelity",
                    "min_decision_auroc", "min_rank_correlation", "confidence",
                    "heldout_alpha"):  # fmt: skip
            out[key] = json_number(out[key])
        return out

    @classmethod
    def from_dict(
        cls, data: dict, *, where: str = "CoverageReport.from_dict", field: str = "report"
    ) -> CoverageReport:
        """The report back from `to_dict` (None becomes NaN again).

        `data` is held to the schema of `to_dict` (known keys only, typed values); anything
        else raises `BundleError` (a ValueError) naming `where` and the field. Reports written
        before the decision statistics existed (no "min_decision_auroc" nor any other newer
        key) load with those statistics NaN.
        """
        if isinstance(data, dict) and not any(k in data for k in _NEW_REPORT_KEYS):
            return cls._from_legacy(data, where, field)
        data = json_fields(data, where, field, _REPORT_SCHEMA, optional=("metric", "notes"))
        rows = []
        for j, row in enumerate(json_list(data.pop("rows"), where, f"{field}.rows")):
            row = json_fields(row, where, f"{field}.rows[{j}]", _ROW_SCHEMA, optional=("reason",))
            rows.append(MonitorCoverage(**{k: _nan_for_none(k, v) for k, v in row.items()}))
        for key in ("quotient_r2", "alpha", "min_coverage", "confidence", "heldout_alpha"):
            if data.get(key) is None:
                data[key] = _NAN
        return cls(rows=rows, **data)

    @classmethod
    def _from_legacy(cls, data: dict, where: str, field: str) -> CoverageReport:
        data = json_fields(data, where, field, _LEGACY_REPORT_SCHEMA, optional=("metric", "notes"))
        rows = []
        for j, row in enumerate(json_list(data.pop("rows"), where, f"{field}.rows")):
            row = json_fields(row, where, f"{field}.rows[{j}]", _LEGACY_ROW_SCHEMA,
                              optional=("reason",))  # fmt: skip
            rows.append(MonitorCoverage(**{k: _nan_for_none(k, v) for k, v in row.items()}))
        for key in ("quotient_r2", "alpha", "min_coverage", "min_fidelity"):
            if data.get(key) is None:
                data[key] = _NAN
        return cls(rows=rows, **data, min_decision_auroc=None, quotient_metric="euclidean")

    def to_frame(self):
        """The per-monitor rows as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows]).set_index("name")

    def __str__(self) -> str:
        if self.full_state_r2 is None:
            full = "n/a"
        elif self.full_state_r2 < 0:
            full = f"{self.full_state_r2:.3f} (not comparable, see note)"
        else:
            full = f"{self.full_state_r2:.3f}"
        alpha = "n/a" if not np.isfinite(self.alpha) else f"{self.alpha:.3g}"
        lines = [
            f"Coverage report: B aligned to A's {self.target} "
            f"(quotient rank r = {self.rank}, quotient metric = {self.quotient_metric}, "
            f"metric = {self.metric}, alpha = {alpha})",
        ]
        if self.n_refit:
            lines.append(
                f"  held-out pairs: {self.n_heldout} (statistics of the map fitted on "
                f"{self.n_train}, alpha = {_fmt(self.heldout_alpha, '.3g')}; the monitors use "
                f"the map refitted on all {self.n_refit})"
            )
        else:
            lines.append(f"  held-out pairs: {self.n_heldout} (map fitted on {self.n_train})")
        lines.append(
            f"  held-out R^2 (whitened)   quotient z_A: {_fmt(self.quotient_r2)}   "
            f"full state h_A: {full}"
        )
        lines.append(f"  portable = {self.rule}")
        if self.n_bootstrap:
            lines.append(
                f"  [intervals: {100 * self.confidence:g}% percentile bootstrap over the "
                f"held-out pairs, {self.n_bootstrap} resamples]"
            )
        lines.append("")
        width = max([len("monitor")] + [len(r.name) for r in self.rows])
        head = (f"  {'monitor':<{width}}  {'kind':<9} {'coverage':>8}  {'threshold':>9}  "
                f"{'decision AUROC':<22} {'agree':>6} {'rank corr':>9} {'score R2':>8}  "
                "verdict")  # fmt: skip
        lines += [head, "  " + "-" * (len(head) - 2)]
        for r in self.rows:
            verdict = "portable" if r.portable else f"NOT portable ({r.reason})"
            cov = _fmt(r.coverage) if r.coverage_measured else "in bank"
            dauc = f"{_fmt(r.decision_auroc)} {_fmt_interval(r.decision_auroc_interval)}"
            lines.append(
                f"  {r.name:<{width}}  {r.kind:<9} {cov:>8}  {_fmt(r.threshold, '.3g'):>9}  "
                f"{dauc:<22} {_fmt(r.decision_agreement):>6} {_fmt(r.rank_correlation):>9} "
                f"{_fmt(r.fidelity_r2):>8}  {verdict}"
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__


def _nan_for_none(key: str, value: Any) -> Any:
    if key.endswith("_interval"):
        return tuple(_NAN if v is None else v for v in value)
    return _NAN if value is None and key != "reason" else value


def _json_interval(value: Any, where: str, field: str) -> list:
    """[low, high]: two numbers or nulls."""
    items = json_list(value, where, field, item=partial(json_float, nullable=True))
    if len(items) != 2:
        raise BundleError(f"{where}: field {field!r} must hold 2 numbers (low, high), "
                          f"got {len(items)}.")  # fmt: skip
    return items


# The schema of CoverageReport.to_dict (numbers may be None: NaN in the report).
_maybe_float = partial(json_float, nullable=True)
_LEGACY_ROW_SCHEMA = {
    "name": json_str, "kind": json_str, "in_bank": json_bool, "coverage": _maybe_float,
    "fidelity_r2": _maybe_float, "rank_correlation": _maybe_float, "portable": json_bool,
    "reason": json_str,
}  # fmt: skip
_ROW_SCHEMA = {
    **_LEGACY_ROW_SCHEMA, "decision_auroc": _maybe_float, "decision_agreement": _maybe_float,
    "threshold": _maybe_float, **{f"{k}_interval": _json_interval for k in STATISTICS},
}  # fmt: skip
_LEGACY_REPORT_SCHEMA = {
    "rows": json_list, "target": json_str, "rank": partial(json_int, lo=0),
    "quotient_r2": _maybe_float, "full_state_r2": _maybe_float, "alpha": _maybe_float,
    "n_train": partial(json_int, lo=0), "n_heldout": partial(json_int, lo=0),
    "min_coverage": _maybe_float, "min_fidelity": _maybe_float, "metric": json_str,
    "notes": partial(json_list, item=json_str),
}  # fmt: skip
_REPORT_SCHEMA = {
    **_LEGACY_REPORT_SCHEMA, "min_decision_auroc": _maybe_float,
    "min_rank_correlation": _maybe_float, "confidence": _maybe_float,
    "n_bootstrap": partial(json_int, lo=0), "n_refit": partial(json_int, lo=0),
    "heldout_alpha": _maybe_float,
    "quotient_metric": partial(json_str, choices=_QUOTIENT_METRICS),
}  # fmt: skip
_NEW_REPORT_KEYS = tuple(k for k in _REPORT_SCHEMA if k not in _LEGACY_REPORT_SCHEMA)

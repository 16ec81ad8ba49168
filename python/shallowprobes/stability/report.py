"""The result of a stability check: :class:`StabilityReport` (one estimator under one group)
and :func:`format_reports` (a text table of several), with the default tolerance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .._params import Interval, ParameterTypeError, check_param, shown

DEFAULT_TOL = 1e-6
"""Default tolerance of :meth:`StabilityReport.is_stable` (float64 round-off is ~1e-12)."""

_TOL = [Interval("real", 0.0, None)]


def _fmt(x: Optional[float], spec: str = ".2e") -> str:
    if x is None:
        return "n/a"
    return format(x, spec)


def _fmt_alpha(a: Any) -> str:
    if a is None:
        return "n/a"
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 0:
        return f"{float(arr):.4g}"
    return (
        "[" + ", ".join(f"{x:.3g}" for x in arr.ravel()[:4]) + (", ...]" if arr.size > 4 else "]")
    )


@dataclass
class StabilityReport:
    """How much an estimator's held-out outputs change under random coordinate changes.

    Produced by :func:`stability_report`. All "changes" are relative and dimensionless.

    Attributes
    ----------
    estimator : str
        Name of the estimator (class name, ``Pipeline(A, B)``, or the given name).
    group : str
        Name of the group action (e.g. ``"Affine"``).
    condition : float
        The group's bound on ``cond(T)`` (1 for :class:`Euclidean`).
    n_draws : int
        Number of random group elements.
    max_change : float
        Largest over the draws of the relative change
        ``max_i |f_g(g x_i) - f(x_i)| / max_i |f(x_i)|`` of the held-out outputs.
    median_change : float
        Median over the draws of the same quantity.
    per_draw_change : ndarray of shape (n_draws,)
        The relative change of each draw.
    label_change_rate : float or None
        Classifiers: the largest over the draws of the fraction of held-out rows whose
        predicted label differs from the reference fit's. None for regressors.
    alpha_reference : float, ndarray or None
        Regularisation chosen/used by the reference fit (``alpha_``, else ``C_``, ``alpha``,
        ``C`` of the estimator or the last pipeline step); None if the estimator has none.
    alpha_per_draw : list or None
        The same quantity for each draw.
    alpha_max_change : float or None
        ``max_g max |alpha_g - alpha_ref| / |alpha_ref|`` (absolute change if the reference
        is 0); None if unavailable.
    output : str
        Which outputs were compared: ``"decision_function"``, ``"predict_proba"`` (the
        positive-class column for binary problems) or ``"predict"``.
    typical_change : float
        Largest over the draws of ``median_i |f_g(g x_i) - f(x_i)| / std_i f(x_i)``: the
        change of a typical row relative to the spread of the outputs.
    per_draw_typical_change : ndarray of shape (n_draws,)
    per_draw_label_change : ndarray of shape (n_draws,) or None
    per_draw_condition : ndarray of shape (n_draws,)
        ``cond(T)`` of each drawn element.
    alpha_name : str or None
        Which attribute the regularisation was read from.
    readout_transformed : bool
        Whether a ``readout`` matrix was transformed with each draw and passed to the
        estimator (:class:`ReadoutAffine` with an estimator taking ``readout``).
    n_train, n_test : int
        Rows used for fitting and for the comparison.
    elements : list of GroupElement
        The drawn group elements (for reproducing a draw).
    """

    estimator: str
    group: str
    condition: float
    n_draws: int
    max_change: float
    median_change: float
    per_draw_change: np.ndarray
    label_change_rate: Optional[float]
    alpha_reference: Any
    alpha_per_draw: Optional[list]
    alpha_max_change: Optional[float]
    output: str = "decision_function"
    typical_change: float = float("nan")
    per_draw_typical_change: Optional[np.ndarray] = None
    per_draw_label_change: Optional[np.ndarray] = None
    per_draw_condition: Optional[np.ndarray] = None
    alpha_name: Optional[str] = None
    readout_transformed: bool = False
    n_train: int = 0
    n_test: int = 0
    elements: list = field(default_factory=list, repr=False)

    def is_stable(self, tol: float = DEFAULT_TOL) -> bool:
        """True if every draw changed the held-out outputs by at most ``tol`` (relative).

        Float64 round-off of an exactly invariant fit is ~1e-12; the default 1e-6 separates
        round-off from a genuine dependence on the coordinates.
        """
        check_param("tol", tol, _TOL, owner="StabilityReport.is_stable")
        return bool(np.isfinite(self.max_change) and self.max_change <= tol)

    def verdict(self, tol: float = DEFAULT_TOL) -> str:
        """``"stable (<= tol)"`` or ``"NOT stable"``."""
        return f"stable (<= {tol:g})" if self.is_stable(tol) else "NOT stable"

    def __str__(self) -> str:
        rows = [
            ("estimator", self.estimator),
            ("group", f"{self.group} (condition <= {self.condition:g})"),
            (
                "draws",
                f"{self.n_draws} (train rows {self.n_train}, test rows {self.n_test}, "
                f"output {self.output}"
                + (", readout transformed" if self.readout_transformed else "")
                + ")",
            ),
            (
                "relative change",
                f"max {_fmt(self.max_change)}, median {_fmt(self.median_change)} "
                f"(typical row / std: {_fmt(self.typical_change)})",
            ),
            (
                "label flips",
                "n/a (regressor)"
                if self.label_change_rate is None
                else f"{100.0 * self.label_change_rate:.2f}% of test rows (worst draw)",
            ),
            (
                "alpha",
                "n/a"
                if self.alpha_reference is None
                else f"{self.alpha_name} = {_fmt_alpha(self.alpha_reference)} (reference), "
                f"max relative change {_fmt(self.alpha_max_change)}",
            ),
            ("verdict", self.verdict()),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}} : {v}" for k, v in rows)

    def to_frame(self):
        """One row per draw as a :class:`pandas.DataFrame`.

        Columns: estimator, group, draw, condition_number, change, typical_change,
        label_change_rate, alpha.

        Raises
        ------
        ImportError
            If pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError(
                "StabilityReport.to_frame() needs pandas; install it with `pip install pandas`."
            ) from None
        n = self.n_draws
        labels = (
            self.per_draw_label_change
            if self.per_draw_label_change is not None
            else np.full(n, np.nan)
        )
        alphas = self.alpha_per_draw if self.alpha_per_draw is not None else [None] * n
        return pd.DataFrame(
            {
                "estimator": [self.estimator] * n,
                "group": [self.group] * n,
                "draw": np.arange(n),
                "condition_number": _or_nan(self.per_draw_condition, n),
                "change": np.asarray(self.per_draw_change, dtype=np.float64),
                "typical_change": _or_nan(self.per_draw_typical_change, n),
                "label_change_rate": np.asarray(labels, dtype=np.float64),
                "alpha": list(alphas),
            }
        )


def _or_nan(a: Optional[np.ndarray], n: int) -> np.ndarray:
    return np.full(n, np.nan) if a is None else np.asarray(a, dtype=np.float64)


def format_reports(reports: Any, tol: float = DEFAULT_TOL) -> str:
    """A compact text table of several :class:`StabilityReport` objects.

    Columns: estimator, group, condition bound, draws, max and median relative change of
    the held-out outputs, worst label-flip rate, max relative change of alpha, verdict at
    ``tol``.
    """
    check_param("tol", tol, _TOL, owner="format_reports")
    if isinstance(reports, StabilityReport):
        reports = [reports]
    reports = list(reports)
    if not all(isinstance(r, StabilityReport) for r in reports):
        raise ParameterTypeError(
            f"reports must be a StabilityReport or a sequence of them, got {shown(reports)}."
        )
    header = ("estimator", "group", "cond", "draws", "max change", "median", "flips", "alpha chg",
              "verdict")  # fmt: skip
    rows = [header]
    for r in reports:
        rows.append(
            (
                r.estimator,
                r.group,
                f"{r.condition:g}",
                str(r.n_draws),
                _fmt(r.max_change),
                _fmt(r.median_change),
                "n/a" if r.label_change_rate is None else f"{100 * r.label_change_rate:.1f}%",
                _fmt(r.alpha_max_change),
                r.verdict(tol),
            )
        )
    widths = [max(len(row[j]) for row in rows) for j in range(len(header))]
    numeric = {2, 3, 4, 5, 6, 7}
    lines = []
    for i, row in enumerate(rows):
        cells = [
            cell.rjust(w) if (j in numeric and i > 0) else cell.ljust(w)
            for j, (cell, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)

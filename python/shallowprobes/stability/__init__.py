"""Coordinate-stability checks: does a fitted probe depend on the basis of the hidden states?

Hidden states are only defined up to an invertible affine change of coordinates ``h -> T h + v``
(docs/design.md §1.1): at a network's final readout, logits ``W h + b`` are unchanged when ``(h,
W, b)`` become ``(T h + v, W T^-1, b - W T^-1 v)``. A probe that is meant to reveal what is *in*
a representation should therefore give the same held-out predictions whichever coordinates it is
fitted in. Whether it does depends on its penalty (§2): plain ridge is invariant only under
orthogonal maps and shifts, ridge on z-scores also under diagonal scalings and permutations, and
ridge on whitened features (or in the readout metric) under every invertible affine map.

This package measures it empirically for any scikit-learn-style estimator:

- group actions (:class:`Euclidean`, :class:`DiagonalAffine`, :class:`Affine`,
  :class:`ReadoutAffine`) draw random, well-conditioned elements ``g = (T, v)``
  (:class:`GroupElement`; user-supplied ones via :func:`from_matrix`): ``groups``;
- :func:`stability_report` fits the estimator on the original training rows and, for each
  draw ``g``, on ``g(X_train)``, and compares the held-out outputs ``f_g(g(x))`` with ``f(x)``;
  :func:`compare_stability` does the same for several estimators: ``drift``, with the
  estimator plumbing (cloning, pipeline steps, the readout parameter, outputs, alpha);
- :class:`StabilityReport` holds the result and :func:`format_reports` tabulates several:
  ``report`` (with :data:`DEFAULT_TOL`).

**What "stable" means.** For each draw the *relative change* of the held-out outputs
(decision values when the estimator has ``decision_function``) is
``max_i |f_g(g x_i) - f(x_i)| / max_i |f(x_i)|``. A probe that is exactly invariant under the
group shows only float64 round-off, typically 1e-14 .. 1e-11 (larger when ``cond(T)`` is large
or the fit involves an ill-conditioned solve); :meth:`StabilityReport.is_stable` uses a
default tolerance of 1e-6, far above round-off and far below any real dependence on the
coordinates. Estimators fitted by an iterative optimiser (logistic regression, MLPs) are at
best invariant up to the optimiser's tolerance, and only when their iterations are
equivariant too.

Only numpy is needed at import; scikit-learn (``clone``) and pandas
(:meth:`StabilityReport.to_frame`) are used when available.
"""

from .drift import (
    compare_stability,
    stability_report,
)
from .groups import (
    Affine,
    DiagonalAffine,
    Euclidean,
    GroupAction,
    GroupElement,
    RandomLike,  # noqa: F401 - a module-level name of stability.py, not in __all__
    ReadoutAffine,
    from_matrix,
)
from .report import DEFAULT_TOL, StabilityReport, format_reports

__all__ = [
    "DEFAULT_TOL",
    "GroupAction",
    "GroupElement",
    "Euclidean",
    "DiagonalAffine",
    "Affine",
    "ReadoutAffine",
    "from_matrix",
    "StabilityReport",
    "stability_report",
    "compare_stability",
    "format_reports",
]

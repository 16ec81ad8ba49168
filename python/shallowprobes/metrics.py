"""The penalty metrics (geometries) a probe can be fitted in, and their invariance groups.

A public name for `shallowprobes.solve.geometry`, where the metrics are implemented; the
table of metrics and the coordinate changes each is invariant to is in that module's
docstring (and in docs/design.md).
"""

from .solve.geometry import (
    METRICS,
    Geometry,
    check_metric,
    check_readout,
    fit_geometry,
    psd_inv_sqrt,
    psd_sqrt,
)
from .solve.geometry import __doc__ as _geometry_doc

__doc__ = (__doc__ or "") + "\n" + (_geometry_doc or "")

__all__ = [
    "METRICS",
    "Geometry",
    "check_metric",
    "check_readout",
    "fit_geometry",
    "psd_sqrt",
    "psd_inv_sqrt",
]

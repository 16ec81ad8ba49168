"""shallowprobes: fast, exact, coordinate-stable shallow probes on frozen hidden states.

The numerical core is written in Rust (`shallowprobes._core`); a plain numpy implementation of
the same formulas is available as ``backend="numpy"``, and a torch implementation, which runs
on the tensor's own device, as ``backend="torch"`` (chosen automatically for CUDA tensors).
"""

# `io` is importable as shallowprobes.io but stays out of __all__, so that a *-import never
# shadows the standard library's io.
from . import caches, datasets, io, metrics, stability  # noqa: F401
from ._base import NotFittedError
from .backends import rust_available
from .caches import ActivationCache, open_cache
from .monitors.bank import ProbeBank
from .monitors.monitor import PolynomialMonitor
from .monitors.quotient import Quotient
from .monitors.transfer import (
    CoverageReport,
    QuotientAligner,
    compare_transfer,
    few_label_probe,
    transfer,
)
from .probes.cp import CPProbe, CPProbeClassifier
from .probes.linear import LinearProbe, LinearProbeClassifier
from .probes.quadratic import QuadraticProbe, QuadraticProbeClassifier
from .solve.ridge import default_alpha_grid
from .solve.stats import SufficientStats

# shallowprobes.sweep is the function (the module stays importable as shallowprobes.sweep only
# through this name; use `from shallowprobes.sweep import ...` inside the package)
from .sweep import SweepResult, sweep
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "LinearProbe",
    "LinearProbeClassifier",
    "QuadraticProbe",
    "QuadraticProbeClassifier",
    "CPProbe",
    "CPProbeClassifier",
    "SufficientStats",
    "PolynomialMonitor",
    "ProbeBank",
    "Quotient",
    "QuotientAligner",
    "CoverageReport",
    "transfer",
    "compare_transfer",
    "few_label_probe",
    "NotFittedError",
    "default_alpha_grid",
    "get_num_threads",
    "set_num_threads",
    "rust_available",
    "datasets",
    "metrics",
    "stability",
    "caches",
    "open_cache",
    "ActivationCache",
    "sweep",
    "SweepResult",
    "__version__",
]

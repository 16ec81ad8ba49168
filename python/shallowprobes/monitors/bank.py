"""`ProbeBank`: a named, ordered collection of monitors on one model / layer.

A bank holds :class:`~shallowprobes.monitors.monitor.PolynomialMonitor` objects (re-exported
here). It can be built from any mix of fitted `LinearProbe`, `QuadraticProbe` and `CPProbe`
estimators (regressors and classifiers; a probe with several outputs contributes one monitor
per output), and from fitted scikit-learn linear models and pipelines (StandardScaler / PCA /
PolynomialFeatures(2) + a linear model; see `ProbeBank.from_sklearn` and
:mod:`.from_sklearn`), evaluates all of them at once, and saves to / loads from a directory
without pickle (see :mod:`shallowprobes.io`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any, Optional

import numpy as np

from .._params import (
    InstanceOf,
    Interval,
    ParameterError,
    ParameterIndexError,
    ParameterTypeError,
    check_param,
    shown,
)
from ..errors import BundleError, EmptyBankError
from ..io import (
    NpzMembers,
    PathLike,
    bad_field,
    json_bool,
    json_dict,
    json_fields,
    json_float,
    json_list,
    json_str,
    read_bundle,
    write_bundle,
)
from .from_sklearn import is_sklearn, sklearn_monitors
from .monitor import (
    MONITOR_KINDS,
    PolynomialMonitor,
    check_rows,
    evaluate_monitors,
    n_outputs,
    output_labels,
)

__all__ = ["PolynomialMonitor", "ProbeBank"]


class ProbeBank(Mapping):
    """A named, ordered collection of monitors on one model / layer.

    Parameters
    ----------
    monitors : mapping name -> fitted probe or PolynomialMonitor (optional; see `add`).
    metadata : free-form JSON-serialisable dict saved with the bank (model name, layer, ...).

    A bank is a read-only mapping name -> PolynomialMonitor; `add` appends. All monitors must
    read hidden states of the same width (`n_features_in_`).

    Examples
    --------
    >>> bank = ProbeBank({"toxicity": tox_probe, "deception": dec_probe})  # doctest: +SKIP
    >>> scores = bank.decision_function(H)   # (n, 2), columns in bank.names order
    """

    def __init__(
        self, monitors: Optional[Mapping[str, Any]] = None, *, metadata: Optional[dict] = None
    ) -> None:
        check_param("metadata", metadata, [InstanceOf(Mapping, "a dict"), None],
                    owner="ProbeBank")  # fmt: skip
        self._monitors: dict[str, PolynomialMonitor] = {}
        self.metadata: dict = dict(metadata or {})
        self.report: Any = None  # a CoverageReport when the bank was made by `transfer`
        if monitors is not None:
            if not isinstance(monitors, Mapping):
                raise ParameterTypeError(
                    "monitors must be a mapping name -> fitted probe or PolynomialMonitor, got "
                    f"{type(monitors).__name__}."
                )
            for name, probe in monitors.items():
                self.add(name, probe)

    # ------------------------------------------------------------------ building
    def add(self, name: str, probe: Any, *, output: Optional[int] = None) -> ProbeBank:
        """Add a fitted probe (or a PolynomialMonitor) under `name`.

        A probe with several outputs (multi-class classifier, multi-target regressor) adds one
        monitor per output, named ``"name[label]"`` (label = class or output index), unless
        `output` picks one. Nothing is added if any check fails.
        """
        if not isinstance(name, str) or not name:
            raise ParameterTypeError(f"monitor names must be non-empty strings, got {name!r}.")
        check_param("output", output, [Interval("int", 0, None), None], owner="ProbeBank.add")
        if isinstance(probe, PolynomialMonitor):
            if output not in (None, 0):
                raise ParameterError(
                    f"a PolynomialMonitor has a single output; drop output= (got {output!r})."
                )
            new = {name: probe}
        elif is_sklearn(probe):
            monitors, labels = sklearn_monitors(probe)
            if output is not None:
                if output >= len(monitors):
                    raise ParameterIndexError(
                        f"output={output} is out of range: the model has {len(monitors)} "
                        "output(s)."
                    )
                new = {name: monitors[output]}
            elif len(monitors) == 1:
                new = {name: monitors[0]}
            else:
                new = {f"{name}[{lab}]": m for lab, m in zip(labels, monitors)}
        else:
            n_out = n_outputs(probe)
            if output is not None:
                new = {name: PolynomialMonitor.from_probe(probe, output)}
            elif n_out == 1:
                new = {name: PolynomialMonitor.from_probe(probe, 0)}
            else:
                labels = output_labels(probe, n_out)
                new = {f"{name}[{lab}]": PolynomialMonitor.from_probe(probe, j)
                       for j, lab in enumerate(labels)}  # fmt: skip
        for key, monitor in new.items():
            if key in self._monitors:
                raise ValueError(f"the bank already has a monitor named {key!r}.")
            if self._monitors and monitor.n_features != self.n_features_in_:
                raise ValueError(
                    f"monitor {key!r} reads {monitor.n_features}-dimensional hidden states but "
                    f"the bank's monitors read {self.n_features_in_}; a bank holds monitors of "
                    "one model/layer."
                )
        self._monitors.update(new)
        return self

    @classmethod
    def from_sklearn(
        cls, models: Mapping[str, Any], *, metadata: Optional[dict] = None
    ) -> ProbeBank:
        """A bank of fitted scikit-learn models: linear models, or pipelines of
        StandardScaler / PCA (any affine step, see `PolynomialMonitor.from_sklearn`) /
        PolynomialFeatures (degree <= 2) ending in a linear model.

        models : mapping name -> fitted model. A classifier contributes its decision_function
            (binary: one monitor, positive = classes_[1]; K classes: K monitors named
            ``"name[class]"``); a regressor its prediction (one monitor per target). Each
            monitor equals the model's own score to round-off.
        """
        if not isinstance(models, Mapping):
            raise ParameterTypeError(
                "models must be a mapping name -> fitted scikit-learn model, got "
                f"{type(models).__name__}."
            )
        for name, model in models.items():
            if not is_sklearn(model):
                raise ParameterTypeError(
                    f"models[{name!r}] is not a scikit-learn estimator (got "
                    f"{type(model).__name__}); add the library's own probes with ProbeBank(...)."
                )
        return cls(models, metadata=metadata)

    def subset(self, names: Any) -> ProbeBank:
        """A new bank with the monitors `names` (in that order)."""
        names = [names] if isinstance(names, str) else list(names)
        missing = [n for n in names if n not in self._monitors]
        if missing:
            raise KeyError(f"no monitor(s) named {missing}; the bank has {self.names}.")
        return ProbeBank({n: self._monitors[n] for n in names}, metadata=dict(self.metadata))

    # ------------------------------------------------------------------ mapping protocol
    def __getitem__(self, name: str) -> PolynomialMonitor:
        try:
            return self._monitors[name]
        except KeyError:
            raise KeyError(f"no monitor named {name!r}; the bank has {self.names}.") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._monitors)

    def __len__(self) -> int:
        return len(self._monitors)

    @property
    def names(self) -> list[str]:
        return list(self._monitors)

    @property
    def n_features_in_(self) -> int:
        if not self._monitors:
            raise EmptyBankError("the bank is empty; add monitors first.")
        return next(iter(self._monitors.values())).n_features

    # ------------------------------------------------------------------ evaluation
    def decision_function(self, H: Any, names: Any = None) -> np.ndarray:
        """Scores (n, m) of every monitor (or of `names`), columns in `names` order.

        float64; for a torch tensor H the scores are computed on H's device and returned as a
        tensor there (the coefficients are copied to the device once and cached)."""
        if not self._monitors:
            raise EmptyBankError("the bank is empty; add monitors first.")
        if names is None or isinstance(names, str):
            picked = self.names if names is None else [names]
        else:
            try:
                picked = None if isinstance(names, Mapping) else list(names)
            except TypeError:
                picked = None
        if picked is None or not all(isinstance(n, str) for n in picked):
            raise ParameterTypeError(
                f"names must be a monitor name, a sequence of names or None, got {shown(names)}."
            )
        monitors = [self[n] for n in picked]
        X = check_rows(H, self.n_features_in_, "this bank")
        return evaluate_monitors(X, monitors)

    def covectors(self) -> np.ndarray:
        """(d, m) all monitors' covectors side by side (see PolynomialMonitor.covectors)."""
        return np.column_stack([m.covectors() for m in self._monitors.values()])

    # ------------------------------------------------------------------ persistence
    def _to_arrays(self, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"names": self.names, "kinds": [], "has_quadratic": [], "intercepts": [],
                "infos": [], "metadata": self.metadata}  # fmt: skip
        arrays: dict[str, np.ndarray] = {}
        for j, monitor in enumerate(self._monitors.values()):
            meta["kinds"].append(monitor.kind)
            meta["has_quadratic"].append(monitor.quadratic is not None)
            meta["intercepts"].append(monitor.intercept)
            meta["infos"].append(monitor.info)
            arrays[f"{prefix}linear_{j}"] = monitor.linear
            arrays[f"{prefix}centre_{j}"] = monitor.centre
            if monitor.quadratic is not None:
                arrays[f"{prefix}quadratic_{j}"] = monitor.quadratic
        return meta, arrays

    # The bank's part of a bundle's metadata: parallel lists, one entry per monitor.
    _META_SCHEMA = {
        "names": partial(json_list, item=partial(json_str, non_empty=True)),
        "kinds": partial(json_list, item=partial(json_str, choices=MONITOR_KINDS)),
        "has_quadratic": partial(json_list, item=json_bool),
        "intercepts": partial(json_list, item=json_float),
        "infos": partial(json_list, item=lambda v, w, f: None if v is None else json_dict(v, w, f)),
        "metadata": json_dict,
        "report": lambda v, w, f: None if v is None else json_dict(v, w, f),
    }

    @classmethod
    def _read_meta(cls, meta: Any, where: str, field: str, allow_report: bool) -> dict:
        """The checked bank metadata (lists of equal length, unique names)."""
        optional = ("infos", "metadata", "report") if allow_report else ("infos", "metadata")
        schema = {k: v for k, v in cls._META_SCHEMA.items() if allow_report or k != "report"}
        meta = json_fields(meta, where, field, schema, optional)
        lists = ("names", "kinds", "has_quadratic", "intercepts", "infos")
        meta.setdefault("infos", [None] * len(meta["names"]))
        if len({len(meta[key]) for key in lists}) != 1:
            fields = ", ".join(repr(f"{field}.{key}") for key in lists)
            raise BundleError(f"{where}: the fields {fields} have different lengths.")
        seen: set = set()
        for j, name in enumerate(meta["names"]):
            if name in seen:
                raise bad_field(where, f"{field}.names[{j}]", f"the name {name[:80]!r} repeats")
            seen.add(name)
        return meta

    @staticmethod
    def _member_names(meta: dict, prefix: str = "") -> list[str]:
        """The array members a bank with this (checked) metadata is stored in."""
        names = []
        for j, has_q in enumerate(meta["has_quadratic"]):
            names += [f"{prefix}linear_{j}", f"{prefix}centre_{j}"]
            names += [f"{prefix}quadratic_{j}"] if has_q else []
        return names

    @staticmethod
    def _check_arrays(meta: dict, npz: NpzMembers, prefix: str = "") -> Optional[int]:
        """Compare the monitors' array headers with the schema (nothing decompressed); returns
        the width d (None for an empty bank)."""
        if not meta["names"]:
            return None
        (d,) = npz.shape(f"{prefix}linear_0", 1)
        if d < 1:
            raise npz.error(f"{prefix}linear_0", "a monitor reads at least one feature")
        for key in ProbeBank._member_names(meta, prefix):
            npz.check(key, (d, d) if "quadratic_" in key else (d,))
        return d

    @classmethod
    def _read_arrays(cls, meta: dict, npz: NpzMembers, where: str, prefix: str = "") -> ProbeBank:
        """The bank from checked metadata and arrays (call `_check_arrays` first)."""
        d = cls._check_arrays(meta, npz, prefix)
        bank = cls(metadata=dict(meta.get("metadata", {})))
        for j, name in enumerate(meta["names"]):
            key = f"{prefix}quadratic_{j}"
            Q = npz.read(key, (d, d)) if meta["has_quadratic"][j] else None
            try:
                monitor = PolynomialMonitor(
                    npz.read(f"{prefix}linear_{j}", (d,)), meta["intercepts"][j], Q,
                    npz.read(f"{prefix}centre_{j}", (d,)), meta["kinds"][j],
                    dict(meta["infos"][j] or {}),
                )  # fmt: skip
                bank.add(name, monitor)
            except (ValueError, TypeError) as exc:
                if isinstance(exc, BundleError):
                    raise
                raise BundleError(f"{where}: monitor {name!r} is invalid ({exc}).") from None
        return bank

    def save(self, path: PathLike) -> None:
        """Write the bank to directory `path` (bank.json + bank.npz; no pickle)."""
        meta, arrays = self._to_arrays()
        if self.report is not None:
            meta["report"] = self.report.to_dict()
        write_bundle(path, "bank", meta, arrays)

    @classmethod
    def load(cls, path: PathLike) -> ProbeBank:
        """Read a bank written by `save` (a transferred bank keeps its coverage report).

        The files are untrusted input held to a schema (see `shallowprobes.io`). Raises
        FileNotFoundError when there is no bank at `path`, and `BundleError` (a ValueError)
        naming the file and the field for a corrupted, truncated or inconsistent bundle.
        """
        with read_bundle(path, "bank") as bundle:
            meta = cls._read_meta(bundle.meta, bundle.where, "meta", allow_report=True)
            bundle.arrays.check_names(cls._member_names(meta))
            bank = cls._read_arrays(meta, bundle.arrays, bundle.where)
        if meta.get("report") is not None:
            from .transfer import CoverageReport

            bank.report = CoverageReport.from_dict(meta["report"], where=bundle.where,
                                                   field="meta.report")  # fmt: skip
        return bank

    def __repr__(self) -> str:
        if not self._monitors:
            return "ProbeBank(empty)"
        kinds = {k: sum(m.kind == k for m in self._monitors.values()) for k in MONITOR_KINDS}
        mix = ", ".join(f"{v} {k}" for k, v in kinds.items() if v)
        return f"ProbeBank({len(self)} monitors on d={self.n_features_in_}: {mix})"

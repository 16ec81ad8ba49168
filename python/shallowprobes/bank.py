"""Monitors and banks of monitors: fitted probes reduced to the polynomial they compute.

A *monitor* is one scalar score read off a hidden state, e.g. a toxicity or deception detector.
Every probe family in this library computes a polynomial of degree <= 2,

    f(h) = (h - c)^T Q (h - c) + w . (h - c) + b,

so a monitor is stored as exactly that (:class:`PolynomialMonitor`): a centre c, a symmetric Q
(absent for degree 1), a covector w and an offset b. A :class:`ProbeBank` is a named, ordered
collection of monitors on one model/layer. It can be built from any mix of fitted
`LinearProbe`, `QuadraticProbe` and `CPProbe` estimators (regressors and classifiers; a
probe with several outputs contributes one monitor per output), evaluates all of them at once,
and saves to / loads from a directory without pickle (see :mod:`shallowprobes.io`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ._backends import float64_row_blocks, is_torch_tensor, ops_of
from ._validation import check_X
from .io import BundleError, PathLike, read_bundle, require, write_bundle

__all__ = ["PolynomialMonitor", "ProbeBank"]

_KINDS = ("linear", "quadratic", "cp")
_BLOCK_ENTRIES = 1 << 22  # rows x features evaluated at a time


def _to_numpy(value: Any) -> np.ndarray:
    """Fitted attributes may be torch tensors (torch-backend fits); bring them to numpy."""
    if is_torch_tensor(value):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def _check_rows(H: Any, d: int, owner: str) -> Any:
    """Validated hidden states: a torch tensor stays a tensor where it lives."""
    return check_X(H, name="H", n_features=d, owner=owner, keep_tensor=is_torch_tensor(H))


def _check_finite(arr: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or inf; a monitor must have finite coefficients.")
    return arr


@dataclass(frozen=True, eq=False)
class PolynomialMonitor:
    """The score f(h) = (h - centre)^T quadratic (h - centre) + linear . (h - centre) + intercept.

    Parameters
    ----------
    linear : (d,) covector w.
    intercept : offset b (the score at h = centre).
    quadratic : (d, d) matrix Q, or None for a degree-1 monitor. Only its symmetric part
        enters the score, so it is stored symmetrised.
    centre : (d,) point c the polynomial is expanded about (default: the origin). Expanding
        about the data mean keeps the coefficients well conditioned.
    kind : where the monitor came from: "linear", "quadratic" or "cp" (default: "linear"
        when quadratic is None, else "quadratic").
    """

    linear: np.ndarray
    intercept: float = 0.0
    quadratic: Optional[np.ndarray] = None
    centre: Optional[np.ndarray] = None
    kind: Optional[str] = None
    info: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        w = _check_finite(np.array(_to_numpy(self.linear), dtype=np.float64), "linear")
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"linear must be a non-empty 1-D covector, got shape {w.shape}.")
        d = w.size
        c = np.zeros(d) if self.centre is None else np.array(_to_numpy(self.centre))
        if c.shape != (d,):
            raise ValueError(f"centre must have shape ({d},) like linear, got {c.shape}.")
        _check_finite(c, "centre")
        Q = None
        if self.quadratic is not None:
            Q = _check_finite(np.array(_to_numpy(self.quadratic)), "quadratic")
            if Q.shape != (d, d):
                raise ValueError(f"quadratic must have shape ({d}, {d}), got {Q.shape}.")
            Q = 0.5 * (Q + Q.T)
        b = float(np.asarray(_to_numpy(self.intercept)).reshape(()))
        if not np.isfinite(b):
            raise ValueError("intercept is NaN or inf; a monitor must have finite coefficients.")
        kind = self.kind if self.kind is not None else ("linear" if Q is None else "quadratic")
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}.")
        for arr in (w, c) + (() if Q is None else (Q,)):
            arr.setflags(write=False)
        object.__setattr__(self, "linear", w)
        object.__setattr__(self, "centre", c)
        object.__setattr__(self, "quadratic", Q)
        object.__setattr__(self, "intercept", b)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "_placed", {})  # float64 tensor copies per torch device

    def _on(self, device: Any) -> tuple:
        """(linear, centre, intercept, quadratic) as float64 tensors on a torch device (cached:
        evaluating on a GPU moves the coefficients there once)."""
        key = str(device)
        if key not in self._placed:
            import torch

            def put(a):
                return None if a is None else torch.from_numpy(a.copy()).to(device)

            self._placed[key] = (put(self.linear), put(self.centre), self.intercept,
                                 put(self.quadratic))  # fmt: skip
        return self._placed[key]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_input_coordinates(
        cls,
        linear: Any,
        intercept: float = 0.0,
        quadratic: Any = None,
        centre: Any = None,
        kind: Optional[str] = None,
    ) -> PolynomialMonitor:
        """The monitor h^T Q h + w . h + b (coefficients about the origin), re-expanded about
        `centre` (default: the origin)."""
        raw = cls(linear, intercept, quadratic, None, kind)
        return raw if centre is None else raw.recentred(centre)

    @classmethod
    def from_probe(cls, probe: Any, output: int = 0) -> PolynomialMonitor:
        """Output `output` of a fitted LinearProbe / QuadraticProbe / CPProbe (or classifier).

        For binary classifiers output 0 is the decision value (positive means classes_[1]);
        for multi-class classifiers output j is the one-vs-rest score of classes_[j].
        """
        n_out = _n_outputs(probe)
        if not 0 <= int(output) < n_out:
            raise IndexError(f"output {output} out of range: the probe has {n_out} output(s).")
        kind = _probe_kind(probe)
        if kind == "linear":
            coef = _to_numpy(probe.coef_).reshape(n_out, -1)
            intercept = _to_numpy(probe.intercept_).reshape(-1)
            return cls(coef[output], float(intercept[output]), None, None, "linear")
        Q = _to_numpy(probe.quadratic_).reshape(n_out, *_to_numpy(probe.quadratic_).shape[-2:])
        w = _to_numpy(probe.linear_).reshape(n_out, -1)
        b = _to_numpy(probe.intercept_).reshape(-1)
        centre = _to_numpy(probe.centre_)
        return cls.from_input_coordinates(w[output], float(b[output]), Q[output], centre, kind)

    # ------------------------------------------------------------------ properties
    @property
    def n_features(self) -> int:
        return int(self.linear.size)

    @property
    def degree(self) -> int:
        """2 when Q is present and non-zero, else 1."""
        return 2 if self.quadratic is not None and np.any(self.quadratic) else 1

    def covectors(self) -> np.ndarray:
        """(d, m) matrix whose columns span the covectors the monitor reads: w and the
        columns of Q. A direction delta with covectors().T @ delta = 0 never changes f."""
        if self.quadratic is None:
            return self.linear[:, None].copy()
        return np.column_stack([self.linear, self.quadratic])

    # ------------------------------------------------------------------ evaluation
    def decision_function(self, H: Any) -> np.ndarray:
        """Scores (n,) for hidden states H (n, d): float64, a tensor on H's device when H is a
        torch tensor (computed there), else a numpy array."""
        X = _check_rows(H, self.n_features, "this monitor")
        return _evaluate(X, [self])[:, 0]

    __call__ = decision_function

    # ------------------------------------------------------------------ algebra
    def recentred(self, centre: Any) -> PolynomialMonitor:
        """The same function, expanded about another centre."""
        new = _check_finite(np.array(_to_numpy(centre)).reshape(-1), "centre")
        if new.shape != (self.n_features,):
            raise ValueError(f"centre must have shape ({self.n_features},), got {new.shape}.")
        e = new - self.centre
        w, b = self.linear, self.intercept + float(self.linear @ e)
        if self.quadratic is not None:
            Qe = self.quadratic @ e
            w = w + 2.0 * Qe
            b += float(e @ Qe)
        return PolynomialMonitor(w, b, self.quadratic, new, self.kind, dict(self.info))

    def compose_affine(self, G: Any, offset: Any, centre: Any) -> PolynomialMonitor:
        """The monitor x' -> f(G (x' - centre) + offset) on another space.

        G is (d, d') (d = this monitor's width), offset (d,), centre (d',). This is how a
        monitor on model A's coordinates becomes a monitor on model B's hidden states once an
        affine map B -> A is known; the result is again a polynomial of degree <= 2.
        """
        G = _check_finite(np.array(_to_numpy(G)), "G")
        d = self.n_features
        if G.ndim != 2 or G.shape[0] != d:
            raise ValueError(f"G must have shape ({d}, d_new), got {G.shape}.")
        offset = np.array(_to_numpy(offset)).reshape(-1)
        centre = np.array(_to_numpy(centre)).reshape(-1)
        if offset.shape != (d,) or centre.shape != (G.shape[1],):
            raise ValueError(
                f"offset must have shape ({d},) and centre ({G.shape[1]},); got "
                f"{offset.shape} and {centre.shape}."
            )
        e = offset - self.centre
        w = G.T @ self.linear
        b = self.intercept + float(self.linear @ e)
        Q_new = None
        if self.quadratic is not None:
            Qe = self.quadratic @ e
            w = w + 2.0 * (G.T @ Qe)
            b += float(e @ Qe)
            Q_new = G.T @ self.quadratic @ G
        return PolynomialMonitor(w, b, Q_new, centre, self.kind, dict(self.info))

    def __repr__(self) -> str:
        return f"PolynomialMonitor(kind={self.kind!r}, degree={self.degree}, d={self.n_features})"


def _probe_kind(probe: Any) -> str:
    if hasattr(probe, "factors_") or type(probe).__name__.startswith("CP"):
        return "cp"
    if hasattr(type(probe), "quadratic_"):
        return "quadratic"
    if hasattr(probe, "coef_"):
        return "linear"
    raise TypeError(
        f"{type(probe).__name__} is not a fitted probe: expected a fitted LinearProbe, "
        "QuadraticProbe or CPProbe (or classifier), or a PolynomialMonitor."
    )


def _n_outputs(probe: Any) -> int:
    try:
        if _probe_kind(probe) == "linear":
            coef = _to_numpy(probe.coef_)
        else:
            coef = _to_numpy(probe.linear_)
    except (AttributeError, ValueError) as exc:  # NotFittedError is both
        raise ValueError(
            f"{type(probe).__name__} is not fitted; fit it before adding it to a bank ({exc})."
        ) from None
    return 1 if coef.ndim == 1 else coef.shape[0]


def _output_labels(probe: Any, n_out: int) -> list[str]:
    classes = getattr(probe, "classes_", None) if hasattr(probe, "predict_proba") else None
    if classes is not None and len(classes) == n_out:
        return [str(c) for c in classes]
    return [str(j) for j in range(n_out)]


def _evaluate(X: Any, monitors: list[PolynomialMonitor]) -> Any:
    """(n, m) float64 scores, in row blocks so no n x d float64 temporary is larger than
    needed: numpy for numpy X, a tensor on X's device for a torch X (the coefficients are
    copied there once, see `PolynomialMonitor._on`). The degree-1 monitors are evaluated
    together with one matrix product."""
    xp = ops_of(X)
    if xp.is_torch:
        params = [m._on(X.device) for m in monitors]
    else:
        params = [(m.linear, m.centre, m.intercept, m.quadratic) for m in monitors]
    out = xp.empty((X.shape[0], len(monitors)))
    lin = [j for j, m in enumerate(monitors) if m.quadratic is None]
    quad = [j for j, m in enumerate(monitors) if m.quadratic is not None]
    if lin:
        W = xp.stack([params[j][0] for j in lin], axis=1)
        const = xp.asarray([params[j][2] - float(params[j][0] @ params[j][1]) for j in lin])
    for rows, Xb in float64_row_blocks(X, _BLOCK_ENTRIES):
        if lin:
            out[rows, lin] = Xb @ W + const
        for j in quad:
            w, c, b, Q = params[j]
            U = Xb - c
            out[rows, j] = U @ w + b + ((U @ Q) * U).sum(1)
    return out


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
        self._monitors: dict[str, PolynomialMonitor] = {}
        self.metadata: dict = dict(metadata or {})
        self.report: Any = None  # a CoverageReport when the bank was made by `transfer`
        if monitors is not None:
            if not isinstance(monitors, Mapping):
                raise TypeError(
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
            raise TypeError(f"monitor names must be non-empty strings, got {name!r}.")
        if isinstance(probe, PolynomialMonitor):
            if output not in (None, 0):
                raise ValueError("a PolynomialMonitor has a single output; drop output=.")
            new = {name: probe}
        else:
            n_out = _n_outputs(probe)
            if output is not None:
                new = {name: PolynomialMonitor.from_probe(probe, output)}
            elif n_out == 1:
                new = {name: PolynomialMonitor.from_probe(probe, 0)}
            else:
                labels = _output_labels(probe, n_out)
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
            raise ValueError("the bank is empty; add monitors first.")
        return next(iter(self._monitors.values())).n_features

    # ------------------------------------------------------------------ evaluation
    def decision_function(self, H: Any, names: Any = None) -> np.ndarray:
        """Scores (n, m) of every monitor (or of `names`), columns in `names` order.

        float64; for a torch tensor H the scores are computed on H's device and returned as a
        tensor there (the coefficients are copied to the device once and cached)."""
        if not self._monitors:
            raise ValueError("the bank is empty; add monitors first.")
        picked = self.names if names is None else ([names] if isinstance(names, str) else names)
        monitors = [self[n] for n in picked]
        X = _check_rows(H, self.n_features_in_, "this bank")
        return _evaluate(X, monitors)

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

    @classmethod
    def _from_arrays(cls, meta: dict, arrays: dict, where: str, prefix: str = "") -> ProbeBank:
        try:
            names = list(meta["names"])
            kinds, has_q = list(meta["kinds"]), list(meta["has_quadratic"])
            intercepts, infos = list(meta["intercepts"]), list(meta.get("infos", [{}] * len(names)))
            metadata = dict(meta.get("metadata", {}))
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{where}: the bank metadata is incomplete ({exc}).") from None
        if not (len(names) == len(kinds) == len(has_q) == len(intercepts) == len(infos)):
            raise BundleError(f"{where}: the bank metadata lists are of different lengths.")
        bank = cls(metadata=metadata)
        for j, name in enumerate(names):
            Q = require(arrays, f"{prefix}quadratic_{j}", where, 2) if has_q[j] else None
            try:
                monitor = PolynomialMonitor(
                    require(arrays, f"{prefix}linear_{j}", where, 1),
                    float(intercepts[j]),
                    Q,
                    require(arrays, f"{prefix}centre_{j}", where, 1),
                    kinds[j],
                    dict(infos[j] or {}),
                )
                bank.add(name, monitor)
            except (ValueError, TypeError) as exc:
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
        """Read a bank written by `save` (a transferred bank keeps its coverage report)."""
        meta, arrays = read_bundle(path, "bank")
        bank = cls._from_arrays(meta, arrays, f"bank at {str(path)!r}")
        if meta.get("report") is not None:
            from .transfer import CoverageReport

            try:
                bank.report = CoverageReport.from_dict(meta["report"])
            except (KeyError, TypeError, ValueError) as exc:
                raise BundleError(f"bank at {str(path)!r}: bad coverage report ({exc}).") from None
        return bank

    def __repr__(self) -> str:
        if not self._monitors:
            return "ProbeBank(empty)"
        kinds = {k: sum(m.kind == k for m in self._monitors.values()) for k in _KINDS}
        mix = ", ".join(f"{v} {k}" for k, v in kinds.items() if v)
        return f"ProbeBank({len(self)} monitors on d={self.n_features_in_}: {mix})"


"""The probe-visible quotient of a bank of monitors (Lee & Kondor 2026, §1 point 4).

For a bank V of monitors f(h) = (h-c)^T Q (h-c) + w.(h-c) + b, the *invisible* directions are

    K(V) = {delta : f(h + delta) = f(h) for every f in V and every h} = ∩_f (ker Q_f ∩ ker w_f^T).

Every monitor factors through the quotient H / K(V), whose coordinates are z = C^T (h - m) with
C a basis of the span of all covectors (the w_f and the columns of the Q_f). C is found by an
SVD with a relative cut-off. Two models need to agree only on z, not on the whole hidden
state, for their monitors to carry over (see :mod:`shallowprobes.monitors.transfer`).

Two geometries decide which directions count as "read" and how much:

- Euclidean (``fit(bank)``): covectors are compared by their coefficient norms; C is
  orthonormal. Exact and data-free, but it depends on the units of h: a monitor written in
  raw coordinates of a model with near-dead units (std 1e-33, weights 1e32 on them) is, by
  coefficient norm, almost entirely a monitor of the dead units.
- The data's metric (``fit(bank, reference=H)``): every covector is measured by the score
  variance it produces on the reference hidden states (w -> S^(1/2) w with S their
  covariance), so units the data never moves cannot dominate the cut-off. C is then
  S-orthonormal (C^T S C = I: z is whitened on the reference), and the reproduction error is
  the fraction of each monitor's score variance that the kept directions lose. This is the
  geometry `QuotientAligner` uses.

The covector matrices, the metric root and the bases are plain array functions in
:mod:`.visible`; this module is the estimator built on them.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any, Optional, Union

import numpy as np

from .._base import BaseEstimator, NotFittedError, user_stacklevel
from .._params import (
    Array,
    Interval,
    ParameterError,
    Predicate,
    params_of,
    validate_params,
)
from .._validation import check_X
from ..backends import is_torch_tensor, to_numpy
from ..errors import BundleError, EmptyBankError
from ..io import (
    PathLike,
    bad_field,
    json_dict,
    json_fields,
    json_float,
    json_int,
    json_str,
    read_bundle,
    write_bundle,
)
from ..threads import interruptible
from .bank import ProbeBank
from .monitor import PolynomialMonitor, as_float64
from .visible import (
    complement_basis,
    fix_signs,
    left_singular,
    metric_basis,
    metric_covectors,
    metric_root,
    project_rows,
    reference_moments,
    visible_covectors,
)

# The geometry functions live in .visible; the public ones were first published from this
# module and stay importable from it.
__all__ = ["Quotient", "visible_covectors", "reference_moments"]

# Reproduction error (relative to the monitor's coefficient norm) above which fit() warns.
_REPRODUCTION_TOL = 1e-8
# The schema of a saved quotient (besides its bank's monitors, stored under "bank/").
_META_SCHEMA = {
    "rtol": partial(json_float, lo=0.0, below=1.0),
    "rank": partial(json_int, lo=1, nullable=True),
    "bank": json_dict,
    "metric": partial(json_str, choices=("reference",)),  # present only for the data metric
}
_ARRAYS = ("visible_basis", "invisible_basis", "singular_values", "centre")
_REFERENCE_ARRAYS = ("reference_mean", "reference_covariance")


class Quotient(BaseEstimator):
    """The probe-visible quotient of a ProbeBank (get_params / set_params as for estimators).

    Parameters
    ----------
    rtol : relative cut-off: singular values of the (per-monitor normalised) covector matrix
        below ``rtol * singular_values_[0]`` count as zero (with a reference in `fit`: of the
        covectors whitened by the reference covariance, each monitor normalised by the spread
        of its score there). The default 1e-6 keeps every
        direction that a monitor reads with more than round-off weight; probes fitted on noisy
        full-rank data read every direction a little, so inspect `singular_values_` and pass
        `rank` (or a larger rtol) to keep only the dominant ones.
    rank : keep exactly this many visible directions (overrides rtol).
    centre : point m the coordinates are measured from, z = C^T (h - m) (default: the mean of
        the reference hidden states when `fit` gets one, else the mean of the monitors'
        centres, which for fitted probes are training means).
    device : None (numpy) or a torch device ("cuda", "cpu", ...) on which the
        eigendecompositions of the monitors' Q and the covector SVD run (worth it for large
        banks of degree-2 monitors at LLM widths). The fitted bases are kept as numpy either
        way (they are d x d at most); `transform` of a tensor runs on the tensor's device.

    Attributes (after `fit`)
    ------------------------
    rank_ : r, the number of visible coordinates.
    metric_ : "euclidean" (fitted without a reference) or "reference" (in the reference
        data's metric, see the module docs).
    singular_values_ : all singular values of the covector matrix, descending (whitened
        covectors for the reference metric).
    visible_basis_ : (d, r) C; z = C^T (h - centre_). Orthonormal (C^T C = I) for the
        Euclidean metric, S-orthonormal (C^T S C = I, S the reference covariance) for the
        reference metric.
    invisible_basis_ : (d, d - r) orthonormal basis of the directions C^T ignores: K(V),
        f(h + delta) = f(h) for all f (for the reference metric: the directions no monitor
        reads with a share of its score variance on the reference above the cut-off).
    centre_ : (d,) the point m.
    reference_mean_, reference_covariance_ : the reference moments (None for Euclidean).
    monitors_ : ProbeBank of the same monitors written as functions of z (width r).
    reproduction_error_ : dict name -> how much of the monitor the kept coordinates lose:
        the relative coefficient error of writing it through z (Euclidean), or the square root
        of the fraction of its score variance on the reference that is lost (reference
        metric). Round-off unless the cut-off dropped directions the monitor reads; `fit`
        warns above 1e-8.
    bank_ : the source bank.
    """

    def __init__(
        self,
        rtol: float = 1e-6,
        *,
        rank: Optional[int] = None,
        centre: Any = None,
        device: Any = None,
    ) -> None:
        self.rtol = rtol
        self.rank = rank
        self.centre = centre
        self.device = device

    @classmethod
    def from_bank(cls, bank: ProbeBank, **params: Any) -> Quotient:
        """Shorthand for ``Quotient(**params).fit(bank)``."""
        return cls(**params).fit(bank)

    # ------------------------------------------------------------------ fitting
    def _check_params(self, d: Optional[int] = None) -> Any:
        """Validate every parameter (ParameterError naming it) before any work; the bounds
        that need the width (rank <= d, centre of length d) when d is given. Returns the
        torch device (None for numpy)."""
        constraints = {
            "rtol": [Interval("real", 0.0, 1.0, closed="left")],
            "rank": [Interval("int", 1, d), None],
            "centre": [None, Array(1, shape=None if d is None else (d,),
                                   desc=f"a finite vector of length {'d' if d is None else d}")],
            "device": [None, Predicate(_is_device, "a torch device (e.g. 'cuda' or 'cpu')")],
        }  # fmt: skip
        validate_params(params_of(self, constraints), constraints, owner="Quotient")
        if self.device is None:
            return None
        from ..backends import torch_backend

        torch_backend()  # clear error naming the extra when torch is missing
        import torch

        try:
            return torch.device(self.device)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ParameterError(
                f"Quotient: device must be a torch device, got {self.device!r} ({exc})."
            ) from None

    @interruptible
    def fit(self, bank: ProbeBank, reference: Any = None, *, _moments: Any = None) -> Quotient:
        """Compute the visible and invisible subspaces of `bank` (an SVD of its covectors).

        reference : optional (n, d) hidden states of the bank's model (numpy or a torch
            tensor). With it the quotient is built in the data's metric: covectors are scaled
            by the reference covariance before the cut-off, so the kept rank counts what the
            monitors read *on this data* (see the module docs); without it, in Euclidean
            coordinates (coefficient norms).
        """
        if not isinstance(bank, ProbeBank):
            raise TypeError(
                f"Quotient.fit expects a ProbeBank, got {type(bank).__name__}; build one with "
                "ProbeBank({'name': fitted_probe, ...})."
            )
        if len(bank) == 0:
            raise EmptyBankError("the bank is empty; a quotient needs at least one monitor.")
        d = bank.n_features_in_
        device = self._check_params(d)
        moments = _moments
        if moments is None and reference is not None:
            moments = reference_moments(reference, d)
        if self.centre is not None:
            centre = np.array(as_float64(self.centre), dtype=np.float64).reshape(-1)
        elif moments is not None:
            centre = np.array(moments[0], dtype=np.float64)
        else:
            centre = np.mean([m.centre for m in bank.values()], axis=0)
        if moments is None:
            M = visible_covectors(bank, device)
            L = None
        else:
            L = metric_root(moments[1])
            M, M_raw = metric_covectors(bank, L, device)
        if M.shape[1] == 0:
            raise ValueError(
                "every monitor in the bank is constant (all coefficients zero"
                + ("" if moments is None else ", or reading only units the reference never "
                   "moves") + "), so nothing is visible; a quotient needs at least one "
                "non-constant monitor."
            )  # fmt: skip
        U, s = left_singular(M)
        if self.rank is not None:
            r = int(self.rank)
        else:
            r = int(np.sum(s > float(self.rtol) * s[0]))
        r = max(min(r, d), 1)
        if moments is None:
            U = np.hstack([fix_signs(U[:, :r]), fix_signs(U[:, r:])])
            C, K = U[:, :r].copy(), U[:, r:].copy()
        else:
            C = metric_basis(fix_signs(U[:, :r]), s, M, M_raw, L)
            K = complement_basis(C)
        self._set_fitted(bank, C, K, s, centre, moments, L)
        bad = {k: v for k, v in self.reproduction_error_.items() if v > _REPRODUCTION_TOL}
        if bad:
            worst = max(bad, key=bad.get)
            what = (
                "relative error" if moments is None
                else "share of its score variance on the reference lost"
            )  # fmt: skip
            size = bad[worst] if moments is None else bad[worst] ** 2
            warnings.warn(
                f"{len(bad)} monitor(s) are not reproduced exactly from the {r} quotient "
                f"coordinates (worst: {worst!r}, {what} {size:.2g}): the cut-off "
                "dropped directions they read. Lower rtol or raise rank to keep them.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        return self

    def _set_fitted(self, bank, C, K, s, centre, moments=None, L=None) -> None:
        self.__dict__.pop("_device_cache", None)
        self.bank_ = bank
        self.visible_basis_ = C
        self.invisible_basis_ = K
        self.singular_values_ = np.asarray(s, dtype=np.float64)
        self.centre_ = np.asarray(centre, dtype=np.float64)
        self.rank_ = C.shape[1]
        self.n_features_in_ = C.shape[0]
        self.metric_ = "euclidean" if moments is None else "reference"
        if moments is None:
            self.reference_mean_ = self.reference_covariance_ = None
            self._lift = C
        else:
            mu, S = (np.asarray(a, dtype=np.float64) for a in moments)
            self.reference_mean_, self.reference_covariance_ = mu, S
            self._lift = S @ C  # inverse_transform: the Mahalanobis-shortest state with z
        self.monitors_ = ProbeBank(metadata={"coordinates": "quotient"})
        self.reproduction_error_ = {}
        geometry = None if moments is None else self._geometry(moments)
        if moments is not None and L is None:
            L = metric_root(self.reference_covariance_)
        for name, m in bank.items():
            if geometry is None:
                z_monitor, err = self._through_z(m)
            else:
                z_monitor = self.project(m, _geometry=geometry)
                err = self._metric_error(m, z_monitor, L)
            self.monitors_.add(name, z_monitor)
            self.reproduction_error_[name] = err

    def _metric_error(self, m: PolynomialMonitor, z_monitor: PolynomialMonitor, L) -> float:
        """sqrt(share of the monitor's (Gaussian) score variance on the reference that its
        z-only form loses), computed on whitened coefficients so that round-off stays at
        round-off (1 - coverage would leave ~1e-8 after the square root)."""
        LC = L @ self.visible_basis_
        w = m.recentred(self.reference_mean_).linear
        lost = float(np.sum((L @ w - LC @ z_monitor.linear) ** 2))
        total = float(np.sum((L @ w) ** 2))
        if m.quadratic is not None:
            Qw = L @ m.quadratic @ L.T
            lost += 2.0 * float(np.sum((Qw - LC @ z_monitor.quadratic @ LC.T) ** 2))
            total += 2.0 * float(np.sum(Qw * Qw))
        return float(np.sqrt(lost / total)) if total > 0 else 0.0

    def _through_z(self, m: PolynomialMonitor) -> tuple[PolynomialMonitor, float]:
        """The monitor as a function of z (exact when its covectors lie in span C), and the
        relative size of the part the cut-off dropped (Euclidean metric: C orthonormal)."""
        C = self.visible_basis_
        w_z = C.T @ m.linear
        lost = np.linalg.norm(m.linear - C @ w_z) ** 2
        total = np.linalg.norm(m.linear) ** 2
        Q_z = None
        if m.quadratic is not None:
            Q_z = C.T @ m.quadratic @ C
            lost += np.linalg.norm(m.quadratic - C @ Q_z @ C.T) ** 2
            total += np.linalg.norm(m.quadratic) ** 2
        err = float(np.sqrt(lost / total)) if total > 0 else 0.0
        centre_z = C.T @ (m.centre - self.centre_)
        return PolynomialMonitor(w_z, m.intercept, Q_z, centre_z, m.kind, dict(m.info)), err

    def _check_fitted(self) -> None:
        if not hasattr(self, "visible_basis_"):
            raise NotFittedError("This Quotient is not fitted yet; call fit(bank) first.")

    # ------------------------------------------------------------------ coordinates
    def _placed(self, device: Any) -> tuple:
        """(centre_, visible_basis_, lift) as float64 tensors on a torch device (cached)."""
        cache = self.__dict__.setdefault("_device_cache", {})
        key = str(device)
        if key not in cache:
            import torch

            arrays = (self.centre_, self.visible_basis_, self._lift)
            cache[key] = tuple(torch.from_numpy(np.array(a)).to(device) for a in arrays)
        return cache[key]

    def transform(self, H: Any) -> np.ndarray:
        """Quotient coordinates z = C^T (h - centre_): (n, rank_), float64 (a tensor on H's
        device for a torch tensor H, computed there in row blocks)."""
        self._check_fitted()
        X = check_X(H, name="H", n_features=self.n_features_in_, owner="this quotient",
                    keep_tensor=True)  # fmt: skip
        if is_torch_tensor(X):
            return project_rows(X, *self._placed(X.device)[:2])
        return project_rows(X, self.centre_, self.visible_basis_)

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """A hidden state with quotient coordinates Z: the one with no invisible component
        (Euclidean metric), or the one closest to the reference mean in the reference's
        Mahalanobis distance, centre_ + S C z (reference metric)."""
        self._check_fitted()
        Z = check_X(Z, name="Z", n_features=self.rank_, owner="this quotient",
                    keep_tensor=True)  # fmt: skip
        if is_torch_tensor(Z):
            centre, _, lift = self._placed(Z.device)
            return centre + Z.double() @ lift.T
        return self.centre_ + np.asarray(Z, dtype=np.float64) @ self._lift.T

    def check(self, H: Any) -> np.ndarray:
        """Per monitor, max |f(h) - f_z(z(h))| over the rows H: the bank reproduced from z."""
        self._check_fitted()
        direct = to_numpy(self.bank_.decision_function(H))
        via_z = to_numpy(self.monitors_.decision_function(self.transform(H)))
        return np.max(np.abs(direct - via_z), axis=0)

    # ------------------------------------------------------------------ coverage
    def _geometry(self, moments: tuple) -> tuple:
        """(mu, S, P, S_z) for reference moments (mu, S): P (r, d) maps a covector to the
        z-covector of its S-orthogonal projection onto span C, and S_z = C^T S C. Computed
        once and shared by every monitor projected or covered in the same geometry."""
        mu, S = moments
        C = self.visible_basis_
        SC = S @ C
        S_z = C.T @ SC
        return mu, S, np.linalg.pinv(S_z, rcond=1e-12, hermitian=True) @ SC.T, S_z

    def _moments(self, reference: Any) -> tuple[np.ndarray, np.ndarray]:
        d = self.n_features_in_
        if reference is None:
            if self.reference_covariance_ is not None:
                return self.reference_mean_, self.reference_covariance_
            return self.centre_, np.eye(d)
        return reference_moments(reference, d)

    def project(
        self, monitor: PolynomialMonitor, reference: Any = None, *, _geometry: Any = None
    ) -> PolynomialMonitor:
        """The best approximation of `monitor` that reads only z, written as a function of z.

        "Best" is in the geometry of the reference hidden states (n, d): the linear part is the
        least-squares regression of w.(h - mu) on z, the quadratic part is Q sandwiched by the
        same projection, and the offset keeps the mean score on the reference unchanged. With
        reference=None the geometry is Euclidean. A monitor already in the visible span comes
        back unchanged.
        """
        self._check_fitted()
        monitor = _as_monitor(monitor, self.n_features_in_)
        geometry = _geometry or self._geometry(self._moments(reference))
        mu, S, P, S_z = geometry
        m = monitor.recentred(mu)
        w_z = P @ m.linear
        Q_z, b = None, m.intercept
        if m.quadratic is not None:
            Q_z = P @ m.quadratic @ P.T
            b += float(np.sum(m.quadratic * S) - np.sum(Q_z * S_z))
        centre_z = self.visible_basis_.T @ (mu - self.centre_)
        return PolynomialMonitor(w_z, b, Q_z, centre_z, m.kind, dict(m.info))

    def coverage(
        self, monitors: Union[PolynomialMonitor, ProbeBank, Any], reference: Any = None
    ) -> Union[float, dict]:
        """Label-free coverage of monitors by the visible quotient, in [0, 1].

        The fraction of a monitor's score variance on the reference hidden states that its
        best z-only approximation (see `project`) keeps. For a degree-1 monitor this is the
        squared length of the projection of its whitened covector S^(1/2) w onto the whitened
        visible span, divided by its squared length; for degree 2 the variance uses the
        Gaussian formula Var = w^T S w + 2 tr((Q S)^2). Monitors of the bank itself have
        coverage 1 (unless the cut-off dropped directions they read); a monitor reading only
        invisible directions has coverage 0. Without a reference: the quotient's own
        reference when it was fitted with one, else S = I.

        Returns a float for one monitor, a dict name -> float for a bank.
        """
        self._check_fitted()
        geometry = self._geometry(self._moments(reference))
        if isinstance(monitors, ProbeBank):
            return {name: self._coverage_one(m, geometry) for name, m in monitors.items()}
        return self._coverage_one(_as_monitor(monitors, self.n_features_in_), geometry)

    def _coverage_one(
        self, monitor: PolynomialMonitor, geometry: tuple, *, _projected: Any = None
    ) -> float:
        if monitor.n_features != self.n_features_in_:
            raise ValueError(
                f"the monitor reads {monitor.n_features}-dimensional states, the quotient "
                f"{self.n_features_in_}-dimensional ones."
            )
        mu, S, _, S_z = geometry
        proj = _projected if _projected is not None else self.project(monitor, _geometry=geometry)
        full = _gaussian_variance(monitor.recentred(mu), S)
        kept = _gaussian_variance(proj, S_z)
        if full <= 1e-300:
            return 1.0  # constant on the reference: nothing to lose
        return float(np.clip(kept / full, 0.0, 1.0))

    # ------------------------------------------------------------------ persistence
    def save(self, path: PathLike) -> None:
        """Write the quotient and its bank to directory `path` (quotient.json + .npz)."""
        self._check_fitted()
        bank_meta, arrays = self.bank_._to_arrays(prefix="bank/")
        arrays.update(
            visible_basis=self.visible_basis_,
            invisible_basis=self.invisible_basis_,
            singular_values=self.singular_values_,
            centre=self.centre_,
        )
        meta = {"rtol": float(self.rtol), "rank": None if self.rank is None else int(self.rank),
                "bank": bank_meta}  # fmt: skip
        if self.metric_ == "reference":
            meta["metric"] = "reference"
            arrays.update(reference_mean=self.reference_mean_,
                          reference_covariance=self.reference_covariance_)  # fmt: skip
        write_bundle(path, "quotient", meta, arrays)

    @classmethod
    def load(cls, path: PathLike) -> Quotient:
        """Read a quotient written by `save`.

        The files are untrusted input held to a schema (see `shallowprobes.io`): a non-empty
        bank, bases of shapes (d, r) and (d, d - r) with 1 <= r <= d, at most d singular
        values, a centre of length d, rank None or r. Raises FileNotFoundError when there is
        no quotient at `path`, and `BundleError` (a ValueError) naming the file and the field
        for a corrupted, truncated or inconsistent bundle.
        """
        with read_bundle(path, "quotient") as bundle:
            where, npz = bundle.where, bundle.arrays
            meta = json_fields(bundle.meta, where, "meta", _META_SCHEMA, optional=("metric",))
            bank_meta = ProbeBank._read_meta(meta["bank"], where, "meta.bank", allow_report=False)
            if not bank_meta["names"]:
                raise bad_field(where, "meta.bank.names", "a quotient's bank has monitors")
            in_metric = meta.get("metric") == "reference"
            npz.check_names([*ProbeBank._member_names(bank_meta, "bank/"), *_ARRAYS,
                             *(_REFERENCE_ARRAYS if in_metric else ())])  # fmt: skip
            d = ProbeBank._check_arrays(bank_meta, npz, "bank/")
            C_shape, K_shape = npz.shape("visible_basis", 2), npz.shape("invisible_basis", 2)
            r = C_shape[1]
            if C_shape[0] != d or K_shape != (d, d - r) or not 1 <= r <= d:
                raise npz.error(
                    "visible_basis", f"the basis shapes {C_shape} and {K_shape} do not match "
                    f"the bank's width {d}",
                )  # fmt: skip
            (n_sv,) = npz.shape("singular_values", 1)
            if not 1 <= n_sv <= d:
                raise npz.error("singular_values", f"{n_sv} values, expected 1 to {d}")
            npz.check("centre", (d,))
            if meta["rank"] is not None and meta["rank"] != r:
                raise bad_field(where, "meta.rank", f"rank {meta['rank']} but the basis has {r}")
            bank = ProbeBank._read_arrays(bank_meta, npz, where, prefix="bank/")
            C = npz.read("visible_basis", (d, r))
            K = npz.read("invisible_basis", (d, d - r))
            s = npz.read("singular_values", (n_sv,))
            centre = npz.read("centre", (d,))
            moments = None
            if in_metric:
                npz.check("reference_mean", (d,))
                npz.check("reference_covariance", (d, d))
                moments = (npz.read("reference_mean", (d,)),
                           npz.read("reference_covariance", (d, d)))  # fmt: skip
        out = cls(meta["rtol"], rank=meta["rank"], centre=centre)
        try:
            with np.errstate(all="ignore"):  # overflow on hostile values: refused just below
                out._set_fitted(bank, C, K, s, centre, moments)
        except ValueError as exc:
            raise BundleError(f"{where}: the quotient is invalid ({exc}).") from None
        return out

    def __repr__(self) -> str:
        if not hasattr(self, "visible_basis_"):
            return f"Quotient(rtol={self.rtol}, rank={self.rank})"
        metric = ", reference metric" if self.metric_ == "reference" else ""
        return (
            f"Quotient(rank_={self.rank_} of d={self.n_features_in_}, {len(self.bank_)} "
            f"monitors{metric})"
        )


def _is_device(value: Any) -> bool:
    """A torch device or its name (checked by torch.device when the quotient is fitted)."""
    return isinstance(value, str) or type(value).__module__.startswith("torch")


def _as_monitor(monitor: Any, d: int) -> PolynomialMonitor:
    if isinstance(monitor, PolynomialMonitor):
        m = monitor
    else:
        m = PolynomialMonitor.from_probe(monitor)
    if m.n_features != d:
        raise ValueError(
            f"the monitor reads {m.n_features}-dimensional states, the quotient {d}-dimensional."
        )
    return m


def _gaussian_variance(m: PolynomialMonitor, S: np.ndarray) -> float:
    """Var f(u) for u ~ N(0, S) with f centred at the mean: w^T S w + 2 tr((Q S)^2)."""
    var = float(m.linear @ S @ m.linear)
    if m.quadratic is not None:
        QS = m.quadratic @ S
        var += 2.0 * float(np.sum(QS * QS.T))
    return max(var, 0.0)

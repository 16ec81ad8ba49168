"""The probe-visible quotient of a bank of monitors (Lee & Kondor 2026, §1 point 4).

For a bank V of monitors f(h) = (h-c)^T Q (h-c) + w.(h-c) + b, the *invisible* directions are

    K(V) = {delta : f(h + delta) = f(h) for every f in V and every h} = ∩_f (ker Q_f ∩ ker w_f^T).

Every monitor factors through the quotient H / K(V), whose coordinates are z = C^T (h - m) with
C an orthonormal basis of the span of all covectors (the w_f and the columns of the Q_f). C is
found by an SVD with a relative cut-off. Two models need to agree only on z, not on the whole
hidden state, for their monitors to carry over (see :mod:`shallowprobes.transfer`).
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Union

import numpy as np

from ._backends import float64_row_blocks, is_torch_tensor, ops_of, to_numpy
from ._base import BaseEstimator, NotFittedError
from ._validation import check_X
from .bank import PolynomialMonitor, ProbeBank, _to_numpy
from .io import BundleError, PathLike, read_bundle, require, write_bundle
from .stats import SufficientStats

__all__ = ["Quotient", "visible_covectors", "reference_moments"]

# Relative size below which a monitor's Q eigenvalue is round-off (not a direction it reads).
_EIG_ROUNDOFF = 1e-14
# Reproduction error (relative to the monitor's coefficient norm) above which fit() warns.
_REPRODUCTION_TOL = 1e-8


def visible_covectors(bank: ProbeBank, device: Any = None) -> Any:
    """(d, m) covector matrix whose column span is the bank's visible span.

    Each monitor contributes w and its Q factored as V |Lambda| (same span and same Q Q^T as
    the columns of Q, fewer columns), scaled by 1 / ||[w, Q]||_F so that every monitor counts
    equally in the relative cut-off whatever the scale of its scores. With a torch `device`
    the eigendecompositions run there and the result is a float64 tensor on it.
    """
    if device is None:
        xp, eigh = np, np.linalg.eigh
        put = np.asarray
    else:
        import torch

        xp, eigh = torch, torch.linalg.eigh

        def put(a):
            return torch.from_numpy(np.array(a)).to(device)

    blocks = []
    for monitor in bank.values():
        cols = [put(monitor.linear)[:, None]]
        if monitor.quadratic is not None:
            lam, V = eigh(put(monitor.quadratic))
            top = float(xp.abs(lam).max())
            keep = xp.abs(lam) > _EIG_ROUNDOFF * max(top, 1e-300)
            cols.append(V[:, keep] * xp.abs(lam[keep]))
        block = xp.hstack(cols)
        norm = float(xp.linalg.norm(block))
        if norm > 0.0:
            blocks.append(block / norm)
    d = bank.n_features_in_
    return xp.hstack(blocks) if blocks else put(np.zeros((d, 0)))


def _left_singular(M: Any) -> tuple[np.ndarray, np.ndarray]:
    """(U (d, d), s) of the covector matrix M (numpy or a torch tensor), as numpy.

    Many columns (quadratic monitors): M^T = Q R, so M = R^T Q^T has the singular values and
    left vectors of the d x d matrix R^T, found without squaring M."""
    if is_torch_tensor(M):
        import torch

        if M.shape[1] > M.shape[0]:
            M = torch.linalg.qr(M.T, mode="r")[1].T
        U, s, _ = torch.linalg.svd(M, full_matrices=True)
        return to_numpy(U), to_numpy(s)
    if M.shape[1] > M.shape[0]:
        M = np.linalg.qr(M.T, mode="r").T
    U, s, _ = np.linalg.svd(M, full_matrices=True)
    return U, s


def reference_moments(
    reference: Any, d: int, backend: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance /n) of reference hidden states (n, d) via the statistics core (on
    the tensor's device for a CUDA tensor or backend="torch"); the small results come back
    as numpy."""
    X = check_X(reference, name="reference", n_features=d, min_samples=2, owner="the quotient",
                keep_tensor=is_torch_tensor(reference))  # fmt: skip
    stats = SufficientStats(backend=backend).update(X)
    return np.asarray(to_numpy(stats.input_mean)), np.asarray(to_numpy(stats.input_covariance()))


def project_rows(X: Any, centre: Any, M: Any) -> Any:
    """(X - centre) @ M in float64 row blocks (never a float64 copy of all of X). X numpy, or
    a torch tensor (then centre and M may be numpy or tensors; the result is a tensor on X's
    device)."""
    xp = ops_of(X)
    centre, M = xp.asarray(centre), xp.asarray(M)
    out = xp.empty((X.shape[0], M.shape[1]))
    for rows, Xb in float64_row_blocks(X):
        out[rows] = (Xb - centre) @ M
    return out


def _fix_signs(U: np.ndarray) -> np.ndarray:
    """Deterministic orientation: the largest-|.| entry of every column is positive."""
    if U.size == 0:
        return U
    idx = np.argmax(np.abs(U), axis=0)
    signs = np.sign(U[idx, np.arange(U.shape[1])])
    signs[signs == 0] = 1.0
    return U * signs


class Quotient(BaseEstimator):
    """The probe-visible quotient of a ProbeBank (get_params / set_params as for estimators).

    Parameters
    ----------
    rtol : relative cut-off: singular values of the (per-monitor normalised) covector matrix
        below ``rtol * singular_values_[0]`` count as zero. The default 1e-6 keeps every
        direction that a monitor reads with more than round-off weight; probes fitted on noisy
        full-rank data read every direction a little, so inspect `singular_values_` and pass
        `rank` (or a larger rtol) to keep only the dominant ones.
    rank : keep exactly this many visible directions (overrides rtol).
    centre : point m the coordinates are measured from, z = C^T (h - m) (default: the mean of
        the monitors' centres, which for fitted probes are training means).
    device : None (numpy) or a torch device ("cuda", "cpu", ...) on which the
        eigendecompositions of the monitors' Q and the covector SVD run (worth it for large
        banks of degree-2 monitors at LLM widths). The fitted bases are kept as numpy either
        way (they are d x d at most); `transform` of a tensor runs on the tensor's device.

    Attributes (after `fit`)
    ------------------------
    rank_ : r, the number of visible coordinates.
    singular_values_ : all singular values of the covector matrix, descending.
    visible_basis_ : (d, r) orthonormal C; z = C^T (h - centre_).
    invisible_basis_ : (d, d - r) orthonormal basis of K(V): f(h + delta) = f(h) for all f.
    centre_ : (d,) the point m.
    monitors_ : ProbeBank of the same monitors written as functions of z (width r).
    reproduction_error_ : dict name -> relative error of writing the monitor through z
        (round-off unless the cut-off dropped directions the monitor reads).
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
    def _check_params(self, d: int) -> None:
        rtol = self.rtol
        if isinstance(rtol, bool) or not isinstance(rtol, (int, float, np.floating, np.integer)):
            raise TypeError(f"rtol must be a number in [0, 1), got {rtol!r}.")
        if not 0.0 <= float(rtol) < 1.0:
            raise ValueError(f"rtol must be in [0, 1), got {rtol!r}.")
        if self.rank is not None:
            if isinstance(self.rank, bool) or not isinstance(self.rank, (int, np.integer)):
                raise TypeError(f"rank must be an int or None, got {self.rank!r}.")
            if not 1 <= int(self.rank) <= d:
                raise ValueError(f"rank must be between 1 and d = {d}, got {self.rank}.")

    def fit(self, bank: ProbeBank) -> Quotient:
        """Compute the visible and invisible subspaces of `bank` (an SVD of its covectors)."""
        if not isinstance(bank, ProbeBank):
            raise TypeError(
                f"Quotient.fit expects a ProbeBank, got {type(bank).__name__}; build one with "
                "ProbeBank({'name': fitted_probe, ...})."
            )
        if len(bank) == 0:
            raise ValueError("the bank is empty; a quotient needs at least one monitor.")
        d = bank.n_features_in_
        self._check_params(d)
        if self.centre is None:
            centre = np.mean([m.centre for m in bank.values()], axis=0)
        else:
            centre = np.array(_to_numpy(self.centre)).reshape(-1)
            if centre.shape != (d,) or not np.all(np.isfinite(centre)):
                raise ValueError(f"centre must be a finite vector of length {d}.")
        device = None
        if self.device is not None:
            from ._backends import torch_backend

            torch_backend()  # clear error naming the extra when torch is missing
            import torch

            device = torch.device(self.device)
        M = visible_covectors(bank, device)
        if M.shape[1] == 0:
            raise ValueError(
                "every monitor in the bank is constant (all coefficients zero), so nothing is "
                "visible; a quotient needs at least one non-constant monitor."
            )
        U, s = _left_singular(M)
        if self.rank is not None:
            r = int(self.rank)
        else:
            r = int(np.sum(s > float(self.rtol) * s[0]))
        r = max(min(r, d), 1)
        U = np.hstack([_fix_signs(U[:, :r]), _fix_signs(U[:, r:])])
        self._set_fitted(bank, U[:, :r].copy(), U[:, r:].copy(), s, centre)
        bad = {k: v for k, v in self.reproduction_error_.items() if v > _REPRODUCTION_TOL}
        if bad:
            worst = max(bad, key=bad.get)
            warnings.warn(
                f"{len(bad)} monitor(s) are not reproduced exactly from the {r} quotient "
                f"coordinates (worst: {worst!r}, relative error {bad[worst]:.2g}): the cut-off "
                "dropped directions they read. Lower rtol or raise rank to keep them.",
                UserWarning,
                stacklevel=2,
            )
        return self

    def _set_fitted(self, bank, C, K, s, centre) -> None:
        self.__dict__.pop("_device_cache", None)
        self.bank_ = bank
        self.visible_basis_ = C
        self.invisible_basis_ = K
        self.singular_values_ = np.asarray(s, dtype=np.float64)
        self.centre_ = np.asarray(centre, dtype=np.float64)
        self.rank_ = C.shape[1]
        self.n_features_in_ = C.shape[0]
        self.monitors_ = ProbeBank(metadata={"coordinates": "quotient"})
        self.reproduction_error_ = {}
        for name, m in bank.items():
            z_monitor, err = self._through_z(m)
            self.monitors_.add(name, z_monitor)
            self.reproduction_error_[name] = err

    def _through_z(self, m: PolynomialMonitor) -> tuple[PolynomialMonitor, float]:
        """The monitor as a function of z (exact when its covectors lie in span C), and the
        relative size of the part the cut-off dropped."""
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
        """(centre_, visible_basis_) as float64 tensors on a torch device (cached)."""
        cache = self.__dict__.setdefault("_device_cache", {})
        key = str(device)
        if key not in cache:
            import torch

            cache[key] = tuple(torch.from_numpy(np.array(a)).to(device)
                               for a in (self.centre_, self.visible_basis_))  # fmt: skip
        return cache[key]

    def transform(self, H: Any) -> np.ndarray:
        """Quotient coordinates z = C^T (h - centre_): (n, rank_), float64 (a tensor on H's
        device for a torch tensor H, computed there in row blocks)."""
        self._check_fitted()
        X = check_X(H, name="H", n_features=self.n_features_in_, owner="this quotient",
                    keep_tensor=is_torch_tensor(H))  # fmt: skip
        if is_torch_tensor(X):
            return project_rows(X, *self._placed(X.device))
        return project_rows(X, self.centre_, self.visible_basis_)

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """A hidden state with quotient coordinates Z (the one with no invisible component)."""
        self._check_fitted()
        Z = check_X(Z, name="Z", n_features=self.rank_, owner="this quotient",
                    keep_tensor=is_torch_tensor(Z))  # fmt: skip
        if is_torch_tensor(Z):
            centre, C = self._placed(Z.device)
            return centre + Z.double() @ C.T
        return self.centre_ + np.asarray(Z, dtype=np.float64) @ self.visible_basis_.T

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
        coverage 1; a monitor reading only invisible directions has coverage 0. Without a
        reference, S = I.

        Returns a float for one monitor, a dict name -> float for a bank.
        """
        self._check_fitted()
        geometry = self._geometry(self._moments(reference))
        if isinstance(monitors, ProbeBank):
            return {name: self._coverage_one(m, geometry) for name, m in monitors.items()}
        return self._coverage_one(_as_monitor(monitors, self.n_features_in_), geometry)

    def _coverage_one(self, monitor: PolynomialMonitor, geometry: tuple) -> float:
        if monitor.n_features != self.n_features_in_:
            raise ValueError(
                f"the monitor reads {monitor.n_features}-dimensional states, the quotient "
                f"{self.n_features_in_}-dimensional ones."
            )
        mu, S, _, S_z = geometry
        proj = self.project(monitor, _geometry=geometry)
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
        write_bundle(path, "quotient", meta, arrays)

    @classmethod
    def load(cls, path: PathLike) -> Quotient:
        """Read a quotient written by `save`."""
        meta, arrays = read_bundle(path, "quotient")
        where = f"quotient at {str(path)!r}"
        if not isinstance(meta, dict) or "bank" not in meta:
            raise BundleError(f"{where}: the metadata is incomplete.")
        bank = ProbeBank._from_arrays(meta["bank"], arrays, where, prefix="bank/")
        C = require(arrays, "visible_basis", where, 2)
        K = require(arrays, "invisible_basis", where, 2)
        s = require(arrays, "singular_values", where, 1)
        centre = require(arrays, "centre", where, 1)
        d = bank.n_features_in_
        if C.shape[0] != d or K.shape[0] != d or C.shape[1] + K.shape[1] != d or centre.size != d:
            raise BundleError(f"{where}: the basis shapes do not match the bank's width {d}.")
        out = cls(meta.get("rtol", 1e-6), rank=meta.get("rank"), centre=centre)
        out._set_fitted(bank, C, K, s, centre)
        return out

    def __repr__(self) -> str:
        if not hasattr(self, "visible_basis_"):
            return f"Quotient(rtol={self.rtol}, rank={self.rank})"
        return (
            f"Quotient(rank_={self.rank_} of d={self.n_features_in_}, {len(self.bank_)} monitors)"
        )


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

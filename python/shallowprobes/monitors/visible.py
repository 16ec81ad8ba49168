"""The probe-visible subspace of a bank of monitors, and the data metric it is measured in.

The geometry behind :class:`~shallowprobes.monitors.quotient.Quotient`: the covector matrix
whose column span is what the bank reads (Euclidean, or whitened by reference hidden states),
a square root of the reference covariance that survives any spread of unit scales, the SVD and
the bases taken from it, and the blocked projection of hidden states onto them. Apart from the
estimator (fit / transform / coverage / save / load) because these are plain functions of
arrays that the aligner uses too; re-exported from :mod:`.quotient`, where they were first
published.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_X
from ..backends import is_torch_tensor, ops_of, to_numpy, torch_backend
from ..solve.stats import SufficientStats
from .bank import ProbeBank
from .monitor import host_kernels

__all__ = [
    "visible_covectors",
    "metric_root",
    "metric_covectors",
    "left_singular",
    "reference_moments",
    "project_rows",
    "metric_basis",
    "complement_basis",
    "fix_signs",
]

# Relative size below which a monitor's Q eigenvalue is round-off (not a direction it reads).
_EIG_ROUNDOFF = 1e-14
# Relative jitter added to the correlation matrix before its Cholesky factorisation (a
# singular covariance, e.g. d > n or collinear units, is then still factorised).
_CHOLESKY_JITTER = 1e-12


def _namespace(device: Any) -> tuple:
    """(array module, its eigh, a function placing an array there): numpy for device None,
    else torch on `device` (float64 copies of the inputs)."""
    if device is None:
        return np, np.linalg.eigh, np.asarray
    import torch

    def put(a: Any) -> Any:
        return torch.from_numpy(np.array(a)).to(device)

    return torch, torch.linalg.eigh, put


def visible_covectors(bank: ProbeBank, device: Any = None) -> Any:
    """(d, m) covector matrix whose column span is the bank's visible span.

    Each monitor contributes w and its Q factored as V |Lambda| (same span and same Q Q^T as
    the columns of Q, fewer columns), scaled by 1 / ||[w, Q]||_F so that every monitor counts
    equally in the relative cut-off whatever the scale of its scores. With a torch `device`
    the eigendecompositions run there and the result is a float64 tensor on it.
    """
    xp, eigh, put = _namespace(device)
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


def metric_root(S: Any) -> np.ndarray:
    """(d, d) L with L^T L = S for a covariance S, stable for any spread of unit scales.

    S is split into per-unit standard deviations D and the correlation matrix R = D^-1 S D^-1
    (entries in [-1, 1]); L = chol(R)^T D. Units of zero variance get zero columns (the data
    never moves them), and a singular R gets a relative jitter of 1e-12 (eigh if even that
    fails). A square root taken directly from S (its eigendecomposition) would lose every
    unit whose variance is below 1e-16 of the largest: near-dead units would then dominate
    the whitened covectors instead of vanishing from them.
    """
    S = np.asarray(S, dtype=np.float64)
    S = 0.5 * (S + S.T)
    std = np.sqrt(np.clip(np.diag(S), 0.0, None))
    live = std > 0.0
    inv = np.zeros_like(std)
    inv[live] = 1.0 / std[live]
    R = S * inv[:, None] * inv[None, :]
    R[~live, :] = 0.0
    R[:, ~live] = 0.0
    np.fill_diagonal(R, np.where(live, 1.0, 0.0))
    d = R.shape[0]
    try:
        lower = np.linalg.cholesky(R + _CHOLESKY_JITTER * np.eye(d))
        root = lower.T
    except np.linalg.LinAlgError:
        lam, V = np.linalg.eigh(R)
        root = (V * np.sqrt(np.clip(lam, 0.0, None))).T
    return root * std[None, :]


def metric_covectors(bank: ProbeBank, L: Any, device: Any = None) -> tuple[Any, Any]:
    """(whitened (d, k), raw (d, k)) covector columns of the bank in the metric L^T L = S.

    whitened = L @ raw. Each monitor contributes its covector w (whitened: L w) and its
    whitened quadratic form L Q L^T factored as V |Lambda| (raw columns Q L^T V sign(Lambda)),
    all scaled by 1 / ||[L w, L Q L^T]||_F, so that every monitor counts by the spread of its
    score on the data, not by the size of its coefficients. Monitors constant on the data are
    left out. With a torch `device` the work runs there (float64 tensors come back).
    """
    xp, eigh, put = _namespace(device)
    Lx = put(L)
    white, raw = [], []
    for monitor in bank.values():
        w = put(monitor.linear)
        wcols, rcols = [(Lx @ w)[:, None]], [w[:, None]]
        if monitor.quadratic is not None:
            QLt = put(monitor.quadratic) @ Lx.T
            Qw = Lx @ QLt
            lam, V = eigh(0.5 * (Qw + Qw.T))
            top = float(xp.abs(lam).max())
            keep = xp.abs(lam) > _EIG_ROUNDOFF * max(top, 1e-300)
            wcols.append(V[:, keep] * xp.abs(lam[keep]))
            rcols.append((QLt @ V[:, keep]) * xp.sign(lam[keep]))
        block = xp.hstack(wcols)
        norm = float(xp.linalg.norm(block))
        if norm > 0.0:
            white.append(block / norm)
            raw.append(xp.hstack(rcols) / norm)
    if not white:
        empty = put(np.zeros((L.shape[0], 0)))
        return empty, empty
    return xp.hstack(white), xp.hstack(raw)


def left_singular(M: Any) -> tuple[np.ndarray, np.ndarray]:
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
                keep_tensor=True)  # fmt: skip
    stats = SufficientStats(backend=backend).update(X)
    return np.asarray(to_numpy(stats.input_mean)), np.asarray(to_numpy(stats.input_covariance()))


def project_rows(X: Any, centre: Any, M: Any) -> Any:
    """(X - centre) @ M in float64 row blocks (never a float64 copy of all of X). X numpy, or
    a torch tensor (then centre and M may be numpy or tensors; the result is a tensor on X's
    device)."""
    if is_torch_tensor(X):
        return torch_backend().project_rows(X, centre, M)
    return host_kernels().project_rows(X, centre, M)  # the Rust core's row blocks


def metric_basis(U_r: np.ndarray, s: np.ndarray, M: Any, M_raw: Any, L: np.ndarray) -> np.ndarray:
    """(d, r) C with L C = U_r, i.e. C^T S C = I: the raw covectors whose whitened images
    are the kept left singular vectors U_r of the whitened covector matrix M = L M_raw.

    For a direction the covectors carry (singular value s_j > 0), C_j = M_raw M^T u_j / s_j^2:
    a combination of the monitors' own covectors, found without inverting L (which may be
    singular or hold units of wildly different scales). Directions beyond the covectors' rank
    (an explicit `rank` larger than it) come from a least-squares solve of L c = u_j."""
    d, r = U_r.shape
    s_r = np.zeros(r)
    s_r[: min(r, s.size)] = s[:r]
    strong = s_r > 1e-13 * max(float(s[0]), 1e-300)
    C = np.zeros((d, r))
    if np.any(strong):
        xp = ops_of(M)  # M's namespace (a tensor stays on its device); only C comes back
        coef = (M.T @ xp.asarray(U_r[:, strong])) / xp.asarray(s_r[strong] ** 2)
        C[:, strong] = to_numpy(M_raw @ coef)
    if not np.all(strong):
        C[:, ~strong] = np.linalg.lstsq(L, U_r[:, ~strong], rcond=1e-12)[0]
    # one Loewdin step: C^T S C = I to round-off, however the columns were found
    LC = L @ C
    lam, V = np.linalg.eigh(LC.T @ LC)
    good = lam > 1e-24 * max(float(lam.max()), 1e-300)
    inv_root = (V[:, good] / np.sqrt(lam[good])) @ V[:, good].T
    return C @ inv_root


def complement_basis(C: np.ndarray) -> np.ndarray:
    """(d, d - r) orthonormal basis of the directions C^T ignores (C^T delta = 0)."""
    d, r = C.shape
    norms = np.linalg.norm(C, axis=0)
    U = np.linalg.svd(C / np.where(norms > 0, norms, 1.0), full_matrices=True)[0]
    return fix_signs(U[:, r:]).copy()


def fix_signs(U: np.ndarray) -> np.ndarray:
    """Deterministic orientation: the largest-|.| entry of every column is positive."""
    if U.size == 0:
        return U
    idx = np.argmax(np.abs(U), axis=0)
    signs = np.sign(U[idx, np.arange(U.shape[1])])
    signs[signs == 0] = 1.0
    return U * signs

"""The degree-2 feature map and exact changes of its centre and block weights.

phi(u) = [u_1..u_d, (s_ab u_a u_b)_{a<=b}] with s_aa = 1 and s_ab = sqrt(2), pairs in
`numpy.triu_indices(d)` order (the order of scikit-learn's ``PolynomialFeatures(2)``), so that
<phi(u), phi(v)> = <u, v> + <u, v>^2. A weight gamma on the quadratic block scales its columns
by sqrt(gamma): the kernel becomes <u, v> + gamma <u, v>^2 (docs/design.md §2).

Statistics are accumulated about whatever centre s the first rows suggest; the probe wants
features of u = h - mu with mu the training mean. Re-centring is exact: with delta = mu - s,

    phi(x - mu) = M phi(x - s) + c,    M = [[I, 0], [L, I]],

where row (a, b) of L holds -s_ab delta_b at column a and -s_ab delta_a at column b, and
c = [-delta, phi_quad(delta)]. M has two off-diagonal entries per row, so applying it to a
p x p Gram costs O(p^2), not O(p^3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import is_torch_tensor, ops_of

SQRT2 = float(np.sqrt(2.0))
# Rows of L applied at a time: bounds the temporaries of the gathers to ~32 MiB.
_CHUNK_ENTRIES = 1 << 22


def n_features(d: int) -> int:
    """Width p = d + d(d+1)/2 of the degree-2 feature map of d inputs."""
    return d + d * (d + 1) // 2


def pairs(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, s_ab) of the quadratic columns, a <= b, in triu_indices order."""
    a, b = np.triu_indices(d)
    scale = np.where(a == b, 1.0, SQRT2)
    return a, b, scale


def pairs_like(d: int, like: Any) -> tuple[Any, Any, Any]:
    """`pairs(d)` as arrays of the kind of `like` (torch tensors on its device, or numpy)."""
    a, b, s = pairs(d)
    if is_torch_tensor(like):
        xp = ops_of(like)
        return xp.index(a), xp.index(b), xp.asarray(s)
    return a, b, s


def input_dim(p: int) -> int:
    """Inverse of `n_features` (raises if p is not a degree-2 width)."""
    d = int((np.sqrt(9.0 + 8.0 * p) - 3.0) / 2.0 + 0.5)
    if n_features(d) != p:
        raise ValueError(f"{p} is not a degree-2 feature width d + d(d+1)/2.")
    return d


def recentre_rows(V: np.ndarray, delta: np.ndarray) -> None:
    """In place: V <- M V for V of shape (p, m), M the re-centring matrix of `delta`."""
    d = delta.shape[0]
    a, b, s = pairs_like(d, V)
    q = a.shape[0]
    width = max(1, int(np.prod(V.shape[1:])))
    step = max(1, _CHUNK_ENTRIES // width)
    lin = V[:d]  # unchanged by M, and the only rows the update reads
    for start in range(0, q, step):
        sl = slice(start, min(start + step, q))
        ca = (s[sl] * delta[b[sl]]).reshape((-1,) + (1,) * (V.ndim - 1))
        cb = (s[sl] * delta[a[sl]]).reshape((-1,) + (1,) * (V.ndim - 1))
        V[d + sl.start : d + sl.stop] -= ca * lin[a[sl]] + cb * lin[b[sl]]


def recentre_gram(G: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """M G M^T for a symmetric p x p matrix G (G is overwritten; the result is returned).

    (M G)^T = G M^T because G is symmetric, so M (M G)^T = M G M^T: two row passes and one
    transpose.
    """
    recentre_rows(G, delta)
    out = G.T.contiguous() if is_torch_tensor(G) else np.ascontiguousarray(G.T)
    recentre_rows(out, delta)
    return out


def recentre_constant(delta: np.ndarray) -> np.ndarray:
    """c in phi(x - mu) = M phi(x - s) + c, for delta = mu - s."""
    a, b, s = pairs_like(delta.shape[0], delta)
    return ops_of(delta).concatenate([-delta, s * delta[a] * delta[b]])


def expand(U: np.ndarray, quad_scale: float = 1.0) -> np.ndarray:
    """phi of already-centred rows U (n, d) in float64, quadratic block times quad_scale."""
    a, b, s = pairs(U.shape[1])
    U = np.asarray(U, dtype=np.float64)
    return np.hstack([U, U[:, a] * U[:, b] * (quad_scale * s)])


def coef_to_quadratic(coef: np.ndarray, d: int, quad_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Split feature coefficients (p, k) into symmetric Q (k, d, d) and w (d, k) with
    coef^T phi_gamma(u) = u^T Q u + w^T u."""
    xp = ops_of(coef)
    a, b, s = pairs_like(d, coef)
    k = coef.shape[1]
    Q = xp.zeros((k, d, d))
    vals = coef[d:].T * (quad_scale * s)  # (k, q): coefficient of u_a u_b
    off = a != b
    Q[:, a, b] = xp.where(off, vals / 2.0, vals)
    Q[:, b[off], a[off]] = vals[:, off] / 2.0
    return Q, coef[:d] * 1.0


def quadratic_form_rows(Z: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """(n, k) values z_i^T Q_t z_i for rows Z (n, d) and Q (k, d, d)."""
    xp = ops_of(Z)
    out = xp.empty((Z.shape[0], Q.shape[0]))
    for t in range(Q.shape[0]):
        out[:, t] = ((Z @ Q[t]) * Z).sum(axis=1) if xp.is_torch else np.einsum(
            "ij,ij->i", Z @ Q[t], Z
        )
    return out

"""One contract for every kernel backend: numpy (`backends.formulas` on the host), torch (the same
formulas on a device: CPU here, CUDA where present) and the Rust core, checked against each
other and against closed forms computed here with plain numpy / scipy (a direct solve per
alpha, refitting for leave-one-out, expanding the held-out error row by row)."""

from __future__ import annotations

import numpy as np
import pytest
from shallowprobes.backends import get_backend, numpy_kernels, rust_available

torch = pytest.importorskip("torch")

BACKENDS = ["numpy", "torch-cpu"]
if rust_available():
    BACKENDS.append("rust")
if torch.cuda.is_available():
    BACKENDS.append("torch-cuda")

TOL = 1e-9


def kernels(name: str):
    return get_backend("torch" if name.startswith("torch") else name)


def residual_outside_span(be, lam, B, cyy):
    """The Rust core has no kernel of its own for this O(d k) step: the library calls the
    host formula on its (host) spectrum, as here."""
    return getattr(be, "residual_outside_span", numpy_kernels.residual_outside_span)(lam, B, cyy)


def put(name: str, a):
    """The arrays as the backend takes them: numpy on the host, float64 tensors on a device."""
    if name.startswith("torch"):
        return torch.as_tensor(np.asarray(a), dtype=torch.float64,
                               device="cuda" if name == "torch-cuda" else "cpu")  # fmt: skip
    return np.asarray(a, dtype=np.float64)


def host(a):
    return a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)


def problem(n: int, d: int, k: int, seed: int, rank: int | None = None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d)
    if rank is not None:  # a rank-deficient design: null directions must be zeroed
        X = X[:, :rank] @ rng.normal(size=(rank, d))
    Y = X @ rng.normal(size=(d, k)) + rng.normal(size=(n, k))
    xm, ym = X.mean(axis=0), Y.mean(axis=0)
    Xc, Yc = X - xm, Y - ym
    return X, Y, xm, ym, Xc.T @ Xc, Xc.T @ Yc, (Yc * Yc).sum(axis=0)


SHAPES = [(60, 5, 1, 0, None), (40, 12, 3, 1, None), (30, 50, 2, 2, None), (80, 10, 2, 3, 4)]
ALPHAS = np.array([0.0, 1e-3, 0.1, 1.0, 10.0, 1e3])


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "n{}-d{}-k{}-s{}-r{}".format(*s))
def test_ridge_path_equals_a_direct_solve(name, shape):
    X, Y, xm, ym, G, C, cyy = problem(*shape)
    be = kernels(name)
    lam, V, B = be.spectrum(put(name, G), put(name, C))
    perp = residual_outside_span(be, lam, B, put(name, cyy))
    coefs, rss, dof = be.ridge_path(lam, V, B, perp, put(name, ALPHAS))
    coefs, rss, dof = host(coefs), host(rss), host(dof)
    Xc, Yc = X - xm, Y - ym
    for a, alpha in enumerate(ALPHAS):
        if alpha == 0:
            W = np.linalg.pinv(Xc) @ Yc  # minimum-norm least squares
            ref_dof = np.linalg.matrix_rank(Xc)
        else:
            W = np.linalg.solve(G + alpha * np.eye(G.shape[0]), C)
            ref_dof = np.trace(np.linalg.solve(G + alpha * np.eye(G.shape[0]), G))
        scale = max(1.0, np.abs(W).max())
        np.testing.assert_allclose(coefs[a], W, atol=1e-7 * scale, rtol=1e-6)
        R = Yc - Xc @ W
        np.testing.assert_allclose(rss[a], (R * R).sum(axis=0), rtol=1e-7, atol=1e-8 * cyy.max())
        np.testing.assert_allclose(dof[a], ref_dof, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES[:3], ids=lambda s: "n{}-d{}-k{}".format(*s[:3]))
def test_loo_predictions_equal_refitting_without_each_row(name, shape):
    X, Y, xm, ym, G, C, _ = problem(*shape)
    n, d = X.shape
    be = kernels(name)
    lam, V, B = be.spectrum(put(name, G), put(name, C))
    alphas = ALPHAS[1:]  # alpha = 0 with n <= d interpolates: NaN rows, tested below
    loo = host(be.loo_predictions(put(name, X), put(name, xm), V, lam, B, put(name, Y),
                                  put(name, ym), put(name, alphas), float(n), True))  # fmt: skip
    for i in (0, n // 2, n - 1):
        keep = np.arange(n) != i
        Xi, Yi = X[keep], Y[keep]
        mx, my = Xi.mean(axis=0), Yi.mean(axis=0)
        for a, alpha in enumerate(alphas):
            Xk = Xi - mx
            W = np.linalg.solve(Xk.T @ Xk + alpha * np.eye(d), Xk.T @ (Yi - my))
            ref = my + (X[i] - mx) @ W
            np.testing.assert_allclose(loo[a, i], ref, rtol=1e-6, atol=1e-7 * np.abs(Y).max())


@pytest.mark.parametrize("name", BACKENDS)
def test_loo_marks_interpolated_rows_nan(name):
    X, Y, xm, ym, G, C, _ = problem(10, 30, 1, 4)
    be = kernels(name)
    lam, V, B = be.spectrum(put(name, G), put(name, C))
    alphas = put(name, np.array([0.0, 1.0]))
    loo = host(be.loo_predictions(put(name, X), put(name, xm), V, lam, B, put(name, Y),
                                  put(name, ym), alphas, 10.0, True))  # fmt: skip
    assert np.isnan(loo[0]).all() and np.isfinite(loo[1]).all()


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_heldout_sse_equals_the_rows_squared_errors(name, seed):
    rng = np.random.default_rng(seed)
    n, d, k, A = 25, 6, 3, 4
    X, Y = rng.normal(size=(n, d)) + 5.0, rng.normal(size=(n, k)) - 2.0
    s, t = rng.normal(size=d), rng.normal(size=k)  # the statistics' shift
    Xs, Ys = X - s, Y - t
    W, c = rng.normal(size=(A, d, k)), rng.normal(size=(A, k))
    out = host(kernels(name).heldout_sse(
        put(name, Xs.T @ Xs), put(name, Xs.T @ Ys), put(name, (Ys * Ys).sum(axis=0)),
        put(name, Xs.sum(axis=0)), put(name, Ys.sum(axis=0)), float(n), put(name, W), put(name, c),
    ))  # fmt: skip
    ref = np.stack([((Ys - Xs @ W[a] - c[a]) ** 2).sum(axis=0) for a in range(A)])
    np.testing.assert_allclose(out, ref, rtol=1e-10)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "n{}-d{}-k{}-s{}-r{}".format(*s))
def test_all_backends_agree_with_each_other(shape):
    """Same spectrum-derived quantities from every backend (eigenvectors differ by sign, so
    compare what does not depend on it: coefficients, RSS, dof, B^2)."""
    _, _, _, _, G, C, cyy = problem(*shape)
    results = {}
    for name in BACKENDS:
        be = kernels(name)
        lam, V, B = be.spectrum(put(name, G), put(name, C))
        perp = residual_outside_span(be, lam, B, put(name, cyy))
        coefs, rss, dof = be.ridge_path(lam, V, B, perp, put(name, ALPHAS))
        results[name] = [host(lam), host(coefs), host(rss), host(dof)]
    ref = results["numpy"]
    for name, got in results.items():
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g, r, rtol=1e-7, atol=1e-8 * max(1.0, np.abs(r).max()),
                                       err_msg=name)  # fmt: skip


@pytest.mark.parametrize("name", BACKENDS)
def test_spectra_of_a_stack_equal_one_by_one(name):
    mats = [problem(30, 6, 2, s) for s in range(3)]
    grams = np.stack([m[4] for m in mats])
    cxys = np.stack([m[5] for m in mats])
    be = kernels(name)
    lams, _, Bs = be.spectra(put(name, grams), put(name, cxys))
    for i in range(3):
        lam, _, B = be.spectrum(put(name, grams[i]), put(name, cxys[i]))
        np.testing.assert_allclose(host(lams[i]), host(lam), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(np.abs(host(Bs[i])), np.abs(host(B)), rtol=1e-8, atol=1e-8)


# --- the monitors' kernels: the quotient projection and a bank's scores -----------------------
@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("n, d, r", [(1, 4, 1), (57, 9, 3), (300, 20, 16)])
def test_project_rows_equals_the_numpy_expression(name, n, d, r):
    rng = np.random.default_rng(n + d)
    X = rng.normal(size=(n, d)) * 2.0 + 5.0
    c, M = X.mean(axis=0), rng.normal(size=(d, r))
    got = host(kernels(name).project_rows(put(name, X), put(name, c), put(name, M)))
    np.testing.assert_allclose(got, (X - c) @ M, rtol=1e-12, atol=1e-12 * np.abs(X - c).sum())


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("kinds", ["l", "q", "lqlq", "qqlq"])
def test_evaluate_polynomials_equals_the_scores_written_out(name, kinds):
    """kinds: one letter per monitor, l = degree 1, q = degree 2 (the last two q's of "qqlq"
    share a centre)."""
    rng = np.random.default_rng(len(kinds))
    n, d, m = 70, 8, len(kinds)
    X = rng.normal(size=(n, d)) + 1.0
    W, C, b = rng.normal(size=(m, d)), rng.normal(size=(m, d)), rng.normal(size=m)
    if kinds == "qqlq":
        C[3] = C[1]
    Qs = [None if k == "l" else (lambda A: A + A.T)(rng.normal(size=(d, d))) for k in kinds]
    Qs_in = [None if Q is None else put(name, Q) for Q in Qs]
    be = kernels(name)
    got = host(be.evaluate_polynomials(put(name, X), put(name, W), put(name, C), put(name, b),
                                       Qs_in))  # fmt: skip
    want = np.empty((n, m))
    for j in range(m):
        U = X - C[j]
        want[:, j] = U @ W[j] + b[j]
        if Qs[j] is not None:
            want[:, j] += np.einsum("ia,ab,ib->i", U, Qs[j], U)
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11 * np.abs(want).max())

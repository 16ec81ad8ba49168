"""Exact LOO of the primal ridge route where the Gram spans the rows (more features than rows):
the LOO scores of every backend against the closed form H = 11^T/n + K (K + alpha I)^-1 (K =
Xc Xc^T) evaluated in 50-digit arithmetic (mpmath), down to alphas 1e-14 of the Gram's scale,
where the fit all but interpolates. There 1 - h and y - yhat tend to 0; formed as differences
they carried eps lam / alpha of relative error (1e-2 and NaN at the smallest alphas here), so
the route forms them as sums of non-negative weights instead (`formulas.loo_block`, the core's
`LooBlock`). A control with fewer features than rows keeps the usual forms."""

from __future__ import annotations

import numpy as np
import pytest
from shallowprobes import LinearProbe

mp = pytest.importorskip("mpmath")


def _exact_loo_scores(X, y, alphas, fit_intercept, digits=50) -> np.ndarray:
    """-mean((e_i / (1 - h_ii))^2) with e = (I - H) y, in `digits`-digit arithmetic from the
    float64 rows (their centring, the kernel and the inverse carry no float64 round-off)."""
    with mp.workdps(digits):
        n, d = X.shape
        U = mp.matrix([[mp.mpf(float(v)) for v in row] for row in X])
        yv = mp.matrix([mp.mpf(float(v)) for v in y])
        if fit_intercept:
            for j in range(d):
                m = mp.fsum(U[i, j] for i in range(n)) / n
                for i in range(n):
                    U[i, j] -= m
        K = U * U.T
        out = []
        for a in alphas:
            M = mp.inverse(K + mp.mpf(float(a)) * mp.eye(n))
            H = K * M
            if fit_intercept:
                H = H + mp.ones(n, n) / n
            e = (mp.eye(n) - H) * yv
            total = mp.fsum((e[i] / (1 - H[i, i])) ** 2 for i in range(n))
            out.append(float(-total / n))
    return np.array(out)


def _perturbation_bound(X, fit_intercept, alphas) -> np.ndarray:
    """8 n eps lam_max / (lam_min + alpha) over the row Gram's kept spectrum: what two float64
    evaluations of the scores of a slightly moved Gram can differ by (as in test_dual_band)."""
    Xc = X - X.mean(axis=0) if fit_intercept else X
    lam = np.linalg.eigvalsh(Xc @ Xc.T)[int(fit_intercept) :]
    n = len(X)
    return 8.0 * n * np.finfo(float).eps * lam.max() / (max(lam.min(), 0.0) + alphas)


@pytest.mark.parametrize("backend", ["rust", "numpy", "torch"])
@pytest.mark.parametrize(
    "n, d, fit_intercept, seed",
    [(12, 30, True, 0), (15, 40, False, 1), (20, 19, True, 2), (30, 8, True, 3)],
)
def test_loo_scores_against_extended_precision(backend, n, d, fit_intercept, seed):
    if backend == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) + 2.0 * rng.standard_normal(d)
    y = X[:, :3].sum(axis=1) + 0.3 * rng.standard_normal(n)
    Xc = X - X.mean(axis=0) if fit_intercept else X
    scale = float(np.linalg.eigvalsh(Xc.T @ Xc).max())
    alphas = np.logspace(-14, 2, 9) * scale
    fit = LinearProbe(alphas=alphas, cv="loo", backend=backend, fit_intercept=fit_intercept)
    fit.fit(X, y)
    got = np.ravel(fit.cv_results_["mean_scores"])
    exact = _exact_loo_scores(X, y, alphas, fit_intercept)
    err = np.abs(got - exact) / np.abs(exact)
    bound = 1e-12 + _perturbation_bound(X, fit_intercept, alphas)
    worst = int(np.argmax(np.nan_to_num(err, nan=np.inf) / bound))
    assert err[worst] <= bound[worst], (
        f"loo at alpha {alphas[worst]:.3e}: relative error {err[worst]:.3e} > {bound[worst]:.3e}"
    )

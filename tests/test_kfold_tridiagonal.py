"""K-fold solves through one tridiagonal reduction per training set (the Rust backend).

`_core.tridiagonalize` / `_core.tridiagonal_ridge_paths` against plain numpy solves of
(G + alpha I) W = C; the route each fold takes in `paths.kfold_paths` (tridiagonal where the
spectrum would clamp nothing, the spectrum otherwise and for alpha = 0); K-fold fits through it
against the numpy backend (eigendecompositions) and explicit refits; and the training-set
normal equations formed as totals minus each fold against the fold-by-fold sums.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_rel, make_classification, make_regression, requires_rust
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shallowprobes import LinearProbe, LinearProbeClassifier, SufficientStats

pytestmark = requires_rust


def _problem(seed: int, n: int, d: int, k: int, offset: float = 2.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * (0.5 + rng.random(d)) + offset
    Xc = X - X.mean(axis=0)
    return Xc.T @ Xc, Xc.T @ rng.standard_normal((n, k))


def _grid(G: np.ndarray, n: int = 9) -> np.ndarray:
    return np.logspace(-6, 3, n) * max(np.trace(G) / G.shape[0], 1e-300)


# ------------------------------------------------------------------------ the core functions
@pytest.mark.parametrize("d, k", [(1, 1), (2, 3), (7, 1), (64, 5), (257, 2), (30, 0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_paths_match_numpy_solves(d, k, seed):
    from shallowprobes.backends import rust_kernels

    problems = [_problem(seed * 10 + i, 3 * d + 10, d, k) for i in range(3)]
    grams = np.stack([p[0] for p in problems])
    cxys = np.stack([p[1] for p in problems])
    alphas = _grid(grams[0])
    packed, factors, usable = rust_kernels.tridiagonalize(grams)
    assert usable == [True, True, True]
    coefs = rust_kernels.tridiagonal_ridge_paths(packed, factors, cxys, alphas)
    assert coefs.shape == (3, alphas.size, d, k)
    for i, (G, C) in enumerate(problems):
        for a, alpha in enumerate(alphas):
            if k:
                want = np.linalg.solve(G + alpha * np.eye(d), C)
                assert_rel(coefs[i, a], want, 1e-9, f"Gram {i}, alpha {alpha:.1e}")


def test_inputs_in_any_layout_give_the_same_paths():
    from shallowprobes.backends import rust_kernels

    problems = [_problem(i, 80, 20, 3) for i in range(4)]
    grams = np.stack([p[0] for p in problems])
    cxys = np.stack([p[1] for p in problems])
    alphas = _grid(grams[0], 5)
    packed, factors, _ = rust_kernels.tridiagonalize(grams)
    want = rust_kernels.tridiagonal_ridge_paths(packed, factors, cxys, alphas)
    # C-ordered copies of the reductions, every other one of a stack, and reversed stacks
    layouts = [
        (np.ascontiguousarray(packed), np.ascontiguousarray(factors), cxys, slice(None)),
        (packed[::2], factors[::2], cxys[::2], slice(None, None, 2)),
        (packed[::-1], factors[::-1], np.asfortranarray(cxys[::-1]), slice(None, None, -1)),
    ]
    for p, f, c, sel in layouts:
        got = rust_kernels.tridiagonal_ridge_paths(p, f, c, alphas)
        np.testing.assert_array_equal(got, want[sel])
    # a Fortran-ordered stack of Grams reduces to the same matrices
    again = rust_kernels.tridiagonalize(np.asfortranarray(grams))
    np.testing.assert_array_equal(again[0], packed)


def test_rank_deficient_grams_are_flagged():
    from shallowprobes.backends import rust_kernels

    full = _problem(0, 60, 20, 1)[0]
    short = _problem(1, 12, 20, 1)[0]  # rank 11 after centring
    dup = full.copy()
    dup[:, 5], dup[5, :] = dup[:, 3], dup[3, :]
    dup[5, 5] = dup[3, 3]  # two identical columns of X: a null direction
    zero = np.zeros((20, 20))
    _, _, usable = rust_kernels.tridiagonalize(np.stack([full, short, dup, zero]))
    assert usable == [True, False, False, False]


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_paths_reject_alphas_that_are_not_positive(bad):
    from shallowprobes.backends import rust_kernels

    G, C = _problem(0, 40, 6, 2)
    packed, factors, _ = rust_kernels.tridiagonalize(G[None])
    with pytest.raises(ValueError, match="alphas > 0"):
        rust_kernels.tridiagonal_ridge_paths(packed, factors, C[None], np.array([1.0, bad]))


def test_paths_reject_mismatched_shapes():
    from shallowprobes.backends import rust_kernels

    G, C = _problem(0, 40, 6, 2)
    packed, factors, _ = rust_kernels.tridiagonalize(np.stack([G, G]))
    alphas = np.array([1.0])
    for p, f, c in [
        (packed, factors, C[None]),  # 2 reductions, 1 cross-product
        (packed, factors[:, :, :-1], np.stack([C, C])),  # factors for another order
        (packed, factors, np.zeros((2, 5, 2))),  # cross-products of another order
    ]:
        with pytest.raises(ValueError, match="from tridiagonalize"):
            rust_kernels.tridiagonal_ridge_paths(p, f, c, alphas)
    with pytest.raises(ValueError, match=r"expected \(K, d, d\)"):
        rust_kernels.tridiagonalize(np.zeros((2, 4, 5)))


# ----------------------------------------------------------------- the route of each fold
def _fold_routes(X, Y, K, backend="rust", alphas=None, fit_intercept=True):
    from shallowprobes.solve.paths import kfold_paths

    stats = SufficientStats(K, backend).update(X, Y, np.arange(X.shape[0]) % K)
    ne = stats.normal_equations(fit_intercept)
    full, folds = kfold_paths(stats, ne, fit_intercept, stats._backend_module())
    return full, folds, stats


def test_full_rank_folds_take_the_tridiagonal_route():
    from shallowprobes.solve.paths import TridiagonalPath

    X, Y = make_regression(0, 300, 20, 2)
    full, folds, _ = _fold_routes(X, Y, 5)
    assert isinstance(full, TridiagonalPath)
    assert sorted(folds) == [0, 1, 2, 3, 4]
    assert all(isinstance(p, TridiagonalPath) for _, p in folds.values())


def test_the_folds_paths_come_from_one_core_call(monkeypatch):
    """The K training sets' coefficient paths are solved in one batched core call (one path
    per thread), not K one-thread calls, and equal the paths solved one fold at a time."""
    from shallowprobes.backends import rust_kernels
    from shallowprobes.solve.paths import path_coefs

    X, Y = make_regression(3, 400, 16, 3)
    _, folds, _ = _fold_routes(X, Y, 5)
    fold_paths = [folds[f][1] for f in sorted(folds)]
    alphas = _grid(folds[0][0].gram, 6)
    alone = [path_coefs([p], alphas)[0] for p in fold_paths]
    calls = []
    real = rust_kernels.tridiagonal_ridge_paths

    def counted(packed, *args):
        calls.append(packed.shape[0])
        return real(packed, *args)

    monkeypatch.setattr(rust_kernels, "tridiagonal_ridge_paths", counted)
    together = path_coefs(fold_paths, alphas)
    assert calls == [5]
    for f in range(5):
        np.testing.assert_array_equal(together[f], alone[f])
        want = np.linalg.solve(folds[f][0].gram[None] + alphas[:, None, None] * np.eye(16),
                               folds[f][0].cxy[None])  # fmt: skip
        assert_rel(together[f], want, 1e-9, f"fold {f}")


def test_rank_deficient_folds_take_their_spectra():
    from shallowprobes.solve.paths import EigenPath, TridiagonalPath

    # d = 40 features, 30 rows: all rows (rank 29 once centred) and every training set (24
    # rows) are rank-deficient
    X, Y = make_regression(1, 30, 40, 2)
    full, folds, _ = _fold_routes(X, Y, 5)
    assert all(isinstance(p, EigenPath) for _, p in folds.values())
    assert isinstance(full, EigenPath)
    # 40 rows at d = 35: all rows have full rank once centred (39), the folds (30) do not
    X, Y = make_regression(2, 40, 35, 1)
    full, folds, _ = _fold_routes(X, Y, 4)
    assert isinstance(full, TridiagonalPath)
    assert all(isinstance(p, EigenPath) for _, p in folds.values())


def test_numpy_backend_keeps_the_eigendecompositions():
    from shallowprobes.solve.paths import EigenPath

    X, Y = make_regression(0, 200, 10, 2)
    full, folds, _ = _fold_routes(X, Y, 3, backend="numpy")
    assert isinstance(full, EigenPath)
    assert all(isinstance(p, EigenPath) for _, p in folds.values())


def test_zero_alpha_takes_the_spectrum_and_matches_it():
    from shallowprobes.solve.paths import EigenPath, path_coefs

    X, Y = make_regression(3, 200, 12, 2)
    full, folds, _ = _fold_routes(X, Y, 4)
    paths = [p for _, p in folds.values()]
    alphas = np.array([0.0, 1.0, 10.0])
    got = path_coefs(list(paths), alphas)
    for (ne, _), coefs in zip(folds.values(), got):
        # alpha = 0 on a full-rank training set: ordinary least squares
        want0 = np.linalg.solve(ne.gram, ne.cxy)
        assert_rel(coefs[0], want0, 1e-9, "alpha = 0")
        want1 = np.linalg.solve(ne.gram + 10.0 * np.eye(12), ne.cxy)
        assert_rel(coefs[2], want1, 1e-9, "alpha = 10")
    mixed = path_coefs([paths[0], paths[1].eigen()], np.array([2.0]))
    assert isinstance(paths[1].eigen(), EigenPath) and paths[1].eigen() is paths[1].eigen()
    assert_rel(mixed[1][0], np.linalg.solve(folds[1][0].gram + 2 * np.eye(12), folds[1][0].cxy),
               1e-9, "an eigen path beside a tridiagonal one")  # fmt: skip


# ------------------------------------------------------------------------ K-fold fits
def _same_scores(a, b, rtol):
    sa, sb = a.cv_results_["scores"], b.cv_results_["scores"]
    np.testing.assert_array_equal(np.isnan(sa), np.isnan(sb))  # the same alphas searched
    assert_rel(np.nan_to_num(sa), np.nan_to_num(sb), rtol, "cv scores")


def _same_fit(a, b, rtol):
    _same_scores(a, b, rtol)
    np.testing.assert_allclose(a.alpha_, b.alpha_, rtol=1e-12)  # the same grid point
    assert_rel(a.coef_, b.coef_, rtol, "coef")
    assert_rel(a.intercept_, b.intercept_, rtol, "intercept")


@pytest.mark.parametrize("n, d, K", [(300, 20, 5), (120, 100, 3), (60, 59, 4), (2000, 64, 5)])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("alpha_per_target", [False, True])
def test_kfold_fits_agree_with_the_numpy_backend(n, d, K, fit_intercept, alpha_per_target):
    X, Y = make_regression(n + d, n, d, 3, noise=1.0)
    kw = dict(cv=K, fit_intercept=fit_intercept, alpha_per_target=alpha_per_target)
    rust = LinearProbe(backend="rust", **kw).fit(X, Y)
    ref = LinearProbe(backend="numpy", **kw).fit(X, Y)
    _same_fit(rust, ref, 1e-8)


def test_kfold_fit_matches_explicit_refits():
    from sklearn.linear_model import Ridge

    X, Y = make_regression(5, 250, 15, 2, noise=1.0)
    alphas = np.logspace(-2, 3, 8)
    folds = np.arange(250) % 5
    probe = LinearProbe(alphas=alphas, cv=5, backend="rust").fit(X, Y)
    sse = np.zeros((alphas.size, 2))
    for f in range(5):
        test = folds == f
        for a, alpha in enumerate(alphas):
            model = Ridge(alpha=alpha, solver="svd").fit(X[~test], Y[~test])
            sse[a] += np.sum((model.predict(X[test]) - Y[test]) ** 2, axis=0)
    assert_rel(probe.cv_results_["scores"], -sse / 250, 1e-9, "held-out squared error")


def test_kfold_with_a_zero_alpha_matches_the_numpy_backend():
    X, Y = make_regression(6, 300, 10, 2)
    alphas = np.array([0.0, 0.1, 1.0, 10.0])
    rust = LinearProbe(alphas=alphas, cv=3, backend="rust").fit(X, Y)
    ref = LinearProbe(alphas=alphas, cv=3, backend="numpy").fit(X, Y)
    _same_fit(rust, ref, 1e-8)


@pytest.mark.parametrize("scoring", ["accuracy", "roc_auc"])
def test_kfold_classifier_scores_agree_with_the_numpy_backend(scoring):
    X, y = make_classification(7, 400, 12, n_classes=3)
    kw = dict(cv=4, scoring=scoring)
    rust = LinearProbeClassifier(backend="rust", **kw).fit(X, y)
    ref = LinearProbeClassifier(backend="numpy", **kw).fit(X, y)
    _same_fit(rust, ref, 1e-8)


def test_kfold_partial_fit_agrees_with_fit():
    X, Y = make_regression(8, 600, 16, 2)
    a = LinearProbe(cv=3, backend="rust")
    for start in range(0, 600, 150):
        a.partial_fit(X[start : start + 150], Y[start : start + 150])
    b = LinearProbe(cv=3, backend="rust").fit(X, Y)
    _same_fit(a, b, 1e-10)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(12, 120),
    d=st.integers(1, 40),
    K=st.integers(2, 6),
    seed=st.integers(0, 2**31 - 1),
    offset=st.sampled_from([0.0, 5.0, 1e3]),
)
def test_fuzz_kfold_matches_the_numpy_backend(n, d, K, seed, offset):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) + offset
    Y = X[:, :1] * 0.5 + rng.standard_normal((n, 2))
    alphas = np.logspace(-3, 3, 7) * n
    kw = dict(alphas=alphas, cv=min(K, n))
    rust = LinearProbe(backend="rust", **kw).fit(X, Y)
    ref = LinearProbe(backend="numpy", **kw).fit(X, Y)
    # the two routes differ by rounding, amplified by the condition of G + alpha I
    _same_scores(rust, ref, 1e-6)
    assert_rel(rust.predict(X), ref.predict(X), 1e-6, "predictions")


# ------------------------------------------------- training-set normal equations
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("K", [2, 5])
@pytest.mark.parametrize("backend", ["numpy", "rust"])
def test_training_normal_equations_equal_the_fold_sums(fit_intercept, K, backend):
    from shallowprobes.solve.normal_equations import training_normal_equations

    X, Y = make_regression(9, 500, 8, 3)
    X = X * 10.0 + 100.0  # a large offset: the totals-minus-fold form must not cancel badly
    stats = SufficientStats(K, backend).update(X, Y, np.arange(500) % K)
    got = training_normal_equations(stats, fit_intercept, list(range(K)))
    for f in range(K):
        want = stats.normal_equations(fit_intercept, exclude_fold=f)
        assert got[f].n == want.n
        for field in ("gram", "cxy", "cyy", "x_mean", "y_mean"):
            assert_rel(getattr(got[f], field), getattr(want, field), 1e-12, f"fold {f} {field}")
        # and against the rows themselves
        train = np.arange(500) % K != f
        Xt, Yt = X[train], Y[train]
        if fit_intercept:
            Xt, Yt = Xt - Xt.mean(axis=0), Yt - Yt.mean(axis=0)
        assert_rel(got[f].gram, Xt.T @ Xt, 1e-9, f"fold {f} gram vs rows")
        assert_rel(got[f].cxy, Xt.T @ Yt, 1e-9, f"fold {f} cxy vs rows")


def test_training_normal_equations_of_torch_statistics():
    torch = pytest.importorskip("torch")
    from shallowprobes.solve.normal_equations import training_normal_equations

    X, Y = make_regression(10, 300, 6, 2)
    stats = SufficientStats(3, "torch").update(torch.from_numpy(X), torch.from_numpy(Y),
                                               np.arange(300) % 3)  # fmt: skip
    from shallowprobes.backends import to_numpy

    got = training_normal_equations(stats, True, [0, 1, 2])
    for f in range(3):
        want = stats.normal_equations(True, exclude_fold=f)
        for field in ("gram", "cxy", "cyy", "x_mean"):
            assert_rel(to_numpy(getattr(got[f], field)), to_numpy(getattr(want, field)), 1e-12,
                       f"fold {f} {field}")  # fmt: skip


def test_reductions_one_at_a_time_when_the_stack_is_too_large(monkeypatch):
    """Above BATCH_ENTRIES the Grams are reduced (and decomposed) one by one: same fit."""
    from shallowprobes.solve import paths
    from shallowprobes.solve.paths import TridiagonalPath

    X, Y = make_regression(11, 400, 24, 2)
    together = LinearProbe(cv=4, backend="rust").fit(X, Y)
    monkeypatch.setattr(paths, "BATCH_ENTRIES", 10)
    full, folds, _ = _fold_routes(X, Y, 4)
    assert isinstance(full, TridiagonalPath)
    assert all(isinstance(p, TridiagonalPath) and p.index == 0 for _, p in folds.values())
    alone = LinearProbe(cv=4, backend="rust").fit(X, Y)
    _same_fit(alone, together, 1e-12)
    # rank-deficient training sets one at a time take their spectra one at a time
    Xs, Ys = make_regression(12, 30, 40, 1)
    _same_fit(LinearProbe(cv=3, backend="rust").fit(Xs, Ys),
              LinearProbe(cv=3, backend="numpy").fit(Xs, Ys), 1e-8)  # fmt: skip

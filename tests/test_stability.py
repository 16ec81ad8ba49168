"""Tests for shallowprobes.stability: group actions, group elements and stability reports."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from shallowprobes.datasets import make_xor
from shallowprobes.stability import (
    Affine,
    DiagonalAffine,
    Euclidean,
    GroupElement,
    ReadoutAffine,
    StabilityReport,
    compare_stability,
    format_reports,
    from_matrix,
    stability_report,
)

GROUPS = [
    pytest.param(Euclidean(), id="euclidean"),
    pytest.param(DiagonalAffine(), id="diagonal"),
    pytest.param(DiagonalAffine(condition=100.0, permute=False), id="diagonal-nopermute"),
    pytest.param(Affine(), id="affine"),
    pytest.param(Affine(condition=1000.0, shift_scale=0.0), id="affine-c1000"),
    pytest.param(ReadoutAffine(condition=3.0), id="readout"),
]


def _regression(seed: int = 1, n: int = 600, d: int = 8, k: int | None = None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.exp(rng.uniform(-1, 1, size=d)) + rng.normal(size=d)
    kk = 1 if k is None else k
    Y = X @ rng.normal(size=(d, kk)) + rng.normal(size=(n, kk))
    return X, (Y[:, 0] if k is None else Y)


def _xor(n_samples: int = 2000, n_features: int = 8):
    task = make_xor(n_samples=n_samples, n_features=n_features, seed=0)
    return np.vstack([task.X_train, task.X_test]), np.concatenate([task.y_train, task.y_test])


# --------------------------------------------------------------------------------------------
# Group elements
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("d", [1, 2, 7, 30])
def test_condition_number_is_bounded(group, d):
    for seed in range(5):
        g = group.sample(d, seed)
        assert isinstance(g, GroupElement)
        assert g.matrix.shape == (d, d) and g.offset.shape == (d,)
        cond = np.linalg.cond(g.matrix)
        assert cond <= group.condition + 1e-9
        assert g.condition_number == pytest.approx(cond, rel=1e-9)


def test_euclidean_is_orthogonal_with_shift():
    g = Euclidean(shift_scale=5.0).sample(12, 0)
    np.testing.assert_allclose(g.matrix @ g.matrix.T, np.eye(12), atol=1e-12)
    assert Euclidean().condition == 1.0
    assert np.linalg.norm(g.offset) > 1.0  # a genuine shift
    assert np.all(Euclidean(shift_scale=0.0).sample(5, 0).offset == 0.0)


@pytest.mark.parametrize("permute", [True, False])
def test_diagonal_affine_structure(permute):
    c, d = 16.0, 40
    g = DiagonalAffine(condition=c, permute=permute).sample(d, 3)
    T = g.matrix
    nonzero = T != 0
    # exactly one non-zero per row and per column: T = P diag(s)
    assert np.all(nonzero.sum(axis=0) == 1) and np.all(nonzero.sum(axis=1) == 1)
    s = np.abs(T[nonzero])
    assert np.all(s >= c**-0.5 - 1e-12) and np.all(s <= c**0.5 + 1e-12)
    assert (T[nonzero] < 0).any() and (T[nonzero] > 0).any()  # random signs
    if permute:
        assert not np.all(np.diag(nonzero))  # a non-trivial permutation (d = 40)
    else:
        np.testing.assert_array_equal(T, np.diag(np.diag(T)))


def test_affine_singular_values_in_range():
    c = 10.0
    sv = np.linalg.svd(Affine(condition=c).sample(25, 7).matrix, compute_uv=False)
    assert sv.min() >= c**-0.5 - 1e-12 and sv.max() <= c**0.5 + 1e-12


@pytest.mark.parametrize("group", GROUPS)
def test_apply_inverse_round_trip(group):
    rng = np.random.default_rng(0)
    g = group.sample(6, 1)
    X = rng.normal(size=(50, 6))
    np.testing.assert_allclose(g.inverse().apply(g.apply(X)), X, atol=1e-10)
    np.testing.assert_allclose(g.apply(X), X @ g.matrix.T + g.offset, rtol=1e-14)
    np.testing.assert_allclose(g.compose(g.inverse()).apply(X), X, atol=1e-10)
    # float32 input gives float64 output; one row as a 1-D array works too
    out32 = g.apply(X.astype(np.float32))
    assert out32.dtype == np.float64
    np.testing.assert_allclose(out32, g.apply(X.astype(np.float32).astype(np.float64)))
    np.testing.assert_allclose(g.apply(X[0]), g.apply(X[:1])[0])


@pytest.mark.parametrize("group", GROUPS)
def test_readout_invariance(group):
    """Logits W h + b are unchanged when (h, W, b) are transformed together
    (docs/design.md §1.1)."""
    rng = np.random.default_rng(2)
    d, k = 9, 3
    H = rng.normal(size=(40, d))
    W, b = rng.normal(size=(k, d)), rng.normal(size=k)
    g = group.sample(d, 5)
    logits = H @ W.T + b
    logits_g = g.apply(H) @ g.apply_readout(W).T + g.readout_bias(W, b)
    np.testing.assert_allclose(logits_g, logits, atol=1e-10 * np.abs(logits).max())
    # a single readout row
    np.testing.assert_allclose(
        g.apply(H) @ g.apply_readout(W[0]) + g.readout_bias(W[0], b[0]), logits[:, 0], atol=1e-9
    )


def test_sampling_is_deterministic_by_seed():
    for group in (Euclidean(), DiagonalAffine(), Affine(), ReadoutAffine()):
        a, b, c = group.sample(5, 42), group.sample(5, 42), group.sample(5, 43)
        np.testing.assert_array_equal(a.matrix, b.matrix)
        np.testing.assert_array_equal(a.offset, b.offset)
        assert not np.array_equal(a.matrix, c.matrix)
        g1 = group.sample(5, np.random.default_rng(7))
        g2 = group.sample(5, np.random.default_rng(7))
        np.testing.assert_array_equal(g1.matrix, g2.matrix)


def test_element_is_frozen_and_readonly():
    g = Affine().sample(3, 0)
    with pytest.raises(AttributeError):
        g.matrix = np.eye(3)
    with pytest.raises(ValueError):
        g.matrix[0, 0] = 1.0
    T = np.eye(3)
    e = from_matrix(T)
    T[0, 0] = 5.0  # the element holds its own copy
    assert e.matrix[0, 0] == 1.0 and np.all(e.offset == 0.0)
    assert "GroupElement(d=3" in repr(e)


def test_bad_input():
    with pytest.raises(ValueError, match="square"):
        from_matrix(np.ones((2, 3)))
    with pytest.raises(ValueError, match="square"):
        GroupElement(np.ones((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="condition number"):
        from_matrix([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(ValueError, match="condition number"):
        from_matrix(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="offset"):
        from_matrix(np.eye(3), np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        from_matrix(np.array([[1.0, np.nan], [0.0, 1.0]]))
    g = from_matrix(np.eye(3), np.ones(3))
    with pytest.raises(ValueError, match="3 columns"):
        g.apply(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="3 columns"):
        g.apply_readout(np.zeros((2, 4)))
    with pytest.raises(ValueError):
        g.apply(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="condition"):
        Affine(condition=0.5)
    with pytest.raises(ValueError, match="shift_scale"):
        Euclidean(shift_scale=-1.0)
    with pytest.raises(ValueError, match="d must be"):
        Affine().sample(0, 0)


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def test_ridge_stable_under_euclidean_not_affine():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import Ridge

    X, y = _regression()
    rep = stability_report(Ridge(alpha=1.0), X, y, Euclidean())
    assert rep.max_change < 1e-8 and rep.is_stable()
    assert rep.label_change_rate is None  # a regressor
    assert rep.output == "predict"
    assert rep.alpha_name == "alpha" and rep.alpha_reference == 1.0
    assert rep.alpha_max_change == 0.0
    rep = stability_report(Ridge(alpha=1.0), X, y, Affine())
    assert not rep.is_stable()
    assert rep.max_change > 1e-4


def test_ols_is_affine_invariant():
    """Unpenalised least squares is exactly invariant under every invertible affine map."""
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LinearRegression

    X, y = _regression(k=2)  # multi-output too
    for group in (Affine(), Affine(condition=100.0), DiagonalAffine()):
        rep = stability_report(LinearRegression(), X, y, group, n_draws=3)
        assert rep.max_change < 1e-8, str(rep)
        assert rep.alpha_reference is None and rep.alpha_max_change is None


def test_scaled_logistic_pipeline_on_xor():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _xor(n_samples=2000, n_features=8)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    rep = stability_report(pipe, X, y, Affine())
    assert not rep.is_stable()
    assert rep.estimator == "Pipeline(StandardScaler, LogisticRegression)"
    assert rep.output == "decision_function" and rep.alpha_name == "C"
    # Verified: EXACTLY invariant (up to round-off, ~1e-15) under DiagonalAffine, with and
    # without permutations. StandardScaler turns x -> P diag(s) x + v into z -> P sign(s) z,
    # a signed permutation, i.e. an orthogonal map; the L2 penalty with an unpenalised
    # intercept does not see it, and L-BFGS is equivariant under orthogonal maps (it only uses
    # inner products), with a stopping test (max |gradient|) that signed permutations keep.
    # So the optimiser follows the same path and stops at the same iteration.
    for group in (DiagonalAffine(), DiagonalAffine(permute=False)):
        rep = stability_report(pipe, X, y, group)
        assert rep.max_change < 1e-8, str(rep)
        assert rep.label_change_rate == 0.0
    # ... but the scaler breaks rotations: not stable under Euclidean.
    assert not stability_report(pipe, X, y, Euclidean(), n_draws=2).is_stable()


def test_mlp_report():
    pytest.importorskip("sklearn")
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, y = _xor(n_samples=400, n_features=4)  # small: MLP fits dominate the test time
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rep = stability_report(
            MLPClassifier(random_state=0, max_iter=200), X, y, Affine(), n_draws=2
        )
    assert rep.output == "predict_proba"  # no decision_function: positive-class probability
    assert not rep.is_stable()
    assert 0.0 <= rep.label_change_rate <= 1.0
    assert rep.alpha_name == "alpha" and rep.alpha_max_change == 0.0


def test_own_probe_is_euclidean_stable():
    from shallowprobes import LinearProbeClassifier

    X, y = _xor(n_samples=800, n_features=6)
    rep = stability_report(LinearProbeClassifier(), X, y, Euclidean(), n_draws=3)
    assert rep.is_stable(), str(rep)
    assert rep.alpha_name == "alpha_" and isinstance(rep.alpha_reference, float)
    assert rep.alpha_max_change < 1e-8  # alpha chosen by GCV is invariant too
    assert rep.label_change_rate == 0.0


class ReadoutRidge:
    """Fixed-alpha ridge in the readout metric (W^T W)^1/2: invariant under ReadoutAffine.

    Minimal estimator (no scikit-learn base class): exercises the deepcopy/get_params paths.
    If h' = T h + v and W' = W T^-1, then M' T has the same Gram matrix as M = (W^T W)^1/2, so
    M' T = Q M with Q orthogonal and the features are rotated: ridge does not see it.
    """

    def __init__(self, alpha: float = 10.0, readout=None):
        self.alpha = alpha
        self.readout = readout

    def get_params(self, deep: bool = True):
        return {"alpha": self.alpha, "readout": self.readout}

    def set_params(self, **params):
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def fit(self, X, y):
        W = np.asarray(self.readout, dtype=np.float64)
        lam, V = np.linalg.eigh(W.T @ W)
        self.M_ = (V * np.sqrt(np.clip(lam, 0.0, None))) @ V.T
        self.mu_ = X.mean(axis=0)
        Z = (X - self.mu_) @ self.M_
        self.coef_ = np.linalg.solve(
            Z.T @ Z + self.alpha * np.eye(Z.shape[1]), Z.T @ (y - y.mean())
        )
        self.intercept_ = y.mean()
        return self

    def predict(self, X):
        return (X - self.mu_) @ self.M_ @ self.coef_ + self.intercept_


@pytest.mark.parametrize("k", [3, 12])  # rank-deficient and full-rank readouts
def test_readout_group_passes_transformed_readout(k):
    X, y = _regression(d=8)
    W = np.random.default_rng(9).normal(size=(k, 8))
    rep = stability_report(ReadoutRidge(), X, y, ReadoutAffine(), readout=W, n_draws=3)
    assert rep.readout_transformed
    assert rep.is_stable(), str(rep)
    # with the estimator's own readout parameter instead of the keyword
    rep2 = stability_report(ReadoutRidge(readout=W), X, y, ReadoutAffine(), n_draws=3)
    assert rep2.is_stable() and rep2.readout_transformed
    # Affine leaves the readout alone: the metric no longer matches the coordinates
    rep3 = stability_report(ReadoutRidge(), X, y, Affine(), readout=W, n_draws=3)
    assert not rep3.readout_transformed and not rep3.is_stable()


def test_readout_in_pipeline_last_step():
    pytest.importorskip("sklearn")
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.pipeline import make_pipeline

    class SkReadoutRidge(RegressorMixin, BaseEstimator, ReadoutRidge):
        def __init__(self, alpha: float = 10.0, readout=None):
            self.alpha = alpha
            self.readout = readout

        get_params = BaseEstimator.get_params
        set_params = BaseEstimator.set_params

    X, y = _regression(d=6)
    W = np.random.default_rng(3).normal(size=(4, 6))
    rep = stability_report(make_pipeline(SkReadoutRidge()), X, y, ReadoutAffine(), readout=W)
    assert rep.readout_transformed and rep.is_stable(), str(rep)
    # estimators without a readout parameter ignore it
    from sklearn.linear_model import LinearRegression

    rep = stability_report(LinearRegression(), X, y, ReadoutAffine(), readout=W, n_draws=2)
    assert not rep.readout_transformed and rep.is_stable()


def test_report_outputs_and_formatting():
    pytest.importorskip("sklearn")
    pd = pytest.importorskip("pandas")
    from sklearn.linear_model import LinearRegression, Ridge

    X, y = _regression()
    rep = stability_report(Ridge(alpha=1.0), X, y, Affine(), n_draws=4)
    assert isinstance(rep, StabilityReport)
    assert rep.n_draws == 4 and rep.per_draw_change.shape == (4,) and len(rep.elements) == 4
    assert rep.n_train + rep.n_test == X.shape[0] and rep.n_test == 150
    assert rep.max_change == rep.per_draw_change.max()
    assert rep.median_change == pytest.approx(np.median(rep.per_draw_change))
    frame = rep.to_frame()
    assert isinstance(frame, pd.DataFrame) and frame.shape == (4, 8)
    assert list(frame["change"]) == list(rep.per_draw_change)
    text = str(rep)
    assert "Ridge" in text and "NOT stable" in text and "Affine" in text
    stable = stability_report(LinearRegression(), X, y, Affine(), n_draws=2)
    assert "stable (<= 1e-06)" in str(stable) and "NOT" not in str(stable)

    reports = compare_stability(
        {"ols": LinearRegression(), "ridge": Ridge(alpha=1.0)}, X, y, Affine(), n_draws=2
    )
    assert [r.estimator for r in reports] == ["ols", "ridge"]
    # same split and same draws for every estimator
    np.testing.assert_array_equal(reports[0].elements[1].matrix, reports[1].elements[1].matrix)
    table = format_reports(reports)
    lines = table.splitlines()
    assert len(lines) == 4 and "verdict" in lines[0]
    assert "ols" in lines[2] and "stable" in lines[2] and "NOT stable" in lines[3]


def test_report_is_deterministic_and_uses_x_test():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import Ridge

    X, y = _regression()
    a = stability_report(Ridge(), X, y, Affine(), n_draws=3, random_state=5)
    b = stability_report(Ridge(), X, y, Affine(), n_draws=3, random_state=5)
    c = stability_report(Ridge(), X, y, Affine(), n_draws=3, random_state=6)
    np.testing.assert_array_equal(a.per_draw_change, b.per_draw_change)
    assert not np.array_equal(a.per_draw_change, c.per_draw_change)
    rep = stability_report(Ridge(), X[:500], y[:500], Affine(), X_test=X[500:], n_draws=2)
    assert rep.n_train == 500 and rep.n_test == 100
    # float32 input is accepted (converted to float64 once)
    rep32 = stability_report(Ridge(), X.astype(np.float32), y, Euclidean(), n_draws=2)
    assert rep32.max_change < 1e-8


def test_report_bad_input():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import Ridge

    X, y = _regression(n=50, d=4)
    with pytest.raises(TypeError, match="GroupAction"):
        stability_report(Ridge(), X, y, "affine")
    with pytest.raises(ValueError, match="n_draws"):
        stability_report(Ridge(), X, y, Affine(), n_draws=0)
    with pytest.raises(ValueError, match="rows"):
        stability_report(Ridge(), X, y[:-1], Affine())
    with pytest.raises(ValueError, match="X_test"):
        stability_report(Ridge(), X, y, Affine(), X_test=np.zeros((3, 5)))
    with pytest.raises(ValueError, match="test_size"):
        stability_report(Ridge(), X, y, Affine(), test_size=1.5)
    with pytest.raises(ValueError, match="readout"):
        stability_report(ReadoutRidge(), X, y, ReadoutAffine(), readout=np.ones((2, 3)))
    with pytest.raises(TypeError, match="fit"):
        stability_report(object(), X, y, Affine())
    # a GroupAction class is accepted and instantiated with its defaults
    assert stability_report(Ridge(), X, y, Euclidean, n_draws=1).group == "Euclidean"

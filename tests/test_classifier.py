"""LinearProbeClassifier: shapes, labels, probabilities, streaming and equality with
scikit-learn's RidgeClassifier."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_rel, make_classification
from shallowprobes import LinearProbeClassifier
from sklearn.linear_model import RidgeClassifier


def _labels(y, kind):
    if kind == "int":
        return y
    if kind == "str":
        return np.array(["cat", "dog", "emu", "fox"])[y]
    if kind == "neg":
        return np.array([-1, 1, 7, 9])[y]
    if kind == "float":
        return np.array([-1.0, 1.0, 3.0, 4.0])[y]  # integral floats are class labels
    raise ValueError(kind)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("shape", [(80, 10), (30, 50)], ids=["n80_d10", "n30_d50"])
@pytest.mark.parametrize("alpha", [0.1, 3.0])
def test_decision_function_equals_ridge_classifier(backend, n_classes, fit_intercept, shape, alpha):
    n, d = shape
    X, y = make_classification(n_classes * 10 + d, n, d, n_classes)
    clf = LinearProbeClassifier(alphas=[alpha], fit_intercept=fit_intercept, backend=backend)
    clf.fit(X, y)
    ref = RidgeClassifier(alpha=alpha, fit_intercept=fit_intercept, solver="svd").fit(X, y)
    X_new = np.random.default_rng(1).normal(size=(25, d))
    for Xp in (X, X_new):
        dec = clf.decision_function(Xp)
        assert dec.shape == ((Xp.shape[0],) if n_classes == 2 else (Xp.shape[0], n_classes))
        assert_rel(dec, ref.decision_function(Xp), 1e-8, "decision_function")
        np.testing.assert_array_equal(clf.predict(Xp), ref.predict(Xp))
    k = 1 if n_classes == 2 else n_classes
    assert clf.coef_.shape == (k, d)
    assert np.shape(clf.intercept_) == (k,)
    assert_rel(clf.coef_, np.reshape(ref.coef_, (k, d)), 1e-8, "coef_")
    if fit_intercept:
        assert_rel(clf.intercept_, np.reshape(ref.intercept_, (k,)), 1e-8, "intercept_")


@pytest.mark.parametrize("kind", ["int", "str", "neg", "float"])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_classes_and_predict_consistent_with_decision(backend, kind, n_classes):
    X, yi = make_classification(5, 120, 6, n_classes, sep=1.5)
    y = _labels(yi, kind)
    clf = LinearProbeClassifier(cv=3, backend=backend).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.unique(y))
    assert clf.classes_.dtype.kind == y.dtype.kind
    pred = clf.predict(X)
    dec = clf.decision_function(X)
    assert pred.shape == (120,)
    assert set(np.unique(pred)) <= set(np.unique(y))
    if n_classes == 2:
        np.testing.assert_array_equal(pred, clf.classes_[(dec > 0).astype(int)])
    else:
        np.testing.assert_array_equal(pred, clf.classes_[np.argmax(dec, axis=1)])
    # the positive decision direction belongs to classes_[1] in the binary case
    if n_classes == 2:
        assert np.mean(dec[y == clf.classes_[1]]) > np.mean(dec[y == clf.classes_[0]])


def test_classes_with_object_strings(backend):
    X, yi = make_classification(6, 60, 4, 3, sep=2.0)
    y = np.array(["b", "a", "c"], dtype=object)[yi]
    clf = LinearProbeClassifier(backend=backend).fit(X, y)
    assert list(clf.classes_) == ["a", "b", "c"]
    assert clf.score(X, y) > 0.5
    clf_list = LinearProbeClassifier(backend=backend).fit(X, list(y))
    np.testing.assert_array_equal(clf_list.predict(X), clf.predict(X))


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_predict_proba_rows_sum_to_one(backend, n_classes):
    X, y = make_classification(7, 150, 8, n_classes)
    clf = LinearProbeClassifier(backend=backend).fit(X, y)
    X_new = np.random.default_rng(2).normal(size=(40, 8)) * 3
    for Xp in (X, X_new):
        proba = clf.predict_proba(Xp)
        assert proba.shape == (Xp.shape[0], n_classes)
        assert np.all(proba >= 0) and np.all(proba <= 1)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(clf.predict_log_proba(Xp), np.log(proba))


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("balanced", [True, False])
def test_predict_proba_argmax_equals_predict(backend, n_classes, balanced):
    """The most probable class is the predicted class (scikit-learn's classifier contract,
    checked by its check_classifiers_train)."""
    rng = np.random.default_rng(n_classes)
    n = 300
    if balanced:
        y = np.arange(n) % n_classes
    else:  # class 0 holds ~70% of the rows
        y = np.where(rng.random(n) < 0.7, 0, rng.integers(1, n_classes, size=n))
    X = rng.normal(size=(n, 3)) + 0.8 * rng.normal(size=(n_classes, 3))[y]
    clf = LinearProbeClassifier(backend=backend).fit(X, y)
    for Xp in (X, rng.normal(size=(200, 3)) * 2):
        proba = clf.predict_proba(Xp)
        np.testing.assert_array_equal(clf.classes_[np.argmax(proba, axis=1)], clf.predict(Xp))


def test_predict_proba_binary_monotone_in_decision(backend):
    X, y = make_classification(8, 200, 5, 2)
    clf = LinearProbeClassifier(backend=backend).fit(X, y)
    X_new = np.random.default_rng(3).normal(size=(500, 5)) * 2
    dec = clf.decision_function(X_new)
    p1 = clf.predict_proba(X_new)[:, 1]
    order = np.argsort(dec)
    assert np.all(np.diff(p1[order]) >= 0)
    assert p1[order[-1]] > p1[order[0]] + 0.5  # informative, not constant
    # and it depends on nothing but the decision value: move rows orthogonally to coef_
    w = clf.coef_[0]
    V = np.random.default_rng(4).normal(size=X_new.shape)
    V -= np.outer(V @ w, w) / (w @ w)
    X_moved = X_new + 5 * V
    np.testing.assert_allclose(clf.decision_function(X_moved), dec, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(clf.predict_proba(X_moved), clf.predict_proba(X_new), atol=1e-9)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("cv", ["gcv", 4])
def test_partial_fit_with_classes_equals_fit(backend, n_classes, cv):
    X, yi = make_classification(9, 160, 7, n_classes)
    y = _labels(yi, "str")
    classes = np.unique(y)
    full = LinearProbeClassifier(cv=cv, backend=backend).fit(X, y)
    streamed = LinearProbeClassifier(cv=cv, backend=backend)
    # first chunk misses a class: classes= must declare it
    first = np.flatnonzero(y[:60] != classes[-1])
    rest = np.setdiff1d(np.arange(160), first)
    order = np.concatenate([first, rest])
    full_perm = LinearProbeClassifier(cv=cv, backend=backend).fit(X[order], y[order])
    streamed.partial_fit(X[first], y[first], classes=classes[::-1])
    for a, b in [(0, 30), (30, len(rest))]:
        idx = rest[a:b]
        streamed.partial_fit(X[idx], y[idx])
    np.testing.assert_array_equal(streamed.classes_, classes)
    assert streamed.alpha_ == pytest.approx(full_perm.alpha_, rel=1e-12)
    assert_rel(streamed.coef_, full_perm.coef_, 1e-9, "coef_")
    assert_rel(streamed.decision_function(X), full_perm.decision_function(X), 1e-9, "decision")
    assert_rel(streamed.predict_proba(X), full_perm.predict_proba(X), 1e-9, "predict_proba")
    if cv == "gcv":  # GCV does not depend on the row order; K-fold assignments do
        assert_rel(streamed.coef_, full.coef_, 1e-9, "coef_ vs unpermuted fit")


def test_partial_fit_without_all_classes_in_first_chunk_raises(backend):
    X, y = make_classification(10, 60, 3, 3)
    clf = LinearProbeClassifier(backend=backend).partial_fit(X[y != 2], y[y != 2])
    with pytest.raises(ValueError, match="not in classes"):
        clf.partial_fit(X[y == 2], y[y == 2])


def test_separable_problem_is_classified_perfectly(backend):
    rng = np.random.default_rng(11)
    n, d = 200, 10
    w = rng.normal(size=d)
    X = rng.normal(size=(n, d))
    margin = X @ w
    keep = np.abs(margin) > 0.5  # a clear margin
    X, y = X[keep], np.where(margin[keep] > 0, "pos", "neg")
    for cv in ("gcv", "loo", 5):
        clf = LinearProbeClassifier(cv=cv, backend=backend).fit(X, y)
        assert clf.score(X, y) == 1.0
        X_test = rng.normal(size=(500, d))
        m = X_test @ w
        far = np.abs(m) > 1.0
        y_test = np.where(m[far] > 0, "pos", "neg")
        assert clf.score(X_test[far], y_test) >= 0.97


def test_multiclass_accuracy_beats_chance_and_scoring_options(backend):
    X, y = make_classification(12, 240, 6, 3, sep=2.0)
    for scoring, cv in [("squared_error", "gcv"), ("accuracy", "loo"), ("roc_auc", 4)]:
        clf = LinearProbeClassifier(cv=cv, scoring=scoring, backend=backend).fit(X, y)
        assert clf.cv_results_["scoring"] == scoring
        assert clf.score(X, y) > 0.6
        best = clf.best_score_
        assert best == pytest.approx(np.nanmax(clf.cv_results_["mean_scores"]))
        if scoring == "accuracy":
            assert 0.6 < best <= 1.0
        if scoring == "roc_auc":
            assert 0.7 < best <= 1.0


def test_alpha_per_target_classifier(backend):
    X, y = make_classification(13, 150, 6, 3)
    clf = LinearProbeClassifier(cv="loo", alpha_per_target=True, backend=backend).fit(X, y)
    assert np.shape(clf.alpha_) == (3,)
    scores = clf.cv_results_["scores"]
    np.testing.assert_array_equal(clf.alpha_, clf.alphas_[np.argmax(scores, axis=0)])
    # each column equals a single-alpha classifier's column at that alpha
    for t in range(3):
        single = LinearProbeClassifier(alphas=[clf.alpha_[t]], backend=backend).fit(X, y)
        assert_rel(clf.coef_[t], single.coef_[t], 1e-9, f"column {t}")


def test_column_vector_y_warns_and_works(backend):
    from sklearn.exceptions import DataConversionWarning

    X, y = make_classification(14, 50, 3, 2)
    with pytest.warns(DataConversionWarning):
        a = LinearProbeClassifier(backend=backend).fit(X, y[:, None])
    b = LinearProbeClassifier(backend=backend).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_continuous_target_is_rejected(backend):
    """A classifier given a continuous (float) target must refuse it, as scikit-learn's
    classifiers do ('Unknown label type: continuous'), not make one class per value."""
    X, _ = make_classification(15, 50, 3, 2)
    y = np.random.default_rng(0).normal(size=50)
    with pytest.raises(ValueError, match="continuous"):
        LinearProbeClassifier(backend=backend).fit(X, y)

"""scikit-learn models as monitors: ProbeBank.from_sklearn / PolynomialMonitor.from_sklearn.

Every supported pipeline shape is compared with scikit-learn's own decision_function (or
predict, for regressors) on data the model was fitted on and on fresh rows far from it, for
several seeds and widths: the monitor is the same polynomial, to 1e-10 of the score scale.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import shallowprobes as sp
from shallowprobes import PolynomialMonitor, ProbeBank

sklearn = pytest.importorskip("sklearn")
from sklearn.decomposition import PCA, TruncatedSVD  # noqa: E402
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.feature_selection import VarianceThreshold  # noqa: E402
from sklearn.linear_model import (  # noqa: E402
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import (  # noqa: E402
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
)
from sklearn.svm import SVC, LinearSVC, LinearSVR  # noqa: E402

TOL = 1e-10


def data(seed, n=300, d=6):
    """Anisotropic rows with a large offset (as hidden states have), binary / 3-class labels
    that need an interaction, and two regression targets."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.3, 4.0, d) + rng.standard_normal(d) * 6
    Xs = (X - X.mean(0)) / X.std(0)
    t = Xs[:, 0] * Xs[:, 1] + Xs[:, 2] + 0.3 * rng.standard_normal(n)
    y2 = (t > np.median(t)).astype(int)
    y3 = np.array(["low", "mid", "high"])[np.digitize(t, np.quantile(t, [1 / 3, 2 / 3]))]
    Y = np.column_stack([t, Xs[:, 3] - 0.5 * Xs[:, 0] ** 2])
    far = rng.standard_normal((50, d)) * 3 * X.std(0) + X.mean(0)  # off the training cloud
    return X, y2, y3, Y, far


def sklearn_scores(model, X):
    out = model.decision_function(X) if hasattr(model, "decision_function") else model.predict(X)
    return np.asarray(out, dtype=np.float64).reshape(X.shape[0], -1)


def rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


def lr():
    # convergence is not the point: the monitor must equal whatever model was fitted
    return LogisticRegression(C=10.0, max_iter=300)


CLASSIFIER_PIPELINES = {
    "logreg": lambda: lr(),
    "scaler+logreg": lambda: make_pipeline(StandardScaler(), lr()),
    "pca+logreg": lambda: make_pipeline(PCA(4), lr()),
    "pca(whiten)+logreg": lambda: make_pipeline(PCA(5, whiten=True), lr()),
    "scaler+pca+logreg": lambda: make_pipeline(StandardScaler(), PCA(5), lr()),
    "poly2+logreg": lambda: make_pipeline(PolynomialFeatures(2), lr()),
    "scaler+poly2+logreg": lambda: make_pipeline(StandardScaler(), PolynomialFeatures(2), lr()),
    "scaler+pca+poly2+logreg": lambda: make_pipeline(StandardScaler(), PCA(4),
                                                     PolynomialFeatures(2), lr()),
    "scaler+poly2+scaler+logreg": lambda: make_pipeline(
        StandardScaler(), PolynomialFeatures(2, include_bias=False), StandardScaler(), lr()),
    "poly2(interactions)+linearsvc": lambda: make_pipeline(
        StandardScaler(), PolynomialFeatures(2, interaction_only=True), LinearSVC(C=0.1)),
    "scaler+ridgeclassifier": lambda: make_pipeline(StandardScaler(), RidgeClassifier()),
    "minmax+sgd": lambda: make_pipeline(MinMaxScaler(), SGDClassifier(random_state=0)),
    "robust+maxabs+lda": lambda: make_pipeline(RobustScaler(), MaxAbsScaler(),
                                               LinearDiscriminantAnalysis()),
    "selector+identity+logreg": lambda: make_pipeline(
        VarianceThreshold(), FunctionTransformer(None), "passthrough", lr()),
    "truncatedsvd+poly2+logreg": lambda: make_pipeline(
        TruncatedSVD(4, random_state=0), PolynomialFeatures(2), lr()),
}


@pytest.mark.parametrize("seed,d", [(0, 5), (1, 8)])
@pytest.mark.parametrize("shape", list(CLASSIFIER_PIPELINES))
def test_classifier_pipelines_match_decision_function(shape, seed, d):
    X, y2, y3, _, far = data(seed, d=d)
    for y in (y2, y3):
        model = CLASSIFIER_PIPELINES[shape]()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings are not the point
            model.fit(X, y)
        bank = ProbeBank.from_sklearn({"m": model})
        for rows in (X, far):
            ref = sklearn_scores(model, rows)
            got = bank.decision_function(rows)
            assert got.shape == ref.shape
            assert rel(got, ref) <= TOL, (shape, rel(got, ref))
        classes = [str(c) for c in model.classes_]
        if len(classes) == 2:
            assert bank.names == ["m"]
        else:
            assert bank.names == [f"m[{c}]" for c in classes]
        quadratic = "poly2" in shape
        for j, name in enumerate(bank.names):
            mon = bank[name]
            assert mon.kind == ("quadratic" if quadratic else "linear")
            assert (mon.quadratic is not None) == quadratic
            assert mon.info["task"] == "classifier" and mon.info["threshold"] == 0.0
            single = PolynomialMonitor.from_sklearn(model, output=j)
            np.testing.assert_array_equal(single.decision_function(X), mon.decision_function(X))
        # the decisions are the classifier's (binary: score > 0 means classes_[1])
        if len(classes) == 2:
            pred = np.where(bank.decision_function(X)[:, 0] > 0, model.classes_[1],
                            model.classes_[0])  # fmt: skip
            assert np.mean(pred == model.predict(X)) == 1.0


REGRESSOR_PIPELINES = {
    "linear": lambda: LinearRegression(),
    "scaler+ridge": lambda: make_pipeline(StandardScaler(), Ridge(alpha=0.3)),
    "pca+poly2+linear": lambda: make_pipeline(PCA(4), PolynomialFeatures(2), LinearRegression()),
    "scaler+poly2+ridge": lambda: make_pipeline(StandardScaler(), PolynomialFeatures(2),
                                                Ridge(alpha=1e-3)),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", list(REGRESSOR_PIPELINES))
def test_regressor_pipelines_match_predict(shape, seed):
    X, _, _, Y, far = data(seed, d=7)
    for targets in (Y[:, 0], Y):
        model = REGRESSOR_PIPELINES[shape]().fit(X, targets)
        bank = ProbeBank.from_sklearn({"r": model})
        for rows in (X, far):
            ref = sklearn_scores(model, rows)
            assert rel(bank.decision_function(rows), ref) <= TOL, shape
        assert bank.names == (["r"] if targets.ndim == 1 else ["r[0]", "r[1]"])
        assert all("threshold" not in m.info for m in bank.values())
        assert all(m.info["task"] == "regressor" for m in bank.values())


@pytest.mark.parametrize("seed", [0, 1])
def test_single_models_and_the_svm_family(seed):
    X, y2, _, Y, far = data(seed, d=6)
    models = {
        "svc": SVC(kernel="linear", C=0.5).fit(X, y2),
        "linsvr": LinearSVR(C=0.1, max_iter=20000, random_state=0).fit(X, Y[:, 0]),
        "sgdr": make_pipeline(StandardScaler(), SGDRegressor(random_state=0)).fit(X, Y[:, 0]),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bank = ProbeBank.from_sklearn(models, metadata={"model": "A"})
    assert bank.metadata == {"model": "A"}
    for name, model in models.items():
        for rows in (X, far):
            assert rel(bank.decision_function(rows, names=name), sklearn_scores(model, rows)
                       ) <= TOL, name  # fmt: skip


def test_bank_constructor_and_add_take_sklearn_models(tmp_path):
    X, _, y3, _, _ = data(3)
    pipe = make_pipeline(StandardScaler(), PolynomialFeatures(2), lr()).fit(X, y3)
    via_init = ProbeBank({"topic": pipe})
    via_cls = ProbeBank.from_sklearn({"topic": pipe})
    assert via_init.names == via_cls.names == ["topic[high]", "topic[low]", "topic[mid]"]
    np.testing.assert_array_equal(via_init.decision_function(X), via_cls.decision_function(X))
    one = ProbeBank().add("mid", pipe, output=2)
    np.testing.assert_array_equal(one.decision_function(X)[:, 0], via_cls.decision_function(
        X, names="topic[mid]")[:, 0])  # fmt: skip
    with pytest.raises(IndexError, match="out of range"):
        ProbeBank().add("x", pipe, output=3)
    with pytest.raises(IndexError, match="out of range"):
        PolynomialMonitor.from_sklearn(pipe, output=3)
    # a mixed bank (sklearn + the library's probes) saves and loads without pickle
    via_init.add("probe", sp.LinearProbeClassifier().fit(X, y3 == "mid"))
    via_init.save(tmp_path / "bank")
    back = ProbeBank.load(tmp_path / "bank")
    np.testing.assert_array_equal(back.decision_function(X), via_init.decision_function(X))
    assert back["topic[mid]"].info == via_init["topic[mid]"].info


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: make_pipeline(PolynomialFeatures(3), lr()), "degree <= 2"),
        (lambda: make_pipeline(PolynomialFeatures(2), PolynomialFeatures(2), lr()), "degree"),
        (lambda: make_pipeline(Normalizer(), lr()), "Normalizer"),
        (lambda: make_pipeline(MinMaxScaler(clip=True), lr()), "MinMaxScaler"),
        (lambda: make_pipeline(FunctionTransformer(np.tanh), lr()), "FunctionTransformer"),
        (lambda: RandomForestClassifier(n_estimators=3, random_state=0), "RandomForest"),
        (lambda: PoissonRegressor(), "PoissonRegressor"),
        (lambda: SVC(kernel="rbf"), "SVC"),
    ],
)
def test_unsupported_models_are_refused(make, match):
    X, y2, _, Y, _ = data(0)
    model = make()
    target = np.abs(Y[:, 0]) + 0.1 if isinstance(model, PoissonRegressor) else y2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, target)
    with pytest.raises(TypeError, match=match):
        ProbeBank.from_sklearn({"m": model})
    with pytest.raises(TypeError, match=match):
        PolynomialMonitor.from_sklearn(model)


def test_one_vs_one_svc_unfitted_models_and_bad_arguments():
    X, _, y3, _, _ = data(1)
    ovo = SVC(kernel="linear").fit(X, y3)
    with pytest.raises(TypeError, match="one-vs-one"):
        ProbeBank.from_sklearn({"svc": ovo})
    with pytest.raises(ValueError, match="not fitted"):
        ProbeBank.from_sklearn({"m": make_pipeline(StandardScaler(), lr())})
    with pytest.raises(TypeError, match="mapping"):
        ProbeBank.from_sklearn([("m", ovo)])
    with pytest.raises(TypeError, match="not a scikit-learn"):
        ProbeBank.from_sklearn({"p": sp.LinearProbe().fit(X, X[:, 0])})


def test_sklearn_monitors_transfer_label_free():
    """A StandardScaler + LogisticRegression bank fitted on A moves to B like any other."""
    from shallowprobes.datasets import concept_model_pair

    pair = concept_model_pair(2000, 16, within_class_noise=0.5, random_state=2)
    n_fit = 1000  # labelled rows of A for the sklearn monitors; the pairs are the rest
    bank = ProbeBank.from_sklearn({
        f"topic_{k}": make_pipeline(StandardScaler(), lr()).fit(pair.H_A[:n_fit],
                                                                pair.labels[:n_fit, k])
        for k in range(5)
    })  # fmt: skip
    moved = sp.transfer(bank, pair.H_A[n_fit:], pair.H_B[n_fit:])
    assert moved.report.portable == bank.names
    for k, name in enumerate(bank.names):
        y = pair.labels[n_fit:, k].astype(bool)
        src = bank.decision_function(pair.H_A[n_fit:], names=name)[:, 0]
        dst = moved.decision_function(pair.H_B[n_fit:], names=name)[:, 0]
        pos, neg = dst[y], dst[~y]
        a_dst = np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :])
        pos, neg = src[y], src[~y]
        a_src = np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :])
        assert a_dst >= a_src - 0.02 and a_src > 0.95
        assert moved[name].info["threshold"] == 0.0

"""Type-checked use of the public API (mypy runs on this file; pytest does not collect it).

mypy follows the package silently from here, so a public signature that disagrees with how
the README uses it (argument names, return types) fails the lint.
"""

from __future__ import annotations

import numpy as np
import shallowprobes as sp
from shallowprobes import _core
from shallowprobes.errors import BundleError, NonFiniteError, ScaleError, ShallowProbesError


def readme_quick_start(X: np.ndarray, Y: np.ndarray, labels: np.ndarray) -> float:
    probe = sp.LinearProbe(cv="gcv", alpha_per_target=True).fit(X, Y)
    pred: np.ndarray = probe.predict(X)
    clf = sp.LinearProbeClassifier(cv="loo", scoring="roc_auc").fit(X, labels)
    proba: np.ndarray = clf.predict_proba(X)
    stream = sp.LinearProbe(cv=5)
    stream.partial_fit(X, Y)
    stats = sp.SufficientStats(n_folds=5).update(X, Y)
    merged: sp.SufficientStats = stats + stats
    quad = sp.QuadraticProbe(solver="dual").fit(X, Y[:, 0])
    cp = sp.CPProbe(rank=2).fit(X, Y[:, 0])
    sp.set_num_threads(0)
    n: int = sp.get_num_threads()
    scores = quad.score(X, Y[:, 0]) + cp.score(X, Y[:, 0])
    return float(pred.sum() + proba.sum() + merged.n_samples + n) + scores


def core_stub(X: np.ndarray) -> bool:
    flag = np.zeros(1, dtype=np.uint8)
    m = _core.finite_max_abs(X, flag)
    lam, V, B = _core.spectrum(X.T @ X, X.T[:, :1], flag)
    return m is not None and lam.shape[0] == V.shape[0] == B.shape[0]


def errors_are_classes() -> tuple[type[Exception], ...]:
    hierarchy: tuple[type[ShallowProbesError], ...] = (NonFiniteError, ScaleError, BundleError)
    return hierarchy

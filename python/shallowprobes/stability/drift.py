"""How far a refitted estimator drifts under coordinate changes: :func:`stability_report`
(refit on ``g(X_train)`` for random group elements ``g``, compare held-out outputs) and
:func:`compare_stability` (several estimators on the same split and draws), with the
duck-typed estimator plumbing they need (clone, pipeline steps, readout, outputs, alpha)."""

from __future__ import annotations

import copy
import inspect
from typing import Any, Optional

import numpy as np

from .._params import (
    RANDOM_STATE,
    Interval,
    NonFiniteParameterError,
    ParameterError,
    ParameterTypeError,
    check_param,
    shown,
)
from .groups import GroupAction, RandomLike
from .report import StabilityReport

_TINY = np.finfo(np.float64).tiny


# --------------------------------------------------------------------------------------------
# Estimator plumbing
# --------------------------------------------------------------------------------------------


def _clone(estimator: Any) -> Any:
    try:
        from sklearn.base import clone
    except ImportError:  # pragma: no cover - exercised only without scikit-learn
        return copy.deepcopy(estimator)
    try:
        return clone(estimator)
    except TypeError:  # not a scikit-learn-style estimator (no get_params)
        return copy.deepcopy(estimator)


def _final_step(estimator: Any) -> tuple[Any, str]:
    """(last step, parameter prefix) for a Pipeline; (estimator, "") otherwise."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps and isinstance(steps[-1], tuple):
        name, step = steps[-1][0], steps[-1][1]
        return step, f"{name}__"
    return estimator, ""


def _estimator_name(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps and isinstance(steps[0], tuple):
        inner = ", ".join(type(s[1]).__name__ for s in steps)
        return f"{type(estimator).__name__}({inner})"
    return type(estimator).__name__


def _has_param(obj: Any, name: str) -> bool:
    get_params = getattr(obj, "get_params", None)
    if callable(get_params):
        try:
            return name in get_params(deep=False)
        except TypeError:
            pass
    try:
        return name in inspect.signature(type(obj).__init__).parameters
    except (TypeError, ValueError):
        return False


def _get_param(obj: Any, name: str) -> Any:
    get_params = getattr(obj, "get_params", None)
    if callable(get_params):
        try:
            return get_params(deep=False).get(name)
        except TypeError:
            pass
    return getattr(obj, name, None)


def _set_readout(estimator: Any, value: np.ndarray) -> None:
    step, prefix = _final_step(estimator)
    if callable(getattr(estimator, "set_params", None)):
        estimator.set_params(**{prefix + "readout": value})
    else:
        step.readout = value


def _output_kind(estimator: Any) -> str:
    for kind in ("decision_function", "predict_proba", "predict"):
        if hasattr(estimator, kind):
            return kind
    raise TypeError(
        f"{type(estimator).__name__} has none of decision_function, predict_proba, predict."
    )


def _outputs(estimator: Any, X: np.ndarray, kind: str) -> np.ndarray:
    out = np.asarray(getattr(estimator, kind)(X))
    if kind == "predict_proba" and out.ndim == 2 and out.shape[1] == 2:
        out = out[:, 1]
    try:
        return np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{type(estimator).__name__}.{kind} returned non-numeric values ({out.dtype}); "
            "cannot measure their change."
        ) from None


def _is_classifier(fitted: Any) -> bool:
    try:
        return getattr(fitted, "classes_", None) is not None
    except Exception:  # noqa: BLE001 - a property may raise anything when unavailable
        return False


_ALPHA_ATTRS = ("alpha_", "C_", "alpha", "C")


def _regularisation(fitted: Any) -> tuple[Optional[str], Any]:
    step, _ = _final_step(fitted)
    for attr in _ALPHA_ATTRS:
        try:
            value = getattr(step, attr)
        except Exception:  # noqa: BLE001 - fitted-only properties raise various errors
            continue
        if value is None:
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue  # e.g. a string option
        return attr, (float(arr) if arr.ndim == 0 else arr.copy())
    return None, None


def _alpha_change(ref: Any, draws: list) -> Optional[float]:
    if ref is None or any(a is None for a in draws):
        return None
    r = np.asarray(ref, dtype=np.float64)
    worst = 0.0
    for a in draws:
        a = np.asarray(a, dtype=np.float64)
        if a.shape != r.shape:
            return float("nan")
        diff = np.abs(a - r)
        scale = np.abs(r)
        rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), diff)
        worst = max(worst, float(np.max(rel)) if rel.size else 0.0)
    return worst


def _as_2d_float(X: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a numeric 2-D array.") from None
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{what} must be a non-empty 2-D array, got shape {arr.shape}.")
    return arr


def _spawn(random_state: RandomLike, k: int) -> list[np.random.Generator]:
    seeds = np.random.default_rng(random_state).integers(0, 2**63 - 1, size=k)
    return [np.random.default_rng(int(s)) for s in seeds]


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def stability_report(
    estimator: Any,
    X: Any,
    y: Any,
    group: GroupAction,
    *,
    n_draws: int = 5,
    X_test: Any = None,
    test_size: float = 0.25,
    readout: Any = None,
    random_state: RandomLike = 0,
    name: Optional[str] = None,
) -> StabilityReport:
    """Measure how much an estimator's held-out outputs depend on the coordinates of X.

    The estimator is cloned and fitted on the training rows in the original coordinates
    (the *reference*), then, for each of ``n_draws`` random elements ``g`` of ``group``,
    cloned again and fitted on ``g(X_train)``; its outputs on ``g(X_test)`` are compared with
    the reference outputs on ``X_test``. For an estimator that is invariant under the group
    the two agree up to round-off (relative change ~1e-12).

    Parameters
    ----------
    estimator : estimator
        Anything with ``fit`` and one of ``decision_function`` / ``predict_proba`` /
        ``predict`` (our probes, scikit-learn classifiers, regressors, pipelines). It is not
        modified: ``sklearn.base.clone`` is used (``copy.deepcopy`` without scikit-learn).
    X : array-like of shape (n, d)
        Hidden states. Converted to float64 once, so that the reference fit and the
        transformed fits see the same precision.
    y : array-like of shape (n,) or (n, k)
        Targets or class labels.
    group : GroupAction
        The coordinate changes to test, e.g. ``Affine(condition=10)``.
    n_draws : int, default=5
        Number of random group elements.
    X_test : array-like of shape (m, d), optional
        Rows to compare the outputs on. If given, all of ``X`` is used for fitting;
        otherwise ``X`` is split at random (deterministically for an integer
        ``random_state``) and a fraction ``test_size`` is held out.
    test_size : float, default=0.25
        Held-out fraction, in (0, 1), when ``X_test`` is not given.
    readout : array-like of shape (k, d), optional
        The network's readout matrix W. Passed as the ``readout`` parameter to an estimator
        (or the last step of a pipeline) that has one: unchanged for the reference fit and
        for groups that do not act on the readout, ``g.apply_readout(W)`` for each draw of
        :class:`ReadoutAffine`. Ignored for estimators without such a parameter. When None
        and the group acts on the readout, the estimator's own ``readout`` parameter (if
        set) is used.
    random_state : int, Generator or None, default=0
        Seeds the split and the group draws.
    name : str, optional
        Name to report for the estimator (default: its class name).

    Returns
    -------
    StabilityReport

    Raises
    ------
    ValueError
        On malformed X / y / X_test / readout or out-of-range ``n_draws`` / ``test_size``.
    TypeError
        If ``group`` is not a :class:`GroupAction` or the estimator cannot be evaluated.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5)); y = X @ rng.normal(size=5) + rng.normal(size=200)
    >>> stability_report(LinearRegression(), X, y, Affine(condition=10)).is_stable()
    True
    """
    owner = "stability_report"
    if isinstance(group, type) and issubclass(group, GroupAction):
        group = group()
    if not isinstance(group, GroupAction):
        raise ParameterTypeError(
            f"group must be a GroupAction (e.g. Affine()), got {shown(group)}."
        )
    check_param("n_draws", n_draws, [Interval("int", 1, None, desc="a positive integer")],
                owner=owner)  # fmt: skip
    n_draws = int(n_draws)
    if not callable(getattr(estimator, "fit", None)):
        raise ParameterTypeError(f"estimator must have a fit method, got {shown(estimator)}.")
    check_param("test_size", test_size,
                [Interval("real", 0.0, 1.0, closed="neither", desc="a fraction in (0, 1)")],
                owner=owner)  # fmt: skip
    check_param("random_state", random_state, RANDOM_STATE, owner=owner)
    if name is not None and not isinstance(name, str):
        raise ParameterTypeError(f"name must be a string or None, got {shown(name)}.")

    X = _as_2d_float(X, "X")
    y = np.asarray(y)
    n, d = X.shape
    if y.shape[:1] != (n,):
        raise ValueError(f"y must have {n} rows to match X, got shape {y.shape}.")
    if readout is not None:
        try:
            readout = np.asarray(readout, dtype=np.float64)
        except (TypeError, ValueError):
            raise ParameterTypeError(
                f"readout must be a numeric array of shape (k, {d}), got {shown(readout)}."
            ) from None
        if readout.ndim not in (1, 2) or readout.shape[-1] != d:
            raise ParameterError(
                f"readout must have shape (k, {d}) to act on the {d}-dimensional hidden states, "
                f"got shape {readout.shape}."
            )
        if not np.isfinite(readout).all():
            raise NonFiniteParameterError(
                "readout contains NaN or infinity; the readout matrix must be finite."
            )

    split_rng, group_rng = _spawn(random_state, 2)
    if X_test is not None:
        X_train, y_train = X, y
        X_te = _as_2d_float(X_test, "X_test")
        if X_te.shape[1] != d:
            raise ValueError(f"X_test must have {d} columns like X, got shape {X_te.shape}.")
    else:
        test_size = float(test_size)
        n_test = int(round(test_size * n))
        if n_test < 1 or n - n_test < 2:
            raise ParameterError(
                f"cannot split {n} rows with test_size={test_size}: need at least 1 test row "
                "and 2 training rows (or pass X_test)."
            )
        perm = split_rng.permutation(n)
        te, tr = perm[:n_test], perm[n_test:]
        X_train, y_train, X_te = X[tr], y[tr], X[te]

    final, _ = _final_step(estimator)
    takes_readout = _has_param(final, "readout")
    if readout is None and group.transforms_readout and takes_readout:
        readout = _get_param(final, "readout")
    if readout is not None:  # the estimator's own readout (the one passed is checked above)
        readout = np.asarray(readout, dtype=np.float64)
        if readout.ndim not in (1, 2) or readout.shape[-1] != d:
            raise ParameterError(
                f"readout must have shape (k, {d}) to act on the {d}-dimensional hidden states, "
                f"got shape {readout.shape}."
            )
    use_readout = readout is not None and takes_readout

    # Reference fit in the original coordinates.
    ref = _clone(estimator)
    if use_readout:
        _set_readout(ref, readout)
    ref.fit(X_train, y_train)
    kind = _output_kind(ref)
    f_ref = _outputs(ref, X_te, kind)
    classifier = _is_classifier(ref)
    labels_ref = np.asarray(ref.predict(X_te)) if classifier else None
    alpha_name, alpha_ref = _regularisation(ref)
    scale = max(float(np.max(np.abs(f_ref))), _TINY)
    spread = max(float(np.std(f_ref)), _TINY)

    changes, typical, flips, alphas, conds, elements = [], [], [], [], [], []
    for _ in range(n_draws):
        g = group.sample(d, group_rng)
        elements.append(g)
        conds.append(g.condition_number)
        est = _clone(estimator)
        if use_readout:
            _set_readout(est, g.apply_readout(readout) if group.transforms_readout else readout)
        est.fit(g.apply(X_train), y_train)
        X_g = g.apply(X_te)
        f_g = _outputs(est, X_g, kind)
        if f_g.shape != f_ref.shape:
            raise ValueError(
                f"outputs changed shape under the group ({f_ref.shape} -> {f_g.shape})."
            )
        delta = np.abs(f_g - f_ref)
        changes.append(float(np.max(delta)) / scale)
        typical.append(float(np.median(delta)) / spread)
        if classifier:
            flips.append(float(np.mean(np.asarray(est.predict(X_g)) != labels_ref)))
        alphas.append(_regularisation(est)[1])

    per_draw = np.asarray(changes)
    per_flip = np.asarray(flips) if classifier else None
    has_alpha = alpha_ref is not None
    return StabilityReport(
        estimator=name if name is not None else _estimator_name(estimator),
        group=group.name,
        condition=group.condition,
        n_draws=n_draws,
        max_change=float(np.max(per_draw)),
        median_change=float(np.median(per_draw)),
        per_draw_change=per_draw,
        label_change_rate=float(np.max(flips)) if classifier else None,
        alpha_reference=alpha_ref,
        alpha_per_draw=alphas if has_alpha else None,
        alpha_max_change=_alpha_change(alpha_ref, alphas) if has_alpha else None,
        output=kind,
        typical_change=float(np.max(typical)),
        per_draw_typical_change=np.asarray(typical),
        per_draw_label_change=per_flip,
        per_draw_condition=np.asarray(conds),
        alpha_name=alpha_name,
        readout_transformed=bool(use_readout and group.transforms_readout),
        n_train=int(X_train.shape[0]),
        n_test=int(X_te.shape[0]),
        elements=elements,
    )


def compare_stability(
    estimators: dict, X: Any, y: Any, group: GroupAction, **kw: Any
) -> list[StabilityReport]:
    """:func:`stability_report` for several estimators on the same split and group draws.

    Parameters
    ----------
    estimators : dict of str -> estimator
        Names (used in the reports) and estimators.
    X, y, group, **kw
        As for :func:`stability_report` (``name`` is taken from the dict keys). With the
        same ``random_state`` every estimator sees the same split and the same elements.

    Returns
    -------
    list of StabilityReport, in the order of ``estimators``.
    """
    if not isinstance(estimators, dict) or not estimators:
        raise (ParameterError if isinstance(estimators, dict) else ParameterTypeError)(
            f"estimators must be a non-empty dict of name -> estimator, got {shown(estimators)}."
        )
    for key, est in estimators.items():  # all of them, before the first fit
        if not callable(getattr(est, "fit", None)):
            raise ParameterTypeError(
                f"estimators[{key!r}] must have a fit method, got {shown(est)}."
            )
    kw.pop("name", None)
    return [
        stability_report(est, X, y, group, name=str(key), **kw) for key, est in estimators.items()
    ]

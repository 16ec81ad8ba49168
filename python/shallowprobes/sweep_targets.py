"""The targets of `sweep`: what it accepts as targets and as a separate test set, the task of
each target, and its training values encoded as the columns of the one Y every layer's
statistics share (`Target.codes`, `Target.cols`).

Kept apart from `shallowprobes.sweep` because turning user targets into code columns is its own
concern, with its own errors (each names the target); the sweep only sees the Y it builds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .caches import ActivationCache, open_cache
from .errors import CacheError, NonFiniteError, ParameterError
from .probes.linear import LinearProbe, LinearProbeClassifier

_TASKS = ("auto", "classification", "regression")


@dataclass
class Target:
    name: str
    task: str
    train: np.ndarray  # the training values (labels or numbers)
    test: Optional[np.ndarray]
    codes: np.ndarray = None  # (n_train, c) float64 columns fed to the statistics
    state: dict = None  # the probe's _target_state
    cols: list = None  # columns of the layer's Y


def _target_items(targets: Any) -> list[tuple[str, np.ndarray]]:
    if isinstance(targets, Mapping):
        items = list(targets.items())
    elif hasattr(targets, "columns") and hasattr(targets, "__getitem__"):  # a DataFrame
        items = [(c, targets[c].to_numpy()) for c in targets.columns]
    else:
        arr = np.asarray(targets)
        if arr.ndim == 1:
            items = [("y", arr)]
        elif arr.ndim == 2:
            items = [(str(j), arr[:, j]) for j in range(arr.shape[1])]
        else:
            raise ParameterError(
                f"targets must be a mapping name -> (n,) array, a DataFrame or an (n,) / (n, k) "
                f"array, got an array of shape {arr.shape}."
            )
    if not items:
        raise ParameterError("targets is empty: pass at least one target.")
    out = []
    for name, values in items:
        if not isinstance(name, str):
            name = str(name)
        arr = np.asarray(values)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ParameterError(
                f"target {name!r} must be 1-D (one value per row), got shape {arr.shape}."
            )
        out.append((name, arr))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ParameterError(f"target names must be unique, got {names}.")
    return out


def _task_of(name: str, values: np.ndarray, task: Any) -> str:
    chosen = task.get(name, "auto") if isinstance(task, Mapping) else task
    if chosen not in _TASKS:
        raise ParameterError(f"task for target {name!r} must be one of {_TASKS}, got {chosen!r}.")
    if chosen != "auto":
        return chosen
    if values.dtype.kind in "biuOUS":
        return "classification"
    if values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        return "classification" if np.unique(finite).size == 2 else "regression"
    raise ParameterError(f"target {name!r} has dtype {values.dtype}; pass labels or numbers.")


def _prepare_target(name: str, task: str, train: np.ndarray, test: Optional[np.ndarray]) -> Target:
    t = Target(name, task, train, test)
    est = LinearProbeClassifier() if task == "classification" else LinearProbe()
    try:
        codes, _, state = est._prepare_targets(train, train.shape[0], first=True)
    except NonFiniteError as exc:
        raise NonFiniteError(f"target {name!r}: {exc}") from None
    except ValueError as exc:
        raise type(exc)(f"target {name!r}: {exc}") from None
    if (
        task == "regression"
        and test is not None
        and not np.isfinite(np.asarray(test, dtype=np.float64)).all()
    ):
        raise NonFiniteError(f"target {name!r}: the test values contain NaN or infinity.")
    t.codes, t.state = np.asarray(codes, dtype=np.float64), state
    return t


def read_targets(targets: Any, cache: ActivationCache) -> list[tuple[str, np.ndarray]]:
    """The (name, values) of `targets`, each checked to hold one value per row of `cache`."""
    names = cache.names
    n = cache.n_rows
    items = _target_items(targets)
    for tname, values in items:
        if values.shape[0] != n:
            first = cache[names[0]]
            raise CacheError(
                f"target {tname!r} has {values.shape[0]} rows but the cache's layers have {n} "
                f"(layer {first.name!r}, {first.where}); targets need one value per row."
            )
    return items


def open_test_set(
    test: Any, items: list[tuple[str, np.ndarray]], cache: ActivationCache
) -> tuple[ActivationCache, dict]:
    """The separate test set ``test=(test_cache, test_targets)``: its cache, opened with the
    layers of `cache` and checked to have their widths, and its targets by name, one value per
    test row for every target of `items`."""
    names = cache.names
    if not (isinstance(test, (tuple, list)) and len(test) == 2):
        raise ParameterError("sweep: test must be a pair (test_cache, test_targets).")
    test_cache = open_cache(test[0], layers=names)
    test_items = dict(_target_items(test[1]))
    missing = [t for t, _ in items if t not in test_items]
    if missing:
        raise ParameterError(f"sweep: test targets lack {missing}.")
    for lname in names:
        if test_cache[lname].n_features != cache[lname].n_features:
            raise CacheError(
                f"layer {lname!r}: the test cache ({test_cache[lname].where}) has width "
                f"{test_cache[lname].n_features} but the training cache "
                f"({cache[lname].where}) has {cache[lname].n_features}."
            )
    for tname, values in test_items.items():
        if np.asarray(values).shape[0] != test_cache.n_rows:
            raise CacheError(
                f"test target {tname!r} has {np.asarray(values).shape[0]} rows but the test "
                f"cache has {test_cache.n_rows} ({test_cache.description})."
            )
    return test_cache, test_items


def prepare_targets(
    items: list[tuple[str, np.ndarray]],
    test_items: Optional[dict],
    task: Any,
    n_train: int,
    n_test: int,
) -> list[Target]:
    """The targets as the sweep fits them, in order: the task of each, its first `n_train`
    values encoded as code columns, its test values (the rows after `n_train`, or those of
    `test_items`), and the columns of the shared Y that its codes take."""
    tlist: list[Target] = []
    col = 0
    for tname, values in items:
        kind = _task_of(tname, values, task)
        if test_items is not None:
            test_values = np.asarray(test_items[tname]).reshape(-1)
        else:
            test_values = values[n_train:] if n_test else None
        t = _prepare_target(tname, kind, values[:n_train], test_values)
        t.cols = list(range(col, col + t.codes.shape[1]))
        col += t.codes.shape[1]
        tlist.append(t)
    return tlist

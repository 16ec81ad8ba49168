"""What a fitted ridge probe gives back: decision values on validated rows (numpy, or torch
next to a tensor input), the device placement of the predict-time arrays (`to`), the fitted
attributes (coef_, intercept_, alpha_, alphas_, cv_results_, best_score_, geometry_, stats_),
and the regressors' predict / score.

Apart from `probes.base` (parameters, fit / partial_fit and the lazy solve) because it only
reads the solution: `RidgeOutputs` is mixed into `RidgeProbeBase`, which provides `_solution()`
and the fit state; the degree-2 probes override the coefficients (`probes.polynomial`) and the
decision values.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar, Union

import numpy as np

from .._base import NotFittedError
from .._validation import check_targets, check_X, is_torch_tensor
from ..backends import copy_of, to_numpy
from ..solve.geometry import Geometry
from ..solve.ridge import RidgeSolution, linear_decision
from ..solve.scoring import mean_r2
from ..solve.stats import SufficientStats

_Probe = TypeVar("_Probe", bound="RidgeOutputs")


# ---------------------------------------------------------------------------------- outputs
class RidgeOutputs:
    """Prediction and fitted attributes of the ridge probes (mixed into `RidgeProbeBase`)."""

    # provided by the probe (declared only, so nothing here shadows it)
    _solution: Callable[[], RidgeSolution]
    _scoring: Callable[[], str]
    _cv_name: Callable[[], str]
    _target_state: dict
    alpha_per_target: bool
    n_features_in_: int

    # ------------------------------------------------------------------ prediction
    def _decision(self, X: Any) -> np.ndarray:
        sol = self._solution()
        Xa, params = self._predict_inputs(X, sol)
        return linear_decision(Xa, params["coef"], params["intercept"])

    def _predict_inputs(self, X: Any, sol: RidgeSolution) -> tuple[Any, dict]:
        """Validated rows and the predict-time arrays next to them: a torch tensor stays on
        its device (the arrays are copied there once, cached), anything else is numpy."""
        if is_torch_tensor(X):
            Xa = check_X(X, n_features=self.n_features_in_, owner=type(self).__name__,
                         keep_tensor=True)  # fmt: skip
            return Xa, sol.placed(Xa.device)
        Xa = check_X(X, n_features=self.n_features_in_, owner=type(self).__name__)
        return Xa, sol.placed(None)

    def to(self: _Probe, device: Any) -> _Probe:
        """Move the fitted arrays used at predict time to a torch device ("cpu", "cuda:0",
        torch.device), or to numpy with device=None / "numpy"; returns self.

        Predictions work on numpy and torch inputs wherever the arrays live (they are copied
        next to the input once and cached); `to` only chooses their home, e.g. so that
        predicting on CUDA tensors moves nothing. Fitted attributes (coef_, ...) follow.
        """
        sol = self._solution()
        if device is None or (isinstance(device, str) and device == "numpy"):
            sol.to(None)
            return self
        from ..backends import torch_backend

        torch_backend()
        import torch

        sol.to(torch.device(device))
        return self

    # ------------------------------------------------------------------ fitted attributes
    @property
    def coef_(self) -> np.ndarray:
        """Coefficients in input coordinates: (n_features,) for 1-D y, else (n_targets, d)."""
        coef = self._solution().coef
        return copy_of(coef[:, 0]) if self._single_output() else copy_of(coef.T)

    @property
    def intercept_(self) -> Union[float, np.ndarray]:
        intercept = self._solution().intercept
        return float(intercept[0]) if self._single_output() else copy_of(intercept)

    @property
    def alpha_(self) -> Union[float, np.ndarray]:
        """Selected alpha: a float, or one per target with alpha_per_target=True."""
        sol = self._solution()
        chosen = sol.alphas[sol.alpha_index]
        if self.alpha_per_target and not self._single_output():
            return chosen
        return float(chosen[0])

    @property
    def alphas_(self) -> np.ndarray:
        """The alpha grid that was searched (the default grid is relative to the data scale)."""
        return self._solution().alphas.copy()

    @property
    def cv_results_(self) -> dict:
        """CV results: 'alphas' (A,), 'scores' (A, n_targets) per-target score (higher is
        better: negative mean squared error, accuracy or AUROC), 'mean_scores' (A,) the
        criterion used for a shared alpha, 'scoring' and 'cv'."""
        sol = self._solution()
        return {
            "alphas": sol.alphas.copy(),
            "scores": sol.scores.copy(),
            "mean_scores": sol.joint_scores.copy(),
            "scoring": self._scoring(),
            "cv": self._cv_name(),
        }

    @property
    def best_score_(self) -> Union[float, np.ndarray]:
        sol = self._solution()
        if self.alpha_per_target:
            return sol.scores[sol.alpha_index, np.arange(sol.scores.shape[1])]
        return float(sol.joint_scores[sol.alpha_index[0]])

    @property
    def geometry_(self) -> Geometry:
        """The fitted metric: `geometry_.as_matrix(d)` is A (features are A (x - mu))."""
        return self._solution().geometry

    @property
    def stats_(self) -> SufficientStats:
        """The sufficient statistics the probe was solved from (primal route)."""
        stats = getattr(self, "_stats", None)
        if stats is None:
            sol = getattr(self, "_solution_cache", None)
            if sol is not None:
                raise AttributeError(
                    f"this {type(self).__name__} was solved from its rows by the "
                    f"{sol.route} route, which keeps no statistics (solver_ == "
                    f"{sol.route!r}); fit with solver='primal' to keep them."
                )
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet.")
        return stats

    def _single_output(self) -> bool:
        return bool(self._target_state.get("y_1d", False))

    def __sklearn_is_fitted__(self) -> bool:
        return (
            getattr(self, "_stats", None) is not None
            or getattr(self, "_solution_cache", None) is not None
        )


# ---------------------------------------------------------------------------------- regression
class ProbeRegressorMixin:
    """predict / score of the ridge probe regressors (linear and degree-2)."""

    # provided by the probe (declared only: this mixin comes first in the probes' bases)
    _decision: Callable[[Any], Any]
    _single_output: Callable[[], bool]

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets: (n,) for 1-D training y, else (n, n_targets)."""
        out = self._decision(X)
        return out[:, 0] if self._single_output() else out

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Coefficient of determination R^2 (averaged uniformly over targets)."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by score yet.")
        P = to_numpy(self._decision(X))
        Y, _ = check_targets(y, P.shape[0])
        return mean_r2(Y, P)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]  # the estimator's tags
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

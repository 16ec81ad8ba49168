"""What the ridge probe classifiers (linear and degree-2) share: labels to +-1 codes (one-vs-rest),
decision values, predictions, calibrated probabilities, accuracy. Mixed into the probes of
`probes.linear` and `probes.quadratic` in front of `probes.base.RidgeProbeBase`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._base import (
    DataConversionWarning,
    NotFittedError,
    streaming_method,
)
from .._validation import is_torch_tensor
from ..backends import to_numpy
from ..solve.calibration import logistic


class ProbeClassifierMixin:
    """Everything the ridge probe classifiers (linear and degree-2) share: labels to +-1
    codes, decision values, predictions, probabilities."""

    _is_classifier = True

    def _scoring(self) -> str:
        return self.scoring

    def _prepare_targets(
        self, y: Any, n: int, *, first: bool, classes: Any = None, keep_tensor: bool = False
    ):
        # Labels are checked on the host (n label values); the +-1 codes are numpy and the
        # torch backend moves them to its device with the row blocks.
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        if is_torch_tensor(y):
            y = y.detach().cpu().numpy()
        arr = np.asarray(y)
        if arr.ndim == 2 and arr.shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change the "
                "shape of y to (n_samples,), for example using ravel().",
                DataConversionWarning,
                stacklevel=3,
            )
            arr = arr.ravel()
        if arr.ndim != 1:
            raise ValueError(
                f"y must be a 1-D array of class labels, got shape {arr.shape}. (For several "
                "regression targets use LinearProbe.)"
            )
        if arr.shape[0] != n:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: X has {n} rows "
                f"but y has {arr.shape[0]}."
            )
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all():
                raise ValueError("Input y contains NaN or infinity.")
            if np.any(arr != np.round(arr)):
                raise ValueError(
                    "Unknown label type: continuous. LinearProbeClassifier needs class labels "
                    "(integers or strings); for real-valued targets use LinearProbe."
                )
        if arr.dtype.kind == "O":
            try:
                arr = arr.astype(str) if all(isinstance(v, str) for v in arr) else arr
            except TypeError:
                pass
        if first:
            if classes is not None:
                cls = np.unique(np.asarray(classes))
            else:
                cls = np.unique(arr)
            if cls.size < 2:
                raise ValueError(
                    f"Classifier needs samples of at least 2 classes in the data, but the data "
                    f"contains only one class: {cls[0]!r}."
                    if cls.size == 1
                    else "Classifier needs at least 2 classes; got none."
                )
        else:
            cls = self.classes_
        idx = np.searchsorted(cls, arr)
        idx_clipped = np.clip(idx, 0, cls.size - 1)
        unknown = cls[idx_clipped] != arr
        if unknown.any():
            raise ValueError(
                f"y contains labels {np.unique(arr[unknown])[:5]!r} not in classes {cls!r}; "
                "pass all classes to the first partial_fit call via classes=."
            )
        if cls.size == 2:
            Y = np.where(idx_clipped == 1, 1.0, -1.0)[:, None]
        else:
            Y = -np.ones((n, cls.size))
            Y[np.arange(n), idx_clipped] = 1.0
        return Y, idx_clipped, {"classes": cls}

    def fit(self, X: Any, y: Any, fold_ids: Any = None) -> ProbeClassifierMixin:
        super().fit(X, y, fold_ids=fold_ids)
        return self

    @streaming_method
    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> ProbeClassifierMixin:
        """Add a chunk of labelled rows. The first call must name all classes (``classes=``)
        unless this chunk already contains every class."""
        super().partial_fit(X, y, classes=classes)
        return self

    @property
    def classes_(self) -> np.ndarray:
        state = getattr(self, "_target_state", None)
        if state is None:
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet.")
        return state["classes"]

    def _single_output(self) -> bool:
        return False

    @property
    def alpha_(self):
        sol = self._solution()
        chosen = sol.alphas[sol.alpha_index]
        if self.alpha_per_target and chosen.size > 1:
            return chosen
        return float(chosen[0])

    def decision_function(self, X: Any) -> np.ndarray:
        """Decision values: (n,) for binary problems (positive means classes_[1]), else
        (n, n_classes)."""
        out = self._decision(X)
        return out[:, 0] if out.shape[1] == 1 else out

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels. For a torch tensor X: a tensor on X's device when the
        classes are numbers, else (strings, objects) a numpy array of labels."""
        dec = self._decision(X)
        cls = self.classes_
        if is_torch_tensor(dec):
            idx = (dec[:, 0] > 0).long() if dec.shape[1] == 1 else dec.argmax(dim=1)
            if cls.dtype.kind in "biuf":
                import torch

                return torch.as_tensor(cls, device=dec.device)[idx]
            return cls[to_numpy(idx)]
        if dec.shape[1] == 1:
            return cls[(dec[:, 0] > 0).astype(np.intp)]
        return cls[np.argmax(dec, axis=1)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n, n_classes) from the documented logistic calibration
        (a float64 tensor on X's device for a torch tensor X)."""
        dec = self._decision(X)
        slope = self._solution().calibration
        if is_torch_tensor(dec):
            import torch

            if dec.shape[1] == 1:
                p = torch.sigmoid(slope * dec)
                return torch.cat([1.0 - p, p], dim=1)
            return torch.softmax(slope * dec, dim=1)
        if dec.shape[1] == 1:
            p = logistic(slope * dec)
            return np.hstack([1.0 - p, p])
        z = slope * dec
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        if is_torch_tensor(proba):
            return proba.log()
        with np.errstate(divide="ignore"):
            return np.log(proba)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by score yet.")
        pred = to_numpy(self.predict(X))
        return float(np.mean(pred == np.asarray(to_numpy(y)).ravel()))

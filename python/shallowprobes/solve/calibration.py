"""Probability calibration of ridge classifiers from sufficient statistics alone (the logistic
slope of a shared-variance Gaussian model of the decision values).
"""

from __future__ import annotations

import numpy as np

from ..solve.stats import SufficientStats


# ---------------------------------------------------------------------------------- classification
def gaussian_calibration(stats: SufficientStats, coef: np.ndarray, intercept: np.ndarray) -> float:
    """Slope `a` of the logistic map decision -> probability, from statistics alone.

    Model: within each class the decision value f of a one-vs-rest column is Gaussian with a
    shared variance (the LDA view of a ridge probe on +-1 codes); the log-odds are then linear
    in f with slope a_j = (m+ - m-)/s^2 (class means m+-, pooled within-class variance s^2 of f).
    These moments are linear or quadratic in the rows, so they come from the sufficient
    statistics and stream with partial_fit. One slope is shared by all columns (the mean of the
    a_j) and no offset is used, so that probabilities rank classes exactly as the decision
    values do and `argmax(predict_proba) == predict`.
    """
    raw = stats.normal_equations(fit_intercept=False)
    n = raw.n
    sum_x = stats.shift_x * n + stats.sum_x.sum(axis=0)
    sum_y = stats.shift_y * n + stats.sum_y.sum(axis=0)
    slopes = []
    for t in range(coef.shape[1]):
        # Python floats from here on (torch statistics: one scalar each from the device)
        w, c, sy = coef[:, t], float(intercept[t]), float(sum_y[t])
        n_pos = 0.5 * (n + sy)
        n_neg = n - n_pos
        if n_pos < 0.5 or n_neg < 0.5:
            continue
        w_sx = float(w @ sum_x)
        sum_f = w_sx + n * c
        # sum over positives of x = (sum x + sum x*y) / 2 for codes y in {-1, +1}
        sum_f_pos = 0.5 * (float(w @ (sum_x + raw.cxy[:, t])) + c * (n + sy))
        sum_f_neg = sum_f - sum_f_pos
        sum_f2 = float(w @ raw.gram @ w) + 2.0 * c * w_sx + n * c * c
        m_pos, m_neg = sum_f_pos / n_pos, sum_f_neg / n_neg
        within = sum_f2 - n_pos * m_pos**2 - n_neg * m_neg**2
        total = max(sum_f2 - sum_f**2 / n, 0.0)
        s2 = max(within / max(n - 2.0, 1.0), 1e-12 * total / n, 1e-300)
        slopes.append((m_pos - m_neg) / s2)
    slope = float(np.mean(slopes)) if slopes else 1.0
    if not np.isfinite(slope) or slope <= 0:
        slope = 1.0  # a probe that does not separate: fall back to the raw decision scale
    return min(slope, 1e12)


def logistic(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out

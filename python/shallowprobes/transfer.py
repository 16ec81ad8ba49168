"""Label-free monitor transfer from model A to model B through A's probe-visible quotient.

Given a bank of monitors fitted on model A and the hidden states of both models on the same
unlabeled inputs (paired rows H_A, H_B), :class:`QuotientAligner` fits an affine ridge map from
B's hidden states to A's quotient coordinates z_A = C^T (h_A - m) (r numbers, see
:class:`~shallowprobes.quotient.Quotient`), with alpha chosen by the core's exact CV, and
composes it with every monitor. A monitor on z composed with an affine map of h_B is again a
polynomial of degree <= 2 in h_B, so the transferred monitors are stored as such and read B's
hidden states directly. No labels on B are used.

A point of honesty, tested in the suite: a ridge map decouples across output columns, so with
the same alpha, "map h_B -> h_A, then project onto the quotient" gives exactly the same
transferred monitors as "map h_B -> z_A". What the quotient adds is

1. the right diagnostic: held-out R^2 on z_A predicts whether monitors survive, while the
   full-state R^2 need not (directions no monitor reads may be unalignable);
2. the right target for alpha selection (CV on the r visible coordinates, not on d_A - r
   coordinates that no monitor reads);
3. r outputs instead of d_A;
4. a subspace that contains the monitors' directions, unlike e.g. A's top-r PCA subspace.

The baselines are available under the same API (``target="full"`` and ``target="pca"``), and
:func:`few_label_probe` trains a probe on B with a few labels for comparison.

Every transfer produces a :class:`CoverageReport`: per monitor, the label-free coverage of its
covector by the bank's visible span (1 for monitors of the bank), the held-out fidelity of the
transferred score against the source score on pairs not used to fit the map (R^2 and Spearman
rank correlation), and a verdict. A monitor is *portable* when coverage >= `min_coverage`
(default 0.9) and fidelity R^2 >= `min_fidelity` (default 0.9).
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Union

import numpy as np

from ._backends import float64_row_blocks, is_torch_tensor, to_numpy
from ._base import BaseEstimator, NotFittedError
from ._validation import check_X
from .bank import PolynomialMonitor, ProbeBank, _evaluate
from .io import json_number
from .linear import LinearProbe, _average_ranks, _roc_auc
from .quotient import Quotient, project_rows, reference_moments

__all__ = [
    "QuotientAligner",
    "transfer",
    "CoverageReport",
    "MonitorCoverage",
    "few_label_probe",
    "compare_transfer",
    "TransferComparison",
    "TARGETS",
]

TARGETS = ("quotient", "full", "pca")
_UNPORTABLE = ("drop", "mark", "raise")


# ---------------------------------------------------------------------------------- scores
def r2_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """Pooled R^2 = 1 - sum (pred - truth)^2 / sum (truth - mean truth)^2 over all columns
    (scikit-learn's "variance_weighted" average for several columns)."""
    truth = np.asarray(truth, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    sst = float(np.sum((truth - truth.mean(axis=0)) ** 2))
    sse = float(np.sum((pred - truth) ** 2))
    if sst <= 0.0:
        return 1.0 if sse <= 1e-24 * max(truth.size, 1) else 0.0
    return 1.0 - sse / sst


def whitened_r2(truth: np.ndarray, pred: np.ndarray, covariance: np.ndarray) -> float:
    """R^2 averaged over whitened coordinates: 1 - tr(S^+ E) / rank(S), with S the covariance
    of the true coordinates (from the training pairs) and E the mean squared-error matrix of
    the predictions. It does not depend on the basis the coordinates are written in (any
    invertible linear change of basis of truth and prediction leaves it unchanged), so it means
    the same for z_A, whichever basis C the quotient picked, and for h_A in any coordinates."""
    if is_torch_tensor(pred) or is_torch_tensor(truth):  # reduce on the device
        err = pred.double() - truth.double()
        E = np.asarray(to_numpy(err.T @ err)) / err.shape[0]
    else:
        err = np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
        E = err.T @ err / err.shape[0]
    lam, V = np.linalg.eigh(0.5 * (covariance + covariance.T))
    keep = lam > 1e-10 * max(float(lam.max()), 1e-300)
    if not np.any(keep):
        return float("nan")
    Vk = V[:, keep]
    return 1.0 - float(np.sum((Vk.T @ E @ Vk).diagonal() / lam[keep])) / int(keep.sum())


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    ra, rb = _average_ranks(np.asarray(a, float)), _average_ranks(np.asarray(b, float))
    ra -= ra.mean()
    rb -= rb.mean()
    denom = float(np.sqrt(np.sum(ra * ra) * np.sum(rb * rb)))
    return float(np.sum(ra * rb) / denom) if denom > 0 else float("nan")


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC of scores for binary labels (positive = the larger label)."""
    labels = np.asarray(labels).ravel()
    classes = np.unique(labels)
    if classes.size != 2:
        return float("nan")
    return _roc_auc(np.asarray(scores, float).ravel(), labels == classes[1])


# ---------------------------------------------------------------------------------- report
@dataclass
class MonitorCoverage:
    """One row of a CoverageReport."""

    name: str
    kind: str
    in_bank: bool
    coverage: float
    fidelity_r2: float
    rank_correlation: float
    portable: bool
    reason: str = ""


@dataclass
class CoverageReport:
    """Label-free portability of monitors moved from model A to model B.

    rows : one MonitorCoverage per monitor (coverage, held-out fidelity, verdict).
    target : "quotient", "full" or "pca": what B's hidden states were aligned to.
    rank : r, the dimension of A's visible quotient.
    quotient_r2 : held-out R^2 of B -> z_A (the diagnostic that predicts transfer), averaged
        over whitened coordinates so that it does not depend on the basis of z (see
        `whitened_r2`).
    full_state_r2 : the same for B -> h_A (None if not computed); it can be low even when
        every monitor transfers, because directions no monitor reads need not be alignable.
    alpha : the ridge penalty of the map that produced the monitors (chosen by CV).
    """

    rows: list
    target: str
    rank: int
    quotient_r2: float
    full_state_r2: Optional[float]
    alpha: float
    n_train: int
    n_heldout: int
    min_coverage: float
    min_fidelity: float
    metric: str = "euclidean"
    notes: list = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rows]

    @property
    def portable(self) -> list[str]:
        """Names of the monitors judged portable."""
        return [r.name for r in self.rows if r.portable]

    @property
    def not_portable(self) -> list[str]:
        return [r.name for r in self.rows if not r.portable]

    def __getitem__(self, name: str) -> MonitorCoverage:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no monitor named {name!r} in the report; it has {self.names}.")

    def to_dict(self) -> dict:
        """JSON-serialisable form (NaN becomes None)."""
        out = asdict(self)
        out["rows"] = [
            {k: (json_number(v) if isinstance(v, float) else v) for k, v in asdict(r).items()}
            for r in self.rows
        ]
        for key in ("quotient_r2", "full_state_r2", "alpha", "min_coverage", "min_fidelity"):
            out[key] = json_number(out[key])
        return out

    @classmethod
    def from_dict(cls, data: dict) -> CoverageReport:
        data = dict(data)
        nan = float("nan")
        rows = [
            MonitorCoverage(
                **{k: (nan if v is None and k != "reason" else v) for k, v in r.items()}
            )  # fmt: skip
            for r in data.pop("rows")
        ]
        for key in ("quotient_r2", "alpha", "min_coverage", "min_fidelity"):
            if data.get(key) is None:
                data[key] = nan
        return cls(rows=rows, **data)

    def to_frame(self):
        """The per-monitor rows as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows]).set_index("name")

    def __str__(self) -> str:
        full = "n/a" if self.full_state_r2 is None else f"{self.full_state_r2:.3f}"
        lines = [
            f"Coverage report: B aligned to A's {self.target} "
            f"(quotient rank r = {self.rank}, metric = {self.metric}, alpha = {self.alpha:.3g})",
            f"  held-out pairs: {self.n_heldout} (map fitted on {self.n_train})",
            f"  held-out R^2 (whitened)   quotient z_A: {self.quotient_r2:.3f}   "
            f"full state h_A: {full}",
            f"  portable = coverage >= {self.min_coverage:g} and fidelity R^2 >= "
            f"{self.min_fidelity:g}",
            "",
        ]
        width = max([len("monitor")] + [len(r.name) for r in self.rows])
        head = f"  {'monitor':<{width}}  {'kind':<9} {'in bank':<7} {'coverage':>8} " \
               f"{'fidelity R2':>11} {'rank corr':>9}  verdict"  # fmt: skip
        lines += [head, "  " + "-" * (len(head) - 2)]
        for r in self.rows:
            verdict = "portable" if r.portable else f"NOT portable ({r.reason})"
            lines.append(
                f"  {r.name:<{width}}  {r.kind:<9} {'yes' if r.in_bank else 'no':<7} "
                f"{r.coverage:>8.3f} {r.fidelity_r2:>11.3f} {r.rank_correlation:>9.3f}  {verdict}"
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__


# ---------------------------------------------------------------------------------- aligner
def _check_fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}.")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}.")
    return float(value)


def _split(n: int, holdout: Any, random_state: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(holdout, bool) or not isinstance(holdout, numbers.Real):
        raise TypeError(f"holdout must be a fraction in (0, 1) or a row count, got {holdout!r}.")
    if isinstance(holdout, numbers.Integral):
        n_hold = int(holdout)
    else:
        if not 0.0 < float(holdout) < 1.0:
            raise ValueError(f"holdout as a fraction must be in (0, 1), got {holdout!r}.")
        n_hold = int(round(float(holdout) * n))
    if n_hold < 2 or n - n_hold < 3:
        raise ValueError(
            f"with {n} paired rows, holdout={holdout!r} leaves {n_hold} held-out and "
            f"{n - n_hold} training pairs; need at least 2 held-out pairs (to measure fidelity) "
            "and 3 training pairs. Pass more pairs or change holdout."
        )
    perm = np.random.default_rng(random_state).permutation(n)
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def _column_moments(X: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and variance (/n) of X in one blocked pass, about the first row (so
    large offsets do not cancel), as numpy."""
    s1 = s2 = shift = None
    for _, block in float64_row_blocks(X):
        if shift is None:
            shift = block[0].clone() if is_torch_tensor(block) else block[0].copy()
            s1, s2 = 0.0 * shift, 0.0 * shift
        u = block - shift
        s1 = s1 + u.sum(0)
        s2 = s2 + (u * u).sum(0)
    n = X.shape[0]
    shift, s1, s2 = (np.asarray(to_numpy(a), dtype=np.float64) for a in (shift, s1, s2))
    return shift + s1 / n, np.maximum(s2 / n - (s1 / n) ** 2, 0.0)


def _take(X: Any, idx: np.ndarray) -> Any:
    """Rows idx of X (numpy or a tensor; a tensor's rows are gathered on its device)."""
    if is_torch_tensor(X):
        import torch

        return X[torch.as_tensor(idx, device=X.device)]
    return np.asarray(X[idx])


def _alpha_grid(H: Any, metric: str, readout: Any, moments: Any = None) -> np.ndarray:
    """logspace(-10, 3, 27) times the mean eigenvalue of the (metric-transformed) centred Gram.

    Wider at the bottom than the probes' default grid: maps between (nearly) equivalent models
    are nearly noiseless, and CV must be able to pick an almost unpenalised map. `moments`:
    H's column (mean, variance) when already known."""
    n, d = H.shape
    mean, var = _column_moments(H) if moments is None else moments
    if metric == "euclidean":
        trace = float(var.sum())
    elif metric == "standardize":
        trace = float(np.count_nonzero(var > 1e-12 * max(float(var.max()), 1e-300)))
    elif metric == "whiten":
        trace = float(d)
    else:  # tr(W S W^T) = ||(H - mu) W^T||^2 / n
        W = np.asarray(to_numpy(readout), dtype=np.float64)
        trace = 0.0
        for _, block in float64_row_blocks(H):
            if is_torch_tensor(block):
                Wt = block.new_tensor(W)
                trace += float((((block - block.new_tensor(mean)) @ Wt.T) ** 2).sum())
            else:
                trace += float(np.sum(((block - mean) @ W.T) ** 2))
        trace /= n
    scale = n * trace / max(d, 1)
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return np.logspace(-10, 3, 27) * scale


class QuotientAligner(BaseEstimator):
    """Move a bank of monitors from model A to model B without labels.

    Follows scikit-learn's parameter conventions (get_params / set_params / clone), but
    `fit` takes the bank and both models' paired hidden states: fit(bank, H_A, H_B).

    Parameters
    ----------
    target : what B's hidden states are mapped to.
        "quotient" (default): A's visible quotient coordinates z_A (r outputs).
        "full": all of h_A (the full-state baseline; d_A outputs).
        "pca": A's top-`pca_rank` principal coordinates (the PCA-subspace baseline).
    alphas : ridge penalties searched for the map (default: a grid relative to B's scale,
        1e-10 .. 1e3 times the mean eigenvalue). One alpha is shared by all outputs.
    cv : "gcv" (default), "loo" or K: how alpha is chosen (see LinearProbe).
    alpha_per_target : choose alpha per output coordinate instead of one for the whole map
        (default False). The full-state baseline is strongest with True, because one shared
        alpha is then dominated by the d_A - r coordinates no monitor reads.
    metric, readout : geometry of B's side for the ridge penalty (see LinearProbe):
        "euclidean", "standardize", "whiten" or "readout" (with readout=W_B).
    rtol, rank : the quotient's cut-off (see Quotient).
    pca_rank : dimension of the PCA baseline (default: the quotient's rank).
    holdout : fraction (or number) of the pairs kept out of the map to measure fidelity.
    random_state : seed of the holdout split.
    min_coverage, min_fidelity : portability thresholds (see CoverageReport).
    unportable : what happens to monitors judged not portable: "drop" (default: left out of
        `bank_`, with a warning), "mark" (kept, with ``info["portable"] = False``) or "raise".
    full_state_diagnostic : also fit B -> h_A to report the full-state R^2 (default True).
    backend : backend of the ridge solves.

    Attributes (after `fit`)
    ------------------------
    quotient_ : the Quotient of the source bank.
    map_ : the fitted LinearProbe from h_B to the target coordinates.
    bank_ : ProbeBank of the transferred monitors, reading h_B; ``bank_.report`` is report_.
    report_ : the CoverageReport.
    train_index_, heldout_index_ : the split of the pairs.
    zmap_, full_map_ : the fitted maps h_B -> z_A and h_B -> h_A (the latter None when
        full_state_diagnostic=False and target != "full"); map_ is the one the monitors use.
    pca_basis_ : (d_A, r) A's top principal directions for target="pca", else None.
    heldout_scores_ : (source, transferred) scores (n_heldout, m) on the held-out pairs, in
        report order (bank monitors, then extra monitors).
    """

    def __init__(
        self,
        target: str = "quotient",
        *,
        alphas: Any = None,
        cv: Union[str, int] = "gcv",
        alpha_per_target: bool = False,
        metric: str = "euclidean",
        readout: Any = None,
        rtol: float = 1e-6,
        rank: Optional[int] = None,
        pca_rank: Optional[int] = None,
        holdout: Union[float, int] = 0.2,
        random_state: Any = 0,
        min_coverage: float = 0.9,
        min_fidelity: float = 0.9,
        unportable: str = "drop",
        full_state_diagnostic: bool = True,
        backend: str = "auto",
    ) -> None:
        self.target = target
        self.alphas = alphas
        self.cv = cv
        self.alpha_per_target = alpha_per_target
        self.metric = metric
        self.readout = readout
        self.rtol = rtol
        self.rank = rank
        self.pca_rank = pca_rank
        self.holdout = holdout
        self.random_state = random_state
        self.min_coverage = min_coverage
        self.min_fidelity = min_fidelity
        self.unportable = unportable
        self.full_state_diagnostic = full_state_diagnostic
        self.backend = backend

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}.")
        if self.unportable not in _UNPORTABLE:
            raise ValueError(f"unportable must be one of {_UNPORTABLE}, got {self.unportable!r}.")
        _check_fraction(self.min_coverage, "min_coverage")
        _check_fraction(self.min_fidelity, "min_fidelity")
        if self.pca_rank is not None and (
            isinstance(self.pca_rank, bool) or not isinstance(self.pca_rank, numbers.Integral)
            or self.pca_rank < 1
        ):  # fmt: skip
            raise ValueError(f"pca_rank must be a positive int or None, got {self.pca_rank!r}.")

    def _map(self, H: Any, Y: Any, alphas: Any) -> LinearProbe:
        probe = LinearProbe(
            alphas=alphas, cv=self.cv, alpha_per_target=bool(self.alpha_per_target),
            metric=self.metric,
            readout=self.readout, backend=self.backend,
        )  # fmt: skip
        return probe.fit(H, Y)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        bank: ProbeBank,
        H_A: Any,
        H_B: Any,
        *,
        extra_monitors: Optional[ProbeBank] = None,
    ) -> QuotientAligner:
        """Fit the map on paired hidden states and transfer the bank's monitors.

        bank : ProbeBank on model A (defines the quotient and the monitors to move).
        H_A, H_B : (n, d_A) and (n, d_B) hidden states of A and B on the same n inputs.
        extra_monitors : optional ProbeBank of other monitors on A, *not* used to build the
            quotient: each is moved through its best z-only approximation and gets a coverage
            that says how much of it the bank's quotient can carry.
        """
        self._check_params()
        if not isinstance(bank, ProbeBank) or len(bank) == 0:
            raise TypeError("bank must be a non-empty ProbeBank of monitors on model A.")
        d_A = bank.n_features_in_
        XA = check_X(H_A, name="H_A", n_features=d_A, min_samples=5, owner="the bank",
                     keep_tensor=is_torch_tensor(H_A))  # fmt: skip
        XB = check_X(H_B, name="H_B", min_samples=5, owner="the aligner",
                     keep_tensor=is_torch_tensor(H_B))  # fmt: skip
        XA, XB = _same_place(XA, XB)
        if XA.shape[0] != XB.shape[0]:
            raise ValueError(
                f"H_A has {XA.shape[0]} rows and H_B {XB.shape[0]}; they must be the hidden "
                "states of the two models on the same inputs, row by row."
            )
        if extra_monitors is not None:
            if not isinstance(extra_monitors, ProbeBank):
                raise TypeError("extra_monitors must be a ProbeBank (or None).")
            if len(extra_monitors) and extra_monitors.n_features_in_ != d_A:
                raise ValueError("extra_monitors must read model A's hidden states (width d_A).")
            clash = set(extra_monitors) & set(bank)
            if clash:
                raise ValueError(f"extra_monitors repeats names of the bank: {sorted(clash)}.")
        if self.metric == "readout" and self.readout is None:
            raise ValueError('metric="readout" needs readout=W_B, model B\'s readout matrix.')
        train, hold = _split(XA.shape[0], self.holdout, self.random_state)
        A_tr, A_ho = _take(XA, train), _take(XA, hold)
        B_tr, B_ho = _take(XB, train), _take(XB, hold)
        B_moments = _column_moments(B_tr)
        mu_B = B_moments[0]
        # one alpha grid for every map of this fit
        alphas = self.alphas
        if alphas is None:
            alphas = _alpha_grid(B_tr, self.metric, self.readout, B_moments)
        # CUDA tensors: the statistics, solves and scores stay on their device; only d x d
        # moments, coefficients and n_heldout x m score tables come to the host
        device = XA.device if is_torch_tensor(XA) and XA.device.type != "cpu" else None

        moments = reference_moments(A_tr, d_A, self.backend)
        quotient = Quotient(self.rtol, rank=self.rank, centre=moments[0], device=device)
        quotient.fit(bank)
        extra = extra_monitors if extra_monitors is not None else ProbeBank()
        geometry = quotient._geometry(moments)  # A's training pairs: shared by every monitor
        z_monitors = {name: m for name, m in quotient.monitors_.items()}
        for name, m in extra.items():
            z_monitors[name] = quotient.project(m, _geometry=geometry)
        # label-free coverage, in the geometry of A's training pairs (1 for the bank's own)
        coverage = {name: quotient._coverage_one(m, geometry)
                    for name, m in [*bank.items(), *extra.items()]}  # fmt: skip

        # the quotient map: used for the monitors (target="quotient") and the diagnostic
        Z_tr, Z_ho = quotient.transform(A_tr), quotient.transform(A_ho)
        zmap = self._map(B_tr, Z_tr, alphas)
        Z_cov = quotient.visible_basis_.T @ moments[1] @ quotient.visible_basis_
        quotient_r2 = whitened_r2(Z_ho, zmap.predict(B_ho).reshape(Z_ho.shape), Z_cov)
        full_map = None
        if self.full_state_diagnostic or self.target == "full":
            full_map = self._map(B_tr, A_tr, alphas)
        full_r2 = (
            None if full_map is None else whitened_r2(A_ho, full_map.predict(B_ho), moments[1])
        )

        sources = {**dict(bank.items()), **dict(extra.items())}
        moved: dict[str, PolynomialMonitor] = {}
        P = None
        if self.target == "quotient":
            the_map = zmap
            G, z0 = _affine_of(zmap, mu_B, quotient.rank_)
            for name, zm in z_monitors.items():
                moved[name] = zm.compose_affine(G, z0, mu_B)
        else:
            if self.target == "full":
                the_map = full_map
                G, a0 = _affine_of(full_map, mu_B, d_A)
            else:
                r_pca = self.pca_rank if self.pca_rank is not None else quotient.rank_
                r_pca = min(int(r_pca), d_A)
                mu_A = moments[0]
                lam, vecs = np.linalg.eigh(moments[1])
                P = vecs[:, np.argsort(lam)[::-1][:r_pca]]  # (d_A, r) top principal directions
                the_map = self._map(B_tr, project_rows(A_tr, mu_A, P), alphas)
                G_p, p0 = _affine_of(the_map, mu_B, r_pca)
                G, a0 = P @ G_p, mu_A + P @ p0
            # the baselines apply every monitor, as it is, to the reconstructed h_A
            for name, m in sources.items():
                moved[name] = m.compose_affine(G, a0, mu_B)

        rows, kept = [], ProbeBank(metadata={"transferred_from": dict(bank.metadata),
                                             "target": self.target})  # fmt: skip
        src_scores = np.asarray(to_numpy(_evaluate(A_ho, list(sources.values()))))
        dst_scores = np.asarray(to_numpy(_evaluate(B_ho, [moved[n] for n in sources])))
        for j, name in enumerate(sources):
            dst = dst_scores[:, j]
            fid = r2_score(src_scores[:, j], dst)
            rho = rank_correlation(src_scores[:, j], dst)
            cov = float(coverage[name])
            reasons = []
            if cov < self.min_coverage:
                reasons.append(f"coverage {cov:.2f} < {self.min_coverage:g}")
            if not fid >= self.min_fidelity:
                reasons.append(f"fidelity {fid:.2f} < {self.min_fidelity:g}")
            portable = not reasons
            rows.append(MonitorCoverage(name, sources[name].kind, name in bank, cov, fid, rho,
                                        portable, "; ".join(reasons)))  # fmt: skip
        report = CoverageReport(
            rows=rows, target=self.target, rank=quotient.rank_, quotient_r2=quotient_r2,
            full_state_r2=full_r2, alpha=float(np.median(np.atleast_1d(the_map.alpha_))),
            n_train=train.size, n_heldout=hold.size, min_coverage=float(self.min_coverage),
            min_fidelity=float(self.min_fidelity), metric=self.metric,
        )  # fmt: skip
        bad = report.not_portable
        if bad and self.unportable == "raise":
            raise ValueError(
                f"{len(bad)} monitor(s) are not portable to model B: "
                + "; ".join(f"{n} ({report[n].reason})" for n in bad)
                + ". Pass unportable='drop' or 'mark' to transfer the others.\n"
                + str(report)
            )
        for row in rows:
            if row.portable or self.unportable == "mark":
                m = moved[row.name]
                info = {**m.info, "portable": bool(row.portable),
                        "coverage": json_number(row.coverage),
                        "fidelity_r2": json_number(row.fidelity_r2)}  # fmt: skip
                kept.add(row.name, PolynomialMonitor(m.linear, m.intercept, m.quadratic,
                                                     m.centre, m.kind, info))  # fmt: skip
        if bad and self.unportable == "drop":
            report.notes.append(f"left out of the transferred bank: {', '.join(bad)}")
            warnings.warn(
                f"{len(bad)} monitor(s) are not portable and were left out of the transferred "
                f"bank: {', '.join(bad)} (see report_; unportable='mark' keeps them).",
                UserWarning,
                stacklevel=2,
            )
        if self.alpha_per_target:
            report.notes.append("alpha chosen per output coordinate (the median is shown)")
        kept.report = report
        self.quotient_, self.map_, self.zmap_, self.full_map_ = quotient, the_map, zmap, full_map
        self.bank_, self.report_ = kept, report
        self.train_index_, self.heldout_index_ = train, hold
        self.moved_ = moved
        self.pca_basis_ = P  # (d_A, r) for target="pca", else None
        self.heldout_scores_ = (src_scores, dst_scores)  # (source, transferred), sources order
        return self

    def transform(self, H_B: Any) -> np.ndarray:
        """Predicted quotient coordinates z_A of B's hidden states (n, r)."""
        if not hasattr(self, "zmap_"):
            raise NotFittedError("This QuotientAligner is not fitted yet; call fit first.")
        Z = self.zmap_.predict(H_B)
        return Z.reshape(Z.shape[0], -1)


def _affine_of(probe: LinearProbe, centre: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(G (k, d), offset (k,)) with probe.predict(h) = G (h - centre) + offset."""
    G = np.asarray(to_numpy(probe.coef_), dtype=np.float64).reshape(k, -1)
    b = np.asarray(to_numpy(probe.intercept_), dtype=np.float64).reshape(k)
    return G, G @ centre + b


def _same_place(XA: Any, XB: Any) -> tuple[Any, Any]:
    """Both numpy, or both torch tensors on XA's device (else XB's): a numpy side is moved to
    the tensor's device, a tensor on another device is moved to XA's."""
    if not (is_torch_tensor(XA) or is_torch_tensor(XB)):
        return XA, XB
    import torch

    device = XA.device if is_torch_tensor(XA) else XB.device

    def place(X):
        if is_torch_tensor(X):
            return X if X.device == device else X.to(device)
        return torch.from_numpy(np.ascontiguousarray(X)).to(device)

    return place(XA), place(XB)


def transfer(
    bank: ProbeBank,
    H_A: Any,
    H_B: Any,
    *,
    extra_monitors: Optional[ProbeBank] = None,
    **params: Any,
) -> ProbeBank:
    """Move the monitors of `bank` (on model A) to model B, label-free.

    Fits a QuotientAligner(**params) on the paired hidden states and returns the transferred
    ProbeBank (reading B's hidden states); its ``.report`` is the CoverageReport. See
    QuotientAligner for the parameters (target, alphas, cv, metric, holdout, thresholds,
    unportable, ...).
    """
    return QuotientAligner(**params).fit(bank, H_A, H_B, extra_monitors=extra_monitors).bank_


# ---------------------------------------------------------------------------------- baselines
def few_label_probe(
    H_B: Any,
    labels: Any,
    n_labels: Optional[int] = None,
    *,
    degree: int = 1,
    random_state: Any = 0,
    **params: Any,
):
    """The "train a target probe on B with a few labels" baseline.

    Fits a LinearProbeClassifier (degree=1) or QuadraticProbeClassifier (degree=2) with
    `params` on `n_labels` rows of H_B drawn at random (at least one of each class; all rows
    when n_labels is None) and returns the fitted probe (add it to a ProbeBank to compare).
    """
    from .linear import LinearProbeClassifier
    from .quadratic import QuadraticProbeClassifier

    X = check_X(H_B, name="H_B", min_samples=2, owner="the few-label probe",
                keep_tensor=is_torch_tensor(H_B))  # fmt: skip
    y = np.asarray(to_numpy(labels)).ravel()
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"labels has {y.shape[0]} entries but H_B has {X.shape[0]} rows.")
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError("labels has a single class; a probe needs at least two.")
    if degree not in (1, 2):
        raise ValueError(f"degree must be 1 or 2, got {degree!r}.")
    rng = np.random.default_rng(random_state)
    if n_labels is None or n_labels >= y.size:
        rows = np.arange(y.size)
    else:
        if n_labels < classes.size:
            raise ValueError(f"n_labels={n_labels} cannot cover the {classes.size} classes.")
        # one row of each class first, then the rest at random
        first = np.array([rng.choice(np.flatnonzero(y == c)) for c in classes])
        rest = rng.permutation(np.setdiff1d(np.arange(y.size), first))[: n_labels - first.size]
        rows = np.sort(np.concatenate([first, rest]))
    cls = LinearProbeClassifier if degree == 1 else QuadraticProbeClassifier
    if "cv" not in params:
        params["cv"] = "loo" if rows.size < 200 else "gcv"
    return cls(**params).fit(_take(X, rows), y[rows])


@dataclass
class TransferComparison:
    """Held-out comparison of transfer methods (see compare_transfer)."""

    rows: list  # dicts: method, monitor, fidelity_r2, rank_correlation, auroc, source_auroc
    quotient_r2: float
    full_state_r2: Optional[float]
    rank: int

    def mean(self, method: str, key: str) -> float:
        vals = np.array([r[key] for r in self.rows if r["method"] == method], dtype=float)
        vals = vals[np.isfinite(vals)]
        return float(vals.mean()) if vals.size else float("nan")

    def __str__(self) -> str:
        methods = list(dict.fromkeys(r["method"] for r in self.rows))
        lines = [
            f"Transfer comparison (quotient rank r = {self.rank}; held-out R^2 quotient "
            f"{self.quotient_r2:.3f}, full state "
            f"{'n/a' if self.full_state_r2 is None else f'{self.full_state_r2:.3f}'})",
            f"  {'method':<28} {'fidelity R2':>11} {'rank corr':>9} {'AUROC':>7} {'source':>7}",
        ]
        for meth in methods:
            lines.append(
                f"  {meth:<28} {self.mean(meth, 'fidelity_r2'):>11.3f} "
                f"{self.mean(meth, 'rank_correlation'):>9.3f} {self.mean(meth, 'auroc'):>7.3f} "
                f"{self.mean(meth, 'source_auroc'):>7.3f}"
            )
        lines.append("  (means over monitors, on held-out pairs)")
        return "\n".join(lines)

    __repr__ = __str__


def compare_transfer(
    bank: ProbeBank,
    H_A: Any,
    H_B: Any,
    labels: Any = None,
    *,
    targets: tuple = TARGETS,
    n_labels: tuple = (),
    **params: Any,
) -> TransferComparison:
    """Run the transfer targets (and optionally few-label probes on B) on the same split.

    labels : optional (n, m) binary labels, one column per bank monitor (in bank order), used
        only to report AUROC on the held-out pairs and to train the few-label baselines on
        the training pairs. The transfers themselves never see labels.
    targets : which alignment targets to run; "full" runs twice, with one shared alpha and
        with an alpha per coordinate of h_A (the stronger full-state baseline).
    n_labels : sizes of the few-label baselines to add (e.g. (16, 64, 256)).
    """
    if not targets:
        raise ValueError(f"targets is empty; pass some of {TARGETS}.")
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        raise ValueError(f"unknown target(s) {bad}; choose from {TARGETS}.")
    if n_labels and labels is None:
        raise ValueError("n_labels needs labels= (one column of labels per monitor).")
    params = {**params, "unportable": "mark"}
    Y = None if labels is None else np.asarray(labels)
    if Y is not None:
        Y = Y.reshape(Y.shape[0], -1)
        if Y.shape[1] != len(bank):
            raise ValueError(f"labels needs one column per monitor ({len(bank)}), got {Y.shape}.")
    rows, first = [], None
    runs = []
    for target in targets:
        runs.append((f"transfer: {target}", target, {}))
        if target == "full":
            runs.append(("transfer: full, alpha/coord", target, {"alpha_per_target": True}))
    for label, target, extra_params in runs:
        al = QuotientAligner(target, **{**params, **extra_params}).fit(bank, H_A, H_B)
        first = first or al
        src, dst = (scores[:, : len(bank)] for scores in al.heldout_scores_)
        for j, name in enumerate(bank.names):
            row = al.report_[name]
            rows.append({
                "method": label, "monitor": name,
                "fidelity_r2": row.fidelity_r2, "rank_correlation": row.rank_correlation,
                "auroc": np.nan if Y is None else roc_auc(dst[:, j], Y[al.heldout_index_, j]),
                "source_auroc": np.nan if Y is None else roc_auc(src[:, j],
                                                                 Y[al.heldout_index_, j]),
            })  # fmt: skip
    if Y is not None and n_labels:
        XB = check_X(H_B, name="H_B", keep_tensor=is_torch_tensor(H_B))
        train, hold = first.train_index_, first.heldout_index_
        src = first.heldout_scores_[0][:, : len(bank)]
        B_tr, B_ho = _take(XB, train), _take(XB, hold)
        for k in n_labels:
            for j, name in enumerate(bank.names):
                probe = few_label_probe(B_tr, Y[train, j], k, random_state=j)
                score = np.asarray(to_numpy(probe.decision_function(B_ho)))
                rows.append({
                    "method": f"few labels on B: {k}", "monitor": name,
                    # a probe trained on labels has its own scale: R^2 against the source
                    # score means nothing, the rank correlation does
                    "fidelity_r2": np.nan,
                    "rank_correlation": rank_correlation(src[:, j], score),
                    "auroc": roc_auc(score, Y[hold, j]),
                    "source_auroc": roc_auc(src[:, j], Y[hold, j]),
                })  # fmt: skip
    return TransferComparison(rows, first.report_.quotient_r2, first.report_.full_state_r2,
                              first.report_.rank)  # fmt: skip

"""Label-free monitor transfer from model A to model B through A's probe-visible quotient.

Given a bank of monitors fitted on model A and the hidden states of both models on the same
unlabeled inputs (paired rows H_A, H_B), :class:`QuotientAligner` fits an affine ridge map from
B's hidden states to A's quotient coordinates z_A = C^T (h_A - m) (r numbers, see
:class:`~shallowprobes.monitors.quotient.Quotient`, built in the metric of A's data), with alpha
chosen by the core's exact CV, and composes it with every monitor. A monitor on z composed with an
affine map of h_B is again a polynomial of degree <= 2 in h_B, so the transferred monitors are
stored as such and read B's hidden states directly. No labels on B are used.

A point of honesty, tested in the suite: a ridge map decouples across output columns, so with
the same alpha, "map h_B -> h_A, then project onto the quotient" gives exactly the same
transferred monitors as "map h_B -> z_A". What the quotient adds is

1. the right diagnostic: held-out R^2 on z_A says whether the visible part aligns, while the
   full-state R^2 need not (directions no monitor reads may be unalignable);
2. the right target for alpha selection (CV on the r visible coordinates, not on d_A - r
   coordinates that no monitor reads);
3. r outputs instead of d_A;
4. a subspace that contains the monitors' directions, unlike e.g. A's top-r PCA subspace.

The baselines are available under the same API (``target="full"`` and ``target="pca"``), and
:func:`few_label_probe` trains a probe on B with a few labels for comparison.

Verdicts
--------
Every transfer produces a :class:`CoverageReport`. The map is first fitted on a training split
of the pairs; on the held-out pairs the source score s (the monitor on h_A) and the
transferred score t (the moved monitor on h_B) are compared by four label-free statistics,
each with a percentile bootstrap interval over the held-out pairs:

- decision AUROC: the AUROC of t for the source monitor's own decisions s > theta at its
  operating point theta (``info["threshold"]``, default 0, the decision rule of the library's
  classifiers): how well the transferred score still separates what the monitor flags from
  what it does not. This is the statistic the verdict uses;
- decision agreement: the fraction of pairs with (t > theta) == (s > theta);
- rank correlation (Spearman) of s and t;
- score R^2 of t against s (``fidelity_r2``).

A monitor is *portable* when its coverage (below) is >= `min_coverage` and its decision AUROC
is >= `min_decision_auroc` (optional extra thresholds on the rank correlation and the score
R^2 are off by default). The default threshold comes from a calibration study over synthetic
pairs with controlled degradation (docs/transfer_verdicts.md, benches/calibrate_verdicts.py):
the decision AUROC predicts the transferred AUROC best of the four, while the score R^2 and the
rank correlation also penalise within-class detail that B does not encode and that labels do
not depend on (well-separated concepts transfer with R^2 ~0.85 and no AUROC loss).

Coverage: for a monitor outside the bank (`extra_monitors`), the share of its score variance on
A's data that the bank's visible span carries (1 = fully covered, 0 = reads only invisible
directions); for the bank's own monitors it is 1 by construction and reported as "in bank",
unless the quotient's cut-off (rtol / rank) dropped directions they read.

After the held-out estimate the map is refitted on all pairs (``refit=True``); the report's
statistics are those of the split fit, the returned monitors use the refitted map.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .._params import (
    RANDOM_STATE,
    Interval,
    Options,
    ParameterError,
    ParameterTypeError,
    check_param,
    shown,
)
from .._validation import check_X
from ..backends import to_numpy
from ..threads import interruptible
from .agreement import (
    DEFAULT_MIN_DECISION_AUROC,
    agreement_statistics,
    rank_correlation,
    roc_auc,
)
from .aligner import (
    TARGETS,
    QuotientAligner,
)
from .bank import ProbeBank
from .pairs import take_rows
from .report import (
    CoverageReport,
    MonitorCoverage,
)

__all__ = [
    "QuotientAligner",
    "transfer",
    "CoverageReport",
    "MonitorCoverage",
    "agreement_statistics",
    "few_label_probe",
    "compare_transfer",
    "TransferComparison",
    "TARGETS",
    "DEFAULT_MIN_DECISION_AUROC",
]


@interruptible
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
    unportable, ...). By default every monitor comes back, the ones judged not portable
    flagged (``info["portable"] = False``, with a warning); unportable="drop" leaves them out
    and raises EmptyBankError rather than return an empty bank.
    """
    aligner = QuotientAligner(**params)
    return aligner._fit(bank, H_A, H_B, extra_monitors, "the returned bank's .report").bank_


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
    from ..probes.linear import LinearProbeClassifier
    from ..probes.quadratic import QuadraticProbeClassifier

    owner = "few_label_probe"
    check_param("degree", degree, [Options((1, 2))], owner=owner)
    check_param("n_labels", n_labels, [Interval("int", 1, None), None], owner=owner)
    check_param("random_state", random_state, RANDOM_STATE, owner=owner)
    y = np.asarray(to_numpy(labels)).ravel()
    cls = LinearProbeClassifier if degree == 1 else QuadraticProbeClassifier
    if "cv" not in params:
        n_rows = y.size if n_labels is None else min(int(n_labels), y.size)
        params["cv"] = "loo" if n_rows < 200 else "gcv"
    probe = cls(**params)  # TypeError naming an unknown parameter
    probe._check_params()  # every probe parameter, before any work
    X = check_X(H_B, name="H_B", min_samples=2, owner="the few-label probe",
                keep_tensor=True)  # fmt: skip
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"labels has {y.shape[0]} entries but H_B has {X.shape[0]} rows.")
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError("labels has a single class; a probe needs at least two.")
    rng = np.random.default_rng(random_state)
    if n_labels is None or n_labels >= y.size:
        rows = np.arange(y.size)
    else:
        if n_labels < classes.size:
            raise ParameterError(
                f"n_labels={n_labels} cannot cover the {classes.size} classes (one row of "
                f"each is needed); pass n_labels >= {classes.size}."
            )
        # one row of each class first, then the rest at random
        first = np.array([rng.choice(np.flatnonzero(y == c)) for c in classes])
        rest = rng.permutation(np.setdiff1d(np.arange(y.size), first))[: n_labels - first.size]
        rows = np.sort(np.concatenate([first, rest]))
    return probe.fit(take_rows(X, rows), y[rows])


@dataclass
class TransferComparison:
    """Held-out comparison of transfer methods (see compare_transfer)."""

    rows: list  # dicts: method, monitor, decision_auroc, fidelity_r2, rank_correlation,
    # auroc, source_auroc
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
            f"  {'method':<28} {'decision AUROC':>14} {'score R2':>8} {'rank corr':>9} "
            f"{'AUROC':>7} {'source':>7}",
        ]
        for meth in methods:
            lines.append(
                f"  {meth:<28} {self.mean(meth, 'decision_auroc'):>14.3f} "
                f"{self.mean(meth, 'fidelity_r2'):>8.3f} "
                f"{self.mean(meth, 'rank_correlation'):>9.3f} {self.mean(meth, 'auroc'):>7.3f} "
                f"{self.mean(meth, 'source_auroc'):>7.3f}"
            )
        lines.append("  (means over monitors, on held-out pairs; decision AUROC: of the score for "
                     "the source monitor's decisions, label-free)")
        return "\n".join(lines)

    __repr__ = __str__


@interruptible
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
    owner = "compare_transfer"
    if not isinstance(targets, (list, tuple)) or not targets:
        raise (ParameterError if isinstance(targets, (list, tuple)) else ParameterTypeError)(
            f"{owner}: targets must be a non-empty tuple of target names from {TARGETS}, got "
            f"{shown(targets)}."
        )
    bad = [t for t in targets if not isinstance(t, str) or t not in TARGETS]
    if bad:
        raise ParameterError(
            f"{owner}: targets has unknown target(s) {bad}; choose from {TARGETS}."
        )
    if not isinstance(n_labels, (list, tuple)):
        raise ParameterTypeError(
            f"{owner}: n_labels must be a tuple of label counts (integers >= 1), got "
            f"{shown(n_labels)}."
        )
    for k in n_labels:
        check_param("n_labels entries", k, [Interval("int", 1, None)], owner=owner)
    if n_labels and labels is None:
        raise ParameterError("n_labels needs labels= (one column of labels per monitor).")
    params = {**params, "unportable": "mark"}
    for target in targets:  # every aligner's parameters, before the first fit
        QuotientAligner(target, **params)._check_params()
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
        with warnings.catch_warnings():  # the rows below show every verdict
            warnings.filterwarnings("ignore", message=".*NOT portable")
            al = QuotientAligner(target, **{**params, **extra_params}).fit(bank, H_A, H_B)
        first = first or al
        src, dst = (scores[:, : len(bank)] for scores in al.heldout_scores_)
        for j, name in enumerate(bank.names):
            row = al.report_[name]
            rows.append({
                "method": label, "monitor": name, "decision_auroc": row.decision_auroc,
                "fidelity_r2": row.fidelity_r2, "rank_correlation": row.rank_correlation,
                "auroc": np.nan if Y is None else roc_auc(dst[:, j], Y[al.heldout_index_, j]),
                "source_auroc": np.nan if Y is None else roc_auc(src[:, j],
                                                                 Y[al.heldout_index_, j]),
            })  # fmt: skip
    if Y is not None and n_labels:
        XB = check_X(H_B, name="H_B", keep_tensor=True)
        train, hold = first.train_index_, first.heldout_index_
        src = first.heldout_scores_[0][:, : len(bank)]
        B_tr, B_ho = take_rows(XB, train), take_rows(XB, hold)
        for k in n_labels:
            for j, name in enumerate(bank.names):
                probe = few_label_probe(B_tr, Y[train, j], k, random_state=j)
                score = np.asarray(to_numpy(probe.decision_function(B_ho)))
                theta = first.report_[name].threshold
                rows.append({
                    "method": f"few labels on B: {k}", "monitor": name,
                    # label-free agreement with the source's decisions, as for the transfers
                    "decision_auroc": roc_auc(score, src[:, j] > theta),
                    # a probe trained on labels has its own scale: R^2 against the source
                    # score means nothing, the rank correlation does
                    "fidelity_r2": np.nan,
                    "rank_correlation": rank_correlation(src[:, j], score),
                    "auroc": roc_auc(score, Y[hold, j]),
                    "source_auroc": roc_auc(src[:, j], Y[hold, j]),
                })  # fmt: skip
    return TransferComparison(rows, first.report_.quotient_r2, first.report_.full_state_r2,
                              first.report_.rank)  # fmt: skip

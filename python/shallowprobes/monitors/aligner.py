"""`QuotientAligner`: the affine ridge map from model B's hidden states to model A's quotient
coordinates (alpha by the core's exact CV), fitted on paired rows, composed with every monitor
of a bank, with held-out verdicts per monitor (see `monitors.transfer` for the method).
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Union

import numpy as np

from .._base import BaseEstimator, NotFittedError, user_stacklevel
from .._params import (
    ALPHAS,
    ARRAY_LIKE,
    BACKEND,
    BOOL,
    CV,
    RANDOM_STATE,
    Interval,
    Options,
    ParameterError,
    params_of,
    validate_params,
)
from .._validation import check_X
from ..backends import is_torch_tensor, to_numpy
from ..errors import EmptyBankError, NotPortableError
from ..io import json_number
from ..probes.linear import LinearProbe
from ..solve.geometry import METRICS, check_readout
from ..threads import interruptible
from .agreement import (
    _STAT_LABELS,
    DEFAULT_MIN_DECISION_AUROC,
    STATISTICS,
    _agreement,
    _bootstrap_rng,
    _monitor_threshold,
    whitened_r2,
)
from .bank import ProbeBank
from .monitor import PolynomialMonitor, evaluate_monitors
from .pairs import HOLDOUT, alpha_grid, column_moments, same_place, split_pairs, take_rows
from .quotient import Quotient
from .report import (
    _LOST_SHARE_TOL,
    _QUOTIENT_METRICS,
    CoverageReport,
    MonitorCoverage,
    _fmt,
)
from .visible import project_rows, reference_moments

TARGETS = ("quotient", "full", "pca")
_UNPORTABLE = ("mark", "drop", "raise")
_FRACTION = [Interval("real", 0.0, 1.0)]


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
    quotient_metric : geometry of A's quotient. "data" (default): built in the metric of A's
        training pairs (covectors scaled by their covariance; z is whitened there), so units
        the data never moves cannot dominate it. "euclidean": by coefficient norms (the
        data-free quotient). Either way the aligner warns when a monitor of the bank puts
        more than 1e-6 of its score variance on A outside the kept rank.
    rtol, rank : the quotient's cut-off (see Quotient).
    pca_rank : dimension of the PCA baseline (default: the quotient's rank).
    holdout : fraction (or number) of the pairs kept out of the map to measure the verdict
        statistics.
    refit : after the held-out estimate, refit the map on all pairs (default True); the
        report keeps the held-out figures of the split fit.
    random_state : seed of the holdout split and of the bootstrap.
    min_coverage : coverage threshold of the verdict (default 0.9).
    min_decision_auroc : threshold on the held-out decision AUROC (default
        DEFAULT_MIN_DECISION_AUROC, from the calibration study in docs/transfer_verdicts.md).
    min_rank_correlation, min_fidelity : optional thresholds on the held-out rank correlation
        and score R^2 (default None: reported, not part of the verdict).
    n_bootstrap, confidence : percentile-bootstrap intervals of the statistics (default 200
        resamples, 95%; n_bootstrap=0 skips them).
    unportable : what happens to monitors judged not portable: "mark" (default: kept, with
        ``info["portable"] = False`` and a warning), "drop" (left out of `bank_`, with a
        warning; EmptyBankError when that would leave nothing) or "raise" (NotPortableError).
    full_state_diagnostic : also fit B -> h_A to report the full-state R^2 (default True).
    backend : backend of the ridge solves.

    Attributes (after `fit`)
    ------------------------
    quotient_ : the Quotient of the source bank.
    map_ : the fitted LinearProbe from h_B to the target coordinates that the monitors use
        (refitted on all pairs when refit=True).
    split_map_ : the same map fitted on the training pairs only (the held-out statistics).
    bank_ : ProbeBank of the transferred monitors, reading h_B; ``bank_.report`` is report_.
    report_ : the CoverageReport.
    train_index_, heldout_index_ : the split of the pairs.
    zmap_, split_zmap_ : the maps h_B -> z_A (final and split); full_map_ : h_B -> h_A (the
        final one for target="full", else the diagnostic fitted on the training pairs; None
        when full_state_diagnostic=False and target != "full").
    pca_basis_ : (d_A, r) A's top principal directions for target="pca", else None.
    heldout_scores_ : (source, transferred) scores (n_heldout, m) on the held-out pairs from
        the split fit, in report order (bank monitors, then extra monitors).
    moved_ : dict name -> transferred PolynomialMonitor (final map), before the verdict.
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
        quotient_metric: str = "data",
        rtol: float = 1e-6,
        rank: Optional[int] = None,
        pca_rank: Optional[int] = None,
        holdout: Union[float, int] = 0.2,
        refit: bool = True,
        random_state: Any = 0,
        min_coverage: float = 0.9,
        min_decision_auroc: Optional[float] = DEFAULT_MIN_DECISION_AUROC,
        min_rank_correlation: Optional[float] = None,
        min_fidelity: Optional[float] = None,
        n_bootstrap: int = 200,
        confidence: float = 0.95,
        unportable: str = "mark",
        full_state_diagnostic: bool = True,
        backend: str = "auto",
    ) -> None:
        self.target = target
        self.alphas = alphas
        self.cv = cv
        self.alpha_per_target = alpha_per_target
        self.metric = metric
        self.readout = readout
        self.quotient_metric = quotient_metric
        self.rtol = rtol
        self.rank = rank
        self.pca_rank = pca_rank
        self.holdout = holdout
        self.refit = refit
        self.random_state = random_state
        self.min_coverage = min_coverage
        self.min_decision_auroc = min_decision_auroc
        self.min_rank_correlation = min_rank_correlation
        self.min_fidelity = min_fidelity
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.unportable = unportable
        self.full_state_diagnostic = full_state_diagnostic
        self.backend = backend

    # ------------------------------------------------------------------ checks
    def _param_constraints(self) -> dict:
        """name -> constraints of every parameter (see `shallowprobes._params`)."""
        return {
            "target": [Options(TARGETS)],
            "alphas": ALPHAS,
            "cv": CV,
            "alpha_per_target": BOOL,
            "metric": [Options(METRICS)],
            "readout": [None, ARRAY_LIKE],
            "quotient_metric": [Options(_QUOTIENT_METRICS)],
            "rtol": [Interval("real", 0.0, 1.0, closed="left")],
            "rank": [Interval("int", 1, None), None],
            "pca_rank": [Interval("int", 1, None), None],
            "holdout": HOLDOUT,
            "refit": BOOL,
            "random_state": RANDOM_STATE,
            "min_coverage": _FRACTION,
            "min_decision_auroc": [*_FRACTION, None],
            "min_rank_correlation": [Interval("real", -1.0, 1.0), None],
            "min_fidelity": [*_FRACTION, None],
            "n_bootstrap": [Interval("int", 0, None)],
            "confidence": [Interval("real", 0.0, 1.0, closed="neither")],
            "unportable": [Options(_UNPORTABLE)],
            "full_state_diagnostic": BOOL,
            "backend": BACKEND,
        }

    def _check_params(self) -> None:
        """Validate every parameter (ParameterError naming it) before any work."""
        constraints = self._param_constraints()
        validate_params(params_of(self, constraints), constraints, owner="QuotientAligner")
        if self.metric == "readout" and self.readout is None:
            raise ParameterError('metric="readout" needs readout=W_B, model B\'s readout matrix.')
        if self.readout is not None and self.metric != "readout":
            raise ParameterError(
                f'readout= is used by metric="readout" only (metric={self.metric!r}).'
            )

    def _map(self, H: Any, Y: Any, alphas: Any) -> LinearProbe:
        probe = LinearProbe(
            alphas=alphas, cv=self.cv, alpha_per_target=bool(self.alpha_per_target),
            metric=self.metric,
            readout=self.readout, backend=self.backend,
        )  # fmt: skip
        # The aligner's grid reaches 1e-10 x the data scale on purpose: (near-)equivalent
        # models legitimately choose its bottom edge, and the report states the alpha, so
        # the probes' grid-edge warning would only be noise here.
        from ..errors import GridEdgeWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GridEdgeWarning)
            return probe.fit(H, Y)

    # ------------------------------------------------------------------ fitting
    @interruptible
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
        where = "the aligner's report_ (also bank_.report)"
        return self._fit(bank, H_A, H_B, extra_monitors, where)

    def _fit(self, bank, H_A, H_B, extra_monitors, where_report: str) -> QuotientAligner:
        self._check_params()
        if not isinstance(bank, ProbeBank) or len(bank) == 0:
            raise TypeError("bank must be a non-empty ProbeBank of monitors on model A.")
        d_A = bank.n_features_in_
        XA = check_X(H_A, name="H_A", n_features=d_A, min_samples=5, owner="the bank",
                     keep_tensor=True)  # fmt: skip
        XB = check_X(H_B, name="H_B", min_samples=5, owner="the aligner",
                     keep_tensor=True)  # fmt: skip
        XA, XB = same_place(XA, XB)
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
        # the parameters that need the widths, before any work
        if self.metric == "readout":
            check_readout(self.readout, XB.shape[1])
        Quotient(self.rtol, rank=self.rank)._check_params(d_A)
        n = XA.shape[0]
        train, hold = split_pairs(n, self.holdout, self.random_state)
        A_tr, A_ho = take_rows(XA, train), take_rows(XA, hold)
        B_tr, B_ho = take_rows(XB, train), take_rows(XB, hold)
        B_moments = column_moments(B_tr)
        mu_B = B_moments[0]
        # one alpha grid for every map of this fit
        alphas = self.alphas
        if alphas is None:
            alphas = alpha_grid(B_tr, self.metric, self.readout, B_moments)
        # CUDA tensors: the statistics, solves and scores stay on their device; only d x d
        # moments, coefficients and n_heldout x m score tables come to the host
        device = XA.device if is_torch_tensor(XA) and XA.device.type != "cpu" else None

        moments = reference_moments(A_tr, d_A, self.backend)
        quotient = Quotient(self.rtol, rank=self.rank, centre=moments[0], device=device)
        with warnings.catch_warnings():
            # the aligner words its own warning about dropped directions, in A's data metric
            warnings.simplefilter("ignore")
            quotient.fit(bank, _moments=moments if self.quotient_metric == "data" else None)
        extra = extra_monitors if extra_monitors is not None else ProbeBank()
        geometry = quotient._geometry(moments)  # A's training pairs: shared by every monitor
        z_monitors = {name: m for name, m in quotient.monitors_.items()}
        for name, m in extra.items():
            z_monitors[name] = quotient.project(m, _geometry=geometry)
        # label-free coverage, in the geometry of A's training pairs
        coverage = {name: quotient._coverage_one(m, geometry)
                    for name, m in [*bank.items(), *extra.items()]}  # fmt: skip
        lost = {name: 1.0 - coverage[name] for name in bank
                if 1.0 - coverage[name] > _LOST_SHARE_TOL}  # fmt: skip
        if lost:
            worst = sorted(lost, key=lost.get, reverse=True)
            listed = ", ".join(f"{name!r} {100 * lost[name]:.3g}%" for name in worst[:5])
            warnings.warn(
                f"{len(lost)} monitor(s) of the bank are not reproduced exactly from the "
                f"{quotient.rank_} kept quotient coordinates: part of their weight lies "
                f"outside the kept rank (share of the score variance on A's pairs lost: "
                f"{listed}{', ...' if len(worst) > 5 else ''}). Lower rtol or raise rank to "
                "keep those directions"
                + (", or use quotient_metric='data'" if self.quotient_metric != "data" else "")
                + ".",
                UserWarning,
                stacklevel=user_stacklevel(),
            )

        # the quotient map: used for the monitors (target="quotient") and the diagnostic
        Z_tr, Z_ho = quotient.transform(A_tr), quotient.transform(A_ho)
        split_zmap = self._map(B_tr, Z_tr, alphas)
        Z_cov = quotient.visible_basis_.T @ moments[1] @ quotient.visible_basis_
        quotient_r2 = whitened_r2(Z_ho, split_zmap.predict(B_ho).reshape(Z_ho.shape), Z_cov)
        split_full = None
        if self.full_state_diagnostic or self.target == "full":
            split_full = self._map(B_tr, A_tr, alphas)
        full_r2 = (
            None if split_full is None
            else whitened_r2(A_ho, split_full.predict(B_ho), moments[1])
        )  # fmt: skip

        sources = {**dict(bank.items()), **dict(extra.items())}
        P = None
        if self.target == "pca":
            r_pca = self.pca_rank if self.pca_rank is not None else quotient.rank_
            r_pca = min(int(r_pca), d_A)
            lam, vecs = np.linalg.eigh(moments[1])
            P = vecs[:, np.argsort(lam)[::-1][:r_pca]]  # (d_A, r) top principal directions

        def targets_of(XA_rows):
            if self.target == "quotient":
                return quotient.transform(XA_rows)
            if self.target == "full":
                return XA_rows
            return project_rows(XA_rows, moments[0], P)

        def moved_by(the_map, centre_B):
            if self.target == "quotient":
                G, z0 = _affine_of(the_map, centre_B, quotient.rank_)
                return {name: zm.compose_affine(G, z0, centre_B)
                        for name, zm in z_monitors.items()}  # fmt: skip
            if self.target == "full":
                G, a0 = _affine_of(the_map, centre_B, d_A)
            else:
                G_p, p0 = _affine_of(the_map, centre_B, P.shape[1])
                G, a0 = P @ G_p, moments[0] + P @ p0
            # the baselines apply every monitor, as it is, to the reconstructed h_A
            return {name: m.compose_affine(G, a0, centre_B) for name, m in sources.items()}

        if self.target == "quotient":
            split_map = split_zmap
        elif self.target == "full":
            split_map = split_full
        else:
            split_map = self._map(B_tr, targets_of(A_tr), alphas)
        split_moved = moved_by(split_map, mu_B)
        src_scores = np.asarray(to_numpy(evaluate_monitors(A_ho, list(sources.values()))))
        dst_scores = np.asarray(
            to_numpy(evaluate_monitors(B_ho, [split_moved[k] for k in sources]))
        )
        thresholds = np.array([_monitor_threshold(m) for m in sources.values()])
        stats = _agreement(src_scores, dst_scores, thresholds, int(self.n_bootstrap),
                           float(self.confidence), _bootstrap_rng(self.random_state))  # fmt: skip

        # after the held-out estimate: the map the monitors use, fitted on every pair
        notes = []
        if self.refit:
            mu_all = column_moments(XB)[0]
            final_map = self._map(XB, targets_of(XA), alphas)
            moved = moved_by(final_map, mu_all)
            final_zmap = final_map if self.target == "quotient" else split_zmap
            final_full = final_map if self.target == "full" else split_full
        else:
            final_map, moved = split_map, split_moved
            final_zmap, final_full = split_zmap, split_full

        rows = []
        for j, name in enumerate(sources):
            cov = float(coverage[name])
            st = {key: float(stats[key][j]) for key in STATISTICS}
            reasons = []
            if not cov >= self.min_coverage:
                reasons.append(f"coverage {cov:.2f} < {self.min_coverage:g}")
            for key, limit in (("decision_auroc", self.min_decision_auroc),
                               ("rank_correlation", self.min_rank_correlation),
                               ("fidelity_r2", self.min_fidelity)):  # fmt: skip
                if limit is not None and not st[key] >= limit:
                    value = "undefined" if not np.isfinite(st[key]) else f"{st[key]:.3f}"
                    reasons.append(f"{_STAT_LABELS[key]} {value} < {limit:g}")
            if stats["moved"][j]:
                notes.append(
                    f"{name!r} was judged at the median of its held-out source scores "
                    f"({stats['threshold'][j]:.4g}): fewer than 2 of them fall on one side of "
                    f"its threshold {thresholds[j]:g}."
                )
            rows.append(MonitorCoverage(
                name, sources[name].kind, name in bank, cov, st["fidelity_r2"],
                st["rank_correlation"], not reasons, "; ".join(reasons),
                decision_auroc=st["decision_auroc"],
                decision_agreement=st["decision_agreement"],
                threshold=float(stats["threshold"][j]),
                **{f"{k}_interval": tuple(float(x) for x in stats[f"{k}_interval"][j])
                   for k in STATISTICS},
            ))  # fmt: skip
        if self.refit:
            notes.insert(0, f"the monitors use the map refitted on all {n} pairs (alpha = "
                            f"{_median_alpha(final_map):.3g}); the statistics above are those "
                            f"of the map fitted on the {train.size} training pairs.")  # fmt: skip
        if full_r2 is not None and full_r2 < 0:
            notes.append(
                f"the full-state R^2 ({full_r2:.3f}) is below 0: the map predicts some "
                "directions of h_A worse than their mean. It averages the R^2 of all "
                f"{d_A} whitened directions of h_A with equal weight, however little variance "
                "they carry, under one ridge alpha shared by all outputs (chosen mostly for "
                "the large ones); directions that no monitor reads, and that B need not "
                "encode, dominate it. It is not comparable with the quotient R^2 and says "
                "nothing about the monitors (their statistics do)."
            )
        if np.isfinite(quotient_r2) and quotient_r2 < 0.2:
            notes.append(
                f"B predicts little of A's visible coordinates (quotient R^2 = "
                f"{quotient_r2:.3f}): check that row i of H_A and of H_B is the same input, "
                "or B does not encode what the monitors read."
            )
        if self.alpha_per_target:
            notes.append("alpha chosen per output coordinate (the median is shown)")
        report = CoverageReport(
            rows=rows, target=self.target, rank=quotient.rank_, quotient_r2=quotient_r2,
            full_state_r2=full_r2, alpha=_median_alpha(final_map), n_train=train.size,
            n_heldout=hold.size, min_coverage=float(self.min_coverage),
            min_fidelity=_opt_float(self.min_fidelity), metric=self.metric, notes=notes,
            min_decision_auroc=_opt_float(self.min_decision_auroc),
            min_rank_correlation=_opt_float(self.min_rank_correlation),
            confidence=float(self.confidence), n_bootstrap=int(self.n_bootstrap),
            n_refit=n if self.refit else 0, heldout_alpha=_median_alpha(split_map),
            quotient_metric=self.quotient_metric,
        )  # fmt: skip
        bad = report.not_portable
        if bad and self.unportable == "raise":
            raise NotPortableError(
                f"{len(bad)} monitor(s) are not portable to model B: "
                + "; ".join(f"{k} ({report[k].reason})" for k in bad)
                + ". Pass unportable='mark' (the default) or 'drop' to transfer them "
                "flagged, or the others.\n" + str(report)
            )
        if bad and self.unportable == "drop" and len(bad) == len(rows):
            raise EmptyBankError(_empty_message(report))
        kept = ProbeBank(metadata={"transferred_from": dict(bank.metadata),
                                   "target": self.target})  # fmt: skip
        for row in rows:
            if row.portable or self.unportable == "mark":
                m = moved[row.name]
                info = {**m.info, "portable": bool(row.portable),
                        "coverage": json_number(row.coverage),
                        "decision_auroc": json_number(row.decision_auroc),
                        "fidelity_r2": json_number(row.fidelity_r2),
                        "threshold": json_number(row.threshold)}  # fmt: skip
                kept.add(row.name, PolynomialMonitor(m.linear, m.intercept, m.quadratic,
                                                     m.centre, m.kind, info))  # fmt: skip
        if bad:
            listed = ", ".join(f"{k} ({report[k].reason})" for k in bad[:5])
            listed += ", ..." if len(bad) > 5 else ""
            if self.unportable == "drop":
                report.notes.append(f"left out of the transferred bank: {', '.join(bad)}")
                message = (
                    f"{len(bad)} of {len(rows)} monitor(s) are not portable to model B and were "
                    f"left out of the transferred bank: {listed}. See {where_report} for "
                    "their statistics; unportable='mark' keeps them, flagged."
                )
            else:
                message = (
                    f"{len(bad)} of {len(rows)} monitor(s) are marked NOT portable to model B "
                    f"(kept, with info['portable'] = False): {listed}. See {where_report} "
                    "for their statistics."
                )
            warnings.warn(message, UserWarning, stacklevel=user_stacklevel())
        kept.report = report
        self.quotient_, self.map_, self.zmap_, self.full_map_ = (
            quotient, final_map, final_zmap, final_full
        )
        self.split_map_, self.split_zmap_ = split_map, split_zmap
        self.bank_, self.report_ = kept, report
        self.train_index_, self.heldout_index_ = train, hold
        self.moved_ = moved
        self.pca_basis_ = P  # (d_A, r) for target="pca", else None
        self.heldout_scores_ = (src_scores, dst_scores)  # (source, transferred), sources order
        return self

    def transform(self, H_B: Any) -> np.ndarray:
        """Predicted quotient coordinates z_A of B's hidden states (n, r), by the final map."""
        if not hasattr(self, "zmap_"):
            raise NotFittedError("This QuotientAligner is not fitted yet; call fit first.")
        Z = self.zmap_.predict(H_B)
        return Z.reshape(Z.shape[0], -1)


def _median_alpha(probe: LinearProbe) -> float:
    return float(np.median(np.atleast_1d(to_numpy(probe.alpha_))))


def _opt_float(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def _empty_message(report: CoverageReport) -> str:
    """Why a drop-everything transfer returns nothing, naming the best statistic seen."""
    best = report.best("decision_auroc")
    if best is None:
        seen = "no monitor has a defined decision AUROC on the held-out pairs"
    else:
        lo, hi = best.decision_auroc_interval
        iv = (f" (interval {lo:.3f} to {hi:.3f})" if np.isfinite(lo) and np.isfinite(hi)
              else "")  # fmt: skip
        seen = (
            f"the best was {best.name!r}: decision AUROC {best.decision_auroc:.3f}{iv}, rank "
            f"correlation {_fmt(best.rank_correlation)}, score R^2 {_fmt(best.fidelity_r2)}, "
            f"coverage {_fmt(best.coverage)} ({best.reason})"
        )
    return (
        f"no monitor is portable to model B, so unportable='drop' would return an empty bank; "
        f"{seen}. The rule is {report.rule}. Check the pairing of H_A and H_B (row i must be "
        "the same input in both), or pass unportable='mark' to get the monitors flagged."
    )


def _affine_of(probe: LinearProbe, centre: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(G (k, d), offset (k,)) with probe.predict(h) = G (h - centre) + offset."""
    G = np.asarray(to_numpy(probe.coef_), dtype=np.float64).reshape(k, -1)
    b = np.asarray(to_numpy(probe.intercept_), dtype=np.float64).reshape(k)
    return G, G @ centre + b

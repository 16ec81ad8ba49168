"""Calibration study of the transfer verdicts (docs/transfer_verdicts.md).

Run from the repository root::

    .venv/bin/python benches/calibrate_verdicts.py            # the full study (~2-4 min)
    .venv/bin/python benches/calibrate_verdicts.py --quick    # 1 seed, smaller pairs

What it does. Synthetic model pairs with controlled degradation of model B (see
``shallowprobes.datasets.concept_model_pair`` and ``readout_equivalent_models``):

* ``concept`` pairs: 5 topics (plus a 30% background) in d_A = 32 dimensions, one-vs-rest
  LinearProbeClassifier monitors fitted on 3000 separate labelled rows of A; topic separation
  2.5 (source AUROC ~0.96) and 4 (~1.00); B = a random affine image of A (plus 8 nuisance
  coordinates, a non-linear scramble of A's invisible part), degraded by

  - ``visible noise``: independent noise on A's visible coordinates (a weaker target model),
  - ``within-class``: B keeps the topics but replaces part of A's within-class position by
    independent noise (the situation of real encoder pairs: R^2 ~0.85, no AUROC loss),
  - ``scramble``: a non-linear warp of the visible coordinates no affine map undoes,
  - ``partial``: B does not carry the coordinates of topics 0 and 1 (partial coverage),
  - ``destroyed``: B carries none of the topic coordinates,
  - ``shuffled``: the rows of H_B permuted (broken pairing);

* ``readout`` pairs (``readout_equivalent_models``, d_A = 32: 3 linear and 1 XOR-like
  quadratic ground-truth monitors, labels a noisy threshold of their scores) with visible
  noise, and shuffled.

Every pair is transferred with the default ``QuotientAligner`` (unportable="mark"); for every
monitor the study records, on the held-out pairs, the four label-free statistics of the report
and - with the labels, which the verdicts never see - the source AUROC and the transferred
AUROC. A transfer "holds" when the transferred AUROC is at most 0.02 below the source AUROC.

It prints (1) the mean statistics per condition, (2) per statistic: its Spearman correlation
with the transferred AUROC's loss across all monitors and the threshold that best separates
the transfers that hold from those that do not (balanced accuracy), for losses of 0.02 and 0.05.
Seeds: pairs use random_state = seed (0..4 in the full study), the aligner random_state=0.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import OrderedDict

import numpy as np

STATS = ("decision_auroc", "decision_agreement", "rank_correlation", "fidelity_r2")
LABELS = {"decision_auroc": "decision AUROC", "decision_agreement": "decision agreement",
          "rank_correlation": "rank correlation", "fidelity_r2": "score R^2"}  # fmt: skip
TOLERANCES = (0.02, 0.05)


def mann_whitney_auroc(scores, labels) -> float:
    """AUROC by a plain count over all (positive, negative) pairs, ties counting 1/2."""
    scores = np.asarray(scores, float)
    labels = np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float((np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / (pos.size * neg.size))


def conditions(quick: bool = False) -> list:
    """(family, level label, generator name, generator kwargs) of every condition."""
    out = []
    for sep in (2.5, 4.0):
        tag = f"sep {sep:g}"
        out.append(("equivalent", tag, "concept", dict(separation=sep)))
        for nu in ((0.25, 0.75) if quick else (0.1, 0.25, 0.5, 0.75, 1.0, 2.0)):
            out.append(("visible noise", f"{tag}, noise {nu:g}", "concept",
                        dict(separation=sep, visible_noise=nu)))  # fmt: skip
        for w in ((0.6, 1.0) if quick else (0.3, 0.6, 0.8, 1.0)):
            out.append(("within-class", f"{tag}, w {w:g}", "concept",
                        dict(separation=sep, within_class_noise=w)))  # fmt: skip
        for sc in ((0.25, 0.75) if quick else (0.1, 0.25, 0.4, 0.5, 0.75, 1.0)):
            out.append(("scramble", f"{tag}, scramble {sc:g}", "concept",
                        dict(separation=sep, scramble=sc)))  # fmt: skip
        out.append(("partial", f"{tag}, topics 0,1 missing", "concept",
                    dict(separation=sep, destroyed=(0, 1))))  # fmt: skip
        out.append(("destroyed", f"{tag}, all topics missing", "concept",
                    dict(separation=sep, destroyed=(0, 1, 2, 3, 4))))  # fmt: skip
        out.append(("shuffled", f"{tag}, shuffled", "concept", dict(separation=sep, shuffle=True)))
    for nz in ((0.0, 0.3) if quick else (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)):
        out.append(("visible noise" if nz else "equivalent", f"readout, noise {nz:g}", "readout",
                    dict(noise=nz)))  # fmt: skip
    out.append(("shuffled", "readout, shuffled", "readout", dict(shuffle=True)))
    return out


def make_pair(generator: str, kwargs: dict, seed: int, n: int, d_A: int):
    from shallowprobes.datasets import concept_model_pair, readout_equivalent_models

    if generator == "concept":
        return concept_model_pair(n, d_A, random_state=seed, **kwargs)
    kwargs = dict(kwargs)
    shuffle = kwargs.pop("shuffle", False)
    pair = readout_equivalent_models(n, d_A, invisible="nonlinear", random_state=seed, **kwargs)
    if shuffle:
        pair.H_B = pair.H_B[np.random.default_rng(seed + 1000).permutation(n)]
    return pair


def run_study(seeds=(0, 1, 2, 3, 4), n: int = 3000, d_A: int = 32, quick: bool = False,
              aligner_params: dict = None, log=None) -> list:  # fmt: skip
    """One record (dict) per monitor per pair: condition, the report's statistics and
    verdict, and the source / transferred AUROC computed with the labels."""
    import shallowprobes as sp

    records = []
    for family, level, generator, kwargs in conditions(quick):
        t0 = time.perf_counter()
        for seed in seeds:
            pair = make_pair(generator, kwargs, seed, n, d_A)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the NOT-portable warnings are the data here
                al = sp.QuotientAligner(**(aligner_params or {})).fit(pair.bank, pair.H_A,
                                                                      pair.H_B)  # fmt: skip
            ho = al.heldout_index_
            src, dst = al.heldout_scores_
            for j, name in enumerate(pair.bank.names):
                row = al.report_[name]
                y = pair.labels[ho, j]
                rec = dict(family=family, level=level, seed=seed, monitor=name,
                           source_auroc=mann_whitney_auroc(src[:, j], y),
                           transferred_auroc=mann_whitney_auroc(dst[:, j], y),
                           portable=row.portable, quotient_r2=al.report_.quotient_r2)  # fmt: skip
                for key in STATS:
                    rec[key] = getattr(row, key)
                    rec[key + "_interval"] = row.interval(key)
                rec["loss"] = rec["source_auroc"] - rec["transferred_auroc"]
                records.append(rec)
        if log:
            log(f"  {level:<32} {time.perf_counter() - t0:5.1f} s")
    return records


def condition_table(records: list) -> list:
    """Per condition: means of the AUROCs, the loss, the statistics and the verdicts."""
    groups = OrderedDict()
    for r in records:
        groups.setdefault((r["family"], r["level"]), []).append(r)
    rows = []
    for (family, level), rs in groups.items():
        row = dict(family=family, level=level, n=len(rs))
        for key in ("source_auroc", "transferred_auroc", "loss", *STATS):
            row[key] = float(np.nanmean([r[key] for r in rs]))
        row["max_loss"] = float(np.nanmax([r["loss"] for r in rs]))
        row["holds"] = float(np.mean([r["loss"] <= TOLERANCES[0] for r in rs]))
        row["portable"] = float(np.mean([r["portable"] for r in rs]))
        rows.append(row)
    return rows


def _spearman(a, b) -> float:
    from shallowprobes.monitors.agreement import rank_correlation

    ok = np.isfinite(a) & np.isfinite(b)
    return rank_correlation(a[ok], b[ok])


def best_threshold(stat: np.ndarray, holds: np.ndarray) -> tuple:
    """(threshold, balanced accuracy) of the rule stat >= threshold for predicting `holds`
    (NaN counts as below every threshold); ties between thresholds: the midpoint of the
    best run of candidate values."""
    stat = np.where(np.isfinite(stat), stat, -np.inf)
    cands = np.unique(stat[np.isfinite(stat)])
    scores = np.array([balanced_accuracy(stat >= t, holds) for t in cands])
    best = scores.max()
    idx = np.flatnonzero(scores >= best - 1e-12)
    # the best run is contiguous in most studies; take the middle of the first run
    run = [idx[0]]
    for i in idx[1:]:
        if i == run[-1] + 1:
            run.append(i)
        else:
            break
    lo = cands[run[0]]
    below = cands[run[0] - 1] if run[0] > 0 else lo
    return float(0.5 * (lo + below)), float(best)


def balanced_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    truth = np.asarray(truth, bool)
    pred = np.asarray(pred, bool)
    if truth.all() or (~truth).all():
        return float(np.mean(pred == truth))
    return 0.5 * (float(np.mean(pred[truth])) + float(np.mean(~pred[~truth])))


def statistic_table(records: list, defaults: dict) -> list:
    """Per statistic: Spearman with the loss, best threshold and its balanced accuracy for
    each tolerance, and the balanced accuracy of the library's default threshold."""
    loss = np.array([r["loss"] for r in records])
    rows = []
    for key in STATS:
        stat = np.array([r[key] for r in records], dtype=float)
        row = dict(statistic=key, spearman=_spearman(stat, -loss))
        for tol in TOLERANCES:
            holds = loss <= tol
            th, ba = best_threshold(stat, holds)
            row[f"threshold@{tol:g}"], row[f"ba@{tol:g}"] = th, ba
            if defaults.get(key) is not None:
                pred = np.where(np.isfinite(stat), stat, -np.inf) >= defaults[key]
                row[f"default_ba@{tol:g}"] = balanced_accuracy(pred, holds)
        rows.append(row)
    return rows


SWEEP = (0.95, 0.96, 0.97, 0.975, 0.98)


def sweep_table(records: list, key: str = "decision_auroc") -> str:
    """The rule 'statistic >= th' for candidate thresholds: balanced accuracy for each
    tolerance, share of the transfers that hold (loss <= 0.02) but are flagged, share of the
    monitors judged portable that lose more than 0.02 / 0.05, and the worst loss passed."""
    loss = np.array([r["loss"] for r in records])
    stat = np.array([r[key] for r in records], dtype=float)
    stat = np.where(np.isfinite(stat), stat, -np.inf)
    lines = [f"threshold sweep ({LABELS[key]} >= th):",
             f"  {'th':>6} {'BA 0.02':>8} {'BA 0.05':>8} {'holds, flagged':>15} "
             f"{'portable, loss>0.02':>20} {'loss>0.05':>10} {'worst loss':>10}"]  # fmt: skip
    for th in SWEEP:
        p = stat >= th
        ok = loss <= TOLERANCES[0]
        lines.append(
            f"  {th:>6.3f} {balanced_accuracy(p, ok):>8.3f} "
            f"{balanced_accuracy(p, loss <= TOLERANCES[1]):>8.3f} {np.mean(~p[ok]):>15.3f} "
            f"{np.mean(loss[p] > 0.02) if p.any() else 0.0:>20.3f} "
            f"{np.mean(loss[p] > 0.05) if p.any() else 0.0:>10.3f} "
            f"{loss[p].max() if p.any() else float('nan'):>10.3f}"
        )
    return "\n".join(lines)


def format_tables(records: list, defaults: dict) -> str:
    out = []
    cond = condition_table(records)
    width = max(len(r["level"]) for r in cond)
    out.append(f"{'family':<14} {'condition':<{width}}  {'src AUROC':>9} {'dst AUROC':>9} "
               f"{'max loss':>8} {'holds':>5}  {'dec AUROC':>9} {'agree':>6} {'rank':>6} "
               f"{'R^2':>6}  {'portable':>8}")  # fmt: skip
    for r in cond:
        out.append(
            f"{r['family']:<14} {r['level']:<{width}}  {r['source_auroc']:>9.3f} "
            f"{r['transferred_auroc']:>9.3f} {r['max_loss']:>8.3f} {r['holds']:>5.2f}  "
            f"{r['decision_auroc']:>9.3f} {r['decision_agreement']:>6.3f} "
            f"{r['rank_correlation']:>6.3f} {r['fidelity_r2']:>6.3f}  {r['portable']:>8.2f}"
        )
    out.append("")
    out.append("holds = share of monitors whose transferred AUROC is within 0.02 of the source "
               "AUROC; portable = share judged portable by the default verdict.")  # fmt: skip
    out.append("")
    stats = statistic_table(records, defaults)
    out.append(f"{'statistic':<20} {'Spearman':>8}   {'best th (0.02)':>14} {'BA':>5} "
               f"{'default BA':>10}   {'best th (0.05)':>14} {'BA':>5} "
               f"{'default BA':>10}")  # fmt: skip
    for r in stats:
        d2 = r.get("default_ba@0.02")
        d5 = r.get("default_ba@0.05")
        out.append(
            f"{LABELS[r['statistic']]:<20} {r['spearman']:>8.3f}   "
            f"{r['threshold@0.02']:>14.3f} {r['ba@0.02']:>5.3f} "
            f"{'-' if d2 is None else f'{d2:.3f}':>10}   {r['threshold@0.05']:>14.3f} "
            f"{r['ba@0.05']:>5.3f} {'-' if d5 is None else f'{d5:.3f}':>10}"
        )
    out.append("")
    out.append(sweep_table(records))
    out.append("")
    out.append("Spearman: rank correlation of the statistic with minus the AUROC loss over all "
               f"{len(records)} monitors; best th (tol): the threshold maximising the balanced "
               "accuracy (BA) of 'statistic >= th' for 'loss <= tol'; default BA: the BA of the "
               "library's default threshold (decision AUROC >= "
               f"{defaults.get('decision_auroc', float('nan')):g}) and of the old verdict (score "
               f"R^2 >= {defaults.get('fidelity_r2', float('nan')):g}).")  # fmt: skip
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, n=1500, fewer levels")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5)")
    parser.add_argument("--n", type=int, default=None, help="paired rows per pair (3000)")
    parser.add_argument("--d", type=int, default=32, help="d_A (default 32)")
    args = parser.parse_args(argv)
    from shallowprobes.monitors.transfer import DEFAULT_MIN_DECISION_AUROC

    n_seeds = args.seeds if args.seeds is not None else (1 if args.quick else 5)
    n = args.n if args.n is not None else (1500 if args.quick else 3000)
    seeds = tuple(range(n_seeds))
    print(f"calibration study: seeds {list(seeds)}, n = {n} pairs (20% held out), d_A = {args.d}"
          f"{', quick' if args.quick else ''}", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    records = run_study(seeds, n, args.d, quick=args.quick,
                        log=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
    print(f"{len(records)} monitors in {time.perf_counter() - t0:.0f} s\n")
    # the default of the new verdict, and the old one (score R^2 >= 0.9) for comparison
    print(format_tables(records, {"decision_auroc": DEFAULT_MIN_DECISION_AUROC,
                                  "fidelity_r2": 0.9}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The shallowprobes demo: `python -m shallowprobes.demo` (or `make demo`).

Fits linear probes on generated hidden-state-like activations, shows exact alpha selection
(GCV, K-fold, LOO), streaming with partial_fit, and the speed of the Rust core against the
numpy reference and, when installed, scikit-learn's RidgeCV — all on the same data. Then the
paper's degree-2 hierarchy on its synthetic tasks (XOR, circle, 3-bit parity in scrambled
coordinates): exact quadratic probes (primal and dual routes) and low-rank CP probes, their
coordinate stability, and label-free transfer of a bank of monitors from one model to another
through the probe-visible quotient.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from . import (
    CPProbeClassifier,
    LinearProbe,
    LinearProbeClassifier,
    QuadraticProbe,
    QuadraticProbeClassifier,
    get_num_threads,
    rust_available,
)
from .datasets import make_circle, make_linear_concepts, make_parity, make_xor
from .errors import GridEdgeWarning


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=None, help="rows of activations (40000)")
    parser.add_argument("--d", type=int, default=None, help="hidden width (512)")
    parser.add_argument("--concepts", type=int, default=8, help="regression targets")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (< 1 minute)")
    parser.add_argument("--out", default="demo_out", metavar="DIR",
                        help="where report.md, report.json and the figures go (demo_out)")
    parser.add_argument("--no-report", action="store_true", help="print only, write nothing")
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = 8000 if args.quick else 40000
    if args.d is None:
        args.d = 128 if args.quick else 512
    results: dict = {"quick": bool(args.quick), "n": args.n, "d": args.d}
    t_start = time.perf_counter()

    print(f"shallowprobes demo — Rust core: {rust_available()}, threads: {get_num_threads()}")
    data = make_linear_concepts(args.n, args.d, args.concepts, dtype=np.float32)
    Xtr, Xte = data.X_train, data.X_test
    print(
        f"activations: {Xtr.shape[0]} train / {Xte.shape[0]} test rows, d={args.d}, float32, "
        f"per-unit offsets up to {np.abs(Xtr[:100].mean(axis=0)).max():.0f}\n"
    )

    print("1. Linear probes for all concepts at once, alpha chosen per concept")
    for cv in ("gcv", 5):
        probe = LinearProbe(cv=cv, alpha_per_target=True)
        _, t = _timed(lambda probe=probe: probe.fit(Xtr, data.y_train))
        r2 = probe.score(Xte, data.y_test)
        print(
            f"   cv={cv!s:4}  test R^2 = {r2:.4f}   fit {t:6.2f} s   "
            f"alphas chosen: {np.array2string(np.asarray(probe.alpha_), precision=1)}"
        )

    print("\n2. Streaming: partial_fit over 10 chunks equals fit on all rows")
    stream = LinearProbe(cv=5, alpha_per_target=True)
    for chunk in np.array_split(np.arange(Xtr.shape[0]), 10):
        stream.partial_fit(Xtr[chunk], data.y_train[chunk])
    full = LinearProbe(cv=5, alpha_per_target=True).fit(Xtr, data.y_train)
    diff = np.abs(stream.coef_ - full.coef_).max() / np.abs(full.coef_).max()
    print(f"   max relative coefficient difference: {diff:.1e}")

    print("\n3. Classifier (3 classes), alpha chosen by exact LOO accuracy")
    clf = LinearProbeClassifier(cv="loo", scoring="accuracy")
    _, t = _timed(lambda: clf.fit(Xtr[:8000], data.labels_train[:8000]))
    acc = clf.score(Xte, data.labels_test)
    proba = clf.predict_proba(Xte[:1])[0]
    print(
        f"   test accuracy {acc:.3f} (chance 0.333), fit {t:.2f} s, alpha {clf.alpha_:.3g}, "
        f"P(first test row) = {np.array2string(proba, precision=3)}"
    )

    print("\n4. Same fit (GCV, 19 alphas, all concepts), same data, three implementations")
    ours, t_ours = _timed(lambda: LinearProbe(cv="gcv").fit(Xtr, data.y_train))
    ref, t_np = _timed(lambda: LinearProbe(cv="gcv", backend="numpy").fit(Xtr, data.y_train))
    agree = np.abs(ours.coef_ - ref.coef_).max() / np.abs(ref.coef_).max()
    print(f"   shallowprobes (rust) {t_ours:6.2f} s")
    print(
        f"   numpy reference      {t_np:6.2f} s   ratio {t_np / t_ours:5.2f}x   "
        f"(coefficients agree to {agree:.1e})"
    )
    try:
        from sklearn.linear_model import RidgeCV

        sk, t_sk = _timed(lambda: RidgeCV(alphas=ours.alphas_).fit(Xtr, data.y_train))
        print(
            f"   scikit-learn RidgeCV {t_sk:6.2f} s   ratio {t_sk / t_ours:5.2f}x   "
            f"(alpha {sk.alpha_:.3g} vs ours {ours.alpha_:.3g}; LOO vs GCV)"
        )
    except ImportError:
        print("   scikit-learn not installed: skipping the RidgeCV comparison")

    _degree2_demo(results, args.quick)
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    if not args.no_report:
        from .demo_report import write_report

        where = write_report(results, args.out)
        print(f"\nreport: {where}")


def _degree2_demo(results: dict, quick: bool = False) -> None:
    print("\n5. Degree 2 sees interactions (tasks in randomly scrambled coordinates, d=24)")
    print("   task      chance  linear  quadratic  CP rank 2")
    n5 = 3000 if quick else 6000
    tasks = results["tasks"] = {}
    for task in (
        make_xor(n5, 24, seed=1),
        make_circle(n5, 24, seed=1),
        make_parity(n5, 24, n_bits=3, seed=1),
    ):
        accs = []
        for probe in (
            LinearProbeClassifier(),
            QuadraticProbeClassifier(),
            CPProbeClassifier(rank=2, max_iter=200),
        ):
            with warnings.catch_warnings():  # parity: no signal, alpha at the grid's edge
                warnings.simplefilter("ignore", GridEdgeWarning)
                probe.fit(task.X_train, task.y_train)
            accs.append(probe.score(task.X_test, task.y_test))
        tasks[task.name] = {"chance": float(task.chance_accuracy), "linear": float(accs[0]),
                            "degree 2": float(accs[1]), "CP rank 2": float(accs[2])}
        print(
            f"   {task.name:9} {task.chance_accuracy:6.3f}  {accs[0]:6.3f}  {accs[1]:9.3f}  "
            f"{accs[2]:9.3f}"
        )
    print("   (3-bit parity is degree 3: beyond any degree-2 probe, as the hierarchy says)")

    d6 = 24 if quick else 48
    task = make_xor(1600 if quick else 3000, d6, seed=2)
    X, y = task.X_train, task.latent_train[:, 0] * task.latent_train[:, 1]
    p6 = d6 + d6 * (d6 + 1) // 2
    print(f"\n6. Exact degree-2 ridge at width d={d6} (p={p6} features), n={X.shape[0]}, two "
          "routes")
    with warnings.catch_warnings():  # a noiseless target: the smallest alpha wins
        warnings.simplefilter("ignore", GridEdgeWarning)
        primal, t_p = _timed(lambda: QuadraticProbe(cv="gcv", solver="primal").fit(X, y))
        dual, t_d = _timed(lambda: QuadraticProbe(cv="gcv", solver="dual").fit(X, y))
    agree = np.abs(primal.predict(task.X_test) - dual.predict(task.X_test)).max()
    scale = np.abs(dual.predict(task.X_test)).max()
    print(
        f"   primal {t_p:5.2f} s, dual {t_d:5.2f} s; predictions agree to {agree / scale:.1e}; "
        f"test R^2 {primal.score(task.X_test, task.latent_test[:, 0] * task.latent_test[:, 1]):.4f}"
    )
    try:
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import PolynomialFeatures

        sk = make_pipeline(PolynomialFeatures(2, include_bias=False), RidgeCV(primal.alphas_))
        _, t_sk = _timed(lambda: sk.fit(X - X.mean(axis=0), y))
        print(
            f"   scikit-learn PolynomialFeatures + RidgeCV (same alphas): {t_sk:5.2f} s, "
            f"ratio {t_sk / t_p:4.1f}x the primal route"
        )
    except ImportError:
        print("   scikit-learn not installed: skipping the PolynomialFeatures comparison")

    _stability_demo(results, quick)


def _stability_demo(results: dict, quick: bool = False) -> None:
    from .stability import Affine, compare_stability, format_reports

    print("\n7. Coordinate stability: refit after random invertible affine maps of h (XOR, d=8)")
    task = make_xor(2000, 8, seed=0)
    models = {
        "LinearProbeClassifier(metric='whiten')": LinearProbeClassifier(metric="whiten"),
        "LinearProbeClassifier(metric='euclidean')": LinearProbeClassifier(),
        "QuadraticProbeClassifier(metric='whiten')": QuadraticProbeClassifier(metric="whiten"),
        "QuadraticProbeClassifier(metric='euclidean')": QuadraticProbeClassifier(),
    }
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        models["StandardScaler+LogisticRegression"] = make_pipeline(
            StandardScaler(), LogisticRegression()
        )
    except ImportError:
        pass
    reports = compare_stability(models, task.X_train, task.y_train, Affine(), n_draws=3)
    print("   " + format_reports(reports).replace("\n", "\n   "))
    results["stability_reports"] = reports  # the figure draws them; report.json their numbers
    results["stability"] = [
        {"estimator": r.estimator, "group": r.group, "condition": float(r.condition),
         "n_draws": int(r.n_draws), "max_change": float(r.max_change),
         "median_change": float(r.median_change),
         "per_draw_change": [float(v) for v in r.per_draw_change],
         "label_change_rate": None if r.label_change_rate is None else float(r.label_change_rate),
         "alpha_max_change": None if r.alpha_max_change is None else float(r.alpha_max_change),
         "stable": bool(r.is_stable())}
        for r in reports
    ]  # fmt: skip
    _transfer_demo(results, quick)


def _auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC by midranks (ties count one half)."""
    labels = np.asarray(labels).astype(bool)
    order = np.argsort(scores, kind="mergesort")
    s = np.asarray(scores)[order]
    ranks = np.empty(s.size)
    i = 0
    while i < s.size:  # midranks of tied runs
        j = i
        while j + 1 < s.size and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n1 = labels.sum()
    n0 = labels.size - n1
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _transfer_curve(results: dict, bank, pair, pool, test, quick: bool) -> None:
    from . import transfer

    n_pairs = (100, 300, 1000) if quick else (100, 200, 400, 1000, 3000)
    methods = {"quotient": "quotient", "full": "full state", "pca": "top-r PCA"}
    Y = pair.labels[test]
    src = bank.decision_function(pair.H_A[test])
    curve: dict = {"n_pairs": list(n_pairs), "n_test": int(test.size),
                   "source_auroc": float(np.mean([_auroc(src[:, j], Y[:, j])
                                                  for j in range(len(bank))]))}  # fmt: skip
    print(f"\n   AUROC on B ({test.size} held-out texts, true labels, mean over monitors) "
          f"against the number of unlabeled pairs; source monitors on A: "
          f"{curve['source_auroc']:.3f}")
    print("   pairs  " + "  ".join(f"{m:>10}" for m in methods.values()))
    for label in methods.values():
        curve[label] = []
    for n in n_pairs:
        line = []
        for target, label in methods.items():
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*NOT portable")
                moved = transfer(bank, pair.H_A[pool[:n]], pair.H_B[pool[:n]], target=target,
                                 unportable="mark")  # fmt: skip
            s = moved.decision_function(pair.H_B[test])
            auc = float(np.mean([_auroc(s[:, j], Y[:, j]) for j in range(len(bank))]))
            curve[label].append(auc)
            line.append(auc)
        print(f"   {n:5d}  " + "  ".join(f"{v:10.3f}" for v in line))
    results["transfer_curve"] = curve


def _transfer_demo(results: dict, quick: bool = False) -> None:
    import tempfile

    from . import ProbeBank, compare_transfer, transfer
    from .datasets import readout_equivalent_models

    print("\n8. Monitor transfer from model A to model B, no labels on B")
    pair = readout_equivalent_models(
        8000, 64, n_linear=3, n_quadratic=1, n_nuisance=16, noise=0.05,
        invisible="nonlinear", visible_variance="low", random_state=0,
    )  # fmt: skip
    print(
        "   B = affine map of A on the 5 directions A's monitors read (+5% noise), a non-linear\n"
        "   scramble of A's 59 other directions, and 16 extra units; the monitors live in A's\n"
        "   low-variance directions."
    )
    # monitors fitted with labels on model A (first 3000 rows); the rest are unlabeled pairs
    fit_rows, pairs = np.arange(3000), np.arange(3000, 8000)
    if quick:
        fit_rows, pairs = np.arange(2000), np.arange(2000, 8000)
    HA = pair.H_A[fit_rows]
    bank = ProbeBank(metadata={"model": "A"})
    for j, name in enumerate(pair.bank.names):
        # whiten: the XOR signal lives in low-variance directions a Euclidean penalty crushes
        probe = (
            CPProbeClassifier(rank=1, metric="whiten")
            if name.startswith("xor")
            else LinearProbeClassifier()
        )
        bank.add(name, probe.fit(HA, pair.labels[fit_rows, j]))
    moved = transfer(bank, pair.H_A[pairs], pair.H_B[pairs], unportable="mark")
    q = moved.report.rank
    print(f"   bank: {len(bank)} fitted monitors (3 linear, 1 CP rank-1) -> quotient rank {q}")
    print("   " + str(moved.report).replace("\n", "\n   "))
    cmp = compare_transfer(
        bank, pair.H_A[pairs], pair.H_B[pairs], pair.labels[pairs], n_labels=(32, 512)
    )
    print("   " + str(cmp).replace("\n", "\n   "))
    with tempfile.TemporaryDirectory() as tmp:
        moved.save(tmp)
        again = ProbeBank.load(tmp)
        same = np.array_equal(
            again.decision_function(pair.H_B[:100]), moved.decision_function(pair.H_B[:100])
        )
    print(f"   saved and reloaded (JSON + .npz, no pickle): identical scores = {same}")
    results["transfer_report"] = moved.report
    results["transfer"] = {
        "rank": int(q),
        "report": moved.report.to_dict(),
        "comparison": {m: {k: cmp.mean(m, k) for k in ("decision_auroc", "auroc")}
                       for m in dict.fromkeys(r["method"] for r in cmp.rows)},
    }  # fmt: skip
    # paired samples: the last 2000 rows are the test texts, the curve draws pairs from the rest
    test = np.arange(6000, 8000)
    _transfer_curve(results, bank, pair, np.arange(fit_rows.size, 6000), test, quick)


if __name__ == "__main__":
    main()

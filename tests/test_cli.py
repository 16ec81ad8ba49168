"""The command line (`python -m shallowprobes ...`): every subcommand end to end in a
subprocess on small generated data, its tables compared with in-process fits by the public
estimators on the same arrays, its figures decoded; bad arguments give one line on stderr."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import shallowprobes as sp
from shallowprobes import cli

mpl_image = pytest.importorskip("matplotlib.image")

N, D = 360, 6


def run_cli(*args, cwd=None):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "shallowprobes", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def png_shape(path):
    return mpl_image.imread(str(path)).shape[:2]


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("shallowprobes: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A cache of 3 layers (one float64 .npy per layer) and targets in .npy / .csv files."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(N, 3))
    layers = {}
    (root / "cache").mkdir()
    for i in range(3):
        H = Z @ rng.normal(size=(3, D)) * (1 + i) + 0.6 * rng.normal(size=(N, D)) + 2.0
        layers[f"layer_{i}"] = H
        np.save(root / "cache" / f"layer_{i}.npy", H)
    sign = (Z[:, 0] > 0).astype(np.int64)
    xor = (Z[:, 1] * Z[:, 2] > 0).astype(np.int64)
    value = Z[:, 1] + 0.3 * Z[:, 0] ** 2 + 0.1 * rng.normal(size=N)
    import pandas as pd

    pd.DataFrame({"sign": sign, "value": value}).to_csv(root / "targets.csv", index=False)
    np.save(root / "labels.npy", np.c_[sign, xor])
    np.save(root / "short.npy", sign[:-7])
    return {"root": root, "layers": layers, "sign": sign, "xor": xor, "value": value}


def reference_probe(degree, task, X, y, cv, metric="euclidean"):
    cls = {(1, "classification"): sp.LinearProbeClassifier, (1, "regression"): sp.LinearProbe,
           (2, "classification"): sp.QuadraticProbeClassifier,
           (2, "regression"): sp.QuadraticProbe}[(degree, task)]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(cv=cv, metric=metric).fit(X, y)


@pytest.mark.slow
def test_help_in_subprocess():
    out = run_cli("--help")
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout.startswith("usage: shallowprobes")
    for command in ("fit", "sweep", "collect", "transfer", "demo", "bench"):
        assert command in out.stdout


def test_help_everywhere(capsys):
    for command in ("fit", "sweep", "collect", "transfer", "demo", "bench"):
        assert cli.main([command, "--help"]) == 0
        got = capsys.readouterr()
        assert got.out.startswith(f"usage: shallowprobes {command}"), got.out
        assert got.err == ""


@pytest.mark.slow
def test_sweep_matches_per_probe_fits(data, tmp_path):
    out = run_cli("sweep", data["root"] / "cache", data["root"] / "targets.csv", "--layers",
                  "layer_0", "layer_2", "--degrees", "1", "2", "--cv", "5", "--quiet", "--out",
                  tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    for name in ("results.csv", "results.json", "layers.png", "degree_gap.png"):
        assert (tmp_path / name).is_file(), name
    assert png_shape(tmp_path / "layers.png") == (450, 800)
    assert png_shape(tmp_path / "degree_gap.png") == (450, 800)
    rows = read_csv(tmp_path / "results.csv")
    assert len(rows) == 2 * 2 * 2  # layers x degrees x targets
    assert json.loads((tmp_path / "results.json").read_text())[0]["layer"] == rows[0]["layer"]
    tasks = {"sign": "classification", "value": "regression"}
    for r in rows:
        X = data["layers"][r["layer"]]
        ref = reference_probe(int(r["degree"]), tasks[r["target"]], X, data[r["target"]], 5)
        assert r["task"] == tasks[r["target"]]
        assert float(r["alpha"]) == pytest.approx(ref.alpha_, rel=1e-9)
        assert float(r["cv_score"]) == pytest.approx(ref.best_score_, rel=1e-9)
    # the kept degree is the better CV score of the two
    for layer in ("layer_0", "layer_2"):
        for target in tasks:
            pair = {int(r["degree"]): r for r in rows
                    if (r["layer"], r["target"]) == (layer, target)}  # fmt: skip
            best = max(pair, key=lambda d: float(pair[d]["cv_score"]))
            assert pair[best]["selected"] == "True" and pair[3 - best]["selected"] == "False"
    # the saved bank of a layer holds the selected probe of each target
    bank = sp.ProbeBank.load(tmp_path / "banks" / "layer_0")
    assert sorted(bank.names) == ["sign", "value"]


@pytest.mark.slow
def test_fit_matches_in_process_probe(data, tmp_path):
    out = run_cli("fit", data["root"] / "cache", data["root"] / "labels.npy", "--layer",
                  "layer_1", "--degree", "2", "--cv", "5", "--metric", "whiten", "--split",
                  "0.25", "--out", tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "t0" in out.stdout and "t1" in out.stdout  # the score table
    rows = {r["target"]: r for r in read_csv(tmp_path / "scores.csv")}
    assert sorted(rows) == ["t0", "t1"]
    X = data["layers"]["layer_1"]
    n_train = N - 90
    bank = sp.ProbeBank.load(tmp_path / "bank")
    for name, y in (("t0", data["sign"]), ("t1", data["xor"])):
        ref = reference_probe(2, "classification", X[:n_train], y[:n_train], 5, "whiten")
        r = rows[name]
        assert r["task"] == "classification" and int(r["n_train"]) == n_train
        assert float(r["alpha"]) == pytest.approx(ref.alpha_, rel=1e-9)
        assert float(r["cv_score"]) == pytest.approx(ref.best_score_, rel=1e-9)
        test_acc = np.mean(ref.predict(X[n_train:]) == y[n_train:])
        assert float(r["test_score"]) == pytest.approx(test_acc, abs=1e-12)
        np.testing.assert_allclose(bank.decision_function(X[:50], names=[name])[:, 0],
                                   ref.decision_function(X[:50]), rtol=1e-9, atol=1e-9)
    # XOR of two latents: degree 2 sees it, a linear probe does not
    linear = reference_probe(1, "classification", X[:n_train], data["xor"][:n_train], 5)
    linear_acc = np.mean(linear.predict(X[n_train:]) == data["xor"][n_train:])
    assert float(rows["t1"]["test_score"]) > linear_acc + 0.15
    assert png_shape(tmp_path / "alpha.png") == (450, 800)
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert [s["target"] for s in saved] == ["t0", "t1"]


def test_fit_regression_from_csv_in_process(data, tmp_path, capsys):
    status = cli.main(["fit", str(data["root"] / "cache"), str(data["root"] / "targets.csv"),
                       "--layer", "layer_0", "--cv", "gcv", "--out", str(tmp_path)])  # fmt: skip
    assert status == 0
    rows = {r["target"]: r for r in read_csv(tmp_path / "scores.csv")}
    assert rows["sign"]["task"] == "classification" and rows["value"]["task"] == "regression"
    ref = reference_probe(1, "regression", data["layers"]["layer_0"], data["value"], "gcv")
    assert float(rows["value"]["cv_score"]) == pytest.approx(ref.best_score_, rel=1e-9)


def test_parquet_targets(data, tmp_path):
    pytest.importorskip("pyarrow")
    import pandas as pd

    pd.DataFrame({"sign": data["sign"]}).to_parquet(tmp_path / "t.parquet")
    targets = cli.load_targets(str(tmp_path / "t.parquet"))
    np.testing.assert_array_equal(targets["sign"], data["sign"])
    assert cli.task_of(targets["sign"]) == "classification"


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    from shallowprobes.datasets import readout_equivalent_models

    root = tmp_path_factory.mktemp("pairs")
    pair = readout_equivalent_models(1600, 10, n_linear=2, n_quadratic=0, noise=0.05,
                                     random_state=1)  # fmt: skip
    bank = sp.ProbeBank(metadata={"model": "A"})
    for j, name in enumerate(pair.bank.names):
        bank.add(name, sp.LinearProbeClassifier().fit(pair.H_A[:600], pair.labels[:600, j]))
    bank.save(root / "bank")
    HA, HB = pair.H_A[600:], pair.H_B[600:]
    np.save(root / "A.npy", HA)
    np.save(root / "B.npy", HB)
    np.save(root / "B_short.npy", HB[:-5])
    return {"root": root, "bank": bank, "HA": HA, "HB": HB}


@pytest.mark.slow
def test_transfer_matches_in_process(paired, tmp_path):
    root = paired["root"]
    out = run_cli("transfer", root / "bank", root / "A.npy", root / "B.npy", "--out", tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Coverage report" in out.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sp.transfer(paired["bank"], paired["HA"], paired["HB"], holdout=0.2,
                          unportable="mark", random_state=0)  # fmt: skip
    rows = read_csv(tmp_path / "transfer_report.csv")
    assert [r["name"] for r in rows] == ref.report.names
    for r, want in zip(rows, ref.report.rows):
        assert float(r["decision_auroc"]) == pytest.approx(want.decision_auroc, rel=1e-9)
        assert float(r["fidelity_r2"]) == pytest.approx(want.fidelity_r2, rel=1e-9)
        assert r["portable"] == str(want.portable)
    full = json.loads((tmp_path / "transfer_report.json").read_text())
    assert full["rank"] == ref.report.rank
    moved = sp.ProbeBank.load(tmp_path / "bank")
    np.testing.assert_allclose(moved.decision_function(paired["HB"][:40]),
                               ref.decision_function(paired["HB"][:40]), rtol=1e-9, atol=1e-9)
    assert png_shape(tmp_path / "coverage.png") == (450, 900)


# ------------------------------------------------------------------------ argument errors
def _error_cases(data, paired, tmp):
    r, p = data["root"], paired["root"]
    corrupt = tmp / "corrupt_cache"
    corrupt.mkdir(exist_ok=True)
    np.save(corrupt / "layer_0.npy", data["layers"]["layer_0"])
    (corrupt / "layer_1.npy").write_bytes(b"\x93NUMPY garbage, not an array")
    (tmp / "bad.npy").write_bytes(b"not a numpy file at all")
    (tmp / "texts.csv").write_text("a\n")
    return {
        "unknown layer": (["fit", r / "cache", r / "labels.npy", "--layer", "layer_9"], 2,
                          "unknown layer 'layer_9'"),
        "missing cache": (["sweep", tmp / "nope", r / "labels.npy"], 2, "no such file"),
        "missing targets": (["fit", r / "cache", tmp / "nope.npy", "--layer", "layer_0"], 2,
                            "no such file"),
        "wrong degree": (["fit", r / "cache", r / "labels.npy", "--degree", "3"], 2,
                         "invalid choice: 3"),
        "wrong sweep degree": (["sweep", r / "cache", r / "labels.npy", "--degrees", "1", "4"],
                               2, "invalid choice: 4"),
        "mismatched rows": (["sweep", r / "cache", r / "short.npy"], 2, f"{N - 7} rows"),
        "corrupt npy in cache": (["sweep", corrupt, r / "labels.npy"], 2, "layer_1"),
        "corrupt targets": (["fit", r / "cache", tmp / "bad.npy", "--layer", "layer_0"], 2,
                            "bad.npy"),
        "bad cv": (["fit", r / "cache", r / "labels.npy", "--cv", "abc"], 2, "--cv"),
        "bad split": (["sweep", r / "cache", r / "labels.npy", "--split", "1.5"], 2, "--split"),
        "no command": (["frobnicate"], 2, "invalid choice"),
        "collect: missing TEXTS": (["collect", r, tmp / "texts.txt"], 2, "TEXTS"),
        "collect: wrong TEXTS type": (["collect", r, tmp / "texts.csv"], 2, ".jsonl"),
        "collect: missing MODEL": (["collect", tmp / "no_model", tmp / "texts.csv"], 2, "MODEL"),
        "collect: bad batch size": (["collect", r, tmp / "texts.csv", "--batch-size", "0"], 2,
                                    "--batch-size"),
        "transfer: mismatched pairs": (["transfer", p / "bank", p / "A.npy", p / "B_short.npy"],
                                       2, "PAIRED_B has"),
        "transfer: not a bank": (["transfer", r / "cache", p / "A.npy", p / "B.npy"], 2, "BANK"),
        "bench: no benches": (["bench", "--benches", tmp], 1, "benches"),
        "negative alpha": (["fit", r / "cache", r / "labels.npy", "--alphas", "1", "-2"], 2,
                           "--alphas"),
        "bad gamma": (["sweep", r / "cache", r / "labels.npy", "--gamma", "big"], 2, "--gamma"),
        "gamma at degree 1": (["fit", r / "cache", r / "labels.npy", "--layer", "layer_0",
                               "--gamma", "0.5"], 2, "--degree 2"),
        "gamma scale and numbers": (["sweep", r / "cache", r / "labels.npy", "--gamma", "scale",
                                     "2"], 2, "scale"),
        "bad precision": (["sweep", r / "cache", r / "labels.npy", "--precision", "half"], 2,
                          "--precision"),
    }


def _with_out(args, tmp):
    if args[0] in ("fit", "sweep", "collect", "transfer") and "--help" not in args:
        return [*args, "--out", tmp / "out"]
    return args


def test_argument_errors_in_process(data, paired, tmp_path, capsys):
    for label, (args, status, needle) in _error_cases(data, paired, tmp_path).items():
        got = cli.main([str(a) for a in _with_out(args, tmp_path)])
        err = capsys.readouterr().err
        assert got == status, (label, err)
        line = one_error_line(err)
        assert needle in line, (label, line)
    # both row counts are named
    cli.main(["sweep", str(data["root"] / "cache"), str(data["root"] / "short.npy"), "--out",
              str(tmp_path / "o")])  # fmt: skip
    line = one_error_line(capsys.readouterr().err)
    assert f"{N - 7} rows" in line and f"{N} rows" in line


@pytest.mark.slow
@pytest.mark.parametrize("label", ["corrupt npy in cache"])
def test_argument_errors_in_subprocess(data, paired, tmp_path, label):
    args, status, needle = _error_cases(data, paired, tmp_path)[label]
    out = run_cli(*_with_out(args, tmp_path))
    assert out.returncode == status
    assert needle in one_error_line(out.stderr)
    assert out.stdout == ""


def test_debug_shows_the_traceback(data, tmp_path, capsys):
    status = cli.main(["--debug", "fit", str(data["root"] / "cache"),
                       str(data["root"] / "labels.npy"), "--layer", "nope", "--out",
                       str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" in err and err.strip().endswith("['layer_0', 'layer_1', "
                                                                       "'layer_2']")


def test_collect_without_the_collect_module(data, tmp_path, capsys, monkeypatch):
    """Valid arguments: delegates to shallowprobes.collect; when that cannot be imported, one
    line and exit 1."""
    (tmp_path / "texts.txt").write_text("hello\nworld\n")
    monkeypatch.setitem(sys.modules, "shallowprobes.collect", None)
    status = cli.main(["collect", str(data["root"]), str(tmp_path / "texts.txt"), "--out",
                       str(tmp_path / "cache")])  # fmt: skip
    assert status == 1
    assert "collect is not available" in one_error_line(capsys.readouterr().err)


def test_collect_passes_the_documented_arguments(data, tmp_path, capsys, monkeypatch):
    import types

    calls = []
    fake = types.ModuleType("shallowprobes.collect")
    fake.collect_activations = lambda model, texts, **kw: calls.append((model, texts, kw))
    monkeypatch.setitem(sys.modules, "shallowprobes.collect", fake)
    (tmp_path / "t.jsonl").write_text('{"text": "a"}\n')
    status = cli.main(["collect", str(data["root"]), str(tmp_path / "t.jsonl"), "--layers", "0",
                       "2", "--pool", "last", "--batch-size", "4", "--max-length", "32",
                       "--out", str(tmp_path / "c")])  # fmt: skip
    assert status == 0
    assert calls == [(str(data["root"]), str(tmp_path / "t.jsonl"), {
        "layers": [0, 2], "pool": "last", "out": str(tmp_path / "c"), "batch_size": 4,
        "max_length": 32, "device": "cpu", "dtype": None, "resume": True, "progress": True})]


def test_demo_real_without_case_study(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "shallowprobes.case_study", None)
    assert cli.main(["demo", "--real"]) == 1
    assert "case_study" in one_error_line(capsys.readouterr().err)


def test_demo_real_passes_its_options(tmp_path, capsys, monkeypatch):
    import types

    calls = []
    fake = types.ModuleType("shallowprobes.case_study")
    fake.main = lambda argv=None: calls.append(argv) or {"done": True}
    monkeypatch.setitem(sys.modules, "shallowprobes.case_study", fake)
    assert cli.main(["demo", "--real", "--out", str(tmp_path), "--", "--n-articles", "50"]) == 0
    assert calls == [["--out", str(tmp_path), "--n-articles", "50"]]
    assert cli.main(["demo", "--real", "--quick"]) == 2  # the case study has its own sizes
    assert "--quick" in one_error_line(capsys.readouterr().err)
    assert cli.main(["demo", "--n-articles", "50"]) == 2  # extra options only with --real
    assert "unrecognized" in one_error_line(capsys.readouterr().err)


@pytest.mark.slow
def test_bench_runs_the_scripts_with_quick(tmp_path, capfd):
    benches = tmp_path / "benches"
    benches.mkdir()
    (benches / "bench_fake.py").write_text(
        "import argparse\n"
        "p = argparse.ArgumentParser(); p.add_argument(\"--quick\", action=\"store_true\")\n"
        "a = p.parse_args()\n"
        "print('ratio table: quick' if a.quick else 'ratio table: full')\n"
    )
    out = run_cli("bench", "--quick", "--benches", benches)
    assert out.returncode == 0, out.stderr
    assert "ratio table: quick" in out.stdout
    (benches / "bench_broken.py").write_text("raise SystemExit(3)\n")
    assert cli.main(["bench", "--benches", str(benches)]) == 1
    got = capfd.readouterr()
    assert "ratio table: full" in got.out  # without --quick the script runs as it is
    assert "bench_broken.py" in one_error_line(got.err)


def test_bench_finds_the_checkout(tmp_path, monkeypatch):
    from shallowprobes.cli import commands

    checkout = Path(__file__).resolve().parents[1] / "benches"
    assert commands._find_benches(None) == checkout  # from the checkout's root
    monkeypatch.chdir(tmp_path)  # elsewhere: found next to the package source
    where = commands._find_benches(None)
    assert where == checkout and (where / "bench_linear.py").is_file()


# the suite ignores GridEdgeWarning (pyproject.toml); a user's shell does not
@pytest.mark.filterwarnings("default::shallowprobes.errors.GridEdgeWarning")
def test_warnings_are_one_line_on_stderr(monkeypatch, capsys):
    """A warning raised inside a command reaches the user as one 'shallowprobes: warning:'
    line (no file name or source line), and the command still succeeds."""
    import warnings

    from shallowprobes.errors import GridEdgeWarning

    def noisy(args):
        warnings.warn("the alpha chosen is the\nsmallest value of the grid", GridEdgeWarning,
                      stacklevel=2)  # fmt: skip
        return 0

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    sub.choices["fit"].set_defaults(func=noisy)
    status = cli.main(["fit", "cache", "targets.npy", "--out", "out"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 0
    assert err == ["shallowprobes: warning: the alpha chosen is the smallest value of the grid"]


def test_grid_and_precision_options_reach_the_probes(data, tmp_path):
    import warnings
    from contextlib import nullcontext

    from shallowprobes.errors import GridEdgeWarning

    """--alphas / --gamma / --precision give what the same arguments give in process."""
    r = data["root"]
    alphas = [0.1, 1.0, 10.0, 100.0]
    got = cli.main(["sweep", str(r / "cache"), str(r / "targets.csv"), "--layers", "layer_1",
                    "--degrees", "1", "2", "--cv", "4", "--alphas", *map(str, alphas),
                    "--gamma", "0.01", "0.1", "--precision", "float64", "--quiet", "--out",
                    str(tmp_path / "s")])  # fmt: skip
    assert got == 0
    rows = {(int(x["degree"]), x["target"]): x for x in read_csv(tmp_path / "s" / "results.csv")}
    X = data["layers"]["layer_1"]
    classes = {(1, "sign"): sp.LinearProbeClassifier, (1, "value"): sp.LinearProbe,
               (2, "sign"): sp.QuadraticProbeClassifier, (2, "value"): sp.QuadraticProbe}
    assert sorted(rows) == sorted(classes)
    for (degree, target), row in rows.items():
        cls = classes[(degree, target)]
        kw = {"gamma": [0.01, 0.1], "solver": "primal"} if degree == 2 else {}
        with pytest.warns(GridEdgeWarning) if row["at_grid_edge"] else nullcontext():
            ref = cls(cv=4, alphas=alphas, **kw).fit(X, data[target])
        assert float(row["alpha"]) in alphas
        assert float(row["alpha"]) == pytest.approx(ref.alpha_, rel=1e-12)
        assert float(row["cv_score"]) == pytest.approx(ref.best_score_, rel=1e-9)
        if degree == 2:
            assert float(row["gamma"]) == pytest.approx(ref.gamma_, rel=1e-12)
    got = cli.main(["fit", str(r / "cache"), str(r / "labels.npy"), "--layer", "layer_0",
                    "--degree", "2", "--cv", "4", "--gamma", "scale", "--alphas", "1", "10",
                    "--out", str(tmp_path / "f")])  # fmt: skip
    assert got == 0
    fitted = {x["target"]: x for x in read_csv(tmp_path / "f" / "scores.csv")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GridEdgeWarning)
        ref = sp.QuadraticProbeClassifier(cv=4, gamma="scale", alphas=[1.0, 10.0]).fit(
            data["layers"]["layer_0"], data["xor"])
    # fit's at_grid_edge follows the probe's own rule (an improving edge), as sweep's does
    warned = any(issubclass(w.category, GridEdgeWarning) for w in caught)
    assert bool(fitted["t1"]["at_grid_edge"]) == warned
    assert fitted["t1"]["at_grid_edge"] in ("", "alpha low", "alpha high")
    assert float(fitted["t1"]["alpha"]) == pytest.approx(ref.alpha_, rel=1e-12)

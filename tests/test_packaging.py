"""Packaging, as a user meets it: `pip wheel .` on a copy of the checkout runs the build backend
(build_backend/shallowprobes_build.py, maturin behind it) and gives one abi3 wheel with the
package, the compiled core, its stub and the console script, and leaves no cargo `target/`
in the source folder; that wheel installs and works outside the checkout; the sdist holds
everything a build needs; the `shallowprobes` command of the development install works.

The wheel is a release build from scratch (a few minutes on two cores), made once per module.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ("fit", "sweep", "collect", "transfer", "demo", "bench")
BUILD_TIMEOUT = 3600  # seconds; a cold release build on a small shared CI machine


def checkout_files() -> list[str]:
    """The checkout's files as pip sees them in a source folder: tracked and untracked ones,
    without git-ignored build outputs (target/, compiled modules, caches)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], cwd=ROOT, capture_output=True,
                             check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"test_packaging copies the checkout's files with `git ls-files`; {ROOT} "
                    f"must be a git checkout with git on PATH ({exc})")  # fmt: skip
    names = [n for n in out.decode().split("\0") if n]
    return [n for n in names if (ROOT / n).is_file()]  # tracked but deleted: not there


def copy_checkout(dest: Path) -> Path:
    for name in checkout_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    return dest


def build_env(tmp: Path) -> dict[str, str]:
    """The environment of a build: no CARGO_TARGET_DIR (so the backend picks its own
    temporary build folder, the case under test) and a private TMPDIR to check it is gone."""
    env = dict(os.environ)
    env.pop("CARGO_TARGET_DIR", None)
    env["TMPDIR"] = str(tmp)
    return env


def leftover_targets(tmp: Path) -> list[str]:
    return [p.name for p in tmp.glob("shallowprobes-cargo-target-*")]


def needs_build_tools() -> None:
    if importlib.util.find_spec("maturin") is None:
        pytest.skip("maturin is not installed in this environment (pip install 'maturin>=1.5,<2'"
                    "; the wheel is built with --no-build-isolation)")  # fmt: skip
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not on PATH (a Rust toolchain is needed to build the wheel)")


def tail(text: str, n: int = 60) -> str:
    return "\n".join(text.splitlines()[-n:])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`python -m pip wheel . --no-deps --no-build-isolation -w OUT` in a copy of the
    checkout, as a user would run it in theirs."""
    needs_build_tools()
    root = tmp_path_factory.mktemp("packaging")
    src = copy_checkout(root / "src")
    out, tmp = root / "wheels", root / "tmp"
    out.mkdir()
    tmp.mkdir()
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps",
                           "--no-build-isolation", "-w", str(out)], cwd=src,
                          env=build_env(tmp), capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT)  # fmt: skip
    return {"root": root, "src": src, "out": out, "tmp": tmp, "proc": proc}


@pytest.fixture(scope="module")
def wheel(built) -> Path:
    proc = built["proc"]
    assert proc.returncode == 0, f"pip wheel failed:\n{tail(proc.stdout)}\n{tail(proc.stderr)}"
    wheels = sorted(built["out"].glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_build_leaves_no_target_folder(built, wheel):
    assert not (built["src"] / "target").exists(), "the build wrote target/ into the sources"
    assert leftover_targets(built["tmp"]) == [], "the temporary cargo target was not removed"
    assert sorted(os.listdir(built["out"])) == [wheel.name]


def test_wheel_is_abi3(wheel):
    # {name}-{version}-{python tag}-{abi tag}-{platform tag}.whl
    m = re.fullmatch(r"shallowprobes-([^-]+)-(cp39)-(abi3)-([A-Za-z0-9_.]+)\.whl", wheel.name)
    assert m, f"not a cp39-abi3 wheel: {wheel.name}"
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(f"shallowprobes-{m.group(1)}.dist-info/WHEEL").decode()
    assert f"Tag: cp39-abi3-{m.group(4)}" in meta.splitlines(), meta
    assert "Root-Is-Purelib: false" in meta


def test_wheel_contents(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = configparser.ConfigParser()
        scripts.read_string(zf.read(entry_points).decode())
    package = ROOT / "python" / "shallowprobes"
    expected = {f"shallowprobes/{p.relative_to(package).as_posix()}"
                for p in package.rglob("*") if p.suffix in (".py", ".pyi", ".typed")
                and "__pycache__" not in p.parts}  # fmt: skip
    assert {"shallowprobes/__init__.py", "shallowprobes/_core.pyi"} <= expected
    assert expected <= names, sorted(expected - names)
    core = [n for n in names if re.fullmatch(r"shallowprobes/_core(\.abi3\.so|\.pyd)", n)]
    assert len(core) == 1, sorted(n for n in names if "_core" in n)
    # the package and its metadata only (no tests/, benches/, rust/ ...)
    assert {n.split("/")[0] for n in names} == {"shallowprobes", entry_points.split("/")[0]}
    assert dict(scripts["console_scripts"]) == {"shallowprobes": "shallowprobes.cli:main"}


def run_outside(code: str, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site)  # ahead of site-packages (and a dev install's .pth)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


FIT = """
import sys
import numpy as np
import shallowprobes, shallowprobes._core
print(shallowprobes.__file__)
print(shallowprobes._core.__file__)
rng = np.random.default_rng(0)
X = rng.normal(size=(60, 7)) * rng.uniform(0.5, 3.0, size=7) + 1.5
y = X @ rng.normal(size=7) + 0.3 * rng.normal(size=60)
assert shallowprobes.rust_available()
probe = shallowprobes.LinearProbe(alphas=[1.0], backend="rust").fit(X, y)
Xc, yc = X - X.mean(0), y - y.mean()
coef = np.linalg.solve(Xc.T @ Xc + np.eye(7), Xc.T @ yc)
np.testing.assert_allclose(probe.coef_, coef, rtol=1e-10, atol=1e-12)
np.testing.assert_allclose(probe.intercept_, y.mean() - X.mean(0) @ coef, rtol=1e-10,
                           atol=1e-12)
print("ok")
"""


def test_installed_wheel_works_outside_the_checkout(built, wheel):
    site = built["root"] / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                           "--target", str(site), str(wheel)], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    elsewhere = built["root"] / "elsewhere"  # not the checkout, nor its copy
    elsewhere.mkdir()
    got = run_outside(FIT, site, elsewhere)
    assert got.returncode == 0, got.stdout + got.stderr
    module, core, ok = got.stdout.split()
    assert Path(module).resolve().is_relative_to(site.resolve()), module
    assert Path(core).resolve().is_relative_to(site.resolve()), core
    assert ok == "ok"
    # the wheel's console script (pip --target puts it in DIR/bin, DIR/Scripts on Windows)
    script = shutil.which("shallowprobes", path=os.pathsep.join([str(site / "bin"),
                                                                 str(site / "Scripts")]))
    assert script is not None, sorted(os.listdir(site))
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([script, "--help"], cwd=elsewhere, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: shallowprobes")


def test_sdist_holds_what_a_build_needs(tmp_path):
    """The sdist hook (what `python -m build` runs first; the wheel is then built from the
    unpacked sdist) in a copy of the checkout: it leaves no target/ either, and the archive
    has the backend, the manifests and every Rust and Python source file."""
    needs_build_tools()
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    src = copy_checkout(tmp_path / "src")
    (tmp_path / "sdist").mkdir()
    (tmp_path / "tmp").mkdir()
    with open(src / "pyproject.toml", "rb") as fh:
        system = tomllib.load(fh)["build-system"]
    hook = ("import sys\n"
            "sys.path[:0] = sys.argv[3].split('|')\n"
            "backend = __import__(sys.argv[2])\n"
            "print(backend.build_sdist(sys.argv[1]))\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", hook, str(tmp_path / "sdist"),
                           system["build-backend"], "|".join(system.get("backend-path", []))],
                          cwd=src, env=build_env(tmp_path / "tmp"), capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (src / "target").exists()
    assert leftover_targets(tmp_path / "tmp") == []
    archive = tmp_path / "sdist" / proc.stdout.strip().splitlines()[-1]
    with tarfile.open(archive) as tf:
        top, *_ = tf.getnames()[0].split("/")
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    needed = {"pyproject.toml", "Cargo.toml", "Cargo.lock", "README.md", "PKG-INFO"}
    needed |= {f"{p}/{m}" for p in system.get("backend-path", [])
               for m in os.listdir(src / p) if m.endswith(".py")}  # fmt: skip
    needed |= {n for n in checkout_files() if n.startswith(("rust/", "python/"))}
    assert "build_backend/shallowprobes_build.py" in needed
    assert needed <= names, sorted(needed - names)
    assert not [n for n in names if n.startswith("target/") or n.endswith((".so", ".pyd"))]
    assert top.startswith("shallowprobes-")


def test_console_script_of_this_environment():
    """The `shallowprobes` command next to this interpreter (installed by `make build`, i.e.
    maturin develop, or by pip): --help names the subcommands; a usage error is one line on
    stderr and exit status 2."""
    script = shutil.which("shallowprobes", path=os.path.dirname(sys.executable))
    if script is None:
        message = (f"no shallowprobes script next to {sys.executable}: the package is not "
                   "installed in this environment (make build / pip install .)")  # fmt: skip
        if os.environ.get("SHALLOWPROBES_REQUIRE_RUST") == "1":  # make test: it is installed
            pytest.fail(message)
        pytest.skip(message)
    out = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert out.stdout.startswith("usage: shallowprobes")
    for command in SUBCOMMANDS:
        assert re.search(rf"^\s+{command}\s", out.stdout, re.M), (command, out.stdout)

    bad = subprocess.run([script, "fit"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2, (bad.returncode, bad.stderr)
    assert bad.stdout == ""
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, bad.stderr
    assert lines[0].startswith("shallowprobes: error: ") and "required" in lines[0], lines[0]
    assert "CACHE" in lines[0] and "TARGETS" in lines[0]


# ------------------------------------------------- the Makefile's installs and pyproject's extras
def _make_installs(stamp: str) -> set:
    """The quoted requirements of the Makefile recipe that makes `stamp`."""
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(" + re.escape(stamp) + r"\):.*?\n((?:\t.*\n)+)", text, re.M)
    assert recipe is not None, f"no recipe for $({stamp}) in the Makefile"
    return set(re.findall(r'"([^"]+)"', recipe.group(1)))


def _extras() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (CI's); the Makefile is the same
    with open(ROOT / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)["project"]
    return {"base": project["dependencies"], **project["optional-dependencies"]}


def test_make_test_installs_exactly_the_declared_extras():
    # The two-command set-up lists its packages in the Makefile (pip cannot install an extra
    # without building the package); they must not drift from the extras users install.
    extras = _extras()
    made = _make_installs("DEMO_STAMP") | _make_installs("TEST_STAMP")
    declared = set().union(*(extras[e] for e in extras if e != "bench"))
    undeclared = made - declared - set(extras["bench"])  # psutil: the benches' memory column
    assert not undeclared and declared <= made, (
        f"make test installs but no extra declares: {sorted(undeclared)}; "
        f"declared but not installed by make test: {sorted(declared - made)}"
    )
    # the benchmarks' peers: what the bench extra adds to the test set-up
    assert _make_installs("BENCH_STAMP") == set(extras["bench"]) - made

"""Ctrl-C and allocation failure, each in a subprocess.

SIGINT: for every fitting route, a child process starts a fit that takes several seconds, the
parent sends SIGINT one second in, and the child must raise KeyboardInterrupt within 1 s of
the signal (times on the shared monotonic clock), leave the estimator (or statistics) exactly
as it was before the call, and then exit. The routes whose cost is one pass over the rows size
their data from this machine's measured Gram rate, so that on a fast CI machine the call still
outlasts the signal (fixed sizes finished in under a second there and the child exited on the
signal instead of catching it).

Allocation failure: under RLIMIT_AS, requests the Rust core cannot allocate become MemoryError
(the library's CoreMemoryError), never an abort of the interpreter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent(
    r"""
    import json, sys, time
    import numpy as np
    import shallowprobes as sp

    route = sys.argv[1]
    rng = np.random.default_rng(0)

    def data(n, d, k=2, dtype=np.float32):
        X = rng.standard_normal((n, d), dtype=np.float32).astype(dtype, copy=False)
        Y = rng.standard_normal((n, k))
        return X, Y

    def gram_rows(d, seconds=8.0, lo=40000, hi=120000):
        # rows of width d that one statistics pass takes `seconds` to read on this machine
        # (measured, after a first pass that starts the thread pools), within [lo, hi]
        Xb, Yb = data(4000, d)
        sp.SufficientStats().update(Xb, Yb)
        start = time.monotonic()
        sp.SufficientStats().update(Xb, Yb)
        rate = 4000 / max(time.monotonic() - start, 1e-6)
        return int(min(max(seconds * rate, lo), hi))

    def state_of(obj):
        if isinstance(obj, sp.SufficientStats):
            return [a.copy() for a in (obj.count, obj.sum_x, obj.xtx, obj.xty)]
        # what the estimator computes, on fixed rows: any change of state shows here
        return [np.asarray(obj.predict(probe_rows)), obj.n_features_in_]

    def same(a, b):
        if len(a) != len(b):
            return False
        return all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(a, b))

    if route == "linear-dual":
        X, Y = data(4000, 6000)  # fewer rows than features: the n x n kernel, its eigh (~10 s)
        obj = sp.LinearProbe(cv="loo").fit(X[:300], Y[:300])
        call = lambda: obj.fit(X, Y)
    elif route.startswith("linear"):
        cv = {"linear-gcv": "gcv", "linear-loo": "loo", "linear-kfold": 5}[route]
        X, Y = data(gram_rows(1536), 1536)
        obj = sp.LinearProbe(cv=cv).fit(X[:3000], Y[:3000])
        call = lambda: obj.fit(X, Y)
    elif route == "partial-fit":
        X, Y = data(gram_rows(1536), 1536)
        obj = sp.LinearProbe().partial_fit(X[:3000], Y[:3000])
        obj.coef_
        call = lambda: obj.partial_fit(X, Y)
    elif route == "stats-update":
        X, Y = data(gram_rows(1536), 1536)
        obj = sp.SufficientStats(n_folds=3).update(X[:3000], Y[:3000])
        call = lambda: obj.update(X, Y)
    elif route == "lazy-solve":
        X, Y = data(3000, 3300)  # one eigh of order 3300: ~4.5 s here
        obj = sp.LinearProbe().fit(X[:200, :], Y[:200])
        fresh = sp.LinearProbe().partial_fit(X, Y)  # statistics only; coef_ solves (eigh)
        obj = fresh
        before_cache = obj._solution_cache
        call = lambda: obj.coef_
    elif route == "quadratic-primal":
        X, Y = data(20000, 64)
        obj = sp.QuadraticProbe(solver="primal").fit(X[:2000], Y[:2000])
        call = lambda: obj.fit(X, Y)
    elif route == "quadratic-dual":
        X, Y = data(4500, 32)
        obj = sp.QuadraticProbe(solver="dual").fit(X[:500], Y[:500])
        call = lambda: obj.fit(X, Y)
    elif route == "cp":
        X, Y = data(40000, 64, k=1)
        obj = sp.CPProbe(rank=4, max_iter=2, random_state=0).fit(X[:500], Y[:500, 0])
        obj.set_params(max_iter=400, tol=1e-300)
        call = lambda: obj.fit(X, Y[:, 0])
    elif route == "torch":
        X, Y = data(gram_rows(1536), 1536)
        obj = sp.LinearProbe(backend="torch", cv=5).fit(X[:3000], Y[:3000])
        call = lambda: obj.fit(X, Y)
    else:
        raise SystemExit("unknown route " + route)

    probe_rows = np.asarray(X[:64], dtype=np.float64)
    if route == "lazy-solve":
        before = None
    else:
        before = state_of(obj)
    print("READY", flush=True)
    try:
        call()
    except KeyboardInterrupt:
        caught = time.monotonic()
        if route == "lazy-solve":
            unchanged = obj._solution_cache is before_cache
        else:
            unchanged = same(before, state_of(obj))
        print(json.dumps({"caught": caught, "unchanged": unchanged}), flush=True)
    else:
        print(json.dumps({"finished": time.monotonic()}), flush=True)
    """
)

ROUTES = [
    "linear-gcv",
    "linear-loo",
    "linear-kfold",
    "linear-dual",
    "partial-fit",
    "stats-update",
    "lazy-solve",
    "quadratic-primal",
    "quadratic-dual",
    "cp",
]
try:
    import torch  # noqa: F401

    ROUTES.append("torch")
except ImportError:  # pragma: no cover
    pass


@pytest.mark.parametrize("route", ROUTES)
def test_sigint_stops_every_route_within_a_second(route, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, str(script), route],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "READY", (line, proc.stderr.read() if proc.poll() else "")
        time.sleep(1.0)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = out.strip().splitlines()
    # a call that ended before the signal leaves the child to die of it (rc -2): say so
    finished = bool(lines) and "finished" in lines[-1]
    assert not finished, f"the {route} call finished before the signal: make it longer"
    assert proc.returncode == 0, (proc.returncode, out, err)
    result = json.loads(lines[-1])
    assert "caught" in result, (out, err)
    delay = result["caught"] - sent
    assert delay < 1.0, f"{route}: KeyboardInterrupt {delay:.2f} s after SIGINT"
    assert result["unchanged"], f"{route}: the interrupted call changed the estimator"


ALLOC_CHILD = textwrap.dedent(
    r"""
    import resource, sys
    import numpy as np
    from shallowprobes import _core
    from shallowprobes.errors import CoreMemoryError

    def vm_bytes():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024

    # inputs first, then a limit 600 MiB above what is mapped now
    rng = np.random.default_rng(0)
    d = 6000
    gram = np.eye(d)                       # 288 MB: its eigendecomposition needs ~3x more
    cxy = rng.standard_normal((d, 1))
    n, k, n_alphas = 1000, 100, 3000       # LOO output: 2.4 GB
    X = rng.standard_normal((n, 4))
    V, lam, B = np.eye(4), np.ones(4), rng.standard_normal((4, k))
    Y = rng.standard_normal((n, k))
    alphas = np.linspace(0.1, 10, n_alphas)
    _core.get_num_threads()                # start the pool before the limit
    limit = vm_bytes() + (600 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    results = []
    for name, call in [
        ("spectrum", lambda: _core.spectrum(gram, cxy)),
        ("loo", lambda: _core.loo_predictions(X, np.zeros(4), V, lam, B, Y, np.zeros(k),
                                              alphas, float(n), True)),
    ]:
        try:
            call()
            results.append(name + ":ok")
        except CoreMemoryError as exc:
            assert isinstance(exc, MemoryError)
            assert "GiB" in str(exc), str(exc)
            results.append(name + ":MemoryError")
    print(" ".join(results), flush=True)
    """
)


def test_allocation_failure_in_the_core_is_a_memory_error(tmp_path):
    script = tmp_path / "alloc.py"
    script.write_text(ALLOC_CHILD)
    env = {k: v for k, v in os.environ.items() if "NUM_THREADS" not in k}
    env["SHALLOWPROBES_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, f"child died (rc={proc.returncode}): {proc.stderr[-2000:]}"
    assert proc.stdout.split() == ["spectrum:MemoryError", "loo:MemoryError"], proc.stdout

"""The exact degree-2 probe's memory model and route choice: upper bounds of the peak memory of
the primal route (p x p statistics) and the dual route (n x n kernel), and the decision of
solver="auto" between them under memory_limit.

Apart from `probes.quadratic` because none of it needs an estimator: it works from the sizes
(n, d, p) and the few settings that change the peak (folds, gammas, core threads, cv), which the
estimator reads off its parameters and passes in.

The estimates, in bytes (what memory_limit is compared with), bound the peak RSS increase
measured in fresh processes (data allocated first; Linux, glibc): 1.0x-1.6x of it (mostly
1.05x-1.3x) for p ~ 1000-3000 / n ~ 1000-3500, cv gcv / loo / K-fold (batched and one fold at a
time), 1-10 gammas, alpha_per_target either way, 1-8 core threads (tests/test_memory_limit.py);
the dual route's band GCV (`solve.dual.KernelSolve`) has its own, smaller estimate.
The terms count float64 arrays in units of p x p (primal) or n x n (dual). Below glibc's
largest mmap threshold (32 MiB) such blocks come from the heap, and freed ones stay resident
(in the main thread's arena and the core threads') and are only partly reused: the "heap"
allowances. Not counted: a few MiB of fixed overhead (interpreter, thread stacks), which
exceeds the estimate's slack only for tiny problems (p, n below ~1000); the (alphas, n, k)
decision values of LOO / K-fold on the primal route (it gets no n: small next to p x p unless
n >~ p^2/40) and the target count k (taken as 1: the dual route's Q is k d x d).
"""

from __future__ import annotations

import numbers
from typing import Any, Optional

import numpy as np

from . import features
from .degree2 import format_bytes, physical_memory
from .paths import BATCH_ENTRIES

SOLVERS = ("auto", "primal", "dual")


def memory_limit_bytes(memory_limit: Any) -> float:
    """The bytes a solve may use: memory_limit, or half the physical memory when None."""
    if memory_limit is None:
        return 0.5 * physical_memory()
    lim = memory_limit
    if isinstance(lim, bool) or not isinstance(lim, numbers.Real) or not float(lim) > 0:
        raise ValueError(f"memory_limit must be a positive number of bytes, got {lim!r}.")
    return float(lim)


def eigensolver_threads(backend: str) -> int:
    """How many eigendecompositions the Rust core runs at once for this backend (1 without it)."""
    if backend in ("auto", "rust"):
        from ..backends import rust_core
        from ..threads import get_num_threads

        return max(1, int(get_num_threads())) if rust_core is not None else 1
    return 1


def bytes_primal(p: int, n_folds: int, n_gammas: int, n_threads: int, loo: bool) -> float:
    """Peak memory of the primal route with p features (see the module docstring).

    n_folds: K (1 for gcv / loo); n_gammas: G; n_threads: T, the eigendecompositions in
    flight at once; loo: whether cv is "loo" (row blocks of features after the solve)."""
    K, G, T = n_folds, n_gammas, n_threads
    pp = float(p) * float(p)
    # live at the peak: the statistics (K), their re-centred copy (K), the per-gamma copy
    # when several gammas are tried (K), the normal equations of all rows (1)
    live = K * (2 + (G > 1)) + 1
    if K == 1:
        # one eigendecomposition: the core's copy of the Gram and its workspace (~3, a
        # little more with threads), the eigenvectors (1) and their numpy copy (1)
        solve = 5.0 + 0.08 * min(T, 16)
    elif (K + 1) * pp <= BATCH_ENTRIES:
        # decomposed together (paths.kfold_paths; the Rust core's tridiagonal reductions hold
        # less: the stack and K + 1 reductions, twice while copied out): the K fold normal
        # equations, their stack with the full one (K + 1), the K + 1 eigenvector matrices,
        # then either min(T, K + 1) workspaces in flight (~2.9 each) or the copy out to numpy
        # (K + 1, + 1 staging); B, the per-fold copies for the coefficient paths and such (+1.5)
        solve = K + 2 * (K + 1) + max(2.9 * min(T, K + 1), K + 2) + 1.5
    else:
        # one at a time: the fold normal equations (K), the eigenvectors so far (K + 1),
        # one decomposition in flight (~4), B and such (+1.5)
        solve = K + (K + 1) + 4.0 + 1.5
    units = live + solve
    if loo:
        # after the solve: the eigenvectors (1), the core's copy of them (1), +1.5, and
        # the row blocks of features (the Python block of the feature map, the core's
        # centred copy, its projection on V and the square: <= 2^22 entries each), plus
        # up to 2.5 more such blocks that the core threads' heaps may still hold, depending
        # on how the threads' work interleaves (measured at p = 2079, 2 threads: the same
        # fit peaked at 11.3, 12.3, 12.9 or 13.8 units from one fresh process to the next)
        step = (1 << 22) // max(p, 1)
        rows = min(8192, max(16, step)) + 5.5 * min(4096, max(256, step))
        units = max(units, live + 3.5 + rows * p / pp)
    if 8.0 * pp < 32 * 2**20:  # heap: freed p x p blocks stay resident (see above)
        units += 1.0 + 0.4 * solve + (1.0 + 0.25 * min(T, 8)) * min(G - 1, 5)
        if 8.0 * pp <= 16 * 2**20:  # several blocks per 64 MiB thread heap: more kept
            units += 0.4 * (live + K)
    return 8.0 * pp * units * 1.05  # 5% margin


def bytes_dual(
    n: int, d: int, n_gammas: int, n_threads: int, euclidean: bool, heldout_alphas: int,
    band: bool = False,
) -> float:  # fmt: skip
    """Peak memory of the dual route with n rows of d inputs (see the module docstring).

    euclidean: whether the metric is the default one (another keeps a second copy of the rows);
    heldout_alphas: the alphas whose held-out predictions LOO / K-fold keep (0 for gcv);
    band: whether the fit takes the band GCV route (`solve.dual.KernelSolve`), which reduces
    the kernel in its own array instead of decomposing it."""
    T = n_threads
    nn = float(n) * float(n)
    several = n_gammas > 1
    rows = float(n) * d * (1 + (not euclidean))
    if band:
        # the kernel, reduced in place (1); with several gammas the row Gram and the best
        # gamma's reduction so far (2); nothing n x n after the reduction (the dual
        # coefficients are n x k, the polynomial d x d). Beyond those, the peak grows with n,
        # by about 1250 doubles per row with 2 core threads, 2200 with several gammas, and
        # some 250 more per row for each further thread (the reduction's b = 64 column
        # temporaries, the band factors, the heap they leave in each thread's arena;
        # measured, not itemised), taken as 1100 + 250 T (+ 800) here, ramped down below n
        # = 500, where those temporaries are a few hundred KiB and the fixed overhead the
        # estimates leave out dominates. Measured (peak RSS): 2.46, 2.53, 1.78, 1.41, 1.21,
        # 1.13 units at n = 500, 1000, 1500, 3000, 6000, 10000 with one gamma; 5.84, 3.86,
        # 3.42, 3.28 at n = 800, 2000, 4000, 6000 with three (2 threads); 1.33 / 1.91 units
        # at n = 3000 with 1 / 8 threads, 3.22 / 3.53 at n = 6000 with three gammas. Not
        # covered: the rare fallback to the eigendecomposition after a failed band Cholesky
        # (K's round-off eigenvalues below -alpha: tiny explicit alphas), which needs the
        # terms of that route below.
        per_row = (1100.0 + 250.0 * max(T, 1) + 800.0 * several) * min(1.0, n / 500.0)
        eig_doubles = (1.0 + 2.0 * several) * nn + float(n) * per_row
        tail_doubles = 0.0
    else:
        # at the eigendecomposition: the kernel (1); with several gammas the row Gram and the
        # best gamma's eigenvectors so far (2); the eigenvectors (1) and their numpy copy (1);
        # the core's copy and workspace (~3, a little more with threads). Then the centred rows
        # (n d; twice with a metric). CV scoring (K-fold blocks (n/K) x n, LOO row blocks) needs
        # less than this. (+0.6 for n >= 2048: the gamma search state, which the heap terms
        # below cover for smaller n)
        eig = 3.0 + 0.6 * (n >= 2048) + 2.0 * several + 2.9 + 0.05 * min(T, 8)
        # building the polynomial: the eigenvectors (1), the row Gram (1; the kernel itself
        # with one gamma)
        tail = 2.0
        if n < 2048:  # heap: freed n x n blocks stay resident (see the module docstring)
            eig += 0.9 + (1.5 + 2.0 * (n <= 1448)) * several
            tail += 1.5 + 2.5 * several + (n <= 1448)
        eig_doubles, tail_doubles = eig * nn, tail * nn
    # the polynomial (both routes): the centred rows and a scaled copy (2 n d), Q and two
    # d x d temporaries (3 d^2, per target: here one)
    peak = max(eig_doubles + rows, tail_doubles + 2.0 * n * d + 3.0 * float(d) * d)
    if heldout_alphas:  # held-out predictions (alphas, n) and a temporary
        peak += 2.0 * heldout_alphas * n
    return 8.0 * peak * 1.05  # 5% margin


def choose_route(
    solver: str,
    n: Optional[int],
    d: int,
    primal: float,
    dual: Optional[float],
    limit: float,
    owner: str,
) -> str:
    """"primal" or "dual" for `solver` given each route's estimate (dual: None without n, as
    in partial_fit); MemoryError naming the numbers and the options when neither fits."""
    p = features.n_features(d)
    if solver == "primal" or (solver == "auto" and n is None):
        return "primal"
    if solver == "dual":
        return "dual"
    assert n is not None and dual is not None
    if p <= n and primal <= limit:
        return "primal"
    if dual <= limit:
        return "dual"
    if primal <= limit:
        return "primal"
    raise MemoryError(
        f"{owner}: d={d} inputs give p={p:,} degree-2 features; the primal "
        f"route needs about {format_bytes(primal)} (p x p Gram and eigenvectors) and the "
        f"dual route with n={n:,} rows about {format_bytes(dual)} (n x n kernel), both over "
        f"memory_limit={format_bytes(limit)}. Options: CPProbe(rank=R) (low-rank degree-2 "
        f"probe, memory O(n R d)); fewer rows for the dual route (n <= "
        f"{int(np.sqrt(limit / 70.0)):,} fits); fewer inputs (e.g. PCA of h) for the "
        "primal route; or a larger memory_limit if the machine has it."
    )


def check_streaming_fits(owner: str, d: int, p: int, need: float, limit: float) -> None:
    """MemoryError from partial_fit when the primal statistics of d inputs do not fit."""
    if need > limit:
        raise MemoryError(
            f"{owner}.partial_fit: d={d} gives p={p:,} degree-2 "
            f"features whose statistics need about {format_bytes(need)}, over "
            f"memory_limit={format_bytes(limit)}. Use fit() with the dual route "
            "(n x n kernel), CPProbe, or fewer inputs."
        )

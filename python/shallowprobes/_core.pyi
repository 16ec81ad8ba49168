"""Typed stub of the compiled Rust extension `shallowprobes._core` (rust/bindings/).

Every function releases the GIL while it computes. Arrays are float64 unless noted; X may be
float32 or float64 in any layout whose byte strides are whole elements (the Python adapter,
`shallowprobes.backends.rust_kernels`, copies other layouts). `cancel`, where accepted, is a uint8
array whose first byte another thread may set to 1 to stop the call at its next check
(KeyboardInterrupt is raised then).

Errors: NonFiniteError for NaN/inf in X, CoreMemoryError (a MemoryError) when an allocation
fails, KeyboardInterrupt when cancelled, ValueError for inconsistent shapes, TypeError for an
unsupported dtype, RuntimeError when a decomposition does not converge.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Floats = npt.NDArray[np.floating]
Flag = Optional[npt.NDArray[np.uint8]]

def finite_max_abs(
    x: Floats | npt.NDArray[np.uint16], cancel: Flag = None, raw: Optional[str] = None
) -> Optional[float]:
    """max |x| when every entry of the 2-D array x is finite, else None. raw="bfloat16" or
    "float16": x is a uint16 array of those bit patterns."""

def all_finite(x: Floats) -> bool:
    """Whether every entry of the 2-D array x is finite."""

def accumulate(
    x: Floats | npt.NDArray[np.uint16],
    y: F64,
    fold_ids: Optional[npt.NDArray[np.int64]],
    shift_x: F64,
    shift_y: F64,
    count: F64,
    sum_x: F64,
    sum_y: F64,
    xtx: F64,
    xty: F64,
    yty: F64,
    cancel: Flag = None,
    precision: str = "float64",
    raw: Optional[str] = None,
) -> float:
    """Add the statistics of (x - shift_x, y - shift_y) into the per-fold accumulators
    count (K,), sum_x (K, d), sum_y (K, k), xtx (K, d, d), xty (K, d, k), yty (K, k, k),
    in place (C-contiguous), and return the largest |x_ij| read (0.0 for no rows), found
    while staging, so the caller's magnitude check needs no pass of its own. Earlier blocks
    may have been added when it raises.
    precision: "float64" (exact) or "float32" (block Grams by float32 GEMM, accumulated in
    float64; error bound in docs/design.md §8). raw: None, or "bfloat16"/"float16" for a
    uint16 x of those bit patterns (decoded per block in the core)."""

def accumulate_quadratic(
    x: Floats,
    y: F64,
    fold_ids: Optional[npt.NDArray[np.int64]],
    shift_in: F64,
    shift_x: F64,
    shift_y: F64,
    count: F64,
    sum_x: F64,
    sum_y: F64,
    xtx: F64,
    xty: F64,
    yty: F64,
    cancel: Flag = None,
) -> None:
    """As `accumulate`, for the degree-2 features phi(x - shift_in) - shift_x
    (p = d + d(d+1)/2 features)."""

def expand_quadratic(
    x: Floats, shift_in: F64, quad_scale: float, cancel: Flag = None
) -> F64:
    """The (n, p) degree-2 features of the rows of x about shift_in, quadratic block scaled
    by quad_scale."""

def spectrum(gram: F64, cxy: F64, cancel: Flag = None) -> tuple[F64, F64, F64]:
    """(lam ascending with round-off clamped to 0, V, B = V^T cxy) of a symmetric Gram."""

def spectra(grams: F64, cxys: F64, cancel: Flag = None) -> tuple[F64, F64, F64]:
    """`spectrum` of a stack (K, d, d) / (K, d, k), in parallel over K: (K, d), (K, d, d),
    (K, d, k)."""

def ridge_path(
    lam: F64,
    v: F64,
    b: F64,
    perp: F64,
    alphas: F64,
    with_coefs: bool = True,
    cancel: Flag = None,
) -> tuple[Optional[F64], F64, F64]:
    """(coefficients (A, d, k) or None, RSS (A, k), dof (A,)) for every alpha."""

def heldout_sse(
    xtx: F64,
    xty: F64,
    yty_diag: F64,
    sum_x: F64,
    sum_y: F64,
    n: float,
    coefs: F64,
    offsets: F64,
) -> F64:
    """Sum of squared errors (A, k) of models (coefs (A, d, k), offsets (A, k)) on rows known
    through their shifted statistics."""

def tridiagonalize(grams: F64, cancel: Flag = None) -> tuple[F64, F64, list[bool]]:
    """Householder reductions G = Q T Q^T of a stack of Grams (K, d, d), one sequential
    reduction per thread: (packed (K, d, d): T on the diagonal and subdiagonal, Q's vectors
    below; factors (K, b, d - 1): Q's block factors; usable: per Gram, whether no eigenvalue
    lies at or below the spectrum's round-off clamp, a Sturm count on T). Both arrays are
    column-major within each matrix (views of the core's buffers, not C-contiguous)."""

def tridiagonal_ridge_paths(
    packed: F64, factors: F64, cxys: F64, alphas: F64, cancel: Flag = None
) -> F64:
    """Coefficients (K, A, d, k) of (G_i + alpha I)^-1 cxy_i for every alpha (each > 0) from
    the reductions of `tridiagonalize` (read in place, any layout), one path per thread:
    Q^T cxy, one LDL^T solve of T + alpha I per alpha, Q applied once to all alphas."""

def tridiagonal_gcv(
    packed: F64, factors: F64, cxy: F64, alphas: F64, cancel: Flag = None
) -> tuple[F64, F64]:
    """(explained (k,), rss (A, k)) of one reduction (packed (d, d), factors (b, d - 1)) of
    `tridiagonalize`: per target c^T G^-1 c, and per alpha (each > 0) the residual sum of
    squares inside the span of X, (alpha u)^T T^-1 (alpha u), u = (T + alpha I)^-1 Q^T c. Raises
    ValueError for a reduction whose Gram has round-off eigenvalues (not `usable`)."""

def tridiagonal_eigenvalues(packed: F64, factors: F64, cancel: Flag = None) -> F64:
    """Eigenvalues (d,), ascending, of one reduction's Gram from its tridiagonal T alone
    (implicit QL with Wilkinson's shift, no eigenvectors)."""

def band_reduce(kernel: F64, bandwidth: int, cancel: Flag = None) -> F64:
    """Reduces the symmetric kernel (n, n; float64, writable, lower triangle read) IN PLACE to
    K = Q B Q^T, B of half-bandwidth b = `bandwidth` (>= 1): panel QRs and two-sided rank-2b
    updates. Returns Q's block factors (b, max(n - b, 0)); the kernel array then holds B in
    its lower band and Q's reflectors below it."""

def band_gcv(
    reduced: F64, factors: F64, y: F64, alphas: F64, cancel: Flag = None
) -> tuple[F64, F64]:
    """(rss (A, k), resid (A,)) of a `band_reduce` reduction along alphas (each > 0, one per
    thread): alpha^2 ||(K + alpha I)^-1 y_t||^2 and alpha tr((K + alpha I)^-1), from a band
    Cholesky, two band solves and the Takahashi recurrences per alpha. Raises
    numpy.linalg.LinAlgError where B + alpha I is not positive definite."""

def band_expand(reduced: F64, factors: F64, cancel: Flag = None) -> F64:
    """The kernel (n, n), Q B Q^T, back from a `band_reduce` reduction (symmetric; two
    applications of Q to the dense band, the cost of the reduction)."""

def band_solve(reduced: F64, factors: F64, y: F64, alphas: F64, cancel: Flag = None) -> F64:
    """The dual coefficients (n, k), (K + alphas[t] I)^-1 y_t, from a `band_reduce` reduction
    (alphas: (k,), each > 0)."""

def loo_predictions(
    x: Floats,
    x_mean: F64,
    v: F64,
    lam: F64,
    b: F64,
    y: F64,
    y_mean: F64,
    alphas: F64,
    n_total: float,
    fit_intercept: bool,
    cancel: Flag = None,
) -> F64:
    """Exact leave-one-out predictions (A, n, k) for the rows x with targets y."""

def loo_sse(
    x: Floats,
    x_mean: F64,
    v: F64,
    lam: F64,
    b: F64,
    y: F64,
    y_mean: F64,
    alphas: F64,
    n_total: float,
    fit_intercept: bool,
    cancel: Flag = None,
) -> F64:
    """Sums (A, k) of squared leave-one-out errors of the rows x, fused into the LOO pass
    (no (A, n, k) predictions are formed; NaN where a leverage reaches 1)."""

def project_rows(
    x: Floats | npt.NDArray[np.uint16],
    centre: F64,
    m: F64,
    out: Optional[F64] = None,
    cancel: Flag = None,
    raw: Optional[str] = None,
) -> F64:
    """(x - centre) @ m as an (n, r) float64 array: x (n, d), centre (d,), m (d, r). Written
    into `out` (a C-contiguous (n, r) float64 array, returned) when given, else into a new
    array. In float64 whatever x's dtype, in fixed row blocks in parallel (the same bits for
    any thread count). raw: as in `accumulate` (x uint16 bit patterns). NaN and infinity in x
    are not checked: they propagate to their rows' outputs, as in the numpy expression."""

def evaluate_polynomials(
    x: Floats | npt.NDArray[np.uint16],
    weights: F64,
    constants: F64,
    linear_columns: npt.NDArray[np.int64],
    centres: F64,
    linears: F64,
    intercepts: F64,
    quadratics: list[F64],
    quadratic_columns: npt.NDArray[np.int64],
    out: Optional[F64] = None,
    cancel: Flag = None,
    raw: Optional[str] = None,
) -> F64:
    """(n, m) float64 scores of a bank of m polynomial monitors on the rows of x (n, d), into
    `out` (C-contiguous (n, m), returned) when given. Degree-1 members: weights (d, k),
    constants (k,), scores x @ weights + constants in columns linear_columns (k,). Degree-2
    members j < q: (x - centres[j]) @ Q_j @ (x - centres[j]) + linears[j] @ (x - centres[j]) +
    intercepts[j] with Q_j = quadratics[j] (d, d, exactly symmetric: ValueError otherwise; the
    core reads its upper triangle, a triangular product of half the flops of a full one), in
    column quadratic_columns[j]; centres and linears (q, d) C-contiguous. The columns together
    must be 0..m, each once. Members with bit-identical centres share one shifted block. raw,
    NaN and thread counts as in `project_rows`."""

def set_num_threads(n: int) -> None:
    """Use n threads in the core (0 = the default from the environment)."""

def get_num_threads() -> int:
    """Threads the core uses."""

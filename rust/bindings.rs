//! PyO3 bindings: the only place that knows about Python. Arrays cross without copies where
//! the core reads them (X is read in place when its strides are whole elements and it is
//! aligned; the Python adapter copies other layouts block by block), long computations release
//! the GIL and watch an optional cancel flag, and every failure becomes a Python exception
//! (converted in one place, [`core_err`]) rather than a panic or an abort.

use crate::error::{try_zeros, CoreError};
use crate::quadratic;
use crate::ridge::{self, FoldStats, LooModel, Spectrum};
use crate::stats::{self, StatsMut};
use crate::threads;
use faer::{Mat, MatRef};
use numpy::{
    PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyReadonlyArray3, PyReadwriteArray1, PyReadwriteArray2, PyReadwriteArray3,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{
    PyKeyboardInterrupt, PyMemoryError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use std::sync::atomic::AtomicU8;

fn value_err(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// Whether the core can read `a` in place: aligned, and every byte stride a whole number of
/// elements (numpy views of structured arrays can have strides such as 18 bytes for float32,
/// which an element-strided view would silently misread). Byte order is checked by the dtype
/// extraction itself (only native float32/float64 arrays are accepted).
fn check_layout<T: numpy::Element, D: numpy::ndarray::Dimension>(
    a: &numpy::PyReadonlyArray<'_, T, D>,
    what: &str,
) -> PyResult<()> {
    let item = std::mem::size_of::<T>() as isize;
    let aligned = (a.data() as usize) % std::mem::align_of::<T>() == 0;
    if !aligned || a.strides().iter().any(|s| s % item != 0) {
        return Err(value_err(format!(
            "{what} is unaligned or has byte strides {:?} that are not multiples of its {item}-byte \
             items; pass np.ascontiguousarray({what}) (the Python layer does this automatically)",
            a.strides()
        )));
    }
    Ok(())
}

/// A faer view of a 2-D numpy array with its own strides (any layout, including negative),
/// after [`check_layout`].
fn view<'a, T: numpy::Element>(a: &'a PyReadonlyArray2<'_, T>) -> PyResult<MatRef<'a, T>> {
    check_layout(a, "array")?;
    let v = a.as_array();
    let (r, c) = v.dim();
    let s = v.strides();
    // SAFETY: the pointer and strides describe the live numpy buffer borrowed by `a`, and
    // check_layout ensured the element strides are exact.
    Ok(unsafe { MatRef::from_raw_parts(v.as_ptr(), r, c, s[0], s[1]) })
}

fn slice_of<'a, T: numpy::Element>(
    a: &'a PyReadonlyArray1<'_, T>,
    what: &str,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| value_err(format!("{what} must be contiguous")))
}

/// A row-major copy of m, allocated fallibly.
fn row_major_vec(m: MatRef<'_, f64>, what: &str) -> PyResult<Vec<f64>> {
    let (r, c) = (m.nrows(), m.ncols());
    let mut data = try_zeros(r * c, what).map_err(core_err)?;
    for i in 0..r {
        for j in 0..c {
            data[i * c + j] = m[(i, j)];
        }
    }
    Ok(data)
}

fn to_numpy2<'py>(py: Python<'py>, m: MatRef<'_, f64>) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let data = row_major_vec(m, "an output matrix")?;
    PyArray1::from_vec(py, data).reshape([m.nrows(), m.ncols()])
}

fn rows_to_numpy2<'py>(
    py: Python<'py>,
    rows: &[Vec<f64>],
    ncols: usize,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let data: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    PyArray1::from_vec(py, data).reshape([rows.len(), ncols])
}

fn owned_mat(m: MatRef<'_, f64>) -> Mat<f64> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)])
}

enum FloatMatrix<'py> {
    F32(PyReadonlyArray2<'py, f32>),
    F64(PyReadonlyArray2<'py, f64>),
}

fn float_matrix<'py>(x: &Bound<'py, PyAny>, what: &str) -> PyResult<FloatMatrix<'py>> {
    if let Ok(a) = x.extract::<PyReadonlyArray2<'py, f64>>() {
        return Ok(FloatMatrix::F64(a));
    }
    if let Ok(a) = x.extract::<PyReadonlyArray2<'py, f32>>() {
        return Ok(FloatMatrix::F32(a));
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be a 2-D float32 or float64 numpy array"
    )))
}

/// Runs `$body` with `$xm` bound to a faer view of `$x`, whichever float dtype it holds.
macro_rules! with_float_view {
    ($x:expr, |$xm:ident| $body:expr) => {
        match float_matrix($x, "X")? {
            FloatMatrix::F64(a) => {
                let $xm = view(&a)?;
                $body
            }
            FloatMatrix::F32(a) => {
                let $xm = view(&a)?;
                $body
            }
        }
    };
}

/// How the core reads a uint16 X (`raw=`): as bfloat16 or float16 bit patterns.
#[derive(Clone, Copy)]
enum RawHalf {
    Bf16,
    F16,
}

fn raw_half(raw: Option<&str>) -> PyResult<Option<RawHalf>> {
    match raw {
        None => Ok(None),
        Some("bfloat16") => Ok(Some(RawHalf::Bf16)),
        Some("float16") => Ok(Some(RawHalf::F16)),
        Some(other) => Err(value_err(format!(
            "raw must be None, 'bfloat16' or 'float16', got {other:?}"
        ))),
    }
}

fn precision_of(precision: &str) -> PyResult<stats::Precision> {
    match precision {
        "float64" => Ok(stats::Precision::F64),
        "float32" => Ok(stats::Precision::F32),
        other => Err(value_err(format!(
            "precision must be 'float64' or 'float32', got {other:?}"
        ))),
    }
}

/// A faer view of 16-bit patterns as one of the half-precision element types.
fn half_view<'a, H: stats::Element>(a: &'a PyReadonlyArray2<'_, u16>) -> PyResult<MatRef<'a, H>> {
    const { assert!(std::mem::size_of::<H>() == 2 && std::mem::align_of::<H>() == 2) };
    let v = view(a)?;
    // SAFETY: H is a #[repr(transparent)] wrapper of u16 (checked above: same size and
    // alignment), so the same pointer and element strides describe the same buffer.
    Ok(unsafe {
        MatRef::from_raw_parts(
            v.as_ptr() as *const H,
            v.nrows(),
            v.ncols(),
            v.row_stride(),
            v.col_stride(),
        )
    })
}

fn half_matrix<'py>(x: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArray2<'py, u16>> {
    x.extract::<PyReadonlyArray2<'py, u16>>().map_err(|_| {
        PyTypeError::new_err(
            "with raw='bfloat16' or 'float16', X must be a 2-D uint16 numpy array of bit \
             patterns (e.g. a float16 array's .view(np.uint16))",
        )
    })
}

/// Runs `$body` with `$xm` bound to a faer view of `$x`: float64/float32, or uint16 bit
/// patterns read as bfloat16/float16 when `$raw` says so.
macro_rules! with_any_view {
    ($x:expr, $raw:expr, |$xm:ident| $body:expr) => {
        match raw_half($raw)? {
            None => with_float_view!($x, |$xm| $body),
            Some(RawHalf::Bf16) => {
                let a = half_matrix($x)?;
                let $xm = half_view::<stats::Bf16>(&a)?;
                $body
            }
            Some(RawHalf::F16) => {
                let a = half_matrix($x)?;
                let $xm = half_view::<stats::F16>(&a)?;
                $body
            }
        }
    };
}

/// The one place where core errors become Python exceptions: the library's own classes from
/// `shallowprobes.errors` (NonFiniteError, CoreMemoryError), KeyboardInterrupt for a raised
/// cancel flag, ValueError/RuntimeError for the rest.
fn core_err(e: CoreError) -> PyErr {
    let msg = e.to_string();
    let library_class = |name: &str| -> Option<PyErr> {
        Python::attach(|py| {
            let cls = py.import("shallowprobes.errors").ok()?.getattr(name).ok()?;
            Some(PyErr::from_type(cls.cast_into().ok()?, msg.clone()))
        })
    };
    match e {
        CoreError::NonFinite => library_class("NonFiniteError").unwrap_or_else(|| value_err(msg)),
        CoreError::OutOfMemory { .. } => {
            library_class("CoreMemoryError").unwrap_or_else(|| PyMemoryError::new_err(msg))
        }
        CoreError::Interrupted => PyKeyboardInterrupt::new_err(msg),
        CoreError::Invalid(_) => value_err(msg),
        CoreError::NoConvergence(_) | CoreError::Threads(_) => PyRuntimeError::new_err(msg),
    }
}

/// The cancel flag of a call: the first byte of a uint8 numpy array the caller may set to 1
/// from another thread while the call runs (Ctrl-C handling in `shallowprobes.threads`).
type CancelFlag<'py> = Option<PyReadonlyArray1<'py, u8>>;

fn flag_ref<'a>(cancel: &'a CancelFlag<'_>) -> PyResult<Option<&'a AtomicU8>> {
    match cancel {
        None => Ok(None),
        Some(a) => {
            if a.len() == 0 {
                return Err(value_err("cancel must hold at least one byte"));
            }
            // SAFETY: the array is borrowed for the whole call, so its first byte stays alive;
            // AtomicU8 has the layout of u8, and other threads only ever store 0 or 1 into it.
            Ok(Some(unsafe { &*(a.data() as *const AtomicU8) }))
        }
    }
}

fn pool<R: Send>(cancel: Option<&AtomicU8>, f: impl FnOnce(faer::Par) -> R + Send) -> PyResult<R> {
    threads::install_cancellable(cancel, f).map_err(core_err)
}

/// Fold ids as usize (None stays None); negative ids are a ValueError.
fn fold_vec(fold_ids: &Option<PyReadonlyArray1<'_, i64>>) -> PyResult<Option<Vec<usize>>> {
    match fold_ids {
        None => Ok(None),
        Some(f) => {
            let s = slice_of(f, "fold_ids")?;
            if s.iter().any(|&v| v < 0) {
                return Err(value_err("fold_ids must be non-negative"));
            }
            Ok(Some(s.iter().map(|&v| v as usize).collect()))
        }
    }
}

/// Mutable views of the per-fold statistics arrays (K), (K, d), (K, k), (K, d, d), (K, d, k),
/// (K, k, k), with d and k read from sum_x and sum_y; each must be C-contiguous.
fn stats_mut<'a>(
    count: &'a mut PyReadwriteArray1<'_, f64>,
    sum_x: &'a mut PyReadwriteArray2<'_, f64>,
    sum_y: &'a mut PyReadwriteArray2<'_, f64>,
    xtx: &'a mut PyReadwriteArray3<'_, f64>,
    xty: &'a mut PyReadwriteArray3<'_, f64>,
    yty: &'a mut PyReadwriteArray3<'_, f64>,
) -> PyResult<StatsMut<'a>> {
    let d = sum_x.shape()[1];
    let k = sum_y.shape()[1];
    let not_contig = |_| value_err("statistics arrays must be C-contiguous");
    Ok(StatsMut {
        d,
        k,
        count: count.as_slice_mut().map_err(not_contig)?,
        sum_x: sum_x.as_slice_mut().map_err(not_contig)?,
        sum_y: sum_y.as_slice_mut().map_err(not_contig)?,
        xtx: xtx.as_slice_mut().map_err(not_contig)?,
        xty: xty.as_slice_mut().map_err(not_contig)?,
        yty: yty.as_slice_mut().map_err(not_contig)?,
    })
}

/// The largest |x| of a 2-D float array when every entry is finite, else None.
#[pyfunction]
#[pyo3(signature = (x, cancel=None, raw=None))]
fn finite_max_abs(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    cancel: CancelFlag<'_>,
    raw: Option<&str>,
) -> PyResult<Option<f64>> {
    let flag = flag_ref(&cancel)?;
    with_any_view!(x, raw, |m| py
        .detach(|| pool(flag, |_| stats::finite_max_abs(m)))?
        .map_err(core_err))
}

/// Whether every entry of a 2-D float array is finite.
#[pyfunction]
fn all_finite(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<bool> {
    with_float_view!(x, |m| py.detach(|| pool(None, |_| stats::all_finite(m))))
}

/// Adds the shifted statistics of (X, Y) into the per-fold accumulators, in place.
///
/// `precision`: "float64" (exact) or "float32" (block Grams by f32 GEMM, see
/// `stats::F32_GRAM_ROWS` for the error bound). `raw`: None for float32/float64 X, or
/// "bfloat16"/"float16" for a uint16 X of bit patterns, read directly.
#[pyfunction]
#[pyo3(signature = (x, y, fold_ids, shift_x, shift_y, count, sum_x, sum_y, xtx, xty, yty, cancel=None, precision="float64", raw=None))]
#[allow(clippy::too_many_arguments)]
fn accumulate(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: PyReadonlyArray2<'_, f64>,
    fold_ids: Option<PyReadonlyArray1<'_, i64>>,
    shift_x: PyReadonlyArray1<'_, f64>,
    shift_y: PyReadonlyArray1<'_, f64>,
    mut count: PyReadwriteArray1<'_, f64>,
    mut sum_x: PyReadwriteArray2<'_, f64>,
    mut sum_y: PyReadwriteArray2<'_, f64>,
    mut xtx: PyReadwriteArray3<'_, f64>,
    mut xty: PyReadwriteArray3<'_, f64>,
    mut yty: PyReadwriteArray3<'_, f64>,
    cancel: CancelFlag<'_>,
    precision: &str,
    raw: Option<&str>,
) -> PyResult<()> {
    let flag = flag_ref(&cancel)?;
    let prec = precision_of(precision)?;
    let folds = fold_vec(&fold_ids)?;
    let sx = slice_of(&shift_x, "shift_x")?.to_vec();
    let sy = slice_of(&shift_y, "shift_y")?.to_vec();
    let out = stats_mut(
        &mut count, &mut sum_x, &mut sum_y, &mut xtx, &mut xty, &mut yty,
    )?;
    let ym = view(&y)?;
    let folds_ref = folds.as_deref();
    let result = with_any_view!(x, raw, |xm| py.detach(|| pool(flag, |_| {
        stats::accumulate_with(xm, ym, folds_ref, &sx, &sy, out, prec)
    }))?);
    result.map_err(core_err)
}

/// Adds the shifted statistics of the quadratic features of X (and of Y) into the per-fold
/// accumulators, in place (see `quadratic::accumulate_quadratic`).
#[pyfunction]
#[pyo3(signature = (x, y, fold_ids, shift_in, shift_x, shift_y, count, sum_x, sum_y, xtx, xty, yty, cancel=None))]
#[allow(clippy::too_many_arguments)]
fn accumulate_quadratic(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: PyReadonlyArray2<'_, f64>,
    fold_ids: Option<PyReadonlyArray1<'_, i64>>,
    shift_in: PyReadonlyArray1<'_, f64>,
    shift_x: PyReadonlyArray1<'_, f64>,
    shift_y: PyReadonlyArray1<'_, f64>,
    mut count: PyReadwriteArray1<'_, f64>,
    mut sum_x: PyReadwriteArray2<'_, f64>,
    mut sum_y: PyReadwriteArray2<'_, f64>,
    mut xtx: PyReadwriteArray3<'_, f64>,
    mut xty: PyReadwriteArray3<'_, f64>,
    mut yty: PyReadwriteArray3<'_, f64>,
    cancel: CancelFlag<'_>,
) -> PyResult<()> {
    let flag = flag_ref(&cancel)?;
    let folds = fold_vec(&fold_ids)?;
    let si = slice_of(&shift_in, "shift_in")?.to_vec();
    let sx = slice_of(&shift_x, "shift_x")?.to_vec();
    let sy = slice_of(&shift_y, "shift_y")?.to_vec();
    let out = stats_mut(
        &mut count, &mut sum_x, &mut sum_y, &mut xtx, &mut xty, &mut yty,
    )?;
    let ym = view(&y)?;
    let folds_ref = folds.as_deref();
    let result = with_float_view!(x, |xm| py.detach(|| pool(flag, |_| {
        quadratic::accumulate_quadratic(xm, ym, folds_ref, &si, &sx, &sy, out)
    }))?);
    result.map_err(core_err)
}

/// The quadratic features (n, p) of the rows of X about shift_in, with scale quad_scale.
#[pyfunction]
#[pyo3(signature = (x, shift_in, quad_scale, cancel=None))]
fn expand_quadratic<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    shift_in: PyReadonlyArray1<'py, f64>,
    quad_scale: f64,
    cancel: CancelFlag<'py>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let flag = flag_ref(&cancel)?;
    let si = slice_of(&shift_in, "shift_in")?.to_vec();
    let (out, n, p) = with_float_view!(x, |xm| {
        let n = xm.nrows();
        let p = quadratic::n_quadratic_features(xm.ncols());
        let len = n.checked_mul(p).ok_or_else(|| {
            PyMemoryError::new_err(format!("{n} rows of {p} quadratic features do not fit"))
        })?;
        let mut out: Vec<f64> = Vec::new();
        out.try_reserve_exact(len).map_err(|_| {
            PyMemoryError::new_err(format!(
                "cannot allocate {n} rows of {p} quadratic features"
            ))
        })?;
        out.resize(len, 0.0);
        py.detach(|| {
            pool(flag, |_| {
                quadratic::expand_quadratic(xm, &si, quad_scale, &mut out)
            })
        })?
        .map_err(core_err)?;
        (out, n, p)
    });
    PyArray1::from_vec(py, out).reshape([n, p])
}

/// (lam ascending, V, B = Vᵀ cxy) of a symmetric Gram, with round-off eigenvalues clamped.
#[pyfunction]
#[pyo3(signature = (gram, cxy, cancel=None))]
#[allow(clippy::type_complexity)]
fn spectrum<'py>(
    py: Python<'py>,
    gram: PyReadonlyArray2<'py, f64>,
    cxy: PyReadonlyArray2<'py, f64>,
    cancel: CancelFlag<'py>,
) -> PyResult<(
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray2<f64>>,
)> {
    let flag = flag_ref(&cancel)?;
    let g = view(&gram)?;
    let c = view(&cxy)?;
    let spec = py
        .detach(|| pool(flag, |par| ridge::spectrum(g, c, par)))?
        .map_err(core_err)?;
    Ok((
        PyArray1::from_vec(py, spec.lam.clone()),
        to_numpy2(py, spec.v.as_ref())?,
        to_numpy2(py, spec.b.as_ref())?,
    ))
}

/// Spectra of a stack of Grams (K, d, d) with cross-products (K, d, k), in parallel over K.
#[pyfunction]
#[pyo3(signature = (grams, cxys, cancel=None))]
#[allow(clippy::type_complexity)]
fn spectra<'py>(
    py: Python<'py>,
    grams: PyReadonlyArray3<'py, f64>,
    cxys: PyReadonlyArray3<'py, f64>,
    cancel: CancelFlag<'py>,
) -> PyResult<(
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray3<f64>>,
    Bound<'py, PyArray3<f64>>,
)> {
    let flag = flag_ref(&cancel)?;
    check_layout(&grams, "grams")?;
    check_layout(&cxys, "cxys")?;
    let g = grams.as_array();
    let c = cxys.as_array();
    let (nk, d, d2) = g.dim();
    let (nk2, dc, k) = c.dim();
    if d != d2 || nk != nk2 || dc != d {
        return Err(value_err(format!(
            "grams have shape {:?} and cxys {:?}; expected (K, d, d) and (K, d, k)",
            g.dim(),
            c.dim()
        )));
    }
    let view3 = |a: &numpy::ndarray::ArrayView3<'_, f64>, i: usize| {
        let s = a.strides();
        // SAFETY: slice i of a live 3-D array, described by its own strides.
        unsafe {
            MatRef::from_raw_parts(
                a.as_ptr().offset(i as isize * s[0]),
                a.dim().1,
                a.dim().2,
                s[1],
                s[2],
            )
        }
    };
    let gv: Vec<MatRef<'_, f64>> = (0..nk).map(|i| view3(&g, i)).collect();
    let cv: Vec<MatRef<'_, f64>> = (0..nk).map(|i| view3(&c, i)).collect();
    let specs = py
        .detach(|| pool(flag, |_| ridge::spectra(&gv, &cv)))?
        .map_err(core_err)?;
    let mut lam = Vec::with_capacity(nk * d);
    let mut vs = try_zeros(0, "eigenvectors").map_err(core_err)?;
    let mut bs = try_zeros(0, "target projections").map_err(core_err)?;
    for sp in &specs {
        lam.extend_from_slice(&sp.lam);
        vs.extend(row_major_vec(sp.v.as_ref(), "eigenvectors")?);
        bs.extend(row_major_vec(sp.b.as_ref(), "target projections")?);
    }
    Ok((
        PyArray1::from_vec(py, lam).reshape([nk, d])?,
        PyArray1::from_vec(py, vs).reshape([nk, d, d])?,
        PyArray1::from_vec(py, bs).reshape([nk, d, k])?,
    ))
}

fn spectrum_from(
    lam: &PyReadonlyArray1<'_, f64>,
    v: &PyReadonlyArray2<'_, f64>,
    b: &PyReadonlyArray2<'_, f64>,
) -> PyResult<Spectrum> {
    let lam = slice_of(lam, "lam")?.to_vec();
    let (vm, bm) = (view(v)?, view(b)?);
    let d = lam.len();
    if vm.nrows() != d || vm.ncols() != d || bm.nrows() != d {
        return Err(value_err(format!(
            "spectrum shapes disagree: lam {d}, V {}×{}, B {}×{}",
            vm.nrows(),
            vm.ncols(),
            bm.nrows(),
            bm.ncols()
        )));
    }
    Ok(Spectrum {
        lam,
        v: owned_mat(vm),
        b: owned_mat(bm),
    })
}

/// Coefficients (A, d, k) or None, RSS (A, k) and dof (A,) for every alpha.
#[pyfunction]
#[pyo3(signature = (lam, v, b, perp, alphas, with_coefs=true, cancel=None))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn ridge_path<'py>(
    py: Python<'py>,
    lam: PyReadonlyArray1<'py, f64>,
    v: PyReadonlyArray2<'py, f64>,
    b: PyReadonlyArray2<'py, f64>,
    perp: PyReadonlyArray1<'py, f64>,
    alphas: PyReadonlyArray1<'py, f64>,
    with_coefs: bool,
    cancel: CancelFlag<'py>,
) -> PyResult<(
    Option<Bound<'py, PyArray3<f64>>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray1<f64>>,
)> {
    let flag = flag_ref(&cancel)?;
    let spec = spectrum_from(&lam, &v, &b)?;
    let perp = slice_of(&perp, "perp")?.to_vec();
    let alphas = slice_of(&alphas, "alphas")?.to_vec();
    let (d, k) = (spec.lam.len(), spec.b.ncols());
    let path = py
        .detach(|| {
            pool(flag, |par| {
                ridge::ridge_path(&spec, &perp, &alphas, with_coefs, par)
            })
        })?
        .map_err(core_err)?;
    let coefs = if with_coefs {
        let mut data = try_zeros(0, "coefficients").map_err(core_err)?;
        for w in &path.coefs {
            data.extend(row_major_vec(w.as_ref(), "coefficients")?);
        }
        Some(PyArray1::from_vec(py, data).reshape([alphas.len(), d, k])?)
    } else {
        None
    };
    Ok((
        coefs,
        rows_to_numpy2(py, &path.rss, k)?,
        PyArray1::from_vec(py, path.dof),
    ))
}

/// Sum of squared errors (A, k) of models on rows known through their (shifted) statistics.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn heldout_sse<'py>(
    py: Python<'py>,
    xtx: PyReadonlyArray2<'py, f64>,
    xty: PyReadonlyArray2<'py, f64>,
    yty_diag: PyReadonlyArray1<'py, f64>,
    sum_x: PyReadonlyArray1<'py, f64>,
    sum_y: PyReadonlyArray1<'py, f64>,
    n: f64,
    coefs: PyReadonlyArray3<'py, f64>,
    offsets: PyReadonlyArray2<'py, f64>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let c = coefs.as_array();
    let (na, d, k) = c.dim();
    let models: Vec<Mat<f64>> = (0..na)
        .map(|a| Mat::from_fn(d, k, |i, t| c[[a, i, t]]))
        .collect();
    let o = offsets.as_array();
    if o.dim() != (na, k) {
        return Err(value_err(format!(
            "offsets have shape {:?}, expected ({na}, {k})",
            o.dim()
        )));
    }
    let offs: Vec<Vec<f64>> = (0..na)
        .map(|a| (0..k).map(|t| o[[a, t]]).collect())
        .collect();
    let fold = FoldStats {
        xtx: view(&xtx)?,
        xty: view(&xty)?,
        yty_diag: slice_of(&yty_diag, "yty_diag")?,
        sum_x: slice_of(&sum_x, "sum_x")?,
        sum_y: slice_of(&sum_y, "sum_y")?,
        n,
    };
    if fold.xtx.nrows() != d
        || fold.xty.ncols() != k
        || fold.sum_x.len() != d
        || fold.sum_y.len() != k
    {
        return Err(value_err("fold statistics and models disagree in shape"));
    }
    let refs: Vec<MatRef<'_, f64>> = models.iter().map(|m| m.as_ref()).collect();
    let sse = py
        .detach(|| pool(None, |par| ridge::heldout_sse(&fold, &refs, &offs, par)))?
        .map_err(core_err)?;
    rows_to_numpy2(py, &sse, k)
}

/// Exact leave-one-out predictions (A, n, k) for rows X with targets Y.
#[pyfunction]
#[pyo3(signature = (x, x_mean, v, lam, b, y, y_mean, alphas, n_total, fit_intercept, cancel=None))]
#[allow(clippy::too_many_arguments)]
fn loo_predictions<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    x_mean: PyReadonlyArray1<'py, f64>,
    v: PyReadonlyArray2<'py, f64>,
    lam: PyReadonlyArray1<'py, f64>,
    b: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    y_mean: PyReadonlyArray1<'py, f64>,
    alphas: PyReadonlyArray1<'py, f64>,
    n_total: f64,
    fit_intercept: bool,
    cancel: CancelFlag<'py>,
) -> PyResult<Bound<'py, PyArray3<f64>>> {
    let flag = flag_ref(&cancel)?;
    let spec = spectrum_from(&lam, &v, &b)?;
    let alphas_v = slice_of(&alphas, "alphas")?.to_vec();
    let model = LooModel {
        x_mean: slice_of(&x_mean, "x_mean")?,
        y_mean: slice_of(&y_mean, "y_mean")?,
        spec: &spec,
        alphas: &alphas_v,
        n_total,
        fit_intercept,
    };
    let ym = view(&y)?;
    let (n, k) = (ym.nrows(), ym.ncols());
    let len = alphas_v
        .len()
        .checked_mul(n)
        .and_then(|v| v.checked_mul(k))
        .ok_or_else(|| PyMemoryError::new_err("LOO output size overflows"))?;
    let mut out = try_zeros(len, "the leave-one-out predictions").map_err(core_err)?;
    let result = with_float_view!(x, |xm| py.detach(|| pool(flag, |par| {
        ridge::loo_predictions(xm, ym, &model, &mut out, par)
    }))?);
    result.map_err(core_err)?;
    PyArray1::from_vec(py, out).reshape([alphas_v.len(), n, k])
}

/// Sums of squared leave-one-out errors (A, k) for rows X with targets Y, fused into the LOO
/// pass (no (A, n, k) predictions are formed).
#[pyfunction]
#[pyo3(signature = (x, x_mean, v, lam, b, y, y_mean, alphas, n_total, fit_intercept, cancel=None))]
#[allow(clippy::too_many_arguments)]
fn loo_sse<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    x_mean: PyReadonlyArray1<'py, f64>,
    v: PyReadonlyArray2<'py, f64>,
    lam: PyReadonlyArray1<'py, f64>,
    b: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    y_mean: PyReadonlyArray1<'py, f64>,
    alphas: PyReadonlyArray1<'py, f64>,
    n_total: f64,
    fit_intercept: bool,
    cancel: CancelFlag<'py>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let flag = flag_ref(&cancel)?;
    let spec = spectrum_from(&lam, &v, &b)?;
    let alphas_v = slice_of(&alphas, "alphas")?.to_vec();
    let model = LooModel {
        x_mean: slice_of(&x_mean, "x_mean")?,
        y_mean: slice_of(&y_mean, "y_mean")?,
        spec: &spec,
        alphas: &alphas_v,
        n_total,
        fit_intercept,
    };
    let ym = view(&y)?;
    let k = ym.ncols();
    let result = with_float_view!(x, |xm| py
        .detach(|| pool(flag, |par| { ridge::loo_sse(xm, ym, &model, par) }))?);
    rows_to_numpy2(py, &result.map_err(core_err)?, k)
}

/// Use n threads in the core (0 = one per core).
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    threads::set_num_threads(n).map_err(core_err)
}

#[pyfunction]
fn get_num_threads() -> usize {
    threads::num_threads()
}

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(all_finite, m)?)?;
    m.add_function(wrap_pyfunction!(finite_max_abs, m)?)?;
    m.add_function(wrap_pyfunction!(accumulate, m)?)?;
    m.add_function(wrap_pyfunction!(accumulate_quadratic, m)?)?;
    m.add_function(wrap_pyfunction!(expand_quadratic, m)?)?;
    m.add_function(wrap_pyfunction!(spectrum, m)?)?;
    m.add_function(wrap_pyfunction!(spectra, m)?)?;
    m.add_function(wrap_pyfunction!(ridge_path, m)?)?;
    m.add_function(wrap_pyfunction!(heldout_sse, m)?)?;
    m.add_function(wrap_pyfunction!(loo_predictions, m)?)?;
    m.add_function(wrap_pyfunction!(loo_sse, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    Ok(())
}

//! Ridge kernels: spectra of Grams (one, or a stack in parallel), the multi-alpha ridge path
//! from a spectrum, and the errors of models on rows known through their statistics.

use super::arrays::{
    check_layout, owned_mat, row_major_vec, rows_to_numpy2, slice_of, slices_of, to_numpy2, view,
};
use super::errors::{core_err, value_err};
use super::pool::{flag_ref, pool, CancelFlag};
use crate::error::try_zeros;
use crate::ridge::{self, FoldStats, Spectrum};
use crate::tridiagonal::{self, TridiagonalRef};
use faer::{Mat, MatRef};
use numpy::{
    PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyReadonlyArray3,
};
use pyo3::prelude::*;

/// (lam ascending, V, B = Vᵀ cxy) of a symmetric Gram, with round-off eigenvalues clamped.
#[pyfunction]
#[pyo3(signature = (gram, cxy, cancel=None))]
#[allow(clippy::type_complexity)]
pub(super) fn spectrum<'py>(
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
pub(super) fn spectra<'py>(
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
    let gv = slices_of(&g);
    let cv = slices_of(&c);
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

pub(super) fn spectrum_from(
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
pub(super) fn ridge_path<'py>(
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
pub(super) fn heldout_sse<'py>(
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

/// K r × c matrices as one C-ordered (K, c, r) numpy array: each matrix's columns as faer
/// stores them, without reordering (the caller views it as it needs, e.g. its (0, 2, 1)
/// transpose is the (K, r, c) stack).
fn col_major_stack<'py>(
    py: Python<'py>,
    mats: &[MatRef<'_, f64>],
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let (r, c) = mats.first().map_or((0, 0), |m| (m.nrows(), m.ncols()));
    let mut data = try_zeros(0, what).map_err(core_err)?;
    data.try_reserve_exact(mats.len() * r * c).map_err(|_| {
        core_err(crate::CoreError::OutOfMemory {
            what: what.to_string(),
            bytes: crate::error::bytes_of(mats.len() * r * c, 8),
        })
    })?;
    for m in mats {
        for j in 0..c {
            data.extend(m.col(j).iter().copied());
        }
    }
    Ok(PyArray1::from_vec(py, data)
        .reshape([mats.len(), c, r])?
        .into_any())
}

/// Tridiagonal reductions of a stack of Grams (K, d, d), in parallel over K: the packed
/// reductions (K, d, d), their Householder block factors (K, b, d - 1), and per Gram whether
/// the eigendecomposition route would clamp nothing (where the tridiagonal path applies).
/// The two arrays are column-major within each matrix (faer's layout, handed over without
/// reordering).
#[pyfunction]
#[pyo3(signature = (grams, cancel=None))]
#[allow(clippy::type_complexity)]
pub(super) fn tridiagonalize<'py>(
    py: Python<'py>,
    grams: PyReadonlyArray3<'py, f64>,
    cancel: CancelFlag<'py>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Vec<bool>)> {
    let flag = flag_ref(&cancel)?;
    check_layout(&grams, "grams")?;
    let g = grams.as_array();
    let (_, d, d2) = g.dim();
    if d != d2 {
        return Err(value_err(format!(
            "grams have shape {:?}; expected (K, d, d)",
            g.dim()
        )));
    }
    let gv = slices_of(&g);
    let reductions = py
        .detach(|| pool(flag, |par| tridiagonal::tridiagonalize_all(&gv, par)))?
        .map_err(core_err)?;
    let packed: Vec<MatRef<'_, f64>> = reductions.iter().map(|r| r.packed.as_ref()).collect();
    let factors: Vec<MatRef<'_, f64>> = reductions.iter().map(|r| r.factors.as_ref()).collect();
    let usable = reductions
        .iter()
        .map(|r| r.as_ref().clamps_nothing())
        .collect();
    let transposed = |m: Bound<'py, PyAny>| m.call_method1("transpose", (0, 2, 1));
    Ok((
        transposed(col_major_stack(py, &packed, "tridiagonal reductions")?)?,
        transposed(col_major_stack(py, &factors, "Householder factors")?)?,
        usable,
    ))
}

/// Coefficients (K, A, d, k) of (G_i + αI)⁻¹ cxy_i for every alpha (each > 0), from the
/// reductions (K, d, d) and factors (K, b, d - 1) of `tridiagonalize` (read in place, any
/// layout), in parallel over K.
#[pyfunction]
#[pyo3(signature = (packed, factors, cxys, alphas, cancel=None))]
pub(super) fn tridiagonal_ridge_paths<'py>(
    py: Python<'py>,
    packed: PyReadonlyArray3<'py, f64>,
    factors: PyReadonlyArray3<'py, f64>,
    cxys: PyReadonlyArray3<'py, f64>,
    alphas: PyReadonlyArray1<'py, f64>,
    cancel: CancelFlag<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    let flag = flag_ref(&cancel)?;
    for (a, what) in [(&packed, "packed"), (&factors, "factors"), (&cxys, "cxys")] {
        check_layout(a, what)?;
    }
    let (p, f, c) = (packed.as_array(), factors.as_array(), cxys.as_array());
    let (nk, d, d2) = p.dim();
    let (nf, b, h) = f.dim();
    let (nc, dc, k) = c.dim();
    if d2 != d || nf != nk || nc != nk || h != d.saturating_sub(1) || b == 0 || dc != d {
        return Err(value_err(format!(
            "packed {:?}, factors {:?} and cxys {:?}; expected (K, d, d), (K, b, d - 1) from \
             tridiagonalize and (K, d, k)",
            p.dim(),
            f.dim(),
            c.dim()
        )));
    }
    let reductions: Vec<TridiagonalRef<'_>> = slices_of(&p)
        .into_iter()
        .zip(slices_of(&f))
        .map(|(packed, factors)| TridiagonalRef { packed, factors })
        .collect();
    let cv = slices_of(&c);
    let alphas = slice_of(&alphas, "alphas")?.to_vec();
    let n_alphas = alphas.len();
    let solved = py
        .detach(|| {
            pool(flag, |_| {
                tridiagonal::ridge_paths(&reductions, &cv, &alphas)
            })
        })?
        .map_err(core_err)?;
    // each solution is d × (A·k), column a·k + t holding alpha a's target t: stacked as
    // (K, A·k, d) = (K, A, k, d), viewed as (K, A, d, k)
    let refs: Vec<MatRef<'_, f64>> = solved.iter().map(|w| w.as_ref()).collect();
    col_major_stack(py, &refs, "coefficients")?
        .call_method1("reshape", ((nk, n_alphas, k, d),))?
        .call_method1("transpose", (0, 1, 3, 2))
}

/// One reduction (d, d) and its factors (b, d - 1) of `tridiagonalize` (read in place, any
/// layout), checked against each other and against cxy's d rows.
fn reduction_of<'a>(
    packed: &'a PyReadonlyArray2<'_, f64>,
    factors: &'a PyReadonlyArray2<'_, f64>,
    rows: Option<usize>,
) -> PyResult<TridiagonalRef<'a>> {
    let (packed, factors) = (view(packed)?, view(factors)?);
    let d = packed.nrows();
    let fits = packed.ncols() == d
        && factors.ncols() == d.saturating_sub(1)
        && factors.nrows() > 0
        && rows.is_none_or(|r| r == d);
    if !fits {
        return Err(value_err(format!(
            "packed ({}, {}) and factors ({}, {}) are not one reduction of tridiagonalize{}",
            packed.nrows(),
            packed.ncols(),
            factors.nrows(),
            factors.ncols(),
            rows.map_or(String::new(), |r| format!(" for cxy with {r} rows"))
        )));
    }
    Ok(TridiagonalRef { packed, factors })
}

/// (explained (k,), rss (A, k)) of one reduction along `alphas` (each > 0): per target
/// cᵀG⁻¹c, the part of ‖y_c‖² the least-squares fit explains, and per alpha the residual sum
/// of squares inside the span of X (see `TridiagonalRef::gcv_path`).
#[pyfunction]
#[pyo3(signature = (packed, factors, cxy, alphas, cancel=None))]
#[allow(clippy::type_complexity)]
pub(super) fn tridiagonal_gcv<'py>(
    py: Python<'py>,
    packed: PyReadonlyArray2<'py, f64>,
    factors: PyReadonlyArray2<'py, f64>,
    cxy: PyReadonlyArray2<'py, f64>,
    alphas: PyReadonlyArray1<'py, f64>,
    cancel: CancelFlag<'py>,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray2<f64>>)> {
    let flag = flag_ref(&cancel)?;
    let c = view(&cxy)?;
    let reduction = reduction_of(&packed, &factors, Some(c.nrows()))?;
    let alphas = slice_of(&alphas, "alphas")?.to_vec();
    let path = py
        .detach(|| pool(flag, |par| reduction.gcv_path(c, &alphas, par)))?
        .map_err(core_err)?;
    Ok((
        PyArray1::from_vec(py, path.explained),
        rows_to_numpy2(py, &path.rss, c.ncols())?,
    ))
}

/// The eigenvalues (ascending) of one reduction's tridiagonal T, those of its Gram
/// (implicit QL, no eigenvectors).
#[pyfunction]
#[pyo3(signature = (packed, factors, cancel=None))]
pub(super) fn tridiagonal_eigenvalues<'py>(
    py: Python<'py>,
    packed: PyReadonlyArray2<'py, f64>,
    factors: PyReadonlyArray2<'py, f64>,
    cancel: CancelFlag<'py>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let flag = flag_ref(&cancel)?;
    let reduction = reduction_of(&packed, &factors, None)?;
    let lam = py
        .detach(|| pool(flag, |_| reduction.eigenvalues()))?
        .map_err(core_err)?;
    Ok(PyArray1::from_vec(py, lam))
}

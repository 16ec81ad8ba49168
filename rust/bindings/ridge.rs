//! Ridge kernels: spectra of Grams (one, or a stack in parallel), the multi-alpha ridge path
//! from a spectrum, and the errors of models on rows known through their statistics.

use super::arrays::{
    check_layout, owned_mat, row_major_vec, rows_to_numpy2, slice_of, to_numpy2, view,
};
use super::errors::{core_err, value_err};
use super::pool::{flag_ref, pool, CancelFlag};
use crate::error::try_zeros;
use crate::ridge::{self, FoldStats, Spectrum};
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

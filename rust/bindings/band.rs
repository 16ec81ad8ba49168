//! The band route of the dual GCV: the kernel reduced in place to K = Q B Qᵀ, then per alpha
//! the residual sums of squares and α·tr((K + αI)⁻¹), and the dual coefficients of the chosen
//! alphas (see [`crate::band`]).

use super::arrays::{rows_to_numpy2, slice_of, to_numpy2, view, view_mut};
use super::errors::{core_err, value_err};
use super::pool::{flag_ref, pool, CancelFlag};
use crate::band::{self, BandRef};
use faer::Mat;
use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray2,
};
use pyo3::prelude::*;

/// Reduces the symmetric kernel (n, n; float64, lower triangle read) in place to band form
/// with half-bandwidth `bandwidth` and returns the Householder block factors (b, n - b). The
/// kernel array then holds the reduction (read back by `band_gcv` and `band_solve`, in the
/// same array) and no longer the kernel.
#[pyfunction]
#[pyo3(signature = (kernel, bandwidth, cancel=None))]
pub(super) fn band_reduce<'py>(
    py: Python<'py>,
    mut kernel: PyReadwriteArray2<'py, f64>,
    bandwidth: usize,
    cancel: CancelFlag<'py>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let flag = flag_ref(&cancel)?;
    let a_mut = view_mut(&mut kernel, "kernel")?;
    let (n, n2) = (a_mut.nrows(), a_mut.ncols());
    if n != n2 || bandwidth == 0 {
        return Err(value_err(format!(
            "band_reduce needs a square kernel and a bandwidth >= 1; got shape ({n}, {n2}) and \
             bandwidth {bandwidth}"
        )));
    }
    let mut factors = Mat::<f64>::zeros(bandwidth, n.saturating_sub(bandwidth));
    let f_mut = factors.as_mut();
    py.detach(|| pool(flag, |par| band::reduce_in_place(a_mut, f_mut, par)))?
        .map_err(core_err)?;
    to_numpy2(py, factors.as_ref())
}

fn reduction_of<'a>(
    reduced: &'a PyReadonlyArray2<'_, f64>,
    factors: &'a PyReadonlyArray2<'_, f64>,
) -> PyResult<BandRef<'a>> {
    Ok(BandRef {
        reduced: view(reduced)?,
        factors: view(factors)?,
    })
}

/// (rss (A, k), resid (A,)) of a reduction along `alphas` (each > 0): per alpha and target
/// α²‖(K + αI)⁻¹y_t‖², and α·tr((K + αI)⁻¹).
#[pyfunction]
#[pyo3(signature = (reduced, factors, y, alphas, cancel=None))]
#[allow(clippy::type_complexity)]
pub(super) fn band_gcv<'py>(
    py: Python<'py>,
    reduced: PyReadonlyArray2<'py, f64>,
    factors: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    alphas: PyReadonlyArray1<'py, f64>,
    cancel: CancelFlag<'py>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Bound<'py, PyArray1<f64>>)> {
    let flag = flag_ref(&cancel)?;
    let red = reduction_of(&reduced, &factors)?;
    let yv = view(&y)?;
    let alphas = slice_of(&alphas, "alphas")?.to_vec();
    let path = py
        .detach(|| pool(flag, |par| red.gcv_path(yv, &alphas, par)))?
        .map_err(core_err)?;
    Ok((
        rows_to_numpy2(py, &path.rss, yv.ncols())?,
        PyArray1::from_vec(py, path.resid),
    ))
}

/// The dual coefficients (n, k): (K + α_t I)⁻¹ y_t with alphas[t] (> 0) for target t.
#[pyfunction]
#[pyo3(signature = (reduced, factors, y, alphas, cancel=None))]
pub(super) fn band_solve<'py>(
    py: Python<'py>,
    reduced: PyReadonlyArray2<'py, f64>,
    factors: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    alphas: PyReadonlyArray1<'py, f64>,
    cancel: CancelFlag<'py>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let flag = flag_ref(&cancel)?;
    let red = reduction_of(&reduced, &factors)?;
    let yv = view(&y)?;
    let alphas = slice_of(&alphas, "alphas")?.to_vec();
    let solved = py
        .detach(|| pool(flag, |par| red.solve(yv, &alphas, par)))?
        .map_err(core_err)?;
    to_numpy2(py, solved.as_ref())
}

/// The kernel (n, n) back from a reduction of `band_reduce`: Q B Qᵀ, symmetric (a
/// Fortran-ordered array, written in place by the core: no second n × n buffer).
#[pyfunction]
#[pyo3(signature = (reduced, factors, cancel=None))]
pub(super) fn band_expand<'py>(
    py: Python<'py>,
    reduced: PyReadonlyArray2<'py, f64>,
    factors: PyReadonlyArray2<'py, f64>,
    cancel: CancelFlag<'py>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let flag = flag_ref(&cancel)?;
    let red = reduction_of(&reduced, &factors)?;
    let n = red.dim();
    crate::error::ensure_allocatable(
        crate::error::bytes_of(n * n, 8),
        &format!("the {n}×{n} kernel expanded from its band reduction"),
    )
    .map_err(core_err)?;
    let out = PyArray2::<f64>::zeros(py, [n, n], true);
    {
        let mut rw = out.readwrite();
        let k = view_mut(&mut rw, "the expanded kernel")?;
        py.detach(|| pool(flag, |par| red.expand_into(k, par)))?
            .map_err(core_err)?;
    }
    Ok(out)
}

//! Degree 2: the statistics of the quadratic features of X, accumulated in place, and the
//! features themselves.

use super::accumulate::{fold_vec, stats_mut};
use super::arrays::{slice_of, view, with_float_view};
use super::errors::core_err;
use super::pool::{flag_ref, pool, CancelFlag};
use crate::quadratic;
use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1,
    PyReadwriteArray2, PyReadwriteArray3,
};
use pyo3::exceptions::PyMemoryError;
use pyo3::prelude::*;

/// Adds the shifted statistics of the quadratic features of X (and of Y) into the per-fold
/// accumulators, in place (see `quadratic::accumulate_quadratic`).
#[pyfunction]
#[pyo3(signature = (x, y, fold_ids, shift_in, shift_x, shift_y, count, sum_x, sum_y, xtx, xty, yty, cancel=None))]
#[allow(clippy::too_many_arguments)]
pub(super) fn accumulate_quadratic(
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
pub(super) fn expand_quadratic<'py>(
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

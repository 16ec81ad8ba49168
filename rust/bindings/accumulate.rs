//! The degree-1 statistics: finiteness checks of X and the accumulation of shifted per-fold
//! statistics (float64/float32 X, or raw bfloat16/float16 bits), in place.

use super::arrays::{slice_of, view, with_any_view, with_float_view};
use super::errors::{core_err, value_err};
use super::pool::{flag_ref, pool, CancelFlag};
use crate::stats::{self, StatsMut};
use numpy::{
    PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1, PyReadwriteArray2, PyReadwriteArray3,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;

fn precision_of(precision: &str) -> PyResult<stats::Precision> {
    match precision {
        "float64" => Ok(stats::Precision::F64),
        "float32" => Ok(stats::Precision::F32),
        other => Err(value_err(format!(
            "precision must be 'float64' or 'float32', got {other:?}"
        ))),
    }
}

/// Fold ids as usize (None stays None); negative ids are a ValueError.
pub(super) fn fold_vec(
    fold_ids: &Option<PyReadonlyArray1<'_, i64>>,
) -> PyResult<Option<Vec<usize>>> {
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
pub(super) fn stats_mut<'a>(
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
pub(super) fn finite_max_abs(
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
pub(super) fn all_finite(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<bool> {
    with_float_view!(x, |m| py.detach(|| pool(None, |_| stats::all_finite(m))))
}

/// Adds the shifted statistics of (X, Y) into the per-fold accumulators, in place, and returns
/// the largest |x_ij| read (found while staging, for the caller's magnitude check).
///
/// `precision`: "float64" (exact) or "float32" (block Grams by f32 GEMM, see
/// `stats::F32_GRAM_ROWS` for the error bound). `raw`: None for float32/float64 X, or
/// "bfloat16"/"float16" for a uint16 X of bit patterns, read directly.
#[pyfunction]
#[pyo3(signature = (x, y, fold_ids, shift_x, shift_y, count, sum_x, sum_y, xtx, xty, yty, cancel=None, precision="float64", raw=None))]
#[allow(clippy::too_many_arguments)]
pub(super) fn accumulate(
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
) -> PyResult<f64> {
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

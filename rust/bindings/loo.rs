//! Exact leave-one-out: the predictions (A, n, k), or their sums of squared errors (A, k)
//! fused into the same pass. Both take the same arguments, unpacked once by [`loo_inputs`].

use super::arrays::{rows_to_numpy2, slice_of, view, with_float_view};
use super::errors::core_err;
use super::pool::{flag_ref, pool, CancelFlag};
use super::ridge::spectrum_from;
use crate::error::try_zeros;
use crate::ridge::{self, LooModel, Spectrum};
use faer::MatRef;
use numpy::{PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyMemoryError;
use pyo3::prelude::*;

/// The arguments `loo_predictions` and `loo_sse` share, checked and unpacked.
struct LooInputs<'a> {
    spec: Spectrum,
    alphas: Vec<f64>,
    x_mean: &'a [f64],
    y_mean: &'a [f64],
    y: MatRef<'a, f64>,
    n_total: f64,
    fit_intercept: bool,
}

impl LooInputs<'_> {
    fn model(&self) -> LooModel<'_> {
        LooModel {
            x_mean: self.x_mean,
            y_mean: self.y_mean,
            spec: &self.spec,
            alphas: &self.alphas,
            n_total: self.n_total,
            fit_intercept: self.fit_intercept,
        }
    }
}

/// The spectrum (lam, V, B), the alphas, the means and a view of Y, checked in this order.
#[allow(clippy::too_many_arguments)]
fn loo_inputs<'a>(
    x_mean: &'a PyReadonlyArray1<'_, f64>,
    v: &PyReadonlyArray2<'_, f64>,
    lam: &PyReadonlyArray1<'_, f64>,
    b: &PyReadonlyArray2<'_, f64>,
    y: &'a PyReadonlyArray2<'_, f64>,
    y_mean: &'a PyReadonlyArray1<'_, f64>,
    alphas: &PyReadonlyArray1<'_, f64>,
    n_total: f64,
    fit_intercept: bool,
) -> PyResult<LooInputs<'a>> {
    let spec = spectrum_from(lam, v, b)?;
    let alphas = slice_of(alphas, "alphas")?.to_vec();
    let x_mean = slice_of(x_mean, "x_mean")?;
    let y_mean = slice_of(y_mean, "y_mean")?;
    let y = view(y)?;
    Ok(LooInputs {
        spec,
        alphas,
        x_mean,
        y_mean,
        y,
        n_total,
        fit_intercept,
    })
}

/// Exact leave-one-out predictions (A, n, k) for rows X with targets Y.
#[pyfunction]
#[pyo3(signature = (x, x_mean, v, lam, b, y, y_mean, alphas, n_total, fit_intercept, cancel=None))]
#[allow(clippy::too_many_arguments)]
pub(super) fn loo_predictions<'py>(
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
    let inputs = loo_inputs(
        &x_mean,
        &v,
        &lam,
        &b,
        &y,
        &y_mean,
        &alphas,
        n_total,
        fit_intercept,
    )?;
    let model = inputs.model();
    let ym = inputs.y;
    let (na, n, k) = (inputs.alphas.len(), ym.nrows(), ym.ncols());
    let len = na
        .checked_mul(n)
        .and_then(|v| v.checked_mul(k))
        .ok_or_else(|| PyMemoryError::new_err("LOO output size overflows"))?;
    let mut out = try_zeros(len, "the leave-one-out predictions").map_err(core_err)?;
    let result = with_float_view!(x, |xm| py.detach(|| pool(flag, |par| {
        ridge::loo_predictions(xm, ym, &model, &mut out, par)
    }))?);
    result.map_err(core_err)?;
    PyArray1::from_vec(py, out).reshape([na, n, k])
}

/// Sums of squared leave-one-out errors (A, k) for rows X with targets Y, fused into the LOO
/// pass (no (A, n, k) predictions are formed).
#[pyfunction]
#[pyo3(signature = (x, x_mean, v, lam, b, y, y_mean, alphas, n_total, fit_intercept, cancel=None))]
#[allow(clippy::too_many_arguments)]
pub(super) fn loo_sse<'py>(
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
    let inputs = loo_inputs(
        &x_mean,
        &v,
        &lam,
        &b,
        &y,
        &y_mean,
        &alphas,
        n_total,
        fit_intercept,
    )?;
    let model = inputs.model();
    let ym = inputs.y;
    let k = ym.ncols();
    let result = with_float_view!(x, |xm| py
        .detach(|| pool(flag, |par| { ridge::loo_sse(xm, ym, &model, par) }))?);
    rows_to_numpy2(py, &result.map_err(core_err)?, k)
}

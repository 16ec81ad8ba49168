//! The monitors' row-block kernels: the quotient projection (X − c) M and the scores of a bank
//! of polynomial monitors (see `project`), written straight into a float64 numpy array (the
//! caller's `out`, or one allocated here) while the GIL is released.

use super::arrays::{slice_of, view, with_any_view};
use super::errors::{core_err, value_err};
use super::pool::{flag_ref, pool, CancelFlag};
use crate::project::{self, LinearMembers, QuadraticMember};
use numpy::{PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// `out` when it is (n, cols) (its contiguity and writability are checked when it is borrowed),
/// else a new zero-filled (n, cols) float64 array.
fn output<'py>(
    py: Python<'py>,
    out: Option<Bound<'py, PyArray2<f64>>>,
    n: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    match out {
        Some(a) => {
            if a.shape() != [n, cols] {
                return Err(value_err(format!(
                    "out has shape {:?}, expected ({n}, {cols})",
                    a.shape()
                )));
            }
            Ok(a)
        }
        None => Ok(PyArray2::zeros(py, [n, cols], false)),
    }
}

/// Runs `fill` on the C-contiguous data of `arr` with the GIL released, in the core's pool.
fn fill_released<'py>(
    py: Python<'py>,
    arr: &Bound<'py, PyArray2<f64>>,
    flag: Option<&std::sync::atomic::AtomicU8>,
    fill: impl FnOnce(&mut [f64]) -> Result<(), crate::CoreError> + Send,
) -> PyResult<()> {
    let mut rw = arr.try_readwrite()?;
    let o = rw
        .as_slice_mut()
        .map_err(|_| value_err("out must be a C-contiguous float64 array"))?;
    py.detach(|| pool(flag, |_| fill(o)))?.map_err(core_err)
}

/// Column ids as usize; negative ids are a ValueError.
fn columns(a: &PyReadonlyArray1<'_, i64>, what: &str) -> PyResult<Vec<usize>> {
    let s = slice_of(a, what)?;
    if s.iter().any(|&v| v < 0) {
        return Err(value_err(format!("{what} must be non-negative")));
    }
    Ok(s.iter().map(|&v| v as usize).collect())
}

/// (X − centre) M as an (n, r) float64 array (`out` when given).
#[pyfunction]
#[pyo3(signature = (x, centre, m, out=None, cancel=None, raw=None))]
pub(super) fn project_rows<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    centre: PyReadonlyArray1<'py, f64>,
    m: PyReadonlyArray2<'py, f64>,
    out: Option<Bound<'py, PyArray2<f64>>>,
    cancel: CancelFlag<'py>,
    raw: Option<&str>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let flag = flag_ref(&cancel)?;
    let c = slice_of(&centre, "centre")?;
    let mv = view(&m)?;
    with_any_view!(x, raw, |xm| {
        let arr = output(py, out, xm.nrows(), mv.ncols())?;
        fill_released(py, &arr, flag, |o| project::project_rows(xm, c, mv, o))?;
        Ok(arr)
    })
}

/// The (n, m) scores of a bank of polynomial monitors (see `project::evaluate_polynomials`):
/// degree-1 members as X W + constants, degree-2 members from their centres, linear parts,
/// intercepts and Q's; each member written to its output column.
#[pyfunction]
#[pyo3(signature = (
    x, weights, constants, linear_columns, centres, linears, intercepts, quadratics,
    quadratic_columns, out=None, cancel=None, raw=None
))]
#[allow(clippy::too_many_arguments)]
pub(super) fn evaluate_polynomials<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    weights: PyReadonlyArray2<'py, f64>,
    constants: PyReadonlyArray1<'py, f64>,
    linear_columns: PyReadonlyArray1<'py, i64>,
    centres: PyReadonlyArray2<'py, f64>,
    linears: PyReadonlyArray2<'py, f64>,
    intercepts: PyReadonlyArray1<'py, f64>,
    quadratics: Vec<PyReadonlyArray2<'py, f64>>,
    quadratic_columns: PyReadonlyArray1<'py, i64>,
    out: Option<Bound<'py, PyArray2<f64>>>,
    cancel: CancelFlag<'py>,
    raw: Option<&str>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let flag = flag_ref(&cancel)?;
    let lin_cols = columns(&linear_columns, "linear_columns")?;
    let quad_cols = columns(&quadratic_columns, "quadratic_columns")?;
    let q = quad_cols.len();
    let counts = [
        centres.shape()[0],
        linears.shape()[0],
        intercepts.len(),
        quadratics.len(),
    ];
    if counts.iter().any(|&c| c != q) {
        return Err(value_err(format!(
            "{q} quadratic columns, but {} centres, {} linear parts, {} intercepts and {} Q's",
            counts[0], counts[1], counts[2], counts[3]
        )));
    }
    let (dc, dl) = (centres.shape()[1], linears.shape()[1]);
    let cs = centres
        .as_slice()
        .map_err(|_| value_err("centres must be C-contiguous"))?;
    let ls = linears
        .as_slice()
        .map_err(|_| value_err("linears must be C-contiguous"))?;
    let b = slice_of(&intercepts, "intercepts")?;
    let qviews = quadratics.iter().map(view).collect::<PyResult<Vec<_>>>()?;
    let members: Vec<QuadraticMember<'_>> = (0..q)
        .map(|j| QuadraticMember {
            centre: &cs[j * dc..(j + 1) * dc],
            linear: &ls[j * dl..(j + 1) * dl],
            intercept: b[j],
            quadratic: qviews[j],
            column: quad_cols[j],
        })
        .collect();
    let linear = LinearMembers {
        weights: view(&weights)?,
        constants: slice_of(&constants, "constants")?,
        columns: &lin_cols,
    };
    let m = lin_cols.len() + q;
    with_any_view!(x, raw, |xm| {
        let arr = output(py, out, xm.nrows(), m)?;
        fill_released(py, &arr, flag, |o| {
            project::evaluate_polynomials(xm, linear, &members, o)
        })?;
        Ok(arr)
    })
}

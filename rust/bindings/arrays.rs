//! numpy arrays in and out: in-place faer views of 2-D arrays (any strides, after a layout
//! check), contiguous 1-D slices, row-major copies back to numpy, and the dtype dispatch of X
//! (float64/float32, or uint16 bit patterns read as bfloat16/float16) as the macros
//! [`with_float_view!`] and [`with_any_view!`].

use super::errors::{core_err, value_err};
use crate::error::try_zeros;
use crate::stats;
use faer::{Mat, MatMut, MatRef};
use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

/// Whether the core can read `a` in place: aligned, and every byte stride a whole number of
/// elements (numpy views of structured arrays can have strides such as 18 bytes for float32,
/// which an element-strided view would silently misread). Byte order is checked by the dtype
/// extraction itself (only native float32/float64 arrays are accepted).
pub(super) fn check_layout<T: numpy::Element, D: numpy::ndarray::Dimension>(
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
pub(super) fn view<'a, T: numpy::Element>(
    a: &'a PyReadonlyArray2<'_, T>,
) -> PyResult<MatRef<'a, T>> {
    check_layout(a, "array")?;
    let v = a.as_array();
    let (r, c) = v.dim();
    let s = v.strides();
    // SAFETY: the pointer and strides describe the live numpy buffer borrowed by `a`, and
    // check_layout ensured the element strides are exact.
    Ok(unsafe { MatRef::from_raw_parts(v.as_ptr(), r, c, s[0], s[1]) })
}

/// A mutable faer view of a 2-D numpy array with its own strides, after [`check_layout`]: the
/// core writes into the numpy buffer in place.
pub(super) fn view_mut<'a, T: numpy::Element>(
    a: &'a mut PyReadwriteArray2<'_, T>,
    what: &str,
) -> PyResult<MatMut<'a, T>> {
    check_layout(a, what)?;
    let mut v = a.as_array_mut();
    let (r, c) = v.dim();
    let s = v.strides().to_vec();
    // SAFETY: the pointer and strides describe the live numpy buffer borrowed mutably by `a`
    // for 'a, and check_layout ensured the element strides are exact.
    Ok(unsafe { MatMut::from_raw_parts_mut(v.as_mut_ptr(), r, c, s[0], s[1]) })
}

pub(super) fn slice_of<'a, T: numpy::Element>(
    a: &'a PyReadonlyArray1<'_, T>,
    what: &str,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| value_err(format!("{what} must be contiguous")))
}

/// A row-major copy of m, allocated fallibly.
pub(super) fn row_major_vec(m: MatRef<'_, f64>, what: &str) -> PyResult<Vec<f64>> {
    let (r, c) = (m.nrows(), m.ncols());
    let mut data = try_zeros(r * c, what).map_err(core_err)?;
    for i in 0..r {
        for j in 0..c {
            data[i * c + j] = m[(i, j)];
        }
    }
    Ok(data)
}

pub(super) fn to_numpy2<'py>(
    py: Python<'py>,
    m: MatRef<'_, f64>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let data = row_major_vec(m, "an output matrix")?;
    PyArray1::from_vec(py, data).reshape([m.nrows(), m.ncols()])
}

pub(super) fn rows_to_numpy2<'py>(
    py: Python<'py>,
    rows: &[Vec<f64>],
    ncols: usize,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let data: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    PyArray1::from_vec(py, data).reshape([rows.len(), ncols])
}

/// faer views of the K matrices of a 3-D array (K, r, c), each with the array's own strides.
pub(super) fn slices_of<'a>(a: &numpy::ndarray::ArrayView3<'a, f64>) -> Vec<MatRef<'a, f64>> {
    let s = a.strides();
    let (nk, r, c) = a.dim();
    (0..nk)
        .map(|i| {
            // SAFETY: slice i of a live 3-D array (laid out as checked by `check_layout`),
            // described by its own strides.
            unsafe {
                MatRef::from_raw_parts(a.as_ptr().offset(i as isize * s[0]), r, c, s[1], s[2])
            }
        })
        .collect()
}

pub(super) fn owned_mat(m: MatRef<'_, f64>) -> Mat<f64> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)])
}

pub(super) enum FloatMatrix<'py> {
    F32(PyReadonlyArray2<'py, f32>),
    F64(PyReadonlyArray2<'py, f64>),
}

pub(super) fn float_matrix<'py>(x: &Bound<'py, PyAny>, what: &str) -> PyResult<FloatMatrix<'py>> {
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
        match $crate::bindings::arrays::float_matrix($x, "X")? {
            $crate::bindings::arrays::FloatMatrix::F64(a) => {
                let $xm = $crate::bindings::arrays::view(&a)?;
                $body
            }
            $crate::bindings::arrays::FloatMatrix::F32(a) => {
                let $xm = $crate::bindings::arrays::view(&a)?;
                $body
            }
        }
    };
}
pub(super) use with_float_view;

/// How the core reads a uint16 X (`raw=`): as bfloat16 or float16 bit patterns.
#[derive(Clone, Copy)]
pub(super) enum RawHalf {
    Bf16,
    F16,
}

pub(super) fn raw_half(raw: Option<&str>) -> PyResult<Option<RawHalf>> {
    match raw {
        None => Ok(None),
        Some("bfloat16") => Ok(Some(RawHalf::Bf16)),
        Some("float16") => Ok(Some(RawHalf::F16)),
        Some(other) => Err(value_err(format!(
            "raw must be None, 'bfloat16' or 'float16', got {other:?}"
        ))),
    }
}

/// A faer view of 16-bit patterns as one of the half-precision element types.
pub(super) fn half_view<'a, H: stats::Element>(
    a: &'a PyReadonlyArray2<'_, u16>,
) -> PyResult<MatRef<'a, H>> {
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

pub(super) fn half_matrix<'py>(x: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArray2<'py, u16>> {
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
        match $crate::bindings::arrays::raw_half($raw)? {
            None => $crate::bindings::arrays::with_float_view!($x, |$xm| $body),
            Some($crate::bindings::arrays::RawHalf::Bf16) => {
                let a = $crate::bindings::arrays::half_matrix($x)?;
                let $xm = $crate::bindings::arrays::half_view::<$crate::stats::Bf16>(&a)?;
                $body
            }
            Some($crate::bindings::arrays::RawHalf::F16) => {
                let a = $crate::bindings::arrays::half_matrix($x)?;
                let $xm = $crate::bindings::arrays::half_view::<$crate::stats::F16>(&a)?;
                $body
            }
        }
    };
}
pub(super) use with_any_view;

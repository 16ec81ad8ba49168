//! The one error-conversion point of the bindings: [`core_err`] maps every core error to a
//! Python exception; [`value_err`] builds the ValueErrors of argument checks.

use crate::error::CoreError;
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

pub(super) fn value_err(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// The one place where core errors become Python exceptions: the library's own classes from
/// `shallowprobes.errors` (NonFiniteError, CoreMemoryError), KeyboardInterrupt for a raised
/// cancel flag, numpy's LinAlgError (a ValueError) for a matrix that is not positive
/// definite, ValueError/RuntimeError for the rest.
pub(super) fn core_err(e: CoreError) -> PyErr {
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
        CoreError::NotPositiveDefinite(_) => Python::attach(|py| -> Option<PyErr> {
            let cls = py
                .import("numpy.linalg")
                .ok()?
                .getattr("LinAlgError")
                .ok()?;
            Some(PyErr::from_type(cls.cast_into().ok()?, msg.clone()))
        })
        .unwrap_or_else(|| value_err(msg)),
        CoreError::NoConvergence(_) | CoreError::Threads(_) => PyRuntimeError::new_err(msg),
    }
}

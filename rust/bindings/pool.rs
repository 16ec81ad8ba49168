//! The core's thread pool from Python: the cancel flag a call watches, running a computation
//! in the pool, and the thread count.

use super::errors::{core_err, value_err};
use crate::threads;
use numpy::{PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;
use std::sync::atomic::AtomicU8;

/// The cancel flag of a call: the first byte of a uint8 numpy array the caller may set to 1
/// from another thread while the call runs (Ctrl-C handling in `shallowprobes.threads`).
pub(super) type CancelFlag<'py> = Option<PyReadonlyArray1<'py, u8>>;

pub(super) fn flag_ref<'a>(cancel: &'a CancelFlag<'_>) -> PyResult<Option<&'a AtomicU8>> {
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

pub(super) fn pool<R: Send>(
    cancel: Option<&AtomicU8>,
    f: impl FnOnce(faer::Par) -> R + Send,
) -> PyResult<R> {
    threads::install_cancellable(cancel, f).map_err(core_err)
}

/// Use n threads in the core (0 = one per core).
#[pyfunction]
pub(super) fn set_num_threads(n: usize) -> PyResult<()> {
    threads::set_num_threads(n).map_err(core_err)
}

#[pyfunction]
pub(super) fn get_num_threads() -> usize {
    threads::num_threads()
}

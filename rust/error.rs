//! The core's error type: every failure the numerical code can report, typed, so the binding
//! layer converts each kind to the right Python exception in one place (no message matching).

use std::fmt;

/// A failure of a core computation. Nothing is half-written when one is returned, unless the
/// function's documentation says which output may be partly written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreError {
    /// Arguments that disagree in shape or value (a bug in the caller, or bad user input that
    /// slipped past the Python checks).
    Invalid(String),
    /// The input rows hold NaN or infinity.
    NonFinite,
    /// An allocation of `bytes` bytes for `what` failed.
    OutOfMemory { what: String, bytes: u128 },
    /// The caller's cancel flag was raised (Ctrl-C on the Python side).
    Interrupted,
    /// An iterative decomposition did not converge.
    NoConvergence(String),
    /// A Cholesky factorisation met a non-positive pivot: the matrix is not positive definite
    /// (numerically), so the caller must take a route that does not need it to be.
    NotPositiveDefinite(String),
    /// The thread pool could not be built.
    Threads(String),
}

/// Message of [`CoreError::NonFinite`].
pub const NON_FINITE: &str = "X contains NaN or infinity";

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::Invalid(msg)
            | CoreError::NoConvergence(msg)
            | CoreError::NotPositiveDefinite(msg)
            | CoreError::Threads(msg) => f.write_str(msg),
            CoreError::NonFinite => f.write_str(NON_FINITE),
            CoreError::OutOfMemory { what, bytes } => write!(
                f,
                "could not allocate {:.3} GiB for {what}; reduce the problem size (fewer rows, \
                 features or alphas) or free memory",
                *bytes as f64 / (1u64 << 30) as f64
            ),
            CoreError::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for CoreError {}

impl From<String> for CoreError {
    fn from(msg: String) -> Self {
        CoreError::Invalid(msg)
    }
}

impl From<&str> for CoreError {
    fn from(msg: &str) -> Self {
        CoreError::Invalid(msg.to_string())
    }
}

/// Bytes of `count` values of `elem` bytes each, saturating (an impossible size fails to
/// allocate instead of wrapping around).
pub fn bytes_of(count: usize, elem: usize) -> u128 {
    count as u128 * elem as u128
}

/// Fails with [`CoreError::OutOfMemory`] unless `bytes` can be allocated now. Used before calls
/// into code whose allocations would abort the process on failure (faer's decompositions):
/// the memory is reserved and released at once, so the real allocation then succeeds unless
/// another thread took the memory in between.
pub fn ensure_allocatable(bytes: u128, what: &str) -> Result<(), CoreError> {
    let oom = || CoreError::OutOfMemory {
        what: what.to_string(),
        bytes,
    };
    let n = usize::try_from(bytes).map_err(|_| oom())?;
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(n).map_err(|_| oom())?;
    Ok(())
}

/// A zero-filled vector of `len` f64, or [`CoreError::OutOfMemory`] instead of an abort.
pub fn try_zeros(len: usize, what: &str) -> Result<Vec<f64>, CoreError> {
    let mut v: Vec<f64> = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| CoreError::OutOfMemory {
            what: what.to_string(),
            bytes: bytes_of(len, 8),
        })?;
    v.resize(len, 0.0);
    Ok(v)
}

/// `CoreError::Invalid(format!(...))`.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => {
        $crate::error::CoreError::Invalid(format!($($arg)*))
    };
}

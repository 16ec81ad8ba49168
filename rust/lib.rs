//! shallowprobes core: sufficient statistics, exact multi-alpha ridge solves, and the row-block
//! kernels of the monitors (projection, polynomial scores).
//!
//! Pure Rust, free of Python types, testable with `cargo test`. The PyO3 bindings live in
//! [`bindings`] behind the `python` feature, which maturin enables.

pub mod band;
pub mod error;
pub mod householder;
pub mod project;
pub mod quadratic;
pub mod ridge;
pub mod stats;
pub mod threads;
pub mod tridiagonal;

pub use error::CoreError;

#[cfg(feature = "python")]
mod bindings;

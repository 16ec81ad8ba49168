//! shallowprobes core: sufficient statistics and exact multi-alpha ridge solves.
//!
//! Pure Rust, free of Python types, testable with `cargo test`. The PyO3 bindings live in
//! [`bindings`] behind the `python` feature, which maturin enables.

pub mod error;
pub mod quadratic;
pub mod ridge;
pub mod stats;
pub mod threads;

pub use error::CoreError;

#[cfg(feature = "python")]
mod bindings;

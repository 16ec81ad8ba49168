//! PyO3 bindings: the only place that knows about Python. Arrays cross without copies where
//! the core reads them (X is read in place when its strides are whole elements and it is
//! aligned; the Python adapter copies other layouts block by block), long computations release
//! the GIL and watch an optional cancel flag, and every failure becomes a Python exception
//! (converted in one place, [`errors::core_err`]) rather than a panic or an abort.
//!
//! By concern: [`arrays`] (numpy views and copies, the dtype dispatch of X), [`errors`] (the
//! conversion of core errors), [`pool`] (cancel flags, the thread pool and its size),
//! [`accumulate`] (degree-1 statistics), [`degree2`] (quadratic features), [`ridge`]
//! (spectra, ridge paths, held-out errors), [`band`] (the dual route's band GCV), [`loo`] (leave-one-out) and [`project`] (the
//! monitors' projection and bank scores); the module registration is here.

mod accumulate;
mod arrays;
mod band;
mod degree2;
mod errors;
mod loo;
mod pool;
mod project;
mod ridge;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(accumulate::all_finite, m)?)?;
    m.add_function(wrap_pyfunction!(accumulate::finite_max_abs, m)?)?;
    m.add_function(wrap_pyfunction!(accumulate::accumulate, m)?)?;
    m.add_function(wrap_pyfunction!(degree2::accumulate_quadratic, m)?)?;
    m.add_function(wrap_pyfunction!(degree2::expand_quadratic, m)?)?;
    m.add_function(wrap_pyfunction!(ridge::spectrum, m)?)?;
    m.add_function(wrap_pyfunction!(ridge::spectra, m)?)?;
    m.add_function(wrap_pyfunction!(ridge::ridge_path, m)?)?;
    m.add_function(wrap_pyfunction!(ridge::heldout_sse, m)?)?;
    m.add_function(wrap_pyfunction!(ridge::tridiagonalize, m)?)?;
    m.add_function(wrap_pyfunction!(ridge::tridiagonal_ridge_paths, m)?)?;
    m.add_function(wrap_pyfunction!(ridge::tridiagonal_gcv, m)?)?;
    m.add_function(wrap_pyfunction!(ridge::tridiagonal_eigenvalues, m)?)?;
    m.add_function(wrap_pyfunction!(band::band_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(band::band_gcv, m)?)?;
    m.add_function(wrap_pyfunction!(band::band_expand, m)?)?;
    m.add_function(wrap_pyfunction!(band::band_solve, m)?)?;
    m.add_function(wrap_pyfunction!(loo::loo_predictions, m)?)?;
    m.add_function(wrap_pyfunction!(loo::loo_sse, m)?)?;
    m.add_function(wrap_pyfunction!(project::project_rows, m)?)?;
    m.add_function(wrap_pyfunction!(project::evaluate_polynomials, m)?)?;
    m.add_function(wrap_pyfunction!(pool::set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(pool::get_num_threads, m)?)?;
    Ok(())
}

//! Q and Qᵀ of a symmetric reduction, applied to a block of columns.
//!
//! Both reductions of the core store Q the same way, as a faer block Householder sequence
//! packed into the reduced matrix: the reflector of column c starts at row c + `offset` and is
//! stored below that row, with the block factors in `factors` (b × (n − offset), faer's
//! layout). The tridiagonal reduction ([`crate::tridiagonal`]) has offset 1, the band
//! reduction ([`crate::band`]) offset b, its half-bandwidth.

use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::householder::{
    apply_block_householder_sequence_on_the_left_in_place_scratch,
    apply_block_householder_sequence_on_the_left_in_place_with_conj,
    apply_block_householder_sequence_transpose_on_the_left_in_place_scratch,
    apply_block_householder_sequence_transpose_on_the_left_in_place_with_conj,
};
use faer::reborrow::ReborrowMut;
use faer::{Conj, MatMut, MatRef, Par};

/// Workspace of [`apply`] on `width` columns, for an n × n reduction with the given offset
/// and block size.
pub fn scratch(n: usize, offset: usize, block: usize, width: usize) -> StackReq {
    let h = n.saturating_sub(offset);
    StackReq::any_of(&[
        apply_block_householder_sequence_transpose_on_the_left_in_place_scratch::<f64>(
            h, block, width,
        ),
        apply_block_householder_sequence_on_the_left_in_place_scratch::<f64>(h, block, width),
    ])
}

/// y ← Qᵀy (`transpose`) or Q y in place (rows `offset..` change; no reflectors when
/// n ≤ offset).
pub fn apply(
    reduced: MatRef<'_, f64>,
    factors: MatRef<'_, f64>,
    offset: usize,
    mut y: MatMut<'_, f64>,
    transpose: bool,
    par: Par,
) {
    let n = reduced.nrows();
    if n <= offset {
        return;
    }
    let h = n - offset;
    let basis = reduced.submatrix(offset, 0, h, h);
    let mut mem = MemBuffer::new(scratch(n, offset, factors.nrows(), y.ncols()));
    let rows = y.rb_mut().subrows_mut(offset, h);
    if transpose {
        apply_block_householder_sequence_transpose_on_the_left_in_place_with_conj(
            basis,
            factors,
            Conj::No,
            rows,
            par,
            MemStack::new(&mut mem),
        );
    } else {
        apply_block_householder_sequence_on_the_left_in_place_with_conj(
            basis,
            factors,
            Conj::No,
            rows,
            par,
            MemStack::new(&mut mem),
        );
    }
}

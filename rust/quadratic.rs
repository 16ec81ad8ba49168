//! Degree-2 (quadratic) features and their sufficient statistics, never materialising all rows.
//!
//! For an input row x ∈ Rᵈ and an input shift s, with u = x − s, the feature vector has
//! p = d + d(d+1)/2 entries: first u itself, then c·s_ab·u_a·u_b for a in 0..d, b in a..d
//! (a the outer loop: numpy's `triu_indices(d)` order, also scikit-learn's
//! `PolynomialFeatures(2)` order), with s_aa = 1, s_ab = √2 for a < b and c the quadratic
//! scale. Then ⟨φ(x), φ(g)⟩ = ⟨u, v⟩ + c²⟨u, v⟩².
//!
//! [`accumulate_quadratic`] builds the statistics of φ (c = 1) block by block, with the same
//! fixed-order reductions as [`crate::stats::accumulate`], so its results are the same bit for
//! bit whatever the thread count.

use crate::error::CoreError;
use crate::stats::{
    accumulate_blocks, check_targets, fold_rows, stage_block, staging_rows, Element, StatsMut,
};
use faer::MatRef;
use rayon::prelude::*;
use std::f64::consts::SQRT_2;

/// Number of quadratic features of d inputs: d + d(d+1)/2 (saturating; see [`checked_p`]).
pub fn n_quadratic_features(d: usize) -> usize {
    checked_p(d).unwrap_or(usize::MAX)
}

/// d + d(d+1)/2, or `None` when it does not fit in a usize.
fn checked_p(d: usize) -> Option<usize> {
    d.checked_add(1)
        .and_then(|d1| d.checked_mul(d1))
        .and_then(|dd| (dd / 2).checked_add(d))
}

fn feature_count(d: usize) -> Result<usize, CoreError> {
    checked_p(d).ok_or_else(|| crate::invalid!("{d} inputs give too many quadratic features"))
}

/// The (a, b) pairs of the quadratic features, in feature order (after the d linear ones).
pub fn quadratic_pairs(d: usize) -> Vec<(usize, usize)> {
    (0..d).flat_map(|a| (a..d).map(move |b| (a, b))).collect()
}

/// Weight c·s_ab of each pair: c on the diagonal, c·√2 off it.
fn pair_weights(pairs: &[(usize, usize)], quad_scale: f64) -> Vec<f64> {
    pairs
        .iter()
        .map(|&(a, b)| {
            if a == b {
                quad_scale
            } else {
                SQRT_2 * quad_scale
            }
        })
        .collect()
}

/// Adds the statistics of the shifted quadratic features f = φ(x; shift_in) − shift_x (c = 1)
/// and of y − shift_y into `out` (whose `d` is the feature count p = d + d(d+1)/2).
///
/// Same contract as [`crate::stats::accumulate`]: `folds[i]` is the fold of row i (all rows go
/// to fold 0 when `None`); only lower triangles are accumulated and then mirrored; shape errors
/// and bad fold ids return an error before anything is written; a NaN or infinity in X returns
/// [`CoreError::NonFinite`], possibly after earlier blocks were added (callers discard or restore).
///
/// Memory: the staging buffers hold one row block (`block_rows(p)` rows) of inputs, features
/// and targets, O(block·p), whatever the number of rows.
pub fn accumulate_quadratic<T: Element>(
    x: MatRef<'_, T>,
    y: MatRef<'_, f64>,
    folds: Option<&[usize]>,
    shift_in: &[f64],
    shift_x: &[f64],
    shift_y: &[f64],
    out: StatsMut<'_>,
) -> Result<(), CoreError> {
    let (n, d) = (x.nrows(), x.ncols());
    let (p, k) = (out.d, out.k);
    let n_folds = out.n_folds();
    out.check_shapes()?;
    if shift_in.len() != d {
        return Err(crate::invalid!(
            "shift_in has {} entries, X has {d} columns",
            shift_in.len()
        ));
    }
    let want = feature_count(d)?;
    if p != want {
        return Err(crate::invalid!(
            "statistics have {p} features, expected {want} (quadratic features of {d} inputs)"
        ));
    }
    if shift_x.len() != p {
        return Err(crate::invalid!(
            "shift_x has {} entries, expected {p}",
            shift_x.len()
        ));
    }
    check_targets(y, shift_y, n, k)?;
    let fold_rows = fold_rows(folds, n, n_folds)?;

    let pairs = quadratic_pairs(d);
    let weights = pair_weights(&pairs, 1.0);
    // Column-major staging buffer (m × d, leading dimension m) of the shifted inputs of one
    // block, which `expand_block_columns` turns into the block's features.
    let mut ub =
        crate::error::try_zeros(staging_rows(&fold_rows, p) * d, "the input staging block")?;
    let mut input_sums = vec![0.0f64; d]; // required by `stage_block`, unused here
    accumulate_blocks(&fold_rows, out, |rows, fb, yb, sum_x| {
        let m = rows.len();
        let ub = &mut ub[..m * d];
        if stage_block(x, y, rows, shift_in, shift_y, 1.0, ub, yb, &mut input_sums).is_none() {
            return false;
        }
        expand_block_columns(ub, m, d, &pairs, &weights, shift_x, fb, sum_x);
        true
    })
}

/// Fills the column-major m × p feature block from the column-major m × d shifted inputs, minus
/// `shift_x`, and adds each column's sum (in row order) into `sums`.
///
/// Parallel over columns; every column is written and summed by one task, so neither the values
/// nor the sums depend on how the columns are split between threads.
#[allow(clippy::too_many_arguments)]
fn expand_block_columns(
    ub: &[f64],
    m: usize,
    d: usize,
    pairs: &[(usize, usize)],
    weights: &[f64],
    shift_x: &[f64],
    fb: &mut [f64],
    sums: &mut [f64],
) {
    let p = d + pairs.len();
    assert!(m > 0 && ub.len() == m * d && fb.len() == m * p);
    assert!(shift_x.len() == p && sums.len() == p && weights.len() == pairs.len());
    let min_cols = (8192 / m).max(1);
    fb.par_chunks_mut(m)
        .zip(sums.par_iter_mut())
        .enumerate()
        .with_min_len(min_cols)
        .for_each(|(q, (col, s))| {
            let shift = shift_x[q];
            let mut acc = 0.0f64;
            if q < d {
                for (o, &u) in col.iter_mut().zip(&ub[q * m..(q + 1) * m]) {
                    let v = u - shift;
                    *o = v;
                    acc += v;
                }
            } else {
                let (a, b) = pairs[q - d];
                let w = weights[q - d];
                let ua = &ub[a * m..(a + 1) * m];
                let ubb = &ub[b * m..(b + 1) * m];
                for ((o, &va), &vb) in col.iter_mut().zip(ua).zip(ubb) {
                    let v = va * vb * w - shift;
                    *o = v;
                    acc += v;
                }
            }
            *s += acc;
        });
}

/// Writes the quadratic features φ(x; shift_in) with scale `quad_scale` of every row of X into
/// `out`, row-major n × p. Parallel over rows; X is read in place whatever its strides.
///
/// Returns an error (with `out` possibly partly written) on shape mismatches, a non-finite
/// `quad_scale` or a NaN/infinity in X ([`CoreError::NonFinite`]); [`CoreError::Interrupted`] when the
/// cancel flag is raised.
pub fn expand_quadratic<T: Element>(
    x: MatRef<'_, T>,
    shift_in: &[f64],
    quad_scale: f64,
    out: &mut [f64],
) -> Result<(), CoreError> {
    const ROWS: usize = 32;
    let (n, d) = (x.nrows(), x.ncols());
    if shift_in.len() != d {
        return Err(crate::invalid!(
            "shift_in has {} entries, X has {d} columns",
            shift_in.len()
        ));
    }
    if !quad_scale.is_finite() {
        return Err(crate::invalid!(
            "quad_scale must be finite, got {quad_scale}"
        ));
    }
    let p = feature_count(d)?;
    if n.checked_mul(p) != Some(out.len()) {
        return Err(crate::invalid!(
            "output has {} entries, expected {n} × {p}",
            out.len()
        ));
    }
    if n == 0 || p == 0 {
        return Ok(());
    }
    let off = SQRT_2 * quad_scale;
    let cancel = crate::threads::cancel_handle();
    let finite = out
        .par_chunks_mut(p * ROWS)
        .enumerate()
        .map(|(c, chunk)| {
            let mut finite = true;
            if cancel.check().is_err() {
                return false; // reported as Interrupted below
            }
            for (ii, row_out) in chunk.chunks_mut(p).enumerate() {
                let i = c * ROWS + ii;
                let (lin, quad) = row_out.split_at_mut(d);
                for ((o, &v), &s) in lin.iter_mut().zip(x.row(i).iter()).zip(shift_in) {
                    finite &= v.finite();
                    *o = v.to_f64() - s;
                }
                let mut o = 0;
                for a in 0..d {
                    let ua = lin[a];
                    quad[o] = ua * ua * quad_scale;
                    o += 1;
                    for &vb in &lin[a + 1..] {
                        quad[o] = ua * vb * off;
                        o += 1;
                    }
                }
            }
            finite
        })
        .reduce(|| true, |a, b| a && b);
    cancel.check()?;
    if finite {
        Ok(())
    } else {
        Err(CoreError::NonFinite)
    }
}

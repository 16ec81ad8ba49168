//! Sufficient statistics of (X, Y): counts, column sums, XᵀX, XᵀY and YᵀY per fold.
//!
//! All accumulation is in f64 whatever the input dtype. The work is split in a way that does
//! not depend on the number of threads — fixed row blocks processed in order, and within a
//! block a GEMM that splits only the output between threads — so the result is the same bit
//! for bit with 1 or 64 threads.

use crate::error::CoreError;
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Input element types the core reads directly (no up-front conversion of the whole array).
pub trait Element: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn finite(self) -> bool;
}

impl Element for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn finite(self) -> bool {
        self.is_finite()
    }
}

impl Element for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn finite(self) -> bool {
        self.is_finite()
    }
}

/// A bfloat16 value as its raw bit pattern (the upper 16 bits of an f32), read directly by
/// the core so that bfloat16 activation caches are never converted as a whole.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bf16(pub u16);

/// An IEEE binary16 (float16) value as its raw bit pattern.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct F16(pub u16);

impl Bf16 {
    /// The exact f32 value (bfloat16 is a truncated f32).
    #[inline(always)]
    pub fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
}

impl F16 {
    /// The exact f32 value, subnormals, infinities and NaNs included (exponent rebias by one
    /// multiplication: the 15 exponent+mantissa bits placed at f32 positions read as a number
    /// 2^-112 times the value, subnormals included, since f32 keeps gradual underflow).
    #[inline(always)]
    pub fn to_f32(self) -> f32 {
        let h = self.0 as u32;
        let sign = (h & 0x8000) << 16;
        let em = h & 0x7fff;
        let v = if em >= 0x7c00 {
            // infinity or NaN: all-ones exponent, mantissa kept (quiet bit included)
            f32::from_bits(0x7f80_0000 | ((em & 0x03ff) << 13))
        } else {
            f32::from_bits(em << 13) * f32::from_bits(0x7780_0000) // × 2^112
        };
        f32::from_bits(v.to_bits() | sign)
    }
}

impl Element for Bf16 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self.to_f32() as f64
    }
    #[inline(always)]
    fn finite(self) -> bool {
        self.0 & 0x7f80 != 0x7f80
    }
}

impl Element for F16 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self.to_f32() as f64
    }
    #[inline(always)]
    fn finite(self) -> bool {
        self.0 & 0x7c00 != 0x7c00
    }
}

/// Arithmetic of the Gram products of [`accumulate_with`].
///
/// `F64`: every product and sum in f64 (the exact default). `F32`: each row block's shifted
/// values are rounded to f32 and the block's XᵀX and XᵀY are formed by faer's f32 SIMD GEMM,
/// then added into the f64 statistics; counts, column sums and YᵀY stay in f64 (see
/// [`F32_GRAM_ROWS`] for the error bound). About twice the GEMM throughput of f64 and half the
/// staging memory traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F64,
    F32,
}

/// Rows per block of the float32 Gram path, fixed so that the error bound holds.
///
/// **Error bound.** Let x̃ = x − s be the shifted rows (s: the statistics' shift, the mean of the
/// first rows) and u = 2⁻²⁴ the unit roundoff of f32. Per block of m rows the core rounds each
/// x̃_ij to f32 (relative error ≤ u; f32/bf16/f16 inputs minus an f64 shift are formed exactly in
/// f64 first) and sums the m products in f32 in some order; by the standard bound for a
/// floating-point dot product, |fl(Σ a_i b_i) − Σ a_i b_i| ≤ γ_m Σ|a_i b_i|, γ_m = m u/(1 − m u).
/// The block result is then added to an f64 accumulator (error O(n/m · 2⁻⁵³), negligible).
/// Summing over blocks and using Cauchy–Schwarz on Σ_i |x̃_ij x̃_il|:
///
/// |Ĝ_jl − G_jl| ≤ ((m + 2) u + O(u²)) · ‖x̃_j‖₂ ‖x̃_l‖₂,
///
/// and the same with ‖ỹ_t‖₂ for XᵀY (the shifted targets are rounded to f32 as well). The bound
/// grows with the block length m, not with n: blocks restart the f32 sums. With
/// m = 1024 it is ≈ 6.1·10⁻⁵ relative to the column-norm product (typical errors, with
/// rounding errors of random sign, are ≈ √m u ≈ 2·10⁻⁶), well below the rounding of
/// bfloat16 (2⁻⁸ ≈ 3.9·10⁻³) and float16 (2⁻¹¹ ≈ 4.9·10⁻⁴) storage, while 1024 × p blocks
/// keep the GEMM at its peak. Because the shift is close to the mean, ‖x̃_j‖ ≈ ‖x_j − x̄_j‖ and
/// the bound is relative to the *centred* column norms: large common offsets cost nothing.
pub const F32_GRAM_ROWS: usize = 1024;

/// The documented bound factor (m + 2)·u of [`F32_GRAM_ROWS`] (without the O(u²) term).
pub fn f32_gram_bound_factor() -> f64 {
    (F32_GRAM_ROWS as f64 + 2.0) * (f32::EPSILON as f64 / 2.0)
}

/// Mutable views of per-fold accumulators, laid out as C-ordered numpy arrays:
/// count (K), sum_x (K·d), sum_y (K·k), xtx (K·d·d), xty (K·d·k, row-major d×k), yty (K·k·k).
pub struct StatsMut<'a> {
    pub d: usize,
    pub k: usize,
    pub count: &'a mut [f64],
    pub sum_x: &'a mut [f64],
    pub sum_y: &'a mut [f64],
    pub xtx: &'a mut [f64],
    pub xty: &'a mut [f64],
    pub yty: &'a mut [f64],
}

impl StatsMut<'_> {
    pub fn n_folds(&self) -> usize {
        self.count.len()
    }

    /// Checks the slice lengths against (K, d, k); returns a message naming the first mismatch.
    pub fn check_shapes(&self) -> Result<(), CoreError> {
        let (kf, d, k) = (self.n_folds(), self.d, self.k);
        let checks = [
            ("sum_x", self.sum_x.len(), kf * d),
            ("sum_y", self.sum_y.len(), kf * k),
            ("xtx", self.xtx.len(), kf * d * d),
            ("xty", self.xty.len(), kf * d * k),
            ("yty", self.yty.len(), kf * k * k),
        ];
        for (name, got, want) in checks {
            if got != want {
                return Err(crate::invalid!("{name} has {got} entries, expected {want}"));
            }
        }
        Ok(())
    }
}

/// An owned set of statistics (used by Rust callers and tests; Python owns numpy arrays).
#[derive(Clone, Debug, PartialEq)]
pub struct SufficientStats {
    pub d: usize,
    pub k: usize,
    pub shift_x: Vec<f64>,
    pub shift_y: Vec<f64>,
    pub count: Vec<f64>,
    pub sum_x: Vec<f64>,
    pub sum_y: Vec<f64>,
    pub xtx: Vec<f64>,
    pub xty: Vec<f64>,
    pub yty: Vec<f64>,
}

impl SufficientStats {
    /// Empty statistics for `n_folds` folds of d features and k targets, about the given shifts.
    pub fn new(n_folds: usize, shift_x: Vec<f64>, shift_y: Vec<f64>) -> Self {
        let (d, k) = (shift_x.len(), shift_y.len());
        Self {
            d,
            k,
            shift_x,
            shift_y,
            count: vec![0.0; n_folds],
            sum_x: vec![0.0; n_folds * d],
            sum_y: vec![0.0; n_folds * k],
            xtx: vec![0.0; n_folds * d * d],
            xty: vec![0.0; n_folds * d * k],
            yty: vec![0.0; n_folds * k * k],
        }
    }

    pub fn view_mut(&mut self) -> StatsMut<'_> {
        StatsMut {
            d: self.d,
            k: self.k,
            count: &mut self.count,
            sum_x: &mut self.sum_x,
            sum_y: &mut self.sum_y,
            xtx: &mut self.xtx,
            xty: &mut self.xty,
            yty: &mut self.yty,
        }
    }

    /// Adds rows (X, Y) with optional fold ids (see [`accumulate`]).
    pub fn update<T: Element>(
        &mut self,
        x: MatRef<'_, T>,
        y: MatRef<'_, f64>,
        folds: Option<&[usize]>,
    ) -> Result<(), CoreError> {
        let sx = self.shift_x.clone();
        let sy = self.shift_y.clone();
        accumulate(x, y, folds, &sx, &sy, self.view_mut()).map(|_| ())
    }

    /// Adds another set of statistics about the same shifts (fold by fold).
    pub fn merge_same_shift(&mut self, other: &SufficientStats) -> Result<(), CoreError> {
        if self.shift_x != other.shift_x || self.shift_y != other.shift_y {
            return Err("merge_same_shift needs identical shifts".into());
        }
        if self.count.len() != other.count.len() {
            return Err("cannot merge statistics with different fold counts".into());
        }
        for (a, b) in [
            (&mut self.count, &other.count),
            (&mut self.sum_x, &other.sum_x),
            (&mut self.sum_y, &other.sum_y),
            (&mut self.xtx, &other.xtx),
            (&mut self.xty, &other.xty),
            (&mut self.yty, &other.yty),
        ] {
            a.iter_mut().zip(b.iter()).for_each(|(u, v)| *u += *v);
        }
        Ok(())
    }
}

pub use crate::error::NON_FINITE;

/// Rows per block: bounded buffer (≈32 MB of f64 at most), independent of the thread count.
pub fn block_rows(d: usize) -> usize {
    (4_194_304 / d.max(1)).clamp(256, 4096)
}

/// Whether every entry is finite (parallel over row blocks, no allocation).
pub fn all_finite<T: Element>(x: MatRef<'_, T>) -> bool {
    matches!(finite_max_abs(x), Ok(Some(_)))
}

/// The largest |x_ij| when every entry is finite, `None` when one is not (0 for an empty
/// matrix). One parallel pass over row blocks, no allocation; stops early at a NaN/infinity
/// and returns `Err(Interrupted)` when the cancel flag is raised.
pub fn finite_max_abs<T: Element>(x: MatRef<'_, T>) -> Result<Option<f64>, CoreError> {
    let n = x.nrows();
    let d = x.ncols();
    let chunk = block_rows(d);
    let cancel = crate::threads::cancel_handle();
    // Per block: Ok(Some(max)) finite, Ok(None) non-finite, Err on cancel.
    let blocks = (0..n.div_ceil(chunk)).into_par_iter().map(|b| {
        cancel.check()?;
        let r0 = b * chunk;
        let r1 = (r0 + chunk).min(n);
        let mut amax = 0.0f64;
        for i in r0..r1 {
            for j in 0..d {
                let v = x[(i, j)];
                if !v.finite() {
                    return Ok(None);
                }
                amax = amax.max(v.to_f64().abs());
            }
        }
        Ok(Some(amax))
    });
    // try_reduce short-circuits on Err; a non-finite block (None) is kept as None.
    blocks
        .try_fold(
            || Some(0.0f64),
            |acc, b: Result<Option<f64>, CoreError>| {
                let b = b?;
                Ok(match (acc, b) {
                    (Some(a), Some(v)) => Some(a.max(v)),
                    _ => None,
                })
            },
        )
        .try_reduce(
            || Some(0.0f64),
            |a, b| {
                Ok(match (a, b) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                })
            },
        )
}

/// Adds the statistics of the shifted rows (x − shift_x, y − shift_y) into `out`.
///
/// `folds[i]` is the fold of row i (all rows go to fold 0 when `None`). Only the lower
/// triangle of each Gram is accumulated; it is mirrored to the upper triangle at the end, so
/// repeated calls stay exactly symmetric. Returns an error (and changes nothing) on shape
/// mismatches or out-of-range fold ids. Non-finite X values are detected while staging and
/// return [`CoreError::NonFinite`] (and a raised cancel flag [`CoreError::Interrupted`]); by
/// then earlier blocks may have been added, so callers that must not be left half-updated
/// accumulate into scratch statistics and commit them on success (the Python layer does).
pub fn accumulate<T: Element>(
    x: MatRef<'_, T>,
    y: MatRef<'_, f64>,
    folds: Option<&[usize]>,
    shift_x: &[f64],
    shift_y: &[f64],
    out: StatsMut<'_>,
) -> Result<f64, CoreError> {
    accumulate_with(x, y, folds, shift_x, shift_y, out, Precision::F64)
}

/// [`accumulate`] with the Gram arithmetic chosen by `precision` (see [`Precision`]).
///
/// Returns the largest |x_ij| of the rows read (0 for none), found while staging them, so a
/// caller that must check the magnitude of X (the Python layer's range check) needs no
/// separate pass over the rows.
pub fn accumulate_with<T: Element>(
    x: MatRef<'_, T>,
    y: MatRef<'_, f64>,
    folds: Option<&[usize]>,
    shift_x: &[f64],
    shift_y: &[f64],
    out: StatsMut<'_>,
    precision: Precision,
) -> Result<f64, CoreError> {
    let (n, d, k) = (x.nrows(), out.d, out.k);
    let n_folds = out.n_folds();
    out.check_shapes()?;
    if x.ncols() != d || shift_x.len() != d {
        return Err(crate::invalid!(
            "X has {} columns, statistics have {d}",
            x.ncols()
        ));
    }
    check_targets(y, shift_y, n, k)?;
    let fold_rows = fold_rows(folds, n, n_folds)?;
    let mut max_abs = 0.0f64;
    match precision {
        Precision::F64 => accumulate_blocks(&fold_rows, out, |rows, xb, yb, sum_x| {
            keep_largest(
                &mut max_abs,
                stage_block(x, y, rows, shift_x, shift_y, 1.0, xb, yb, sum_x),
            )
        }),
        Precision::F32 => {
            let shift_max = shift_x.iter().fold(0.0f64, |a, s| a.max(s.abs()));
            accumulate_blocks_f32(&fold_rows, out, shift_max, |rows, xb, yb, sum_x, scale| {
                let top = stage_block(x, y, rows, shift_x, shift_y, scale, xb, yb, sum_x);
                if let Some(t) = top {
                    max_abs = max_abs.max(t);
                }
                top
            })
        }
    }?;
    Ok(max_abs)
}

/// Folds one block's [`stage_block`] result into the running largest |x|; whether the block
/// was finite.
fn keep_largest(max_abs: &mut f64, block: Option<f64>) -> bool {
    block.map(|m| *max_abs = max_abs.max(m)).is_some()
}

/// Checks that Y is n × k and that its shift has k entries (the error names Y's shape).
pub(crate) fn check_targets(
    y: MatRef<'_, f64>,
    shift_y: &[f64],
    n: usize,
    k: usize,
) -> Result<(), CoreError> {
    if y.nrows() != n || y.ncols() != k || shift_y.len() != k {
        return Err(crate::invalid!(
            "Y has shape ({}, {}), expected ({n}, {k})",
            y.nrows(),
            y.ncols()
        ));
    }
    Ok(())
}

/// Rows of each of `n_folds` folds, in input order (the order fixes the summation order).
///
/// `folds[i]` is the fold of row i; with `None` all n rows go to fold 0. Errors on zero folds,
/// a fold-id count other than n, or an id out of range.
pub(crate) fn fold_rows(
    folds: Option<&[usize]>,
    n: usize,
    n_folds: usize,
) -> Result<Vec<Vec<usize>>, CoreError> {
    if n_folds == 0 {
        return Err("statistics need at least one fold".into());
    }
    match folds {
        None => Ok(vec![(0..n).collect()]),
        Some(f) => {
            if f.len() != n {
                return Err(crate::invalid!("{} fold ids for {n} rows", f.len()));
            }
            let mut rows = vec![Vec::new(); n_folds];
            for (i, &fi) in f.iter().enumerate() {
                if fi >= n_folds {
                    return Err(crate::invalid!(
                        "fold id {fi} out of range for {n_folds} folds"
                    ));
                }
                rows[fi].push(i);
            }
            Ok(rows)
        }
    }
}

/// Rows of the largest block [`accumulate_blocks`] stages for these folds and p features:
/// staging buffers are sized for it, so small calls stay small.
pub(crate) fn staging_rows(fold_rows: &[Vec<usize>], p: usize) -> usize {
    let largest = fold_rows.iter().map(Vec::len).max().unwrap_or(0);
    largest.min(block_rows(p))
}

/// Adds the statistics of row blocks into `out` (whose `d` is the feature count p), fold by
/// fold and block by block (`block_rows(p)` rows at a time, in `fold_rows` order).
///
/// `stage(rows, fb, yb, sum_x)` fills the column-major staging buffers of one block — `fb`
/// (m × p, leading dimension m) with the shifted features of `rows` and `yb` (m × k) with the
/// shifted targets — adds the feature column sums into the fold's `sum_x` (p entries), and
/// returns whether the input was finite; if not, this returns [`CoreError::NonFinite`] at once. The rest
/// (lower-triangle Gram, XᵀY, YᵀY, target sums, counts, mirroring) is done here with the fixed
/// reduction orders described in the module docs, so the results do not depend on the thread
/// count as long as `stage` does not either.
pub(crate) fn accumulate_blocks<F>(
    fold_rows: &[Vec<usize>],
    out: StatsMut<'_>,
    stage: F,
) -> Result<(), CoreError>
where
    F: FnMut(&[usize], &mut [f64], &mut [f64], &mut [f64]) -> bool,
{
    let (p, k) = (out.d, out.k);
    // Column-major staging buffers of one block (fb is m × p, yb is m × k, leading dimension m):
    // with this layout FbᵀFb reads a row-major left operand and a column-major right operand,
    // the combination faer's GEMM runs fastest (measured ≈2× faster than row-major staging).
    let cap = staging_rows(fold_rows, p);
    let mut fb = crate::error::try_zeros(cap * p, "the feature staging block")?;
    let mut yb = crate::error::try_zeros(cap * k, "the target staging block")?;
    block_loop(
        fold_rows,
        out,
        block_rows(p),
        p,
        &mut fb,
        &mut yb,
        stage,
        |fb, m, yb, g, gxy, par| {
            let ybr = col_major(yb, m, k);
            gram_update(col_major(fb, m, p), ybr, g, gxy, par);
        },
    )
}

/// [`accumulate_blocks`] with the block Grams in f32 (see [`Precision::F32`] and the error
/// bound at [`F32_GRAM_ROWS`]): `stage(rows, fb, yb, sum_x, scale)` fills an f32 feature block
/// with the shifted values times `scale` (a power of two), rounded once, adds their f64
/// column sums (of the rounded values, unscaled, so that centring stays exact for the data the
/// Gram describes) and stages the f64 targets; it returns the largest |x_ij| read, or `None`
/// for a non-finite value. Blocks have at most [`F32_GRAM_ROWS`] rows. Each block's
/// lower-triangle XᵀX and its XᵀY are formed by faer's f32 GEMM (which splits only the output
/// between threads) and added into the f64 statistics in a fixed order, so the result is
/// still the same bit for bit for any thread count.
///
/// **Scaling.** f32 has a far narrower range than f64: unscaled, values below ~1e-19 (whose
/// products underflow) or above ~1e17 (whose block sums overflow) gave silently wrong Grams.
/// Each block's features are therefore staged times a power of two c_x that brings their
/// magnitude M = max(largest |x_ij|, largest |shift|) into [2⁻⁸, 2⁸] (c_x is kept from block
/// to block; a block outside that window with the current c_x is staged again with a fitted
/// one), its targets times their own c_y, and the products are scaled back by 1/c_x² and
/// 1/(c_x c_y) in f64. Powers of two commute with rounding and with every product and sum as
/// long as nothing under- or overflows, so wherever the unscaled arithmetic was in range the
/// result is the same bit for bit, and the error bound holds at any scale of the data.
pub(crate) fn accumulate_blocks_f32<F>(
    fold_rows: &[Vec<usize>],
    out: StatsMut<'_>,
    shift_max: f64,
    mut stage: F,
) -> Result<(), CoreError>
where
    F: FnMut(&[usize], &mut [f32], &mut [f64], &mut [f64], f64) -> Option<f64>,
{
    let (p, k) = (out.d, out.k);
    let bs = block_rows(p).min(F32_GRAM_ROWS);
    let cap = staging_rows(fold_rows, p).min(bs);
    // The staging block holds the p feature columns and, after them, the k targets rounded to
    // f32: one lower-triangle product of [X̃ | Ỹ] gives the block's X̃ᵀX̃ and (in its bottom-left
    // k × p part) Ỹᵀ X̃ at the GEMM's full rate, where a separate narrow X̃ᵀỸ product ran at a
    // fraction of it (measured: 15% of the whole f32 pass at p = 768, k = 16). Its Ỹᵀ Ỹ corner
    // is not used: YᵀY stays in f64.
    let q = p + k;
    let mut fb = try_zeros_f32(cap * q, "the float32 feature staging block")?;
    let mut yb = crate::error::try_zeros(cap * k, "the target staging block")?;
    let mut g32 = try_zeros_f32(q * q, "the float32 block Gram")?;
    let mut saved_sums = vec![0.0f64; p];
    // the scale the current block's features were staged with (read by the product below)
    let scale_x = std::cell::Cell::new(1.0f64);
    block_loop(
        fold_rows,
        out,
        bs,
        q,
        &mut fb,
        &mut yb,
        |rows, fb, yb, sum_x| {
            let mut c = scale_x.get();
            // the column sums before this block: a block staged again starts from them (so
            // the sums are added in the same order as without the scaling)
            saved_sums.copy_from_slice(sum_x);
            for _ in 0..2 {
                let Some(top) = stage(rows, fb, yb, sum_x, c) else {
                    return false;
                };
                let magnitude = top.max(shift_max);
                if f32_scale_fits(c, magnitude) {
                    break;
                }
                c = f32_scale_for(magnitude); // fits by construction: the loop ends next time
                sum_x.copy_from_slice(&saved_sums);
            }
            scale_x.set(c);
            true
        },
        |fb, m, yb, g, gxy, par| {
            let c_x = scale_x.get();
            let top_y = yb.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            let c_y = if f32_scale_fits(1.0, top_y) {
                1.0
            } else {
                f32_scale_for(top_y)
            };
            // target column t goes to staging column p + t (column-major, leading dimension m)
            for (o, &v) in fb[m * p..m * q].iter_mut().zip(yb) {
                *o = (v * c_y) as f32;
            }
            let fbr = col_major(&fb[..m * q], m, q);
            // SAFETY: g32 holds q·q f32 (column-major q × q); only its lower triangle is
            // written and read.
            let gm = unsafe { MatMut::from_raw_parts_mut(g32.as_mut_ptr(), q, q, 1, q as isize) };
            triangular::matmul(
                gm,
                BlockStructure::TriangularLower,
                Accum::Replace,
                fbr.transpose(),
                BlockStructure::Rectangular,
                fbr,
                BlockStructure::Rectangular,
                1.0f32,
                par,
            );
            // Column j of the product: rows j..p are X̃ᵀX̃'s lower triangle (at j·p + i in g),
            // rows p..q are Ỹᵀ x̃_j (row j of the row-major p × k XᵀY).
            let (back_xx, back_xy) = (1.0 / (c_x * c_x), 1.0 / (c_x * c_y));
            g.par_chunks_mut(p)
                .zip(g32.par_chunks(q))
                .enumerate()
                .for_each(|(j, (gc, hc))| add_widened(&mut gc[j..], &hc[j..p], back_xx));
            // Ỹᵀ x̃_j, p × k entries: small, sequential (gxy is empty when k = 0)
            if k > 0 {
                for (j, xyc) in gxy.chunks_mut(k).enumerate() {
                    for (a, &b) in xyc.iter_mut().zip(&g32[j * q + p..(j + 1) * q]) {
                        *a += b as f64 * back_xy;
                    }
                }
            }
        },
    )
}

/// Whether values of magnitude at most `magnitude` (and, relative to it, down to f64's
/// resolution) times the power of two `scale` stay well inside f32's range in the float32
/// Gram: within [2⁻⁸, 2⁸], block sums of 1024 products stay below 2²⁶ and products of values
/// down to 2⁻⁵⁵ of the magnitude stay normal (f32's smallest normal is 2⁻¹²⁶). All zeros fit.
fn f32_scale_fits(scale: f64, magnitude: f64) -> bool {
    let v = scale * magnitude;
    magnitude == 0.0 || ((1.0 / 256.0)..=256.0).contains(&v)
}

/// The power of two c with c · `magnitude` in [1/2, 1) (exponent clamped to ±500: the data's
/// magnitudes were checked to lie within 1e±100, and c² must stay an f64 normal number).
fn f32_scale_for(magnitude: f64) -> f64 {
    if !(magnitude > 0.0 && magnitude.is_finite()) {
        return 1.0;
    }
    // magnitude = f · 2^e with f in [1, 2): the biased exponent bits (subnormals: e ≤ -1023)
    let e = ((magnitude.to_bits() >> 52) & 0x7ff) as i64 - 1023;
    let k = (-e - 1).clamp(-500, 500);
    f64::from_bits(((1023 + k) as u64) << 52)
}

/// dst += src widened to f64 times `factor` (a power of two: exact), compiled for AVX2 too,
/// like [`stage_group`].
fn add_widened(dst: &mut [f64], src: &[f32], factor: f64) {
    #[inline(always)]
    fn add(dst: &mut [f64], src: &[f32], factor: f64) {
        for (a, &b) in dst.iter_mut().zip(src) {
            *a += b as f64 * factor;
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn add_avx2(dst: &mut [f64], src: &[f32], factor: f64) {
        add(dst, src, factor)
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { add_avx2(dst, src, factor) };
    }
    add(dst, src, factor)
}

/// The fold-and-block loop of [`accumulate_blocks`] and [`accumulate_blocks_f32`], which differ
/// only in the staging element type `X`, the block size `bs`, the staging columns `cols` (p, or
/// p + k when the targets are staged with the features) and how a block's Gram and XᵀY are
/// formed and added: for each non-empty fold, blocks of at most `bs` rows (in `fold_rows` order)
/// have their p feature columns staged into `fb` (column-major, leading dimension m, room for
/// `cols` columns) and their targets into `yb` by `stage` (after a cancel check; a non-finite
/// block returns [`CoreError::NonFinite`]); `gram_xy(fb, m, yb, xtx, xty, par)` adds the
/// block's lower-triangle Gram and XᵀY into the fold's, and the target sums, YᵀY and the count
/// are added here; each fold's Gram is mirrored at the end.
#[allow(clippy::too_many_arguments)]
fn block_loop<X, F, U>(
    fold_rows: &[Vec<usize>],
    out: StatsMut<'_>,
    bs: usize,
    cols: usize,
    fb: &mut [X],
    yb: &mut [f64],
    mut stage: F,
    mut gram_xy: U,
) -> Result<(), CoreError>
where
    F: FnMut(&[usize], &mut [X], &mut [f64], &mut [f64]) -> bool,
    U: FnMut(&mut [X], usize, &[f64], &mut [f64], &mut [f64], Par),
{
    let StatsMut {
        d: p,
        k,
        count,
        sum_x,
        sum_y,
        xtx,
        xty,
        yty,
    } = out;
    let par = match rayon::current_num_threads() {
        0 | 1 => Par::Seq,
        t => Par::rayon(t),
    };
    // The blocks of all folds in the order of their first rows, each fold's own blocks still
    // in its row order (so every fold's sums are formed in the same order as fold by fold):
    // consecutive blocks then read neighbouring rows of X. Going fold by fold read X once per
    // fold with a stride of K rows under the default interleaved folds (row i in fold i mod K),
    // measured 17% slower for the whole pass at n = 100k, d = 768, K = 5.
    let mut schedule: Vec<(usize, usize)> = fold_rows
        .iter()
        .enumerate()
        .flat_map(|(f, rows)| (0..rows.len().div_ceil(bs)).map(move |c| (f, c)))
        .collect();
    schedule.sort_by_key(|&(f, c)| fold_rows[f][c * bs]);
    for (f, c) in schedule {
        crate::threads::check_cancel()?;
        let rows = &fold_rows[f];
        let chunk = &rows[c * bs..rows.len().min((c + 1) * bs)];
        let g = &mut xtx[f * p * p..(f + 1) * p * p];
        let gxy = &mut xty[f * p * k..(f + 1) * p * k];
        let gyy = &mut yty[f * k * k..(f + 1) * k * k];
        let sx = &mut sum_x[f * p..(f + 1) * p];
        let sy = &mut sum_y[f * k..(f + 1) * k];
        let m = chunk.len();
        if !stage(chunk, &mut fb[..m * p], &mut yb[..m * k], sx) {
            // The caller discards or restores these statistics (see the Python layer).
            return Err(CoreError::NonFinite);
        }
        gram_xy(&mut fb[..m * cols], m, &yb[..m * k], g, gxy, par);
        let ybr = col_major(&yb[..m * k], m, k);
        column_sums_add(ybr, sy);
        // YᵀY is k × k: tiny, sequential.
        if k > 0 {
            let gyy_mat = row_major_mut(gyy, k, k);
            matmul(gyy_mat, Accum::Add, ybr.transpose(), ybr, 1.0, Par::Seq);
        }
        count[f] += m as f64;
    }
    for (f, rows) in fold_rows.iter().enumerate() {
        if !rows.is_empty() {
            mirror_lower(&mut xtx[f * p * p..(f + 1) * p * p], p);
        }
    }
    Ok(())
}

fn try_zeros_f32(len: usize, what: &str) -> Result<Vec<f32>, CoreError> {
    let mut v: Vec<f32> = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| CoreError::OutOfMemory {
            what: what.to_string(),
            bytes: crate::error::bytes_of(len, 4),
        })?;
    v.resize(len, 0.0);
    Ok(v)
}

pub(crate) fn col_major<E>(buf: &[E], nrows: usize, ncols: usize) -> MatRef<'_, E> {
    assert_eq!(buf.len(), nrows * ncols);
    // SAFETY: `buf` holds exactly nrows·ncols elements in column-major order and outlives the view.
    unsafe { MatRef::from_raw_parts(buf.as_ptr(), nrows, ncols, 1, nrows as isize) }
}

pub(crate) fn row_major_mut<E>(buf: &mut [E], nrows: usize, ncols: usize) -> MatMut<'_, E> {
    assert_eq!(buf.len(), nrows * ncols);
    // SAFETY: as in `row_major`, with exclusive access through the &mut borrow.
    unsafe { MatMut::from_raw_parts_mut(buf.as_mut_ptr(), nrows, ncols, ncols as isize, 1) }
}

/// Raw pointer to the staging buffer that tasks writing disjoint rows may share.
struct SharedOut<O>(*mut O);
// SAFETY: each task writes a disjoint set of rows of the buffer (see `stage_block`).
unsafe impl<O> Send for SharedOut<O> {}
unsafe impl<O> Sync for SharedOut<O> {}

impl<O> Clone for SharedOut<O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<O> Copy for SharedOut<O> {}

impl<O> SharedOut<O> {
    // A method (not field access) so closures capture the Send/Sync wrapper, not the raw pointer.
    fn get(self) -> *mut O {
        self.0
    }
}

/// Staging element types: f64 (exact) or f32 (the float32 Gram path). Values are rounded once
/// with `from_f64` and the column sums are taken from the rounded values.
pub(crate) trait Staged: Copy + Send + Sync + 'static {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl Staged for f64 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

impl Staged for f32 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// Copies the chosen rows into the column-major staging buffer (f64, or rounded once to f32 for
/// the float32 Gram path), minus the shifts and times `scale` (a power of two that keeps the
/// float32 path in range, see [`accumulate_blocks_f32`]; 1 elsewhere), and adds their column
/// sums, unscaled, into `sum_x`. Returns the largest |x_ij| read (in f64, before shift and
/// scale; 0 for no rows), or `None` when a value is not finite.
///
/// Parallel over groups of 64 rows: a task reads its rows (contiguous slices when X is
/// C-ordered) and writes each column's 64 values contiguously, so both sides use whole cache
/// lines. (Walking all rows per column tile instead made every read a cache and TLB miss, and
/// staging cost as much as the GEMM.) Each group keeps its own partial column sums, which are
/// then added in group order: the summation order is fixed whatever the thread count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stage_block<T: Element, O: Staged>(
    x: MatRef<'_, T>,
    y: MatRef<'_, f64>,
    rows: &[usize],
    shift_x: &[f64],
    shift_y: &[f64],
    scale: f64,
    xb: &mut [O],
    yb: &mut [f64],
    sum_x: &mut [f64],
) -> Option<f64> {
    let m = rows.len();
    let d = shift_x.len();
    let k = shift_y.len();
    assert!(xb.len() == m * d && yb.len() == m * k && sum_x.len() == d);
    let out = SharedOut(xb.as_mut_ptr());
    let partial: Vec<(Vec<f64>, u64)> = rows
        .par_chunks(GROUP)
        .enumerate()
        // SAFETY: group g writes rows g·GROUP.. of every column of the m × d buffer, which
        // no other group writes; its rows of X are valid row indices (checked by the callers).
        .map(|(g, group)| unsafe { stage_group(x, group, g * GROUP, m, shift_x, scale, out.get()) })
        .collect();
    // |x| as f64 bits: NaN and infinities compare above every finite value
    let top = partial.iter().map(|(_, t)| *t).max().unwrap_or(0);
    let all_finite = top < f64::INFINITY.to_bits();
    let max_abs = f64::from_bits(top);
    for (sums, _) in &partial {
        for (s, p) in sum_x.iter_mut().zip(sums) {
            *s += p;
        }
    }
    for t in 0..k {
        let col = &mut yb[t * m..(t + 1) * m];
        for (dst, &r) in col.iter_mut().zip(rows) {
            *dst = y[(r, t)] - shift_y[t];
        }
    }
    all_finite.then_some(max_abs)
}

/// Rows per staging group of [`stage_block`] (one task; its tile is GROUP × GROUP values).
const GROUP: usize = 64;

/// One task of [`stage_block`]: rows `group` of X (the group starting at row `i0` of the
/// m-row block) shifted, rounded once and written into the column-major staging buffer at
/// `out`. Returns the group's column sums of the rounded values (each summed in row order)
/// and the largest |x_ij| read as the bits of an f64, where NaN and infinities compare above
/// every finite value, so one integer maximum also checks finiteness and the loops have no
/// branch.
///
/// Compiled a second time for AVX2 and chosen at run time where the CPU has it: the extension
/// is built for the x86-64 baseline, whose 2-wide SSE2 loops made staging about a fifth of
/// the float32 Gram pass at d = 768 (half that with AVX2). The arithmetic is the same, so
/// are the results.
///
/// # Safety
/// `out` must hold m × d values (d = `shift_x.len()`, X's column count) and no other task
/// may write rows i0..i0 + group.len() of it; `group` must hold row indices of X.
unsafe fn stage_group<T: Element, O: Staged>(
    x: MatRef<'_, T>,
    group: &[usize],
    i0: usize,
    m: usize,
    shift_x: &[f64],
    scale: f64,
    out: *mut O,
) -> (Vec<f64>, u64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return stage_group_avx2(x, group, i0, m, shift_x, scale, out);
    }
    stage_group_any(x, group, i0, m, shift_x, scale, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn stage_group_avx2<T: Element, O: Staged>(
    x: MatRef<'_, T>,
    group: &[usize],
    i0: usize,
    m: usize,
    shift_x: &[f64],
    scale: f64,
    out: *mut O,
) -> (Vec<f64>, u64) {
    stage_group_any(x, group, i0, m, shift_x, scale, out)
}

#[inline(always)]
unsafe fn stage_group_any<T: Element, O: Staged>(
    x: MatRef<'_, T>,
    group: &[usize],
    i0: usize,
    m: usize,
    shift_x: &[f64],
    scale: f64,
    out: *mut O,
) -> (Vec<f64>, u64) {
    let d = shift_x.len();
    let unscale = 1.0 / scale; // a power of two, like `scale`: both products are exact
    let contiguous_rows = x.col_stride() == 1;
    let mut sums = vec![0.0f64; d];
    let mut top = 0u64;
    let mut tile = [O::from_f64(0.0); GROUP * GROUP];
    for j0 in (0..d).step_by(GROUP) {
        let w = GROUP.min(d - j0);
        let shift = &shift_x[j0..j0 + w];
        let acc = &mut sums[j0..j0 + w];
        // gather a (rows × w) tile, row-major, shifted and rounded once; the column sums
        // advance row by row (independent across columns, so they vectorise)
        for (ii, &r) in group.iter().enumerate() {
            let dst = &mut tile[ii * GROUP..ii * GROUP + w];
            if contiguous_rows {
                // with unit column stride, row r's entries j0..j0+w are contiguous
                let src = std::slice::from_raw_parts(x.row(r).as_ptr().add(j0), w);
                for (((o, &v), &s), a) in dst.iter_mut().zip(src).zip(shift).zip(&mut *acc) {
                    let f = v.to_f64();
                    top = top.max(f.abs().to_bits());
                    *o = O::from_f64((f - s) * scale);
                    *a += o.to_f64() * unscale;
                }
            } else {
                let row = x.row(r);
                for (jj, (o, a)) in dst.iter_mut().zip(acc.iter_mut()).enumerate() {
                    let f = row[j0 + jj].to_f64();
                    top = top.max(f.abs().to_bits());
                    *o = O::from_f64((f - shift[jj]) * scale);
                    *a += o.to_f64() * unscale;
                }
            }
        }
        // write it column by column: `group.len()` contiguous values per column
        for jj in 0..w {
            let col = std::slice::from_raw_parts_mut(out.add((j0 + jj) * m + i0), group.len());
            for (ii, o) in col.iter_mut().enumerate() {
                *o = tile[ii * GROUP + jj];
            }
        }
    }
    (sums, top)
}

/// Lower-triangle Gram update G += XbᵀXb (half the flops of a full GEMM) and XᵀY += Xbᵀ Yb.
///
/// faer's triangular GEMM splits the *output* between threads and keeps each entry's reduction
/// order fixed, so the result does not depend on the thread count (the tests check this bit
/// for bit with 1, 2 and 3 threads).
pub(crate) fn gram_update(
    xb: MatRef<'_, f64>,
    yb: MatRef<'_, f64>,
    g: &mut [f64],
    gxy: &mut [f64],
    par: Par,
) {
    let d = xb.ncols();
    let k = yb.ncols();
    // SAFETY: g holds a d×d matrix; column-major and row-major views coincide up to transpose
    // and only the lower triangle is written (then mirrored).
    let gm = unsafe { MatMut::from_raw_parts_mut(g.as_mut_ptr(), d, d, 1, d as isize) };
    triangular::matmul(
        gm,
        BlockStructure::TriangularLower,
        Accum::Add,
        xb.transpose(),
        BlockStructure::Rectangular,
        xb,
        BlockStructure::Rectangular,
        1.0,
        par,
    );
    if k > 0 {
        matmul(
            row_major_mut(gxy, d, k),
            Accum::Add,
            xb.transpose(),
            yb,
            1.0,
            par,
        );
    }
}

/// sums[j] += Σ_i m[i, j] for a column-major block, each column summed in row order.
fn column_sums_add(m: MatRef<'_, f64>, sums: &mut [f64]) {
    sums.par_iter_mut().enumerate().for_each(|(j, s)| {
        let col = m.col(j);
        let mut acc = 0.0f64;
        for i in 0..m.nrows() {
            acc += col[i];
        }
        *s += acc;
    });
}

/// Copies the lower triangle of a d×d matrix (stored column-major) onto its upper triangle.
pub(crate) fn mirror_lower(g: &mut [f64], d: usize) {
    for j in 0..d {
        for i in (j + 1)..d {
            // lower entry (i, j) lives at j*d + i; upper (j, i) at i*d + j
            g[i * d + j] = g[j * d + i];
        }
    }
}

//! Ridge solves for a whole grid of alphas from one symmetric eigendecomposition.
//!
//! With G = V diag(λ) Vᵀ (centred Gram) and B = Vᵀ Xcᵀ Yc:
//! * W(α) = V diag(1/(λ+α)) B for every α and every target;
//! * RSS(α) = ‖Yc‖² − Σ_j (λ_j + 2α)/(λ_j + α)² b_j² per target, evaluated without cancellation
//!   as perp + Σ_{λ_j>0} (α/(λ_j+α))² b_j²/λ_j (perp: the part of Yc outside the span of Xc);
//!   dof(α) = Σ_j λ_j/(λ_j + α);
//! * held-out squared error of any linear model on rows known only through their statistics;
//! * exact leave-one-out predictions through the leverages h = 1/n + Σ_j z_j²/(λ_j + α).
//!
//! No formula divides by α alone: 1/(λ+α) is taken as 0 where λ+α = 0 (a pseudo-inverse), so
//! α = 0 works and gives the minimum-norm least-squares solution on rank-deficient data.

use crate::error::CoreError;
use crate::stats::Element;
use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

/// Eigenvalues (ascending, round-off clamped to 0), eigenvectors and target projections.
#[derive(Clone, Debug)]
pub struct Spectrum {
    pub lam: Vec<f64>,
    pub v: Mat<f64>,
    pub b: Mat<f64>,
}

/// 1/(λ+α) where positive, else 0.
#[inline]
pub fn inv_shifted(lam: f64, alpha: f64) -> f64 {
    let den = lam + alpha;
    if den > 0.0 {
        1.0 / den
    } else {
        0.0
    }
}

/// Eigendecomposition of a symmetric Gram (lower triangle read) and B = Vᵀ cxy.
///
/// Eigenvalues at or below `max(λ) · d · ε` are set to zero together with their rows of B:
/// those directions hold rounding noise, not signal.
pub fn spectrum(
    gram: MatRef<'_, f64>,
    cxy: MatRef<'_, f64>,
    par: Par,
) -> Result<Spectrum, CoreError> {
    let d = gram.nrows();
    if gram.ncols() != d || cxy.nrows() != d {
        return Err(crate::invalid!(
            "gram is {}×{} and cxy has {} rows; expected a square Gram matching cxy",
            gram.nrows(),
            gram.ncols(),
            cxy.nrows()
        ));
    }
    crate::threads::check_cancel()?;
    let scratch =
        self_adjoint_evd_scratch::<f64>(d, ComputeEigenvectors::Yes, par, Default::default());
    // faer aborts the process when an allocation fails: reserve what the decomposition needs
    // first (its copy of the Gram, the eigenvectors, its workspace, B and the outputs that the
    // bindings copy), so a too-large problem is an OutOfMemory error instead.
    let need = crate::error::bytes_of(d * d, 8) * 3
        + scratch.size_bytes() as u128
        + crate::error::bytes_of(d * cxy.ncols(), 8) * 2;
    crate::error::ensure_allocatable(need, &format!("the eigendecomposition of a {d}×{d} Gram"))?;
    let mut v = Mat::<f64>::zeros(d, d);
    let mut s = Diag::<f64>::zeros(d);
    let mut mem = MemBuffer::new(scratch);
    self_adjoint_evd(
        gram,
        s.as_mut(),
        Some(v.as_mut()),
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|e| {
        CoreError::NoConvergence(format!(
            "symmetric eigendecomposition did not converge: {e:?}"
        ))
    })?;
    crate::threads::check_cancel()?;
    let s = s.column_vector();
    let mut lam: Vec<f64> = (0..d).map(|i| s[i]).collect();
    let top = lam.iter().cloned().fold(0.0f64, f64::max);
    let tol = top * d as f64 * f64::EPSILON;
    let mut b = Mat::<f64>::zeros(d, cxy.ncols());
    matmul(b.as_mut(), Accum::Replace, v.transpose(), cxy, 1.0, par);
    for (j, l) in lam.iter_mut().enumerate() {
        if *l <= tol {
            *l = 0.0;
            for t in 0..b.ncols() {
                b[(j, t)] = 0.0;
            }
        }
    }
    Ok(Spectrum { lam, v, b })
}

/// Spectra of several Grams at once (the full data and each K-fold training set): one
/// sequential eigendecomposition per thread, which scales far better than splitting a single
/// d×d eigendecomposition between threads.
pub fn spectra(
    grams: &[MatRef<'_, f64>],
    cxys: &[MatRef<'_, f64>],
) -> Result<Vec<Spectrum>, CoreError> {
    if grams.len() != cxys.len() {
        return Err(crate::invalid!(
            "{} Grams but {} cross-products",
            grams.len(),
            cxys.len()
        ));
    }
    let cancel = crate::threads::cancel_handle();
    grams
        .par_iter()
        .zip(cxys.par_iter())
        .map(|(g, c)| {
            cancel.check()?;
            spectrum(*g, *c, Par::Seq)
        })
        .collect()
}

/// The ridge path: per alpha, optionally the coefficients (d×k), the RSS per target and dof.
pub struct RidgePath {
    pub coefs: Vec<Mat<f64>>,
    /// rss[a][t]
    pub rss: Vec<Vec<f64>>,
    pub dof: Vec<f64>,
}

pub fn ridge_path(
    spec: &Spectrum,
    perp: &[f64],
    alphas: &[f64],
    with_coefs: bool,
    par: Par,
) -> Result<RidgePath, CoreError> {
    let d = spec.lam.len();
    let k = spec.b.ncols();
    if perp.len() != k {
        return Err(crate::invalid!(
            "perp has {} entries for {k} targets",
            perp.len()
        ));
    }
    // b_j²/λ_j, the squared coordinates of Yc on the unit left singular vectors.
    let b2_over_lam = Mat::<f64>::from_fn(d, k, |j, t| {
        let l = spec.lam[j];
        if l > 0.0 {
            spec.b[(j, t)] * spec.b[(j, t)] / l
        } else {
            0.0
        }
    });
    if with_coefs {
        let need = crate::error::bytes_of(alphas.len() * d * k, 8) * 2;
        crate::error::ensure_allocatable(need, "the coefficients of every alpha")?;
    }
    let mut coefs = Vec::with_capacity(if with_coefs { alphas.len() } else { 0 });
    let mut rss = Vec::with_capacity(alphas.len());
    let mut dof = Vec::with_capacity(alphas.len());
    let mut scaled = Mat::<f64>::zeros(d, k);
    for &alpha in alphas {
        crate::threads::check_cancel()?;
        let r: Vec<f64> = spec.lam.iter().map(|&l| inv_shifted(l, alpha)).collect();
        let rss_a: Vec<f64> = (0..k)
            .map(|t| {
                let mut acc = perp[t];
                for j in 0..d {
                    if spec.lam[j] > 0.0 {
                        let shrink = alpha * r[j];
                        acc += shrink * shrink * b2_over_lam[(j, t)];
                    }
                }
                acc
            })
            .collect();
        rss.push(rss_a);
        dof.push(spec.lam.iter().zip(&r).map(|(l, ri)| l * ri).sum());
        if with_coefs {
            for t in 0..k {
                for j in 0..d {
                    scaled[(j, t)] = spec.b[(j, t)] * r[j];
                }
            }
            let mut w = Mat::<f64>::zeros(d, k);
            matmul(
                w.as_mut(),
                Accum::Replace,
                spec.v.as_ref(),
                scaled.as_ref(),
                1.0,
                par,
            );
            coefs.push(w);
        }
    }
    Ok(RidgePath { coefs, rss, dof })
}

/// Statistics of held-out rows in a shifted frame (x̃ = x − s, ỹ = y − t).
pub struct FoldStats<'a> {
    pub xtx: MatRef<'a, f64>,
    pub xty: MatRef<'a, f64>,
    pub yty_diag: &'a [f64],
    pub sum_x: &'a [f64],
    pub sum_y: &'a [f64],
    pub n: f64,
}

/// Sum of squared errors of models (W_a, c̃_a) on rows known through `fold` statistics:
/// SSE = ỹỹ − 2 diag(WᵀX̃ᵀỹ) + diag(WᵀX̃ᵀX̃W) − 2c̃(Σỹ − WᵀΣx̃) + n c̃². Returns sse[a][t].
pub fn heldout_sse(
    fold: &FoldStats<'_>,
    coefs: &[MatRef<'_, f64>],
    offsets: &[Vec<f64>],
    par: Par,
) -> Result<Vec<Vec<f64>>, CoreError> {
    let d = fold.xtx.nrows();
    let k = fold.xty.ncols();
    if coefs.len() != offsets.len() {
        return Err("one offset vector per model is needed".into());
    }
    for (w, c) in coefs.iter().zip(offsets) {
        if w.nrows() != d || w.ncols() != k || c.len() != k {
            return Err(crate::invalid!(
                "model has shape {}×{}, expected {d}×{k}",
                w.nrows(),
                w.ncols()
            ));
        }
    }
    // X̃ᵀX̃ W for all models in one d × (models·k) product: one wide GEMM runs near the
    // machine's peak where one d × k product per model does not.
    let width = coefs.len() * k;
    crate::error::ensure_allocatable(
        crate::error::bytes_of(d * width, 8) * 2,
        "the held-out products",
    )?;
    let all = Mat::<f64>::from_fn(d, width, |j, c| coefs[c / k.max(1)][(j, c % k.max(1))]);
    let mut gw_all = Mat::<f64>::zeros(d, width);
    matmul(
        gw_all.as_mut(),
        Accum::Replace,
        fold.xtx,
        all.as_ref(),
        1.0,
        par,
    );
    let mut out = Vec::with_capacity(coefs.len());
    for (m, (w, c)) in coefs.iter().zip(offsets).enumerate() {
        let gw = gw_all.as_ref().subcols(m * k, k);
        let mut row = Vec::with_capacity(k);
        for t in 0..k {
            let (mut quad, mut cross, mut wsx) = (0.0, 0.0, 0.0);
            for j in 0..d {
                quad += w[(j, t)] * gw[(j, t)];
                cross += w[(j, t)] * fold.xty[(j, t)];
                wsx += w[(j, t)] * fold.sum_x[j];
            }
            let lin = fold.sum_y[t] - wsx;
            let sse =
                fold.yty_diag[t] - 2.0 * cross + quad - 2.0 * c[t] * lin + fold.n * c[t] * c[t];
            row.push(sse.max(0.0));
        }
        out.push(row);
    }
    Ok(out)
}

/// Inputs of [`loo_predictions`] that describe the fitted path.
pub struct LooModel<'a> {
    pub x_mean: &'a [f64],
    pub y_mean: &'a [f64],
    pub spec: &'a Spectrum,
    pub alphas: &'a [f64],
    pub n_total: f64,
    pub fit_intercept: bool,
}

impl LooModel<'_> {
    fn check<T: Element>(&self, x: MatRef<'_, T>, y: MatRef<'_, f64>) -> Result<(), CoreError> {
        let d = x.ncols();
        let spec = self.spec;
        if spec.lam.len() != d || self.x_mean.len() != d || self.y_mean.len() != y.ncols() {
            return Err("LOO inputs disagree on the number of features or targets".into());
        }
        if y.nrows() != x.nrows() || spec.b.ncols() != y.ncols() {
            return Err("LOO output or targets have the wrong shape".into());
        }
        Ok(())
    }

    /// Whether the Gram's kept directions span all the training rows (rank n − [intercept],
    /// as with more features than rows): then the projection onto them is I − 11ᵀ/n (I
    /// without an intercept), so Σ_j z_ij²/λ_j = 1 − [1/n] and Σ_j z_ij b_j/λ_j = y_i − ȳ, and
    /// the LOO residual and 1 − h take their no-cancellation forms (see [`LooBlock`]).
    fn interpolating(&self) -> bool {
        let rank = self.spec.lam.iter().filter(|&&l| l > 0.0).count() as f64;
        rank == self.n_total - if self.fit_intercept { 1.0 } else { 0.0 }
    }
}

/// One block of the fused leave-one-out pass: rows r0..r0 + m, per alpha a (and target t)
/// `lev[(i, a)]` and `fitted[(i, a·k + t)]`. Usually the leverage without the intercept's
/// 1/n, Σ_j z_ij²/(λ_j + α), and the centred fitted value Σ_j z_ij b_j/(λ_j + α).
///
/// `interpolating` (the Gram spans the rows, [`LooModel::interpolating`]): 1 − h and the
/// residual y − ŷ themselves, Σ_j z_ij² w_j and Σ_j z_ij b_j w_j with w_j = α/(λ_j(λ_j + α))
/// = 1/λ_j − 1/(λ_j + α). As α → 0 both tend to 0 there (the fit interpolates), and forming
/// them as 1 − h and y − ŷ cancelled: relative errors of ε/(α/λ) in the LOO scores, NaN once
/// 1 − h fell below 1e-12.
struct LooBlock<'a> {
    r0: usize,
    m: usize,
    lev: MatRef<'a, f64>,
    fitted: MatRef<'a, f64>,
    interpolating: bool,
    base: f64,
}

impl LooBlock<'_> {
    /// The LOO prediction of row i (of the block) for alpha a and target t, or NaN where the
    /// leverage reaches 1.
    #[inline(always)]
    fn prediction(&self, i: usize, a: usize, k: usize, t: usize, yi: f64, y_mean: f64) -> f64 {
        let (lev, fit) = (self.lev[(i, a)], self.fitted[(i, a * k + t)]);
        if self.interpolating {
            // 1 − h as a sum of non-negative terms: accurate where tiny, 0 only at α = 0
            if lev > 0.0 {
                yi - fit / lev
            } else {
                f64::NAN
            }
        } else {
            loo_value(yi, y_mean, fit, 1.0 - (self.base + lev))
        }
    }
}

/// The row-block pass shared by [`loo_predictions`] and [`loo_sse`].
///
/// Per block of rows: Xc (staged in parallel, f64), Z = Xc V once, then for *all* alphas at
/// once the leverages H = (Z∘Z) R (R[j, a] = 1/(λ_j + α_a)) and the fitted values
/// Z S with S = [diag(r_a) B]_a (d × A·k): two GEMMs per block, Z reused across alphas, no
/// per-alpha n × k array formed (where the Gram spans the rows, with the weights of
/// [`LooBlock`] instead, giving 1 − h and the residuals). `sink` consumes each block.
fn loo_blocks<T: Element>(
    x: MatRef<'_, T>,
    model: &LooModel<'_>,
    par: Par,
    mut sink: impl FnMut(LooBlock<'_>),
) -> Result<(), CoreError> {
    let n = x.nrows();
    let d = x.ncols();
    let spec = model.spec;
    let k = spec.b.ncols();
    let n_alphas = model.alphas.len();
    let bs = crate::stats::block_rows(d).min(n.max(1));
    let interpolating = model.interpolating();
    let base = intercept_leverage(model);
    // the weights of the two products: 1/(λ + α), or w = α/(λ(λ + α)) (see `LooBlock`),
    // formed as (α/λ)/(λ + α) so that nothing underflows at tiny scales
    let inv: Vec<Vec<f64>> = model
        .alphas
        .iter()
        .map(|&a| {
            spec.lam
                .iter()
                .map(|&l| match (interpolating, l > 0.0) {
                    (false, _) => inv_shifted(l, a),
                    (true, true) => (a / l) * inv_shifted(l, a),
                    (true, false) => 0.0,
                })
                .collect()
        })
        .collect();
    let r_mat = Mat::<f64>::from_fn(d, n_alphas, |j, a| inv[a][j]);
    let s_mat = Mat::<f64>::from_fn(d, n_alphas * k, |j, c| spec.b[(j, c % k)] * inv[c / k][j]);
    let mut xc = crate::error::try_zeros(bs * d, "the LOO staging block")?;
    let mut z = Mat::<f64>::zeros(bs, d);
    let mut z2 = Mat::<f64>::zeros(bs, d);
    let mut lev = Mat::<f64>::zeros(bs, n_alphas);
    let mut fitted = Mat::<f64>::zeros(bs, n_alphas * k);
    let no_targets = MatRef::<f64>::from_row_major_slice(&[], n, 0);
    let mut sums = vec![0.0f64; d]; // required by `stage_block`, unused here
    let mut r0 = 0;
    while r0 < n {
        crate::threads::check_cancel()?;
        let m = bs.min(n - r0);
        let rows: Vec<usize> = (r0..r0 + m).collect();
        // the rows were validated by the caller (finite): the result is not needed here
        let _ = crate::stats::stage_block(
            x,
            no_targets,
            &rows,
            model.x_mean,
            &[],
            1.0,
            &mut xc[..m * d],
            &mut [],
            &mut sums,
        );
        let xcb = crate::stats::col_major(&xc[..m * d], m, d);
        matmul(
            z.as_mut().subrows_mut(0, m),
            Accum::Replace,
            xcb,
            spec.v.as_ref(),
            1.0,
            par,
        );
        {
            let zb = z.as_ref().subrows(0, m);
            let z2b = z2.as_mut().subrows_mut(0, m);
            // column by column (faer matrices are column-major)
            z2b.par_col_iter_mut().enumerate().for_each(|(j, mut col)| {
                let src = zb.col(j);
                for i in 0..m {
                    col[i] = src[i] * src[i];
                }
            });
        }
        matmul(
            lev.as_mut().subrows_mut(0, m),
            Accum::Replace,
            z2.as_ref().subrows(0, m),
            r_mat.as_ref(),
            1.0,
            par,
        );
        if k > 0 {
            matmul(
                fitted.as_mut().subrows_mut(0, m),
                Accum::Replace,
                z.as_ref().subrows(0, m),
                s_mat.as_ref(),
                1.0,
                par,
            );
        }
        sink(LooBlock {
            r0,
            m,
            lev: lev.as_ref().subrows(0, m),
            fitted: fitted.as_ref().subrows(0, m),
            interpolating,
            base,
        });
        r0 += m;
    }
    Ok(())
}

/// The LOO prediction y − (y − ŷ)/(1 − h) from the usual forms of [`LooBlock`], or NaN where
/// the leverage reaches 1.
#[inline(always)]
fn loo_value(yi: f64, y_mean: f64, fitted: f64, one_minus_h: f64) -> f64 {
    if one_minus_h <= 1e-12 {
        f64::NAN
    } else {
        let resid = yi - (y_mean + fitted);
        yi - resid / one_minus_h
    }
}

fn intercept_leverage(model: &LooModel<'_>) -> f64 {
    if model.fit_intercept {
        1.0 / model.n_total
    } else {
        0.0
    }
}

/// Exact leave-one-out predictions for rows `x` (a subset of the training rows) with targets
/// `y`, written to `out[(a * n + i) * k + t]`. Rows whose leverage reaches 1 get NaN.
pub fn loo_predictions<T: Element>(
    x: MatRef<'_, T>,
    y: MatRef<'_, f64>,
    model: &LooModel<'_>,
    out: &mut [f64],
    par: Par,
) -> Result<(), CoreError> {
    model.check(x, y)?;
    let (n, k) = (x.nrows(), y.ncols());
    if out.len() != model.alphas.len() * n * k {
        return Err("LOO output or targets have the wrong shape".into());
    }
    if n == 0 || k == 0 {
        return Ok(());
    }
    loo_blocks(x, model, par, |blk| {
        // one slab of `out` per alpha, filled in parallel
        out.par_chunks_mut(n * k).enumerate().for_each(|(a, slab)| {
            for i in 0..blk.m {
                let r = blk.r0 + i;
                for t in 0..k {
                    slab[r * k + t] = blk.prediction(i, a, k, t, y[(r, t)], model.y_mean[t]);
                }
            }
        });
    })
}

/// Sums of squared leave-one-out errors sse[a][t] = Σ_i (ŷ_(−i) − y_i)² over rows `x`, fused
/// into the LOO pass (no A × n × k predictions are stored). Each term is formed exactly as
/// from [`loo_predictions`] (prediction minus target), so the scores agree with scoring those
/// predictions to rounding of the sum; a row whose leverage reaches 1 makes its sums NaN.
pub fn loo_sse<T: Element>(
    x: MatRef<'_, T>,
    y: MatRef<'_, f64>,
    model: &LooModel<'_>,
    par: Par,
) -> Result<Vec<Vec<f64>>, CoreError> {
    model.check(x, y)?;
    let k = y.ncols();
    let mut sse = vec![vec![0.0f64; k]; model.alphas.len()];
    if x.nrows() == 0 || k == 0 {
        return Ok(sse);
    }
    loo_blocks(x, model, par, |blk| {
        sse.par_iter_mut().enumerate().for_each(|(a, acc)| {
            for i in 0..blk.m {
                let r = blk.r0 + i;
                for (t, s) in acc.iter_mut().enumerate() {
                    let yi = y[(r, t)];
                    let e = blk.prediction(i, a, k, t, yi, model.y_mean[t]) - yi;
                    *s += e * e;
                }
            }
        });
    })?;
    Ok(sse)
}

//! Ridge paths through one tridiagonal reduction, for the K-fold training sets.
//!
//! K-fold CV needs, per fold, the coefficients W(α) = (G + αI)⁻¹ C of its training Gram for
//! every α of the grid, and nothing else from the Gram: no eigenvalues, no leverages. A full
//! eigendecomposition is more than that. Householder reduction G = Q T Qᵀ (T symmetric
//! tridiagonal) is its first and cheapest stage (LAPACK's dsytrd took 0.03 s against dsyevd's
//! 0.12 s at d = 768 on our 2-core machine), and with it every α costs O(d·k):
//!
//!   W(α) = Q (T + αI)⁻¹ Qᵀ C,
//!
//! one LDLᵀ solve of the tridiagonal T + αI per α (stable without pivoting: it is positive
//! definite), then Q applied once, as blocked Householder products, to all α's solutions at
//! once (d × A·k).
//!
//! This agrees with the eigendecomposition route ([`crate::ridge::spectrum`] then
//! [`crate::ridge::ridge_path`]) only where that route clamps nothing: a Gram with eigenvalues
//! at or below its round-off threshold gets the pseudo-inverse there, which a tridiagonal
//! solve cannot give. [`Tridiagonal::clamps_nothing`] tells the two cases apart from T alone
//! (a Sturm count), and the caller uses the spectrum where it returns false.
//!
//! Generalised cross-validation needs a little more, and still no eigenvectors: the residual
//! sum of squares inside the span of X along the grid, (αu)ᵀT⁻¹(αu) with u = (T + αI)⁻¹ Qᵀc
//! (two tridiagonal solves per α, [`TridiagonalRef::gcv_path`]), and the trace of the hat
//! matrix, from the eigenvalues of T alone ([`eigenvalues`]: implicit QL, O(d²)).

use crate::error::CoreError;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::tridiag::{tridiag_in_place, tridiag_in_place_scratch};
use faer::linalg::qr::no_pivoting::factor::recommended_block_size;
use faer::{Mat, MatRef, Par};
use rayon::prelude::*;

/// G = Q T Qᵀ: T in the diagonal and subdiagonal of `packed`, Q as Householder vectors below
/// the subdiagonal with their block factors in `factors` (faer's layout).
#[derive(Clone, Debug)]
pub struct Tridiagonal {
    pub packed: Mat<f64>,
    pub factors: Mat<f64>,
}

/// A borrowed [`Tridiagonal`] (any strides: the bindings read numpy's arrays in place).
#[derive(Clone, Copy, Debug)]
pub struct TridiagonalRef<'a> {
    pub packed: MatRef<'a, f64>,
    pub factors: MatRef<'a, f64>,
}

impl Tridiagonal {
    pub fn as_ref(&self) -> TridiagonalRef<'_> {
        TridiagonalRef {
            packed: self.packed.as_ref(),
            factors: self.factors.as_ref(),
        }
    }
}

/// Block size of the Householder factors of a d×d reduction (faer's own choice for its
/// eigendecomposition).
pub fn factor_rows(d: usize) -> usize {
    recommended_block_size::<f64>(d, d).max(1)
}

/// Householder tridiagonalisation of a symmetric Gram (lower triangle read).
pub fn tridiagonalize(gram: MatRef<'_, f64>, par: Par) -> Result<Tridiagonal, CoreError> {
    let d = gram.nrows();
    if gram.ncols() != d {
        return Err(crate::invalid!(
            "gram is {}×{}; expected a square matrix",
            gram.nrows(),
            gram.ncols()
        ));
    }
    crate::threads::check_cancel()?;
    let bs = factor_rows(d);
    let scratch = tridiag_in_place_scratch::<f64>(d, par, Default::default());
    // faer aborts the process when an allocation fails: reserve first (see `ridge::spectrum`).
    let need = crate::error::bytes_of(d * d + bs * d, 8) * 2 + scratch.size_bytes() as u128;
    crate::error::ensure_allocatable(
        need,
        &format!("the tridiagonal reduction of a {d}×{d} Gram"),
    )?;
    let mut packed = Mat::<f64>::zeros(d, d);
    packed.copy_from_triangular_lower(gram);
    let mut factors = Mat::<f64>::zeros(bs, d.saturating_sub(1));
    if d > 0 {
        let mut mem = MemBuffer::new(scratch);
        tridiag_in_place(
            packed.as_mut(),
            factors.as_mut(),
            par,
            MemStack::new(&mut mem),
            Default::default(),
        );
    }
    Ok(Tridiagonal { packed, factors })
}

/// Tridiagonal reductions of several Grams: one sequential reduction per thread (as
/// [`crate::ridge::spectra`] does for eigendecompositions); a single Gram is reduced with
/// `par`.
pub fn tridiagonalize_all(
    grams: &[MatRef<'_, f64>],
    par: Par,
) -> Result<Vec<Tridiagonal>, CoreError> {
    if let [gram] = grams {
        return Ok(vec![tridiagonalize(*gram, par)?]);
    }
    let cancel = crate::threads::cancel_handle();
    grams
        .par_iter()
        .map(|g| {
            cancel.check()?;
            tridiagonalize(*g, Par::Seq)
        })
        .collect()
}

/// [`Tridiagonal::ridge_path`] of several reductions with their own cross-products and one
/// grid of alphas: one sequential path per thread (as for the reductions themselves).
pub fn ridge_paths(
    reductions: &[TridiagonalRef<'_>],
    cxys: &[MatRef<'_, f64>],
    alphas: &[f64],
) -> Result<Vec<Mat<f64>>, CoreError> {
    if reductions.len() != cxys.len() {
        return Err(crate::invalid!(
            "{} reductions but {} cross-products",
            reductions.len(),
            cxys.len()
        ));
    }
    let cancel = crate::threads::cancel_handle();
    reductions
        .par_iter()
        .zip(cxys.par_iter())
        .map(|(r, c)| {
            cancel.check()?;
            r.ridge_path(*c, alphas, Par::Seq)
        })
        .collect()
}

impl TridiagonalRef<'_> {
    pub fn dim(&self) -> usize {
        self.packed.nrows()
    }

    /// The diagonal and subdiagonal of T.
    pub fn bands(&self) -> (Vec<f64>, Vec<f64>) {
        let d = self.dim();
        let diag = (0..d).map(|i| self.packed[(i, i)]).collect();
        let sub = (1..d).map(|i| self.packed[(i, i - 1)]).collect();
        (diag, sub)
    }

    /// True when every eigenvalue of T lies above `spectrum`'s round-off threshold
    /// max(λ)·d·ε, so that the eigendecomposition route would clamp nothing and the two routes
    /// solve the same systems. max(λ) is bounded above by Gershgorin's circles (a threshold
    /// at most a few times the spectrum's, so a borderline Gram takes the spectrum: slower,
    /// never different). The count of eigenvalues below the threshold is the number of
    /// non-positive pivots of the LDLᵀ factorisation of T − threshold·I (Sturm).
    pub fn clamps_nothing(&self) -> bool {
        let d = self.dim();
        if d == 0 {
            return true;
        }
        let (diag, sub) = self.bands();
        let off = |i: usize| -> f64 {
            let lo = if i > 0 { sub[i - 1].abs() } else { 0.0 };
            let hi = if i + 1 < d { sub[i].abs() } else { 0.0 };
            lo + hi
        };
        let top = (0..d).map(|i| diag[i] + off(i)).fold(0.0f64, f64::max);
        if !(top > 0.0 && top.is_finite()) {
            return false;
        }
        let tol = top * d as f64 * f64::EPSILON;
        let mut pivot = diag[0] - tol;
        if pivot <= 0.0 {
            return false;
        }
        for i in 1..d {
            pivot = diag[i] - tol - sub[i - 1] * sub[i - 1] / pivot;
            if pivot.is_nan() || pivot <= 0.0 {
                return false;
            }
        }
        true
    }

    /// W(α) = (G + αI)⁻¹ C for every α (each > 0), as one d × (A·k) matrix whose columns
    /// a·k .. a·k + k are W(α_a).
    pub fn ridge_path(
        &self,
        cxy: MatRef<'_, f64>,
        alphas: &[f64],
        par: Par,
    ) -> Result<Mat<f64>, CoreError> {
        let (d, k) = (self.dim(), cxy.ncols());
        self.check_inputs(cxy, alphas)?;
        let width = alphas.len() * k;
        let need = crate::error::bytes_of(d * (width + k) + 2 * d, 8) * 2
            + self.householder_scratch(width).size_bytes() as u128;
        crate::error::ensure_allocatable(need, "the coefficients of every alpha")?;
        let qc = self.reflected(cxy, par);
        let (diag, sub) = self.bands();
        let mut solved = Mat::<f64>::zeros(d, width);
        let mut pivots = vec![0.0f64; d];
        let mut ratios = vec![0.0f64; d];
        for (a, &alpha) in alphas.iter().enumerate() {
            crate::threads::check_cancel()?;
            factor_shifted(&diag, &sub, alpha, &mut pivots, &mut ratios)?;
            for t in 0..k {
                let mut col = solved.as_mut().col_mut(a * k + t);
                for i in 0..d {
                    col[i] = qc[(i, t)];
                }
                let col = col
                    .try_as_col_major_mut()
                    .expect("faer columns are contiguous");
                solve_factored(&pivots, &ratios, col.as_slice_mut());
            }
        }
        // Q applied to every alpha's solutions at once (blocked Householder products)
        crate::householder::apply(self.packed, self.factors, 1, solved.as_mut(), false, par);
        Ok(solved)
    }

    /// cxy must have d rows, every alpha must be positive and finite.
    fn check_inputs(&self, cxy: MatRef<'_, f64>, alphas: &[f64]) -> Result<(), CoreError> {
        let d = self.dim();
        if cxy.nrows() != d {
            return Err(crate::invalid!(
                "cxy has {} rows for a {d}×{d} Gram",
                cxy.nrows()
            ));
        }
        match alphas.iter().find(|a| !(**a > 0.0 && a.is_finite())) {
            Some(a) => Err(crate::invalid!(
                "the tridiagonal ridge path needs alphas > 0, got {a}"
            )),
            None => Ok(()),
        }
    }

    /// Workspace of the Householder products of [`Self::reflected`] and of Q applied to
    /// `width` columns.
    fn householder_scratch(&self, width: usize) -> faer::dyn_stack::StackReq {
        crate::householder::scratch(self.dim(), 1, self.factors.nrows(), width)
    }

    /// Qᵀ C (the reflectors sit below the subdiagonal: none for d <= 1).
    fn reflected(&self, cxy: MatRef<'_, f64>, par: Par) -> Mat<f64> {
        let mut qc = cxy.to_owned();
        crate::householder::apply(self.packed, self.factors, 1, qc.as_mut(), true, par);
        qc
    }

    /// What generalised cross-validation needs of the Gram along a grid of positive
    /// alphas, without eigenvectors: per target, the part of ‖y_c‖² the least-squares fit
    /// explains, cᵀG⁻¹c (so the residual outside the span of X is ‖y_c‖² minus it), and per
    /// alpha the residual sum of squares inside the span,
    ///
    ///   ‖P(y_c − X w(α))‖² = (αu)ᵀT⁻¹(αu),  u = (T + αI)⁻¹ Qᵀc,
    ///
    /// which is Σ_j (α/(λ_j + α))²·b_j²/λ_j of [`crate::ridge::ridge_path`] written without
    /// the eigenvectors: a positive definite quadratic form in α·u (c's units, so nothing
    /// overflows when X and y have very different scales), as sensitive to round-off in the
    /// small eigenvalues as that route's b_j²/λ_j. Only for a Gram that
    /// [`Self::clamps_nothing`] (T⁻¹ must not amplify round-off); errors otherwise.
    pub fn gcv_path(
        &self,
        cxy: MatRef<'_, f64>,
        alphas: &[f64],
        par: Par,
    ) -> Result<GcvPath, CoreError> {
        let (d, k) = (self.dim(), cxy.ncols());
        self.check_inputs(cxy, alphas)?;
        if !self.clamps_nothing() {
            return Err(crate::invalid!(
                "the Gram has eigenvalues at round-off level (rank-deficient or nearly): its \
                 GCV quantities need the eigendecomposition route, which clamps them"
            ));
        }
        crate::threads::check_cancel()?;
        let qc = self.reflected(cxy, par);
        let (diag, sub) = self.bands();
        let (mut pivots, mut ratios) = (vec![0.0f64; d], vec![0.0f64; d]);
        let (mut pivots0, mut ratios0) = (vec![0.0f64; d], vec![0.0f64; d]);
        factor_shifted(&diag, &sub, 0.0, &mut pivots0, &mut ratios0)?;
        let mut u = vec![0.0f64; d];
        let mut v = vec![0.0f64; d];
        let explained = (0..k)
            .map(|t| {
                u.copy_from_slice(qc.col(t).try_as_col_major().expect("contiguous").as_slice());
                solve_factored(&pivots0, &ratios0, &mut u);
                (0..d).map(|i| qc[(i, t)] * u[i]).sum()
            })
            .collect();
        let mut rss = Vec::with_capacity(alphas.len());
        for &alpha in alphas {
            crate::threads::check_cancel()?;
            factor_shifted(&diag, &sub, alpha, &mut pivots, &mut ratios)?;
            let row: Vec<f64> = (0..k)
                .map(|t| {
                    u.copy_from_slice(qc.col(t).try_as_col_major().expect("contiguous").as_slice());
                    solve_factored(&pivots, &ratios, &mut u);
                    // α·u is the shrunk Qᵀc, in c's units: α² and T⁻¹u on their own would
                    // overflow and underflow when X and y have very different scales
                    for ui in u.iter_mut() {
                        *ui *= alpha;
                    }
                    v.copy_from_slice(&u);
                    solve_factored(&pivots0, &ratios0, &mut v);
                    u.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>()
                })
                .collect();
            rss.push(row);
        }
        Ok(GcvPath { explained, rss })
    }

    /// The eigenvalues of T (those of the Gram), ascending; see [`eigenvalues`].
    pub fn eigenvalues(&self) -> Result<Vec<f64>, CoreError> {
        let (diag, sub) = self.bands();
        eigenvalues(&diag, &sub)
    }
}

/// What [`TridiagonalRef::gcv_path`] returns.
#[derive(Clone, Debug)]
pub struct GcvPath {
    /// Per target, cᵀG⁻¹c: the part of ‖y_c‖² the least-squares fit explains.
    pub explained: Vec<f64>,
    /// rss[a][t]: the residual sum of squares inside the span of X at alpha a, target t.
    pub rss: Vec<Vec<f64>>,
}

/// Eigenvalues (ascending) of the symmetric tridiagonal matrix with diagonal `diag` and
/// subdiagonal `sub` (one entry fewer), by the implicit QL algorithm with Wilkinson's shift
/// and no eigenvectors: O(d²) work, backward stable (each eigenvalue within a small multiple
/// of ε‖T‖ of the exact one), as LAPACK's dsterf. An off-diagonal entry counts as zero once
/// it is at most ε times the sum of its two diagonal neighbours' magnitudes.
pub fn eigenvalues(diag: &[f64], sub: &[f64]) -> Result<Vec<f64>, CoreError> {
    let n = diag.len();
    if sub.len() != n.saturating_sub(1) {
        return Err(crate::invalid!(
            "a tridiagonal matrix of order {n} has {} subdiagonal entries, got {}",
            n.saturating_sub(1),
            sub.len()
        ));
    }
    if diag.iter().chain(sub).any(|v| !v.is_finite()) {
        return Err(CoreError::NonFinite);
    }
    // Work on T / 2^e with 2^e ≤ max|t_ij| < 2^(e+1): every entry is then below 2 in
    // magnitude, so the rotations' √(f² + g²) cannot overflow and need no hypot (a libm call
    // that made this twice as slow), and the scaling is exact. Squares that underflow lose
    // only what lies below ε‖T‖ anyway.
    let largest = diag.iter().chain(sub).fold(0.0f64, |m, v| m.max(v.abs()));
    if largest == 0.0 {
        return Ok(vec![0.0; n]);
    }
    let exponent = ((largest.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let scale = 2f64.powi(exponent.max(-1022));
    let mut d: Vec<f64> = diag.iter().map(|v| v / scale).collect();
    // e[i] couples rows i and i + 1; e[n - 1] = 0 ends every search
    let mut e: Vec<f64> = sub.iter().map(|v| v / scale).collect();
    e.push(0.0);
    const MAX_SWEEPS: usize = 60;
    for l in 0..n {
        let mut sweeps = 0;
        loop {
            // the first negligible coupling at or after l: rows l..=m form an unreduced block
            let mut m = l;
            while m + 1 < n && e[m].abs() > f64::EPSILON * (d[m].abs() + d[m + 1].abs()) {
                m += 1;
            }
            if m == l {
                break;
            }
            sweeps += 1;
            if sweeps > MAX_SWEEPS {
                return Err(CoreError::NoConvergence(format!(
                    "tridiagonal eigenvalue {l} did not converge in {MAX_SWEEPS} QL sweeps"
                )));
            }
            // shift: the eigenvalue of the leading 2×2 block nearer to d[l]
            let q = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let r = q.hypot(1.0);
            let mut g = d[m] - d[l] + e[l] / (q + r.copysign(q));
            let (mut s, mut c, mut p) = (1.0f64, 1.0f64, 0.0f64);
            // chase the bulge from the bottom of the block up to row l with Givens rotations
            let mut split = false;
            for i in (l..m).rev() {
                let f = s * e[i];
                let b = c * e[i];
                let r = (f * f + g * g).sqrt();
                e[i + 1] = r;
                if r == 0.0 {
                    // underflow: the block splits at i + 1; search again
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    split = true;
                    break;
                }
                s = f / r;
                c = g / r;
                let h = d[i + 1] - p;
                let t = (d[i] - h) * s + 2.0 * c * b;
                p = s * t;
                d[i + 1] = h + p;
                g = c * t - b;
            }
            if !split {
                d[l] -= p;
                e[l] = g;
                e[m] = 0.0;
            }
        }
    }
    let mut lam: Vec<f64> = d.iter().map(|v| v * scale).collect();
    lam.sort_by(f64::total_cmp);
    Ok(lam)
}

/// LDLᵀ of the tridiagonal T + αI: pivots D_i and multipliers l_i = e_i / D_i.
fn factor_shifted(
    diag: &[f64],
    sub: &[f64],
    alpha: f64,
    pivots: &mut [f64],
    ratios: &mut [f64],
) -> Result<(), CoreError> {
    let d = diag.len();
    for i in 0..d {
        let mut p = diag[i] + alpha;
        if i > 0 {
            p -= ratios[i - 1] * sub[i - 1];
        }
        if !(p > 0.0 && p.is_finite()) {
            return Err(crate::invalid!(
                "T + {alpha}·I is not positive definite (pivot {i} is {p}): the Gram is not \
                 positive semi-definite; use the eigendecomposition route"
            ));
        }
        pivots[i] = p;
        if i + 1 < d {
            ratios[i] = sub[i] / p;
        }
    }
    Ok(())
}

/// Solve (L D Lᵀ) z = b in place.
fn solve_factored(pivots: &[f64], ratios: &[f64], b: &mut [f64]) {
    let d = b.len();
    for i in 1..d {
        b[i] -= ratios[i - 1] * b[i - 1];
    }
    for i in 0..d {
        b[i] /= pivots[i];
    }
    for i in (0..d.saturating_sub(1)).rev() {
        b[i] -= ratios[i] * b[i + 1];
    }
}

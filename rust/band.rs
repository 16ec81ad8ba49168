//! Generalised cross-validation of kernel ridge through a band reduction of the kernel.
//!
//! GCV of kernel ridge on an n × n kernel K needs, along a grid of α, two things:
//!
//!   RSS(α) = α²‖(K + αI)⁻¹ y‖²   and   α·tr((K + αI)⁻¹)   (n minus the degrees of freedom).
//!
//! An eigendecomposition gives both for every α, but at n = 5000 it is the whole cost of the
//! dual route (dsyevd forms all n eigenvectors). Neither quantity needs eigenvectors, and
//! neither needs the kernel to be diagonal: both are invariant under K → QᵀKQ. So K is reduced
//! once to a symmetric band matrix of half-bandwidth b,
//!
//!   K = Q B Qᵀ,
//!
//! by the first stage of LAPACK's two-stage tridiagonalisation: panels of b columns are
//! QR-factored and each block reflector is applied to the trailing matrix from both sides by
//! rank-2b updates, so almost all of the 4n³/3 flops run in matrix products (a one-stage
//! Householder tridiagonalisation spends half of them in matrix-vector products bound by
//! memory bandwidth). Then every α costs O(n·b²):
//!
//! * the band Cholesky factor L of B + αI (positive definite for α > 0 when K is positive
//!   semi-definite: a failure means round-off eigenvalues below −α, and the caller then uses
//!   the eigendecomposition, which clamps them);
//! * u = (B + αI)⁻¹ Qᵀy by two band triangular solves, so RSS(α) = α²‖u‖²;
//! * tr((B + αI)⁻¹) by the Takahashi recurrences LᵀZ = L⁻¹, which give the entries of
//!   Z = (B + αI)⁻¹ inside the band from the bottom row up without forming the rest of it.
//!
//! The α's are independent and run in parallel. The dual coefficients of a chosen α are
//! Q (B + αI)⁻¹ Qᵀy from the same reduction.
//!
//! Q is a faer block Householder sequence: the reflector of column c starts at row c + b and
//! is stored below the band, and the factors of panel j (columns j .. j + b) are in
//! `factors[.., j .. j + b]` (b = `factors.nrows()`). The tridiagonal reduction of
//! [`crate::tridiagonal`] is the same layout with b = 1.

use crate::error::CoreError;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::qr::no_pivoting::factor::{qr_in_place, qr_in_place_scratch};
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Half-bandwidth of the reduction: wide enough for the rank-2b updates to run near the
/// machine's GEMM rate, narrow enough that the O(n·b²) work per α stays small next to the
/// reduction (measured at n = 5000 on our 2-core machine, `benches/bench_dual_floor.py`).
pub const BANDWIDTH: usize = 64;

/// Reduces the symmetric `a` (n × n, lower triangle read; the upper triangle is left as
/// scratch) in place to K = Q B Qᵀ: B in the lower band of half-bandwidth b =
/// `factors.nrows()`, Q's reflectors below the band and their block factors in `factors`
/// (b × max(n − b, 0)). `a` is fully overwritten only when this returns Ok; on error (bad
/// shapes are checked first, so only cancellation) it is partly reduced.
pub fn reduce_in_place(
    mut a: MatMut<'_, f64>,
    mut factors: MatMut<'_, f64>,
    par: Par,
) -> Result<(), CoreError> {
    let n = a.nrows();
    let b = factors.nrows();
    if a.ncols() != n || b == 0 || factors.ncols() != n.saturating_sub(b) {
        return Err(crate::invalid!(
            "a band reduction needs a square matrix and factors (b ≥ 1, n − b); got a {}×{} \
             matrix and {}×{} factors",
            a.nrows(),
            a.ncols(),
            factors.nrows(),
            factors.ncols()
        ));
    }
    let h = n.saturating_sub(b);
    if h == 0 {
        return Ok(());
    }
    let first_rows = n - b;
    let qr_scratch = qr_in_place_scratch::<f64>(first_rows, b, b, par, Default::default());
    // faer aborts the process when an allocation fails: reserve first (see `ridge::spectrum`).
    let need =
        crate::error::bytes_of(3 * first_rows * b + 2 * b * b, 8) + qr_scratch.size_bytes() as u128;
    crate::error::ensure_allocatable(need, &format!("the band reduction of a {n}×{n} kernel"))?;
    let mut mem = MemBuffer::new(qr_scratch);
    // the first panel (columns 0 .. b, rows b .. n); every later one is factored inside the
    // previous step's update (`two_sided_update`), next to the rest of that update
    {
        let w = b.min(first_rows);
        let panel = a.rb_mut().submatrix_mut(b, 0, first_rows, b);
        let t = factors.rb_mut().submatrix_mut(0, 0, w, w);
        factor_panel(panel, t, &mut mem);
    }
    let mut j = 0;
    while j < h {
        crate::threads::check_cancel()?;
        // m rows in the panel and the trailing matrix, w reflectors in the panel; its factors
        // are columns j .. j + w, the next panel's start at j + w
        let m = n - j - b;
        let w = b.min(m);
        let (done, rest) = factors.rb_mut().split_at_col_mut(j + w);
        let t = done.rb().submatrix(0, j, w, w);
        if m > 1 {
            let v = unit_lower_basis(a.rb().submatrix(j + b, j, m, w));
            let trailing = a.rb_mut().submatrix_mut(j + b, j + b, m, m);
            // the next panel (w = b here unless this is the last one): trailing rows b .. m
            // of its first b columns, with b reflectors
            let next = (m > b).then(|| {
                let w_next = b.min(m - b);
                (rest.submatrix_mut(0, 0, w_next, w_next), &mut mem)
            });
            two_sided_update(trailing, v.as_ref(), t, next, par);
        }
        j += w;
    }
    Ok(())
}

/// QR of one panel (m × b) in place, its block factors into `t` (w × w, w = min(m, b)): all
/// b columns even when fewer rows remain (the last panel), since its rows below the band in
/// columns w .. b must see the reflectors too. Sequential: a panel of b columns is too narrow
/// for the pool's threads to pay (panel QRs at n = 5000, b = 64: 0.78 s with the pool, 0.70 s
/// without, loaded), and it runs next to the threaded rest of the previous update.
fn factor_panel(panel: MatMut<'_, f64>, t: MatMut<'_, f64>, mem: &mut MemBuffer) {
    qr_in_place(panel, t, Par::Seq, MemStack::new(mem), Default::default());
}

/// The Householder basis V (m × w, unit diagonal, zeros above) of a QR-factored panel whose
/// essential parts sit below its diagonal.
fn unit_lower_basis(panel: MatRef<'_, f64>) -> Mat<f64> {
    let (m, w) = (panel.nrows(), panel.ncols());
    Mat::from_fn(m, w, |r, c| match r.cmp(&c) {
        std::cmp::Ordering::Less => 0.0,
        std::cmp::Ordering::Equal => 1.0,
        std::cmp::Ordering::Greater => panel[(r, c)],
    })
}

/// A ← HᵀAH on the lower triangle of the symmetric `a`, with H = I − V T⁻¹ Vᵀ (faer's block
/// reflector, T upper triangular). With Y = A V T⁻¹ and S = T⁻ᵀ Vᵀ Y (symmetric),
///
///   HᵀAH = A − V Yᵀ − Y Vᵀ + V S Vᵀ = A − V Zᵀ − Z Vᵀ,   Z = Y − ½ V S,
///
/// one symmetric product A V and one rank-2w update, each on the lower triangle only.
///
/// With `next` (its factors' block and the QR scratch), the next panel — rows b .. m of the
/// first b columns of `a`, b = `v.ncols()` — is factored as soon as its columns are updated,
/// on one thread, while the pool updates the remaining columns (look-ahead): the sequential
/// panel QRs no longer leave the other threads idle.
fn two_sided_update(
    a: MatMut<'_, f64>,
    v: MatRef<'_, f64>,
    t: MatRef<'_, f64>,
    next: Option<(MatMut<'_, f64>, &mut MemBuffer)>,
    par: Par,
) {
    let (m, w) = (v.nrows(), v.ncols());
    // Y = A V from the lower triangle: tril(A) V + strict_tril(A)ᵀ V
    let mut y = Mat::<f64>::zeros(m, w);
    triangular::matmul(
        y.as_mut(),
        BlockStructure::Rectangular,
        Accum::Replace,
        a.rb(),
        BlockStructure::TriangularLower,
        v,
        BlockStructure::Rectangular,
        1.0,
        par,
    );
    triangular::matmul(
        y.as_mut(),
        BlockStructure::Rectangular,
        Accum::Add,
        a.rb().transpose(),
        BlockStructure::StrictTriangularUpper,
        v,
        BlockStructure::Rectangular,
        1.0,
        par,
    );
    // Y ← Y T⁻¹ (Yᵀ ← T⁻ᵀ Yᵀ)
    solve_lower_triangular_in_place(t.transpose(), y.as_mut().transpose_mut(), par);
    // S = T⁻ᵀ (Vᵀ Y)
    let mut s = Mat::<f64>::zeros(w, w);
    matmul(
        s.as_mut(),
        Accum::Replace,
        v.transpose(),
        y.as_ref(),
        1.0,
        par,
    );
    solve_lower_triangular_in_place(t.transpose(), s.as_mut(), par);
    // Z = Y − ½ V S, then A −= [V Z] [Z V]ᵀ: one product of inner dimension 2w (half the
    // traffic through A of two rank-w products)
    matmul(y.as_mut(), Accum::Add, v, s.as_ref(), -0.5, par);
    let left = Mat::from_fn(
        m,
        2 * w,
        |r, c| if c < w { v[(r, c)] } else { y[(r, c - w)] },
    );
    let right = Mat::from_fn(
        m,
        2 * w,
        |r, c| if c < w { y[(r, c)] } else { v[(r, c - w)] },
    );
    let lower_update = |dst: MatMut<'_, f64>, r0: usize, par: Par| {
        // dst (lower triangle, rows and columns r0 .. r0 + dst.nrows() of a) −= the same
        // rows of left times those of right, transposed
        let len = dst.nrows();
        triangular::matmul(
            dst,
            BlockStructure::TriangularLower,
            Accum::Add,
            left.as_ref().subrows(r0, len),
            BlockStructure::Rectangular,
            right.as_ref().subrows(r0, len).transpose(),
            BlockStructure::Rectangular,
            -1.0,
            par,
        )
    };
    let Some((t_next, mem)) = next else {
        lower_update(a, 0, par);
        return;
    };
    // w = b here (only the last panel is narrower, and it has no next one)
    let (first, mut rest) = a.split_at_col_mut(w);
    let (mut diag, mut panel) = first.split_at_row_mut(w);
    // the next panel's columns first: their b × b diagonal block and the rows below it
    lower_update(diag.rb_mut(), 0, par);
    matmul(
        panel.rb_mut(),
        Accum::Add,
        left.as_ref().subrows(w, m - w),
        right.as_ref().subrows(0, w).transpose(),
        -1.0,
        par,
    );
    // then its QR on this thread, while the pool updates the columns after it
    let rest = rest.rb_mut().subrows_mut(w, m - w);
    rayon::join(
        || factor_panel(panel, t_next, mem),
        || lower_update(rest, w, par),
    );
}

/// A borrowed band reduction: `reduced` (n × n) and `factors` (b × (n − b)) as left by
/// [`reduce_in_place`] (any strides: the bindings read numpy's arrays in place).
#[derive(Clone, Copy, Debug)]
pub struct BandRef<'a> {
    pub reduced: MatRef<'a, f64>,
    pub factors: MatRef<'a, f64>,
}

/// Per α of a grid: RSS(α) = α²‖(K + αI)⁻¹y_t‖² per target (`rss[a][t]`) and α·tr((K +
/// αI)⁻¹) (`resid[a]`, the residual degrees of freedom plus the kernel's null dimension).
#[derive(Clone, Debug, PartialEq)]
pub struct BandGcv {
    pub rss: Vec<Vec<f64>>,
    pub resid: Vec<f64>,
}

/// B's lower band, column by column: `data[c·(b + 1) + t]` = B[c + t, c] (zero past n).
struct Band {
    n: usize,
    b: usize,
    data: Vec<f64>,
}

impl BandRef<'_> {
    pub fn dim(&self) -> usize {
        self.reduced.nrows()
    }

    pub fn bandwidth(&self) -> usize {
        self.factors.nrows()
    }

    /// The shapes of the reduced matrix and its factors against each other.
    fn check_reduction(&self) -> Result<(), CoreError> {
        let (n, b) = (self.dim(), self.bandwidth());
        if self.reduced.ncols() != n || b == 0 || self.factors.ncols() != n.saturating_sub(b) {
            return Err(crate::invalid!(
                "reduced ({}, {}) and factors ({}, {}) are not one band reduction",
                self.reduced.nrows(),
                self.reduced.ncols(),
                self.factors.nrows(),
                self.factors.ncols()
            ));
        }
        Ok(())
    }

    /// Shapes of the reduction against each other and of y (n rows); alphas > 0, finite.
    fn check(&self, y: MatRef<'_, f64>, alphas: &[f64]) -> Result<(), CoreError> {
        self.check_reduction()?;
        let n = self.dim();
        if y.nrows() != n {
            return Err(crate::invalid!(
                "y has {} rows for a {n}×{n} kernel",
                y.nrows()
            ));
        }
        match alphas.iter().find(|a| !(**a > 0.0 && a.is_finite())) {
            Some(a) => Err(crate::invalid!(
                "the band route needs alphas > 0 and finite, got {a}"
            )),
            None => Ok(()),
        }
    }

    fn band(&self) -> Band {
        let (n, b) = (self.dim(), self.bandwidth());
        let mut data = vec![0.0; n * (b + 1)];
        for c in 0..n {
            for t in 0..=b.min(n - 1 - c) {
                data[c * (b + 1) + t] = self.reduced[(c + t, c)];
            }
        }
        Band { n, b, data }
    }

    /// Qᵀy (`transpose`) or Q y, in place.
    fn apply_q(&self, y: MatMut<'_, f64>, transpose: bool, par: Par) {
        let b = self.bandwidth();
        crate::householder::apply(self.reduced, self.factors, b, y, transpose, par);
    }

    /// RSS and α·tr((K + αI)⁻¹) along `alphas` (each > 0), one α per thread. Fails with
    /// [`CoreError::NotPositiveDefinite`] naming the α where B + αI is not positive definite.
    pub fn gcv_path(
        &self,
        y: MatRef<'_, f64>,
        alphas: &[f64],
        par: Par,
    ) -> Result<BandGcv, CoreError> {
        self.check(y, alphas)?;
        let (n, b, k) = (self.dim(), self.bandwidth(), y.ncols());
        let need = crate::error::bytes_of(n * k + n * (b + 1) * (2 + 2 * alphas.len()), 8);
        crate::error::ensure_allocatable(need, "the band GCV path")?;
        let mut qy = y.to_owned();
        self.apply_q(qy.as_mut(), true, par);
        let band = self.band();
        let cancel = crate::threads::cancel_handle();
        let per_alpha: Vec<(Vec<f64>, f64)> = alphas
            .par_iter()
            .map(|&alpha| {
                cancel.check()?;
                gcv_of_alpha(&band, qy.as_ref(), alpha)
            })
            .collect::<Result<_, CoreError>>()?;
        let (rss, resid) = per_alpha.into_iter().unzip();
        Ok(BandGcv { rss, resid })
    }

    /// The kernel K = Q B Qᵀ back from its reduction, written into `out` (n × n; symmetric to
    /// the last bit), for a caller that reduced its only copy of K in place and then needs K
    /// itself (the eigendecomposition route after a band Cholesky failed). Two applications
    /// of Q to the dense band, 4n³/3 flops each: the cost of the reduction, paid only there.
    pub fn expand_into(&self, mut out: MatMut<'_, f64>, par: Par) -> Result<(), CoreError> {
        self.check_reduction()?;
        let (n, b) = (self.dim(), self.bandwidth());
        if out.nrows() != n || out.ncols() != n {
            return Err(crate::invalid!(
                "the expanded kernel is {n}×{n}, not {}×{}",
                out.nrows(),
                out.ncols()
            ));
        }
        // M = B, dense and symmetric; then K = Q (Q M)ᵀ, as M Qᵀ = (Q M)ᵀ for symmetric M
        for j in 0..n {
            for i in 0..n {
                let (hi, lo) = if i >= j { (i, j) } else { (j, i) };
                out[(i, j)] = if hi - lo <= b {
                    self.reduced[(hi, lo)]
                } else {
                    0.0
                };
            }
        }
        crate::threads::check_cancel()?;
        self.apply_q(out.rb_mut(), false, par);
        crate::threads::check_cancel()?;
        transpose_in_place(out.rb_mut());
        self.apply_q(out.rb_mut(), false, par);
        // the two halves differ by round-off: their mean, so that either triangle reads K
        for j in 0..n {
            for i in j + 1..n {
                let mean = 0.5 * (out[(i, j)] + out[(j, i)]);
                out[(i, j)] = mean;
                out[(j, i)] = mean;
            }
        }
        Ok(())
    }

    /// (K + α_t I)⁻¹ y_t for each target t with its own α_t (> 0): the dual coefficients.
    pub fn solve(
        &self,
        y: MatRef<'_, f64>,
        alphas: &[f64],
        par: Par,
    ) -> Result<Mat<f64>, CoreError> {
        self.check(y, alphas)?;
        let (n, k) = (self.dim(), y.ncols());
        if alphas.len() != k {
            return Err(crate::invalid!("{} alphas for {k} targets", alphas.len()));
        }
        let mut out = y.to_owned();
        self.apply_q(out.as_mut(), true, par);
        let band = self.band();
        for (t, &alpha) in alphas.iter().enumerate() {
            crate::threads::check_cancel()?;
            let chol = cholesky_shifted(&band, alpha)?;
            let col = out.as_mut().col_mut(t);
            let col = col
                .try_as_col_major_mut()
                .expect("faer columns are contiguous");
            chol.solve(col.as_slice_mut());
        }
        debug_assert_eq!(out.nrows(), n);
        self.apply_q(out.as_mut(), false, par);
        Ok(out)
    }
}

/// A square matrix transposed in place.
fn transpose_in_place(mut a: MatMut<'_, f64>) {
    for j in 0..a.ncols() {
        for i in j + 1..a.nrows() {
            let upper = a[(j, i)];
            a[(j, i)] = a[(i, j)];
            a[(i, j)] = upper;
        }
    }
}

/// RSS per target and α·tr((B + αI)⁻¹) of one α from its band Cholesky factor (`qy` = Qᵀy),
/// built for AVX2 where the CPU has it. Without FMA (Rust never fuses a product and an add on
/// its own), so the results are the same bit for bit with or without it: the wider registers
/// only run the independent lanes of the Cholesky update, the solves and the Takahashi
/// recurrences (all of them inlined here) four doubles at a time instead of two.
fn gcv_of_alpha(
    band: &Band,
    qy: MatRef<'_, f64>,
    alpha: f64,
) -> Result<(Vec<f64>, f64), CoreError> {
    #[inline(always)]
    fn body(band: &Band, qy: MatRef<'_, f64>, alpha: f64) -> Result<(Vec<f64>, f64), CoreError> {
        let (n, k) = (band.n, qy.ncols());
        let chol = cholesky_shifted(band, alpha)?;
        let mut rss = vec![0.0; k];
        let mut u = vec![0.0; n];
        for (t, out) in rss.iter_mut().enumerate() {
            for (i, ui) in u.iter_mut().enumerate() {
                *ui = qy[(i, t)];
            }
            chol.solve(&mut u);
            // α²‖u‖² as ‖αu‖²: no overflow of α² at extreme scales
            *out = u.iter().map(|x| (alpha * x) * (alpha * x)).sum();
        }
        Ok((rss, alpha * chol.trace_of_inverse()))
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn body_avx2(
        band: &Band,
        qy: MatRef<'_, f64>,
        alpha: f64,
    ) -> Result<(Vec<f64>, f64), CoreError> {
        body(band, qy, alpha)
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { body_avx2(band, qy, alpha) };
    }
    body(band, qy, alpha)
}

/// Band Cholesky factor L of B + αI (same storage as [`Band`]).
struct BandCholesky {
    n: usize,
    b: usize,
    data: Vec<f64>,
}

/// L Lᵀ = B + αI, right-looking: each column scales, then updates the b × b triangle after it.
#[inline(always)]
fn cholesky_shifted(band: &Band, alpha: f64) -> Result<BandCholesky, CoreError> {
    let (n, b) = (band.n, band.b);
    let s = b + 1;
    let mut l = band.data.clone();
    for c in 0..n {
        l[c * s] += alpha;
    }
    for c in 0..n {
        let pivot = l[c * s];
        if !(pivot > 0.0 && pivot.is_finite()) {
            return Err(CoreError::NotPositiveDefinite(format!(
                "the kernel plus {alpha:e}·I is not positive definite (pivot {pivot:e} at row \
                 {c}): round-off eigenvalues below −alpha"
            )));
        }
        let root = pivot.sqrt();
        let len = b.min(n - 1 - c);
        let (head, tail) = l.split_at_mut((c + 1) * s);
        let col = &mut head[c * s..];
        col[0] = root;
        for x in &mut col[1..=len] {
            *x /= root;
        }
        for kk in 1..=len {
            let lk = col[kk];
            let target = &mut tail[(kk - 1) * s..(kk - 1) * s + (len - kk + 1)];
            for (dst, src) in target.iter_mut().zip(&col[kk..=len]) {
                *dst -= src * lk;
            }
        }
    }
    Ok(BandCholesky { n, b, data: l })
}

impl BandCholesky {
    #[inline(always)]
    fn col(&self, c: usize) -> &[f64] {
        let s = self.b + 1;
        &self.data[c * s..(c + 1) * s]
    }

    /// u ← (L Lᵀ)⁻¹ u.
    #[inline(always)]
    fn solve(&self, u: &mut [f64]) {
        let (n, b) = (self.n, self.b);
        for c in 0..n {
            let col = self.col(c);
            let x = u[c] / col[0];
            u[c] = x;
            let len = b.min(n - 1 - c);
            for (dst, l) in u[c + 1..=c + len].iter_mut().zip(&col[1..=len]) {
                *dst -= l * x;
            }
        }
        for c in (0..n).rev() {
            let col = self.col(c);
            let len = b.min(n - 1 - c);
            u[c] = (u[c] - dot(&u[c + 1..=c + len], &col[1..=len])) / col[0];
        }
    }

    /// tr((L Lᵀ)⁻¹) by the Takahashi recurrences: Z = (L Lᵀ)⁻¹ solves LᵀZ = L⁻¹, whose upper
    /// triangle is diag(1/L_ii), so from the last row up
    ///
    ///   Z[j, i] = −(1/L_ii) Σ_{k>i} L[k, i] Z[k, j]   (i < j ≤ i + b),
    ///   Z[i, i] = (1/L_ii) (1/L_ii − Σ_{k>i} L[k, i] Z[k, i]),
    ///
    /// where every Z[k, j] needed lies inside the band already computed (O(n·b²)).
    #[inline(always)]
    fn trace_of_inverse(&self) -> f64 {
        let (n, b) = (self.n, self.b);
        let s = b + 1;
        let mut z = vec![0.0; n * s]; // z[c·s + t] = Z[c + t, c]
        let mut acc = vec![0.0; b + 1]; // acc[q] = Σ_k L[i+k, i] Z[i+k, i+q], q = 1..=len
        let mut trace = 0.0;
        for i in (0..n).rev() {
            let col = self.col(i);
            let len = b.min(n - 1 - i);
            acc[..=len].fill(0.0);
            // symmetric product of the window Z[i+1 ..= i+len] with l = L[i+1 ..= i+len, i],
            // column by column of Z's band storage
            for q in 1..=len {
                let zq = &z[(i + q) * s..(i + q) * s + (len - q + 1)]; // Z[i+q+t, i+q]
                let lq = col[q];
                acc[q] += zq[0] * lq;
                for (a, &zv) in acc[q + 1..=len].iter_mut().zip(&zq[1..]) {
                    *a += zv * lq;
                }
                // in independent lanes: one running sum would make the loop wait on the
                // latency of every add (it was most of the band GCV's time)
                acc[q] += dot(&zq[1..], &col[q + 1..=len]);
            }
            let inv = 1.0 / col[0];
            let zi = &mut z[i * s..i * s + len + 1];
            let mut diag = inv;
            for q in 1..=len {
                zi[q] = -acc[q] * inv;
                diag -= col[q] * zi[q];
            }
            zi[0] = diag * inv;
            trace += zi[0];
        }
        trace
    }
}

/// Σ aᵢbᵢ over the common length, in 8 independent partial sums (combined pairwise), so that
/// the adds pipeline instead of each waiting on the one before; a fixed order, so the same
/// result on every run and thread count.
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut lanes = [0.0f64; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let (a_tail, b_tail) = (a8.remainder(), b8.remainder());
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in a_tail.iter().zip(b_tail).enumerate() {
        lanes[l] += x * y;
    }
    let quads = [
        lanes[0] + lanes[4],
        lanes[1] + lanes[5],
        lanes[2] + lanes[6],
        lanes[3] + lanes[7],
    ];
    (quads[0] + quads[2]) + (quads[1] + quads[3])
}

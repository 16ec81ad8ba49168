//! Row-block kernels of the monitors: the quotient projection (X − c) M and the scores of a
//! bank of polynomial monitors, in f64 whatever the input dtype.
//!
//! Both read X (f64, f32, or raw bfloat16/float16 bits, any element strides) in fixed blocks
//! of [`block_rows`] rows, in parallel over the blocks: each task converts its block to f64,
//! subtracts a centre, and multiplies by faer's GEMM (sequential inside the task, so the
//! threads never wait on each other; f64 rows that need no shift are read in place). A
//! degree-2 member costs one triangular GEMM with the upper triangle of its symmetric Q, half
//! the flops of the full product. The block size does not depend on the thread count and
//! every output row is computed by one task, so the results are the same bit for bit with 1 or
//! 64 threads. NaN and infinity in X are not checked: they propagate into the outputs of their
//! own rows (as in the numpy expressions these kernels replace).

use crate::error::{try_zeros, CoreError};
use crate::stats::Element;
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use std::any::TypeId;

/// Rows per block: about 256 Ki f64 entries (2 MiB) of staged rows, between 32 and 512 rows
/// (341 at d = 768). A GEMM of that many rows against a d × r or d × d right-hand side runs
/// near the sequential kernel's peak, and a task's scratch stays a few MiB whatever d is.
pub fn block_rows(d: usize) -> usize {
    (262_144 / d.max(1)).clamp(32, 512)
}

fn row_major<E>(buf: &[E], nrows: usize, ncols: usize) -> MatRef<'_, E> {
    assert_eq!(buf.len(), nrows * ncols);
    // SAFETY: `buf` holds exactly nrows·ncols elements in row-major order and outlives the view.
    unsafe { MatRef::from_raw_parts(buf.as_ptr(), nrows, ncols, ncols as isize, 1) }
}

fn row_major_mut<E>(buf: &mut [E], nrows: usize, ncols: usize) -> MatMut<'_, E> {
    assert_eq!(buf.len(), nrows * ncols);
    // SAFETY: as in `row_major`, with exclusive access through the &mut borrow.
    unsafe { MatMut::from_raw_parts_mut(buf.as_mut_ptr(), nrows, ncols, ncols as isize, 1) }
}

/// Writes rows r0.. of X (as many as `ub` holds, d values each), in f64 and minus `shift`
/// (none: as they are), row-major into `ub`.
fn stage_rows<T: Element>(x: MatRef<'_, T>, r0: usize, shift: Option<&[f64]>, ub: &mut [f64]) {
    let d = x.ncols();
    if d == 0 {
        return;
    }
    let contiguous = x.col_stride() == 1;
    for (ii, dst) in ub.chunks_exact_mut(d).enumerate() {
        let row = x.row(r0 + ii);
        if contiguous {
            // SAFETY: with unit column stride the d entries of the row are contiguous in memory
            // and inside the array that `x` views.
            let src = unsafe { std::slice::from_raw_parts(row.as_ptr(), d) };
            match shift {
                Some(s) => {
                    for ((o, &v), &c) in dst.iter_mut().zip(src).zip(s) {
                        *o = v.to_f64() - c;
                    }
                }
                None => {
                    for (o, &v) in dst.iter_mut().zip(src) {
                        *o = v.to_f64();
                    }
                }
            }
        } else {
            for (j, o) in dst.iter_mut().enumerate() {
                let v = row[j].to_f64();
                *o = match shift {
                    Some(s) => v - s[j],
                    None => v,
                };
            }
        }
    }
}

/// Σ_a u_a (2 t_a − q_aa u_a) with eight partial sums (the same order on every call): the
/// quadratic form uᵀQu of a symmetric Q from t = (the upper triangle of Q, diagonal included)
/// times u, i.e. t_a = Σ_{b ≥ a} q_ab u_b, and the diagonal q_aa.
#[inline]
fn quadratic_form(t: &[f64], u: &[f64], diag: &[f64]) -> f64 {
    let len = u.len();
    assert!(t.len() == len && diag.len() == len);
    let head = len - len % 8;
    let mut acc = [0.0f64; 8];
    for ((tc, uc), qc) in t[..head]
        .chunks_exact(8)
        .zip(u[..head].chunks_exact(8))
        .zip(diag[..head].chunks_exact(8))
    {
        for l in 0..8 {
            acc[l] += uc[l] * (2.0 * tc[l] - qc[l] * uc[l]);
        }
    }
    let mut tail = 0.0;
    for a in head..len {
        tail += u[a] * (2.0 * t[a] - diag[a] * u[a]);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// X itself when its elements are f64 (a GEMM can read the rows in place).
fn as_f64<T: Element>(x: MatRef<'_, T>) -> Option<MatRef<'_, f64>> {
    (TypeId::of::<T>() == TypeId::of::<f64>()).then(|| {
        // SAFETY: T is f64, so the same pointer and strides describe the same f64 matrix.
        unsafe {
            MatRef::from_raw_parts(
                x.as_ptr() as *const f64,
                x.nrows(),
                x.ncols(),
                x.row_stride(),
                x.col_stride(),
            )
        }
    })
}

/// out (n × r, row-major) = (X − centre) M, with X n × d and M d × r.
///
/// Errors (nothing written): [`CoreError::Invalid`] when the shapes disagree,
/// [`CoreError::OutOfMemory`] when a staging block cannot be allocated; with the cancel flag
/// raised, [`CoreError::Interrupted`] (then `out` is partly written).
pub fn project_rows<T: Element>(
    x: MatRef<'_, T>,
    centre: &[f64],
    m: MatRef<'_, f64>,
    out: &mut [f64],
) -> Result<(), CoreError> {
    let (n, d, r) = (x.nrows(), x.ncols(), m.ncols());
    if centre.len() != d {
        return Err(crate::invalid!(
            "centre has {} entries, X has {d} columns",
            centre.len()
        ));
    }
    if m.nrows() != d {
        return Err(crate::invalid!(
            "M has {} rows, X has {d} columns",
            m.nrows()
        ));
    }
    if n.checked_mul(r) != Some(out.len()) {
        return Err(crate::invalid!(
            "output has {} entries, expected {n} × {r}",
            out.len()
        ));
    }
    if n == 0 || r == 0 {
        return Ok(());
    }
    if d == 0 {
        out.fill(0.0);
        return Ok(());
    }
    let bs = block_rows(d);
    let cap = bs.min(n) * d;
    try_zeros(cap, "the projection staging block")?; // fail here, before any output
    let cancel = crate::threads::cancel_handle();
    out.par_chunks_mut(bs * r).enumerate().try_for_each_init(
        || try_zeros(cap, "the projection staging block"),
        |ub, (b, ob)| {
            cancel.check()?;
            let ub = ub.as_mut().map_err(|e| e.clone())?;
            let mb = ob.len() / r;
            let ub = &mut ub[..mb * d];
            stage_rows(x, b * bs, Some(centre), ub);
            matmul(
                row_major_mut(ob, mb, r),
                Accum::Replace,
                row_major(ub, mb, d),
                m,
                1.0,
                Par::Seq,
            );
            Ok(())
        },
    )
}

/// The degree-1 members of a bank: scores X W + constants (X not shifted: each constant holds
/// its member's b − w·c), member k written to output column `columns[k]`.
#[derive(Clone, Copy)]
pub struct LinearMembers<'a> {
    /// d × k, one member's covector per column.
    pub weights: MatRef<'a, f64>,
    /// k constants.
    pub constants: &'a [f64],
    /// k output columns.
    pub columns: &'a [usize],
}

/// One degree-2 member: (x − c)ᵀ Q (x − c) + w·(x − c) + b, written to output column `column`.
/// Q must be exactly symmetric (checked): the core reads its upper triangle only.
#[derive(Clone, Copy)]
pub struct QuadraticMember<'a> {
    pub centre: &'a [f64],
    pub linear: &'a [f64],
    pub intercept: f64,
    /// d × d.
    pub quadratic: MatRef<'a, f64>,
    pub column: usize,
}

/// Members that share one shifted block U = X − shift: their linear columns are one GEMM
/// U W (d × kw, column-major in `w`), each quadratic member one triangular GEMM U · triu(Q).
struct Group<'a> {
    /// None: U = X (the degree-1 members, and degree-2 members centred at +0).
    shift: Option<&'a [f64]>,
    w: Vec<f64>,
    kw: usize,
    /// (column of U W, constant, output column) of each degree-1 member.
    linear_out: Vec<(usize, f64, usize)>,
    /// (the member, its column of U W, the diagonal of its Q).
    quads: Vec<(QuadraticMember<'a>, usize, Vec<f64>)>,
}

/// The members grouped by centre (bit for bit equal centres share a group), linear members
/// with the unshifted group.
fn group_members<'a>(
    linear: LinearMembers<'a>,
    quadratic: &[QuadraticMember<'a>],
    d: usize,
) -> Result<Vec<Group<'a>>, CoreError> {
    let same = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(u, v)| u.to_bits() == v.to_bits());
    // centres of the groups (None: unshifted) and the members of each
    let mut keys: Vec<Option<&'a [f64]>> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    if !linear.columns.is_empty() {
        keys.push(None);
        members.push(Vec::new());
    }
    for (j, q) in quadratic.iter().enumerate() {
        let key = if q.centre.iter().all(|c| c.to_bits() == 0) {
            None
        } else {
            Some(q.centre)
        };
        let found = keys.iter().position(|k| match (k, key) {
            (None, None) => true,
            (Some(a), Some(b)) => same(a, b),
            _ => false,
        });
        let g = found.unwrap_or_else(|| {
            keys.push(key);
            members.push(Vec::new());
            keys.len() - 1
        });
        members[g].push(j);
    }
    let mut groups = Vec::with_capacity(keys.len());
    for (key, quads) in keys.into_iter().zip(members) {
        let n_lin = if key.is_none() {
            linear.columns.len()
        } else {
            0
        };
        let kw = n_lin + quads.len();
        let mut w = try_zeros(d * kw, "the stacked linear parts")?;
        let mut linear_out = Vec::with_capacity(n_lin);
        for k in 0..n_lin {
            for (i, o) in w[k * d..(k + 1) * d].iter_mut().enumerate() {
                *o = linear.weights[(i, k)];
            }
            linear_out.push((k, linear.constants[k], linear.columns[k]));
        }
        let mut qs = Vec::with_capacity(quads.len());
        for (t, &j) in quads.iter().enumerate() {
            let col = n_lin + t;
            w[col * d..(col + 1) * d].copy_from_slice(quadratic[j].linear);
            let diag = (0..d).map(|a| quadratic[j].quadratic[(a, a)]).collect();
            qs.push((quadratic[j], col, diag));
        }
        groups.push(Group {
            shift: key,
            w,
            kw,
            linear_out,
            quads: qs,
        });
    }
    Ok(groups)
}

/// Checks the members against d and that their output columns are 0..m, each once.
fn check_members(
    linear: &LinearMembers<'_>,
    quadratic: &[QuadraticMember<'_>],
    d: usize,
) -> Result<usize, CoreError> {
    let k = linear.columns.len();
    if linear.weights.nrows() != d || linear.weights.ncols() != k || linear.constants.len() != k {
        return Err(crate::invalid!(
            "the linear members' weights are {} × {} with {} constants and {k} columns, \
             expected {d} × {k} and {k}",
            linear.weights.nrows(),
            linear.weights.ncols(),
            linear.constants.len()
        ));
    }
    for (j, q) in quadratic.iter().enumerate() {
        if q.centre.len() != d || q.linear.len() != d {
            return Err(crate::invalid!(
                "quadratic member {j}: centre has {} and linear part {} entries, X has {d} \
                 columns",
                q.centre.len(),
                q.linear.len()
            ));
        }
        let qm = q.quadratic;
        if qm.nrows() != d || qm.ncols() != d {
            return Err(crate::invalid!(
                "quadratic member {j}: Q is {} × {}, expected {d} × {d}",
                qm.nrows(),
                qm.ncols()
            ));
        }
        let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        if !(0..d).all(|a| (a + 1..d).all(|b| same(qm[(a, b)], qm[(b, a)]))) {
            return Err(crate::invalid!(
                "quadratic member {j}: Q is not symmetric (pass (Q + Qᵀ) / 2: only the \
                 symmetric part enters the score)"
            ));
        }
    }
    let m = k + quadratic.len();
    let mut seen = vec![false; m];
    for c in linear
        .columns
        .iter()
        .copied()
        .chain(quadratic.iter().map(|q| q.column))
    {
        if c >= m || std::mem::replace(&mut seen[c], true) {
            return Err(crate::invalid!(
                "output columns must be 0..{m}, each once; got column {c} out of range or twice"
            ));
        }
    }
    Ok(m)
}

/// out (n × m, row-major): the scores of m polynomial monitors on the rows of X, column by
/// column as `linear.columns` and the quadratic members' `column` say:
///
/// * degree 1: X W + constants (one GEMM for all of them, reading f64 X in place);
/// * degree 2: with U = X − c, (U w + b) + uᵀQu row by row, the value of the numpy expression
///   `U @ w + b + ((U @ Q) * U).sum(1)` up to rounding: uᵀQu = Σ_a u_a (2 t_a − q_aa u_a) with
///   T = U · (the upper triangle of Q), a triangular GEMM of half the flops of U Q (Q is
///   symmetric). Members with the same centre share U, and their linear parts are one GEMM.
///
/// Errors (nothing written): [`CoreError::Invalid`] when the shapes disagree, a Q is not
/// symmetric or the columns are not 0..m each once, [`CoreError::OutOfMemory`]; with the
/// cancel flag raised, [`CoreError::Interrupted`] (then `out` is partly written).
pub fn evaluate_polynomials<T: Element>(
    x: MatRef<'_, T>,
    linear: LinearMembers<'_>,
    quadratic: &[QuadraticMember<'_>],
    out: &mut [f64],
) -> Result<(), CoreError> {
    let (n, d) = (x.nrows(), x.ncols());
    let m = check_members(&linear, quadratic, d)?;
    if n.checked_mul(m) != Some(out.len()) {
        return Err(crate::invalid!(
            "output has {} entries, expected {n} × {m}",
            out.len()
        ));
    }
    if n == 0 || m == 0 {
        return Ok(());
    }
    let groups = group_members(linear, quadratic, d)?;
    let direct = as_f64(x);
    let bs = block_rows(d);
    let rows = bs.min(n);
    let max_kw = groups.iter().map(|g| g.kw).max().unwrap_or(0);
    let any_quad = !quadratic.is_empty();
    // per task: the shifted block U, U W and U · triu(Q)
    let sizes = [rows * d, rows * max_kw, if any_quad { rows * d } else { 0 }];
    let scratch = || -> Result<[Vec<f64>; 3], CoreError> {
        Ok([
            try_zeros(sizes[0], "the evaluation staging block")?,
            try_zeros(sizes[1], "the block's linear scores")?,
            try_zeros(sizes[2], "the block's quadratic products")?,
        ])
    };
    scratch()?; // fail here, before any output
    let cancel = crate::threads::cancel_handle();
    out.par_chunks_mut(bs * m)
        .enumerate()
        .try_for_each_init(scratch, |bufs, (b, ob)| {
            cancel.check()?;
            let [ub, tw, tq] = bufs.as_mut().map_err(|e| e.clone())?;
            let (r0, mb) = (b * bs, ob.len() / m);
            let ub = &mut ub[..mb * d];
            let tq = &mut tq[..if any_quad { mb * d } else { 0 }];
            for g in &groups {
                let u = match (direct, g.shift) {
                    // only degree-1 members: the GEMM reads f64 rows in place
                    (Some(xf), None) if g.quads.is_empty() => xf.subrows(r0, mb),
                    _ => {
                        stage_rows(x, r0, g.shift, ub);
                        row_major(ub, mb, d)
                    }
                };
                let tw = &mut tw[..mb * g.kw];
                if g.kw > 0 && d == 0 {
                    tw.fill(0.0);
                } else if g.kw > 0 {
                    // SAFETY: g.w holds d × kw values, column-major.
                    let w = unsafe { MatRef::from_raw_parts(g.w.as_ptr(), d, g.kw, 1, d as isize) };
                    matmul(
                        row_major_mut(tw, mb, g.kw),
                        Accum::Replace,
                        u,
                        w,
                        1.0,
                        Par::Seq,
                    );
                }
                for &(k, constant, col) in &g.linear_out {
                    for (orow, twr) in ob.chunks_exact_mut(m).zip(tw.chunks_exact(g.kw)) {
                        orow[col] = twr[k] + constant;
                    }
                }
                for (q, k, diag) in &g.quads {
                    if d > 0 {
                        // T = U · triu(Q): the upper triangle of the C-ordered Q is the lower
                        // triangle of its column-major reading Qᵀ, the operand faer prefers
                        triangular::matmul(
                            row_major_mut(tq, mb, d),
                            BlockStructure::Rectangular,
                            Accum::Replace,
                            u,
                            BlockStructure::Rectangular,
                            q.quadratic.transpose(),
                            BlockStructure::TriangularLower,
                            1.0,
                            Par::Seq,
                        );
                    }
                    for i in 0..mb {
                        let s = if d > 0 {
                            let row = i * d..(i + 1) * d;
                            quadratic_form(&tq[row.clone()], &ub[row], diag)
                        } else {
                            0.0
                        };
                        ob[i * m + q.column] = (tw[i * g.kw + k] + q.intercept) + s;
                    }
                }
            }
            Ok(())
        })
}

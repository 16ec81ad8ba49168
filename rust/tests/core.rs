//! Integration tests of the pure-Rust numerical core (`cargo test --release --test core`).
//!
//! Every check compares the core against an independent reference written plainly here:
//! naive per-row loops for the statistics, a Gaussian elimination with partial pivoting for
//! ridge solves, and explicit refits for leave-one-out predictions.

// Index loops read most plainly for the matrix references below.
#![allow(clippy::needless_range_loop)]

use faer::{Mat, MatRef, Par};
use rand::Rng;
use shallowprobes_core::ridge::{
    heldout_sse, inv_shifted, loo_predictions, ridge_path, spectrum, FoldStats, LooModel, Spectrum,
};
use shallowprobes_core::stats::{
    accumulate, all_finite, block_rows, Element, StatsMut, SufficientStats,
};
use shallowprobes_core::threads;

mod common;
use common::*;

// ---------------------------------------------------------------------------------------------
// Naive sufficient statistics
// ---------------------------------------------------------------------------------------------

/// Per-fold sums computed row by row, with the sums of absolute terms as error scales.
struct NaiveStats {
    count: Vec<f64>,
    sum_x: Vec<f64>,
    sum_y: Vec<f64>,
    xtx: Vec<f64>,
    xty: Vec<f64>,
    yty: Vec<f64>,
    abs_sum_x: Vec<f64>,
    abs_sum_y: Vec<f64>,
    abs_xtx: Vec<f64>,
    abs_xty: Vec<f64>,
    abs_yty: Vec<f64>,
}

/// `x` row-major n×d (already f64), `y` row-major n×k. With `cols`, only the Gram columns
/// listed are computed; the other Gram entries are NaN (skipped by the comparison).
fn naive_stats(
    x: &[f64],
    y: &[f64],
    (n, d, k): (usize, usize, usize),
    folds: &[usize],
    kf: usize,
    (sx, sy): (&[f64], &[f64]),
    cols: Option<&[usize]>,
) -> NaiveStats {
    let full = cols.is_none();
    let mut s = NaiveStats {
        count: vec![0.0; kf],
        sum_x: vec![0.0; kf * d],
        sum_y: vec![0.0; kf * k],
        xtx: vec![if full { 0.0 } else { f64::NAN }; kf * d * d],
        xty: vec![0.0; kf * d * k],
        yty: vec![0.0; kf * k * k],
        abs_sum_x: vec![0.0; kf * d],
        abs_sum_y: vec![0.0; kf * k],
        abs_xtx: vec![0.0; kf * d * d],
        abs_xty: vec![0.0; kf * d * k],
        abs_yty: vec![0.0; kf * k * k],
    };
    // Spot-check mode: the chosen Gram columns, accumulated contiguously as spot[f][c][i].
    let cols = cols.unwrap_or(&[]);
    let nc = cols.len();
    let mut spot = vec![0.0; kf * nc * d];
    let mut abs_spot = vec![0.0; kf * nc * d];
    let mut xr = vec![0.0; d];
    let mut yr = vec![0.0; k];
    for r in 0..n {
        let f = folds[r];
        for j in 0..d {
            xr[j] = x[r * d + j] - sx[j];
        }
        for t in 0..k {
            yr[t] = y[r * k + t] - sy[t];
        }
        s.count[f] += 1.0;
        for j in 0..d {
            s.sum_x[f * d + j] += xr[j];
            s.abs_sum_x[f * d + j] += xr[j].abs();
        }
        for t in 0..k {
            s.sum_y[f * k + t] += yr[t];
            s.abs_sum_y[f * k + t] += yr[t].abs();
        }
        if full {
            // Lower triangle, row i: entries (i, 0..=i).
            for i in 0..d {
                let xi = xr[i];
                let row = f * d * d + i * d;
                let g = &mut s.xtx[row..row + i + 1];
                let ag = &mut s.abs_xtx[row..row + i + 1];
                for ((gv, av), &xj) in g.iter_mut().zip(ag.iter_mut()).zip(&xr[..=i]) {
                    let p = xi * xj;
                    *gv += p;
                    *av += p.abs();
                }
            }
        } else {
            for (c, &j) in cols.iter().enumerate() {
                let xj = xr[j];
                let o = (f * nc + c) * d;
                let g = &mut spot[o..o + d];
                let ag = &mut abs_spot[o..o + d];
                for ((gv, av), &xi) in g.iter_mut().zip(ag.iter_mut()).zip(&xr) {
                    let p = xi * xj;
                    *gv += p;
                    *av += p.abs();
                }
            }
        }
        for i in 0..d {
            for t in 0..k {
                let p = xr[i] * yr[t];
                s.xty[f * d * k + i * k + t] += p;
                s.abs_xty[f * d * k + i * k + t] += p.abs();
            }
        }
        for a in 0..k {
            for b in 0..k {
                let p = yr[a] * yr[b];
                s.yty[f * k * k + a * k + b] += p;
                s.abs_yty[f * k * k + a * k + b] += p.abs();
            }
        }
    }
    for f in 0..kf {
        if full {
            for i in 0..d {
                for j in 0..i {
                    s.xtx[f * d * d + j * d + i] = s.xtx[f * d * d + i * d + j];
                    s.abs_xtx[f * d * d + j * d + i] = s.abs_xtx[f * d * d + i * d + j];
                }
            }
        } else {
            for (c, &j) in cols.iter().enumerate() {
                for i in 0..d {
                    s.xtx[f * d * d + i * d + j] = spot[(f * nc + c) * d + i];
                    s.abs_xtx[f * d * d + i * d + j] = abs_spot[(f * nc + c) * d + i];
                }
            }
        }
    }
    s
}

/// |got − want| ≤ rtol · scale entry by entry (exact equality where the scale is 0); NaN
/// entries of `want` are not checked.
fn assert_close_scaled(what: &str, got: &[f64], want: &[f64], scale: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut checked = 0usize;
    for i in 0..want.len() {
        if want[i].is_nan() {
            continue;
        }
        let err = (got[i] - want[i]).abs();
        assert!(
            err <= rtol * scale[i],
            "{what}[{i}]: got {:e}, want {:e} (error {:e}, scale {:e})",
            got[i],
            want[i],
            err,
            scale[i]
        );
        checked += 1;
    }
    assert!(checked > 0 || want.is_empty(), "{what}: nothing checked");
}

fn assert_stats_match(st: &SufficientStats, nv: &NaiveStats, label: &str) {
    const RTOL: f64 = 1e-12;
    assert_eq!(st.count, nv.count, "{label}: count");
    assert_close_scaled(
        &format!("{label} sum_x"),
        &st.sum_x,
        &nv.sum_x,
        &nv.abs_sum_x,
        RTOL,
    );
    assert_close_scaled(
        &format!("{label} sum_y"),
        &st.sum_y,
        &nv.sum_y,
        &nv.abs_sum_y,
        RTOL,
    );
    assert_close_scaled(&format!("{label} xtx"), &st.xtx, &nv.xtx, &nv.abs_xtx, RTOL);
    assert_close_scaled(&format!("{label} xty"), &st.xty, &nv.xty, &nv.abs_xty, RTOL);
    assert_close_scaled(&format!("{label} yty"), &st.yty, &nv.yty, &nv.abs_yty, RTOL);
}

fn assert_gram_symmetric(st: &SufficientStats, label: &str) {
    let d = st.d;
    for f in 0..st.count.len() {
        let g = &st.xtx[f * d * d..(f + 1) * d * d];
        for i in 0..d {
            for j in 0..i {
                assert!(
                    g[i * d + j].to_bits() == g[j * d + i].to_bits(),
                    "{label}: fold {f} Gram not exactly symmetric at ({i}, {j}): {:e} vs {:e}",
                    g[i * d + j],
                    g[j * d + i]
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. accumulate / update against naive sums
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct AccCase {
    n: usize,
    d: usize,
    k: usize,
    with_folds: bool,
    layout: Layout,
    /// Check only a few Gram columns (for large d).
    spot: bool,
    /// Two `update` calls (first third, then the rest) instead of one `accumulate` call.
    split: bool,
    seed: u64,
}

const SPOT_COLS: [usize; 8] = [0, 1, 31, 95, 96, 97, 500, 1099];

fn run_acc_case<T: Element>(c: AccCase, conv: fn(f64) -> T) {
    let AccCase { n, d, k, .. } = c;
    let kf = 3;
    let mut r = rng(c.seed);
    let xt: Vec<T> = (0..n * d)
        .map(|_| conv(1.5 + 2.0 * gauss(&mut r)))
        .collect();
    let x64: Vec<f64> = xt.iter().map(|v| v.to_f64()).collect();
    let y: Vec<f64> = (0..n * k).map(|_| -0.5 + gauss(&mut r)).collect();
    let sx: Vec<f64> = (0..d).map(|_| 1.5 + 0.3 * gauss(&mut r)).collect();
    let sy: Vec<f64> = (0..k).map(|_| -0.5 + 0.3 * gauss(&mut r)).collect();
    let folds = if c.with_folds {
        random_folds(&mut r, n)
    } else {
        vec![0; n]
    };
    let stored = Stored::new(&xt, n, d, c.layout, conv(f64::NAN));
    let xv = stored.view();
    let yv = MatRef::from_row_major_slice(&y, n, k);
    let fo = if c.with_folds { Some(&folds[..]) } else { None };
    let mut st = SufficientStats::new(kf, sx.clone(), sy.clone());
    if c.split {
        let m = n / 3;
        st.update(xv.subrows(0, m), yv.subrows(0, m), fo.map(|f| &f[..m]))
            .unwrap();
        st.update(
            xv.subrows(m, n - m),
            yv.subrows(m, n - m),
            fo.map(|f| &f[m..]),
        )
        .unwrap();
    } else {
        accumulate(xv, yv, fo, &sx, &sy, st.view_mut()).unwrap();
    }
    let cols: Option<Vec<usize>> = if c.spot {
        Some(SPOT_COLS.iter().copied().filter(|&j| j < d).collect())
    } else {
        None
    };
    let nv = naive_stats(&x64, &y, (n, d, k), &folds, kf, (&sx, &sy), cols.as_deref());
    let label = format!("{c:?} {}", std::any::type_name::<T>());
    assert_stats_match(&st, &nv, &label);
    assert_gram_symmetric(&st, &label);
    assert_eq!(st.shift_x, sx);
    assert_eq!(st.shift_y, sy);
}

fn to_f32(v: f64) -> f32 {
    v as f32
}

fn to_f64(v: f64) -> f64 {
    v
}

#[test]
fn accumulate_small_shapes_all_layouts() {
    let mut seed = 100;
    for d in [1usize, 5, 37] {
        for k in [0usize, 3] {
            for with_folds in [false, true] {
                for layout in LAYOUTS {
                    for split in [false, true] {
                        seed += 1;
                        let c = AccCase {
                            n: 500,
                            d,
                            k,
                            with_folds,
                            layout,
                            spot: false,
                            split,
                            seed,
                        };
                        run_acc_case(c, to_f64);
                        run_acc_case(c, to_f32);
                    }
                }
            }
        }
    }
}

#[test]
fn accumulate_several_row_blocks_small_d() {
    // d = 37: block_rows = 4096, so 13 000 rows make 4 blocks (fold 0 alone has ≈7 150 rows).
    let (n, d) = (13_000, 37);
    assert!(n > 3 * block_rows(d));
    let mut seed = 200;
    for (i, layout) in LAYOUTS.into_iter().enumerate() {
        for with_folds in [false, true] {
            seed += 1;
            let c = AccCase {
                n,
                d,
                k: if i % 2 == 0 { 3 } else { 0 },
                with_folds,
                layout,
                spot: false,
                split: i >= 2,
                seed,
            };
            if i % 2 == 0 {
                run_acc_case(c, to_f64);
            } else {
                run_acc_case(c, to_f32);
            }
        }
    }
}

#[test]
fn accumulate_d300_several_blocks() {
    let (n, d) = (9_000, 300);
    assert!(n > 2 * block_rows(d));
    let base = AccCase {
        n,
        d,
        k: 3,
        with_folds: true,
        layout: Layout::RowMajor,
        spot: false,
        split: false,
        seed: 301,
    };
    run_acc_case(base, to_f64);
    run_acc_case(
        AccCase {
            k: 0,
            with_folds: false,
            layout: Layout::NegStrided,
            seed: 302,
            ..base
        },
        to_f32,
    );
    run_acc_case(
        AccCase {
            layout: Layout::ColMajor,
            split: true,
            seed: 303,
            ..base
        },
        to_f64,
    );
}

#[test]
fn accumulate_d1100_spot_check() {
    let (n, d) = (4_000, 1100);
    assert!(n > block_rows(d));
    let base = AccCase {
        n,
        d,
        k: 3,
        with_folds: false,
        layout: Layout::RowMajor,
        spot: true,
        split: false,
        seed: 401,
    };
    run_acc_case(base, to_f64);
    run_acc_case(
        AccCase {
            with_folds: true,
            layout: Layout::RevRows,
            split: true,
            seed: 402,
            ..base
        },
        to_f32,
    );
}

#[test]
fn accumulate_empty_input_changes_nothing() {
    let d = 4;
    let mut st = SufficientStats::new(3, vec![0.5; d], vec![1.0; 2]);
    let x = Mat::<f64>::zeros(0, d);
    let y = Mat::<f64>::zeros(0, 2);
    st.update(x.as_ref(), y.as_ref(), None).unwrap();
    st.update(x.as_ref(), y.as_ref(), Some(&[])).unwrap();
    assert_eq!(st, SufficientStats::new(3, vec![0.5; d], vec![1.0; 2]));
}

#[test]
fn merge_same_shift_adds_fold_by_fold() {
    let (n, d, k) = (700, 9, 2);
    let mut r = rng(7);
    let x: Vec<f64> = (0..n * d).map(|_| gauss(&mut r)).collect();
    let y: Vec<f64> = (0..n * k).map(|_| gauss(&mut r)).collect();
    let folds = random_folds(&mut r, n);
    let (sx, sy) = (vec![0.1; d], vec![-0.2; k]);
    let xv = MatRef::from_row_major_slice(&x, n, d);
    let yv = MatRef::from_row_major_slice(&y, n, k);
    let m = 250;
    let mut a = SufficientStats::new(3, sx.clone(), sy.clone());
    a.update(xv.subrows(0, m), yv.subrows(0, m), Some(&folds[..m]))
        .unwrap();
    let mut b = SufficientStats::new(3, sx.clone(), sy.clone());
    b.update(
        xv.subrows(m, n - m),
        yv.subrows(m, n - m),
        Some(&folds[m..]),
    )
    .unwrap();
    a.merge_same_shift(&b).unwrap();
    let nv = naive_stats(&x, &y, (n, d, k), &folds, 3, (&sx, &sy), None);
    assert_stats_match(&a, &nv, "merged");

    let other = SufficientStats::new(3, vec![0.0; d], sy.clone());
    assert!(a.merge_same_shift(&other).is_err());
    let other = SufficientStats::new(2, sx, sy);
    assert!(a.merge_same_shift(&other).is_err());
}

// ---------------------------------------------------------------------------------------------
// 2. Determinism across thread counts
// ---------------------------------------------------------------------------------------------

/// One `update` call: (X, Y, fold ids).
type Part<'a, T> = (MatRef<'a, T>, MatRef<'a, f64>, Option<&'a [usize]>);

fn stats_in_pool<T: Element>(
    threads: usize,
    parts: &[Part<'_, T>],
    sx: &[f64],
    sy: &[f64],
) -> SufficientStats {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        assert_eq!(rayon::current_num_threads(), threads);
        let mut st = SufficientStats::new(3, sx.to_vec(), sy.to_vec());
        for &(x, y, f) in parts {
            st.update(x, y, f).unwrap();
        }
        st
    })
}

fn assert_bit_identical(a: &SufficientStats, b: &SufficientStats, label: &str) {
    assert_eq!(bits(&a.count), bits(&b.count), "{label}: count");
    assert_eq!(bits(&a.sum_x), bits(&b.sum_x), "{label}: sum_x");
    assert_eq!(bits(&a.sum_y), bits(&b.sum_y), "{label}: sum_y");
    assert_eq!(bits(&a.xtx), bits(&b.xtx), "{label}: xtx");
    assert_eq!(bits(&a.xty), bits(&b.xty), "{label}: xty");
    assert_eq!(bits(&a.yty), bits(&b.yty), "{label}: yty");
}

#[test]
fn accumulate_is_bit_identical_across_thread_counts() {
    // f64, d = 300, 9 000 rows (3 blocks), folds, one and two updates.
    let (n, d, k) = (9_000, 300, 3);
    let mut r = rng(500);
    let x: Vec<f64> = (0..n * d).map(|_| 0.7 + gauss(&mut r)).collect();
    let y: Vec<f64> = (0..n * k).map(|_| gauss(&mut r)).collect();
    let folds = random_folds(&mut r, n);
    let sx: Vec<f64> = (0..d).map(|_| 0.7 + 0.1 * gauss(&mut r)).collect();
    let sy = vec![0.05; k];
    let xv = MatRef::from_row_major_slice(&x, n, d);
    let yv = MatRef::from_row_major_slice(&y, n, k);
    let one = [(xv, yv, Some(&folds[..]))];
    let m = 5_000;
    let two = [
        (xv.subrows(0, m), yv.subrows(0, m), Some(&folds[..m])),
        (
            xv.subrows(m, n - m),
            yv.subrows(m, n - m),
            Some(&folds[m..]),
        ),
    ];
    for parts in [&one[..], &two[..]] {
        let s1 = stats_in_pool(1, parts, &sx, &sy);
        let s2 = stats_in_pool(2, parts, &sx, &sy);
        let s3 = stats_in_pool(3, parts, &sx, &sy);
        assert_bit_identical(&s1, &s2, "f64 1 vs 2 threads");
        assert_bit_identical(&s1, &s3, "f64 1 vs 3 threads");
        assert!(s1.xtx.iter().all(|v| v.is_finite()));
    }

    // f32 through a negatively strided view, d = 1100, 2 blocks, no folds.
    let (n, d, k) = (4_000, 1100, 2);
    let xt: Vec<f32> = (0..n * d).map(|_| gauss(&mut r) as f32).collect();
    let y: Vec<f64> = (0..n * k).map(|_| gauss(&mut r)).collect();
    let stored = Stored::new(&xt, n, d, Layout::NegStrided, f32::NAN);
    let xv = stored.view();
    let yv = MatRef::from_row_major_slice(&y, n, k);
    let sx = vec![0.01; d];
    let sy = vec![0.0; k];
    let one = [(xv, yv, None)];
    let s1 = stats_in_pool(1, &one, &sx, &sy);
    let s2 = stats_in_pool(2, &one, &sx, &sy);
    let s3 = stats_in_pool(3, &one, &sx, &sy);
    assert_bit_identical(&s1, &s2, "f32 1 vs 2 threads");
    assert_bit_identical(&s1, &s3, "f32 1 vs 3 threads");
    assert!(s1.xtx.iter().all(|v| v.is_finite()));
}

// ---------------------------------------------------------------------------------------------
// 3. Error paths
// ---------------------------------------------------------------------------------------------

#[test]
fn accumulate_errors_leave_statistics_unchanged() {
    let (n, d, k, kf) = (20, 4, 2, 3);
    let mut r = rng(600);
    let x: Vec<f64> = (0..n * (d + 1)).map(|_| gauss(&mut r)).collect();
    let y: Vec<f64> = (0..n * (k + 1)).map(|_| gauss(&mut r)).collect();
    let sx = vec![0.0; d];
    let sy = vec![0.0; k];
    let xv = MatRef::from_row_major_slice(&x[..n * d], n, d);
    let yv = MatRef::from_row_major_slice(&y[..n * k], n, k);
    let folds: Vec<usize> = (0..n).map(|i| i % kf).collect();
    let fresh = SufficientStats::new(kf, sx.clone(), sy.clone());

    // Non-empty statistics first, so "unchanged" is not just "still zero".
    let mut base = fresh.clone();
    base.update(xv, yv, Some(&folds)).unwrap();

    let x_wide = MatRef::from_row_major_slice(&x, n, d + 1);
    let y_wide = MatRef::from_row_major_slice(&y, n, k + 1);
    let mut bad_folds = folds.clone();
    bad_folds[n - 1] = kf;
    let mut huge_folds = folds.clone();
    huge_folds[0] = usize::MAX;

    type Call<'a> =
        Box<dyn Fn(&mut SufficientStats) -> Result<(), shallowprobes_core::CoreError> + 'a>;
    let calls: Vec<(&str, Call)> = vec![
        (
            "X has d+1 columns",
            Box::new(|s| s.update(x_wide, yv, None)),
        ),
        (
            "X has d-1 columns",
            Box::new(|s| s.update(xv.subcols(0, d - 1), yv, None)),
        ),
        (
            "Y has one row fewer",
            Box::new(|s| s.update(xv, yv.subrows(0, n - 1), None)),
        ),
        (
            "Y has k+1 columns",
            Box::new(|s| s.update(xv, y_wide, None)),
        ),
        (
            "Y has k-1 columns",
            Box::new(|s| s.update(xv, yv.subcols(0, k - 1), None)),
        ),
        (
            "fold id == K",
            Box::new(|s| s.update(xv, yv, Some(&bad_folds))),
        ),
        (
            "fold id usize::MAX",
            Box::new(|s| s.update(xv, yv, Some(&huge_folds))),
        ),
        (
            "fold ids one short",
            Box::new(|s| s.update(xv, yv, Some(&folds[..n - 1]))),
        ),
        (
            "fold ids one long",
            Box::new(|s| {
                let mut f = folds.clone();
                f.push(0);
                s.update(xv, yv, Some(&f))
            }),
        ),
        (
            "shift_x too short",
            Box::new(|s| {
                let sy = s.shift_y.clone();
                accumulate(xv, yv, None, &sx[..d - 1], &sy, s.view_mut())
            }),
        ),
        (
            "shift_y too long",
            Box::new(|s| {
                let sx = s.shift_x.clone();
                accumulate(xv, yv, None, &sx, &[0.0; 3], s.view_mut())
            }),
        ),
    ];
    for (what, call) in &calls {
        let mut s = base.clone();
        let res = call(&mut s);
        assert!(res.is_err(), "{what}: expected Err, got Ok");
        assert_eq!(s, base, "{what}: statistics changed on error");
    }

    // StatsMut slices of the wrong length, one field at a time.
    for bad in 0..6 {
        let len = |i: usize, want: usize| if i == bad { want + 1 } else { want };
        // field 0 is d itself (StatsMut.d disagrees with the slices)
        let sd = if bad == 0 { d + 1 } else { d };
        let mut sum_x = vec![0.0; len(1, kf * d)];
        let mut sum_y = vec![0.0; len(2, kf * k)];
        let mut xtx = vec![0.0; len(3, kf * d * d)];
        let mut xty = vec![0.0; len(4, kf * d * k)];
        let mut yty = vec![0.0; len(5, kf * k * k)];
        let mut count = vec![0.0; kf];
        let out = StatsMut {
            d: sd,
            k,
            count: &mut count,
            sum_x: &mut sum_x,
            sum_y: &mut sum_y,
            xtx: &mut xtx,
            xty: &mut xty,
            yty: &mut yty,
        };
        assert!(out.check_shapes().is_err() || bad == 0);
        let res = accumulate(xv, yv, Some(&folds), &sx, &sy, out);
        assert!(res.is_err(), "StatsMut field {bad} of wrong size accepted");
        for v in [&count, &sum_x, &sum_y, &xtx, &xty, &yty] {
            assert!(v.iter().all(|&e| e == 0.0), "field {bad}: output written");
        }
    }

    // Zero folds.
    let out = StatsMut {
        d,
        k,
        count: &mut [],
        sum_x: &mut [],
        sum_y: &mut [],
        xtx: &mut [],
        xty: &mut [],
        yty: &mut [],
    };
    assert!(accumulate(xv, yv, None, &sx, &sy, out).is_err());
}

// ---------------------------------------------------------------------------------------------
// 4. all_finite
// ---------------------------------------------------------------------------------------------

fn check_all_finite<T: Element>(conv: fn(f64) -> T) {
    // (n, d): small, and 3 row blocks (block_rows(3) = 4096).
    for (n, d) in [(7usize, 5usize), (9_000, 3), (1, 1)] {
        let mut r = rng((n * 31 + d) as u64);
        let base: Vec<T> = (0..n * d).map(|_| conv(100.0 * gauss(&mut r))).collect();
        for layout in [Layout::RowMajor, Layout::ColMajor, Layout::NegStrided] {
            let s = Stored::new(&base, n, d, layout, conv(f64::NAN));
            assert!(all_finite(s.view()), "finite data reported non-finite");
        }
        let positions = [
            (0, 0),
            (n - 1, d - 1),
            (n / 2, d / 2),
            (n - 1, 0),
            (0, d - 1),
        ];
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for &(i, j) in &positions {
                let mut x = base.clone();
                x[i * d + j] = conv(bad);
                for layout in [Layout::RowMajor, Layout::ColMajor, Layout::NegStrided] {
                    let s = Stored::new(&x, n, d, layout, conv(0.0));
                    assert!(
                        !all_finite(s.view()),
                        "{} {bad} at ({i}, {j}) of {n}×{d} {layout:?} not detected",
                        std::any::type_name::<T>()
                    );
                }
            }
        }
    }
    // Extremes that are finite.
    let x = [conv(f64::MAX), conv(-f64::MAX), conv(0.0), conv(-0.0)];
    let x: Vec<T> = x.into_iter().filter(|v| v.to_f64().is_finite()).collect();
    assert!(all_finite(MatRef::from_row_major_slice(&x, x.len(), 1)));
    let empty: [T; 0] = [];
    assert!(all_finite(MatRef::from_row_major_slice(&empty, 0, 4)));
}

#[test]
fn all_finite_detects_nan_and_inf() {
    check_all_finite(to_f64);
    check_all_finite(to_f32);
    // f32::MAX is finite, a value that overflows f32 is not.
    assert!(all_finite(MatRef::from_row_major_slice(
        &[f32::MAX, f32::MIN],
        1,
        2
    )));
    assert!(!all_finite(MatRef::from_row_major_slice(
        &[1e39f64 as f32],
        1,
        1
    )));
}

// ---------------------------------------------------------------------------------------------
// Dense references for the ridge tests
// ---------------------------------------------------------------------------------------------

/// aᵀ b
fn at_b(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    assert_eq!(a.nrows(), b.nrows());
    let mut out = Mat::<f64>::zeros(a.ncols(), b.ncols());
    for r in 0..a.nrows() {
        for i in 0..a.ncols() {
            let ai = a[(r, i)];
            for j in 0..b.ncols() {
                out[(i, j)] += ai * b[(r, j)];
            }
        }
    }
    out
}

/// a b
fn a_b(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    assert_eq!(a.ncols(), b.nrows());
    let mut out = Mat::<f64>::zeros(a.nrows(), b.ncols());
    for i in 0..a.nrows() {
        for l in 0..a.ncols() {
            let ail = a[(i, l)];
            for j in 0..b.ncols() {
                out[(i, j)] += ail * b[(l, j)];
            }
        }
    }
    out
}

fn transpose(a: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(a.ncols(), a.nrows(), |i, j| a[(j, i)])
}

fn add_diag(a: &Mat<f64>, alpha: f64) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| {
        a[(i, j)] + if i == j { alpha } else { 0.0 }
    })
}

fn sub(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] - b[(i, j)])
}

fn frob(a: &Mat<f64>) -> f64 {
    let mut s = 0.0;
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            s += a[(i, j)] * a[(i, j)];
        }
    }
    s.sqrt()
}

fn max_abs(a: &Mat<f64>) -> f64 {
    let mut m = 0.0f64;
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            m = m.max(a[(i, j)].abs());
        }
    }
    m
}

fn col_sq_norms(a: &Mat<f64>) -> Vec<f64> {
    (0..a.ncols())
        .map(|j| (0..a.nrows()).map(|i| a[(i, j)] * a[(i, j)]).sum())
        .collect()
}

/// Solves a x = b by Gaussian elimination with partial pivoting.
fn solve(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    let n = a.nrows();
    assert_eq!(a.ncols(), n);
    assert_eq!(b.nrows(), n);
    let m = b.ncols();
    let mut a = a.clone();
    let mut b = b.clone();
    for c in 0..n {
        let mut p = c;
        for i in c + 1..n {
            if a[(i, c)].abs() > a[(p, c)].abs() {
                p = i;
            }
        }
        assert!(a[(p, c)] != 0.0, "singular matrix in reference solve");
        if p != c {
            for j in 0..n {
                let t = a[(p, j)];
                a[(p, j)] = a[(c, j)];
                a[(c, j)] = t;
            }
            for j in 0..m {
                let t = b[(p, j)];
                b[(p, j)] = b[(c, j)];
                b[(c, j)] = t;
            }
        }
        for i in c + 1..n {
            let f = a[(i, c)] / a[(c, c)];
            if f != 0.0 {
                for j in c..n {
                    a[(i, j)] -= f * a[(c, j)];
                }
                for j in 0..m {
                    b[(i, j)] -= f * b[(c, j)];
                }
            }
        }
    }
    let mut x = Mat::<f64>::zeros(n, m);
    for j in 0..m {
        for i in (0..n).rev() {
            let mut s = b[(i, j)];
            for l in i + 1..n {
                s -= a[(i, l)] * x[(l, j)];
            }
            x[(i, j)] = s / a[(i, i)];
        }
    }
    x
}

/// Columns of `a` minus their means, and the means.
fn centre(a: &Mat<f64>) -> (Mat<f64>, Vec<f64>) {
    let n = a.nrows() as f64;
    let means: Vec<f64> = (0..a.ncols())
        .map(|j| (0..a.nrows()).map(|i| a[(i, j)]).sum::<f64>() / n)
        .collect();
    (
        Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] - means[j]),
        means,
    )
}

/// A regression problem with its centred Gram and cross-products.
struct Problem {
    x: Mat<f64>,
    y: Mat<f64>,
    xc: Mat<f64>,
    yc: Mat<f64>,
    x_mean: Vec<f64>,
    y_mean: Vec<f64>,
    g: Mat<f64>,
    cxy: Mat<f64>,
}

impl Problem {
    fn from_data(x: Mat<f64>, y: Mat<f64>) -> Self {
        let (xc, x_mean) = centre(&x);
        let (yc, y_mean) = centre(&y);
        let g = at_b(&xc, &xc);
        let cxy = at_b(&xc, &yc);
        Self {
            x,
            y,
            xc,
            yc,
            x_mean,
            y_mean,
            g,
            cxy,
        }
    }

    fn n(&self) -> usize {
        self.x.nrows()
    }

    /// trace(G)/d: a natural unit for alpha.
    fn alpha_unit(&self) -> f64 {
        let d = self.g.nrows();
        (0..d).map(|j| self.g[(j, j)]).sum::<f64>() / d as f64
    }
}

/// Random problem: columns with different scales and means, Y = X W + noise + offset.
fn random_problem(seed: u64, n: usize, d: usize, k: usize) -> Problem {
    let mut r = rng(seed);
    let x = Mat::from_fn(n, d, |_, j| {
        0.3 * j as f64 + (0.5 + 0.25 * (j % 5) as f64) * gauss(&mut r)
    });
    let w = Mat::from_fn(d, k, |_, _| gauss(&mut r));
    let xw = a_b(&x, &w);
    let y = Mat::from_fn(n, k, |i, t| xw[(i, t)] + 2.0 * gauss(&mut r) + 3.0);
    Problem::from_data(x, y)
}

/// perp = ‖Yc‖² − Σ_{λ>0} b²/λ, clamped at 0, and 0 when n − 1 ≤ rank.
fn perp_of(spec: &Spectrum, yc: &Mat<f64>) -> Vec<f64> {
    let n = yc.nrows();
    let rank = spec.lam.iter().filter(|&&l| l > 0.0).count();
    col_sq_norms(yc)
        .into_iter()
        .enumerate()
        .map(|(t, yy)| {
            if n - 1 <= rank {
                return 0.0;
            }
            let mut p = yy;
            for (j, &l) in spec.lam.iter().enumerate() {
                if l > 0.0 {
                    p -= spec.b[(j, t)] * spec.b[(j, t)] / l;
                }
            }
            p.max(0.0)
        })
        .collect()
}

/// ‖Yc − Xc W‖² per target, row by row.
fn rss_direct(xc: &Mat<f64>, yc: &Mat<f64>, w: &Mat<f64>) -> Vec<f64> {
    let fit = a_b(xc, w);
    col_sq_norms(&sub(yc, &fit))
}

/// trace(Xc (G + αI)⁻¹ Xcᵀ).
fn hat_trace(xc: &Mat<f64>, g: &Mat<f64>, alpha: f64) -> f64 {
    let m = solve(&add_diag(g, alpha), &transpose(xc));
    let mut tr = 0.0;
    for i in 0..xc.nrows() {
        for j in 0..xc.ncols() {
            tr += xc[(i, j)] * m[(j, i)];
        }
    }
    tr
}

/// max over columns of ‖got − want‖ / ‖want‖.
fn col_rel_err(got: &Mat<f64>, want: &Mat<f64>) -> f64 {
    assert_eq!((got.nrows(), got.ncols()), (want.nrows(), want.ncols()));
    (0..want.ncols())
        .map(|t| {
            let (mut e, mut w) = (0.0, 0.0);
            for i in 0..want.nrows() {
                e += (got[(i, t)] - want[(i, t)]).powi(2);
                w += want[(i, t)].powi(2);
            }
            (e / w).sqrt()
        })
        .fold(0.0, f64::max)
}

fn assert_rel(what: &str, got: f64, want: f64, rtol: f64) {
    assert!(
        (got - want).abs() <= rtol * want.abs(),
        "{what}: got {got:e}, want {want:e} (relative error {:e})",
        (got - want).abs() / want.abs()
    );
}

/// Checks the documented properties of a spectrum: ascending λ ≥ 0 with exactly
/// `zeros` clamped entries, orthonormal V, V diag(λ) Vᵀ = G, b = Vᵀ cxy (0 where λ = 0).
fn check_spectrum(spec: &Spectrum, g: &Mat<f64>, cxy: &Mat<f64>, zeros: usize, label: &str) {
    let d = g.nrows();
    assert_eq!(spec.lam.len(), d);
    assert_eq!((spec.v.nrows(), spec.v.ncols()), (d, d));
    assert_eq!((spec.b.nrows(), spec.b.ncols()), (d, cxy.ncols()));
    for w in spec.lam.windows(2) {
        assert!(
            w[0] <= w[1],
            "{label}: eigenvalues not ascending: {:?}",
            spec.lam
        );
    }
    assert!(
        spec.lam.iter().all(|&l| l >= 0.0),
        "{label}: negative eigenvalue"
    );
    let n_zero = spec.lam.iter().filter(|&&l| l == 0.0).count();
    assert_eq!(n_zero, zeros, "{label}: clamped eigenvalues {:?}", spec.lam);
    let top = spec.lam[d - 1];
    let v = spec.v.to_owned();
    let vtv = at_b(&v, &v);
    let eye = Mat::from_fn(d, d, |i, j| if i == j { 1.0 } else { 0.0 });
    assert!(
        max_abs(&sub(&vtv, &eye)) < 1e-12,
        "{label}: V not orthonormal"
    );
    let vl = Mat::from_fn(d, d, |i, j| v[(i, j)] * spec.lam[j]);
    let recon = a_b(&vl, &transpose(&v));
    assert!(
        max_abs(&sub(&recon, g)) <= 1e-12 * top,
        "{label}: V diag(λ) Vᵀ differs from G by {:e}",
        max_abs(&sub(&recon, g))
    );
    let vtc = at_b(&v, cxy);
    let cn = frob(cxy);
    for j in 0..d {
        for t in 0..cxy.ncols() {
            if spec.lam[j] == 0.0 {
                assert_eq!(spec.b[(j, t)], 0.0, "{label}: b not zeroed at λ = 0");
            } else {
                assert!((spec.b[(j, t)] - vtc[(j, t)]).abs() <= 1e-12 * cn);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. spectrum + ridge_path
// ---------------------------------------------------------------------------------------------

#[test]
fn ridge_path_matches_direct_solves() {
    // (n, d, k, seed): n > d, n < d, n = d.
    for (n, d, k, seed) in [
        (200usize, 12usize, 3usize, 1u64),
        (15, 40, 2, 2),
        (40, 40, 2, 3),
    ] {
        let p = random_problem(seed, n, d, k);
        let label = format!("n={n} d={d}");
        let rank = d.min(n - 1);
        let spec = spectrum(p.g.as_ref(), p.cxy.as_ref(), Par::Seq).unwrap();
        check_spectrum(&spec, &p.g, &p.cxy, d - rank, &label);
        let perp = perp_of(&spec, &p.yc);
        let unit = p.alpha_unit();
        let mut alphas: Vec<f64> = [1e-3, 1e-1, 1.0, 10.0, 1e3]
            .iter()
            .map(|a| a * unit)
            .collect();
        if rank == d {
            alphas.insert(0, 0.0); // OLS
        }
        let path = ridge_path(&spec, &perp, &alphas, true, Par::Seq).unwrap();
        assert_eq!(path.coefs.len(), alphas.len());
        assert_eq!(path.rss.len(), alphas.len());
        assert_eq!(path.dof.len(), alphas.len());
        for (a, &alpha) in alphas.iter().enumerate() {
            let la = format!("{label} alpha={alpha:e}");
            let w_ref = solve(&add_diag(&p.g, alpha), &p.cxy);
            let w = &path.coefs[a];
            assert!(
                col_rel_err(w, &w_ref) <= 1e-9,
                "{la}: coefficients off by {:e}",
                col_rel_err(w, &w_ref)
            );
            let rss = rss_direct(&p.xc, &p.yc, &w_ref);
            for t in 0..k {
                assert_rel(&format!("{la} rss[{t}]"), path.rss[a][t], rss[t], 1e-8);
            }
            assert_rel(
                &format!("{la} dof"),
                path.dof[a],
                hat_trace(&p.xc, &p.g, alpha),
                1e-9,
            );
            if alpha == 0.0 {
                assert!((path.dof[a] - d as f64).abs() < 1e-12);
            }
        }
        // Parallel and coefficient-free runs agree.
        let par = ridge_path(&spec, &perp, &alphas, true, Par::rayon(2)).unwrap();
        let bare = ridge_path(&spec, &perp, &alphas, false, Par::Seq).unwrap();
        assert!(bare.coefs.is_empty());
        assert_eq!(bare.rss, path.rss);
        assert_eq!(bare.dof, path.dof);
        for a in 0..alphas.len() {
            assert!(col_rel_err(&par.coefs[a], &path.coefs[a]) <= 1e-13);
        }
        // dof decreases with alpha.
        for w in path.dof.windows(2) {
            assert!(w[0] > w[1]);
        }
    }
}

#[test]
fn spectrum_reads_only_the_lower_triangle() {
    let p = random_problem(11, 50, 7, 2);
    let d = 7;
    let spec = spectrum(p.g.as_ref(), p.cxy.as_ref(), Par::Seq).unwrap();
    let g_lower = Mat::from_fn(d, d, |i, j| if i >= j { p.g[(i, j)] } else { f64::NAN });
    let spec2 = spectrum(g_lower.as_ref(), p.cxy.as_ref(), Par::Seq).unwrap();
    for j in 0..d {
        assert!(
            (spec.lam[j] - spec2.lam[j]).abs() <= 1e-12 * spec.lam[d - 1],
            "eigenvalue {j}: {} vs {}",
            spec.lam[j],
            spec2.lam[j]
        );
    }
}

#[test]
fn ridge_shape_errors() {
    let p = random_problem(12, 30, 5, 2);
    let g_rect = Mat::<f64>::zeros(5, 4);
    assert!(spectrum(g_rect.as_ref(), p.cxy.as_ref(), Par::Seq).is_err());
    let cxy_bad = Mat::<f64>::zeros(4, 2);
    assert!(spectrum(p.g.as_ref(), cxy_bad.as_ref(), Par::Seq).is_err());
    let spec = spectrum(p.g.as_ref(), p.cxy.as_ref(), Par::Seq).unwrap();
    assert!(ridge_path(&spec, &[0.0], &[1.0], true, Par::Seq).is_err());
    assert!(ridge_path(&spec, &[0.0; 3], &[1.0], true, Par::Seq).is_err());
}

#[test]
fn inv_shifted_is_a_pseudo_inverse() {
    assert_eq!(inv_shifted(0.0, 0.0), 0.0);
    assert_eq!(inv_shifted(2.0, 3.0), 0.2);
    assert_eq!(inv_shifted(0.0, 4.0), 0.25);
    assert_eq!(inv_shifted(4.0, 0.0), 0.25);
    assert_eq!(inv_shifted(-1.0, 0.5), 0.0);
}

#[test]
fn alpha_zero_collinear_columns_gives_minimum_norm_solution() {
    // Integer-valued X with x6 = x0 + x1 and x7 = 2·x2 − x3 exactly: a 2-dimensional null space
    // spanned by N = [e0 + e1 − e6, 2e2 − e3 − e7].
    let (n, d, k) = (60, 8, 2);
    let mut r = rng(21);
    let mut x = Mat::from_fn(n, d, |_, _| r.gen_range(-8i32..=8) as f64);
    for i in 0..n {
        x[(i, 6)] = x[(i, 0)] + x[(i, 1)];
        x[(i, 7)] = 2.0 * x[(i, 2)] - x[(i, 3)];
    }
    let y = Mat::from_fn(n, k, |i, t| {
        x[(i, 0)] - (t as f64) * x[(i, 4)] + 0.5 * x[(i, 6)] + gauss(&mut r)
    });
    let p = Problem::from_data(x, y);
    let mut nmat = Mat::<f64>::zeros(d, 2);
    nmat[(0, 0)] = 1.0;
    nmat[(1, 0)] = 1.0;
    nmat[(6, 0)] = -1.0;
    nmat[(2, 1)] = 2.0;
    nmat[(3, 1)] = -1.0;
    nmat[(7, 1)] = -1.0;

    let spec = spectrum(p.g.as_ref(), p.cxy.as_ref(), Par::Seq).unwrap();
    check_spectrum(&spec, &p.g, &p.cxy, 2, "collinear");
    let perp = perp_of(&spec, &p.yc);
    let unit = p.alpha_unit();
    let path = ridge_path(&spec, &perp, &[0.0, unit], true, Par::Seq).unwrap();
    let w = &path.coefs[0];

    // Reference: (G + c N Nᵀ)⁻¹ cxy is the minimum-norm solution (cxy ⊥ null(G)).
    let nnt = a_b(&nmat, &transpose(&nmat));
    let gn = Mat::from_fn(d, d, |i, j| p.g[(i, j)] + unit * nnt[(i, j)]);
    let w_ref = solve(&gn, &p.cxy);
    assert!(
        col_rel_err(w, &w_ref) <= 1e-9,
        "min-norm solution off by {:e}",
        col_rel_err(w, &w_ref)
    );
    // Orthogonal to the null space, and satisfies the normal equations.
    let ntw = at_b(&nmat, w);
    assert!(
        max_abs(&ntw) <= 1e-10 * frob(w),
        "Nᵀ W = {:e}",
        max_abs(&ntw)
    );
    let resid = sub(&a_b(&p.g, w), &p.cxy);
    assert!(frob(&resid) <= 1e-9 * frob(&p.cxy));
    // RSS and dof at alpha = 0 (rank 6).
    let rss = rss_direct(&p.xc, &p.yc, &w_ref);
    for t in 0..k {
        assert_rel("collinear rss", path.rss[0][t], rss[t], 1e-8);
    }
    assert!((path.dof[0] - 6.0).abs() < 1e-10, "dof {}", path.dof[0]);
    // alpha > 0 is an ordinary ridge solve and still orthogonal to the null space.
    let w1_ref = solve(&add_diag(&p.g, unit), &p.cxy);
    assert!(col_rel_err(&path.coefs[1], &w1_ref) <= 1e-9);
}

#[test]
fn alpha_zero_fewer_rows_than_features_gives_minimum_norm_interpolant() {
    for (n, d, k, seed) in [(10usize, 30usize, 2usize, 31u64), (5, 8, 3, 32)] {
        let p = random_problem(seed, n, d, k);
        let label = format!("n={n} d={d}");
        let spec = spectrum(p.g.as_ref(), p.cxy.as_ref(), Par::Seq).unwrap();
        check_spectrum(&spec, &p.g, &p.cxy, d - (n - 1), &label);
        let perp = perp_of(&spec, &p.yc);
        assert!(perp.iter().all(|&v| v == 0.0));
        let path = ridge_path(&spec, &perp, &[0.0], true, Par::Seq).unwrap();
        // W = Xcᵀ (Xc Xcᵀ + c 11ᵀ)⁻¹ Yc: the minimum-norm solution of Xc W = Yc.
        let k_mat = a_b(&p.xc, &transpose(&p.xc));
        let c = p.alpha_unit();
        let k1 = Mat::from_fn(n, n, |i, j| k_mat[(i, j)] + c);
        let w_ref = a_b(&transpose(&p.xc), &solve(&k1, &p.yc));
        assert!(
            col_rel_err(&path.coefs[0], &w_ref) <= 1e-9,
            "{label}: min-norm interpolant off by {:e}",
            col_rel_err(&path.coefs[0], &w_ref)
        );
        let yy = col_sq_norms(&p.yc);
        let direct = rss_direct(&p.xc, &p.yc, &path.coefs[0]);
        for t in 0..k {
            assert!(path.rss[0][t] <= 1e-12 * yy[t]);
            assert!(direct[t] <= 1e-12 * yy[t], "{label}: not interpolating");
        }
        assert!((path.dof[0] - (n - 1) as f64).abs() < 1e-10);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. heldout_sse
// ---------------------------------------------------------------------------------------------

/// Σ_i (ỹ_i − x̃_iᵀ w − c)² per target.
fn sse_direct(x: &Mat<f64>, y: &Mat<f64>, w: &Mat<f64>, c: &[f64]) -> Vec<f64> {
    let fit = a_b(x, w);
    let res = Mat::from_fn(y.nrows(), y.ncols(), |i, t| y[(i, t)] - fit[(i, t)] - c[t]);
    col_sq_norms(&res)
}

#[test]
fn heldout_sse_matches_rows() {
    let (m, d, k) = (80, 7, 3);
    let mut r = rng(41);
    // Held-out rows, already in the shifted frame.
    let x = Mat::from_fn(m, d, |_, j| 0.4 * j as f64 + gauss(&mut r));
    let w_true = Mat::from_fn(d, k, |_, _| gauss(&mut r));
    let xw = a_b(&x, &w_true);
    let y = Mat::from_fn(m, k, |i, t| xw[(i, t)] + 1.5 + 0.3 * gauss(&mut r));
    let xtx = at_b(&x, &x);
    let xty = at_b(&x, &y);
    let yty_diag = col_sq_norms(&y);
    let sum_x: Vec<f64> = (0..d).map(|j| (0..m).map(|i| x[(i, j)]).sum()).collect();
    let sum_y: Vec<f64> = (0..k).map(|t| (0..m).map(|i| y[(i, t)]).sum()).collect();
    let fold = FoldStats {
        xtx: xtx.as_ref(),
        xty: xty.as_ref(),
        yty_diag: &yty_diag,
        sum_x: &sum_x,
        sum_y: &sum_y,
        n: m as f64,
    };
    // Random models, the zero model, and a good model (close to the truth).
    let mut models: Vec<Mat<f64>> = (0..4)
        .map(|s| Mat::from_fn(d, k, |_, _| (s as f64 + 0.5) * gauss(&mut r)))
        .collect();
    let mut offsets: Vec<Vec<f64>> = (0..4)
        .map(|_| (0..k).map(|_| 2.0 * gauss(&mut r)).collect())
        .collect();
    models.push(Mat::zeros(d, k));
    offsets.push(vec![0.0; k]);
    models.push(Mat::from_fn(d, k, |j, t| {
        w_true[(j, t)] + 0.01 * gauss(&mut r)
    }));
    offsets.push(vec![1.5; k]);
    let refs: Vec<MatRef<'_, f64>> = models.iter().map(|w| w.as_ref()).collect();
    for par in [Par::Seq, Par::rayon(2)] {
        let sse = heldout_sse(&fold, &refs, &offsets, par).unwrap();
        assert_eq!(sse.len(), models.len());
        for (a, w) in models.iter().enumerate() {
            let want = sse_direct(&x, &y, w, &offsets[a]);
            for t in 0..k {
                assert_rel(&format!("model {a} sse[{t}]"), sse[a][t], want[t], 1e-9);
            }
        }
    }
    // Mismatched inputs are errors.
    assert!(heldout_sse(&fold, &refs, &offsets[..2], Par::Seq).is_err());
    let narrow = Mat::<f64>::zeros(d, k - 1);
    assert!(heldout_sse(&fold, &[narrow.as_ref()], &[vec![0.0; k]], Par::Seq).is_err());
    assert!(heldout_sse(&fold, &[refs[0]], &[vec![0.0; k + 1]], Par::Seq).is_err());
}

#[test]
fn cross_validation_from_fold_statistics_matches_naive_refits() {
    // accumulate per-fold stats about a shift → train on K−1 folds → heldout_sse on the
    // remaining fold, against ridge refits and errors computed from the raw rows.
    let (n, d, k, kf) = (300, 9, 2, 3);
    let p = random_problem(51, n, d, k);
    let xbuf: Vec<f64> = (0..n * d).map(|i| p.x[(i / d, i % d)]).collect();
    let ybuf: Vec<f64> = (0..n * k).map(|i| p.y[(i / k, i % k)]).collect();
    let xv = MatRef::from_row_major_slice(&xbuf, n, d);
    let yv = MatRef::from_row_major_slice(&ybuf, n, k);
    let folds: Vec<usize> = (0..n).map(|i| (i * 7) % kf).collect();
    let sx: Vec<f64> = (0..d).map(|j| p.x[(0, j)]).collect();
    let sy: Vec<f64> = (0..k).map(|t| p.y[(0, t)]).collect();
    let mut st = SufficientStats::new(kf, sx.clone(), sy.clone());
    st.update(xv, yv, Some(&folds)).unwrap();
    let unit = p.alpha_unit();
    let alphas = [0.0, 0.01 * unit, unit, 100.0 * unit];
    for f in 0..kf {
        // Training statistics: sum over the other folds, then centre.
        let mut cnt = 0.0;
        let mut s_x = vec![0.0; d];
        let mut s_y = vec![0.0; k];
        let mut g = Mat::<f64>::zeros(d, d);
        let mut cxy = Mat::<f64>::zeros(d, k);
        for o in (0..kf).filter(|&o| o != f) {
            cnt += st.count[o];
            for i in 0..d {
                s_x[i] += st.sum_x[o * d + i];
                for j in 0..d {
                    g[(i, j)] += st.xtx[o * d * d + i * d + j];
                }
                for t in 0..k {
                    cxy[(i, t)] += st.xty[o * d * k + i * k + t];
                }
            }
            for t in 0..k {
                s_y[t] += st.sum_y[o * k + t];
            }
        }
        for i in 0..d {
            for j in 0..d {
                g[(i, j)] -= s_x[i] * s_x[j] / cnt;
            }
            for t in 0..k {
                cxy[(i, t)] -= s_x[i] * s_y[t] / cnt;
            }
        }
        let spec = spectrum(g.as_ref(), cxy.as_ref(), Par::Seq).unwrap();
        let path = ridge_path(&spec, &vec![0.0; k], &alphas, true, Par::Seq).unwrap();
        let offsets: Vec<Vec<f64>> = path
            .coefs
            .iter()
            .map(|w| {
                (0..k)
                    .map(|t| (s_y[t] - (0..d).map(|j| w[(j, t)] * s_x[j]).sum::<f64>()) / cnt)
                    .collect()
            })
            .collect();
        let yty_diag: Vec<f64> = (0..k).map(|t| st.yty[f * k * k + t * k + t]).collect();
        let fold = FoldStats {
            xtx: MatRef::from_row_major_slice(&st.xtx[f * d * d..(f + 1) * d * d], d, d),
            xty: MatRef::from_row_major_slice(&st.xty[f * d * k..(f + 1) * d * k], d, k),
            yty_diag: &yty_diag,
            sum_x: &st.sum_x[f * d..(f + 1) * d],
            sum_y: &st.sum_y[f * k..(f + 1) * k],
            n: st.count[f],
        };
        let refs: Vec<MatRef<'_, f64>> = path.coefs.iter().map(|w| w.as_ref()).collect();
        let sse = heldout_sse(&fold, &refs, &offsets, Par::Seq).unwrap();

        // Naive: refit on the raw training rows, score the held-out rows.
        let train: Vec<usize> = (0..n).filter(|&i| folds[i] != f).collect();
        let test: Vec<usize> = (0..n).filter(|&i| folds[i] == f).collect();
        let xt = Mat::from_fn(train.len(), d, |i, j| p.x[(train[i], j)]);
        let yt = Mat::from_fn(train.len(), k, |i, t| p.y[(train[i], t)]);
        let tp = Problem::from_data(xt, yt);
        let xh = Mat::from_fn(test.len(), d, |i, j| p.x[(test[i], j)]);
        let yh = Mat::from_fn(test.len(), k, |i, t| p.y[(test[i], t)]);
        for (a, &alpha) in alphas.iter().enumerate() {
            let w = solve(&add_diag(&tp.g, alpha), &tp.cxy);
            assert!(col_rel_err(&path.coefs[a], &w) <= 1e-8);
            let b0: Vec<f64> = (0..k)
                .map(|t| tp.y_mean[t] - (0..d).map(|j| tp.x_mean[j] * w[(j, t)]).sum::<f64>())
                .collect();
            let want = sse_direct(&xh, &yh, &w, &b0);
            for t in 0..k {
                assert_rel(
                    &format!("fold {f} alpha {a} sse[{t}]"),
                    sse[a][t],
                    want[t],
                    1e-8,
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 7. loo_predictions
// ---------------------------------------------------------------------------------------------

/// Explicit leave-one-out: refit on the other n − 1 rows (centred on them when fitting an
/// intercept) and predict the left-out row. Returns n × k.
fn loo_reference(x: &Mat<f64>, y: &Mat<f64>, alpha: f64, fit_intercept: bool) -> Mat<f64> {
    let (n, d, k) = (x.nrows(), x.ncols(), y.ncols());
    let mut out = Mat::<f64>::zeros(n, k);
    for i in 0..n {
        let rows: Vec<usize> = (0..n).filter(|&r| r != i).collect();
        let xs = Mat::from_fn(n - 1, d, |a, j| x[(rows[a], j)]);
        let ys = Mat::from_fn(n - 1, k, |a, t| y[(rows[a], t)]);
        let (xc, xm, yc, ym) = if fit_intercept {
            let (xc, xm) = centre(&xs);
            let (yc, ym) = centre(&ys);
            (xc, xm, yc, ym)
        } else {
            (xs, vec![0.0; d], ys, vec![0.0; k])
        };
        let w = solve(&add_diag(&at_b(&xc, &xc), alpha), &at_b(&xc, &yc));
        for t in 0..k {
            let mut pred = ym[t];
            for j in 0..d {
                pred += (x[(i, j)] - xm[j]) * w[(j, t)];
            }
            out[(i, t)] = pred;
        }
    }
    out
}

/// Runs the core's LOO for rows [r0, r0+m) of the problem.
fn core_loo(
    p: &Problem,
    fit_intercept: bool,
    alphas: &[f64],
    r0: usize,
    m: usize,
    par: Par,
) -> (Vec<f64>, Spectrum) {
    let (d, k) = (p.x.ncols(), p.y.ncols());
    let (g, cxy, xm, ym) = if fit_intercept {
        (
            p.g.clone(),
            p.cxy.clone(),
            p.x_mean.clone(),
            p.y_mean.clone(),
        )
    } else {
        (
            at_b(&p.x, &p.x),
            at_b(&p.x, &p.y),
            vec![0.0; d],
            vec![0.0; k],
        )
    };
    let spec = spectrum(g.as_ref(), cxy.as_ref(), Par::Seq).unwrap();
    let model = LooModel {
        x_mean: &xm,
        y_mean: &ym,
        spec: &spec,
        alphas,
        n_total: p.n() as f64,
        fit_intercept,
    };
    let mut out = vec![f64::INFINITY; alphas.len() * m * k];
    loo_predictions(
        p.x.as_ref().subrows(r0, m),
        p.y.as_ref().subrows(r0, m),
        &model,
        &mut out,
        par,
    )
    .unwrap();
    (out, spec)
}

fn assert_loo_matches(p: &Problem, fit_intercept: bool, alphas: &[f64], r0: usize, m: usize) {
    let k = p.y.ncols();
    let y_scale = (col_sq_norms(&p.y).iter().sum::<f64>() / (p.n() * k) as f64).sqrt();
    for par in [Par::Seq, Par::rayon(2)] {
        let (out, _) = core_loo(p, fit_intercept, alphas, r0, m, par);
        for (a, &alpha) in alphas.iter().enumerate() {
            let want = loo_reference(&p.x, &p.y, alpha, fit_intercept);
            for i in 0..m {
                for t in 0..k {
                    let got = out[(a * m + i) * k + t];
                    let w = want[(r0 + i, t)];
                    assert!(
                        (got - w).abs() <= 1e-8 * (w.abs() + y_scale),
                        "intercept={fit_intercept} alpha={alpha:e} row {} target {t}: \
                         got {got:e}, want {w:e}",
                        r0 + i
                    );
                }
            }
        }
    }
}

#[test]
fn loo_predictions_match_explicit_refits() {
    let (n, d, k) = (25, 6, 2);
    let p = random_problem(61, n, d, k);
    let unit = p.alpha_unit();
    let alphas = [0.0, 1e-2 * unit, 0.3 * unit, unit, 30.0 * unit];
    for fit_intercept in [true, false] {
        assert_loo_matches(&p, fit_intercept, &alphas, 0, n);
        // A subset of the training rows (output indexed by position in the subset).
        assert_loo_matches(&p, fit_intercept, &alphas, 7, 11);
    }
}

#[test]
fn loo_rows_with_leverage_one_are_nan() {
    // n ≤ d: at alpha = 0 the fit interpolates every row (leverage 1) → NaN; alpha > 0 is
    // finite and exact.
    for (n, d, k, seed) in [(5usize, 8usize, 2usize, 71u64), (6, 6, 2, 72)] {
        let p = random_problem(seed, n, d, k);
        let unit = p.alpha_unit();
        let alphas = [0.0, 0.5 * unit, 5.0 * unit];
        for fit_intercept in [true, false] {
            let (out, _) = core_loo(&p, fit_intercept, &alphas, 0, n, Par::Seq);
            for i in 0..n * k {
                assert!(
                    out[i].is_nan(),
                    "n={n} d={d} intercept={fit_intercept}: entry {i} = {} not NaN",
                    out[i]
                );
            }
            assert!(out[n * k..].iter().all(|v| v.is_finite()));
            assert_loo_matches(&p, fit_intercept, &alphas[1..], 0, n);
        }
    }
}

#[test]
fn loo_shape_errors() {
    let p = random_problem(81, 12, 3, 2);
    let spec = spectrum(p.g.as_ref(), p.cxy.as_ref(), Par::Seq).unwrap();
    let alphas = [1.0, 2.0];
    let model = LooModel {
        x_mean: &p.x_mean,
        y_mean: &p.y_mean,
        spec: &spec,
        alphas: &alphas,
        n_total: 12.0,
        fit_intercept: true,
    };
    let mut short = vec![0.0; 2 * 12 * 2 - 1];
    assert!(loo_predictions(p.x.as_ref(), p.y.as_ref(), &model, &mut short, Par::Seq).is_err());
    let mut out = vec![0.0; 2 * 12 * 2];
    assert!(loo_predictions(
        p.x.as_ref(),
        p.y.as_ref().subrows(0, 11),
        &model,
        &mut out,
        Par::Seq
    )
    .is_err());
    assert!(loo_predictions(
        p.x.as_ref().subcols(0, 2),
        p.y.as_ref(),
        &model,
        &mut out,
        Par::Seq
    )
    .is_err());
    assert!(loo_predictions(p.x.as_ref(), p.y.as_ref(), &model, &mut out, Par::Seq).is_ok());
}

// ---------------------------------------------------------------------------------------------
// 8. threads
// ---------------------------------------------------------------------------------------------

#[test]
fn threads_set_num_threads_and_install() {
    // The only test that touches the core's pool (it is process-global).
    threads::set_num_threads(2).unwrap();
    assert_eq!(threads::num_threads(), 2);
    let (v, nt, par) = threads::install(|par| (6 * 7, rayon::current_num_threads(), par)).unwrap();
    assert_eq!(v, 42);
    assert_eq!(nt, 2);
    assert_eq!(par, Par::rayon(2));

    threads::set_num_threads(1).unwrap();
    assert_eq!(threads::num_threads(), 1);
    assert_eq!(threads::install(|par| par).unwrap(), Par::Seq);

    // Statistics computed inside the core's pool equal those of a one-thread rayon pool.
    threads::set_num_threads(3).unwrap();
    assert_eq!(threads::num_threads(), 3);
    let (n, d, k) = (5_000, 70, 2);
    let mut r = rng(91);
    let x: Vec<f64> = (0..n * d).map(|_| gauss(&mut r)).collect();
    let y: Vec<f64> = (0..n * k).map(|_| gauss(&mut r)).collect();
    let xv = MatRef::from_row_major_slice(&x, n, d);
    let yv = MatRef::from_row_major_slice(&y, n, k);
    let (sx, sy) = (vec![0.0; d], vec![0.0; k]);
    let inside = threads::install(|_| {
        let mut st = SufficientStats::new(3, sx.clone(), sy.clone());
        st.update(xv, yv, None).unwrap();
        st
    })
    .unwrap();
    let seq = stats_in_pool(1, &[(xv, yv, None)], &sx, &sy);
    assert_bit_identical(&inside, &seq, "core pool vs 1 thread");

    threads::set_num_threads(0).unwrap();
    assert!(threads::num_threads() >= 1);
}

/// `spectra` (one sequential eigendecomposition per thread) gives the same spectra as
/// `spectrum` called on each Gram, and reports a bad stack as an error.
#[test]
fn spectra_batch_matches_individual_spectra() {
    let mut r = rng(77);
    let (d, k) = (40, 3);
    let mut grams = Vec::new();
    let mut cxys = Vec::new();
    for n in [60usize, 25, 200] {
        let x = Mat::<f64>::from_fn(n, d, |_, _| gauss(&mut r));
        let y = Mat::<f64>::from_fn(n, k, |_, _| gauss(&mut r));
        grams.push(at_b(&x, &x));
        cxys.push(at_b(&x, &y));
    }
    let gv: Vec<MatRef<'_, f64>> = grams.iter().map(|g| g.as_ref()).collect();
    let cv: Vec<MatRef<'_, f64>> = cxys.iter().map(|c| c.as_ref()).collect();
    let batch = shallowprobes_core::ridge::spectra(&gv, &cv).expect("spectra");
    assert_eq!(batch.len(), 3);
    for (i, sp) in batch.iter().enumerate() {
        let single = spectrum(gv[i], cv[i], Par::Seq).expect("spectrum");
        // same algorithm, same sequential parallelism: identical results
        assert_eq!(bits(&sp.lam), bits(&single.lam), "eigenvalues of Gram {i}");
        for j in 0..d {
            for t in 0..k {
                assert_eq!(
                    sp.b[(j, t)].to_bits(),
                    single.b[(j, t)].to_bits(),
                    "B[{j},{t}] of {i}"
                );
            }
        }
    }
    assert!(shallowprobes_core::ridge::spectra(&gv, &cv[..2]).is_err());
}

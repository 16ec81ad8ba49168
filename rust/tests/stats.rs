//! Integration tests of the statistics accumulation (`cargo test --release --test stats`):
//! `accumulate` / `update` against naive per-row sums, bit-identical results across thread
//! counts, error paths that leave the statistics unchanged, and `all_finite`.
//!
//! The reference is written plainly here: naive per-row loops for the statistics.

// Index loops read most plainly for the references below.
#![allow(clippy::needless_range_loop)]

use faer::{Mat, MatRef};
use shallowprobes_core::stats::{
    accumulate, accumulate_with, all_finite, block_rows, Element, Precision, StatsMut,
    SufficientStats, F32_GRAM_ROWS,
};

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
                accumulate(xv, yv, None, &sx[..d - 1], &sy, s.view_mut()).map(|_| ())
            }),
        ),
        (
            "shift_y too long",
            Box::new(|s| {
                let sx = s.shift_x.clone();
                accumulate(xv, yv, None, &sx, &[0.0; 3], s.view_mut()).map(|_| ())
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

/// The blocks of interleaved folds are taken in row order, but each fold's own blocks keep its
/// row order: the statistics are bit for bit those of the same rows grouped fold by fold (the
/// order the accumulation used before), for f64 and f32 Grams and several block counts.
#[test]
fn interleaved_folds_sum_each_fold_in_its_own_row_order() {
    for (n, d, k, kf) in [(30000, 8, 2, 5), (13000, 40, 1, 3), (9, 3, 0, 2)] {
        // more than one block per fold: block_rows(d) rows in f64, F32_GRAM_ROWS in f32
        assert!(n < 10 || n / kf > block_rows(d).min(F32_GRAM_ROWS));
        let mut r = rng(n as u64);
        let x: Vec<f64> = (0..n * d).map(|_| 1.0 + gauss(&mut r)).collect();
        let y: Vec<f64> = (0..n * k).map(|_| gauss(&mut r)).collect();
        let folds: Vec<usize> = (0..n).map(|i| i % kf).collect();
        // the same rows, grouped by fold (each fold's rows in their original order)
        let order: Vec<usize> = (0..kf).flat_map(|f| (f..n).step_by(kf)).collect();
        let xg: Vec<f64> = order
            .iter()
            .flat_map(|&i| x[i * d..(i + 1) * d].to_vec())
            .collect();
        let yg: Vec<f64> = order
            .iter()
            .flat_map(|&i| y[i * k..(i + 1) * k].to_vec())
            .collect();
        let fg: Vec<usize> = order.iter().map(|&i| folds[i]).collect();
        let (sx, sy) = (vec![0.9; d], vec![0.1; k]);
        for precision in [Precision::F64, Precision::F32] {
            let mut a = SufficientStats::new(kf, sx.clone(), sy.clone());
            let mut b = SufficientStats::new(kf, sx.clone(), sy.clone());
            let (xa, ya) = (
                MatRef::from_row_major_slice(&x, n, d),
                MatRef::from_row_major_slice(&y, n, k),
            );
            let (xb, yb) = (
                MatRef::from_row_major_slice(&xg, n, d),
                MatRef::from_row_major_slice(&yg, n, k),
            );
            accumulate_with(xa, ya, Some(&folds), &sx, &sy, a.view_mut(), precision).unwrap();
            accumulate_with(xb, yb, Some(&fg), &sx, &sy, b.view_mut(), precision).unwrap();
            let label = format!("n = {n}, d = {d}, {precision:?}");
            assert_eq!(bits(&a.xtx), bits(&b.xtx), "{label}: XᵀX");
            assert_eq!(bits(&a.xty), bits(&b.xty), "{label}: XᵀY");
            assert_eq!(bits(&a.yty), bits(&b.yty), "{label}: YᵀY");
            assert_eq!(bits(&a.sum_x), bits(&b.sum_x), "{label}: Σx");
            assert_eq!(a.count, b.count, "{label}: counts");
        }
    }
}

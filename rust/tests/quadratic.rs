//! Integration tests of the quadratic feature kernels (`cargo test --release --test quadratic`).
//!
//! The core is compared against plain references written here: the feature vector of each row
//! built entry by entry, and its statistics summed row by row.

#![allow(clippy::needless_range_loop)]

use faer::MatRef;
use shallowprobes_core::quadratic::{
    accumulate_quadratic, expand_quadratic, n_quadratic_features, quadratic_pairs,
};
use shallowprobes_core::stats::{block_rows, Element, StatsMut, SufficientStats};

mod common;
use common::*;

// ---------------------------------------------------------------------------------------------
// Naive references
// ---------------------------------------------------------------------------------------------

/// φ(x; s) with scale c, built entry by entry with explicit loops.
fn naive_phi(x: &[f64], s: &[f64], c: f64) -> Vec<f64> {
    let d = x.len();
    let u: Vec<f64> = (0..d).map(|j| x[j] - s[j]).collect();
    let mut phi = u.clone();
    for a in 0..d {
        for b in a..d {
            let sab = if a == b { 1.0 } else { 2f64.sqrt() };
            phi.push(c * sab * u[a] * u[b]);
        }
    }
    phi
}

/// Per-fold statistics of f = φ(x) − shift_x and y − shift_y, row by row, with the sums of
/// absolute terms as error scales. With `cols`, only those Gram columns are computed (the
/// other entries are NaN and skipped by the comparison).
struct Naive {
    count: Vec<f64>,
    vals: [Vec<f64>; 5], // sum_x, sum_y, xtx, xty, yty
    scales: [Vec<f64>; 5],
}

#[allow(clippy::too_many_arguments)]
fn naive_stats(
    x: &[f64],
    y: &[f64],
    (n, d, k): (usize, usize, usize),
    folds: &[usize],
    kf: usize,
    (s_in, sx, sy): (&[f64], &[f64], &[f64]),
    cols: Option<&[usize]>,
) -> Naive {
    let p = n_quadratic_features(d);
    let all: Vec<usize> = (0..p).collect();
    let cols = cols.unwrap_or(&all);
    let mut count = vec![0.0; kf];
    let mut vals = [
        vec![0.0; kf * p],
        vec![0.0; kf * k],
        vec![f64::NAN; kf * p * p],
        vec![0.0; kf * p * k],
        vec![0.0; kf * k * k],
    ];
    for f in 0..kf {
        for i in 0..p {
            for &j in cols {
                vals[2][f * p * p + i * p + j] = 0.0;
            }
        }
    }
    let mut scales = [
        vec![0.0; kf * p],
        vec![0.0; kf * k],
        vec![0.0; kf * p * p],
        vec![0.0; kf * p * k],
        vec![0.0; kf * k * k],
    ];
    for r in 0..n {
        let fo = folds[r];
        let phi = naive_phi(&x[r * d..(r + 1) * d], s_in, 1.0);
        let fr: Vec<f64> = (0..p).map(|j| phi[j] - sx[j]).collect();
        let yr: Vec<f64> = (0..k).map(|t| y[r * k + t] - sy[t]).collect();
        count[fo] += 1.0;
        let mut add = |which: usize, idx: usize, v: f64| {
            vals[which][idx] += v;
            scales[which][idx] += v.abs();
        };
        for j in 0..p {
            add(0, fo * p + j, fr[j]);
        }
        for t in 0..k {
            add(1, fo * k + t, yr[t]);
        }
        for i in 0..p {
            for &j in cols {
                add(2, fo * p * p + i * p + j, fr[i] * fr[j]);
            }
            for t in 0..k {
                add(3, fo * p * k + i * k + t, fr[i] * yr[t]);
            }
        }
        for a in 0..k {
            for b in 0..k {
                add(4, fo * k * k + a * k + b, yr[a] * yr[b]);
            }
        }
    }
    Naive {
        count,
        vals,
        scales,
    }
}

fn assert_close_scaled(what: &str, got: &[f64], want: &[f64], scale: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
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
    }
}

fn assert_matches_naive(st: &SufficientStats, nv: &Naive, label: &str) {
    const RTOL: f64 = 1e-12;
    assert_eq!(st.count, nv.count, "{label}: count");
    let got = [&st.sum_x, &st.sum_y, &st.xtx, &st.xty, &st.yty];
    let names = ["sum_x", "sum_y", "xtx", "xty", "yty"];
    for w in 0..5 {
        assert_close_scaled(
            &format!("{label} {}", names[w]),
            got[w],
            &nv.vals[w],
            &nv.scales[w],
            RTOL,
        );
    }
    // exactly symmetric Grams
    let p = st.d;
    for f in 0..st.count.len() {
        let g = &st.xtx[f * p * p..(f + 1) * p * p];
        for i in 0..p {
            for j in 0..i {
                assert_eq!(
                    g[i * p + j].to_bits(),
                    g[j * p + i].to_bits(),
                    "{label}: Gram not symmetric at ({i}, {j})"
                );
            }
        }
    }
}

/// Mean of φ over the first `m` rows: the feature shift a caller would pick.
fn phi_mean(x: &[f64], d: usize, m: usize, s_in: &[f64]) -> Vec<f64> {
    let p = n_quadratic_features(d);
    let mut mean = vec![0.0; p];
    for r in 0..m {
        let phi = naive_phi(&x[r * d..(r + 1) * d], s_in, 1.0);
        for j in 0..p {
            mean[j] += phi[j] / m as f64;
        }
    }
    mean
}

// ---------------------------------------------------------------------------------------------
// accumulate_quadratic against naive sums
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Case {
    n: usize,
    d: usize,
    k: usize,
    with_folds: bool,
    layout: Layout,
    /// Compare only these Gram columns (large p).
    spot: bool,
    /// Two calls (first third, then the rest) instead of one.
    split: bool,
    seed: u64,
}

fn run_case<T: Element>(c: Case, conv: fn(f64) -> T) {
    let Case { n, d, k, .. } = c;
    let p = n_quadratic_features(d);
    let kf = 3;
    let mut r = rng(c.seed);
    let xt: Vec<T> = (0..n * d)
        .map(|_| conv(1.5 + 2.0 * gauss(&mut r)))
        .collect();
    let x64: Vec<f64> = xt.iter().map(|v| v.to_f64()).collect();
    let y: Vec<f64> = (0..n * k).map(|_| -0.5 + gauss(&mut r)).collect();
    let s_in: Vec<f64> = (0..d).map(|_| 1.5 + 0.3 * gauss(&mut r)).collect();
    let sx = phi_mean(&x64, d, n.min(50), &s_in);
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
    assert_eq!(st.d, p);
    if c.split {
        let m = n / 3;
        accumulate_quadratic(
            xv.subrows(0, m),
            yv.subrows(0, m),
            fo.map(|f| &f[..m]),
            &s_in,
            &sx,
            &sy,
            st.view_mut(),
        )
        .unwrap();
        accumulate_quadratic(
            xv.subrows(m, n - m),
            yv.subrows(m, n - m),
            fo.map(|f| &f[m..]),
            &s_in,
            &sx,
            &sy,
            st.view_mut(),
        )
        .unwrap();
    } else {
        accumulate_quadratic(xv, yv, fo, &s_in, &sx, &sy, st.view_mut()).unwrap();
    }
    let cols: Option<Vec<usize>> = if c.spot {
        Some(vec![0, 1, d - 1, d, d + 1, p / 2, p - 2, p - 1])
    } else {
        None
    };
    let nv = naive_stats(
        &x64,
        &y,
        (n, d, k),
        &folds,
        kf,
        (&s_in, &sx, &sy),
        cols.as_deref(),
    );
    let label = format!("{c:?} {}", std::any::type_name::<T>());
    assert_matches_naive(&st, &nv, &label);
}

fn to_f32(v: f64) -> f32 {
    v as f32
}

fn to_f64(v: f64) -> f64 {
    v
}

#[test]
fn feature_count_and_order() {
    for d in 0..12 {
        assert_eq!(n_quadratic_features(d), d + d * (d + 1) / 2);
        let pairs = quadratic_pairs(d);
        assert_eq!(pairs.len(), d * (d + 1) / 2);
        let mut want = Vec::new();
        for a in 0..d {
            for b in a..d {
                want.push((a, b));
            }
        }
        assert_eq!(pairs, want);
    }
    assert_eq!(n_quadratic_features(usize::MAX), usize::MAX);
}

#[test]
fn accumulate_quadratic_small_shapes_all_layouts() {
    let mut seed = 1000;
    for d in [1usize, 2, 5, 9] {
        for k in [0usize, 2] {
            for with_folds in [false, true] {
                for layout in LAYOUTS {
                    for split in [false, true] {
                        seed += 1;
                        let c = Case {
                            n: 300,
                            d,
                            k,
                            with_folds,
                            layout,
                            spot: false,
                            split,
                            seed,
                        };
                        run_case(c, to_f64);
                        run_case(c, to_f32);
                    }
                }
            }
        }
    }
}

#[test]
fn accumulate_quadratic_several_row_blocks() {
    // d = 6: p = 27, block_rows = 4096; 9 000 rows make 3 blocks without folds.
    let (n, d) = (9_000, 6);
    assert!(n > 2 * block_rows(n_quadratic_features(d)));
    let mut seed = 2000;
    for (i, layout) in LAYOUTS.into_iter().enumerate() {
        for with_folds in [false, true] {
            seed += 1;
            let c = Case {
                n,
                d,
                k: 2,
                with_folds,
                layout,
                spot: false,
                split: i == 1,
                seed,
            };
            run_case(c, to_f64);
            run_case(c, to_f32);
        }
    }
}

#[test]
fn accumulate_quadratic_large_p_spot_check() {
    // d = 80: p = 3320, block_rows(p) = 1263, so 2 600 rows are 3 blocks.
    let (n, d) = (2_600, 80);
    let p = n_quadratic_features(d);
    assert_eq!(p, 3320);
    assert!(n > 2 * block_rows(p));
    let base = Case {
        n,
        d,
        k: 3,
        with_folds: false,
        layout: Layout::RowMajor,
        spot: true,
        split: false,
        seed: 3001,
    };
    run_case(base, to_f64);
    run_case(
        Case {
            layout: Layout::NegStrided,
            with_folds: true,
            split: true,
            seed: 3002,
            ..base
        },
        to_f32,
    );
    run_case(
        Case {
            layout: Layout::ColMajor,
            k: 0,
            seed: 3003,
            ..base
        },
        to_f64,
    );
}

#[test]
fn accumulate_quadratic_empty_and_zero_columns() {
    // no rows: nothing changes
    let d = 3;
    let p = n_quadratic_features(d);
    let mut st = SufficientStats::new(2, vec![0.5; p], vec![1.0; 2]);
    let fresh = st.clone();
    let x = faer::Mat::<f64>::zeros(0, d);
    let y = faer::Mat::<f64>::zeros(0, 2);
    let sx = st.shift_x.clone();
    accumulate_quadratic(
        x.as_ref(),
        y.as_ref(),
        Some(&[]),
        &[0.0; 3],
        &sx,
        &[1.0; 2],
        st.view_mut(),
    )
    .unwrap();
    assert_eq!(st, fresh);
    // no columns: p = 0, only counts and targets
    let x = faer::Mat::<f64>::zeros(5, 0);
    let y = faer::Mat::<f64>::from_fn(5, 1, |i, _| i as f64);
    let mut st = SufficientStats::new(1, vec![], vec![0.0]);
    accumulate_quadratic(
        x.as_ref(),
        y.as_ref(),
        None,
        &[],
        &[],
        &[0.0],
        st.view_mut(),
    )
    .unwrap();
    assert_eq!(st.count, vec![5.0]);
    assert_eq!(st.sum_y, vec![10.0]);
    assert_eq!(st.yty, vec![30.0]);
}

// ---------------------------------------------------------------------------------------------
// Determinism across thread counts
// ---------------------------------------------------------------------------------------------

struct Input<'a, T> {
    x: MatRef<'a, T>,
    y: MatRef<'a, f64>,
    folds: Option<&'a [usize]>,
    s_in: &'a [f64],
    sx: &'a [f64],
    sy: &'a [f64],
}

fn quad_stats_in_pool<T: Element>(
    threads: usize,
    inp: &Input<'_, T>,
    split: bool,
) -> SufficientStats {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        assert_eq!(rayon::current_num_threads(), threads);
        let mut st = SufficientStats::new(3, inp.sx.to_vec(), inp.sy.to_vec());
        let n = inp.x.nrows();
        let cuts: Vec<(usize, usize)> = if split {
            vec![(0, n / 2), (n / 2, n)]
        } else {
            vec![(0, n)]
        };
        for (a, b) in cuts {
            accumulate_quadratic(
                inp.x.subrows(a, b - a),
                inp.y.subrows(a, b - a),
                inp.folds.map(|f| &f[a..b]),
                inp.s_in,
                inp.sx,
                inp.sy,
                st.view_mut(),
            )
            .unwrap();
        }
        st
    })
}

#[test]
fn accumulate_quadratic_is_bit_identical_across_thread_counts() {
    // f64, d = 40 (p = 860), 9 000 rows = 3 blocks, folds, one and two calls.
    let (n, d, k) = (9_000, 40, 3);
    let mut r = rng(5000);
    let x: Vec<f64> = (0..n * d).map(|_| 0.7 + gauss(&mut r)).collect();
    let y: Vec<f64> = (0..n * k).map(|_| gauss(&mut r)).collect();
    let folds = random_folds(&mut r, n);
    let s_in: Vec<f64> = (0..d).map(|_| 0.7 + 0.1 * gauss(&mut r)).collect();
    let sx = phi_mean(&x, d, 100, &s_in);
    let sy = vec![0.05; k];
    let inp = Input {
        x: MatRef::from_row_major_slice(&x, n, d),
        y: MatRef::from_row_major_slice(&y, n, k),
        folds: Some(&folds),
        s_in: &s_in,
        sx: &sx,
        sy: &sy,
    };
    for split in [false, true] {
        let s1 = quad_stats_in_pool(1, &inp, split);
        let s2 = quad_stats_in_pool(2, &inp, split);
        let s3 = quad_stats_in_pool(3, &inp, split);
        assert_bit_identical(&s1, &s2, "f64 1 vs 2 threads");
        assert_bit_identical(&s1, &s3, "f64 1 vs 3 threads");
        assert!(s1.xtx.iter().all(|v| v.is_finite()));
    }

    // f32 through a negatively strided view, d = 80 (p = 3320), 3 blocks, no folds.
    let (n, d, k) = (2_600, 80, 2);
    let xt: Vec<f32> = (0..n * d).map(|_| gauss(&mut r) as f32).collect();
    let x64: Vec<f64> = xt.iter().map(|&v| v as f64).collect();
    let y: Vec<f64> = (0..n * k).map(|_| gauss(&mut r)).collect();
    let stored = Stored::new(&xt, n, d, Layout::NegStrided, f32::NAN);
    let s_in = vec![0.01; d];
    let sx = phi_mean(&x64, d, 100, &s_in);
    let sy = vec![0.0; k];
    let inp = Input {
        x: stored.view(),
        y: MatRef::from_row_major_slice(&y, n, k),
        folds: None,
        s_in: &s_in,
        sx: &sx,
        sy: &sy,
    };
    let s1 = quad_stats_in_pool(1, &inp, false);
    let s2 = quad_stats_in_pool(2, &inp, false);
    let s3 = quad_stats_in_pool(3, &inp, false);
    assert_bit_identical(&s1, &s2, "f32 1 vs 2 threads");
    assert_bit_identical(&s1, &s3, "f32 1 vs 3 threads");
    assert!(s1.xtx.iter().all(|v| v.is_finite()));
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn accumulate_quadratic_rejects_nonfinite_input() {
    // d = 4 (p = 14), 9 000 rows: 3 blocks; bad values in the first, a middle and the last block.
    let (n, d, k) = (9_000, 4, 1);
    let p = n_quadratic_features(d);
    let mut r = rng(6000);
    let base: Vec<f64> = (0..n * d).map(|_| gauss(&mut r)).collect();
    let y: Vec<f64> = (0..n * k).map(|_| gauss(&mut r)).collect();
    let yv = MatRef::from_row_major_slice(&y, n, k);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for (i, j) in [(0, 0), (4500, 2), (n - 1, d - 1)] {
            let mut x = base.clone();
            x[i * d + j] = bad;
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            for layout in LAYOUTS {
                let s = Stored::new(&x, n, d, layout, 0.0);
                let mut st = SufficientStats::new(1, vec![0.0; p], vec![0.0; k]);
                let res = accumulate_quadratic(
                    s.view(),
                    yv,
                    None,
                    &[0.0; 4],
                    &vec![0.0; p],
                    &[0.0],
                    st.view_mut(),
                );
                assert_eq!(
                    res,
                    Err(shallowprobes_core::CoreError::NonFinite),
                    "{bad} at ({i}, {j}) {layout:?}"
                );
                let s = Stored::new(&x32, n, d, layout, 0.0f32);
                let res = accumulate_quadratic(
                    s.view(),
                    yv,
                    None,
                    &[0.0; 4],
                    &vec![0.0; p],
                    &[0.0],
                    st.view_mut(),
                );
                assert_eq!(
                    res,
                    Err(shallowprobes_core::CoreError::NonFinite),
                    "f32 {bad} at ({i}, {j})"
                );
            }
        }
    }
}

#[test]
fn accumulate_quadratic_shape_errors_leave_statistics_unchanged() {
    let (n, d, k, kf) = (30, 3, 2, 3);
    let p = n_quadratic_features(d);
    let mut r = rng(7000);
    let x: Vec<f64> = (0..n * (d + 1)).map(|_| gauss(&mut r)).collect();
    let y: Vec<f64> = (0..n * (k + 1)).map(|_| gauss(&mut r)).collect();
    let xv = MatRef::from_row_major_slice(&x[..n * d], n, d);
    let x_wide = MatRef::from_row_major_slice(&x, n, d + 1);
    let yv = MatRef::from_row_major_slice(&y[..n * k], n, k);
    let y_wide = MatRef::from_row_major_slice(&y, n, k + 1);
    let s_in = vec![0.1; d];
    let sx = vec![0.2; p];
    let sy = vec![0.0; k];
    let folds: Vec<usize> = (0..n).map(|i| i % kf).collect();
    let mut base = SufficientStats::new(kf, sx.clone(), sy.clone());
    accumulate_quadratic(xv, yv, Some(&folds), &s_in, &sx, &sy, base.view_mut()).unwrap();
    let mut bad_folds = folds.clone();
    bad_folds[n - 1] = kf;

    type Call<'a> =
        Box<dyn Fn(&mut SufficientStats) -> Result<(), shallowprobes_core::CoreError> + 'a>;
    let calls: Vec<(&str, Call)> = vec![
        (
            "X has d+1 columns",
            Box::new(|s| accumulate_quadratic(x_wide, yv, None, &[0.1; 4], &sx, &sy, s.view_mut())),
        ),
        (
            "shift_in too short",
            Box::new(|s| {
                accumulate_quadratic(xv, yv, None, &s_in[..d - 1], &sx, &sy, s.view_mut())
            }),
        ),
        (
            "shift_x too short",
            Box::new(|s| {
                accumulate_quadratic(xv, yv, None, &s_in, &sx[..p - 1], &sy, s.view_mut())
            }),
        ),
        (
            "Y has one row fewer",
            Box::new(|s| {
                accumulate_quadratic(
                    xv,
                    yv.subrows(0, n - 1),
                    None,
                    &s_in,
                    &sx,
                    &sy,
                    s.view_mut(),
                )
            }),
        ),
        (
            "Y has k+1 columns",
            Box::new(|s| accumulate_quadratic(xv, y_wide, None, &s_in, &sx, &sy, s.view_mut())),
        ),
        (
            "shift_y too long",
            Box::new(|s| accumulate_quadratic(xv, yv, None, &s_in, &sx, &[0.0; 3], s.view_mut())),
        ),
        (
            "fold id == K",
            Box::new(|s| {
                accumulate_quadratic(xv, yv, Some(&bad_folds), &s_in, &sx, &sy, s.view_mut())
            }),
        ),
        (
            "fold ids one short",
            Box::new(|s| {
                accumulate_quadratic(xv, yv, Some(&folds[..n - 1]), &s_in, &sx, &sy, s.view_mut())
            }),
        ),
    ];
    for (what, call) in &calls {
        let mut s = base.clone();
        let res = call(&mut s);
        assert!(res.is_err(), "{what}: expected Err, got Ok");
        assert_eq!(s, base, "{what}: statistics changed on error");
    }

    // statistics sized for the linear features (p = d) instead of the quadratic ones
    let mut lin = SufficientStats::new(kf, vec![0.0; d], sy.clone());
    let res = accumulate_quadratic(xv, yv, None, &s_in, &[0.0; 3], &sy, lin.view_mut());
    assert!(res.is_err());
    assert_eq!(lin, SufficientStats::new(kf, vec![0.0; d], sy.clone()));

    // a StatsMut slice of the wrong length
    let mut count = vec![0.0; kf];
    let (mut sum_x, mut sum_y) = (vec![0.0; kf * p], vec![0.0; kf * k]);
    let (mut xtx, mut xty, mut yty) = (
        vec![0.0; kf * p * p + 1],
        vec![0.0; kf * p * k],
        vec![0.0; kf * k * k],
    );
    let out = StatsMut {
        d: p,
        k,
        count: &mut count,
        sum_x: &mut sum_x,
        sum_y: &mut sum_y,
        xtx: &mut xtx,
        xty: &mut xty,
        yty: &mut yty,
    };
    assert!(accumulate_quadratic(xv, yv, None, &s_in, &sx, &sy, out).is_err());
    assert!(xtx.iter().all(|&v| v == 0.0));

    // zero folds
    let out = StatsMut {
        d: p,
        k,
        count: &mut [],
        sum_x: &mut [],
        sum_y: &mut [],
        xtx: &mut [],
        xty: &mut [],
        yty: &mut [],
    };
    assert!(accumulate_quadratic(xv, yv, None, &s_in, &sx, &sy, out).is_err());
}

// ---------------------------------------------------------------------------------------------
// expand_quadratic
// ---------------------------------------------------------------------------------------------

fn expand<T: Element>(
    x: MatRef<'_, T>,
    s_in: &[f64],
    c: f64,
) -> Result<Vec<f64>, shallowprobes_core::CoreError> {
    let mut out = vec![0.0; x.nrows() * n_quadratic_features(x.ncols())];
    expand_quadratic(x, s_in, c, &mut out).map(|_| out)
}

fn check_expand<T: Element>(conv: fn(f64) -> T) {
    let mut seed = 8000;
    for (n, d) in [(1usize, 1usize), (7, 3), (100, 10), (257, 33)] {
        for c in [1.0, 0.37, -2.5, 0.0] {
            for layout in LAYOUTS {
                seed += 1;
                let mut r = rng(seed);
                let xt: Vec<T> = (0..n * d).map(|_| conv(0.5 + gauss(&mut r))).collect();
                let x64: Vec<f64> = xt.iter().map(|v| v.to_f64()).collect();
                let s_in: Vec<f64> = (0..d).map(|_| 0.5 + 0.2 * gauss(&mut r)).collect();
                let stored = Stored::new(&xt, n, d, layout, conv(f64::NAN));
                let got = expand(stored.view(), &s_in, c).unwrap();
                let p = n_quadratic_features(d);
                for i in 0..n {
                    let want = naive_phi(&x64[i * d..(i + 1) * d], &s_in, c);
                    for j in 0..p {
                        let g = got[i * p + j];
                        assert!(
                            (g - want[j]).abs() <= 1e-15 * want[j].abs(),
                            "({n}, {d}) c={c} {layout:?} row {i} feature {j}: {g} vs {}",
                            want[j]
                        );
                    }
                }
                // kernel identity on pairs of rows
                for i in 0..n.min(5) {
                    let a = n - 1 - i;
                    let fi = &got[i * p..(i + 1) * p];
                    let fa = &got[a * p..(a + 1) * p];
                    let dot: f64 = fi.iter().zip(fa).map(|(u, v)| u * v).sum();
                    let uv: f64 = (0..d)
                        .map(|j| (x64[i * d + j] - s_in[j]) * (x64[a * d + j] - s_in[j]))
                        .sum();
                    let want = uv + c * c * uv * uv;
                    let scale: f64 = fi.iter().zip(fa).map(|(u, v)| (u * v).abs()).sum();
                    assert!((dot - want).abs() <= 1e-13 * scale.max(1e-300));
                }
            }
        }
    }
}

#[test]
fn expand_quadratic_matches_naive() {
    check_expand(to_f64);
    check_expand(to_f32);
}

#[test]
fn expand_quadratic_errors() {
    let (n, d) = (100, 4);
    let p = n_quadratic_features(d);
    let mut r = rng(9000);
    let x: Vec<f64> = (0..n * d).map(|_| gauss(&mut r)).collect();
    let xv = MatRef::from_row_major_slice(&x, n, d);
    let mut out = vec![0.0; n * p];
    assert!(expand_quadratic(xv, &[0.0; 3], 1.0, &mut out).is_err());
    assert!(expand_quadratic(xv, &[0.0; 4], 1.0, &mut out[1..]).is_err());
    assert!(expand_quadratic(xv, &[0.0; 4], f64::NAN, &mut out).is_err());
    assert!(expand_quadratic(xv, &[0.0; 4], f64::INFINITY, &mut out).is_err());
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for (i, j) in [(0, 0), (50, 1), (n - 1, d - 1)] {
            let mut xb = x.clone();
            xb[i * d + j] = bad;
            for layout in LAYOUTS {
                let s = Stored::new(&xb, n, d, layout, 0.0);
                assert_eq!(
                    expand(s.view(), &[0.0; 4], 1.0),
                    Err(shallowprobes_core::CoreError::NonFinite),
                    "{bad} at ({i}, {j}) {layout:?}"
                );
                let xb32: Vec<f32> = xb.iter().map(|&v| v as f32).collect();
                let s = Stored::new(&xb32, n, d, layout, 0.0f32);
                assert_eq!(
                    expand(s.view(), &[0.0; 4], 1.0),
                    Err(shallowprobes_core::CoreError::NonFinite)
                );
            }
        }
    }
    // empty shapes
    let empty: [f64; 0] = [];
    assert_eq!(
        expand(MatRef::from_row_major_slice(&empty, 0, 5), &[0.0; 5], 1.0),
        Ok(vec![])
    );
    assert_eq!(
        expand(MatRef::from_row_major_slice(&empty, 4, 0), &[], 1.0),
        Ok(vec![])
    );
}

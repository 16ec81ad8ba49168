//! Integration tests of the band reduction and its GCV path (`cargo test --release --test
//! band`): the reduction is a similarity (trace, Frobenius norm and trace of the cube kept),
//! solves and α·tr((K + αI)⁻¹) against Gaussian elimination with partial pivoting on the
//! dense kernel and its explicit inverse, for bandwidths from 1 (tridiagonal) to wider than
//! the matrix, sequential and threaded; bad input and indefinite shifts as errors.

#![allow(clippy::needless_range_loop)]

use faer::{Mat, MatRef, Par};
use shallowprobes_core::band::{reduce_in_place, BandRef};
use shallowprobes_core::CoreError;

mod common;
use common::dense::*;
use common::*;

/// A positive semi-definite kernel of rank min(n, r): (rows of scale 1..3) times its transpose,
/// plus its elementwise square as in the degree-2 route.
fn kernel(seed: u64, n: usize, r: usize) -> Mat<f64> {
    let mut g = rng(seed);
    let u = Mat::from_fn(n, r, |_, j| (1.0 + (j % 3) as f64) * gauss(&mut g));
    let ut = transpose(&u);
    let lin = a_b(&u, &ut);
    Mat::from_fn(n, n, |i, j| lin[(i, j)] + 0.1 * lin[(i, j)] * lin[(i, j)])
}

fn reduced(k: &Mat<f64>, b: usize, par: Par) -> (Mat<f64>, Mat<f64>) {
    let n = k.nrows();
    let mut a = k.clone();
    // the upper triangle is never read: poison it
    for j in 0..n {
        for i in 0..j {
            a[(i, j)] = f64::NAN;
        }
    }
    let mut f = Mat::<f64>::zeros(b, n.saturating_sub(b));
    reduce_in_place(a.as_mut(), f.as_mut(), par).unwrap();
    (a, f)
}

fn band_dense(a: &Mat<f64>, b: usize) -> Mat<f64> {
    let n = a.nrows();
    Mat::from_fn(n, n, |i, j| {
        let (hi, lo) = if i >= j { (i, j) } else { (j, i) };
        if hi - lo <= b {
            a[(hi, lo)]
        } else {
            0.0
        }
    })
}

fn trace(a: &Mat<f64>) -> f64 {
    (0..a.nrows()).map(|i| a[(i, i)]).sum()
}

fn targets(seed: u64, n: usize, k: usize) -> Mat<f64> {
    let mut g = rng(seed);
    Mat::from_fn(n, k, |_, _| gauss(&mut g))
}

fn identity(n: usize) -> Mat<f64> {
    Mat::from_fn(n, n, |i, j| if i == j { 1.0 } else { 0.0 })
}

const SHAPES: [(u64, usize, usize, usize); 10] = [
    // seed, n, rank, bandwidth
    (1, 1, 1, 1),
    (2, 2, 2, 1),
    (3, 9, 9, 1),
    (4, 17, 17, 2),
    (5, 40, 12, 3),
    (6, 61, 61, 7),
    (7, 130, 130, 16),
    (8, 23, 23, 64),
    // a last panel with fewer rows than the bandwidth (2 and 6 rows of 7 columns)
    (9, 58, 58, 7),
    (10, 62, 62, 7),
];

#[test]
fn reduction_is_a_similarity() {
    for (seed, n, r, b) in SHAPES {
        let k = kernel(seed, n, r);
        for par in [Par::Seq, Par::rayon(2)] {
            let (a, _) = reduced(&k, b, par);
            let bd = band_dense(&a, b);
            assert_rel("trace", trace(&bd), trace(&k), 1e-12);
            assert_rel("frobenius", frob(&bd), frob(&k), 1e-12);
            let cube = |m: &Mat<f64>| trace(&a_b(&a_b(m, m), m));
            assert_rel("trace of the cube", cube(&bd), cube(&k), 1e-11);
        }
    }
}

#[test]
fn solves_and_traces_match_dense_elimination() {
    for (seed, n, r, b) in SHAPES {
        let k = kernel(seed, n, r);
        let y = targets(seed + 100, n, 3);
        let scale = trace(&k) / n as f64;
        let alphas: Vec<f64> = [1e-3, 0.1, 1.0, 10.0, 1e4]
            .iter()
            .map(|s| s * scale)
            .collect();
        for par in [Par::Seq, Par::rayon(2)] {
            let (a, f) = reduced(&k, b, par);
            let red = BandRef {
                reduced: a.as_ref(),
                factors: f.as_ref(),
            };
            let path = red.gcv_path(y.as_ref(), &alphas, par).unwrap();
            assert_eq!(path.rss.len(), alphas.len());
            for (i, &alpha) in alphas.iter().enumerate() {
                let shifted = add_diag(&k, alpha);
                let want = solve(&shifted, &y);
                let inv = solve(&shifted, &identity(n));
                assert_rel("alpha tr(inv)", path.resid[i], alpha * trace(&inv), 1e-9);
                for t in 0..3 {
                    let rss: f64 = (0..n).map(|j| (alpha * want[(j, t)]).powi(2)).sum();
                    assert_rel("rss", path.rss[i][t], rss, 1e-9);
                }
                let got = red.solve(y.as_ref(), &[alpha; 3], par).unwrap();
                assert!(col_rel_err(&got, &want) < 1e-9, "n={n} b={b} alpha={alpha}");
            }
            // one alpha per target
            let per: Vec<f64> = alphas[1..4].to_vec();
            let got = red.solve(y.as_ref(), &per, par).unwrap();
            for t in 0..3 {
                let col = Mat::from_fn(n, 1, |i, _| y[(i, t)]);
                let want = solve(&add_diag(&k, per[t]), &col);
                let got_t = Mat::from_fn(n, 1, |i, _| got[(i, t)]);
                assert!(col_rel_err(&got_t, &want) < 1e-9);
            }
        }
    }
}

#[test]
fn a_wide_kernel_reduces_like_the_tridiagonal_bandwidth() {
    // the same kernel at three bandwidths: the GCV quantities agree to round-off
    let k = kernel(31, 300, 300);
    let y = targets(32, 300, 2);
    let alphas = [1e-2, 1.0, 1e2];
    let paths: Vec<_> = [1, 8, 64]
        .iter()
        .map(|&b| {
            let (a, f) = reduced(&k, b, Par::rayon(2));
            let red = BandRef {
                reduced: a.as_ref(),
                factors: f.as_ref(),
            };
            red.gcv_path(y.as_ref(), &alphas, Par::rayon(2)).unwrap()
        })
        .collect();
    for p in &paths[1..] {
        for i in 0..alphas.len() {
            assert_rel("resid", p.resid[i], paths[0].resid[i], 1e-10);
            for t in 0..2 {
                assert_rel("rss", p.rss[i][t], paths[0].rss[i][t], 1e-9);
            }
        }
    }
}

#[test]
fn expansion_gives_the_kernel_back() {
    // Q B Qᵀ from the reduction alone (its array holds no copy of K), for every shape
    // including the indefinite: K entry by entry to round-off, and exactly symmetric
    let mut g = rng(77);
    let indefinite = Mat::from_fn(40, 40, |_, _| gauss(&mut g));
    let indefinite = Mat::from_fn(40, 40, |i, j| indefinite[(i, j)] + indefinite[(j, i)]);
    let mut cases: Vec<(Mat<f64>, usize)> = SHAPES
        .iter()
        .map(|&(seed, n, r, b)| (kernel(seed, n, r), b))
        .collect();
    cases.push((indefinite, 5));
    for (k, b) in &cases {
        let n = k.nrows();
        for par in [Par::Seq, Par::rayon(2)] {
            let (a, f) = reduced(k, *b, par);
            let red = BandRef {
                reduced: a.as_ref(),
                factors: f.as_ref(),
            };
            let mut back = Mat::<f64>::from_fn(n, n, |_, _| f64::NAN);
            red.expand_into(back.as_mut(), par).unwrap();
            let scale = frob(k);
            for j in 0..n {
                for i in 0..n {
                    assert_eq!(back[(i, j)], back[(j, i)], "n={n} b={b} ({i}, {j})");
                    let err = (back[(i, j)] - k[(i, j)]).abs() / scale;
                    assert!(
                        err < 1e-14 * (n as f64).max(4.0),
                        "n={n} b={b} ({i}, {j}): {err:e}"
                    );
                }
            }
        }
    }
    // the output must be n × n
    let (k, b) = &cases[0];
    let (a, f) = reduced(k, *b, Par::Seq);
    let red = BandRef {
        reduced: a.as_ref(),
        factors: f.as_ref(),
    };
    let n = k.nrows();
    let mut wrong = Mat::<f64>::zeros(n, n + 1);
    assert!(red.expand_into(wrong.as_mut(), Par::Seq).is_err());
}

#[test]
fn indefinite_shift_and_bad_input_are_errors() {
    let n = 20;
    // an indefinite matrix: no alpha below its most negative eigenvalue is usable
    let mut g = rng(41);
    let k = Mat::from_fn(n, n, |_, _| gauss(&mut g));
    let k = Mat::from_fn(n, n, |i, j| k[(i, j)] + k[(j, i)]);
    let (a, f) = reduced(&k, 3, Par::Seq);
    let red = BandRef {
        reduced: a.as_ref(),
        factors: f.as_ref(),
    };
    let y = targets(42, n, 1);
    let err = red.gcv_path(y.as_ref(), &[1e-6], Par::Seq).unwrap_err();
    assert!(matches!(err, CoreError::NotPositiveDefinite(_)), "{err}");
    // a large enough shift makes it positive definite again
    assert!(red.gcv_path(y.as_ref(), &[1e3], Par::Seq).is_ok());
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(red.gcv_path(y.as_ref(), &[1.0, bad], Par::Seq).is_err());
    }
    let short = targets(43, n - 1, 1);
    assert!(red.gcv_path(short.as_ref(), &[1.0], Par::Seq).is_err());
    assert!(red.solve(y.as_ref(), &[1.0, 2.0], Par::Seq).is_err());
    // mismatched factors, non-square matrices
    let mut sq = k.clone();
    let mut wrong = Mat::<f64>::zeros(3, n - 2);
    assert!(reduce_in_place(sq.as_mut(), wrong.as_mut(), Par::Seq).is_err());
    let mut none = Mat::<f64>::zeros(0, n);
    assert!(reduce_in_place(sq.as_mut(), none.as_mut(), Par::Seq).is_err());
    let mut rect = Mat::<f64>::zeros(n, n + 1);
    let mut f = Mat::<f64>::zeros(3, n - 3);
    assert!(reduce_in_place(rect.as_mut(), f.as_mut(), Par::Seq).is_err());
    let bad_ref = BandRef {
        reduced: a.as_ref(),
        factors: MatRef::from_column_major_slice(&[0.0; 6], 2, 3),
    };
    assert!(bad_ref.gcv_path(y.as_ref(), &[1.0], Par::Seq).is_err());
}

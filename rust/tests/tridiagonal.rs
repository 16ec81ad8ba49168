//! Integration tests of the tridiagonal ridge paths (`cargo test --release --test
//! tridiagonal`): against direct solves of (G + αI) W = C by Gaussian elimination with partial
//! pivoting, the Sturm test against the eigendecomposition route's clamp, bad input as
//! errors, and the batch against one reduction at a time for any thread count; the QL
//! eigenvalues against closed forms and Sturm-count bisection, and the GCV quantities against
//! residuals of the rows themselves.

#![allow(clippy::needless_range_loop)]

use faer::{Mat, MatRef, Par};
use shallowprobes_core::ridge::spectrum;
use shallowprobes_core::threads;
use shallowprobes_core::tridiagonal::{
    eigenvalues, ridge_paths, tridiagonalize, tridiagonalize_all,
};

mod common;
use common::dense::*;
use common::*;

/// The d × k block of alpha `a` in a d × (A·k) path.
fn block(path: &Mat<f64>, a: usize, k: usize) -> Mat<f64> {
    Mat::from_fn(path.nrows(), k, |i, t| path[(i, a * k + t)])
}

fn alphas_for(p: &Problem) -> Vec<f64> {
    let unit = p.alpha_unit();
    [1e-6, 1e-3, 0.1, 1.0, 10.0, 1e3]
        .iter()
        .map(|s| s * unit)
        .collect()
}

#[test]
fn path_matches_direct_solves() {
    for (seed, n, d, k) in [
        (1, 40, 1, 2),
        (2, 40, 2, 1),
        (3, 50, 3, 3),
        (4, 200, 17, 4),
        (5, 300, 64, 2),
        (6, 500, 130, 5),
    ] {
        let p = random_problem(seed, n, d, k);
        let alphas = alphas_for(&p);
        let red = tridiagonalize(p.g.as_ref(), Par::Seq).unwrap();
        assert!(red.as_ref().clamps_nothing(), "d = {d}: a full-rank Gram");
        let path = red
            .as_ref()
            .ridge_path(p.cxy.as_ref(), &alphas, Par::Seq)
            .unwrap();
        assert_eq!((path.nrows(), path.ncols()), (d, alphas.len() * k));
        for (a, &alpha) in alphas.iter().enumerate() {
            let want = solve(&add_diag(&p.g, alpha), &p.cxy);
            let err = col_rel_err(&block(&path, a, k), &want);
            assert!(
                err < 1e-9,
                "d = {d}, alpha = {alpha:e}: relative error {err:e}"
            );
        }
    }
}

#[test]
fn threaded_reduction_gives_the_same_solutions() {
    let p = random_problem(11, 600, 200, 3);
    let alphas = alphas_for(&p);
    let seq = tridiagonalize(p.g.as_ref(), Par::Seq).unwrap();
    let par = tridiagonalize(p.g.as_ref(), Par::rayon(2)).unwrap();
    for red in [&seq, &par] {
        let path = red
            .as_ref()
            .ridge_path(p.cxy.as_ref(), &alphas, Par::rayon(2))
            .unwrap();
        for (a, &alpha) in alphas.iter().enumerate() {
            let want = solve(&add_diag(&p.g, alpha), &p.cxy);
            assert!(col_rel_err(&block(&path, a, 3), &want) < 1e-9);
        }
    }
}

#[test]
fn sturm_test_agrees_with_the_spectrum_clamp() {
    // full rank, rank-deficient (n < d), exactly duplicated columns, and the zero Gram
    let full = random_problem(21, 80, 20, 1);
    let short = random_problem(22, 12, 30, 1);
    let mut dup = random_problem(23, 60, 10, 1).x;
    for i in 0..dup.nrows() {
        dup[(i, 9)] = dup[(i, 2)];
    }
    let dup = Problem::from_data(dup, Mat::from_fn(60, 1, |i, _| i as f64));
    let zero = Problem::from_data(Mat::zeros(10, 4), Mat::from_fn(10, 1, |i, _| i as f64));
    for (name, p, usable) in [
        ("full rank", &full, true),
        ("n < d", &short, false),
        ("duplicated column", &dup, false),
        ("zero Gram", &zero, false),
    ] {
        let red = tridiagonalize(p.g.as_ref(), Par::Seq).unwrap();
        assert_eq!(red.as_ref().clamps_nothing(), usable, "{name}");
        let spec = spectrum(p.g.as_ref(), p.cxy.as_ref(), Par::Seq).unwrap();
        let clamped = spec.lam.contains(&0.0);
        assert_eq!(
            clamped, !usable,
            "{name}: the spectrum route clamps exactly then"
        );
    }
}

#[test]
fn bad_input_is_an_error() {
    let p = random_problem(31, 50, 6, 2);
    let red = tridiagonalize(p.g.as_ref(), Par::Seq).unwrap();
    let r = red.as_ref();
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = r
            .ridge_path(p.cxy.as_ref(), &[1.0, bad], Par::Seq)
            .unwrap_err();
        assert!(err.to_string().contains("alphas > 0"), "{err}");
    }
    let wrong = Mat::<f64>::zeros(5, 2);
    assert!(r.ridge_path(wrong.as_ref(), &[1.0], Par::Seq).is_err());
    let rect = Mat::<f64>::zeros(4, 3);
    assert!(tridiagonalize(rect.as_ref(), Par::Seq).is_err());
    // a negative definite "Gram": no positive pivot, an error rather than a wrong answer
    let neg = Mat::from_fn(6, 6, |i, j| -p.g[(i, j)]);
    let red = tridiagonalize(neg.as_ref(), Par::Seq).unwrap();
    assert!(!red.as_ref().clamps_nothing());
    let err = red
        .as_ref()
        .ridge_path(p.cxy.as_ref(), &[1e-3], Par::Seq)
        .unwrap_err();
    assert!(err.to_string().contains("not positive definite"), "{err}");
    assert!(ridge_paths(&[red.as_ref()], &[], &[1.0]).is_err());
}

#[test]
fn empty_and_target_free_shapes() {
    let empty = Mat::<f64>::zeros(0, 0);
    let red = tridiagonalize(empty.as_ref(), Par::Seq).unwrap();
    let none = Mat::<f64>::zeros(0, 2);
    assert_eq!(
        red.as_ref()
            .ridge_path(none.as_ref(), &[1.0], Par::Seq)
            .unwrap()
            .ncols(),
        2
    );
    let p = random_problem(41, 30, 5, 1);
    let red = tridiagonalize(p.g.as_ref(), Par::Seq).unwrap();
    let no_targets = Mat::<f64>::zeros(5, 0);
    let path = red
        .as_ref()
        .ridge_path(no_targets.as_ref(), &[1.0, 2.0], Par::Seq)
        .unwrap();
    assert_eq!((path.nrows(), path.ncols()), (5, 0));
}

/// The bit patterns of a matrix, column by column.
fn column_bits(m: &Mat<f64>) -> Vec<u64> {
    let flat: Vec<f64> = (0..m.ncols())
        .flat_map(|c| m.col(c).iter().copied().collect::<Vec<_>>())
        .collect();
    bits(&flat)
}

#[test]
fn batch_equals_one_at_a_time_for_any_thread_count() {
    let problems: Vec<Problem> = (0..5).map(|s| random_problem(50 + s, 120, 24, 3)).collect();
    let grams: Vec<MatRef<'_, f64>> = problems.iter().map(|p| p.g.as_ref()).collect();
    let cxys: Vec<MatRef<'_, f64>> = problems.iter().map(|p| p.cxy.as_ref()).collect();
    let alphas = alphas_for(&problems[0]);
    let single: Vec<Vec<u64>> = problems
        .iter()
        .map(|p| {
            let red = tridiagonalize(p.g.as_ref(), Par::Seq).unwrap();
            let path = red
                .as_ref()
                .ridge_path(p.cxy.as_ref(), &alphas, Par::Seq)
                .unwrap();
            column_bits(&path)
        })
        .collect();
    for nt in [1, 2, 3] {
        threads::set_num_threads(nt).unwrap();
        let batch = threads::install(|_| {
            let reds = tridiagonalize_all(&grams, Par::Seq).unwrap();
            let refs: Vec<_> = reds.iter().map(|r| r.as_ref()).collect();
            ridge_paths(&refs, &cxys, &alphas).unwrap()
        })
        .unwrap();
        for (i, path) in batch.iter().enumerate() {
            assert_eq!(column_bits(path), single[i], "{nt} threads, Gram {i}");
        }
    }
    threads::set_num_threads(0).unwrap();
}

/// Number of eigenvalues of the tridiagonal (diag, sub) below x (Sturm: negative pivots of
/// the LDLᵀ of T − xI, a zero pivot nudged as in LAPACK's dstebz).
fn count_below(diag: &[f64], sub: &[f64], x: f64) -> usize {
    let tiny = f64::MIN_POSITIVE;
    let mut count = 0;
    let mut pivot = 1.0;
    for i in 0..diag.len() {
        let coupling = if i > 0 {
            sub[i - 1] * sub[i - 1] / pivot
        } else {
            0.0
        };
        pivot = diag[i] - x - coupling;
        if pivot.abs() < tiny {
            pivot = -tiny;
        }
        if pivot < 0.0 {
            count += 1;
        }
    }
    count
}

/// Eigenvalues by bisection on Sturm counts (slow and independent of the QL iteration).
fn bisection_eigenvalues(diag: &[f64], sub: &[f64]) -> Vec<f64> {
    let n = diag.len();
    let radius = |i: usize| {
        (if i > 0 { sub[i - 1].abs() } else { 0.0 }) + (if i + 1 < n { sub[i].abs() } else { 0.0 })
    };
    let lo0 = (0..n)
        .map(|i| diag[i] - radius(i))
        .fold(f64::INFINITY, f64::min)
        - 1.0;
    let hi0 = (0..n)
        .map(|i| diag[i] + radius(i))
        .fold(f64::NEG_INFINITY, f64::max)
        + 1.0;
    (0..n)
        .map(|j| {
            let (mut lo, mut hi) = (lo0, hi0);
            for _ in 0..200 {
                let mid = 0.5 * (lo + hi);
                if mid <= lo || mid >= hi {
                    break;
                }
                if count_below(diag, sub, mid) > j {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            0.5 * (lo + hi)
        })
        .collect()
}

fn assert_eigenvalues(name: &str, diag: &[f64], sub: &[f64], want: &[f64], rtol: f64) {
    let got = eigenvalues(diag, sub).unwrap();
    assert_eq!(got.len(), want.len(), "{name}");
    let scale = want
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rtol * scale,
            "{name}: eigenvalue {i} is {g:e}, expected {w:e}"
        );
    }
}

#[test]
fn ql_eigenvalues_match_closed_forms_and_bisection() {
    use std::f64::consts::PI;
    // the discrete Laplacian: 2 − 2cos(jπ/(n + 1))
    for n in [1usize, 2, 3, 10, 257] {
        let want: Vec<f64> = (1..=n)
            .map(|j| 2.0 - 2.0 * (j as f64 * PI / (n as f64 + 1.0)).cos())
            .collect();
        assert_eigenvalues("laplacian", &vec![2.0; n], &vec![-1.0; n - 1], &want, 1e-13);
    }
    // a diagonal matrix: its sorted diagonal, exactly
    let diag = [3.0, -1.0, 7.5, 0.0, 2.0];
    let got = eigenvalues(&diag, &[0.0; 4]).unwrap();
    assert_eq!(got, vec![-1.0, 0.0, 2.0, 3.0, 7.5]);
    // 2 × 2: (a + c)/2 ± √(((a − c)/2)² + b²)
    let (a, b, c) = (1.5f64, -0.7f64, -2.25f64);
    let mid = 0.5 * (a + c);
    let rad = (0.25 * (a - c) * (a - c) + b * b).sqrt();
    assert_eigenvalues("2x2", &[a, c], &[b], &[mid - rad, mid + rad], 1e-15);
    // Wilkinson's W21+ (pairs equal to 15 digits), a graded matrix (10^-8 .. 10^8), split
    // blocks and random matrices: against bisection
    let w21: Vec<f64> = (0..21).map(|i| (10.0 - i as f64).abs()).collect();
    let graded: Vec<f64> = (0..40).map(|i| 10f64.powf(-8.0 + 0.4 * i as f64)).collect();
    let graded_sub: Vec<f64> = (0..39)
        .map(|i| 0.3 * 10f64.powf(-8.0 + 0.4 * i as f64))
        .collect();
    let mut split_sub = vec![0.5; 29];
    split_sub[9] = 0.0;
    split_sub[20] = 1e-300;
    let mut r = rng(61);
    let rand_diag: Vec<f64> = (0..300).map(|_| gauss(&mut r)).collect();
    let rand_sub: Vec<f64> = (0..299).map(|_| gauss(&mut r)).collect();
    for (name, diag, sub) in [
        ("W21+", w21, vec![1.0; 20]),
        ("graded", graded, graded_sub),
        ("split", vec![1.0; 30], split_sub),
        ("random", rand_diag, rand_sub),
    ] {
        let want = bisection_eigenvalues(&diag, &sub);
        assert_eigenvalues(name, &diag, &sub, &want, 1e-13);
    }
    assert!(eigenvalues(&[], &[]).unwrap().is_empty());
    assert!(eigenvalues(&[1.0, 2.0], &[]).is_err());
    assert!(eigenvalues(&[1.0, f64::NAN], &[0.5]).is_err());
}

#[test]
fn gram_eigenvalues_through_the_reduction_match_the_spectrum() {
    for (seed, n, d) in [(71, 50, 4), (72, 300, 64), (73, 600, 200)] {
        let p = random_problem(seed, n, d, 1);
        let red = tridiagonalize(p.g.as_ref(), Par::Seq).unwrap();
        let spec = spectrum(p.g.as_ref(), p.cxy.as_ref(), Par::Seq).unwrap();
        let got = red.as_ref().eigenvalues().unwrap();
        let top = spec.lam[d - 1];
        for (j, (g, w)) in got.iter().zip(&spec.lam).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * top,
                "d = {d}, eigenvalue {j}: {g:e} vs {w:e}"
            );
        }
    }
}

#[test]
fn gcv_path_matches_residuals_of_the_rows() {
    for (seed, n, d, k) in [
        (81, 30, 1, 2),
        (82, 60, 5, 3),
        (83, 400, 60, 2),
        (84, 900, 150, 1),
    ] {
        let p = random_problem(seed, n, d, k);
        let alphas = alphas_for(&p);
        let red = tridiagonalize(p.g.as_ref(), Par::Seq).unwrap();
        let path = red
            .as_ref()
            .gcv_path(p.cxy.as_ref(), &alphas, Par::Seq)
            .unwrap();
        let yy = col_sq_norms(&p.yc);
        // outside the span: the least-squares residual of the rows
        let ls = solve(&p.g, &p.cxy);
        let ls_resid = col_sq_norms(&sub(&p.yc, &a_b(&p.xc, &ls)));
        for t in 0..k {
            assert_rel(
                "outside the span",
                yy[t] - path.explained[t],
                ls_resid[t],
                1e-8,
            );
        }
        for (a, &alpha) in alphas.iter().enumerate() {
            let w = solve(&add_diag(&p.g, alpha), &p.cxy);
            let resid = col_sq_norms(&sub(&p.yc, &a_b(&p.xc, &w)));
            for t in 0..k {
                let total = ls_resid[t] + path.rss[a][t];
                assert_rel(
                    &format!("d = {d}, alpha = {alpha:e}"),
                    total,
                    resid[t],
                    1e-9,
                );
                // the in-span part on its own: α² wᵀG⁻¹w
                let gw = solve(&p.g, &w);
                let want = alpha * alpha * (0..d).map(|i| w[(i, t)] * gw[(i, t)]).sum::<f64>();
                assert_rel("inside the span", path.rss[a][t], want, 1e-7);
            }
        }
    }
    // bad alphas and a Gram that is not positive definite are errors, not wrong answers
    let p = random_problem(85, 40, 4, 1);
    let red = tridiagonalize(p.g.as_ref(), Par::Seq).unwrap();
    assert!(red
        .as_ref()
        .gcv_path(p.cxy.as_ref(), &[0.0], Par::Seq)
        .is_err());
    let short = random_problem(86, 5, 9, 1);
    let red = tridiagonalize(short.g.as_ref(), Par::Seq).unwrap();
    assert!(!red.as_ref().clamps_nothing());
    let err = red
        .as_ref()
        .gcv_path(short.cxy.as_ref(), &[1.0], Par::Seq)
        .unwrap_err();
    assert!(err.to_string().contains("eigendecomposition"), "{err}");
}

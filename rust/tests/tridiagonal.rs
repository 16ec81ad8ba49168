//! Integration tests of the tridiagonal ridge paths (`cargo test --release --test
//! tridiagonal`): against direct solves of (G + αI) W = C by Gaussian elimination with partial
//! pivoting, the Sturm test against the eigendecomposition route's clamp, bad input as
//! errors, and the batch against one reduction at a time for any thread count.

#![allow(clippy::needless_range_loop)]

use faer::{Mat, MatRef, Par};
use shallowprobes_core::ridge::spectrum;
use shallowprobes_core::threads;
use shallowprobes_core::tridiagonal::{ridge_paths, tridiagonalize, tridiagonalize_all};

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
            let reds = tridiagonalize_all(&grams).unwrap();
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

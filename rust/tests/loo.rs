//! Integration tests of `loo_predictions` (`cargo test --release --test loo`): exact
//! leave-one-out predictions against explicit refits on the other n − 1 rows.

// Index loops read most plainly for the references below.
#![allow(clippy::needless_range_loop)]

use faer::{Mat, Par};
use shallowprobes_core::ridge::{loo_predictions, spectrum, LooModel, Spectrum};

mod common;
use common::dense::*;

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

//! Integration tests of `heldout_sse` (`cargo test --release --test heldout`): errors of
//! models on rows known only through their statistics, against the rows themselves, and
//! K-fold cross-validation from per-fold statistics against naive refits on the raw rows.

// Index loops read most plainly for the references below.
#![allow(clippy::needless_range_loop)]

use faer::{Mat, MatRef, Par};
use shallowprobes_core::ridge::{heldout_sse, ridge_path, spectrum, FoldStats};
use shallowprobes_core::stats::SufficientStats;

mod common;
use common::dense::*;
use common::*;

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

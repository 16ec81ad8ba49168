//! Integration tests of `spectrum`, `spectra` and `ridge_path` (`cargo test --release --test
//! ridge`), against direct solves by a Gaussian elimination with partial pivoting, including
//! the minimum-norm solutions at alpha = 0.

// Index loops read most plainly for the references below.
#![allow(clippy::needless_range_loop)]

use faer::{Mat, MatRef, Par};
use rand::Rng;
use shallowprobes_core::ridge::{inv_shifted, ridge_path, spectrum, Spectrum};

mod common;
use common::dense::*;
use common::*;

// ---------------------------------------------------------------------------------------------
// References for the spectrum and the path
// ---------------------------------------------------------------------------------------------

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

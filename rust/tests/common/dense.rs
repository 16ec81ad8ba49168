//! Dense references for the ridge, held-out and leave-one-out tests: plain triple-loop
//! products, a Gaussian elimination with partial pivoting, centring, and random regression
//! problems with their centred Gram and cross-products.

use super::{gauss, rng};
use faer::Mat;

/// aᵀ b
pub fn at_b(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
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
pub fn a_b(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
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

pub fn transpose(a: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(a.ncols(), a.nrows(), |i, j| a[(j, i)])
}

pub fn add_diag(a: &Mat<f64>, alpha: f64) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| {
        a[(i, j)] + if i == j { alpha } else { 0.0 }
    })
}

pub fn sub(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] - b[(i, j)])
}

pub fn frob(a: &Mat<f64>) -> f64 {
    let mut s = 0.0;
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            s += a[(i, j)] * a[(i, j)];
        }
    }
    s.sqrt()
}

pub fn max_abs(a: &Mat<f64>) -> f64 {
    let mut m = 0.0f64;
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            m = m.max(a[(i, j)].abs());
        }
    }
    m
}

pub fn col_sq_norms(a: &Mat<f64>) -> Vec<f64> {
    (0..a.ncols())
        .map(|j| (0..a.nrows()).map(|i| a[(i, j)] * a[(i, j)]).sum())
        .collect()
}

/// Solves a x = b by Gaussian elimination with partial pivoting.
pub fn solve(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
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
pub fn centre(a: &Mat<f64>) -> (Mat<f64>, Vec<f64>) {
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
pub struct Problem {
    pub x: Mat<f64>,
    pub y: Mat<f64>,
    pub xc: Mat<f64>,
    pub yc: Mat<f64>,
    pub x_mean: Vec<f64>,
    pub y_mean: Vec<f64>,
    pub g: Mat<f64>,
    pub cxy: Mat<f64>,
}

impl Problem {
    pub fn from_data(x: Mat<f64>, y: Mat<f64>) -> Self {
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

    pub fn n(&self) -> usize {
        self.x.nrows()
    }

    /// trace(G)/d: a natural unit for alpha.
    pub fn alpha_unit(&self) -> f64 {
        let d = self.g.nrows();
        (0..d).map(|j| self.g[(j, j)]).sum::<f64>() / d as f64
    }
}

/// Random problem: columns with different scales and means, Y = X W + noise + offset.
pub fn random_problem(seed: u64, n: usize, d: usize, k: usize) -> Problem {
    let mut r = rng(seed);
    let x = Mat::from_fn(n, d, |_, j| {
        0.3 * j as f64 + (0.5 + 0.25 * (j % 5) as f64) * gauss(&mut r)
    });
    let w = Mat::from_fn(d, k, |_, _| gauss(&mut r));
    let xw = a_b(&x, &w);
    let y = Mat::from_fn(n, k, |i, t| xw[(i, t)] + 2.0 * gauss(&mut r) + 3.0);
    Problem::from_data(x, y)
}

/// max over columns of ‖got − want‖ / ‖want‖.
pub fn col_rel_err(got: &Mat<f64>, want: &Mat<f64>) -> f64 {
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

pub fn assert_rel(what: &str, got: f64, want: f64, rtol: f64) {
    assert!(
        (got - want).abs() <= rtol * want.abs(),
        "{what}: got {got:e}, want {want:e} (relative error {:e})",
        (got - want).abs() / want.abs()
    );
}

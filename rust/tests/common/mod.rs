//! Test helpers shared by the Rust integration tests: seeded random data, fold ids, bit
//! patterns, the input layouts of X (contiguous, column-major, reversed, negative strides),
//! statistics accumulated in a pool of a chosen size, and (in [`dense`]) the dense references
//! of the ridge tests.

#![allow(dead_code)]

use faer::MatRef;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shallowprobes_core::stats::{Element, SufficientStats};

pub mod dense;

// ---------------------------------------------------------------------------------------------
// Random data
// ---------------------------------------------------------------------------------------------

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Standard normal sample (Box–Muller).
pub fn gauss(r: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - r.gen::<f64>(); // (0, 1]
    let u2: f64 = r.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Fold ids 0..3 with unequal sizes (≈55 %, 30 %, 15 %).
pub fn random_folds(r: &mut StdRng, n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| {
            let u: f64 = r.gen();
            if u < 0.55 {
                0
            } else if u < 0.85 {
                1
            } else {
                2
            }
        })
        .collect()
}

pub fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

// ---------------------------------------------------------------------------------------------
// Input layouts of X
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layout {
    RowMajor,
    ColMajor,
    /// Column-major storage of the reversed rows, viewed through `reverse_rows()`.
    RevRows,
    /// Negative row stride −(2d+1), column stride 2, NaN padding between the elements.
    NegStrided,
}

pub const LAYOUTS: [Layout; 4] = [
    Layout::RowMajor,
    Layout::ColMajor,
    Layout::RevRows,
    Layout::NegStrided,
];

/// An n×d matrix stored in one of the layouts above.
pub struct Stored<T> {
    buf: Vec<T>,
    n: usize,
    d: usize,
    layout: Layout,
}

impl<T: Element> Stored<T> {
    /// `x` is row-major n×d; `pad` fills the gaps of the strided layout.
    pub fn new(x: &[T], n: usize, d: usize, layout: Layout, pad: T) -> Self {
        assert_eq!(x.len(), n * d);
        let buf = match layout {
            Layout::RowMajor => x.to_vec(),
            Layout::ColMajor => {
                let mut b = vec![pad; n * d];
                for i in 0..n {
                    for j in 0..d {
                        b[j * n + i] = x[i * d + j];
                    }
                }
                b
            }
            Layout::RevRows => {
                let mut b = vec![pad; n * d];
                for i in 0..n {
                    for j in 0..d {
                        b[j * n + (n - 1 - i)] = x[i * d + j];
                    }
                }
                b
            }
            Layout::NegStrided => {
                let rs = 2 * d + 1;
                let mut b = vec![pad; n * rs];
                for i in 0..n {
                    for j in 0..d {
                        b[(n - 1 - i) * rs + 2 * j] = x[i * d + j];
                    }
                }
                b
            }
        };
        Self { buf, n, d, layout }
    }

    pub fn view(&self) -> MatRef<'_, T> {
        let (n, d) = (self.n, self.d);
        match self.layout {
            Layout::RowMajor => MatRef::from_row_major_slice(&self.buf, n, d),
            Layout::ColMajor => MatRef::from_column_major_slice(&self.buf, n, d),
            Layout::RevRows => MatRef::from_column_major_slice(&self.buf, n, d).reverse_rows(),
            Layout::NegStrided => {
                assert!(n > 0);
                let rs = 2 * d + 1;
                // SAFETY: element (i, j) lives at (n−1−i)·rs + 2j < n·rs = buf.len(); the view
                // borrows `self.buf`, which outlives it.
                unsafe {
                    MatRef::from_raw_parts(
                        self.buf.as_ptr().add((n - 1) * rs),
                        n,
                        d,
                        -(rs as isize),
                        2,
                    )
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics in a pool of a chosen size
// ---------------------------------------------------------------------------------------------

/// One `update` call: (X, Y, fold ids).
pub type Part<'a, T> = (MatRef<'a, T>, MatRef<'a, f64>, Option<&'a [usize]>);

pub fn stats_in_pool<T: Element>(
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

pub fn assert_bit_identical(a: &SufficientStats, b: &SufficientStats, label: &str) {
    assert_eq!(bits(&a.count), bits(&b.count), "{label}: count");
    assert_eq!(bits(&a.sum_x), bits(&b.sum_x), "{label}: sum_x");
    assert_eq!(bits(&a.sum_y), bits(&b.sum_y), "{label}: sum_y");
    assert_eq!(bits(&a.xtx), bits(&b.xtx), "{label}: xtx");
    assert_eq!(bits(&a.xty), bits(&b.xty), "{label}: xty");
    assert_eq!(bits(&a.yty), bits(&b.yty), "{label}: yty");
}

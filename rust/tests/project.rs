//! The monitors' row-block kernels (`cargo test --release --test project`): the quotient
//! projection and the polynomial bank scores against naive loops, over shapes around the
//! block size, f64/f32/float16/bfloat16 input, every layout of X; thread-count invariance,
//! NaN propagation, shape errors and cancellation.

#![allow(clippy::needless_range_loop)]

use faer::MatRef;
use shallowprobes_core::project::{
    block_rows, evaluate_polynomials, project_rows, LinearMembers, QuadraticMember,
};
use shallowprobes_core::stats::{Bf16, Element, F16};
use shallowprobes_core::CoreError;
use std::sync::atomic::AtomicU8;

mod common;
use common::*;

fn normals(seed: u64, len: usize) -> Vec<f64> {
    let mut r = rng(seed);
    (0..len).map(|_| gauss(&mut r)).collect()
}

/// Row-major n × d activations with offsets (so that the centre matters).
fn activations(seed: u64, n: usize, d: usize) -> Vec<f64> {
    let z = normals(seed, n * d);
    (0..n * d)
        .map(|i| z[i] * 2.0 + (i % d) as f64 * 0.5 - 3.0)
        .collect()
}

/// x rounded to float32, float16 and bfloat16 (the half types as the raw bits the core reads).
fn narrowed(x: &[f64]) -> (Vec<f32>, Vec<F16>, Vec<Bf16>) {
    let x32 = x.iter().map(|&v| v as f32).collect();
    let x16 = x
        .iter()
        .map(|&v| F16(half::f16::from_f64(v).to_bits()))
        .collect();
    let xbf = x
        .iter()
        .map(|&v| Bf16(half::bf16::from_f64(v).to_bits()))
        .collect();
    (x32, x16, xbf)
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// |got − want| ≤ tol · scale, entry by entry (scale: the sum of |terms| of the entry, so
/// that cancellation in the exact value does not make the check meaningless).
fn assert_close(got: &[f64], want: &[f64], scale: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        assert!(
            (g - w).abs() <= tol * s.max(1e-300),
            "{what}: entry {i}: {g} vs {w} (scale {s})"
        );
    }
}

/// The values the core reads from X, in f64, row-major.
fn decoded<T: Element>(x: MatRef<'_, T>) -> Vec<f64> {
    let (n, d) = (x.nrows(), x.ncols());
    let mut v = Vec::with_capacity(n * d);
    for i in 0..n {
        for j in 0..d {
            v.push(x[(i, j)].to_f64());
        }
    }
    v
}

/// (X − c) M by loops (f64), and the sums of |terms|.
fn naive_projection(
    x: &[f64],
    n: usize,
    d: usize,
    c: &[f64],
    m: &[f64],
    r: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut out, mut scale) = (vec![0.0; n * r], vec![0.0; n * r]);
    for i in 0..n {
        for k in 0..r {
            for j in 0..d {
                let t = (x[i * d + j] - c[j]) * m[j * r + k];
                out[i * r + k] += t;
                scale[i * r + k] += t.abs();
            }
        }
    }
    (out, scale)
}

const SHAPES: [(usize, usize, usize); 6] = [
    (1, 5, 1),
    (7, 3, 4),
    (300, 13, 3),
    (1100, 40, 16),
    (513, 700, 2),
    (64, 1, 1),
];

fn check_projection<T: Element>(x: MatRef<'_, T>, seed: u64, r: usize, what: &str) {
    let (n, d) = (x.nrows(), x.ncols());
    let c = normals(seed + 1, d);
    let m = normals(seed + 2, d * r);
    let mut out = vec![f64::NAN; n * r];
    project_rows(x, &c, MatRef::from_row_major_slice(&m, d, r), &mut out).unwrap();
    let (want, scale) = naive_projection(&decoded(x), n, d, &c, &m, r);
    assert_close(&out, &want, &scale, 1e-13, what);
}

#[test]
fn projection_equals_loops_for_f64_in_every_layout() {
    for (s, &(n, d, r)) in SHAPES.iter().enumerate() {
        let x = activations(s as u64, n, d);
        for layout in LAYOUTS {
            let st = Stored::new(&x, n, d, layout, f64::NAN);
            check_projection(
                st.view(),
                10 + s as u64,
                r,
                &format!("{n}x{d}x{r} {layout:?}"),
            );
        }
    }
}

#[test]
fn projection_equals_loops_for_f32_and_half_input() {
    for (s, &(n, d, r)) in SHAPES.iter().enumerate() {
        let x = activations(20 + s as u64, n, d);
        let (x32, x16, xbf) = narrowed(&x);
        let label = format!("{n}x{d}x{r}");
        for layout in [Layout::RowMajor, Layout::NegStrided] {
            let a = Stored::new(&x32, n, d, layout, f32::NAN);
            check_projection(a.view(), s as u64, r, &format!("f32 {label} {layout:?}"));
            let b = Stored::new(&x16, n, d, layout, F16(0x7e00));
            check_projection(b.view(), s as u64, r, &format!("f16 {label} {layout:?}"));
            let c = Stored::new(&xbf, n, d, layout, Bf16(0x7fc0));
            check_projection(c.view(), s as u64, r, &format!("bf16 {label} {layout:?}"));
        }
    }
}

#[test]
fn projection_of_empty_shapes() {
    let c = [1.0, 2.0];
    let x = [1.0, 2.0, 3.0, 4.0];
    // r = 0 and n = 0: nothing to write
    project_rows(
        MatRef::from_row_major_slice(&x, 2, 2),
        &c,
        MatRef::from_row_major_slice(&[], 2, 0),
        &mut [],
    )
    .unwrap();
    project_rows(
        MatRef::from_row_major_slice(&[] as &[f64], 0, 2),
        &c,
        MatRef::from_row_major_slice(&x, 2, 2),
        &mut [],
    )
    .unwrap();
    // d = 0: zeros, as numpy's (n, 0) @ (0, r)
    let mut out = [f64::NAN; 6];
    project_rows(
        MatRef::from_row_major_slice(&[] as &[f64], 3, 0),
        &[],
        MatRef::from_row_major_slice(&[], 0, 2),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [0.0; 6]);
}

/// A bank for the tests: member j is degree 2 when `quad[j]`; centres of degree-2 members come
/// from `centre_of[j]` (members with the same id share a centre; id 0 is the origin).
struct Bank {
    d: usize,
    w: Vec<Vec<f64>>,
    c: Vec<Vec<f64>>,
    b: Vec<f64>,
    q: Vec<Option<Vec<f64>>>,
}

impl Bank {
    fn new(seed: u64, d: usize, quad: &[bool], centre_of: &[usize]) -> Self {
        let m = quad.len();
        let centres: Vec<Vec<f64>> = (0..m + 1)
            .map(|id| {
                if id == 0 {
                    vec![0.0; d]
                } else {
                    normals(seed * 31 + id as u64, d)
                }
            })
            .collect();
        let mut bank = Bank {
            d,
            w: Vec::new(),
            c: Vec::new(),
            b: Vec::new(),
            q: Vec::new(),
        };
        for j in 0..m {
            let s = seed * 1000 + j as u64 * 7;
            bank.w.push(normals(s, d));
            bank.c.push(centres[centre_of[j]].clone());
            bank.b.push(normals(s + 1, 1)[0]);
            bank.q.push(quad[j].then(|| {
                let a = normals(s + 2, d * d);
                let mut q = vec![0.0; d * d];
                for i in 0..d {
                    for l in 0..d {
                        q[i * d + l] = 0.5 * (a[i * d + l] + a[l * d + i]) * 0.1;
                    }
                }
                q
            }));
        }
        bank
    }

    fn m(&self) -> usize {
        self.w.len()
    }

    /// Scores and sums of |terms| by loops: (x − c)ᵀQ(x − c) + w·(x − c) + b.
    fn naive(&self, x: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
        let (d, m) = (self.d, self.m());
        let (mut out, mut scale) = (vec![0.0; n * m], vec![0.0; n * m]);
        for i in 0..n {
            let row = &x[i * d..(i + 1) * d];
            for j in 0..m {
                let u: Vec<f64> = row.iter().zip(&self.c[j]).map(|(a, b)| a - b).collect();
                let (mut v, mut s) = (self.b[j], self.b[j].abs());
                for a in 0..d {
                    v += self.w[j][a] * u[a];
                    s += (self.w[j][a] * u[a]).abs() + (self.w[j][a] * self.c[j][a]).abs();
                    if let Some(q) = &self.q[j] {
                        for l in 0..d {
                            let t = u[a] * q[a * d + l] * u[l];
                            v += t;
                            s += t.abs();
                        }
                    }
                }
                out[i * m + j] = v;
                scale[i * m + j] = s + row.iter().map(|a| a.abs()).sum::<f64>() * 1e-3;
            }
        }
        (out, scale)
    }

    /// The core's evaluation, members in bank order (degree-1 members as X W + (b − w·c)).
    fn evaluate<T: Element>(&self, x: MatRef<'_, T>) -> Result<Vec<f64>, CoreError> {
        let (d, m) = (self.d, self.m());
        let lin: Vec<usize> = (0..m).filter(|&j| self.q[j].is_none()).collect();
        let mut wl = vec![0.0; d * lin.len()];
        for (k, &j) in lin.iter().enumerate() {
            for a in 0..d {
                wl[a * lin.len() + k] = self.w[j][a];
            }
        }
        let consts: Vec<f64> = lin
            .iter()
            .map(|&j| {
                self.b[j]
                    - self.w[j]
                        .iter()
                        .zip(&self.c[j])
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
            })
            .collect();
        let quads: Vec<QuadraticMember<'_>> = (0..m)
            .filter_map(|j| {
                self.q[j].as_ref().map(|q| QuadraticMember {
                    centre: &self.c[j],
                    linear: &self.w[j],
                    intercept: self.b[j],
                    quadratic: MatRef::from_row_major_slice(q, d, d),
                    column: j,
                })
            })
            .collect();
        let linear = LinearMembers {
            weights: MatRef::from_row_major_slice(&wl, d, lin.len()),
            constants: &consts,
            columns: &lin,
        };
        let mut out = vec![f64::NAN; x.nrows() * m];
        evaluate_polynomials(x, linear, &quads, &mut out)?;
        Ok(out)
    }
}

/// (degree-2 flags, centre ids) of the banks: only linear, only quadratic, mixed, shared
/// centres, a degree-2 member centred at the origin (it shares the degree-1 members' block).
fn banks() -> Vec<(&'static str, Vec<bool>, Vec<usize>)> {
    vec![
        ("one linear", vec![false], vec![1]),
        ("linear", vec![false; 5], vec![1, 2, 3, 4, 5]),
        ("one quadratic", vec![true], vec![1]),
        ("quadratic", vec![true; 3], vec![1, 2, 3]),
        (
            "mixed",
            vec![true, false, false, true, false, true],
            vec![1, 2, 3, 4, 5, 6],
        ),
        (
            "shared centre",
            vec![true, true, false, true],
            vec![1, 1, 2, 1],
        ),
        ("origin", vec![false, true, true, false], vec![1, 0, 2, 0]),
    ]
}

#[test]
fn bank_scores_equal_loops_for_every_kind_of_bank() {
    for (s, &(n, d)) in [
        (1usize, 4usize),
        (9, 1),
        (200, 11),
        (block_rows(24) + 5, 24),
        (40, 130),
    ]
    .iter()
    .enumerate()
    {
        for (b, (label, quad, ids)) in banks().into_iter().enumerate() {
            let bank = Bank::new(s as u64 * 10 + b as u64, d, &quad, &ids);
            let x = activations(40 + s as u64, n, d);
            let (want, scale) = bank.naive(&x, n);
            for layout in LAYOUTS {
                let st = Stored::new(&x, n, d, layout, f64::NAN);
                let got = bank.evaluate(st.view()).unwrap();
                assert_close(
                    &got,
                    &want,
                    &scale,
                    1e-13,
                    &format!("{label} {n}x{d} {layout:?}"),
                );
            }
        }
    }
}

#[test]
fn bank_scores_equal_loops_for_f32_and_half_input() {
    let (n, d) = (700, 20);
    let x = activations(7, n, d);
    let (x32, x16, xbf) = narrowed(&x);
    let bank = Bank::new(3, d, &[true, false, true, false], &[1, 2, 1, 3]);
    let check = |got: Vec<f64>, xd: Vec<f64>, what: &str| {
        let (want, scale) = bank.naive(&xd, n);
        assert_close(&got, &want, &scale, 1e-13, what);
    };
    let v = MatRef::from_row_major_slice(&x32, n, d);
    check(bank.evaluate(v).unwrap(), decoded(v), "f32");
    let v = MatRef::from_row_major_slice(&x16, n, d);
    check(bank.evaluate(v).unwrap(), decoded(v), "f16");
    let v = MatRef::from_row_major_slice(&xbf, n, d);
    check(bank.evaluate(v).unwrap(), decoded(v), "bf16");
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (n, d, r) = (3 * block_rows(30) + 17, 30, 5);
    let x = activations(8, n, d);
    let xv = MatRef::from_row_major_slice(&x, n, d);
    let c = normals(9, d);
    let m = normals(10, d * r);
    let mv = MatRef::from_row_major_slice(&m, d, r);
    let bank = Bank::new(4, d, &[true, false, true], &[1, 2, 3]);
    let run = |threads: usize| {
        in_pool(threads, || {
            let mut p = vec![0.0; n * r];
            project_rows(xv, &c, mv, &mut p).unwrap();
            (bits(&p), bits(&bank.evaluate(xv).unwrap()))
        })
    };
    let one = run(1);
    for t in [2, 3, 5] {
        assert_eq!(run(t), one, "{t} threads");
    }
}

#[test]
fn nan_and_infinity_propagate_to_their_own_rows_only() {
    let (n, d, r) = (50, 6, 2);
    let mut x = activations(11, n, d);
    x[3 * d + 2] = f64::NAN;
    x[40 * d] = f64::INFINITY;
    let xv = MatRef::from_row_major_slice(&x, n, d);
    let m = normals(12, d * r);
    let mut p = vec![0.0; n * r];
    project_rows(
        xv,
        &normals(13, d),
        MatRef::from_row_major_slice(&m, d, r),
        &mut p,
    )
    .unwrap();
    let bank = Bank::new(5, d, &[false, true], &[1, 2]);
    let e = bank.evaluate(xv).unwrap();
    for i in 0..n {
        let bad = i == 3 || i == 40;
        assert!(
            p[i * r..(i + 1) * r].iter().all(|v| v.is_finite() != bad),
            "row {i}"
        );
        assert!(
            e[i * 2..(i + 1) * 2].iter().all(|v| v.is_finite() != bad),
            "row {i}"
        );
    }
}

fn invalid_message(r: Result<(), CoreError>) -> String {
    match r {
        Err(CoreError::Invalid(msg)) => msg,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn shape_errors_are_invalid_and_write_nothing() {
    let (n, d) = (4, 3);
    let x = activations(14, n, d);
    let xv = MatRef::from_row_major_slice(&x, n, d);
    let m = vec![1.0; d * 2];
    let mv = MatRef::from_row_major_slice(&m, d, 2);
    let mut out = vec![7.0; n * 2];
    let msg = invalid_message(project_rows(xv, &[0.0; 2], mv, &mut out));
    assert!(
        msg.contains("centre has 2 entries, X has 3 columns"),
        "{msg}"
    );
    let m4 = vec![1.0; 8];
    let msg = invalid_message(project_rows(
        xv,
        &[0.0; 3],
        MatRef::from_row_major_slice(&m4, 4, 2),
        &mut out,
    ));
    assert!(msg.contains("M has 4 rows"), "{msg}");
    let msg = invalid_message(project_rows(xv, &[0.0; 3], mv, &mut out[..5]));
    assert!(msg.contains("output has 5 entries"), "{msg}");
    assert!(out.iter().all(|&v| v == 7.0));

    let q = vec![0.0; d * d];
    let w = vec![1.0; d];
    let member = |centre: &'static [f64], column: usize| QuadraticMember {
        centre,
        linear: &w,
        intercept: 0.0,
        quadratic: MatRef::from_row_major_slice(&q, d, d),
        column,
    };
    let none = LinearMembers {
        weights: MatRef::from_row_major_slice(&[], d, 0),
        constants: &[],
        columns: &[],
    };
    let mut out = vec![7.0; n * 2];
    let cases: Vec<(Vec<QuadraticMember<'_>>, &str)> = vec![
        (
            vec![member(&[0.0; 3], 0), member(&[0.0; 2], 1)],
            "quadratic member 1: centre has 2",
        ),
        (
            vec![member(&[0.0; 3], 0), member(&[0.0; 3], 0)],
            "output columns must be 0..2",
        ),
        (
            vec![member(&[0.0; 3], 0), member(&[0.0; 3], 2)],
            "got column 2",
        ),
    ];
    for (quads, want) in cases {
        let msg = invalid_message(evaluate_polynomials(xv, none, &quads, &mut out));
        assert!(msg.contains(want), "{msg} (wanted {want})");
    }
    let q2 = vec![0.0; 4];
    let bad_q = [QuadraticMember {
        quadratic: MatRef::from_row_major_slice(&q2, 2, 2),
        ..member(&[0.0; 3], 0)
    }];
    let msg = invalid_message(evaluate_polynomials(xv, none, &bad_q, &mut out[..n]));
    assert!(msg.contains("Q is 2 × 2, expected 3 × 3"), "{msg}");
    let mut q3 = vec![0.0; d * d];
    q3[1] = 1e-300; // (0, 1) but not (1, 0): the core reads one triangle, so it refuses this
    let lopsided = [QuadraticMember {
        quadratic: MatRef::from_row_major_slice(&q3, d, d),
        ..member(&[0.0; 3], 0)
    }];
    let msg = invalid_message(evaluate_polynomials(xv, none, &lopsided, &mut out[..n]));
    assert!(
        msg.contains("quadratic member 0: Q is not symmetric"),
        "{msg}"
    );
    let lin = LinearMembers {
        weights: MatRef::from_row_major_slice(&m, d, 2),
        constants: &[0.0],
        columns: &[0, 1],
    };
    let msg = invalid_message(evaluate_polynomials(xv, lin, &[], &mut out));
    assert!(msg.contains("with 1 constants"), "{msg}");
    let msg = invalid_message(evaluate_polynomials(
        xv,
        none,
        &[member(&[0.0; 3], 0)],
        &mut out,
    ));
    assert!(
        msg.contains("output has 8 entries, expected 4 × 1"),
        "{msg}"
    );
    assert!(out.iter().all(|&v| v == 7.0));
}

#[test]
fn a_raised_cancel_flag_interrupts() {
    let (n, d) = (2000, 8);
    let x = activations(15, n, d);
    let xv = MatRef::from_row_major_slice(&x, n, d);
    let m = vec![1.0; d];
    let flag = AtomicU8::new(1);
    let bank = Bank::new(6, d, &[true], &[1]);
    let (p, e) = shallowprobes_core::threads::install_cancellable(Some(&flag), |_| {
        let mut out = vec![0.0; n];
        let p = project_rows(
            xv,
            &[0.0; 8],
            MatRef::from_row_major_slice(&m, d, 1),
            &mut out,
        );
        (p, bank.evaluate(xv).map(|_| ()))
    })
    .unwrap();
    assert_eq!(p, Err(CoreError::Interrupted));
    assert_eq!(e, Err(CoreError::Interrupted));
}

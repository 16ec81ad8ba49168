//! The float32 Gram path and raw half-precision input (`cargo test --release --test precision`).
//!
//! The float32 path is checked against the f64 path on the same data, entry by entry, within the
//! documented bound (m + 2)·u·‖x̃_j‖‖x̃_l‖ (`stats::F32_GRAM_ROWS`); the half-precision
//! decoders against the `half` crate on every bit pattern.

#![allow(clippy::needless_range_loop)]

use faer::MatRef;
use shallowprobes_core::stats::{
    accumulate_with, f32_gram_bound_factor, Bf16, Element, Precision, StatsMut, SufficientStats,
    F16,
};

mod common;
use common::*;

#[test]
fn f16_decoding_matches_half_on_every_bit_pattern() {
    for b in 0..=u16::MAX {
        let want = half::f16::from_bits(b).to_f32();
        let got = F16(b).to_f32();
        if want.is_nan() {
            assert!(got.is_nan(), "{b:#06x}: {got} for NaN");
            assert!(!F16(b).finite());
        } else {
            assert_eq!(got.to_bits(), want.to_bits(), "{b:#06x}: {got} vs {want}");
            assert_eq!(F16(b).finite(), want.is_finite(), "{b:#06x} finiteness");
        }
    }
}

#[test]
fn bf16_decoding_matches_half_on_every_bit_pattern() {
    for b in 0..=u16::MAX {
        let want = half::bf16::from_bits(b).to_f32();
        let got = Bf16(b).to_f32();
        if want.is_nan() {
            assert!(got.is_nan() && !Bf16(b).finite(), "{b:#06x}");
        } else {
            assert_eq!(got.to_bits(), want.to_bits(), "{b:#06x}");
            assert_eq!(Bf16(b).finite(), want.is_finite(), "{b:#06x} finiteness");
        }
    }
}

fn stats_of<T: Element>(
    x: MatRef<'_, T>,
    y: MatRef<'_, f64>,
    folds: Option<&[usize]>,
    n_folds: usize,
    sx: &[f64],
    sy: &[f64],
    precision: Precision,
) -> SufficientStats {
    let mut st = SufficientStats::new(n_folds, sx.to_vec(), sy.to_vec());
    let view: StatsMut<'_> = st.view_mut();
    accumulate_with(x, y, folds, sx, sy, view, precision).unwrap();
    st
}

/// Checks every Gram and cross-product entry of `got` against `want` within the bound, with
/// the column norms of the shifted data (per fold); returns the largest error / bound ratio.
fn check_within_bound(
    got: &SufficientStats,
    want: &SufficientStats,
    xs: &[f64], // shifted X as f64, row-major n × d
    ys: &[f64], // shifted Y, n × k
    folds: &[usize],
    label: &str,
) -> f64 {
    let (d, k) = (got.d, got.k);
    let n = folds.len();
    let nf = got.count.len();
    let c = f32_gram_bound_factor() * (1.0 + 1e-6);
    let mut worst = 0.0f64;
    assert_eq!(got.count, want.count, "{label}: counts");
    for f in 0..nf {
        let mut nx = vec![0.0; d];
        let mut ny = vec![0.0; k];
        for i in (0..n).filter(|&i| folds[i] == f) {
            for j in 0..d {
                nx[j] += xs[i * d + j] * xs[i * d + j];
            }
            for t in 0..k {
                ny[t] += ys[i * k + t] * ys[i * k + t];
            }
        }
        let (nx, ny): (Vec<f64>, Vec<f64>) = (
            nx.iter().map(|v| v.sqrt()).collect(),
            ny.iter().map(|v| v.sqrt()).collect(),
        );
        for j in 0..d {
            // column sums: f64 sums of f32-rounded values, error ≤ u per term
            let e = (got.sum_x[f * d + j] - want.sum_x[f * d + j]).abs();
            let sa: f64 = (0..n)
                .filter(|&i| folds[i] == f)
                .map(|i| xs[i * d + j].abs())
                .sum();
            assert!(
                e <= 1.0001 * (f32::EPSILON as f64 / 2.0) * sa + 1e-300,
                "{label}: sum_x"
            );
            for l in 0..d {
                let idx = f * d * d + j * d + l;
                let bound = c * nx[j] * nx[l];
                let err = (got.xtx[idx] - want.xtx[idx]).abs();
                assert!(
                    err <= bound,
                    "{label}: xtx[{f},{j},{l}] error {err:e} over bound {bound:e}"
                );
                if bound > 0.0 {
                    worst = worst.max(err / bound);
                }
                // exactly symmetric
                assert_eq!(got.xtx[idx], got.xtx[f * d * d + l * d + j]);
            }
            for t in 0..k {
                let idx = f * d * k + j * k + t;
                let bound = c * nx[j] * ny[t];
                let err = (got.xty[idx] - want.xty[idx]).abs();
                assert!(
                    err <= bound,
                    "{label}: xty[{f},{j},{t}] {err:e} > {bound:e}"
                );
            }
        }
        // targets stay in f64 (only the block boundaries, hence the summation order, differ)
        for t in 0..k {
            let (a, b) = (got.sum_y[f * k + t], want.sum_y[f * k + t]);
            assert!(
                (a - b).abs() <= 1e-12 * ny[t] * (n as f64).sqrt(),
                "{label}: sum_y"
            );
        }
    }
    for (a, b) in got.yty.iter().zip(&want.yty) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{label}: yty");
    }
    worst
}

#[test]
fn f32_gram_within_bound_of_f64_path() {
    // (n, d, k, n_folds, offset, seed): several row blocks, odd sizes, big common means
    let cases = [
        (3000usize, 17usize, 2usize, 1usize, 0.0f64, 1u64),
        (2500, 64, 3, 3, 1.0e3, 2),
        (1500, 130, 1, 5, -3.0e4, 3),
        (4100, 40, 0, 2, 5.0e2, 4),
        (700, 300, 4, 1, 1.0e5, 5),
    ];
    for &(n, d, k, nf, offset, seed) in &cases {
        let mut r = rng(seed);
        // anisotropic columns on a large common mean: the shift (first-rows mean) must remove
        // it, or the f32 rounding would be relative to |offset|
        let scales: Vec<f64> = (0..d).map(|j| 0.1 + (j % 7) as f64).collect();
        let x: Vec<f32> = (0..n * d)
            .map(|i| (offset + scales[i % d] * gauss(&mut r)) as f32)
            .collect();
        let y: Vec<f64> = (0..n * k).map(|_| 2.0 + gauss(&mut r)).collect();
        let folds: Vec<usize> = (0..n).map(|i| (i * 7 + i / 3) % nf).collect();
        // the shift the Python layer uses: the mean of the first 256 rows
        let sx: Vec<f64> = (0..d)
            .map(|j| (0..256).map(|i| x[i * d + j] as f64).sum::<f64>() / 256.0)
            .collect();
        let sy: Vec<f64> = (0..k)
            .map(|t| (0..256).map(|i| y[i * k + t]).sum::<f64>() / 256.0)
            .collect();
        let xv = MatRef::from_row_major_slice(&x, n, d);
        let yv = MatRef::from_row_major_slice(&y, n, k);
        let fo = if nf > 1 { Some(&folds[..]) } else { None };
        let fl: Vec<usize> = if nf > 1 { folds.clone() } else { vec![0; n] };
        let want = stats_of(xv, yv, fo, nf, &sx, &sy, Precision::F64);
        let got = stats_of(xv, yv, fo, nf, &sx, &sy, Precision::F32);
        let xs: Vec<f64> = (0..n * d).map(|i| x[i] as f64 - sx[i % d]).collect();
        let ys: Vec<f64> = (0..n * k).map(|i| y[i] - sy[i % k]).collect();
        let label = format!("n={n} d={d} k={k} folds={nf} offset={offset}");
        let worst = check_within_bound(&got, &want, &xs, &ys, &fl, &label);
        // the worst-case bound is far from tight: errors of random sign stay near √m·u
        assert!(worst < 0.2, "{label}: error/bound ratio {worst}");
        // column-major input gives the same statistics bit for bit
        let xt: Vec<f32> = (0..n * d).map(|i| x[(i % n) * d + i / n]).collect();
        let xcm = MatRef::from_column_major_slice(&xt, n, d);
        let got_cm = stats_of(xcm, yv, fo, nf, &sx, &sy, Precision::F32);
        assert_eq!(bits(&got_cm.xtx), bits(&got.xtx), "{label}: layout");
    }
}

/// Statistics of 2^a X, 2^b Y in f32, with shifts scaled alike, for f64 input.
fn f32_stats_scaled(
    x: &[f64],
    y: &[f64],
    (n, d, k): (usize, usize, usize),
    folds: &[usize],
    nf: usize,
    (a, b): (i32, i32),
) -> (SufficientStats, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let (ca, cb) = (2f64.powi(a), 2f64.powi(b));
    let xs: Vec<f64> = x.iter().map(|v| v * ca).collect();
    let ys: Vec<f64> = y.iter().map(|v| v * cb).collect();
    let sx: Vec<f64> = (0..d)
        .map(|j| (0..100).map(|i| xs[i * d + j]).sum::<f64>() / 100.0)
        .collect();
    let sy: Vec<f64> = (0..k)
        .map(|t| (0..100).map(|i| ys[i * k + t]).sum::<f64>() / 100.0)
        .collect();
    let xv = MatRef::from_row_major_slice(&xs, n, d);
    let yv = MatRef::from_row_major_slice(&ys, n, k);
    let st = stats_of(xv, yv, Some(folds), nf, &sx, &sy, Precision::F32);
    (st, xs, ys, sx, sy)
}

#[test]
fn f32_gram_is_exact_under_powers_of_two_at_any_scale() {
    // Unscaled, f32 products of values below ~1e-19 underflowed and block sums above ~1e17
    // overflowed (a silently wrong Gram at x ~ 1e-25, an overflow error at x ~ 1e20). The core
    // stages each block times a power of two, so statistics of 2^a X, 2^b Y are those of X, Y
    // times 2^2a, 2^(a+b), 2^a bit for bit (powers of two commute with rounding), and within
    // the bound of the exact f64 path at every scale.
    let (n, d, k, nf) = (2300usize, 21usize, 2usize, 3usize);
    let mut r = rng(91);
    let x: Vec<f64> = (0..n * d)
        .map(|i| 3.0 + (0.5 + (i % d) as f64) * gauss(&mut r))
        .collect();
    let y: Vec<f64> = (0..n * k).map(|_| 1.0 + gauss(&mut r)).collect();
    let folds: Vec<usize> = (0..n).map(|i| i % nf).collect();
    let (base, ..) = f32_stats_scaled(&x, &y, (n, d, k), &folds, nf, (0, 0));
    for (a, b) in [
        (-300, 0),
        (-90, 40),
        (-70, -70),
        (-40, 0),
        (30, -20),
        (70, 70),
        (120, 0),
        (300, -300),
    ] {
        let (got, xs, ys, sx, sy) = f32_stats_scaled(&x, &y, (n, d, k), &folds, nf, (a, b));
        let label = format!("X * 2^{a}, Y * 2^{b}");
        let scaled = |v: &[f64], e: i32| -> Vec<u64> {
            bits(&v.iter().map(|z| z * 2f64.powi(e)).collect::<Vec<_>>())
        };
        assert_eq!(bits(&got.xtx), scaled(&base.xtx, 2 * a), "{label}: xtx");
        assert_eq!(bits(&got.xty), scaled(&base.xty, a + b), "{label}: xty");
        assert_eq!(bits(&got.sum_x), scaled(&base.sum_x, a), "{label}: sum_x");
        assert_eq!(got.count, base.count, "{label}: count");
        let xv = MatRef::from_row_major_slice(&xs, n, d);
        let yv = MatRef::from_row_major_slice(&ys, n, k);
        let want = stats_of(xv, yv, Some(&folds), nf, &sx, &sy, Precision::F64);
        let xc: Vec<f64> = (0..n * d).map(|i| xs[i] - sx[i % d]).collect();
        let yc: Vec<f64> = (0..n * k).map(|i| ys[i] - sy[i % k]).collect();
        check_within_bound(&got, &want, &xc, &yc, &folds, &label);
    }
}

#[test]
fn f32_gram_of_f32_and_bf16_input_at_the_edges_of_their_range() {
    // f32 / bf16 values near 1e±30 are representable, but their squares are not: the scaled
    // staging keeps the f32 Gram within its bound of the f64 path (bf16: of the decoded values)
    let (n, d) = (1500usize, 9usize);
    let mut r = rng(5);
    let unit: Vec<f64> = (0..n * d).map(|_| 2.0 + gauss(&mut r)).collect();
    let y: Vec<f64> = (0..n).map(|_| gauss(&mut r)).collect();
    let yv = MatRef::from_row_major_slice(&y, n, 1);
    let folds = vec![0usize; n];
    for e in [-110i32, -64, 64, 110] {
        let x32: Vec<f32> = unit.iter().map(|v| (v * 2f64.powi(e)) as f32).collect();
        let xb: Vec<Bf16> = x32
            .iter()
            .map(|v| Bf16((v.to_bits() >> 16) as u16))
            .collect();
        for (label, xs) in [
            (
                format!("f32 2^{e}"),
                x32.iter().map(|&v| v as f64).collect::<Vec<f64>>(),
            ),
            (
                format!("bf16 2^{e}"),
                xb.iter().map(|v| v.to_f64()).collect(),
            ),
        ] {
            let sx: Vec<f64> = (0..d)
                .map(|j| (0..64).map(|i| xs[i * d + j]).sum::<f64>() / 64.0)
                .collect();
            let sy = vec![0.0];
            let got = if label.starts_with("f32") {
                stats_of(
                    MatRef::from_row_major_slice(&x32, n, d),
                    yv,
                    None,
                    1,
                    &sx,
                    &sy,
                    Precision::F32,
                )
            } else {
                stats_of(
                    MatRef::from_row_major_slice(&xb, n, d),
                    yv,
                    None,
                    1,
                    &sx,
                    &sy,
                    Precision::F32,
                )
            };
            let xv = MatRef::from_row_major_slice(&xs, n, d);
            let want = stats_of(xv, yv, None, 1, &sx, &sy, Precision::F64);
            assert!(
                want.xtx.iter().all(|v| v.is_finite()) && want.xtx[0] > 0.0,
                "{label}"
            );
            let xc: Vec<f64> = (0..n * d).map(|i| xs[i] - sx[i % d]).collect();
            check_within_bound(&got, &want, &xc, &y, &folds, &label);
        }
    }
}

#[test]
fn f32_gram_is_bit_identical_across_thread_counts() {
    let (n, d, k) = (2600, 96, 2);
    let mut r = rng(77);
    let x: Vec<f32> = (0..n * d).map(|_| (10.0 + gauss(&mut r)) as f32).collect();
    let y: Vec<f64> = (0..n * k).map(|_| gauss(&mut r)).collect();
    let sx = vec![10.0; d];
    let sy = vec![0.0; k];
    let xv = MatRef::from_row_major_slice(&x, n, d);
    let yv = MatRef::from_row_major_slice(&y, n, k);
    let run = |t: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
            .install(|| stats_of(xv, yv, None, 1, &sx, &sy, Precision::F32))
    };
    let a = run(1);
    for t in [2, 3] {
        let b = run(t);
        assert_eq!(bits(&a.xtx), bits(&b.xtx), "{t} threads: xtx");
        assert_eq!(bits(&a.xty), bits(&b.xty), "{t} threads: xty");
        assert_eq!(bits(&a.sum_x), bits(&b.sum_x), "{t} threads: sum_x");
    }
}

#[test]
fn raw_half_input_matches_upcast_input() {
    let (n, d, k) = (2100, 33, 2);
    let mut r = rng(9);
    let vals: Vec<f32> = (0..n * d)
        .map(|i| (50.0 + (1 + i % 5) as f64 * gauss(&mut r)) as f32)
        .collect();
    let bf: Vec<Bf16> = vals
        .iter()
        .map(|&v| Bf16(half::bf16::from_f32(v).to_bits()))
        .collect();
    let hf: Vec<F16> = vals
        .iter()
        .map(|&v| F16(half::f16::from_f32(v).to_bits()))
        .collect();
    let y: Vec<f64> = (0..n * k).map(|_| gauss(&mut r)).collect();
    let yv = MatRef::from_row_major_slice(&y, n, k);
    let folds: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let sy = vec![0.1, -0.2];
    fn check<H: Element>(
        raw: &[H],
        n: usize,
        d: usize,
        yv: MatRef<'_, f64>,
        folds: &[usize],
        sy: &[f64],
        label: &str,
    ) {
        let up: Vec<f32> = raw.iter().map(|v| v.to_f64() as f32).collect();
        let sx: Vec<f64> = (0..d).map(|j| up[j] as f64 + 0.25).collect();
        let rv = MatRef::from_row_major_slice(raw, n, d);
        let uv = MatRef::from_row_major_slice(&up, n, d);
        for prec in [Precision::F64, Precision::F32] {
            // raw bits read by the core == the same values handed over as f32, bit for bit
            let a = stats_of(rv, yv, Some(folds), 3, &sx, sy, prec);
            let b = stats_of(uv, yv, Some(folds), 3, &sx, sy, prec);
            assert_eq!(a, b, "{label} {prec:?}: raw vs upcast");
        }
        // and the float32 Gram of raw half input is within the bound of the exact statistics
        let exact = stats_of(uv, yv, Some(folds), 3, &sx, sy, Precision::F64);
        let fast = stats_of(rv, yv, Some(folds), 3, &sx, sy, Precision::F32);
        let xs: Vec<f64> = (0..n * d).map(|i| up[i] as f64 - sx[i % d]).collect();
        let ys: Vec<f64> = (0..n * yv.ncols())
            .map(|i| yv[(i / yv.ncols(), i % yv.ncols())] - sy[i % yv.ncols()])
            .collect();
        check_within_bound(&fast, &exact, &xs, &ys, folds, label);
    }
    check(&bf, n, d, yv, &folds, &sy, "bfloat16");
    check(&hf, n, d, yv, &folds, &sy, "float16");
}

#[test]
fn f32_gram_reports_non_finite_and_changes_no_shapes() {
    let (n, d) = (1500, 8);
    let mut x = vec![1.0f32; n * d];
    x[1400 * d + 3] = f32::NAN;
    let y = vec![0.0f64; n];
    let xv = MatRef::from_row_major_slice(&x, n, d);
    let yv = MatRef::from_row_major_slice(&y, n, 1);
    let mut st = SufficientStats::new(1, vec![0.0; d], vec![0.0]);
    let err = accumulate_with(
        xv,
        yv,
        None,
        &vec![0.0; d],
        &[0.0],
        st.view_mut(),
        Precision::F32,
    );
    assert!(err.is_err());
    let hx: Vec<F16> = (0..n * d)
        .map(|i| F16(if i == 77 { 0x7c00 } else { 0x3c00 }))
        .collect();
    let hv = MatRef::from_row_major_slice(&hx, n, d);
    let mut st = SufficientStats::new(1, vec![0.0; d], vec![0.0]);
    assert!(accumulate_with(
        hv,
        yv,
        None,
        &vec![0.0; d],
        &[0.0],
        st.view_mut(),
        Precision::F64
    )
    .is_err());
}

#[test]
fn accumulate_returns_the_largest_magnitude_it_read() {
    // The Python layer checks X's range with this value instead of a pass of its own: it must
    // be the exact largest |x_ij| for every element type, precision, layout and fold split.
    let (n, d, k) = (2300, 21, 1);
    let mut r = rng(12);
    let mut vals: Vec<f64> = (0..n * d)
        .map(|i| (1 + i % 7) as f64 * gauss(&mut r) * 10f64.powi((i % 5) as i32 - 2))
        .collect();
    vals[1777 * d + 4] = -3.5e6; // a negative extreme in a later block
    let want = vals.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let y: Vec<f64> = (0..n * k).map(|_| gauss(&mut r)).collect();
    let yv = MatRef::from_row_major_slice(&y, n, k);
    let folds: Vec<usize> = (0..n).map(|i| (i * 7) % 4).collect();
    let sx = vec![0.5; d];
    let sy = vec![0.0; k];
    fn largest<T: Element>(
        x: MatRef<'_, T>,
        yv: MatRef<'_, f64>,
        folds: Option<&[usize]>,
        sx: &[f64],
        sy: &[f64],
        prec: Precision,
    ) -> f64 {
        let mut st = SufficientStats::new(4, sx.to_vec(), sy.to_vec());
        accumulate_with(x, yv, folds, sx, sy, st.view_mut(), prec).unwrap()
    }
    let v32: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
    let want32 = v32.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    let bf: Vec<Bf16> = v32
        .iter()
        .map(|&v| Bf16(half::bf16::from_f32(v).to_bits()))
        .collect();
    let want_bf = bf.iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs()));
    for prec in [Precision::F64, Precision::F32] {
        for folds in [None, Some(folds.as_slice())] {
            let c = MatRef::from_row_major_slice(&vals, n, d);
            assert_eq!(largest(c, yv, folds, &sx, &sy, prec), want, "f64 {prec:?}");
            let c32 = MatRef::from_row_major_slice(&v32, n, d);
            assert_eq!(
                largest(c32, yv, folds, &sx, &sy, prec),
                want32,
                "f32 {prec:?}"
            );
            let cbf = MatRef::from_row_major_slice(&bf, n, d);
            assert_eq!(
                largest(cbf, yv, folds, &sx, &sy, prec),
                want_bf,
                "bf16 {prec:?}"
            );
        }
    }
    // a column-major copy (the strided staging branch) reads the same values
    let mut colmajor = vec![0.0f64; n * d];
    for i in 0..n {
        for j in 0..d {
            colmajor[j * n + i] = vals[i * d + j];
        }
    }
    let cm = MatRef::from_column_major_slice(&colmajor, n, d);
    assert_eq!(largest(cm, yv, None, &sx, &sy, Precision::F64), want);
    assert_eq!(largest(cm, yv, None, &sx, &sy, Precision::F32), want);
    // no rows: zero
    let none = MatRef::from_row_major_slice(&vals[..0], 0, d);
    let y0 = MatRef::from_row_major_slice(&y[..0], 0, k);
    assert_eq!(largest(none, y0, None, &sx, &sy, Precision::F64), 0.0);
}

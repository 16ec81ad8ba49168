//! Cancellation, fallible allocation and the max-|x| pass of the core.

mod common;

use common::{gauss, rng};
use faer::Mat;
use shallowprobes_core::error::{ensure_allocatable, try_zeros};
use shallowprobes_core::ridge::spectrum;
use shallowprobes_core::stats::{finite_max_abs, SufficientStats};
use shallowprobes_core::threads::{check_cancel, install_cancellable};
use shallowprobes_core::CoreError;
use std::sync::atomic::AtomicU8;

fn random(n: usize, d: usize, seed: u64) -> Mat<f64> {
    let mut r = rng(seed);
    Mat::from_fn(n, d, |_, _| gauss(&mut r))
}

#[test]
fn raised_flag_interrupts_accumulation_and_solves() {
    let x = random(5000, 8, 1);
    let y = random(5000, 2, 2);
    let raised = AtomicU8::new(1);
    let lowered = AtomicU8::new(0);
    let mut stats = SufficientStats::new(1, vec![0.0; 8], vec![0.0; 2]);
    let res = install_cancellable(Some(&raised), |_| {
        stats.update(x.as_ref(), y.as_ref(), None)
    })
    .unwrap();
    assert_eq!(res, Err(CoreError::Interrupted));
    let res = install_cancellable(Some(&lowered), |_| {
        stats.update(x.as_ref(), y.as_ref(), None)
    })
    .unwrap();
    assert_eq!(res, Ok(()));
    assert_eq!(stats.count[0], 5000.0);
    let g = Mat::<f64>::identity(8, 8);
    let c = Mat::<f64>::zeros(8, 1);
    let res = install_cancellable(Some(&raised), |par| spectrum(g.as_ref(), c.as_ref(), par));
    assert!(matches!(res.unwrap(), Err(CoreError::Interrupted)));
    let res = install_cancellable(Some(&raised), |_| finite_max_abs(x.as_ref())).unwrap();
    assert_eq!(res, Err(CoreError::Interrupted));
    // No flag: never interrupted, and outside a cancellable call checks always pass.
    assert_eq!(check_cancel(), Ok(()));
    assert!(install_cancellable(None, |_| finite_max_abs(x.as_ref()))
        .unwrap()
        .is_ok());
}

#[test]
fn max_abs_matches_a_plain_loop_and_flags_non_finite() {
    for (n, d, seed) in [(1usize, 1usize, 3u64), (300, 7, 4), (9000, 3, 5)] {
        let mut x = random(n, d, seed);
        x[(n - 1, d - 1)] = -1e250;
        let want = (0..n)
            .flat_map(|i| (0..d).map(move |j| (i, j)))
            .map(|(i, j)| x[(i, j)].abs())
            .fold(0.0f64, f64::max);
        assert_eq!(finite_max_abs(x.as_ref()), Ok(Some(want)));
        let xf = Mat::<f32>::from_fn(n, d, |i, j| x[(i, j)] as f32);
        assert_eq!(
            finite_max_abs(xf.as_ref()),
            Ok(None),
            "-1e250 is -inf in float32"
        );
        for bad in [f64::NAN, f64::INFINITY] {
            let mut xb = x.clone();
            xb[(n / 2, 0)] = bad;
            assert_eq!(finite_max_abs(xb.as_ref()), Ok(None));
        }
    }
    let empty = Mat::<f64>::zeros(0, 4);
    assert_eq!(finite_max_abs(empty.as_ref()), Ok(Some(0.0)));
}

#[test]
fn impossible_allocations_are_errors_not_aborts() {
    let err = ensure_allocatable(u128::MAX, "a test").unwrap_err();
    assert!(matches!(err, CoreError::OutOfMemory { .. }));
    assert!(err.to_string().contains("a test"), "{err}");
    let err = try_zeros(usize::MAX / 4, "huge").unwrap_err();
    assert!(matches!(err, CoreError::OutOfMemory { .. }));
    assert_eq!(try_zeros(3, "small").unwrap(), vec![0.0; 3]);
    assert!(ensure_allocatable(1 << 20, "a MiB").is_ok());
}

//! The core's thread pool (`cargo test --release --test threads`). The pool is
//! process-global, so its one test has this binary to itself.

use faer::{MatRef, Par};
use shallowprobes_core::stats::SufficientStats;
use shallowprobes_core::threads;

mod common;
use common::*;

#[test]
fn threads_set_num_threads_and_install() {
    // The only test that touches the core's pool (it is process-global).
    threads::set_num_threads(2).unwrap();
    assert_eq!(threads::num_threads(), 2);
    let (v, nt, par) = threads::install(|par| (6 * 7, rayon::current_num_threads(), par)).unwrap();
    assert_eq!(v, 42);
    assert_eq!(nt, 2);
    assert_eq!(par, Par::rayon(2));

    threads::set_num_threads(1).unwrap();
    assert_eq!(threads::num_threads(), 1);
    assert_eq!(threads::install(|par| par).unwrap(), Par::Seq);

    // Statistics computed inside the core's pool equal those of a one-thread rayon pool.
    threads::set_num_threads(3).unwrap();
    assert_eq!(threads::num_threads(), 3);
    let (n, d, k) = (5_000, 70, 2);
    let mut r = rng(91);
    let x: Vec<f64> = (0..n * d).map(|_| gauss(&mut r)).collect();
    let y: Vec<f64> = (0..n * k).map(|_| gauss(&mut r)).collect();
    let xv = MatRef::from_row_major_slice(&x, n, d);
    let yv = MatRef::from_row_major_slice(&y, n, k);
    let (sx, sy) = (vec![0.0; d], vec![0.0; k]);
    let inside = threads::install(|_| {
        let mut st = SufficientStats::new(3, sx.clone(), sy.clone());
        st.update(xv, yv, None).unwrap();
        st
    })
    .unwrap();
    let seq = stats_in_pool(1, &[(xv, yv, None)], &sx, &sy);
    assert_bit_identical(&inside, &seq, "core pool vs 1 thread");

    threads::set_num_threads(0).unwrap();
    assert!(threads::num_threads() >= 1);
}

//! The core's own rayon pool, so the thread count can be changed at run time (the global
//! rayon pool can be configured only once) without touching other libraries' threads.

use rayon::{ThreadPool, ThreadPoolBuilder};
use std::sync::{Arc, Mutex};

static POOL: Mutex<Option<(usize, Arc<ThreadPool>)>> = Mutex::new(None);

fn default_threads() -> usize {
    std::env::var("SHALLOWPROBES_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

fn build(n: usize) -> Result<Arc<ThreadPool>, String> {
    ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("shallowprobes-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| format!("could not start {n} worker threads: {e}"))
}

/// Use `n` threads (0 = one per available core, or $SHALLOWPROBES_NUM_THREADS).
pub fn set_num_threads(n: usize) -> Result<(), String> {
    let n = if n == 0 { default_threads() } else { n };
    let pool = build(n)?;
    *POOL.lock().unwrap_or_else(|e| e.into_inner()) = Some((n, pool));
    Ok(())
}

fn pool() -> Result<(usize, Arc<ThreadPool>), String> {
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        let n = default_threads();
        *guard = Some((n, build(n)?));
    }
    let (n, p) = guard.as_ref().expect("pool initialised above");
    Ok((*n, Arc::clone(p)))
}

pub fn num_threads() -> usize {
    pool().map(|(n, _)| n).unwrap_or(1)
}

/// Runs `f` inside the core's pool, handing it the matching faer parallelism.
pub fn install<R: Send>(f: impl FnOnce(faer::Par) -> R + Send) -> Result<R, String> {
    let (n, p) = pool()?;
    let par = if n <= 1 {
        faer::Par::Seq
    } else {
        faer::Par::rayon(n)
    };
    Ok(p.install(|| {
        // faer's high-level decompositions read the global setting; keep it in step.
        faer::set_global_parallelism(par);
        f(par)
    }))
}

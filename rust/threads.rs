//! The core's own rayon pool, so the thread count can be changed at run time (the global
//! rayon pool can be configured only once) without touching other libraries' threads; and
//! cooperative cancellation: long loops call [`check_cancel`] between blocks.

use crate::error::CoreError;
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

static POOL: Mutex<Option<(usize, Arc<ThreadPool>)>> = Mutex::new(None);

/// Threads from the first of $SHALLOWPROBES_NUM_THREADS and $RAYON_NUM_THREADS that holds a
/// positive integer, else one per available core.
fn default_threads() -> usize {
    ["SHALLOWPROBES_NUM_THREADS", "RAYON_NUM_THREADS"]
        .iter()
        .find_map(|var| {
            std::env::var(var)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .filter(|&n| n > 0)
        })
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

fn build(n: usize) -> Result<Arc<ThreadPool>, CoreError> {
    ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("shallowprobes-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| CoreError::Threads(format!("could not start {n} worker threads: {e}")))
}

/// Use `n` threads (0 = $SHALLOWPROBES_NUM_THREADS, else $RAYON_NUM_THREADS, else one per core).
pub fn set_num_threads(n: usize) -> Result<(), CoreError> {
    let n = if n == 0 { default_threads() } else { n };
    let pool = build(n)?;
    *POOL.lock().unwrap_or_else(|e| e.into_inner()) = Some((n, pool));
    Ok(())
}

fn pool() -> Result<(usize, Arc<ThreadPool>), CoreError> {
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

/// A handle on the cancel flag of the running computation (copyable into parallel tasks).
#[derive(Clone, Copy, Default)]
pub struct CancelHandle(Option<*const AtomicU8>);

// SAFETY: the pointer is only dereferenced while the `install_cancellable` call that set it
// runs, and the flag it points to outlives that call (see `install_cancellable`).
unsafe impl Send for CancelHandle {}
unsafe impl Sync for CancelHandle {}

impl CancelHandle {
    /// `Err(Interrupted)` once the flag is raised.
    pub fn check(self) -> Result<(), CoreError> {
        match self.0 {
            // SAFETY: see the `Send`/`Sync` impls: the flag is alive while the call runs.
            Some(p) if unsafe { &*p }.load(Ordering::Relaxed) != 0 => Err(CoreError::Interrupted),
            _ => Ok(()),
        }
    }
}

thread_local! {
    static CURRENT: Cell<CancelHandle> = const { Cell::new(CancelHandle(None)) };
}

/// The cancel handle of the computation running on this thread (none outside
/// [`install_cancellable`]: then [`check_cancel`] never fails).
pub fn cancel_handle() -> CancelHandle {
    CURRENT.with(|c| c.get())
}

/// `Err(Interrupted)` if the running computation's cancel flag was raised. Cheap (one relaxed
/// load): called between row blocks and between the stages of a solve.
pub fn check_cancel() -> Result<(), CoreError> {
    cancel_handle().check()
}

/// Runs `f` inside the core's pool, handing it the matching faer parallelism.
pub fn install<R: Send>(f: impl FnOnce(faer::Par) -> R + Send) -> Result<R, CoreError> {
    install_cancellable(None, f)
}

/// As [`install`], with `cancel` (when given) as the flag [`check_cancel`] reads: any non-zero
/// value asks the computation to stop at its next check with [`CoreError::Interrupted`].
pub fn install_cancellable<R: Send>(
    cancel: Option<&AtomicU8>,
    f: impl FnOnce(faer::Par) -> R + Send,
) -> Result<R, CoreError> {
    let (n, p) = pool()?;
    let par = if n <= 1 {
        faer::Par::Seq
    } else {
        faer::Par::rayon(n)
    };
    let handle = CancelHandle(cancel.map(|c| c as *const AtomicU8));
    Ok(p.install(|| {
        // faer's high-level decompositions read the global setting; keep it in step.
        faer::set_global_parallelism(par);
        // Restored on drop, so a panic inside `f` cannot leave a stale flag on a pool thread.
        struct Restore(CancelHandle);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(|c| c.replace(handle)));
        f(par)
    }))
}

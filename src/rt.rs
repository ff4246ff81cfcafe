//! Builds a monoio runtime for the chosen I/O driver: io_uring when the kernel allows it, epoll
//! otherwise, or forced either way (`--io-driver`).

use std::future::Future;

use monoio::{FusionDriver, IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::IoDriver;

const ENTRIES: u32 = 4096;

/// Ring setup for a worker's own ring. COOP_TASKRUN: a completion does not interrupt the worker
/// (no inter-processor signal); its work runs at the worker's next `io_uring_enter`, which every
/// loop makes anyway. SINGLE_ISSUER: only this thread submits, which lets the kernel skip locking.
/// Not DEFER_TASKRUN: it holds all completion work until the worker waits, and at 512 connections
/// the bigger batches cost about 5 µs more user time per request (docs/architecture.md).
fn uring_setup() -> io_uring::Builder {
    let mut tuned = io_uring::IoUring::builder();
    tuned.setup_coop_taskrun().setup_single_issuer();
    // Kernels before 6.0 refuse these flags: fall back to a plain ring there.
    if tuned.build(8).is_err() {
        return io_uring::IoUring::builder();
    }
    tuned
}

/// Which driver `Auto` resolves to on this machine.
pub fn describe(driver: IoDriver) -> &'static str {
    match driver {
        IoDriver::Epoll => "epoll",
        IoDriver::IoUring => "io_uring",
        IoDriver::Auto if monoio::utils::detect_uring() => "io_uring",
        IoDriver::Auto => "epoll",
    }
}

/// Runs `fut` to completion on a new runtime of this thread.
pub fn block_on<F: Future>(driver: IoDriver, fut: F) -> F::Output {
    match driver {
        IoDriver::Epoll => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("epoll runtime")
            .block_on(fut),
        IoDriver::IoUring => RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(ENTRIES)
            .uring_builder(uring_setup())
            .enable_timer()
            .build()
            .expect("io_uring runtime (use --io-driver epoll where io_uring is not allowed)")
            .block_on(fut),
        IoDriver::Auto => RuntimeBuilder::<FusionDriver>::new()
            .with_entries(ENTRIES)
            .uring_builder(uring_setup())
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(fut),
    }
}

/// Keeps the calling thread on `cpus` (the embedding core on its own CPU, the workers on the
/// others).
pub fn run_on(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it (indices past its
    // size are skipped here); sched_setaffinity only reads it.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            if cpu < 8 * std::mem::size_of::<libc::cpu_set_t>() {
                libc::CPU_SET(cpu, &mut set);
            }
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

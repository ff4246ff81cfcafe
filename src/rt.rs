//! Builds a monoio runtime for the chosen I/O driver: io_uring when the kernel allows it, epoll
//! otherwise, or forced either way (`--io-driver`).

use std::future::Future;
use std::sync::OnceLock;

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

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

/// Whether this process may set up a worker's ring: io_uring can be in the kernel yet refused by
/// a seccomp profile (Docker's default), the `kernel.io_uring_disabled` sysctl or, before 5.12, a
/// small locked-memory limit.
fn uring_works() -> std::io::Result<()> {
    uring_setup().build(ENTRIES).map(drop)
}

/// What `Auto` settled on, once for the process.
static AUTO: OnceLock<IoDriver> = OnceLock::new();

fn resolve(driver: IoDriver) -> IoDriver {
    match driver {
        IoDriver::Auto => *AUTO.get_or_init(|| match uring_works() {
            Ok(()) => IoDriver::IoUring,
            Err(_) => IoDriver::Epoll,
        }),
        forced => forced,
    }
}

/// Checks at start that the driver can run here: a forced io_uring that the system refuses is an
/// error to stop on (rather than workers that cannot start), and `Auto` settles on io_uring when a
/// worker's ring can be set up, else epoll.
pub fn check(driver: IoDriver) -> Result<(), String> {
    if driver == IoDriver::IoUring {
        if let Err(e) = uring_works() {
            return Err(format!(
                "io_driver io_uring: this system refuses io_uring ({e}); use io_driver auto or epoll"
            ));
        }
    }
    resolve(driver);
    Ok(())
}

/// Which driver runs on this machine.
pub fn describe(driver: IoDriver) -> &'static str {
    match resolve(driver) {
        IoDriver::IoUring => "io_uring",
        _ => "epoll",
    }
}

/// Runs `fut` to completion on a new runtime of this thread.
pub fn block_on<F: Future>(driver: IoDriver, fut: F) -> F::Output {
    match resolve(driver) {
        IoDriver::IoUring => RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(ENTRIES)
            .uring_builder(uring_setup())
            .enable_timer()
            .build()
            .expect("io_uring runtime (checked at start by `check`)")
            .block_on(fut),
        _ => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("epoll runtime")
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

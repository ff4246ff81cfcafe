//! Builds a monoio runtime for the chosen I/O driver: io_uring when the kernel allows it, epoll
//! otherwise, or forced either way (`--io-driver`).

use std::future::Future;

use monoio::{FusionDriver, IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::IoDriver;

const ENTRIES: u32 = 4096;

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
            .enable_timer()
            .build()
            .expect("io_uring runtime (use --io-driver epoll where io_uring is not allowed)")
            .block_on(fut),
        IoDriver::Auto => RuntimeBuilder::<FusionDriver>::new()
            .with_entries(ENTRIES)
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(fut),
    }
}

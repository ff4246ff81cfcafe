//! A cheap clock for idle ages.

/// Milliseconds on the coarse monotonic clock: a few ms of resolution, plenty for idle ages of
/// 250 ms and 60 s, and read without a time-stamp counter access (a few times per request).
pub fn coarse_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to fill; Linux always has CLOCK_MONOTONIC_COARSE.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}
